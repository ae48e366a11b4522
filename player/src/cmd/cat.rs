//! `kubetape cat`: one stream of a recording, all at once, as raw bytes.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use storage_schema::store::SessionReader;
use storage_schema::{EventKind, Stream};

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
Output from `kubetape record` is terminal output (with escape sequences and \\r\\n line ends):
view it with `less -R`, or just print it to a terminal.";

const AFTER_HELP: &str = "\
Examples:
  kubetape cat 4f1c2a9b
  kubetape cat 4f1c2a9b | less -R
  kubetape cat 4f1c2a9b --stream stdin     what was typed";

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
    #[arg(long, value_enum, default_value = "stdout")]
    stream: StreamArg,

    #[command(flatten)]
    custody: crate::custody::ReadArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let keyring = global.open_keyring()?;
    let id = resolve::session(&store, &args.session).await?;
    crate::custody::log_read(&store, &keyring, id, "cat", &args.custody).await?;
    let reader = SessionReader::open(&store, &keyring, id).await?;
    crate::class::require_terminal(id, reader.meta())?;
    let wanted = Stream::from(args.stream);

    let mut out = BufWriter::with_capacity(64 << 10, RawStdout);
    // The reader's callback cannot stop it, so a write error is kept and later output dropped.
    let mut write_error: Option<io::Error> = None;
    let read = reader
        .for_each_event(|event| {
            if let EventKind::Data { stream, bytes } = &event.kind
                && *stream == wanted
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
    Ok(ExitCode::SUCCESS)
}
