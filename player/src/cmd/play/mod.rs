//! `kubetape play`: the reviewer's terminal player.
//!
//! - [`at`]: `--at` values.
//! - [`tape`]: the session, its seek index (built in the background from open on), commands
//!   and a chunk cache.
//! - [`app`]: playback state and keys, independent of the screen so it can be tested.
//! - [`ui`]: drawing with ratatui, and the terminal set-up that is undone on every way out.
//! - [`forward`]: a port-forward session, shown as a timeline of its connections.

mod app;
mod at;
mod forward;
mod input;
mod tape;
mod ui;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;
use storage_schema::store::list_sessions;

use crate::config::Global;
use crate::resolve;

const ABOUT: &str = "Replay a recording in the terminal";

const LONG_ABOUT: &str = "\
Replay a recording in the terminal, at its recorded size, with its timing.

Opens at once and seeks instantly: the recording is read once, in the background from the
moment it opens (keyframes of the screen are kept, not the events; the status line says
`indexing N%` until it is done), and every jump restores the nearest keyframe and replays the
few events after it. Playback starts right away; a jump far beyond what is indexed yet waits
for it, keys still working. Works on sealed, interrupted and live sessions; `--follow` keeps playing a live session as
the gateway writes it. A damaged recording plays up to the first chunk that fails verification,
and says so.

Keys (also under `?`):
  space        play / pause              + / -        speed 0.25× … 64×
  .            one event (paused)        ← / →        −/+ 5 s
  ↓ / ↑        −/+ 1 min (PgDn / PgUp)   Home / End   start / end
  0 … 9        0 % … 90 % of the way     z            idle gaps > 2 s play as 2 s (on/off)
  n / p        next / previous command, where its line is whole on the screen (the status
               line names it)
  c            everything typed, by kind: $ command, > input to a program, ✗ aborted,
               * typed without echo (↑/↓, Enter jumps)
  /            search commands and output (hits highlighted); n / N next / previous match,
               Esc ends the search
  i            who, where, why (metadata)              q            quit
  A click on the timeline (the row above the status line, commands marked ┃) seeks there.
  When the terminal is smaller than the recording, the status line says CLIPPED.

A port-forward has no terminal: it shows as a timeline of its connections (port, when each
opened and closed, bytes each way up to the play head, how it ended, refusals included). It
opens at the end, with every connection's totals; space plays from the start; ←/→, Home/End
and +/- as above, ↑/↓ select a connection, Enter jumps to its opening.";

const AFTER_HELP: &str = "\
Examples:
  kubetape play 4f1c2a9b                  play from the start
  kubetape play --latest --follow         watch the newest session live
  kubetape play 4f1c2a9b --at 1m23s       open paused at 1 min 23 s
  kubetape play 4f1c2a9b --at '#3'        open on the third command, as it was typed";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// The session: its short id (as `ls` shows it), full id, or a unique prefix
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    session: Option<String>,

    /// Play the newest session in the store
    #[arg(long)]
    latest: bool,

    /// Open paused at this moment: an offset (83.5, 1m23s, 1:23, as `search` prints it) or
    /// `#N`, the moment the N-th command was entered
    #[arg(long, value_name = "OFFSET|#N")]
    at: Option<at::At>,

    /// Playback speed, 0.25 to 64
    #[arg(long, default_value = "1", value_parser = parse_speed)]
    speed: f64,

    /// Keep reading new chunks of a live session and play them as they arrive (opens at the
    /// live edge unless --at says otherwise; Home goes back to the start)
    #[arg(long)]
    follow: bool,

    #[command(flatten)]
    custody: crate::custody::ReadArgs,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim_end_matches(['x', '×']).parse::<f64>() {
        Ok(v) if (app::MIN_SPEED..=app::MAX_SPEED).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a speed from {} to {}",
            app::MIN_SPEED,
            app::MAX_SPEED
        )),
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let stdout = rustix::stdio::stdout();
    let stdin = rustix::stdio::stdin();
    if !rustix::termios::isatty(stdout) || !rustix::termios::isatty(stdin) {
        bail!(
            "`play` needs a terminal (stdin and stdout are not both one); to print a recording use `kubetape cat SESSION` \
             or `kubetape export SESSION --format text`"
        );
    }
    let store = global.open_store()?;
    let keyring = global.open_keyring()?;
    let id = match &args.session {
        Some(text) => resolve::session(&store, text).await?,
        None => newest(&store).await?,
    };
    crate::custody::log_read(&store, &keyring, id, "play", &args.custody).await?;
    let span = tracing::info_span!("play", session = %id);
    let _enter = span.enter();
    if let Some(timeline) = forward_timeline(&store, &keyring, id).await? {
        return play_forward(timeline, args.speed).await;
    }

    // The player is a blocking loop (terminal input, drawing); it reads chunks through this
    // runtime, whose thread keeps driving I/O while we wait for it.
    let rt = tokio::runtime::Handle::current();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_tui = stop.clone();
    let mut tui = tokio::task::spawn_blocking(move || {
        let mut tape = tape::Tape::open(rt, store, keyring, id, tape::Hold::from_env())?;
        let cfg = app::Config {
            at: args.at,
            speed: args.speed,
            follow: args.follow,
        };
        if !cfg.follow {
            tape.finish_commands();
        }
        if matches!(cfg.at, Some(at::At::Command(_))) && tape.extracting() {
            // `#N` counts commands that are only known once extracted from the whole session.
            eprint!("kubetape: extracting the commands…");
            tape.wait_indexed();
            eprint!("\r\x1b[K");
        }
        let app = app::App::new(tape, cfg)?;
        ui::run(app, &stop_tui)
    });
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let result = tokio::select! {
        r = &mut tui => r,
        _ = term.recv() => stopped(&stop, tui, 143).await,
        _ = hup.recv() => stopped(&stop, tui, 129).await,
    };
    match result {
        Ok(r) => r.map(|()| ExitCode::SUCCESS),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(e.into()),
    }
}

/// After SIGTERM or SIGHUP: the drawing loop sees `stop` within a frame and restores the
/// terminal. Should it be stuck in the terminal library (reading a terminal that is gone),
/// the process exits anyway, with the signal's exit status, rather than live on unseen.
async fn stopped<T>(
    stop: &AtomicBool,
    tui: tokio::task::JoinHandle<T>,
    status: i32,
) -> Result<T, tokio::task::JoinError> {
    stop.store(true, Ordering::SeqCst);
    match tokio::time::timeout(std::time::Duration::from_secs(2), tui).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("the player did not stop within 2 s of the signal; exiting");
            std::process::exit(status)
        }
    }
}

/// A port-forward session's connections (`None` for any other kind of session).
async fn forward_timeline(
    store: &storage_schema::store::Store,
    keyring: &storage_schema::Keyring,
    id: storage_schema::SessionId,
) -> anyhow::Result<Option<forward::View>> {
    let reader = storage_schema::store::SessionReader::open(store, keyring, id).await?;
    match reader.meta().class() {
        storage_schema::StreamClass::PortForward => {}
        // The terminal player decides (and refuses an audit stream).
        storage_schema::StreamClass::Session | storage_schema::StreamClass::AuditStream => {
            return Ok(None);
        }
    }
    let mut timeline = forward::Timeline::default();
    let read = reader.for_each_event(|e| timeline.push(e)).await;
    let mut view = forward::View::new(timeline, reader.meta(), 1.0);
    if let Err(e) = read {
        // Show what is intact, and say where it stops.
        view.title = format!("{}— DAMAGED after this: {e} ", view.title);
    }
    Ok(Some(view))
}

async fn play_forward(mut view: forward::View, speed: f64) -> anyhow::Result<ExitCode> {
    view.speed = speed;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_tui = stop.clone();
    let mut tui = tokio::task::spawn_blocking(move || forward::run(view, &stop_tui));
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let result = tokio::select! {
        r = &mut tui => r,
        _ = term.recv() => stopped(&stop, tui, 143).await,
        _ = hup.recv() => stopped(&stop, tui, 129).await,
    };
    match result {
        Ok(r) => r.map(|()| ExitCode::SUCCESS),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(e.into()),
    }
}

/// The newest session or port-forward (older stores keep audit streams among them).
async fn newest(store: &storage_schema::store::Store) -> anyhow::Result<storage_schema::SessionId> {
    use storage_schema::StreamClass;
    for id in list_sessions(store).await? {
        let summary = storage_schema::store::summarize(store, id).await?;
        match summary.class() {
            Some(StreamClass::Session | StreamClass::PortForward) => return Ok(id),
            Some(StreamClass::AuditStream) | None => {}
        }
    }
    bail!(
        "no sessions in {} yet; record one with `kubetape record`",
        store.url()
    )
}
