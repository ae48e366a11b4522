//! `proto::pod_protobuf::decode_pod`, `decode_pod_reporting` and `decode_review` on arbitrary
//! bytes (what kubectl's pod creations and self-reviews look like, and what anyone can POST).
//!
//! Input: the body; when it lacks the `k8s\0` prefix the target also tries it with the prefix, so
//! mutations reach the protobuf reader.
//!
//! Properties:
//! - no panic, whatever the bytes;
//! - a decoded pod is `v1`/`Pod` and is a fixed point: encoding it and decoding again gives the
//!   same JSON (nothing is invented or lost between the two forms);
//! - the reporting decode gives the same pod, and every skipped field it names is `path#N`;
//! - a decoded review is one of the three self-review kinds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::pod_protobuf::{decode_pod, decode_pod_reporting, decode_review, encode_pod};

fuzz_target!(|data: &[u8]| {
    let mut inputs = vec![data.to_vec()];
    if !data.starts_with(b"k8s\0") {
        inputs.push([b"k8s\0".as_slice(), data].concat());
    }
    for input in inputs {
        if let Ok(pod) = decode_pod(&input) {
            assert_eq!(pod["apiVersion"], "v1");
            assert_eq!(pod["kind"], "Pod");
            let again = decode_pod(&encode_pod(&pod)).expect("re-encoded pod decodes");
            assert_eq!(again, pod);
            let (reported, skipped) = decode_pod_reporting(&input).expect("decodes as before");
            assert_eq!(reported, pod);
            assert!(skipped.iter().all(|s| s.rsplit_once('#').is_some_and(|(_, n)| n.parse::<u32>().is_ok())));
        }
        if let Ok(review) = decode_review(&input) {
            assert!(["SelfSubjectAccessReview", "SelfSubjectRulesReview", "SelfSubjectReview"]
                .contains(&review["kind"].as_str().unwrap_or("")));
        }
    }
});
