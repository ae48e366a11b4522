//! Query strings as the Kubernetes API server reads them, so that what the gateway decides on
//! and records is what the cluster will do, and the query it forwards can only mean that.
//!
//! # How the API server reads a query (the sources this module follows)
//! - **Splitting and decoding** is Go's `net/url.ParseQuery` (`src/net/url/url.go`, `parseQuery`
//!   and `unescape`), called through `req.URL.Query()`:
//!   pairs are separated by `&` only; a pair containing a raw `;` is *dropped* (an error since
//!   Go 1.17, golang.org/issue/25192 — before, `;` separated pairs too); empty pairs are
//!   skipped; a pair without `=` has the value `""`; key and value are each `QueryUnescape`d:
//!   `+` is a space and `%` must be followed by two hex digits, or the pair is *dropped*;
//!   repeated keys keep every value, in order. Go's own table of cases is `TestParseQuery` in
//!   `src/net/url/url_test.go` (see the tests below).
//! - **Converting** a parameter into an options struct (`PodExecOptions`, `ListOptions`) is
//!   apimachinery's parameter codec (`pkg/runtime/codec.go` `DecodeParameters`) with the
//!   generated `url.Values` conversions, which call `pkg/runtime/conversion.go`:
//!   `Convert_Slice_string_To_string`/`_bool`/`_int64` take the **first** value;
//!   `Convert_Slice_string_To_bool` is false for `"0"` and any case of `"false"`
//!   (`strings.EqualFold` since 2019, `strings.ToLower` before), true for anything else —
//!   `""`, `yes`, `no` and `off` included; `ParseInt(s, 10, 64)` for integers. Keys are matched
//!   exactly (case-sensitive), after decoding: `wat%63h` *is* `watch`.
//!
//! # What the gateway refuses ([`QueryError`])
//! Where the API server's reading depends on its Go version, or silently drops part of the
//! query, the gateway cannot know what the cluster will act on, so it refuses the request
//! rather than guess: a raw `;`, an invalid `%` escape, decoded bytes that are not UTF-8 (the
//! recording and the policy speak UTF-8), a scalar parameter given twice (the API server takes
//! the first; a client that sends two means something the gateway cannot tell), and a
//! boolean that is not ASCII (`EqualFold` folds `ſ` to `s`, `ToLower` does not).
//!
//! # Forwarding
//! [`Query::encode`] writes the decoded pairs back, in order, with Go's `QueryEscape`. Go's
//! `ParseQuery` of that text gives back exactly the pairs the gateway parsed, so the cluster
//! acts on the values the gateway decided on and recorded, whatever the client's spelling.

use std::fmt::Write as _;

/// Why a query is refused. The messages reach the client (after `kubetape: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "the query contains a raw \";\": API servers built with Go before 1.17 split pairs on it, later ones drop the pair; percent-encode it (%3B)"
    )]
    Semicolon,
    #[error(
        "invalid URL escape {0:?} in the query (\"%\" must be followed by two hex digits; the API server would drop the pair)"
    )]
    Escape(String),
    #[error("query parameter {0:?} is not UTF-8 once decoded")]
    NotUtf8(String),
    #[error(
        "query parameter {0:?} is given more than once; the API server would use the first, kubetape refuses rather than guess which was meant"
    )]
    Repeated(String),
    #[error(
        "query parameter {key}={value:?} is not a boolean kubetape accepts (ASCII only; the API server reads \"0\" and any case of \"false\" as false, any other value as true)"
    )]
    Boolean { key: String, value: String },
    #[error("query parameter {key}={value:?} is not {expected}")]
    Value {
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// Any refusal as its message, for callers whose responses take a `String` (the sandbox).
impl From<QueryError> for String {
    fn from(e: QueryError) -> Self {
        e.to_string()
    }
}

/// A decoded query: every `key=value` pair in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses the raw query (the text after `?`) as Go's `url.ParseQuery` does, refusing
    /// whatever it would drop or read differently across Go versions (see the module notes).
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        if raw.contains(';') {
            return Err(QueryError::Semicolon);
        }
        let mut pairs = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = unescape(key)?;
            let value = unescape(value).map_err(|e| match e {
                QueryError::NotUtf8(_) => QueryError::NotUtf8(key.clone()),
                other => other,
            })?;
            pairs.push((key, value));
        }
        Ok(Self { pairs })
    }

    /// A query made of these pairs (for writing a canonical one).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Every pair, in the order sent.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every value of `key`, in order (what the API server's `url.Values[key]` holds).
    pub fn values<'a, 'k>(&'a self, key: &'k str) -> impl Iterator<Item = &'a str> + use<'a, 'k> {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present (with any value, `""` included).
    pub fn contains(&self, key: &str) -> bool {
        self.values(key).next().is_some()
    }

    /// The value of a scalar parameter, `None` when absent; refused when given twice.
    pub fn scalar(&self, key: &str) -> Result<Option<&str>, QueryError> {
        let mut values = self.values(key);
        let first = values.next();
        if values.next().is_some() {
            return Err(QueryError::Repeated(key.to_string()));
        }
        Ok(first)
    }

    /// A boolean parameter as `Convert_Slice_string_To_bool` reads it: false when absent.
    pub fn boolean(&self, key: &str) -> Result<bool, QueryError> {
        match self.scalar(key)? {
            None => Ok(false),
            Some(value) => parse_bool(value).ok_or_else(|| QueryError::Boolean {
                key: key.to_string(),
                value: value.to_string(),
            }),
        }
    }

    /// The pairs written back with Go's `QueryEscape`, in order: what the gateway forwards.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            escape_into(&mut out, k);
            out.push('=');
            escape_into(&mut out, v);
        }
        out
    }

    /// `path`, then `?` and [`Query::encode`] unless the query is empty: the request target
    /// the gateway sends upstream.
    pub fn target(&self, path: &str) -> String {
        if self.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", self.encode())
        }
    }
}

/// One boolean value as `Convert_Slice_string_To_bool` reads it (`pkg/runtime/conversion.go`):
/// false for `"0"` and any case of `"false"`, true for everything else. `None` for a value
/// that is not ASCII, where API server versions differ (`EqualFold` vs `ToLower`, `ſ`).
pub fn parse_bool(value: &str) -> Option<bool> {
    if !value.is_ascii() {
        return None;
    }
    Some(!(value == "0" || value.eq_ignore_ascii_case("false")))
}

/// Go's `url.QueryUnescape`, then a UTF-8 check: `+` is a space, `%XY` one byte, and any `%`
/// not followed by two hex digits an error (Go's `unescape` with `encodeQueryComponent`).
pub fn unescape(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |at: usize| b.get(at).and_then(|&c| char::from(c).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    // Go reports the `%` and at most two bytes after it.
                    let end = (i + 3).min(b.len());
                    let sequence = String::from_utf8_lossy(&b[i..end]).into_owned();
                    return Err(QueryError::Escape(sequence));
                };
                out.push((hi << 4 | lo) as u8);
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
    String::from_utf8(out)
        .map_err(|e| QueryError::NotUtf8(String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Go's `url.QueryEscape`: `[A-Za-z0-9-_.~]` as is, space as `+`, every other byte `%XX`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

fn escape_into(out: &mut String, s: &str) {
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(c))
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{c:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &Query) -> Vec<(&str, &str)> {
        q.pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Go's `TestParseQuery` table (`src/net/url/url_test.go`, Go ≥ 1.17): every case Go parses
    /// without error gives the same pairs here; every case where Go drops a pair is refused.
    #[test]
    fn go_parse_query_table() {
        #[rustfmt::skip]
        let ok: &[(&str, &[(&str, &str)])] = &[
            ("a=1", &[("a", "1")]),
            ("a=1&b=2", &[("a", "1"), ("b", "2")]),
            ("a=1&a=2&a=banana", &[("a", "1"), ("a", "2"), ("a", "banana")]),
            ("ascii=%3Ckey%3A+0x90%3E", &[("ascii", "<key: 0x90>")]),
            ("a=%3B", &[("a", ";")]),
            ("a%3Bb=1", &[("a;b", "1")]),
        ];
        for (raw, want) in ok {
            assert_eq!(pairs(&Query::parse(raw).unwrap()), *want, "{raw}");
        }
        // Go: `ok: false` (and before Go 1.17, `a=1;b=2` was two pairs).
        for raw in [
            "a=1;b=2",
            "a;b=1",
            "a=1&a=2;a=banana",
            "a;b&c=1",
            "a=1&b=2;a=3&c=4",
            "a=1&b=2;c=3",
            ";",
            "a=1;",
            "a=1&;",
            ";a=1&b=2",
            "a=1&b=2;",
        ] {
            assert_eq!(Query::parse(raw), Err(QueryError::Semicolon), "{raw}");
        }
    }

    /// Go's `url.ParseQuery` details: empty pairs skipped, no `=` is an empty value, keys are
    /// decoded too (the review's `wat%63h=true` is `watch`), `+` is a space in keys as well.
    #[test]
    fn pairs_and_keys_decode_like_go() {
        let q = Query::parse("&&wat%63h=true&comm%61nd=sh&tty&=x&a+b=c+d&e==f").unwrap();
        assert_eq!(
            pairs(&q),
            [
                ("watch", "true"),
                ("command", "sh"),
                ("tty", ""),
                ("", "x"),
                ("a b", "c d"),
                ("e", "=f"),
            ]
        );
        assert!(q.contains("tty"));
        assert!(!q.contains("Watch"), "keys are case-sensitive");
    }

    /// Go's `unescapeTests` (`src/net/url/url_test.go`) for `QueryUnescape`.
    #[test]
    fn go_query_unescape_table() {
        for (s, want) in [
            ("", ""),
            ("abc", "abc"),
            ("1%41", "1A"),
            ("1%41%42%43", "1ABC"),
            ("%4a", "J"),
            ("%6F", "o"),
            ("a+b", "a b"),
            ("a%20b", "a b"),
            ("%e2%9c%93", "\u{2713}"),
        ] {
            assert_eq!(unescape(s).as_deref(), Ok(want), "{s}");
        }
        for (s, sequence) in [
            ("%", "%"),
            ("%a", "%a"),
            ("%1", "%1"),
            ("123%45%6", "%6"),
            ("%zzzzz", "%zz"),
            // Found by fuzzing (exec_query): a sign was once taken as part of the escape.
            ("%+d", "%+d"),
            ("%-1", "%-1"),
            ("% 1", "% 1"),
        ] {
            assert_eq!(unescape(s), Err(QueryError::Escape(sequence.into())), "{s}");
        }
        // Go keeps the byte; the gateway speaks UTF-8 and refuses.
        assert!(matches!(unescape("%ff"), Err(QueryError::NotUtf8(_))));
        assert!(matches!(
            Query::parse("command=%ff"),
            Err(QueryError::NotUtf8(k)) if k == "command"
        ));
        assert!(matches!(Query::parse("x=%zz"), Err(QueryError::Escape(_))));
        assert!(matches!(Query::parse("%zz=x"), Err(QueryError::Escape(_))));
    }

    /// `Convert_Slice_string_To_bool` (`pkg/runtime/conversion.go`): only `0` and `false` in
    /// any case are false; `yes`, `no`, `""` are true. Non-ASCII is refused.
    #[test]
    fn booleans_read_like_apimachinery() {
        for v in ["0", "false", "False", "FALSE", "fAlSe"] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        for v in [
            "1", "true", "TRUE", "t", "yes", "no", "off", "", " false", "00", "f",
        ] {
            assert_eq!(parse_bool(v), Some(true), "{v:?}");
        }
        for v in ["fal\u{17f}e", "tru\u{e9}"] {
            assert_eq!(parse_bool(v), None, "{v}");
        }
        let q = Query::parse("tty=yes&stdin&stdout=0&stderr=falſe").unwrap();
        assert_eq!(q.boolean("tty"), Ok(true));
        assert_eq!(q.boolean("stdin"), Ok(true));
        assert_eq!(q.boolean("stdout"), Ok(false));
        assert_eq!(q.boolean("absent"), Ok(false));
        assert!(matches!(
            q.boolean("stderr"),
            Err(QueryError::Boolean { .. })
        ));
    }

    #[test]
    fn scalars_given_twice_are_refused() {
        let q = Query::parse("container=a&container=b&tty=1&tty=1").unwrap();
        assert_eq!(
            q.scalar("container"),
            Err(QueryError::Repeated("container".into()))
        );
        assert_eq!(q.boolean("tty"), Err(QueryError::Repeated("tty".into())));
        assert_eq!(q.scalar("absent"), Ok(None));
        assert_eq!(q.values("container").collect::<Vec<_>>(), ["a", "b"]);
    }

    /// The forwarded form: Go's `QueryEscape` of each part, order kept, so Go's `ParseQuery`
    /// of it gives back the same pairs.
    #[test]
    fn encoding_is_go_query_escape_in_order() {
        let q = Query::parse("wat%63h=true&command=cat%3b+echo+done&command=%7e&pretty").unwrap();
        assert_eq!(
            q.encode(),
            "watch=true&command=cat%3B+echo+done&command=~&pretty="
        );
        assert_eq!(Query::parse(&q.encode()), Ok(q.clone()));
        assert_eq!(
            q.target("/api/v1/pods"),
            format!("/api/v1/pods?{}", q.encode())
        );
        assert_eq!(Query::default().target("/api/v1/pods"), "/api/v1/pods");
        // Go's escapeBenchmarks: QueryEscape("Фотки собак").
        assert_eq!(
            escape("Фотки собак"),
            "%D0%A4%D0%BE%D1%82%D0%BA%D0%B8+%D1%81%D0%BE%D0%B1%D0%B0%D0%BA"
        );
        assert_eq!(escape("a;b&c=d+e/f"), "a%3Bb%26c%3Dd%2Be%2Ff");
    }
}
