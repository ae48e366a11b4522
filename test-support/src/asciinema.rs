//! The real asciinema 2.x, which plays kubetape's asciicast exports in the tests.

use std::path::{Path, PathBuf};

/// asciinema from `KUBETAPE_TEST_ASCIINEMA`, else the test venv's (`scripts/test` installs
/// it). `None` only outside CI, with a note that the playing is skipped; in CI a missing
/// asciinema fails the test.
pub fn asciinema() -> Option<PathBuf> {
    let found = std::env::var_os("KUBETAPE_TEST_ASCIINEMA")
        .map(PathBuf::from)
        .or_else(|| {
            let venv =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-env/venv/bin/asciinema");
            venv.is_file().then_some(venv)
        });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "asciinema is missing (scripts/test installs it)"
        );
        eprintln!("note: asciinema not installed; skipped playing the export");
    }
    found
}
