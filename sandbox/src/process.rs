//! Local processes as container processes: spawned with pipes or in a PTY, wired to a pair of
//! bounded channels ([`Session`]) that the protocol front-ends (WebSocket, SPDY) and the attach
//! hub consume.
//!
//! Back-pressure: output is read in ≤32 KiB chunks (the size kubelets use, so one chunk is one
//! channel message) into a channel of a few chunks; a client that reads slowly stops the pumps,
//! the pipe fills and the process blocks, so memory stays bounded however much it writes.
//!
//! Ordering: [`Output::Exit`] is sent only after every output pump finished, so front-ends that
//! forward in order flush all output before the Status (kubernetes#124571 is this bug).

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use proto::resize::TerminalSize;
use proto::status::Status;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::guardian;

/// Largest output chunk: one channel message, as kubelet's `io.Copy` buffer.
pub(crate) const CHUNK: usize = 32 << 10;
/// Output chunks buffered between a process and its client.
const OUTPUT_DEPTH: usize = 4;
/// Input messages buffered between a client and a process.
const INPUT_DEPTH: usize = 16;
/// After the process exited, an output pipe that stays silent this long is abandoned: a
/// background grandchild may hold it open forever.
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// The terminal size before the client sends one (kubectl sends its own at once).
const DEFAULT_SIZE: TerminalSize = TerminalSize {
    width: 80,
    height: 24,
};

/// Client → process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Stdin(Bytes),
    /// stdin reached EOF (v5 CLOSE, SPDY FIN).
    CloseStdin,
    Resize(TerminalSize),
}

/// Process → client. `Exit` is always the last message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
    Exit(Status),
}

/// The two ends a front-end holds. Dropping `output` means "the client went away": the process
/// (and its process group) is killed.
#[derive(Debug)]
pub(crate) struct Session {
    pub input: mpsc::Sender<Input>,
    pub output: mpsc::Receiver<Output>,
    /// Kills the process group at once (for shutdown, which cannot wait for channels).
    pub killer: Option<Killer>,
}

/// Sends SIGKILL to a process group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Killer(rustix::process::Pid);

impl Killer {
    pub fn kill(self) {
        // ESRCH (already gone) is fine.
        let _ = rustix::process::kill_process_group(self.0, rustix::process::Signal::KILL);
    }
}

impl Session {
    /// A session that only reports `status` (a process that could not start).
    pub fn failed(status: Status) -> Self {
        let (input, _) = mpsc::channel(1);
        let (tx, output) = mpsc::channel(1);
        tx.try_send(Output::Exit(status))
            .expect("fresh channel has room");
        Self {
            input,
            output,
            killer: None,
        }
    }
}

/// What to run and how to connect it.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    /// The complete environment (the sandbox's own is not inherited).
    pub env: Vec<(String, String)>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    /// Ignored with `tty` (a terminal has one output).
    pub stderr: bool,
}

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("empty command")]
    EmptyCommand,
    #[error("allocating a pty")]
    Pty(#[source] pty_process::Error),
    #[error("starting {command:?}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

impl SpawnError {
    /// The Status a runtime reports for a failed start (kubectl prints its message, exits 1).
    pub fn to_status(&self) -> Status {
        let mut msg = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        Status::failure(
            500,
            "InternalError",
            format!("error executing command in container: {msg}"),
        )
    }
}

/// Kills a whole process group when dropped, so background children of an exec'd command do
/// not outlive it (and a killed sandbox task leaves nothing behind); a killed sandbox *process*
/// is covered by the [`guardian`].
#[derive(Debug)]
struct GroupGuard(Option<Killer>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(k) = self.0 {
            k.kill();
            guardian::release(k.0.as_raw_nonzero().get());
        }
    }
}

/// The exit code a shell would report: the code, or 128 + signal number.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => 255,
    }
}

/// Starts a background process nobody talks to (a port's server): its own process group,
/// watched by the guardian, stdout discarded, stderr shared with the sandbox's (its failures are
/// worth seeing), `stdin` as given (a listening socket, for the built-in servers). It runs until
/// it exits or [`Killer::kill`].
pub(crate) fn spawn_service(
    argv: &[String],
    env: &[(String, String)],
    workdir: &std::path::Path,
    stdin: Stdio,
) -> Result<Killer, SpawnError> {
    let (program, args) = argv.split_first().ok_or(SpawnError::EmptyCommand)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workdir)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SpawnError::Spawn {
            command: program.clone(),
            source,
        })?;
    let killer = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        .map(Killer)
        .ok_or_else(|| SpawnError::Spawn {
            command: program.clone(),
            source: std::io::Error::other("exited at once"),
        })?;
    guardian::watch(killer.0.as_raw_nonzero().get());
    let guard = GroupGuard(Some(killer));
    tokio::spawn(async move {
        let status = child.wait().await;
        tracing::debug!(?status, "service process ended");
        drop(guard);
    });
    Ok(killer)
}

/// Starts a process and its pumps.
pub(crate) fn spawn(spec: &ProcessSpec) -> Result<Session, SpawnError> {
    let (program, args) = spec.argv.split_first().ok_or(SpawnError::EmptyCommand)?;
    let spawn_err = |source| SpawnError::Spawn {
        command: program.clone(),
        source,
    };
    let (in_tx, in_rx) = mpsc::channel(INPUT_DEPTH);
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_DEPTH);
    let (exited_tx, exited_rx) = watch::channel(false);
    let mut pumps = Vec::new();

    let (child, stdin_task) = if spec.tty {
        let (pty, pts) = pty_process::open().map_err(SpawnError::Pty)?;
        pty.resize(pty_process::Size::new(
            DEFAULT_SIZE.height,
            DEFAULT_SIZE.width,
        ))
        .map_err(SpawnError::Pty)?;
        let child = pty_process::Command::new(program)
            .args(args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.workdir)
            .kill_on_drop(true)
            .spawn(pts)
            .map_err(|e| match e {
                pty_process::Error::Io(io) => spawn_err(io),
                other => SpawnError::Pty(other),
            })?;
        let (read, write) = pty.into_split();
        if spec.stdout {
            pumps.push(tokio::spawn(pump(
                read,
                Output::Stdout,
                out_tx.clone(),
                exited_rx.clone(),
            )));
        } else {
            pumps.push(tokio::spawn(discard(read, exited_rx.clone())));
        }
        (child, tokio::spawn(feed_pty(write, in_rx, spec.stdin)))
    } else {
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.workdir)
            .stdin(pipe(spec.stdin))
            .stdout(pipe(spec.stdout))
            .stderr(pipe(spec.stderr))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        if let Some(out) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(
                out,
                Output::Stdout,
                out_tx.clone(),
                exited_rx.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(
                err,
                Output::Stderr,
                out_tx.clone(),
                exited_rx.clone(),
            )));
        }
        let stdin = child.stdin.take();
        (child, tokio::spawn(feed_pipe(stdin, in_rx)))
    };
    // The child leads its own process group (setsid for a PTY, process_group(0) for pipes).
    let killer = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        .map(Killer);
    if let Some(k) = killer {
        // From here on the group dies with the sandbox, however the sandbox ends.
        guardian::watch(k.0.as_raw_nonzero().get());
    }
    let guard = GroupGuard(killer);
    tracing::debug!(pid = ?child.id(), tty = spec.tty, "process started");
    tokio::spawn(supervise(
        child, guard, pumps, stdin_task, out_tx, exited_tx,
    ));
    Ok(Session {
        input: in_tx,
        output: out_rx,
        killer,
    })
}

/// Waits for the process, then for its output, then reports the exit; kills the group if the
/// client goes away first.
async fn supervise(
    mut child: Child,
    guard: GroupGuard,
    pumps: Vec<JoinHandle<()>>,
    stdin_task: JoinHandle<()>,
    out: mpsc::Sender<Output>,
    exited: watch::Sender<bool>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = out.closed() => {
            drop(guard);
            let _ = child.wait().await;
            stdin_task.abort();
            tracing::debug!("client gone; process killed");
            return;
        }
    };
    exited.send_replace(true);
    for p in pumps {
        let _ = p.await;
    }
    stdin_task.abort();
    drop(guard);
    let status = match status {
        Ok(s) => Status::exit_code(exit_code(s)),
        Err(e) => Status::failure(
            500,
            "InternalError",
            format!("waiting for the process: {e}"),
        ),
    };
    tracing::debug!(status = %status.status, "process ended");
    let _ = out.send(Output::Exit(status)).await;
}

/// Resolves once the process has exited and this pipe stayed silent for [`DRAIN_IDLE`].
async fn idle_after_exit(exited: &mut watch::Receiver<bool>) {
    if exited.wait_for(|e| *e).await.is_err() {
        // The supervisor is gone without saying the process exited: stop reading.
        return;
    }
    tokio::time::sleep(DRAIN_IDLE).await;
}

/// Copies one output stream into the session channel until EOF (EIO for a PTY whose child is
/// gone), or until it idles after the process exited.
async fn pump<R: AsyncRead + Unpin>(
    mut r: R,
    wrap: fn(Bytes) -> Output,
    out: mpsc::Sender<Output>,
    mut exited: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = tokio::select! {
            n = r.read(&mut buf) => n,
            () = idle_after_exit(&mut exited) => return,
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Reads and drops a PTY's output when the client asked for no stdout (the child would block
/// on a full terminal otherwise).
async fn discard<R: AsyncRead + Unpin>(mut r: R, mut exited: watch::Receiver<bool>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        tokio::select! {
            n = r.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { return },
            () = idle_after_exit(&mut exited) => return,
        }
    }
}

async fn feed_pipe<W: AsyncWrite + Unpin>(mut stdin: Option<W>, mut input: mpsc::Receiver<Input>) {
    while let Some(msg) = input.recv().await {
        match msg {
            Input::Stdin(data) => {
                if let Some(w) = stdin.as_mut()
                    && (w.write_all(&data).await.is_err() || w.flush().await.is_err())
                {
                    // The process closed its stdin; keep draining the client's input.
                    stdin = None;
                }
            }
            Input::CloseStdin => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            Input::Resize(_) => {}
        }
    }
}

async fn feed_pty(
    mut pty: pty_process::OwnedWritePty,
    mut input: mpsc::Receiver<Input>,
    stdin: bool,
) {
    while let Some(msg) = input.recv().await {
        match msg {
            Input::Stdin(data) if stdin => {
                if pty.write_all(&data).await.is_err() {
                    return;
                }
            }
            Input::Resize(size) => {
                if let Err(e) = pty.resize(pty_process::Size::new(size.height, size.width)) {
                    tracing::debug!(error = %e, "resize failed");
                }
            }
            // A terminal cannot be half-closed; runtimes ignore stdin EOF with a TTY.
            Input::Stdin(_) | Input::CloseStdin => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], tty: bool) -> ProcessSpec {
        ProcessSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            workdir: "/".into(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            tty,
            stdin: true,
            stdout: true,
            stderr: true,
        }
    }

    async fn collect(mut s: Session) -> (Vec<u8>, Vec<u8>, Status) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match s.output.recv().await.expect("exit comes last") {
                Output::Stdout(b) => out.extend_from_slice(&b),
                Output::Stderr(b) => err.extend_from_slice(&b),
                Output::Exit(st) => return (out, err, st),
            }
        }
    }

    #[tokio::test]
    async fn pipes_keep_streams_apart_and_report_exit() {
        let s = spawn(&spec(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            false,
        ))
        .unwrap();
        let (out, err, st) = collect(s).await;
        assert_eq!(
            (out.as_slice(), err.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert_eq!(st, Status::exit_code(3));
    }

    #[tokio::test]
    async fn stdin_eof_reaches_the_process() {
        let s = spawn(&spec(&["cat"], false)).unwrap();
        s.input
            .send(Input::Stdin(Bytes::from_static(b"a\nb\n")))
            .await
            .unwrap();
        s.input.send(Input::CloseStdin).await.unwrap();
        let (out, _, st) = collect(s).await;
        assert_eq!(out, b"a\nb\n");
        assert_eq!(st, Status::success());
    }

    #[tokio::test]
    async fn signals_map_to_128_plus() {
        let s = spawn(&spec(&["sh", "-c", "kill -9 $$"], false)).unwrap();
        assert_eq!(collect(s).await.2, Status::exit_code(137));
    }

    #[tokio::test]
    async fn pty_merges_output_and_resizes() {
        let s = spawn(&spec(
            &["sh", "-c", "read x; stty size; echo err >&2"],
            true,
        ))
        .unwrap();
        s.input
            .send(Input::Resize(TerminalSize {
                width: 100,
                height: 30,
            }))
            .await
            .unwrap();
        s.input
            .send(Input::Stdin(Bytes::from_static(b"go\r")))
            .await
            .unwrap();
        let (out, err, st) = collect(s).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("30 100"), "{out:?}");
        assert!(out.contains("err"), "{out:?}");
        assert!(err.is_empty());
        assert_eq!(st, Status::success());
    }

    #[tokio::test]
    async fn missing_program_fails_to_spawn() {
        let e = spawn(&spec(&["/nonexistent/prog"], false)).unwrap_err();
        let st = e.to_status();
        assert_eq!(st.reason, "InternalError");
        assert!(st.message.contains("/nonexistent/prog"), "{}", st.message);
    }

    #[tokio::test]
    async fn background_children_do_not_hold_the_session_open() {
        let s = spawn(&spec(&["sh", "-c", "sleep 30 & echo started"], false)).unwrap();
        let (out, _, st) = collect(s).await;
        assert_eq!(out, b"started\n");
        assert_eq!(st, Status::success());
    }
}
