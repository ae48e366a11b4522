//! `kubetape cat`: one stream of a recording, all at once, as raw bytes.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use storage_schema::store::SessionReader;
use storage_schema::{Direction, EventKind, SessionKind, Stream};

use crate::config::Global;
use crate::resolve;
use crate::stdio::RawStdout;

const ABOUT: &str = "Print one stream of a recording";

const LONG_ABOUT: &str = "\
Print one stream of a recording to stdout, as the raw bytes recorded, without timing.

Every chunk is verified before it is decrypted and printed. The reading is logged in the
store first (who, when, --reason; `kubetape audit --reads` shows it); if it cannot be logged,
nothing is printed. If the recording is damaged, the
intact part before the damage is printed, then the error on stderr, and the exit status is 1.
Where the recording declares a gap (output its recorder could not store), a line on stderr says
what was lost, when and why; everything recorded is printed, and the exit status is 3.
Output from `kubetape record` is terminal output (with escape sequences and \\r\\n line ends):
view it with `less -R`, or just print it to a terminal.

For a port-forward, `--connection N` prints the bytes of its N-th connection (numbered from 1
in the order they opened, as `kubetape play` and `kubetape audit` number them): `--direction
in` what the client sent into the pod, `out` what came back. The bytes are there only when the
policy asked for them (`capture = \"full\"` on the rule that allowed the forward); otherwise
the recording holds each connection's ports, times, byte counts and outcome, and this says so.";

const AFTER_HELP: &str = "\
Examples:
  kubetape cat 4f1c2a9b
  kubetape cat 4f1c2a9b | less -R
  kubetape cat 4f1c2a9b --stream stdin     what was typed
  kubetape cat 4f1c2a9b --connection 2 --direction out | sha256sum";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StreamArg {
    Stdout,
    Stderr,
    Stdin,
}

impl From<StreamArg> for Stream {
    fn from(s: StreamArg) -> Self {
        match s {
            StreamArg::Stdout => Stream::Stdout,
            StreamArg::Stderr => Stream::Stderr,
            StreamArg::Stdin => Stream::Stdin,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// The session: its short id (as `ls` shows it), full id, or a unique prefix
    session: String,

    /// Which stream to print (terminal sessions record all output as stdout)
    #[arg(
        long,
        value_enum,
        default_value = "stdout",
        conflicts_with = "connection"
    )]
    stream: StreamArg,

    #[command(flatten)]
    custody: crate::custody::ReadArgs,

    /// A port-forward's connection to print (1 is the first that opened)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    connection: Option<u64>,

    /// With --connection: `in` (client to pod) or `out` (pod to client)
    #[arg(long, value_enum, default_value = "out", requires = "connection")]
    direction: DirectionArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DirectionArg {
    /// What the client sent into the pod
    In,
    /// What the pod sent back
    Out,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Self {
        match d {
            DirectionArg::In => Direction::ToPod,
            DirectionArg::Out => Direction::FromPod,
        }
    }
}

/// What is printed: a stream's data, or a connection's bytes one way.
#[derive(Debug, Clone, Copy)]
enum Wanted {
    Stream(Stream),
    Connection(u64, Direction),
}

impl Wanted {
    fn bytes<'e>(&self, kind: &'e EventKind) -> Option<&'e [u8]> {
        match (self, kind) {
            (Wanted::Stream(want), EventKind::Data { stream, bytes }) if stream == want => {
                Some(bytes)
            }
            (
                Wanted::Connection(n, dir),
                EventKind::PortForwardData {
                    conn,
                    direction,
                    bytes,
                },
            ) if conn == n && direction == dir => Some(bytes),
            _ => None,
        }
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let keyring = global.open_keyring()?;
    let id = resolve::session(&store, &args.session).await?;
    crate::custody::log_read(&store, &keyring, id, "cat", &args.custody).await?;
    let reader = SessionReader::open(&store, &keyring, id).await?;
    let wanted = match args.connection {
        Some(n) => Wanted::Connection(n, args.direction.into()),
        None => {
            crate::class::require_terminal(id, reader.meta())?;
            Wanted::Stream(args.stream.into())
        }
    };
    // What a connection request is checked against once the events are read.
    let mut connections = 0u64;
    let mut found = false;

    let mut out = BufWriter::with_capacity(64 << 10, RawStdout);
    // The reader's callback cannot stop it, so a write error is kept and later output dropped.
    let mut write_error: Option<io::Error> = None;
    let mut gaps = 0;
    let read = reader
        .for_each_event(|event| {
            if let EventKind::Gap { json } = &event.kind {
                gaps += 1;
                // Where it happened in the output: what came before it is printed first.
                let _ = out.flush();
                eprintln!("kubetape: session {id}: {}", gap_line(json));
                return;
            }
            if let EventKind::PortForwardOpen { conn, .. } = &event.kind {
                connections = connections.max(*conn);
                found |= matches!(wanted, Wanted::Connection(n, _) if n == *conn);
            }
            if let Some(bytes) = wanted.bytes(&event.kind)
                && write_error.is_none()
                && let Err(e) = out.write_all(bytes)
            {
                write_error = Some(e);
            }
        })
        .await;
    if write_error.is_none()
        && let Err(e) = out.flush()
    {
        write_error = Some(e);
    }
    match write_error {
        // The reader went away (`| head`): nothing to report, as for any Unix filter.
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Some(e) => return Err(anyhow::Error::new(e).context("cannot write to stdout")),
        None => {}
    }
    if let Err(e) = read {
        eprintln!("kubetape: session {id}: {e}");
        return Ok(ExitCode::FAILURE);
    }
    if let Wanted::Connection(n, _) = wanted {
        let capture = reader
            .meta()
            .port_forward
            .as_ref()
            .map(|f| f.capture.clone());
        let problem = if reader.meta().kind != SessionKind::PortForward {
            Some(format!(
                "is a {:?} session, not a port-forward: it has no connections",
                reader.meta().kind
            ))
        } else if !found {
            Some(format!("has no connection {n} (it recorded {connections})"))
        } else if capture.as_deref() != Some("full") {
            Some(format!(
                "recorded connection metadata only (capture = {:?}): ports, times, byte counts and outcomes, not the bytes; `kubetape play` shows them",
                capture.unwrap_or_default()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            eprintln!("kubetape: session {id} {problem}");
            return Ok(ExitCode::FAILURE);
        }
    }
    if gaps > 0 {
        return Ok(ExitCode::from(super::verify::GAPS));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line for a gap event (its JSON shown as is if it does not parse).
pub fn gap_line(json: &str) -> String {
    match storage_schema::Gap::parse(json) {
        Ok(gap) => format!("gap in the recording at {}", gap.describe()),
        Err(_) => format!("gap in the recording (unreadable details: {json})"),
    }
}
