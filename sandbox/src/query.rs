//! A request's query string, decoded as the API server does (Go's `url.ParseQuery`:
//! percent-decoding, repeated keys kept in order).

use crate::respond::Reject;

/// Decoded query parameters.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let dec = |s: &str| proto::exec::percent_decode(s).unwrap_or_else(|| s.to_string());
                (dec(k), dec(v))
            })
            .collect();
        Self(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean as the API server converts it (`Convert_Slice_string_To_bool`): absent is
    /// false, and so are `0` and any case of `false`; anything else, `yes` or empty, is true.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| proto::query::parse_bool(v).unwrap_or(true))
    }

    pub fn number(&self, key: &str) -> Result<Option<u64>, Reject> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| Reject::bad_request(format!("invalid {key}: {v:?}")))
            })
            .transpose()
    }
}
