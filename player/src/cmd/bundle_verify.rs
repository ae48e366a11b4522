//! `kubetape verify --bundle FILE`: an evidence bundle checked offline. The bundle-level
//! checks are `player::bundle::checks`; the recordings are then verified by the ordinary
//! verifier, from the bundle's `store/` extracted into a private temporary directory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use storage_schema::layout::{StreamDir, StreamRoot};
use storage_schema::store::{KeySource, Store, shred, verify_stream};
use storage_schema::{PublicKey, SessionId, SessionMeta};

use crate::stdio::outln;
use player::bundle::checks::{self, Checked, Trust};
use player::bundle::manifest::Manifest;
use player::bundle::reader::{self, Limits};

pub async fn run(path: &Path, pubkey: Option<&Path>) -> anyhow::Result<ExitCode> {
    let pinned = pubkey
        .map(|p| {
            PublicKey::read_file(p)
                .with_context(|| format!("cannot use {} as a signing public key", p.display()))
        })
        .transpose()?;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the bundle {}", path.display()))?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store_dir = scratch.path().join("store");
    std::fs::create_dir(&store_dir)?;
    let read = match reader::read(
        std::io::BufReader::new(file),
        Some(&store_dir),
        &Limits::default(),
    ) {
        Ok(read) => read,
        Err(e) => {
            outln!("FAIL {}  unreadable bundle: {e}", path.display())?;
            eprintln!(
                "kubetape: bundle {}: FAILED (nothing else was checked)",
                path.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let checked = checks::check(&read, pinned.as_ref());
    let mut failed = 0usize;
    for f in &checked.findings {
        let verdict = if f.ok { "OK  " } else { "FAIL" };
        outln!("{verdict} {}  {}", f.subject, f.detail)?;
        if !f.ok {
            failed += 1;
        }
    }
    if checked.signed_by.is_none() && !checked.findings.iter().any(|f| !f.ok) {
        outln!("FAIL manifest.sig  no valid signature")?;
        failed += 1;
    }
    let (mut streams, mut gaps) = (0usize, 0usize);
    if let Some(manifest) = &checked.manifest {
        let store = Store::open(&format!("file://{}", store_dir.display()))?;
        let (s, f, g) = verify_streams(&store, manifest, &checked, pinned.as_ref()).await?;
        streams = s;
        failed += f;
        gaps = g;
    }
    let members = read.members.len();
    if failed > 0 {
        eprintln!(
            "kubetape: bundle {}: FAILED: {failed} problem(s) ({members} members, {streams} recordings checked)",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let trust = match &checked.signed_by {
        Some((key, Trust::Pinned)) => format!("signed by the pinned key {}", key.id()),
        Some((key, Trust::SelfAsserted)) => format!(
            "signed by {} (fingerprint {}), a key the bundle carries itself: self-asserted; pin the key you trust with --pubkey",
            key.id(),
            key.fingerprint()
        ),
        None => "unsigned".into(),
    };
    eprintln!(
        "kubetape: bundle {}: OK: {members} members intact, {streams} recordings verified, {trust}",
        path.display()
    );
    Ok(if gaps > 0 {
        ExitCode::from(super::verify::GAPS)
    } else {
        ExitCode::SUCCESS
    })
}

/// Verifies each session and audit stream the manifest lists; returns (checked, failed, with
/// gaps).
async fn verify_streams(
    store: &Store,
    manifest: &Manifest,
    checked: &Checked,
    pinned: Option<&PublicKey>,
) -> anyhow::Result<(usize, usize, usize)> {
    let listed = manifest
        .sessions
        .iter()
        .map(|s| ("session", s.id.as_str(), s.dir.as_str()))
        .chain(
            manifest
                .audit_streams
                .iter()
                .map(|s| ("audit stream", s.id.as_str(), s.dir.as_str())),
        );
    let (mut count, mut failed, mut gaps) = (0, 0, 0);
    for (what, id_text, dir_text) in listed {
        count += 1;
        let Some(dir) = stream_dir(id_text, dir_text) else {
            outln!(
                "FAIL {what} {id_text}  the manifest names it at {dir_text:?}, not a stream directory"
            )?;
            failed += 1;
            continue;
        };
        let id = dir.id();
        let signer = match store.get_opt(&dir.meta()).await {
            Ok(Some(bytes)) => serde_json::from_slice::<SessionMeta>(&bytes)
                .map(|m| m.keys.signing)
                .unwrap_or_default(),
            _ => String::new(),
        };
        // The pinned key, or a key the (signed) manifest vouches for.
        let key = match pinned {
            Some(p) if p.id() == signer => Some(p),
            _ => checked.keys.get(&signer),
        };
        let Some(key) = key else {
            outln!("FAIL {what} {id}  signed by {signer:?}, a key the bundle does not carry")?;
            failed += 1;
            continue;
        };
        let shredded = match shred::record(store, id).await {
            Ok(Some(r)) => format!(" [{}]", r.describe()),
            _ => String::new(),
        };
        match verify_stream(store, dir, KeySource::PublicKey(key)).await {
            Ok(report) => {
                let line = super::verify::describe(store, dir, &report).await;
                let verdict = if !report.intact() {
                    failed += 1;
                    "FAIL"
                } else if !report.complete() {
                    gaps += 1;
                    "GAP "
                } else {
                    "OK  "
                };
                outln!("{verdict} {what} {id}  {line}{shredded}")?;
                for damage in &report.damage {
                    outln!("     - {damage}")?;
                }
                for gap in &report.gaps {
                    outln!("     - gap {}", gap.describe())?;
                }
            }
            Err(e) => {
                outln!("FAIL {what} {id}  cannot verify: {e}")?;
                failed += 1;
            }
        }
    }
    Ok((count, failed, gaps))
}

/// The stream directory `dir` names (`sessions/<id>` or `audit/<id>`), if it is one and its id
/// is `id`.
fn stream_dir(id: &str, dir: &str) -> Option<StreamDir> {
    let id: SessionId = id.parse().ok()?;
    StreamRoot::ALL
        .into_iter()
        .map(|root| StreamDir::new(root, id))
        .find(|d| d.dir() == dir)
}
