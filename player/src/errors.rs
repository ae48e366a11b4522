//! Error messages as one line: the context we add, then each cause.

use std::fmt::Write as _;

/// `{:#}` of an `anyhow::Error`, minus repetition: the storage library's errors print their
/// source in their own message and also report it as the cause, which would otherwise show every
/// I/O error twice ("…: No such file or directory (os error 2): No such file or directory …").
pub fn chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if out.ends_with(&message) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        let _ = write!(out, "{message}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_sources_are_dropped() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let inner = anyhow::Error::new(io).context("keyring /k: gone");
        assert_eq!(
            chain(&inner.context("cannot open")),
            "cannot open: keyring /k: gone"
        );
    }
}
