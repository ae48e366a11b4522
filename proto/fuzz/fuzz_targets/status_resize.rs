//! The JSON messages of the error and resize channels, on arbitrary bytes:
//! - `Status::parse` never panics; for a parsed Status, `outcome` never panics and follows
//!   kubectl's rule (exit 0 only for `Success` or an `ExitCode` cause of 0; a non-zero code only
//!   with reason `NonZeroExitCode` and an `ExitCode` cause saying so); `to_json` parses back to
//!   an equal Status with the same outcome, and serializing that again gives the same bytes;
//! - `Status::exit_code(c)` for the first byte `c` round-trips to `ExitOutcome::Code(c)`;
//! - `resize::parse` never panics; the sizes it returns, re-encoded one after another as kubectl
//!   sends them, parse back to the same sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::resize;
use proto::status::{ExitOutcome, Status};

fuzz_target!(|data: &[u8]| {
    if let Ok(status) = Status::parse(data) {
        let outcome = status.outcome();
        let causes = || {
            status
                .details
                .iter()
                .flat_map(|d| &d.causes)
                .filter(|c| c.reason == "ExitCode")
        };
        match outcome {
            ExitOutcome::Code(0) if status.status == "Success" => {}
            ExitOutcome::Code(code) => {
                assert_eq!(status.reason, "NonZeroExitCode");
                let first = causes().next().expect("an ExitCode cause");
                assert_eq!(first.message.parse::<u8>(), Ok(code));
            }
            ExitOutcome::Failure => assert_ne!(status.status, "Success"),
        }
        let json = status.to_json();
        let back = Status::parse(&json).expect("to_json output parses");
        assert_eq!(back, status);
        assert_eq!(back.outcome(), outcome);
        assert_eq!(back.to_json(), json);
    }

    if let Some(&code) = data.first() {
        let s = Status::parse(&Status::exit_code(code).to_json()).unwrap();
        assert_eq!(s.outcome(), ExitOutcome::Code(code));
    }

    if let Ok(sizes) = resize::parse(data) {
        let again: Vec<u8> = sizes.iter().flat_map(|s| resize::encode(*s)).collect();
        assert_eq!(resize::parse(&again).expect("encoded sizes parse"), sizes);
    }
});
