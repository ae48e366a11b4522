//! A reference model of how the Kubernetes API server reads a request's method, path and query,
//! written from the Go sources (cited at each function) and deliberately independent of the
//! gateway's code: it works on bytes as Go strings do, *drops* what Go drops instead of refusing,
//! takes the first of repeated values, and says when its answer depends on something it does
//! not model (label selector syntax) by giving every possible answer.
//!
//! Sources, as read for Kubernetes 1.27–1.37 (none of these changed in that range):
//! - Go `src/net/url/url.go`: `ParseRequestURI` (control bytes, `setPath`), `parseQuery`,
//!   `unescape`; `src/strconv`: `ParseInt`, `ParseUint`; `src/strings`: `EqualFold`, `ToLower`.
//! - apiserver `pkg/endpoints/request/requestinfo.go`: `NewRequestInfo`, `splitPath`.
//! - apimachinery `pkg/runtime/codec.go` (`DecodeParameters`), `pkg/runtime/conversion.go`
//!   (`Convert_Slice_string_To_{string,bool,int64,Pointer_int64}`), `pkg/apis/meta/v1/
//!   zz_generated.conversion.go` (`autoConvert_url_Values_To_v1_ListOptions`) and
//!   `conversion.go` (`Convert_Slice_string_To_Slice_int32`), `pkg/apis/meta/internalversion/
//!   zz_generated.conversion.go` (label and field selectors parsed on the way to internal),
//!   `pkg/fields/selector.go`, `pkg/api/validate/content/path.go`.
//! - kubernetes `pkg/apis/core/v1/zz_generated.conversion.go`:
//!   `autoConvert_url_Values_To_v1_Pod{Exec,Attach}Options`; no defaulting since 1.7
//!   (kubernetes#49586).
#![allow(dead_code)]

use std::collections::BTreeMap;

pub type Bytes = Vec<u8>;

/// Go's `url.Values`: every value of each key, in order.
pub type Values = BTreeMap<Bytes, Vec<Bytes>>;

// === net/url ===

/// Go's `unescape(s, mode)` for `encodeQueryComponent` (`query`) or `encodePath`; `None` on the
/// `EscapeError` it returns when a `%` is not followed by two hex digits.
pub fn go_unescape(s: &[u8], query: bool) -> Option<Bytes> {
    let ishex = |c: u8| c.is_ascii_hexdigit();
    let unhex = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    };
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() || !ishex(s[i + 1]) || !ishex(s[i + 2]) {
                return None;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                out.push(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
                i += 3;
                continue;
            }
            b'+' if query => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// Go's `url.ParseQuery`: the values it keeps, and whether it reported an error (a pair with a
/// `;` or a bad escape is dropped, and parsing goes on).
pub fn parse_query(query: &[u8]) -> (Values, bool) {
    let mut m = Values::new();
    let mut err = false;
    let mut rest = query;
    while !rest.is_empty() {
        let (key, next) = cut(rest, b'&');
        rest = next;
        if key.contains(&b';') {
            err = true;
            continue;
        }
        if key.is_empty() {
            continue;
        }
        let (key, value) = cut(key, b'=');
        let (Some(key), Some(value)) = (go_unescape(key, true), go_unescape(value, true)) else {
            err = true;
            continue;
        };
        m.entry(key).or_default().push(value);
    }
    (m, err)
}

/// `strings.Cut(s, sep)`: before and after the first `sep` (after is empty without one).
fn cut(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match s.iter().position(|&c| c == sep) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

/// What Go's HTTP server makes of a request target `path?query`: the decoded path, or `None`
/// when it answers 400 itself (`ParseRequestURI`: control bytes, a path that is not absolute,
/// a bad escape in the path).
pub fn request_path(raw_path: &[u8], raw_query: &[u8]) -> Option<Bytes> {
    let ctl = |b: &u8| *b < b' ' || *b == 0x7f;
    if raw_path.iter().any(ctl) || raw_query.iter().any(ctl) {
        return None;
    }
    if raw_path == b"*" {
        return Some(raw_path.to_vec());
    }
    if !raw_path.starts_with(b"/") {
        return None;
    }
    go_unescape(raw_path, false)
}

// === strconv, strings ===

/// `strconv.ParseInt(s, 10, 64)` succeeds.
fn go_parse_int64(s: &[u8]) -> bool {
    let digits = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let negative = s.first() == Some(&b'-');
    let limit: u128 = if negative { 1 << 63 } else { (1 << 63) - 1 };
    let mut n: u128 = 0;
    for d in digits {
        n = n * 10 + u128::from(d - b'0');
        if n > limit {
            return false;
        }
    }
    true
}

/// `strconv.ParseUint(s, 10, 16)`.
fn go_parse_uint16(s: &[u8]) -> Option<u16> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u32 = 0;
    for d in s {
        n = n * 10 + u32::from(d - b'0');
        if n > 0xFFFF {
            return None;
        }
    }
    Some(n as u16)
}

/// `strings.EqualFold(s, "false")`: rune by rune under Unicode simple folding, where the only
/// non-ASCII rune that folds into `false` is `ſ` (U+017F, with `s`); invalid UTF-8 decodes to
/// U+FFFD, which folds to nothing in it.
fn equal_fold_false(s: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(s) else {
        return false;
    };
    let chars: Vec<char> = s.chars().collect();
    chars.len() == 5
        && chars.iter().zip("false".chars()).all(|(&c, want)| {
            (c.is_ascii() && c.to_ascii_lowercase() == want) || (want == 's' && c == '\u{17f}')
        })
}

/// `strings.ToLower(s) == "false"`: Go maps each rune with `unicode.ToLower`; no non-ASCII rune
/// lowers to a letter of `false`, so this is ASCII case-insensitive equality.
fn to_lower_is_false(s: &[u8]) -> bool {
    s.eq_ignore_ascii_case(b"false")
}

// === apimachinery conversions ===

fn first<'a>(values: &'a Values, key: &str) -> Option<&'a [u8]> {
    values
        .get(key.as_bytes())
        .and_then(|v| v.first())
        .map(Vec::as_slice)
}

/// `Convert_Slice_string_To_bool` on `values[key]`: absent is false; else the first value is
/// false if it is `"0"` or `EqualFold`s `"false"`.
pub fn convert_bool(values: &Values, key: &str) -> bool {
    match first(values, key) {
        None => false,
        Some(v) => !(v == b"0" || equal_fold_false(v)),
    }
}

// === pkg/fields ===

/// `fields.ParseSelector(s)` then `RequiresExactMatch(field)`: `Err` when the selector does not
/// parse, else the value required of `field`, if any. Go ranges over runes; for a selector that
/// is not UTF-8 the model gives no answer (`None`).
fn field_exact_match(selector: &[u8], field: &str) -> Option<Result<Option<String>, ()>> {
    let s = std::str::from_utf8(selector).ok()?;
    // splitTerms
    let mut terms: Vec<&str> = Vec::new();
    if !s.is_empty() {
        let mut start = 0;
        let mut in_slash = false;
        for (i, c) in s.char_indices() {
            if in_slash {
                in_slash = false;
            } else if c == '\\' {
                in_slash = true;
            } else if c == ',' {
                terms.push(&s[start..i]);
                start = i + 1;
            }
        }
        terms.push(&s[start..]);
    }
    // sort.StringSlice(parts).Sort(): byte order.
    terms.sort();
    struct Term {
        field: String,
        value: String,
        equals: bool,
    }
    let mut items: Vec<Term> = Vec::new();
    for part in terms {
        if part.is_empty() {
            continue;
        }
        // splitTerm
        let mut split = None;
        'scan: for (i, _) in part.char_indices() {
            for op in ["!=", "==", "="] {
                if part[i..].starts_with(op) {
                    split = Some((&part[..i], op, &part[i + op.len()..]));
                    break 'scan;
                }
            }
        }
        let Some((lhs, op, rhs)) = split else {
            return Some(Err(()));
        };
        // UnescapeValue
        let value = if !rhs.contains(['\\', ',', '=']) {
            rhs.to_string()
        } else {
            let mut v = String::new();
            let mut in_slash = false;
            for c in rhs.chars() {
                if in_slash {
                    match c {
                        '\\' | ',' | '=' => v.push(c),
                        _ => return Some(Err(())),
                    }
                    in_slash = false;
                    continue;
                }
                match c {
                    '\\' => in_slash = true,
                    ',' | '=' => return Some(Err(())),
                    _ => v.push(c),
                }
            }
            if in_slash {
                return Some(Err(()));
            }
            v
        };
        items.push(Term {
            field: lhs.to_string(),
            value,
            equals: op != "!=",
        });
    }
    // Transform with the identity: a term with an empty field and value becomes Everything,
    // which an andTerm drops; a lone one is Everything itself.
    let kept: Vec<&Term> = items
        .iter()
        .filter(|t| !(t.field.is_empty() && t.value.is_empty()))
        .collect();
    // RequiresExactMatch: a hasTerm on the field; an andTerm's first such term.
    Some(Ok(kept
        .iter()
        .find(|t| t.equals && t.field == field)
        .map(|t| t.value.clone())))
}

/// `content.IsPathSegmentName(name)` finds nothing wrong.
fn is_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

// === RequestInfo ===

/// `RequestInfo`'s fields that authorization and audit use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Info {
    pub is_resource_request: bool,
    pub verb: Bytes,
    pub api_group: Bytes,
    pub api_version: Bytes,
    pub namespace: Bytes,
    pub resource: Bytes,
    pub subresource: Bytes,
    pub name: Bytes,
}

/// What the API server does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Go's HTTP server answers 400 before any of this runs.
    Rejected,
    /// `NewRequestInfo` returns an error: the API server answers 500.
    Failed,
    /// Every `RequestInfo` it may derive (one, unless the answer depends on what the model
    /// does not model), sorted, without duplicates.
    Infos(Vec<Info>),
    /// The model cannot say (a field selector that is not UTF-8).
    Unmodelled,
}

/// `ListOptions` decoding in `NewRequestInfo`: `Some(watch, name)` per possible outcome.
fn list_outcomes(values: &Values) -> Option<Vec<(bool, Bytes)>> {
    // DecodeParameters returns at once for no parameters: opts stay zero.
    if values.is_empty() {
        return Some(vec![(false, Vec::new())]);
    }
    // On failure: opts reset, and `watch` read with ToLower.
    let fallback_watch = match first(values, "watch") {
        None => false,
        Some(v) => !(to_lower_is_false(v) || v == b"0"),
    };
    let failed = (fallback_watch, Vec::new());
    let integers_ok = ["timeoutSeconds", "limit"]
        .iter()
        .all(|k| first(values, k).is_none_or(go_parse_int64));
    let fields = field_exact_match(
        first(values, "fieldSelector").unwrap_or_default(),
        "metadata.name",
    )?;
    let Ok(exact) = fields else {
        return Some(vec![failed]);
    };
    if !integers_ok {
        return Some(vec![failed]);
    }
    let watch = convert_bool(values, "watch");
    let name = match exact {
        Some(n) if is_path_segment_name(&n) => n.into_bytes(),
        _ => Vec::new(),
    };
    let decoded = (watch, name);
    // labels.Parse is not modelled: only the empty selector is known to parse.
    if first(values, "labelSelector")
        .unwrap_or_default()
        .is_empty()
    {
        Some(vec![decoded])
    } else {
        Some(vec![decoded, failed])
    }
}

/// `NewRequestInfo` for `method raw_path?raw_query`, with the factory kube-apiserver uses
/// (`APIPrefixes` `api`, `apis`; `GrouplessAPIPrefixes` `api`).
pub fn request_info(method: &str, raw_path: &[u8], raw_query: &[u8]) -> Served {
    let Some(path) = request_path(raw_path, raw_query) else {
        return Served::Rejected;
    };
    let (values, _) = parse_query(raw_query);
    let lower: Bytes = method.to_lowercase().into_bytes();
    let non_resource = Info {
        is_resource_request: false,
        verb: lower,
        api_group: Vec::new(),
        api_version: Vec::new(),
        namespace: Vec::new(),
        resource: Vec::new(),
        subresource: Vec::new(),
        name: Vec::new(),
    };
    // splitPath: strings.Trim(path, "/"), then split on "/".
    let start = path.iter().position(|&c| c != b'/');
    let parts: Vec<&[u8]> = match start {
        None => Vec::new(),
        Some(s) => {
            let e = path.iter().rposition(|&c| c != b'/').unwrap_or(s);
            path[s..=e].split(|&c| c == b'/').collect()
        }
    };
    if parts.len() < 3 || !(parts[0] == b"api" || parts[0] == b"apis") {
        return Served::Infos(vec![non_resource]);
    }
    let mut cur = &parts[1..];
    let mut api_group: &[u8] = b"";
    if parts[0] != b"api" {
        if cur.len() < 3 {
            return Served::Infos(vec![non_resource]);
        }
        api_group = cur[0];
        cur = &cur[1..];
    }
    let api_version = cur[0];
    cur = &cur[1..];
    let verb: Bytes;
    if cur[0] == b"proxy" || cur[0] == b"watch" {
        if cur.len() < 2 {
            return Served::Failed;
        }
        verb = cur[0].to_vec();
        cur = &cur[1..];
    } else {
        verb = match method {
            "POST" => b"create".to_vec(),
            "GET" | "HEAD" => b"get".to_vec(),
            "PUT" => b"update".to_vec(),
            "PATCH" => b"patch".to_vec(),
            "DELETE" => b"delete".to_vec(),
            _ => Vec::new(),
        };
    }
    let mut namespace: &[u8] = b"";
    if cur[0] == b"namespaces" && cur.len() > 1 {
        namespace = cur[1];
        if cur.len() > 2 && cur[2] != b"status" && cur[2] != b"finalize" {
            cur = &cur[2..];
        }
    }
    let mut subresource: &[u8] = b"";
    let mut name: &[u8] = b"";
    if cur.len() >= 3 && verb != b"proxy" {
        subresource = cur[2];
    }
    if cur.len() >= 2 {
        name = cur[1];
    }
    let resource = cur[0];
    let base = Info {
        is_resource_request: true,
        verb: verb.clone(),
        api_group: api_group.to_vec(),
        api_version: api_version.to_vec(),
        namespace: namespace.to_vec(),
        resource: resource.to_vec(),
        subresource: subresource.to_vec(),
        name: name.to_vec(),
    };
    let mut infos = Vec::new();
    if name.is_empty() && verb == b"get" {
        let Some(outcomes) = list_outcomes(&values) else {
            return Served::Unmodelled;
        };
        for (watch, name) in outcomes {
            let mut info = base.clone();
            info.verb = if watch {
                b"watch".to_vec()
            } else {
                b"list".to_vec()
            };
            info.name = name;
            infos.push(info);
        }
    } else {
        infos.push(base);
    }
    for info in &mut infos {
        if info.name.is_empty() && info.verb == b"delete" {
            info.verb = b"deletecollection".to_vec();
        }
    }
    infos.sort();
    infos.dedup();
    Served::Infos(infos)
}

// === pods/exec, pods/attach, pods/portforward ===

/// The stream options the API server decodes (`req.URL.Query()`, pairs Go dropped ignored):
/// `PodExecOptions` (`command` set), `PodAttachOptions` (`command` empty), or the ports of
/// `PodPortForwardOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub command: Vec<Bytes>,
    pub container: Bytes,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub ports: Vec<u16>,
}

/// The stream kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Exec,
    Attach,
    PortForward,
}

/// `DecodeParameters(req.URL.Query(), …)` for a stream's options; `Err` when the API server
/// answers 400 (a port that does not convert).
pub fn stream_options(kind: Stream, raw_query: &[u8]) -> Result<StreamOptions, ()> {
    let (values, _) = parse_query(raw_query);
    let mut o = StreamOptions::default();
    match kind {
        Stream::Exec | Stream::Attach => {
            o.stdin = convert_bool(&values, "stdin");
            o.stdout = convert_bool(&values, "stdout");
            o.stderr = convert_bool(&values, "stderr");
            o.tty = convert_bool(&values, "tty");
            o.container = first(&values, "container").unwrap_or_default().to_vec();
            if kind == Stream::Exec {
                o.command = values.get(&b"command"[..]).cloned().unwrap_or_default();
            }
        }
        Stream::PortForward => {
            for v in values.get(&b"ports"[..]).into_iter().flatten() {
                for p in v.split(|&c| c == b',') {
                    o.ports.push(go_parse_uint16(p).ok_or(())?);
                }
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model against Go's own tables, so that it is a model of Go and not of the gateway.
    #[test]
    fn the_model_reproduces_go_tables() {
        let (v, err) = parse_query(b"a=1&b=2;c=3");
        assert!(err);
        assert_eq!(v.len(), 1);
        let (v, err) = parse_query(b"a=1&a=2&a=banana");
        assert!(!err);
        assert_eq!(
            v[&b"a"[..]],
            [b"1".to_vec(), b"2".to_vec(), b"banana".to_vec()]
        );
        assert_eq!(go_unescape(b"123%45%6", true), None);
        assert_eq!(go_unescape(b"a+b%20", false).unwrap(), b"a+b ");
        assert!(go_parse_int64(b"-9223372036854775808") && !go_parse_int64(b"9223372036854775808"));
        assert!(!go_parse_int64(b"+") && !go_parse_int64(b"") && !go_parse_int64(b"1_0"));
        assert_eq!(go_parse_uint16(b"+1"), None);
        assert!(
            equal_fold_false("FAL\u{17f}E".as_bytes())
                && !to_lower_is_false("fal\u{17f}e".as_bytes())
        );
        assert_eq!(
            field_exact_match(b"metadata.name=b,metadata.name==c", "metadata.name"),
            Some(Ok(Some("c".into())))
        );
    }
}
