//! Label and field selectors, as list/watch accept them (`labelSelector=app=demo,tier!=db`,
//! `fieldSelector=metadata.name=demo` — what `kubectl debug`, `wait` and `logs -l` send).

use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Label>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_top(s) {
            let req = if let Some(key) = term.strip_prefix('!') {
                Label::NotExists(key.trim().into())
            } else if let Some((k, v)) = term.split_once("!=") {
                Label::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Label::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                Label::NotIn(
                    k.trim().into(),
                    set_values(rest).ok_or(format!("bad set in {term:?}"))?,
                )
            } else if let Some((k, rest)) = term.split_once(" in ") {
                Label::In(
                    k.trim().into(),
                    set_values(rest).ok_or(format!("bad set in {term:?}"))?,
                )
            } else if term
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Label::Exists(term.into())
            } else {
                return Err(format!("unable to parse requirement: {term:?}"));
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Label::Eq(k, v) => labels.get(k) == Some(v),
            Label::NotEq(k, v) => labels.get(k) != Some(v),
            Label::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Label::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Label::Exists(k) => labels.contains_key(k),
            Label::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// A parsed field selector over the fields a kind supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `field=value,field!=value`; fields outside `supported` are rejected as the API
    /// server does (`field label not supported`).
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_top(s) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// `get` returns an object's value for a field.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0
            .iter()
            .all(|(f, equal, v)| (get(f).unwrap_or("") == v) == *equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let labels = BTreeMap::from([
            ("app".to_string(), "demo".to_string()),
            ("tier".into(), "web".into()),
        ]);
        let ok = [
            "",
            "app=demo",
            "app==demo",
            "app",
            "!db",
            "tier in (web, api)",
            "app=demo,tier notin (db)",
        ];
        for s in ok {
            assert!(LabelSelector::parse(s).unwrap().matches(&labels), "{s}");
        }
        for s in [
            "app=other",
            "app!=demo",
            "!app",
            "x",
            "tier in (db)",
            "tier notin (web)",
        ] {
            assert!(!LabelSelector::parse(s).unwrap().matches(&labels), "{s}");
        }
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn fields() {
        let get = |f: &str| match f {
            "metadata.name" => Some("demo"),
            "metadata.namespace" => Some("default"),
            _ => None,
        };
        let sup = ["metadata.name", "metadata.namespace"];
        assert!(
            FieldSelector::parse("metadata.name=demo", &sup)
                .unwrap()
                .matches(get)
        );
        assert!(
            FieldSelector::parse("metadata.name!=x,metadata.namespace==default", &sup)
                .unwrap()
                .matches(get)
        );
        assert!(
            !FieldSelector::parse("metadata.name=x", &sup)
                .unwrap()
                .matches(get)
        );
        assert!(FieldSelector::parse("spec.x=1", &sup).is_err());
    }
}
