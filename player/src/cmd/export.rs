//! `kubetape export`: a recording as asciicast (v2, v3) or plain text.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use storage_schema::store::SessionReader;

use super::render::{Format, export};
use crate::config::Global;
use crate::resolve;
use crate::stdio::RawStdout;

const ABOUT: &str = "Export a recording as asciicast (asciinema) or plain text";

const LONG_ABOUT: &str = "\
Export a recording as asciicast v2 or v3 (play it with `asciinema play`, or `asciinema cat` it)
or as plain text (escape sequences removed, line edits applied, full-screen programs noted).

The export is logged in the store first (who, when, --reason; `kubetape audit --reads`).
Every chunk is verified before it is decrypted; a damaged recording is not exported (the
output file is only created once the whole session has been read). A gap the recording
declares (output its recorder could not store) becomes a marker in an asciicast and a line in
text, is reported on stderr, and the exit status is 3. Exports hold what the
session showed — output, resizes, markers and, in asciicast v3, the exit status — never the
keystrokes: passwords typed at a no-echo prompt stay in the audit store. A port-forward has no
terminal and is not exported: `kubetape play` shows its connections and `kubetape cat
--connection N` prints one's captured bytes.

--bundle FILE writes an evidence bundle instead: a tar file with the selected recordings exactly
as stored (every object of each session under `store/`, so the extracted directory is itself a
store `kubetape verify` reads), port-forwards included; the gateways' audit streams holding
records about them or their JIT grants (whole, so they verify) and the grants' request and
decision entries; the public keys that signed them (`keys/ID.pub`, and `.pem` for openssl);
readable renderings (`renderings/SHORT.txt` and `.cast` of each terminal session, and
`renderings/audit-records.jsonl`; on by default, --no-render leaves them out); a README for the
auditor; and `manifest.json` (what was selected and how, by whom, when, on which host, with
which kubetape, and every member's size and SHA-256), signed by the keyring's current signing
key (`manifest.sig`), with a coreutils `SHA256SUMS`. Selection options combine (a session must
match all given); at least one is needed. Every session and audit stream put in a bundle is
logged in the reads log first (action `bundle`). The file is written beside FILE and renamed
into place when complete. A recording that cannot be read in full is still bundled exactly as
stored (`verify --bundle` then names its damage), without a rendering, and the exit status is 1.
A crypto-shredded session is bundled with its shred record and no rendering.";

const AFTER_HELP: &str = "\
Examples:
  kubetape export 4f1c2a9b -o session.cast              asciicast v2, for asciinema 2.x
  kubetape export 4f1c2a9b --format asciicast-v3 -o s.cast
  kubetape export 4f1c2a9b --format text | less

Evidence bundles (one tar file for an auditor; `kubetape verify --bundle` checks it offline):
  kubetape export --bundle case-123.tar --jit 0193a7c4-…    sessions opened under a JIT grant
  kubetape export --bundle case-123.tar --jit-reason INC-7  … under grants whose reason says so
  kubetape export --bundle case-123.tar --user alice@example.com -n prod --since 7d
  kubetape export --bundle case-123.tar --search 'DROP TABLE' --reason 'case 123'
  kubetape export --bundle case-123.tar 4f1c2a9b 9d2e01aa   named sessions";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// The session: its short id (as `ls` shows it), full id, or a unique prefix. With
    /// --bundle: any number of sessions (or none, with other selection options)
    #[arg(value_name = "SESSION")]
    sessions: Vec<String>,

    /// Write an evidence bundle (a tar file: recordings exactly as stored, their audit records,
    /// public keys, readable renderings, a signed manifest) of the selected sessions instead
    #[arg(long, value_name = "FILE", conflicts_with_all = ["format", "output"])]
    bundle: Option<PathBuf>,

    #[command(flatten)]
    select: super::bundle::Select,

    /// Output format
    #[arg(long, short = 'f', value_enum, default_value = "asciicast-v2")]
    format: Format,

    /// Output file (`-` or absent: stdout). Written to a temporary file beside it and renamed
    /// into place when complete, so a failed export leaves nothing behind.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    custody: crate::custody::ReadArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.bundle {
        return super::bundle::run(global, path, args.sessions, args.select, &args.custody).await;
    }
    args.select.refuse_without_bundle()?;
    let [session] = args.sessions.as_slice() else {
        anyhow::bail!(
            "export takes exactly one session (got {}); `--bundle FILE` exports several into one evidence bundle",
            args.sessions.len()
        );
    };
    let store = global.open_store()?;
    let keyring = global.open_keyring()?;
    let id = resolve::session(&store, session).await?;
    crate::custody::log_read(&store, &keyring, id, "export", &args.custody).await?;
    let reader = SessionReader::open(&store, &keyring, id).await?;
    crate::class::require_terminal(id, reader.meta())?;
    match args.output.as_deref() {
        None => export(&reader, args.format, BufWriter::new(RawStdout)).await,
        Some(p) if p == Path::new("-") => {
            export(&reader, args.format, BufWriter::new(RawStdout)).await
        }
        Some(path) => {
            let tmp = temp_path(path);
            let file =
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            let result = export(&reader, args.format, BufWriter::new(file)).await;
            match &result {
                Ok(code)
                    if *code == ExitCode::SUCCESS
                        || *code == ExitCode::from(super::verify::GAPS) =>
                {
                    std::fs::rename(&tmp, path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    let kind = match args.format {
                        Format::AsciicastV2 => "asciicast v2",
                        Format::AsciicastV3 => "asciicast v3",
                        Format::Text => "text",
                    };
                    eprintln!(
                        "kubetape: session {id} exported as {kind} to {}",
                        path.display()
                    );
                }
                _ => {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            result
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.kubetape-{}.tmp", std::process::id()))
}
