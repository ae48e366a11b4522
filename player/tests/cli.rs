//! End-to-end tests of the `kubetape` binary: each test gets its own store and keyring in a
//! temporary directory and drives the CLI as a user would. Stdin is always set explicitly, so
//! the tests behave the same from a terminal and in CI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

    fn root(&self) -> &Path {
        self.temp.root()
    }

    fn store(&self) -> PathBuf {
        self.temp.store_dir()
    }

    fn keys(&self) -> PathBuf {
        self.temp.keys_dir()
    }

    /// `kubetape --store … --keys … ARGS`, isolated from the caller's environment.
    fn cmd(&self, args: &[&str]) -> Command {
        self.temp.kubetape(KUBETAPE, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Records `command` with stdin from `input` (or /dev/null), returning the output and the
    /// session id announced on stderr.
    fn record(&self, command: &[&str], input: Option<&[u8]>) -> (Output, String) {
        let mut args = vec!["record", "--"];
        args.extend_from_slice(command);
        let mut cmd = self.cmd(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let id = session_id(&stderr).unwrap_or_else(|| panic!("no session id on stderr: {stderr}"));
        (out, id)
    }

    fn cat(&self, id: &str, stream: &str) -> Vec<u8> {
        let out = self.run(&["cat", id, "--stream", stream]);
        assert!(
            out.status.success(),
            "cat failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn ls_json(&self) -> serde_json::Value {
        let out = self.run(&["ls", "--json"]);
        assert!(
            out.status.success(),
            "ls failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn summary(&self, id: &str) -> serde_json::Value {
        let all = self.ls_json();
        all.as_array()
            .unwrap()
            .iter()
            .find(|s| s["session"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {all}"))
    }

    /// Chunk objects of every session, by name (in-progress uploads have other names).
    fn chunk_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let Ok(sessions) = std::fs::read_dir(self.store().join(storage_schema::layout::SESSIONS))
        else {
            return found;
        };
        for session in sessions.flatten() {
            let Ok(chunks) = std::fs::read_dir(session.path().join("chunks")) else {
                continue;
            };
            for chunk in chunks.flatten() {
                let name = chunk.file_name().to_string_lossy().into_owned();
                if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
                    found.push(chunk.path());
                }
            }
        }
        found.sort();
        found
    }

    /// The session directories in the store.
    fn session_dirs(&self) -> Vec<PathBuf> {
        let Ok(sessions) = std::fs::read_dir(self.store().join(storage_schema::layout::SESSIONS))
        else {
            return Vec::new();
        };
        sessions
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("meta.json").exists())
            .collect()
    }
}

/// The id in the first `session <uuid>` on stderr.
fn session_id(stderr: &str) -> Option<String> {
    stderr.match_indices("session ").find_map(|(i, m)| {
        let candidate = stderr.get(i + m.len()..i + m.len() + 36)?;
        let is_uuid = candidate.chars().enumerate().all(|(j, c)| {
            if [8, 13, 18, 23].contains(&j) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
        is_uuid.then(|| candidate.to_string())
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `condition` until it holds, failing the test after `limit`. The condition is what the
/// test waits for; the short pause between polls only keeps the loop from spinning.
fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let mut status = None;
    wait_until("kubetape to exit", limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

/// Whether a process is gone (or a zombie nobody has reaped yet: dead all the same).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The time stamp (Unix seconds) in the last complete `line <n> <ns>` line of `output`.
fn last_stamp(output: &str) -> Option<f64> {
    let complete = &output[..output.rfind('\n')?];
    let ns: f64 = complete
        .lines()
        .rev()
        .find_map(|l| l.trim_end().strip_prefix("line "))?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some(ns / 1e9)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn records_exit_code_output_and_seal() {
    let env = Env::new();
    let (out, id) = env.record(
        &["sh", "-c", "printf hello; printf world >&2; exit 3"],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(
        out.stdout, b"helloworld",
        "stderr goes to the same terminal as stdout"
    );
    assert!(
        text(&out.stderr).contains(&format!("session {id} recorded")),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("created a new keyring"),
        "first use creates the keyring"
    );

    assert_eq!(env.cat(&id, "stdout"), b"helloworld");
    // By a unique prefix, as users type it.
    assert_eq!(env.cat(&id[..8], "stdout"), b"helloworld");

    let summary = env.summary(&id);
    assert_eq!(summary["state"], "sealed");
    assert_eq!(summary["exit"]["code"], 3);
    assert_eq!(summary["bytes"]["stdout"], 10);
    assert_eq!(summary["meta"]["kind"], "local");
    assert_eq!(summary["meta"]["tty"], false);
    assert_eq!(summary["meta"]["size"]["cols"], 80);

    let verify = env.run(&["verify", &id]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    let line = text(&verify.stdout);
    assert!(
        line.starts_with(&format!(
            "OK   {id}  sealed, 1 chunk, 10 B stdout, exit 3, signed by "
        )),
        "{line}"
    );
}

#[test]
fn newlines_become_crlf_as_on_any_terminal() {
    let env = Env::new();
    let (out, id) = env.record(&["sh", "-c", "echo one; echo two"], None);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"one\r\ntwo\r\n");
    assert_eq!(env.cat(&id, "stdout"), b"one\r\ntwo\r\n");
}

#[test]
fn large_output_is_recorded_byte_for_byte() {
    let env = Env::new();
    let (out, id) = env.record(&["seq", "1", "200000"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected: String = (1..=200_000).map(|i| format!("{i}\r\n")).collect();
    assert!(
        out.stdout == expected.as_bytes(),
        "record's own output is the pty output ({} bytes)",
        out.stdout.len()
    );
    let recorded = env.cat(&id, "stdout");
    assert!(
        recorded == out.stdout,
        "recording differs: {} bytes vs {} shown",
        recorded.len(),
        out.stdout.len()
    );
    // More than one chunk: the 256 KiB flush bound was exercised.
    assert!(env.summary(&id)["chunks"].as_u64().unwrap() > 1);
}

#[test]
fn stdin_is_forwarded_and_recorded() {
    let env = Env::new();
    let typed = b"echo hi\nexit 7\n";
    let (out, id) = env.record(&["sh"], Some(typed));
    assert_eq!(out.status.code(), Some(7), "stderr: {}", text(&out.stderr));
    assert_eq!(env.cat(&id, "stdin"), typed);
    let shown = text(&env.cat(&id, "stdout"));
    assert!(shown.contains("hi\r\n"), "the command ran: {shown:?}");
}

#[test]
fn end_of_stdin_reaches_the_command_as_end_of_file() {
    let env = Env::new();
    let (out, id) = env.record(&["sh", "-c", "cat; echo done"], Some(b"a\nb"));
    assert!(
        out.status.success(),
        "cat saw end of file: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).ends_with("done\r\n"),
        "{:?}",
        text(&out.stdout)
    );
    assert_eq!(env.cat(&id, "stdin"), b"a\nb");
}

#[test]
fn command_that_cannot_run_is_recorded_as_such() {
    let env = Env::new();
    let (out, id) = env.record(&["/nonexistent/command"], None);
    assert_eq!(out.status.code(), Some(127));
    let summary = env.summary(&id);
    assert_eq!(summary["state"], "sealed");
    assert_eq!(summary["exit"]["code"], 127);
}

#[test]
fn verify_with_public_key_only() {
    let env = Env::new();
    let (_, id) = env.record(&["sh", "-c", "echo audited"], None);
    let pubfile = env.root().join("signing.pub");
    let export = env.run(&["keys", "export-pub", "--out", pubfile.to_str().unwrap()]);
    assert!(export.status.success(), "{}", text(&export.stderr));

    // An auditor's view: no keyring at all.
    let mut cmd = env.cmd(&["verify", &id, "--pubkey", pubfile.to_str().unwrap()]);
    cmd.arg("--keys").arg(env.root().join("no-such-keyring"));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with(&format!("OK   {id}  sealed")),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("not decrypted"),
        "{}",
        text(&out.stderr)
    );

    // Another keyring's public key does not vouch for this recording.
    let other = Env::new();
    assert!(other.run(&["keys", "init"]).status.success());
    let other_pub = other.root().join("other.pub");
    assert!(
        other
            .run(&["keys", "export-pub", "--out", other_pub.to_str().unwrap()])
            .status
            .success()
    );
    let out = env.run(&["verify", &id, "--pubkey", other_pub.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.starts_with(&format!("FAIL {id}")), "{report}");
    assert!(
        report.contains("but the public key given is"),
        "names the key mismatch: {report}"
    );
}

#[test]
fn flipped_bit_in_a_chunk_is_found() {
    let env = Env::new();
    let (_, id) = env.record(&["sh", "-c", "echo precious"], None);
    let chunks = env.chunk_files();
    assert_eq!(chunks.len(), 1);
    let mut bytes = std::fs::read(&chunks[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x08;
    std::fs::write(&chunks[0], bytes).unwrap();

    let out = env.run(&["verify", &id]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.starts_with(&format!("FAIL {id}")), "{report}");
    assert!(
        report.contains("\n     - chunk 0: "),
        "names the chunk: {report}"
    );

    // Reading it refuses the damaged chunk instead of showing it.
    let cat = env.run(&["cat", &id]);
    assert_eq!(cat.status.code(), Some(1));
    assert!(cat.stdout.is_empty());
    assert!(
        text(&cat.stderr).contains("chunk 0"),
        "{}",
        text(&cat.stderr)
    );
}

/// SIGKILL cannot be handled: the session stays open with what had been flushed, and
/// `kubetape seal` closes it afterwards.
#[test]
fn killed_recorder_leaves_a_readable_open_session_that_seal_closes() {
    let env = Env::new();
    let pidfile = env.root().join("child.pid");
    let script = format!(
        "echo $$ > {}; i=0; while :; do i=$((i+1)); echo \"line $i $(date +%s%N)\"; sleep 0.01; done",
        pidfile.display()
    );
    let shown = env.root().join("shown.txt");
    let mut kubetape = env
        .cmd(&["record", "--", "sh", "-c", &script])
        .stdout(std::fs::File::create(&shown).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("two chunks in the store", Duration::from_secs(30), || {
        env.chunk_files().len() >= 2
    });
    // Kill well into the next chunk rather than just after a flush, where the loss is largest.
    let flushed_at = now();
    wait_until("output 0.6 s past a flush", Duration::from_secs(30), || {
        last_stamp(&text(&std::fs::read(&shown).unwrap())).is_some_and(|t| t >= flushed_at + 0.6)
    });
    let killed_at = now();
    kubetape.kill().unwrap(); // SIGKILL
    kubetape.wait().unwrap();

    // Closing the pty master (the kernel does it for the dead recorder) hangs up the command.
    let child = read_pid(&pidfile).expect("the command wrote its pid");
    wait_until(
        "the recorded command to die of the hangup",
        Duration::from_secs(10),
        || process_gone(child),
    );

    let sessions = env.session_dirs();
    assert_eq!(sessions.len(), 1);
    let id = sessions[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let verify = env.run(&["verify", &id]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("  open, "),
        "{}",
        text(&verify.stdout)
    );

    // The recorder closes a chunk at most 1 s after its first event, so what is lost is the
    // open chunk: at most the last second before the kill. The slack covers the rest: the
    // 10 ms loop plus fork/exec of `date` between lines, the chunk's upload to the local store,
    // and scheduling delays on a busy machine.
    let recorded = last_stamp(&text(&env.cat(&id, "stdout"))).expect("some lines were recorded");
    let lag = killed_at - recorded;
    eprintln!("recording ends {lag:.3} s before the kill");
    assert!(
        lag <= 1.0 + 0.3,
        "recording ends {lag:.3} s before the kill"
    );

    let seal = env.run(&["seal", &id[..13]]);
    assert!(seal.status.success(), "{}", text(&seal.stderr));
    assert!(
        text(&seal.stdout).contains("as interrupted"),
        "{}",
        text(&seal.stdout)
    );

    let verify = env.run(&["verify", &id]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("  interrupted"),
        "{}",
        text(&verify.stdout)
    );
    assert_eq!(env.summary(&id)["state"], "interrupted");

    let again = env.run(&["seal", &id]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a sealed session is not sealed twice"
    );
    assert!(
        text(&again.stderr).contains("already sealed"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn sigterm_hangs_up_the_command_and_seals_the_session() {
    let env = Env::new();
    let pidfile = env.root().join("child.pid");
    let script = format!(
        "echo $$ > {}; while :; do echo tick; sleep 0.05; done",
        pidfile.display()
    );
    let mut kubetape = env
        .cmd(&["record", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the command to start", Duration::from_secs(30), || {
        read_pid(&pidfile).is_some()
    });
    let term = Command::new("kill")
        .args(["-TERM", &kubetape.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_exit(&mut kubetape, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(128 + 1),
        "the command died of the SIGHUP passed on"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(kubetape.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let id = session_id(&stderr).unwrap();
    assert!(stderr.contains("sealed)"), "{stderr}");
    assert!(process_gone(read_pid(&pidfile).unwrap()));

    let summary = env.summary(&id);
    assert_eq!(summary["state"], "sealed");
    assert_eq!(
        summary["exit"]["code"], -1,
        "recorded as killed by signal 1"
    );
    assert!(env.run(&["verify", &id]).status.success());
}

/// If the store stops accepting chunks, the command is stopped rather than left running
/// unrecorded.
#[test]
fn store_failure_stops_the_command() {
    let env = Env::new();
    let pidfile = env.root().join("child.pid");
    let script = format!(
        "echo $$ > {}; while :; do echo tick; sleep 0.05; done",
        pidfile.display()
    );
    let mut kubetape = env
        .cmd(&["record", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a first chunk", Duration::from_secs(30), || {
        !env.chunk_files().is_empty()
    });
    // Put a file where the chunks go: every later upload fails, even as root.
    let chunks = env.chunk_files()[0].parent().unwrap().to_path_buf();
    std::fs::rename(&chunks, chunks.with_extension("moved")).unwrap();
    std::fs::write(&chunks, b"not a directory").unwrap();

    let status = wait_exit(&mut kubetape, Duration::from_secs(30));
    assert_eq!(status.code(), Some(125));
    let mut stderr = String::new();
    std::io::Read::read_to_string(kubetape.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("recording failed, so the command was stopped"),
        "{stderr}"
    );
    let child = read_pid(&pidfile).unwrap();
    wait_until("the command to be killed", Duration::from_secs(10), || {
        process_gone(child)
    });
}

#[test]
fn ls_on_an_empty_store_explains_how_to_record() {
    let env = Env::new();
    let out = env.run(&["ls"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("kubetape record"),
        "{}",
        text(&out.stderr)
    );
    let json = env.run(&["ls", "--json"]);
    assert_eq!(text(&json.stdout).trim(), "[]");
}

#[test]
fn ls_lists_newest_first_with_limit() {
    let env = Env::new();
    let (_, first) = env.record(&["true"], None);
    let (_, second) = env.record(&["sh", "-c", "exit 4"], None);
    let all = env.ls_json();
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);

    let table = text(&env.run(&["ls", "--limit", "1"]).stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("SESSION") && lines[0].ends_with("EXIT"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&second) && lines[1].contains("sealed") && lines[1].ends_with('4'),
        "{table}"
    );
}

#[test]
fn reading_without_a_keyring_says_how_to_get_one() {
    let env = Env::new();
    let out = env.run(&["cat", "0196"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("keys init") && err.contains("--keys"), "{err}");
    assert!(!env.keys().exists(), "reading never creates a keyring");
}

#[test]
fn unknown_and_ambiguous_session_ids_are_errors() {
    let env = Env::new();
    let (_, a) = env.record(&["true"], None);
    let (_, b) = env.record(&["true"], None);
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let out = env.run(&["cat", &a[..common]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("matches 2 sessions"),
        "{}",
        text(&out.stderr)
    );

    let out = env.run(&["verify", "ffffffff", &a]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one session could not be checked"
    );
    let report = text(&out.stdout);
    assert!(
        report.contains("ERR  ffffffff  cannot verify: no session"),
        "{report}"
    );
    assert!(report.contains(&format!("OK   {a}")), "{report}");
}

#[test]
fn keys_rotate_keeps_old_sessions_readable() {
    let env = Env::new();
    let (_, old) = env.record(&["sh", "-c", "echo before"], None);
    let rotate = env.run(&["keys", "rotate"]);
    assert!(rotate.status.success(), "{}", text(&rotate.stderr));
    let (_, new) = env.record(&["sh", "-c", "echo after"], None);
    let key = |id: &str| {
        env.summary(id)["meta"]["keys"]["signing"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(
        key(&old),
        key(&new),
        "the new session is signed with the new key"
    );
    assert_eq!(env.cat(&old, "stdout"), b"before\r\n");
    assert_eq!(env.cat(&new, "stdout"), b"after\r\n");
    let list = text(&env.run(&["keys", "list"]).stdout);
    assert_eq!(list.matches("(current)").count(), 2, "{list}");
    assert!(env.run(&["verify", "--all"]).status.success());
}
