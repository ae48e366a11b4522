//! `kubetape record`: run a command in a new pseudo-terminal, pass the user's terminal through to
//! it (as `script` does), and record everything into a session.
//!
//! ```text
//!  stdin ──thread──► [Input] ──input task──► pty master ──► command (pty slave)
//!                                  │                              │
//!                                  ▼ Stdin events                 ▼
//!                              Recorder ◄── Stdout events ── output task ──► our stdout
//! ```
//! The output task hands each read to the recorder, which only queues it (compression,
//! encryption and upload happen in the recorder's own tasks), then writes it to our stdout. The
//! recorder pushes back (by making `record_data` wait) only when the store falls behind, and then
//! the command slows down rather than anything going unrecorded. If the recorder fails, the
//! command is killed: a session is never allowed to continue unrecorded (fail closed). The
//! failure is noticed at the next output or keystroke, which is then neither shown nor typed.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::FutureExt;
use pty_process::{OwnedReadPty, OwnedWritePty};
use rustix::io::Errno;
use rustix::process::{Pid, Signal};
use rustix::termios::{OptionalActions, SpecialCodeIndex};
use storage_schema::store::Recorder;
use storage_schema::{
    EventKind, ExitInfo, FlushPolicy, Identity, SessionKind, SessionMeta, Stream, Target, TermSize,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Global;
use crate::errors;
use crate::stdio::RawStdout;
use crate::terminal::{self, RawMode};

/// The largest read from the pty: one read drains whatever the kernel has buffered, so a fast
/// producer costs one read, one write and one recorded event per 64 KiB rather than per line.
const READ_BUF: usize = 64 << 10;

/// After the command exits, output is drained until the pty reports end-of-output (EIO), which
/// is immediate unless a background process still holds the terminal; then until it has been
/// silent this long, and for no longer than `DRAIN_MAX` in all (a background job that keeps
/// writing must not keep the session open: the hangup that follows our exit ends it).
const DRAIN_IDLE: Duration = Duration::from_millis(250);
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// How long the command gets to exit after we pass on a hangup before it is killed.
const HANGUP_GRACE: Duration = Duration::from_secs(5);

/// Our own failure, as distinct from any exit code of the command (`env` and `timeout` use it).
const EXIT_RECORDING_FAILED: u8 = 125;

const ABOUT: &str = "Run a command in a new terminal and record the session";

const LONG_ABOUT: &str = "\
Run a command in a new pseudo-terminal and record the session, like script(1).

Your terminal is passed through (raw mode, window size and resizes); keystrokes, output, resizes
and the exit status are recorded, encrypted and signed, into a new session in the store. The
keyring is created on first use. The session id is printed on stderr when recording starts and
when it ends.

When stdin is not a terminal (a pipe, a file, CI), its bytes are still forwarded, the window size
comes from $COLUMNS and $LINES (default 80x24), and its end is passed on as the terminal's end-of-
file character (^D).

Exit status: the command's, or 128+N if it was killed by signal N; 125 if the recording failed
(the command is then stopped rather than left running unrecorded); 126/127 if the command could
not be run. SIGTERM or SIGHUP to kubetape hangs up the command and seals the recording.";

const AFTER_HELP: &str = "\
Examples:
  kubetape record                          record an interactive $SHELL
  kubetape record -- kubectl exec -it web -- sh
  kubetape record -q -- ./migrate.sh --dry-run
  echo 'uptime' | kubetape record -- sh    stdin need not be a terminal";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Do not announce the recording when it starts (the summary at the end is always printed)
    #[arg(short, long)]
    quiet: bool,

    /// Close a chunk once it holds this many KiB of output (the gateway's `[recording]
    /// max_chunk_kib`); a chunk is closed within a second of its first event anyway. Smaller
    /// chunks mean more objects and finer-grained verification.
    #[arg(long, value_name = "KIB", default_value_t = (FlushPolicy::default().max_bytes >> 10) as u32,
          value_parser = clap::value_parser!(u32).range(16..=65536))]
    chunk_kib: u32,

    /// The command to record and its arguments; put `--` before it if it has options of its own
    /// [default: $SHELL, else /bin/sh]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    // Our own failures get an exit status no command is likely to use, so a wrapper script can
    // tell "the recording failed" from "the command failed".
    match record(global, args).await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("kubetape: {}", errors::chain(&e));
            Ok(ExitCode::from(EXIT_RECORDING_FAILED))
        }
    }
}

async fn record(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let (keyring, _) = global.open_or_init_keyring()?;
    let command = if args.command.is_empty() {
        vec![
            std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into()),
        ]
    } else {
        args.command
    };
    let stdin = terminal::stdin();
    let tty = terminal::is_tty(stdin);
    let size = if tty {
        terminal::window_size(stdin).unwrap_or(terminal::DEFAULT_SIZE)
    } else {
        terminal::size_from_env()
    };

    let argv: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut meta = SessionMeta::new(SessionKind::Local, identity(), target(), argv.clone(), tty);
    meta.size = Some(size);
    // Commands are extracted as the session runs and sealed with it (`kubetape search`).
    let commands: Box<dyn storage_schema::commands::CommandObserver> =
        Box::new(transcript::CommandExtractor::new(&meta));
    let recorder = Recorder::start_observed(
        store.clone(),
        &keyring,
        meta,
        FlushPolicy {
            max_bytes: (args.chunk_kib as usize) << 10,
            ..FlushPolicy::default()
        },
        Some(commands),
    )
    .await
    .context("cannot start the recording, so the command was not run")?;
    drop(keyring);
    let id = recorder.session();
    if !args.quiet {
        eprintln!(
            "kubetape: recording session {id} into {}; it ends when `{}` exits",
            store.url(),
            argv.join(" ")
        );
    }

    // Before raw mode, so that from then on these signals end the session cleanly instead of
    // killing us with the terminal left raw.
    let signals = Signals::listen(tty).context("cannot install signal handlers")?;
    let raw = if tty {
        Some(RawMode::enter(stdin).context("cannot put the terminal in raw mode")?)
    } else {
        None
    };
    let (pty, pts) = pty_process::open().context("cannot allocate a pseudo-terminal")?;
    // A second handle on the master for resizing, signalling and termios while the two halves
    // are busy in their tasks.
    let control = pty
        .as_fd()
        .try_clone_to_owned()
        .context("cannot duplicate the pty")?;
    if let Some(raw) = &raw {
        rustix::termios::tcsetattr(&control, OptionalActions::Now, raw.saved())
            .context("cannot configure the pty")?;
    }
    pty.resize(pty_process::Size::new(size.rows, size.cols))
        .context("cannot size the pty")?;
    recorder
        .record(EventKind::Resize {
            cols: size.cols,
            rows: size.rows,
        })
        .await?;

    let spawned = pty_process::Command::new(&command[0])
        .args(&command[1..])
        .env("KUBETAPE_SESSION", id.to_string())
        // Only matters if we fail between here and waiting for it: never leave it running.
        .kill_on_drop(true)
        .spawn(pts);
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            drop(raw);
            let not_found = matches!(&e, pty_process::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound);
            let code = if not_found { 127 } else { 126 };
            let message = format!("cannot run `{}`: {e}", argv[0]);
            recorder
                .record(EventKind::Exit {
                    code,
                    message: message.clone(),
                })
                .await?;
            recorder
                .finish(Some(ExitInfo {
                    code,
                    message: message.clone(),
                }))
                .await?;
            eprintln!("kubetape: {message}");
            eprintln!("kubetape: session {id} recorded (0 bytes, sealed)");
            return Ok(ExitCode::from(code as u8));
        }
    };

    let recorder = Arc::new(recorder);
    let (read_half, write_half) = pty.into_split();
    let (exited_tx, exited_rx) = oneshot::channel();
    let output = tokio::spawn(pump_output(read_half, Arc::clone(&recorder), exited_rx));
    let (input_tx, input_rx) = mpsc::channel(16);
    spawn_stdin_reader(input_tx)?;
    let eof_char = eof_char(&control);
    let input = tokio::spawn(forward_input(
        input_rx,
        write_half,
        Arc::clone(&recorder),
        eof_char,
    ));

    let session = Supervised {
        child,
        control,
        signals,
        recorder: Arc::clone(&recorder),
        output,
        input,
        exited: Some(exited_tx),
    };
    let (status, failure) = session.supervise().await?;
    drop(raw);

    let recorder = Arc::into_inner(recorder)
        .ok_or_else(|| anyhow!("internal: recorder still shared after the session"))?;
    if let Some(failure) = failure {
        // The recorder's own error is the cause; what the pumps saw is usually just "stopped".
        let cause = match recorder.finish(None).await {
            Err(e) => anyhow::Error::from(e),
            Ok(_) => failure,
        };
        eprintln!(
            "kubetape: session {id}: recording failed, so the command was stopped: {}",
            errors::chain(&cause)
        );
        return Ok(ExitCode::from(EXIT_RECORDING_FAILED));
    }
    let ended = Ended::from(status);
    recorder
        .record(EventKind::Exit {
            code: ended.code,
            message: ended.message.clone(),
        })
        .await?;
    let seal = recorder
        .finish(Some(ExitInfo {
            code: ended.code,
            message: ended.message,
        }))
        .await
        .with_context(|| {
            format!("session {id}: the command ended but the recording could not be sealed")
        })?;
    eprintln!(
        "kubetape: session {id} recorded ({} bytes, sealed)",
        seal.bytes.stdout + seal.bytes.stderr
    );
    Ok(ExitCode::from(ended.exit_code))
}

/// The running command and the tasks relaying its terminal.
struct Supervised {
    child: tokio::process::Child,
    control: OwnedFd,
    signals: Signals,
    recorder: Arc<Recorder>,
    output: JoinHandle<anyhow::Result<()>>,
    input: JoinHandle<anyhow::Result<()>>,
    exited: Option<oneshot::Sender<()>>,
}

impl Supervised {
    /// Waits for the command to exit while relaying resizes and signals, then drains its
    /// output. Returns its exit status and, if recording failed on the way, why.
    async fn supervise(mut self) -> anyhow::Result<(ExitStatus, Option<anyhow::Error>)> {
        let pid = self
            .child
            .id()
            .and_then(|id| Pid::from_raw(id as i32))
            .context("the command exited before it started")?;
        let mut kill_at: Option<Instant> = None;
        let (mut output_done, mut input_done) = (false, false);
        let mut failure: Option<anyhow::Error> = None;

        let status = loop {
            tokio::select! {
                status = self.child.wait() => break status.context("cannot wait for the command")?,
                Some(()) = recv(&mut self.signals.winch) => {
                    if let Some(size) = terminal::window_size(terminal::stdin()) {
                        let _ = rustix::termios::tcsetwinsize(&self.control, winsize(size));
                        if let Err(e) = self.recorder.record(EventKind::Resize { cols: size.cols, rows: size.rows }).await {
                            failure.get_or_insert(e.into());
                            signal_session(pid, &self.control, Signal::KILL);
                        }
                    }
                }
                Some(()) = self.signals.term.recv() => hang_up(pid, &self.control, &mut kill_at),
                Some(()) = self.signals.hup.recv() => hang_up(pid, &self.control, &mut kill_at),
                Some(()) = self.signals.int.recv() => {
                    // Only reachable when stdin is not a raw terminal (else ^C is a byte): pass
                    // it on as the terminal would, to the foreground job.
                    let fg = rustix::termios::tcgetpgrp(&self.control).unwrap_or(pid);
                    let _ = rustix::process::kill_process_group(fg, Signal::INT);
                }
                () = sleep_until(kill_at) => {
                    signal_session(pid, &self.control, Signal::KILL);
                    kill_at = None;
                }
                joined = &mut self.output, if !output_done => {
                    output_done = true;
                    if let Err(e) = flatten(joined) {
                        failure.get_or_insert(e);
                        signal_session(pid, &self.control, Signal::KILL);
                    }
                }
                joined = &mut self.input, if !input_done => {
                    input_done = true;
                    if let Err(e) = flatten(joined) {
                        failure.get_or_insert(e);
                        signal_session(pid, &self.control, Signal::KILL);
                    }
                }
            }
        };

        if let Some(exited) = self.exited.take() {
            let _ = exited.send(());
        }
        if !output_done && let Err(e) = flatten((&mut self.output).await) {
            failure.get_or_insert(e);
        }
        if !input_done {
            // Still waiting for stdin, which will not come now.
            self.input.abort();
            if let Err(e) = flatten((&mut self.input).await) {
                failure.get_or_insert(e);
            }
        }
        Ok((status, failure))
    }
}

/// The signals `record` handles itself rather than dying of them.
struct Signals {
    /// Only with a terminal to take the size from.
    winch: Option<SignalStream>,
    term: SignalStream,
    hup: SignalStream,
    int: SignalStream,
}

impl Signals {
    fn listen(tty: bool) -> std::io::Result<Self> {
        Ok(Self {
            winch: if tty {
                Some(signal(SignalKind::window_change())?)
            } else {
                None
            },
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Passes a hangup on to the command (as closing its terminal would) and gives it
/// [`HANGUP_GRACE`] to exit; a second request kills it at once.
fn hang_up(pid: Pid, control: &OwnedFd, kill_at: &mut Option<Instant>) {
    if kill_at.is_some() {
        signal_session(pid, control, Signal::KILL);
        return;
    }
    signal_session(pid, control, Signal::HUP);
    signal_session(pid, control, Signal::CONT);
    *kill_at = Some(Instant::now() + HANGUP_GRACE);
}

/// Joins a task, treating a panic as a failure; cancellation is how the input task is stopped.
fn flatten(joined: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match joined {
        Ok(result) => result,
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(anyhow!("relay task failed: {e}")),
    }
}

/// Signals the command's process group and the terminal's foreground job (a shell runs each
/// job in a group of its own, which a signal to the shell's group would miss).
fn signal_session(pid: Pid, control: &OwnedFd, sig: Signal) {
    let _ = rustix::process::kill_process_group(pid, sig);
    if let Ok(fg) = rustix::termios::tcgetpgrp(control)
        && fg != pid
    {
        let _ = rustix::process::kill_process_group(fg, sig);
    }
}

async fn recv(stream: &mut Option<SignalStream>) -> Option<()> {
    match stream {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn winsize(size: TermSize) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Copies the command's output to our stdout and into the recording until the pty reports
/// end-of-output, or the command has exited and its output has gone quiet.
async fn pump_output(
    mut pty: OwnedReadPty,
    recorder: Arc<Recorder>,
    mut exited: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    let mut drain_until: Option<Instant> = None;
    let mut stdout_open = true;
    loop {
        let read = if let Some(until) = drain_until {
            let idle = DRAIN_IDLE.min(until.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(idle, pty.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => return Ok(()),
            }
        } else {
            tokio::select! {
                biased;
                read = pty.read(&mut buf) => read,
                _ = &mut exited => {
                    drain_until = Some(Instant::now() + DRAIN_MAX);
                    continue;
                }
            }
        };
        let Some(mut filled) = output_read(read)? else {
            return Ok(());
        };
        // A pty hands out at most 4 KiB per read. Take whatever else is already waiting before
        // passing it on, so that a flood costs one write and one recorded event per 64 KiB, not
        // per 4 KiB; this never waits, so it delays nothing.
        let mut ended = false;
        let mut failed = None;
        while filled < buf.len() && !ended {
            match pty.read(&mut buf[filled..]).now_or_never() {
                None => break,
                Some(read) => match output_read(read) {
                    Ok(Some(n)) => filled += n,
                    Ok(None) => ended = true,
                    Err(e) => {
                        // Pass on what was read first; fail after.
                        failed = Some(e);
                        ended = true;
                    }
                },
            }
        }
        let data = &buf[..filled];
        // Recorded before it is shown, so that nothing is shown that the recorder refused. This
        // costs the terminal nothing unless the store is behind (then it waits, by design).
        recorder.record_data(Stream::Stdout, data).await?;
        if stdout_open && let Err(e) = RawStdout.put(data) {
            // Keep recording: the session is still going on, only our view of it is gone.
            tracing::warn!("stdout: {e}; still recording, no longer displaying");
            stdout_open = false;
        }
        if ended {
            return failed.map_or(Ok(()), Err);
        }
        // Everything shares one thread and the write above may have blocked for a while (a slow
        // terminal): let keystrokes through before the next read, so that ^C is not stuck
        // behind a flood of output.
        tokio::task::yield_now().await;
    }
}

/// The bytes a read of the pty returned, or `None` at the end of the command's output.
fn output_read(read: std::io::Result<usize>) -> anyhow::Result<Option<usize>> {
    match read {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        // Linux reports the last close of the terminal's other side this way.
        Err(e) if e.raw_os_error() == Some(Errno::IO.raw_os_error()) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(Some(0)),
        Err(e) => Err(anyhow::Error::new(e).context("cannot read the command's output")),
    }
}

enum Input {
    Bytes(Vec<u8>),
    Eof,
}

/// Reads stdin on a thread of its own: a blocking read is the only way to wait on a terminal
/// without making it non-blocking, which would change it for the shell we share it with too.
fn spawn_stdin_reader(tx: mpsc::Sender<Input>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let fd = terminal::stdin();
            let mut buf = vec![0u8; 16 << 10];
            loop {
                let msg = match rustix::io::read(fd, &mut buf) {
                    Ok(0) => Input::Eof,
                    // Keystrokes are a few bytes: queue exactly what was read.
                    Ok(n) => Input::Bytes(buf[..n].to_vec()),
                    Err(Errno::INTR) => continue,
                    Err(Errno::AGAIN) => {
                        let _ = rustix::event::poll(
                            &mut [rustix::event::PollFd::new(
                                &fd,
                                rustix::event::PollFlags::IN,
                            )],
                            None,
                        );
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("stdin: {e}; treating it as end of input");
                        Input::Eof
                    }
                };
                let eof = matches!(msg, Input::Eof);
                if tx.blocking_send(msg).is_err() || eof {
                    return;
                }
            }
        })
        .context("cannot start the stdin reader")?;
    Ok(())
}

/// Records stdin and types it into the pty. At end of input, sends the terminal's end-of-file
/// character rather than closing the pty, which would hang the command up: twice when the last
/// line is unfinished, since the first only ends that line.
async fn forward_input(
    mut rx: mpsc::Receiver<Input>,
    mut pty: OwnedWritePty,
    recorder: Arc<Recorder>,
    eof_char: u8,
) -> anyhow::Result<()> {
    let mut line_open = false;
    while let Some(msg) = rx.recv().await {
        match msg {
            Input::Bytes(bytes) => {
                recorder.record_data(Stream::Stdin, &bytes).await?;
                line_open = bytes.last().is_some_and(|&b| b != b'\n' && b != b'\r');
                if let Err(e) = pty.write_all(&bytes).await {
                    tracing::debug!("pty input: {e}; the command no longer reads its terminal");
                    return Ok(());
                }
            }
            Input::Eof => {
                recorder
                    .record(EventKind::StreamClose {
                        stream: Stream::Stdin,
                    })
                    .await?;
                let eof: &[u8] = if line_open {
                    &[eof_char, eof_char]
                } else {
                    &[eof_char]
                };
                if let Err(e) = pty.write_all(eof).await {
                    tracing::debug!("pty input: {e}");
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The pty's end-of-file character (^D unless the terminal settings we copied say otherwise).
fn eof_char(control: &OwnedFd) -> u8 {
    rustix::termios::tcgetattr(control)
        .ok()
        .map(|t| t.special_codes[SpecialCodeIndex::VEOF])
        .filter(|&c| c != 0)
        .unwrap_or(0x04)
}

/// How the command ended, for the recording and for our exit status.
struct Ended {
    /// As the format records it: the exit code, or minus the signal number.
    code: i32,
    message: String,
    exit_code: u8,
}

impl From<ExitStatus> for Ended {
    fn from(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Ended {
                code,
                message: String::new(),
                exit_code: code as u8,
            },
            (None, Some(sig)) => Ended {
                code: -sig,
                message: format!(
                    "killed by signal {sig}{}",
                    signal_name(sig)
                        .map(|n| format!(" (SIG{n})"))
                        .unwrap_or_default()
                ),
                exit_code: (128 + sig) as u8,
            },
            (None, None) => Ended {
                code: -1,
                message: format!("ended abnormally: {status}"),
                exit_code: EXIT_RECORDING_FAILED,
            },
        }
    }
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        8 => "FPE",
        9 => "KILL",
        11 => "SEGV",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return None,
    })
}

fn identity() -> Identity {
    let uid = rustix::process::getuid().as_raw();
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid:{uid}"));
    let mut identity = Identity {
        user,
        ..Identity::default()
    };
    identity.claims.insert("uid".into(), uid.to_string());
    identity
}

fn target() -> Target {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Target {
        host: Some(host),
        ..Target::default()
    }
}
