//! Differential: the gateway's reading of a request against a model of the Kubernetes API
//! server's (`gateway/tests/apiserver/model.rs`, written from the Go sources, included here by
//! path). Input: lossy UTF-8 `method \n path \n query`. Property (`gateway/tests/apiserver/
//! parity.rs`): the gateway refuses the request or derives exactly what the API server would —
//! the request attributes, and the exec, attach and port-forward options of the query — and what
//! it forwards, Go reads as the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::exec::Subresource;

#[path = "../../tests/apiserver/mod.rs"]
mod apiserver;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut it = text.splitn(3, '\n');
    let (method, path, query) = (
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next(),
    );
    if let Err(e) = apiserver::parity::check_attributes(method, path, query) {
        panic!("{e}");
    }
    for sub in [
        Subresource::Exec,
        Subresource::Attach,
        Subresource::PortForward,
    ] {
        if let Err(e) = apiserver::parity::check_stream(sub, query.unwrap_or_default()) {
            panic!("{e}");
        }
    }
});
