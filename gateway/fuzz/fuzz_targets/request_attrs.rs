//! The audit log's request attributes (`gateway/src/audit/request.rs`) on arbitrary method, path
//! and query (first byte picks the method, the rest is split at the first `?`):
//! - `attributes` never panics;
//! - a resource request has an API group, and its namespace, resource, name and subresource are
//!   single non-empty path segments that occur in the path;
//! - a non-resource request's verb is the lower-cased method.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;

#[path = "../../src/audit/request.rs"]
#[allow(dead_code)]
mod request;

const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::CONNECT,
];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = &METHODS[usize::from(m) % METHODS.len()];
    let text = String::from_utf8_lossy(rest);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    let a = request::attributes(method, path, query);
    match &a.resource {
        Some(_) => {
            assert!(a.api_group.is_some(), "{path:?}: resource without group");
            for part in [&a.namespace, &a.resource, &a.name, &a.subresource]
                .into_iter()
                .flatten()
            {
                assert!(!part.is_empty() && !part.contains('/'), "{path:?}: {part:?}");
                assert!(path.contains(part.as_str()), "{path:?}: {part:?}");
            }
            assert!(!a.verb.is_empty());
        }
        None => assert_eq!(a.verb, method.as_str().to_ascii_lowercase(), "{path:?}"),
    }
});
