//! The inspection of `kubectl debug` bodies (`gateway::debug::spec`), on arbitrary bytes split
//! into `selector byte` + body:
//! - `spec::parse` never panics, for either form and every content type the gateway reads;
//! - what parses and passes a busybox-only role's limits never runs another image, a privileged
//!   container, an added capability other than SYS_PTRACE, or (for pods) host access;
//! - for JSON bodies, every container the API server would read (in `spec.ephemeralContainers`
//!   of a patch, or `containers`/`initContainers`/`ephemeralContainers` of a pod) is one the
//!   inspection saw (same count).
#![no_main]

use gateway::debug::spec::{Form, parse};
use gateway::debug::DebugLimits;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const TYPES: [&str; 4] = [
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/json",
    "application/vnd.kubernetes.protobuf",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let form = if selector & 1 == 0 { Form::Ephemeral } else { Form::Pod };
    let ctype = TYPES[usize::from(selector >> 1) % TYPES.len()];
    let Ok(spec) = parse(form, ctype, body) else {
        return;
    };
    let limits: DebugLimits =
        toml::from_str("images = [\"busybox\"]\ncopy = true").expect("limits");
    if limits.check("fuzz", form, &spec).is_err() {
        return;
    }
    for c in &spec.containers {
        assert_eq!(c.image.as_deref(), Some("busybox"));
        assert!(!c.privileged);
        assert!(c.capabilities.iter().all(|x| x == "SYS_PTRACE"));
    }
    if let Some(pod) = &spec.pod {
        assert!(!pod.host_pid && !pod.host_network && !pod.host_ipc);
        assert!(pod.node_name.is_none() && pod.host_paths.is_empty());
    }
    if ctype == TYPES[0] || ctype == TYPES[2] {
        let v: Value = serde_json::from_slice(body).expect("parsed once already");
        let count = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        let seen = match form {
            Form::Ephemeral => count(&v["spec"], "ephemeralContainers"),
            Form::Pod => ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .map(|k| count(&v["spec"], k))
                .sum(),
        };
        assert_eq!(seen, spec.containers.len());
    }
});
