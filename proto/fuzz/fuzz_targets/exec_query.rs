//! exec/attach/port-forward request targets, on arbitrary UTF-8 (the input, lossily decoded):
//! - `parse_path` never panics, and a parsed target formats back to exactly the path;
//! - `percent_decode` never panics and agrees with Go's `url.QueryUnescape` (which the API server
//!   uses on the same query): `%` must be followed by two hex digits, `+` is a space; the result
//!   must also be UTF-8 here (Go would accept other bytes; refusing is the safe side);
//! - `percent_encode` then `percent_decode` gives back any string, through `[A-Za-z0-9-_.~+%]`;
//! - `parse_query` never panics; for exec, attach and port-forward, options read from a query
//!   (`StreamOptions::from_query`) and written back (`to_query`, what the gateway forwards) read
//!   back the same, and `Query::encode` of any parsed query parses back to the same pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::exec::{
    StreamOptions, Subresource, parse_path, parse_query, percent_decode, percent_encode,
};
use proto::query::Query;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);

    if let Some(t) = parse_path(&s) {
        let again = format!(
            "/api/v1/namespaces/{}/pods/{}/{}",
            t.namespace,
            t.pod,
            t.subresource.name()
        );
        assert_eq!(again, s);
    }

    let decoded = percent_decode(&s);
    assert_eq!(decoded, query_unescape(&s), "percent_decode({s:?})");

    let encoded = percent_encode(&s);
    assert!(
        encoded
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.~+%".contains(&c))
    );
    assert_eq!(percent_decode(&encoded).as_deref(), Some(&*s));

    let _ = parse_query(&s);
    if let Ok(query) = Query::parse(&s) {
        assert_eq!(Query::parse(&query.encode()).as_ref(), Ok(&query));
        for sub in [
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
        ] {
            if let Ok(opts) = StreamOptions::from_query(&query, sub) {
                let again = opts.to_query(sub).encode();
                let reread = Query::parse(&again).and_then(|q| StreamOptions::from_query(&q, sub));
                assert_eq!(reread.as_ref(), Ok(&opts), "{again}");
            }
        }
    }
});

/// Go's `url.QueryUnescape`, then a UTF-8 check.
fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let digit = |c: u8| (c as char).to_digit(16).unwrap() as u8;
                out.push(digit(hex[0]) << 4 | digit(hex[1]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
