//! Processes a test starts: the workspace's binaries, run with a deadline or kept as servers
//! that are killed when the test ends, however it ends.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A workspace binary next to the running test executable (`target/<profile>/<name>`); panics
/// with the command that builds it when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A child process killed (and reaped) on drop, its output drained to a log file.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` and waits (at most `limit`) for a line on stdout or stderr containing
/// `ready`; returns the process and that line. All output keeps being appended to `log`.
pub fn spawn_until(mut cmd: Command, ready: &str, log: PathBuf, limit: Duration) -> (Proc, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let (tx, rx) = mpsc::channel::<String>();
    let outputs: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    for output in outputs {
        let (tx, log) = (tx.clone(), log.clone());
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log file");
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
    }
    let proc = Proc { child, log };
    let deadline = Instant::now() + limit;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(ready) => return (proc, line),
            Ok(_) => {}
            Err(_) => panic!(
                "{cmd:?} never printed {ready:?}; log:\n{}",
                std::fs::read_to_string(&proc.log).unwrap_or_default()
            ),
        }
    }
}

/// Runs `cmd` with `stdin` bytes (then EOF) and a bounded wait; returns (exit code, stdout,
/// stderr). A process still running at the deadline is killed and the test fails.
pub fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    run_inner(cmd, stdin, timeout, false)
}

/// [`run`], but stdin stays open (no EOF) until the process exits: for sessions that must be
/// ended by the other side.
pub fn run_with_open_stdin(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Duration,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    run_inner(cmd, stdin, timeout, true)
}

fn run_inner(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Duration,
    keep_stdin_open: bool,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
        keep_stdin_open.then_some(input)
    });
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    (
        status.code(),
        out.join().expect("stdout thread"),
        err.join().expect("stderr thread"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_awaited_logged_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("p.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo starting >&2; echo ready on 42; exec sleep 600"]);
        let (proc, line) = spawn_until(cmd, "ready on", log.clone(), Duration::from_secs(10));
        assert_eq!(line, "ready on 42");
        let pid = proc.child.id();
        drop(proc);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the process outlived its Proc"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("starting") && text.contains("ready on 42"),
            "{text}"
        );
    }

    #[test]
    fn run_feeds_stdin_and_reports() {
        let (code, out, err) = run(
            Command::new("sh").args(["-c", "tr a-z A-Z; echo oops >&2; exit 3"]),
            b"hi",
            Duration::from_secs(10),
        );
        assert_eq!(
            (code, out, err),
            (Some(3), b"HI".to_vec(), b"oops\n".to_vec())
        );
    }

    #[test]
    #[should_panic(expected = "did not finish within")]
    fn run_has_a_deadline() {
        run(
            Command::new("sleep").arg("600"),
            b"",
            Duration::from_millis(100),
        );
    }
}
