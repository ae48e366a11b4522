//! Field selectors (`?fieldSelector=metadata.name=web`), for the one question `RequestInfo`
//! asks of them: does the selector pin `metadata.name` to a single value? If it does, the API
//! server names that object in the request's attributes, so RBAC `resourceNames` (and the
//! gateway's `resource_names`) apply to a list or watch of it — `kubectl get pod web -w` is
//! such a watch.
//!
//! The grammar is apimachinery's `pkg/fields/selector.go` (`ParseSelector`, `splitTerms`,
//! `splitTerm`, `UnescapeValue`, `RequiresExactMatch`), whose table of cases is
//! `pkg/fields/selector_test.go`:
//! - terms are separated by `,` not preceded by `\`, then **sorted** (byte order);
//! - in each term, the first `!=`, `==` or `=` (tried in that order at each position) splits
//!   the field from the value; a term with none is an error;
//! - in the value, `\\`, `\,`, `\=` are escapes; any other `\x`, a trailing `\`, or a bare `,`
//!   or `=` is an error;
//! - a term whose field and value are both empty is dropped (the identity `Transform`);
//! - `RequiresExactMatch(f)` is the value of the first `=`/`==` term on `f`, in sorted order.

/// Why a selector does not parse (the API server then fails to decode the list options).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("invalid field selector: can't understand {0:?}")]
    Term(String),
    #[error("invalid field selector: invalid escape sequence in {0:?}")]
    Escape(String),
    #[error("invalid field selector: unescaped {1:?} in value {0:?}")]
    Unescaped(String, char),
}

/// The value `selector` requires of `field` (`fields.ParseSelector(selector)` then
/// `RequiresExactMatch(field)`): `Ok(None)` if it requires none, `Err` if it does not parse.
pub fn exact_match(selector: &str, field: &str) -> Result<Option<String>, SelectorError> {
    let mut terms = split_terms(selector);
    terms.sort_unstable();
    let mut found = None;
    for term in terms.into_iter().filter(|t| !t.is_empty()) {
        let (lhs, op, rhs) = split_term(term).ok_or_else(|| SelectorError::Term(term.into()))?;
        let value = unescape_value(rhs)?;
        if found.is_none() && op != "!=" && lhs == field {
            found = Some(value);
        }
    }
    Ok(found)
}

/// `splitTerms`: split on `,` that no `\` escapes (the escape stays in the term).
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// `splitTerm`: the first operator, trying `!=`, `==`, `=` at each position.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

/// `UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Escape(s.into()));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::Unescaped(s.into(), c)),
            c => out.push(c),
        }
    }
    if escaped {
        return Err(SelectorError::Escape(s.into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "metadata.name";

    /// `TestSplitTerms` and `TestSplitTerm` (`pkg/fields/selector_test.go`).
    #[test]
    fn apimachinery_split_tables() {
        #[rustfmt::skip]
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a=avalue", &["a=avalue"]),
            ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
            ("a=avalue,b==bvalue,c!=cvalue", &["a=avalue", "b==bvalue", "c!=cvalue"]),
            ("", &[]),
            ("a=a,", &["a=a", ""]),
            (",a=a", &["", "a=a"]),
            (r"k=\,,k2=v2", &[r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", &[r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", &[r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", &[r"k=\a\b\"]),
            (r"k=\", &[r"k=\"]),
            ("함=수,목=록", &["함=수", "목=록"]),
        ];
        for (selector, want) in cases {
            assert_eq!(split_terms(selector), *want, "{selector}");
        }
        #[rustfmt::skip]
        type Split<'a> = Option<(&'a str, &'a str, &'a str)>;
        let terms: &[(&str, Split<'_>)] = &[
            ("a=value", Some(("a", "=", "value"))),
            ("b==value", Some(("b", "==", "value"))),
            ("c!=value", Some(("c", "!=", "value"))),
            ("", None),
            ("a", None),
            (r"k=\,", Some(("k", "=", r"\,"))),
            (r"k=\=", Some(("k", "=", r"\="))),
            (r"k=\\\a\b\=\,\", Some(("k", "=", r"\\\a\b\=\,\"))),
            ("함=수", Some(("함", "=", "수"))),
        ];
        for (term, want) in terms {
            assert_eq!(split_term(term), *want, "{term}");
        }
    }

    /// `TestEscapeValue`'s round trips and invalid sequences.
    #[test]
    fn apimachinery_unescape_table() {
        for (escaped, plain) in [
            ("", ""),
            ("a", "a"),
            (r"\=", "="),
            (r"\,", ","),
            (r"\\", r"\"),
            (r"\\\=\\\,\\", r"\=\,\"),
        ] {
            assert_eq!(unescape_value(escaped).as_deref(), Ok(plain), "{escaped}");
        }
        for bad in [r"\", r"\\\", r"\a", "a,b", "a=b"] {
            assert!(unescape_value(bad).is_err(), "{bad}");
        }
    }

    /// `TestSelectorParsing` (apiserver `pkg/endpoints/request/requestinfo_test.go`) and
    /// `TestSelectorParse`'s good and bad strings (`pkg/fields/selector_test.go`).
    #[test]
    fn exact_matches() {
        assert_eq!(
            exact_match("metadata.name=name1", NAME),
            Ok(Some("name1".into()))
        );
        assert_eq!(exact_match("foo=bar", NAME), Ok(None));
        assert!(exact_match("metadata.name=name1,foo", NAME).is_err());
        assert_eq!(exact_match("", NAME), Ok(None));
        assert_eq!(exact_match("metadata.name==a", NAME), Ok(Some("a".into())));
        assert_eq!(exact_match("metadata.name!=a", NAME), Ok(None));
        assert_eq!(
            exact_match(r"metadata.name=a\,b", NAME),
            Ok(Some("a,b".into()))
        );
        // Sorted first: `metadata.name=a` sorts before `metadata.name=b`, and `==` before `=b`.
        assert_eq!(
            exact_match("metadata.name=b,metadata.name=a", NAME),
            Ok(Some("a".into()))
        );
        assert_eq!(
            exact_match("metadata.name=b,metadata.name==c", NAME),
            Ok(Some("c".into()))
        );
        // A term `=` (empty field and value) is dropped; `x!=a` does not pin anything.
        assert_eq!(exact_match("=,metadata.name=w", NAME), Ok(Some("w".into())));
        for good in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            assert!(exact_match(good, NAME).is_ok(), "{good}");
        }
        for bad in [
            "x=a||y=b",
            "x==a==b",
            "x=a,b",
            "x in (a)",
            "x in (a,b,c)",
            "x",
        ] {
            assert!(exact_match(bad, NAME).is_err(), "{bad}");
        }
    }
}
