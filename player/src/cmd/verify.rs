//! `kubetape verify`: establishes whether recordings are intact, and if not, exactly what is
//! damaged. The exit status is the verdict, so scripts and CI can rely on it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use storage_schema::layout::StreamDir;
use storage_schema::store::{KeySource, Store, list_streams, verify_stream};
use storage_schema::verify::{Report, SessionState};
use storage_schema::{PublicKey, SessionMeta, StreamClass};

use crate::config::Global;
use crate::stdio::outln;
use crate::{errors, format, resolve};

const ABOUT: &str = "Check that recordings are intact and authentic";

const LONG_ABOUT: &str = "\
Check that recordings are intact and authentic: every chunk present, in order, signed, linked to
the one before it, and (with the keyring) decrypting; and the seal, if there is one, matching the
chain.

Prints one line per session: `OK` or `FAIL`, then, for a damaged session, one indented line per
problem found, naming the chunk. An open session (no seal) is intact if what it holds is; `kubetape
seal` seals one whose recorder died.

A crypto-shredded session (`kubetape shred`) has no data key any more: it is verified as with
--pubkey (signatures, chain, seal), and its line says so: `shredded on … by … because …`.

With --pubkey, only the signing public key is used (what an auditor is given, from `kubetape keys
export-pub`): signatures, the chain and the seal are checked, but contents are not decrypted.

A session whose recorder had to give up on part of it (its store and its local spool both
failed) is intact if nothing else is wrong, but not complete: it is reported as `GAP`, with one
line per gap saying what was lost, when, and why. The recorder declared the gap in the session
and in its signed seal; the chunks it gave up on are not reported missing.

With --bundle FILE, an evidence bundle (`kubetape export --bundle`) is checked offline, with no
store and no keyring: the archive is read defensively (only regular files with safe, distinct
paths), the manifest's signature is checked (with --pubkey, against the key you trust; without,
against the key in the bundle, whose fingerprint is printed as self-asserted), every member's
size and SHA-256 against the manifest, and SHA256SUMS; a member that is missing, extra or altered
is named. Then every recording and audit stream in it is verified as above from the bundle's own
copy of the store, with the bundle's public keys (vouched for by the signed manifest). One line
per member and per stream, OK or FAIL, and a summary.

Exit status: 0 if every session checked is intact and complete; 1 if any is damaged, or could not
be checked (missing session, missing key, store error); 3 if none is damaged but some have
declared gaps.";

const AFTER_HELP: &str = "\
Examples:
  kubetape verify 4f1c2a9b
  kubetape verify --all
  kubetape keys export-pub --out signing.pub     (on the recording host)
  kubetape verify --all --pubkey signing.pub     (anywhere, no keyring)
  kubetape verify --bundle case-123.tar --pubkey signing.pub
                                                 an evidence bundle, offline";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Sessions to check: short ids (as `ls` shows them), full ids or unique prefixes
    #[arg(
        value_name = "SESSION",
        required_unless_present_any = ["all", "bundle"],
        conflicts_with_all = ["all", "bundle"]
    )]
    sessions: Vec<String>,

    /// Check every session in the store
    #[arg(long, conflicts_with = "bundle")]
    all: bool,

    /// Verify with this signing public key instead of the keyring (no decryption). With
    /// --bundle: the key you trust to have signed the bundle's manifest
    #[arg(long, value_name = "FILE")]
    pubkey: Option<PathBuf>,

    /// Check an evidence bundle (`kubetape export --bundle`) offline: no store, no keyring
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
}

impl Args {
    /// With --bundle: the bundle and the pinned key. The command line dispatches those to
    /// `bundle_verify`, which uses this module's report lines (and so cannot be called from it).
    pub fn bundle(&self) -> Option<(&std::path::Path, Option<&std::path::Path>)> {
        self.bundle
            .as_deref()
            .map(|bundle| (bundle, self.pubkey.as_deref()))
    }
}

/// Checks recordings in the store (`--bundle` goes to `bundle_verify` instead; see [`Args::bundle`]).
pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let public;
    let keyring;
    let keys = match &args.pubkey {
        Some(path) => {
            public = PublicKey::read_file(path).with_context(|| {
                format!("cannot use {} as a signing public key", path.display())
            })?;
            eprintln!(
                "kubetape: verifying with public key {} only: signatures, chain and seal are checked; contents were \
                 not decrypted",
                public.id()
            );
            KeySource::PublicKey(&public)
        }
        None => {
            keyring = global.open_keyring()?;
            KeySource::Keyring(&keyring)
        }
    };

    // Shred records, read once: a shredded session's line says when, by whom and why.
    let (shredded, bad_records) = storage_schema::store::shred::all(&store).await?;
    for bad in bad_records {
        eprintln!("kubetape: an unreadable shred record: {bad}");
    }
    let shredded_note = |id: &storage_schema::SessionId| {
        shredded
            .get(id)
            .map(|r| format!(" [{}]", r.describe()))
            .unwrap_or_default()
    };
    let mut tally = Tally::default();
    let mut dirs = Vec::new();
    if args.all {
        // Every stream of every class: sessions and the gateways' audit streams.
        dirs = list_streams(&store).await?;
        if dirs.is_empty() {
            eprintln!("kubetape: no sessions in {} to verify", store.url());
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        for text in &args.sessions {
            match resolve::stream(&store, text).await {
                Ok(dir) => dirs.push(dir),
                Err(e) => {
                    outln!("ERR  {text}  cannot verify: {}", errors::chain(&e))?;
                    tally.errors += 1;
                }
            }
        }
    }

    for dir in dirs {
        let id = dir.id();
        match verify_stream(&store, dir, keys).await {
            Ok(report) if report.complete() => {
                outln!(
                    "OK   {id}  {}{}",
                    describe(&store, dir, &report).await,
                    shredded_note(&id)
                )?;
                tally.ok += 1;
            }
            Ok(report) if report.intact() => {
                outln!(
                    "GAP  {id}  {}{}",
                    describe(&store, dir, &report).await,
                    shredded_note(&id)
                )?;
                for gap in &report.gaps {
                    outln!("     - gap {}", gap.describe())?;
                }
                tally.gaps += 1;
            }
            Ok(report) => {
                outln!(
                    "FAIL {id}  {}{}",
                    describe(&store, dir, &report).await,
                    shredded_note(&id)
                )?;
                for damage in &report.damage {
                    outln!("     - {damage}")?;
                }
                tally.damaged += 1;
            }
            Err(e) => {
                outln!("ERR  {id}  cannot verify: {e}")?;
                tally.errors += 1;
            }
        }
    }
    let checked = tally.ok + tally.gaps + tally.damaged + tally.errors;
    if checked > 1 {
        eprintln!(
            "kubetape: {checked} sessions: {} intact, {} intact with declared gaps, {} damaged, {} could not be verified",
            tally.ok, tally.gaps, tally.damaged, tally.errors
        );
    }
    Ok(if tally.damaged + tally.errors > 0 {
        ExitCode::FAILURE
    } else if tally.gaps > 0 {
        ExitCode::from(GAPS)
    } else {
        ExitCode::SUCCESS
    })
}

/// The verdict of a check, as the first word of `verify`'s line (`report` shows the same): OK
/// (intact and complete), GAP (intact, with declared gaps) or FAIL (damaged).
pub(crate) fn verdict(report: &Report) -> player::report::model::Verdict {
    use player::report::model::Verdict;
    if report.complete() {
        Verdict::Ok
    } else if report.intact() {
        Verdict::Gap
    } else {
        Verdict::Fail
    }
}

/// Exit status when nothing is damaged but some recording declares a gap (also `cat`'s and
/// `export`'s).
pub const GAPS: u8 = 3;

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    gaps: usize,
    damaged: usize,
    errors: usize,
}

/// `sealed, 12 chunks, 3.4 MB stdout, exit 0, signed by <key>` and the like. The byte count is
/// what was decrypted when the keyring was used, else what the (verified) seal states. Of a
/// damaged session only what was established is said: the verifier may have stopped early (a
/// wrong public key), so "open" or a chunk count of 0 would mislead.
pub(crate) async fn describe(store: &Store, dir: StreamDir, report: &Report) -> String {
    let intact = report.intact();
    let (state, seal) = match &report.state {
        SessionState::Sealed(p) => (Some("sealed"), Some(p)),
        SessionState::Interrupted(p) => (
            Some("interrupted (sealed after its recorder died)"),
            Some(p),
        ),
        SessionState::Open => (intact.then_some("open"), None),
    };
    let mut parts: Vec<String> = state.map(String::from).into_iter().collect();
    if intact || report.chunks > 0 {
        let plural = if report.chunks == 1 { "" } else { "s" };
        parts.push(format!("{} chunk{plural}", report.chunks));
    }
    let mut damaged: Vec<u64> = report.damage.iter().filter_map(|d| d.seq()).collect();
    damaged.sort_unstable();
    damaged.dedup();
    if !damaged.is_empty() {
        parts.push(format!("{} damaged", damaged.len()));
    }
    // Of a damaged session only part was decrypted, and the seal's count is a claim: no total.
    let stdout = report
        .totals
        .map(|t| t.bytes.stdout)
        .or(seal.map(|p| p.bytes.stdout));
    if let Some(n) = stdout.filter(|_| intact) {
        parts.push(format!("{} stdout", format::bytes(n)));
    }
    if !report.gaps.is_empty() {
        let lost: u64 = report
            .gaps
            .iter()
            .map(|g| g.bytes.stdout + g.bytes.stderr)
            .sum();
        let plural = if report.gaps.len() == 1 { "" } else { "s" };
        parts.push(format!(
            "{} gap{plural} ({} of output lost)",
            report.gaps.len(),
            format::bytes(lost)
        ));
    }
    if let Some(exit) = seal.and_then(|p| p.exit.as_ref()) {
        parts.push(format!("exit {}", format::exit(exit)));
    }
    // The key the metadata names: the one that verified, for an intact session.
    let meta = meta_of(store, dir).await;
    if let Some(meta) = &meta {
        parts.push(format!("signed by {}", meta.keys.signing));
        match meta.class() {
            StreamClass::Session => {}
            StreamClass::PortForward => {
                // Connections, not a terminal: the seal's totals instead of stdout.
                parts.retain(|p| !p.ends_with(" stdout"));
                let t = seal.and_then(|p| p.port_forward).unwrap_or_default();
                parts.insert(
                    usize::from(state.is_some()),
                    format!(
                        "port-forward, {} connection{} ↑{} ↓{}",
                        t.connections,
                        if t.connections == 1 { "" } else { "s" },
                        format::bytes(t.to_pod),
                        format::bytes(t.from_pod)
                    ),
                );
            }
            StreamClass::AuditStream => {
                // Not a terminal session: say what it is, and leave out terminal byte counts.
                parts.retain(|p| !p.ends_with(" stdout"));
                parts.insert(0, "audit stream".into());
            }
        }
    }
    let mut line = parts.join(", ");
    if intact && matches!(report.state, SessionState::Open) {
        line.push_str(&format!(
            " (not sealed: live, or its recorder died; `kubetape seal {}` seals it)",
            report.session
        ));
    }
    line
}

async fn meta_of(store: &Store, dir: StreamDir) -> Option<SessionMeta> {
    let bytes = store.get_opt(&dir.meta()).await.ok()??;
    serde_json::from_slice::<SessionMeta>(&bytes).ok()
}
