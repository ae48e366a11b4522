//! The admin API's JSON bodies (`proto::admin`) on arbitrary bytes, as the gateway reads what a
//! client sends and the CLI reads what a gateway answers:
//! - parsing never panics, whatever the type;
//! - whatever parses serializes, and the serialization parses back to an equal value (the wire
//!   form is a fixed point: serializing again gives the same bytes);
//! - an [`AccessRequestView`] that parses has a state with a wire name, and only
//!   [`AccessRequestState::Unknown`] names itself `unknown`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::admin::{
    AccessRequestList, AccessRequestState, AccessRequestView, DecisionBody, NewAccessRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn fixed_point<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let json = serde_json::to_vec(&value).expect("a parsed body serializes");
        let back: T = serde_json::from_slice(&json).expect("the serialization parses");
        assert_eq!(back, value);
        assert_eq!(serde_json::to_vec(&back).unwrap(), json);
    }
}

fuzz_target!(|data: &[u8]| {
    fixed_point::<NewAccessRequest>(data);
    fixed_point::<DecisionBody>(data);
    fixed_point::<AccessRequestList>(data);
    if let Ok(view) = serde_json::from_slice::<AccessRequestView>(data) {
        let unknown = view.state == AccessRequestState::Unknown;
        assert_eq!(view.state.as_str() == "unknown", unknown);
    }
    fixed_point::<AccessRequestView>(data);
});
