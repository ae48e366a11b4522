//! A recording store and keyring of a test's own, in a temporary directory: what `kubetape`
//! (`--store`, `--keys`) and a gateway (`[recording] store`, `keys`) are pointed at, and what
//! a test opens to read or tamper with what they wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use storage_schema::Keyring;
use storage_schema::store::Store;

/// A temporary directory holding `store/` (a `file://` store) and `keys/` (a keyring, created
/// on first use by whoever opens it). Removed on drop.
#[derive(Debug)]
pub struct TempStore {
    dir: tempfile::TempDir,
}

impl Default for TempStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TempStore {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The temporary directory (for a test's other files: an index, a log).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The store's directory (a test can edit objects in place).
    pub fn store_dir(&self) -> PathBuf {
        self.root().join("store")
    }

    /// `file:///…/store`.
    pub fn store_url(&self) -> String {
        format!("file://{}", self.store_dir().display())
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root().join("keys")
    }

    /// The store, opened.
    pub fn store(&self) -> Store {
        Store::open(&self.store_url()).expect("open the test store")
    }

    /// The keyring, created if it does not exist yet.
    pub fn keyring(&self) -> Keyring {
        Keyring::open_or_init(&self.keys_dir())
            .expect("open the test keyring")
            .0
    }

    /// A copy of the whole directory (store, keyring and anything else in it), for a test that
    /// damages one copy per case.
    pub fn copy(&self) -> TempStore {
        let copy = TempStore::new();
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.root().display()))
            .arg(copy.root())
            .status()
            .expect("cp");
        assert!(status.success(), "cp -a {}", self.root().display());
        copy
    }

    /// `kubetape --store … --keys … ARGS` (the binary at `kubetape`, e.g.
    /// `env!("CARGO_BIN_EXE_kubetape")`), isolated from the caller's `KUBETAPE_*` settings, with
    /// stdin from /dev/null.
    pub fn kubetape(&self, kubetape: impl AsRef<Path>, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubetape.as_ref());
        cmd.env_remove("KUBETAPE_STORE")
            .env_remove("KUBETAPE_KEYS")
            .env_remove("KUBETAPE_LOG")
            .arg("--store")
            .arg(self.store_url())
            .arg("--keys")
            .arg(self.keys_dir())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// The same as one shell command line (for tmux), ending in `args` as written.
    pub fn kubetape_line(&self, kubetape: impl AsRef<Path>, args: &str) -> String {
        format!(
            "env -u KUBETAPE_STORE -u KUBETAPE_KEYS -u KUBETAPE_LOG {} --store '{}' --keys '{}' {args}",
            kubetape.as_ref().display(),
            self.store_url(),
            self.keys_dir().display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_commands_point_at_the_same_store() {
        let t = TempStore::new();
        assert!(t.store_url().starts_with("file:///"));
        assert!(t.store_url().ends_with("/store"));
        let _ = t.keyring();
        Keyring::open(&t.keys_dir()).expect("created by keyring()");
        let cmd = t.kubetape("/bin/kubetape", &["ls", "--json"]);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--store".to_string(),
                t.store_url(),
                "--keys".into(),
                t.keys_dir().display().to_string(),
                "ls".into(),
                "--json".into()
            ]
        );
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(removed, ["KUBETAPE_KEYS", "KUBETAPE_LOG", "KUBETAPE_STORE"]);
        std::fs::create_dir_all(t.store_dir().join("sessions")).unwrap();
        std::fs::write(t.store_dir().join("sessions/x"), "1").unwrap();
        let copy = t.copy();
        assert_ne!(copy.root(), t.root());
        assert_eq!(
            std::fs::read(copy.store_dir().join("sessions/x")).unwrap(),
            b"1"
        );
        Keyring::open(&copy.keys_dir()).expect("the keyring is copied too");
        let line = t.kubetape_line("/bin/kubetape", "play X");
        assert!(
            line.ends_with(" play X") && line.contains(&t.store_url()),
            "{line}"
        );
    }
}
