//! `kubetape export`: asciicast v2 plays in the real asciinema 2.x and reproduces the session's
//! output; v3 carries the same output as intervals plus the exit status; text is readable; a
//! damaged recording exports nothing. asciinema comes from `KUBETAPE_TEST_ASCIINEMA` or
//! scripts/test's venv.

use std::path::PathBuf;
use std::process::{Command, Output};

use test_support::TempStore;

const KUBETAPE: &str = env!("CARGO_BIN_EXE_kubetape");

/// A store and keyring of the test's own.
struct Env {
    temp: TempStore,
}

impl Env {
    fn new() -> Self {
        Self {
            temp: TempStore::new(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.temp.kubetape(KUBETAPE, args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "kubetape {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Records a command that prints UTF-8 split across writes, colours, a progress line and
    /// exits 3; returns the session id.
    fn record(&self) -> String {
        let script = r"printf 'caf\303'; sleep 0.05; printf '\251 \033[31mred\033[0m\n'; \
                       printf '10%%\r100%%\n'; printf 'tab\there\n'; exit 3";
        let out = self
            .cmd(&["record", "--", "sh", "-c", script])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        let stderr = String::from_utf8_lossy(&out.stderr);
        stderr
            .split_whitespace()
            .find(|w| w.len() == 36 && w.matches('-').count() == 4)
            .unwrap_or_else(|| panic!("no session id in {stderr}"))
            .to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.temp.root().join(name)
    }
}

#[test]
fn asciicast_v2_plays_in_asciinema_and_reproduces_the_output() {
    let env = Env::new();
    let id = env.record();
    let recorded = env.ok(&["cat", &id]).stdout;
    let cast = env.path("s.cast");
    env.ok(&["export", &id, "-o", cast.to_str().unwrap()]);

    let text = std::fs::read_to_string(&cast).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let mut output = String::new();
    let mut last = 0.0;
    for line in lines {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = ev[0].as_f64().unwrap();
        assert!(t >= last, "times go forward: {line}");
        last = t;
        assert_ne!(ev[1], "i", "keystrokes are never exported");
        if ev[1] == "o" {
            output += ev[2].as_str().unwrap();
        }
    }
    assert_eq!(output.as_bytes(), recorded, "the events carry the output");

    let Some(asciinema) = test_support::asciinema() else {
        return;
    };
    let played = Command::new(&asciinema)
        .arg("cat")
        .arg(&cast)
        .output()
        .unwrap();
    assert!(
        played.status.success(),
        "asciinema cat: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&played.stdout),
        String::from_utf8_lossy(&recorded),
        "asciinema cat reproduces the session's output"
    );
}

#[test]
fn asciicast_v3_has_intervals_and_the_exit_status() {
    let env = Env::new();
    let id = env.record();
    let recorded = env.ok(&["cat", &id]).stdout;
    let out = env.ok(&["export", &id, "--format", "asciicast-v3"]).stdout;
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 3);
    assert!(header["term"]["cols"].as_u64().unwrap() > 0);
    let (mut output, mut exit, mut total) = (String::new(), None, 0.0);
    for line in lines {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        let interval = ev[0].as_f64().unwrap();
        assert!(interval >= 0.0);
        total += interval;
        match ev[1].as_str().unwrap() {
            "o" => output += ev[2].as_str().unwrap(),
            "x" => exit = Some(ev[2].as_str().unwrap().to_string()),
            other => assert_ne!(other, "i"),
        }
    }
    assert_eq!(output.as_bytes(), recorded);
    assert_eq!(exit.as_deref(), Some("3"));
    // The 50 ms pause inside the recording is in the intervals.
    assert!(total >= 0.05, "intervals add up to {total}");
}

#[test]
fn text_export_is_plain_and_edited() {
    let env = Env::new();
    let id = env.record();
    let out = env.ok(&["export", &id, "--format", "text"]).stdout;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "café red\n100%\ntab     here\n"
    );
}

#[test]
fn a_damaged_recording_exports_nothing() {
    let env = Env::new();
    let id = env.record();
    // Flip a bit in the last byte of every chunk (the signature).
    let chunks = env
        .temp
        .store_dir()
        .join("sessions")
        .join(&id)
        .join("chunks");
    for chunk in std::fs::read_dir(&chunks).unwrap().flatten() {
        let mut bytes = std::fs::read(chunk.path()).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(chunk.path(), bytes).unwrap();
    }
    let cast = env.path("bad.cast");
    let out = env
        .cmd(&["export", &id, "-o", cast.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cast.exists(), "no partial export left behind");
    let leftovers: Vec<_> = std::fs::read_dir(env.temp.root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
