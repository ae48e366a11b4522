//! Request attributes (the gateway's `RequestInfo`), on arbitrary UTF-8 split into
//! `method \n path \n query`:
//! - `parse_attributes` never panics and `Display` works on every result;
//! - the audit record's fields are those attributes (the method's, for non-resource requests);
//! - a resource request has a resource, and no `/` in namespace, resource, subresource or
//!   name; the streams the gateway relays (`proto::exec::parse_path`) are always `create`;
//! - paths with `%`, `\`, `.`/`..` or empty segments are never interpreted (always `Invalid`);
//! - the canonical path of a resource request parses back to the same attributes (unless the
//!   verb came from a legacy `/watch/` or `/proxy/` prefix, which the canonical path drops, or
//!   the name from a `fieldSelector`, which the canonical path puts in the path).
//!
//! Whether the attributes are the API server's is `apiserver_parity`'s property.
#![no_main]

use gateway::audit::RequestAttrs;
use gateway::policy::{Attributes, parse_attributes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut it = text.splitn(3, '\n');
    let (method, path, query) = (
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next(),
    );
    let attrs = parse_attributes(method, path, query);
    let _ = attrs.to_string();
    let record = RequestAttrs::of(&attrs, method);
    let r = match &attrs {
        Attributes::Invalid { .. } => {
            assert_eq!(record.verb, method.to_ascii_lowercase());
            assert!(record.resource.is_none());
            return;
        }
        Attributes::NonResource { .. } => {
            assert!(!path.contains('%'));
            assert_eq!(record.verb, method.to_ascii_lowercase());
            assert!(record.resource.is_none());
            return;
        }
        Attributes::Resource(r) => r,
    };
    assert_eq!(record.verb, r.verb);
    assert_eq!(record.resource.as_deref(), Some(r.resource.as_str()));
    assert_eq!(record.namespace.as_deref().unwrap_or_default(), r.namespace);
    assert_eq!(record.name.as_deref().unwrap_or_default(), r.name);
    assert_eq!(
        record.subresource.as_deref().unwrap_or_default(),
        r.subresource
    );
    assert!(!path.contains('%') && !path.contains('\\'));
    assert!(!r.resource.is_empty());
    for field in [&r.namespace, &r.resource, &r.subresource, &r.name] {
        assert!(!field.contains('/'), "{attrs:?}");
        assert!(field != "." && field != "..", "{attrs:?}");
    }
    if proto::exec::parse_path(path).is_some() {
        assert_eq!(r.verb, "create");
    }
    let mut canonical = if r.api_group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.api_group, r.version)
    };
    // `/namespaces/{ns}` alone (or with `status`/`finalize`) is the namespace object; with any
    // other subresource the object needs the long form `/namespaces/{ns}/namespaces/{ns}/x`.
    let namespace_object = r.resource == "namespaces"
        && r.name == r.namespace
        && ["", "status", "finalize"].contains(&r.subresource.as_str());
    if !r.namespace.is_empty() && !namespace_object {
        canonical.push_str(&format!("/namespaces/{}", r.namespace));
    }
    canonical.push_str(&format!("/{}", r.resource));
    if !r.name.is_empty() {
        canonical.push_str(&format!("/{}", r.name));
    }
    if !r.subresource.is_empty() {
        canonical.push_str(&format!("/{}", r.subresource));
    }
    let again = parse_attributes(method, &canonical, query);
    if again != attrs {
        let via_prefix = (r.verb == "watch" && path.contains("/watch/")) || r.verb == "proxy";
        let name_from_query = ["list", "watch"].contains(&r.verb.as_str()) && !r.name.is_empty();
        assert!(
            via_prefix || name_from_query,
            "{path:?} → {attrs:?}, but {canonical:?} → {again:?}"
        );
    }
});
