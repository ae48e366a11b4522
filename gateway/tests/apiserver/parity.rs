//! The differential property, shared by the proptest (`tests/apiserver_parity.rs`) and the
//! `apiserver_parity` fuzz target: for any request, **the gateway either refuses it or derives
//! exactly what the API server would** ([`super::model`]) — verb, API group, version,
//! namespace, resource, subresource and name; for a stream, the command argv, container,
//! stdin/stdout/stderr/tty and ports — **and what it forwards reads, to the API server, as
//! exactly what it decided on**.
//!
//! The one deliberate difference is the gateway's documented rule that the streams it relays
//! (`proto::exec::parse_path`) are verb `create` whatever the method.

use gateway::policy::{Attributes, parse_attributes};
use proto::exec::{StreamOptions, Subresource};
use proto::query::Query;

use super::model::{self, Served, Stream};

/// Checks one request's attributes; `Err` says how the gateway and the model differ.
pub fn check_attributes(method: &str, path: &str, query: Option<&str>) -> Result<(), String> {
    let raw_query = query.unwrap_or_default();
    let gateway = parse_attributes(method, path, query);
    let served = model::request_info(method, path.as_bytes(), raw_query.as_bytes());
    let ctx =
        || format!("{method} {path:?} ? {raw_query:?}: gateway {gateway:?}, API server {served:?}");
    if matches!(gateway, Attributes::Invalid { .. }) {
        return Ok(());
    }
    // Accepted: the query it forwards must read, to Go, as exactly the original.
    check_forwarded(raw_query).map_err(|e| format!("{e}; {}", ctx()))?;
    let infos = match &served {
        // Go's HTTP server answers 400 (so does hyper, for control bytes): nothing happens.
        Served::Rejected => return Ok(()),
        Served::Failed | Served::Unmodelled => {
            return Err(format!(
                "the gateway decided where it cannot know the API server's reading; {}",
                ctx()
            ));
        }
        Served::Infos(infos) => infos,
    };
    let [info] = infos.as_slice() else {
        return Err(format!(
            "the API server may read this {} ways; the gateway must refuse; {}",
            infos.len(),
            ctx()
        ));
    };
    match &gateway {
        Attributes::NonResource { method: verb, .. } => {
            if info.is_resource_request {
                return Err(format!(
                    "a resource request read as non-resource; {}",
                    ctx()
                ));
            }
            // Methods are ASCII tokens in HTTP; Go lowers runes, the gateway ASCII.
            if method.is_ascii() && verb.as_bytes() != info.verb {
                return Err(format!("non-resource verb differs; {}", ctx()));
            }
        }
        Attributes::Resource(r) => {
            if !info.is_resource_request {
                return Err(format!(
                    "a non-resource request read as a resource; {}",
                    ctx()
                ));
            }
            let want_verb: &[u8] = if proto::exec::parse_path(path).is_some() {
                b"create"
            } else {
                &info.verb
            };
            let got = [
                r.verb.as_bytes(),
                r.api_group.as_bytes(),
                r.version.as_bytes(),
                r.namespace.as_bytes(),
                r.resource.as_bytes(),
                r.subresource.as_bytes(),
                r.name.as_bytes(),
            ];
            let want = [
                want_verb,
                &info.api_group,
                &info.api_version,
                &info.namespace,
                &info.resource,
                &info.subresource,
                &info.name,
            ];
            if got != want {
                return Err(format!("attributes differ; {}", ctx()));
            }
        }
        Attributes::Invalid { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// Checks one stream request's options for `subresource`.
pub fn check_stream(subresource: Subresource, raw_query: &str) -> Result<(), String> {
    let gateway = Query::parse(raw_query).and_then(|q| StreamOptions::from_query(&q, subresource));
    let kind = match subresource {
        Subresource::Exec => Stream::Exec,
        Subresource::Attach => Stream::Attach,
        Subresource::PortForward => Stream::PortForward,
    };
    let served = model::stream_options(kind, raw_query.as_bytes());
    let ctx =
        || format!("{subresource:?} ? {raw_query:?}: gateway {gateway:?}, API server {served:?}");
    let Ok(opts) = &gateway else {
        return Ok(());
    };
    let Ok(want) = &served else {
        return Err(format!(
            "the gateway accepted options the API server refuses; {}",
            ctx()
        ));
    };
    if !same_options(opts, want) {
        return Err(format!("options differ; {}", ctx()));
    }
    // What the relay dials with: the recorded options, re-encoded.
    let forwarded = opts.to_query(subresource).encode();
    match model::stream_options(kind, forwarded.as_bytes()) {
        Ok(upstream) if upstream == *want => Ok(()),
        other => Err(format!(
            "the forwarded query {forwarded:?} reads as {other:?}; {}",
            ctx()
        )),
    }
}

fn same_options(got: &StreamOptions, want: &model::StreamOptions) -> bool {
    got.command
        .iter()
        .map(|c| c.as_bytes())
        .eq(want.command.iter().map(Vec::as_slice))
        && got.container.as_deref().unwrap_or_default().as_bytes() == want.container
        && (got.stdin, got.stdout, got.stderr, got.tty)
            == (want.stdin, want.stdout, want.stderr, want.tty)
        && got.ports == want.ports
}

/// The gateway's re-encoding of `raw_query` must parse, in Go, without error, to the values
/// Go reads from the original (which must itself have parsed without error).
pub fn check_forwarded(raw_query: &str) -> Result<(), String> {
    let query = Query::parse(raw_query)
        .map_err(|e| format!("accepted, but the query does not parse: {e}"))?;
    let encoded = query.encode();
    let (original, err_original) = model::parse_query(raw_query.as_bytes());
    let (forwarded, err_forwarded) = model::parse_query(encoded.as_bytes());
    if err_original || err_forwarded || original != forwarded {
        return Err(format!(
            "forwarded {encoded:?}: Go reads {forwarded:?} (error {err_forwarded}) where the client's query reads {original:?} (error {err_original})"
        ));
    }
    Ok(())
}
