//! `kubetape export --bundle FILE`: an evidence bundle of the selected sessions (the format is
//! `player::bundle`; this is selection, reading from the store and the reads log).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use storage_schema::layout::{self, StreamDir};
use storage_schema::store::{KeySource, SessionReader, Store, list_streams, shred, verify_stream};
use storage_schema::{AuditRecord, EventKind, Keyring, SessionId, SessionMeta, StreamClass};

use crate::config::Global;
use crate::custody::{self, ReadArgs};
use crate::{format, resolve};
use player::bundle::manifest::{Creator, Manifest, SessionEntry, StreamEntry};
use player::bundle::writer::BundleWriter;
use player::bundle::{FORMAT, KEYS_DIR, README, RENDERINGS_DIR, STORE_DIR};

/// The selection options of `export --bundle` (they need --bundle).
#[derive(Debug, Default, clap::Args)]
pub struct Select {
    /// With --bundle: sessions with a command matching this regular expression (the index
    /// `kubetape search` uses)
    #[arg(long, value_name = "QUERY", requires = "bundle")]
    search: Option<String>,

    /// With --bundle: sessions of this user (exact, as the gateway mapped it)
    #[arg(long, value_name = "USER", requires = "bundle")]
    user: Option<String>,

    /// With --bundle: sessions in this namespace
    #[arg(long, short = 'n', value_name = "NS", requires = "bundle")]
    namespace: Option<String>,

    /// With --bundle: sessions started since a time: a duration ago (30m, 2d) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", requires = "bundle")]
    since: Option<String>,

    /// With --bundle: sessions started before a time (same forms as --since)
    #[arg(long, value_name = "WHEN", requires = "bundle")]
    until: Option<String>,

    /// With --bundle: sessions opened under this JIT grant (the access request's id, or a
    /// unique prefix of at least 8 characters)
    #[arg(long, value_name = "GRANT_ID", requires = "bundle")]
    jit: Option<String>,

    /// With --bundle: sessions opened under a JIT grant whose reason contains TEXT (any case)
    #[arg(long, value_name = "TEXT", requires = "bundle")]
    jit_reason: Option<String>,

    /// With --bundle: leave out the readable renderings (text, asciicast, audit records)
    #[arg(long, requires = "bundle")]
    no_render: bool,

    /// The search index's directory, for --search (default: as `kubetape search`)
    #[arg(long, env = "KUBETAPE_INDEX", value_name = "DIR", hide = true)]
    index: Option<PathBuf>,
}

impl Select {
    /// clap's `requires` cannot see a flag's absence through `export`'s one-session form.
    pub fn refuse_without_bundle(&self) -> anyhow::Result<()> {
        if self.no_render {
            bail!("--no-render is for --bundle");
        }
        Ok(())
    }

    fn selection(&self, sessions: &[String]) -> player::bundle::manifest::Selection {
        player::bundle::manifest::Selection {
            sessions: sessions.to_vec(),
            search: self.search.clone(),
            user: self.user.clone(),
            namespace: self.namespace.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            jit: self.jit.clone(),
            jit_reason: self.jit_reason.clone(),
        }
    }
}

/// One selected session.
struct Chosen {
    dir: StreamDir,
    meta: SessionMeta,
}

pub async fn run(
    global: &Global,
    out: &Path,
    sessions: Vec<String>,
    select: Select,
    custody_args: &ReadArgs,
) -> anyhow::Result<ExitCode> {
    let selection = select.selection(&sessions);
    if selection == player::bundle::manifest::Selection::default() {
        bail!(
            "say what goes into the bundle: session ids, --search, --user, -n, --since/--until, --jit or --jit-reason"
        );
    }
    let since = select
        .since
        .as_deref()
        .map(super::audit::parse_since)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let until = select
        .until
        .as_deref()
        .map(super::audit::parse_since)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let store = global.open_store()?;
    let keyring = global.open_keyring()?;

    // Candidates: the named sessions, or every session; each criterion given narrows them.
    let named: Option<BTreeSet<SessionId>> = if sessions.is_empty() {
        None
    } else {
        let mut ids = BTreeSet::new();
        for text in &sessions {
            ids.insert(resolve::session(&store, text).await?);
        }
        Some(ids)
    };
    let searched: Option<BTreeSet<String>> = match &select.search {
        Some(q) => Some(
            super::search::sessions_matching(global, &store, &keyring, q, select.index.clone())
                .await?,
        ),
        None => None,
    };
    let mut chosen = Vec::new();
    let streams = list_streams(&store).await?;
    if let Some(named) = &named {
        let present: BTreeSet<SessionId> = streams.iter().map(|d| d.id()).collect();
        if let Some(missing) = named.iter().find(|id| !present.contains(id)) {
            bail!("session {missing} is not in {}", store.url());
        }
    }
    for dir in streams {
        if named.as_ref().is_some_and(|n| !n.contains(&dir.id())) {
            continue;
        }
        let Some(bytes) = store.get_opt(&dir.meta()).await? else {
            continue;
        };
        let meta: SessionMeta = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                if named.is_some() {
                    bail!("session {}: its metadata is unreadable: {e}", dir.id());
                }
                eprintln!(
                    "kubetape: session {}: unreadable metadata, not selected: {e}",
                    dir.id()
                );
                continue;
            }
        };
        if meta.class() == StreamClass::AuditStream {
            continue;
        }
        let grant = meta.grant.as_ref();
        let keep = searched
            .as_ref()
            .is_none_or(|s| s.contains(&dir.id().to_string()))
            && select
                .user
                .as_ref()
                .is_none_or(|u| &meta.identity.user == u)
            && select
                .namespace
                .as_ref()
                .is_none_or(|n| meta.target.namespace.as_ref() == Some(n))
            && since.is_none_or(|s| meta.started_at_us >= s)
            && until.is_none_or(|u| meta.started_at_us < u)
            && select
                .jit
                .as_ref()
                .is_none_or(|j| grant.is_some_and(|g| grant_matches(&g.id, j)))
            && select.jit_reason.as_ref().is_none_or(|r| {
                grant.is_some_and(|g| g.reason.to_lowercase().contains(&r.to_lowercase()))
            });
        if keep {
            chosen.push(Chosen { dir, meta });
        }
    }
    if chosen.is_empty() {
        bail!("no session in {} matches the selection", store.url());
    }
    chosen.sort_by_key(|c| (c.meta.started_at_us, c.dir.id()));
    let grants: BTreeSet<String> = chosen
        .iter()
        .filter_map(|c| c.meta.grant.as_ref().map(|g| g.id.clone()))
        .filter(|g| looks_like_id(g))
        .collect();
    let ids: BTreeSet<SessionId> = chosen.iter().map(|c| c.dir.id()).collect();

    // Chain of custody: every reading is logged before it happens.
    for c in &chosen {
        custody::log_read(&store, &keyring, c.dir.id(), "bundle", custody_args).await?;
    }
    let (shredded, _) = shred::all(&store).await?;

    let tmp = temp_path(out);
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = write_bundle(
        BufWriter::new(file),
        &store,
        &keyring,
        &chosen,
        &ids,
        &grants,
        &shredded,
        selection,
        &select,
        custody_args,
    )
    .await;
    let (manifest, code) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "kubetape: bundle {}: {} session(s), {} audit stream(s), {} members, manifest signed by {}; check it with `kubetape verify --bundle {}`",
        out.display(),
        manifest.sessions.len(),
        manifest.audit_streams.len(),
        manifest.members.len() + 3,
        manifest.signing_key,
        out.display()
    );
    Ok(code)
}

/// Whether grant `id` is the one the user named: in full, or by a prefix of 8 or more.
fn grant_matches(id: &str, wanted: &str) -> bool {
    let wanted = wanted.trim().to_ascii_lowercase();
    id == wanted || (wanted.len() >= 8 && id.starts_with(&wanted))
}

/// A JIT request id is a UUID: only such text becomes part of a store path.
fn looks_like_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "bundle".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.kubetape-{}.tmp", std::process::id()))
}

#[allow(clippy::too_many_arguments)]
async fn write_bundle(
    out: BufWriter<File>,
    store: &Store,
    keyring: &Keyring,
    chosen: &[Chosen],
    ids: &BTreeSet<SessionId>,
    grants: &BTreeSet<String>,
    shredded: &BTreeMap<SessionId, shred::ShredRecord>,
    selection: player::bundle::manifest::Selection,
    select: &Select,
    custody_args: &ReadArgs,
) -> anyhow::Result<(Manifest, ExitCode)> {
    let now = std::time::SystemTime::now();
    let mtime = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut w = BundleWriter::new(out, mtime);
    let mut signers: BTreeSet<String> = BTreeSet::new();
    let mut entries = Vec::new();
    let mut code = ExitCode::SUCCESS;

    for c in chosen {
        copy_stream(&mut w, store, c.dir).await?;
        signers.insert(c.meta.keys.signing.clone());
        let id = c.dir.id();
        let record = shredded.get(&id);
        if record.is_some() {
            let key = format!("{}/{}", layout::SHREDDED, layout::shredded(id));
            copy_object(&mut w, store, &key).await?;
        }
        let mut renderings = Vec::new();
        if !select.no_render && record.is_none() && c.meta.class() == StreamClass::Session {
            match render(store, keyring, id).await {
                Ok((text, cast)) => {
                    for (ext, bytes) in [("txt", text), ("cast", cast)] {
                        let path = format!("{RENDERINGS_DIR}/{}.{ext}", id.short());
                        w.add(&path, &bytes)?;
                        renderings.push(path);
                    }
                }
                Err(e) => {
                    eprintln!("kubetape: session {id}: no rendering: {e:#}");
                    code = ExitCode::FAILURE;
                }
            }
        }
        entries.push(SessionEntry {
            id: id.to_string(),
            short: id.short(),
            dir: c.dir.dir(),
            kind: serde_json::to_value(c.meta.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            user: c.meta.identity.user.clone(),
            target: c.meta.target.to_string(),
            started_at: format::timestamp_us(c.meta.started_at_us),
            grant: c.meta.grant.as_ref().map(|g| g.id.clone()),
            shredded: record.map(|r| r.describe()),
            renderings,
        });
    }

    // The JIT ledger's request and decision of every grant involved.
    let mut requests = Vec::new();
    for grant in grants {
        let dir = format!("{}/{grant}", layout::JIT_REQUESTS);
        for (name, _) in store.list(&dir).await? {
            let key = format!("{dir}/{name}");
            let bytes = copy_object(&mut w, store, &key).await?;
            if name == layout::JIT_REQUEST_FILE
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                requests.push(v);
            }
        }
    }

    // The audit streams that hold records about these sessions or grants, whole.
    let mut streams = Vec::new();
    let mut records = Vec::new();
    for dir in super::audit::audit_streams(store).await? {
        let found = match matching_records(store, keyring, dir, ids, grants, &requests).await {
            Ok(found) => found,
            Err(e) => {
                eprintln!(
                    "kubetape: audit stream {}: cannot be searched, not included: {e:#}",
                    dir.id()
                );
                code = ExitCode::FAILURE;
                continue;
            }
        };
        if found.is_empty() {
            continue;
        }
        custody::log_read(store, keyring, dir.id(), "bundle", custody_args).await?;
        let meta = copy_stream(&mut w, store, dir).await?;
        if let Some(m) = meta {
            signers.insert(m.keys.signing);
        }
        streams.push(StreamEntry {
            id: dir.id().to_string(),
            dir: dir.dir(),
        });
        records.extend(found);
    }
    if !select.no_render && !records.is_empty() {
        records.sort_by_key(|r| r.time_us);
        let mut jsonl = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut jsonl, r)?;
            jsonl.push(b'\n');
        }
        w.add(&format!("{RENDERINGS_DIR}/audit-records.jsonl"), &jsonl)?;
    }

    // The public keys: every signer, and the manifest's.
    let signing = keyring.current_signing_key()?;
    signers.insert(signing.id().to_string());
    for id in &signers {
        let key = keyring.public_key(id).with_context(|| {
            format!("the keyring has no public key {id} (a recording names it)")
        })?;
        w.add(&format!("{KEYS_DIR}/{id}.pub"), key.to_line().as_bytes())?;
        w.add(
            &format!("{KEYS_DIR}/{id}.pem"),
            player::bundle::pem::public_key(key).as_bytes(),
        )?;
    }
    w.add(
        README,
        player::bundle::readme::text(signing.id()).as_bytes(),
    )?;

    let who = custody::Reader::of(keyring, custody_args);
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: humantime::format_rfc3339_seconds(now).to_string(),
        created_by: Creator {
            reader: who.reader,
            login: who.login,
            host: custody::host(),
            keyring: who.keyring,
            reason: custody_args.reason().map(String::from),
        },
        kubetape_version: env!("CARGO_PKG_VERSION").into(),
        store: store.url().to_string(),
        selection,
        signing_key: String::new(),
        sessions: entries,
        audit_streams: streams,
        members: Vec::new(),
    };
    let (manifest, out) = w.finish(manifest, signing)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((manifest, code))
}

/// Copies every object of the stream in `dir` into the bundle, exactly as stored; returns its
/// metadata when it parses.
async fn copy_stream(
    w: &mut BundleWriter<BufWriter<File>>,
    store: &Store,
    dir: StreamDir,
) -> anyhow::Result<Option<SessionMeta>> {
    let mut meta = None;
    let base = dir.dir();
    for (name, _) in store.list(&base).await? {
        let key = format!("{base}/{name}");
        let bytes = copy_object(w, store, &key).await?;
        if key == dir.meta() {
            meta = serde_json::from_slice(&bytes).ok();
        }
    }
    Ok(meta)
}

async fn copy_object(
    w: &mut BundleWriter<BufWriter<File>>,
    store: &Store,
    key: &str,
) -> anyhow::Result<Vec<u8>> {
    let path = format!("{STORE_DIR}/{key}");
    let bytes = store.get(key).await?.to_vec();
    if !w.contains(&path) {
        w.add(&path, &bytes)?;
    }
    Ok(bytes)
}

/// The text and asciicast v2 renderings of a terminal session.
async fn render(
    store: &Store,
    keyring: &Keyring,
    id: SessionId,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let reader = SessionReader::open(store, keyring, id).await?;
    let mut out = Vec::new();
    for format in [
        super::render::Format::Text,
        super::render::Format::AsciicastV2,
    ] {
        let mut bytes = Vec::new();
        let code = super::render::export(&reader, format, &mut bytes).await?;
        if code != ExitCode::SUCCESS && code != ExitCode::from(super::verify::GAPS) {
            bail!("the recording could not be read in full (`kubetape verify {id}`)");
        }
        out.push(bytes);
    }
    let cast = out.pop().unwrap_or_default();
    let text = out.pop().unwrap_or_default();
    Ok((text, cast))
}

/// The records of the audit stream in `dir` about the sessions `ids` or the grants (the
/// records of the sessions' requests, their port-forward connections, requests made under the
/// grants, the grants' decisions, and the filing of the access requests). The stream is
/// verified before anything in it is used.
async fn matching_records(
    store: &Store,
    keyring: &Keyring,
    dir: StreamDir,
    ids: &BTreeSet<SessionId>,
    grants: &BTreeSet<String>,
    requests: &[serde_json::Value],
) -> anyhow::Result<Vec<AuditRecord>> {
    let report = verify_stream(store, dir, KeySource::Keyring(keyring)).await?;
    if !report.intact() {
        bail!("it is damaged (`kubetape verify {}`)", dir.id());
    }
    let filed: Vec<(String, u64)> = requests
        .iter()
        .filter_map(|r| {
            Some((
                r["user"].as_str()?.to_string(),
                r["created_at_us"].as_u64()?,
            ))
        })
        .collect();
    let reader = SessionReader::open_at(store, keyring, dir).await?;
    let mut found = Vec::new();
    reader
        .for_each_event(|e| {
            let EventKind::Audit { json } = &e.kind else {
                return;
            };
            let Ok(r) = serde_json::from_str::<AuditRecord>(json) else {
                return;
            };
            let about_session = r.session.is_some_and(|s| ids.contains(&s));
            let under_grant = r.grant.as_ref().is_some_and(|g| grants.contains(g));
            let decides = grants
                .iter()
                .any(|g| r.path.contains(&format!("/requests/{g}")));
            // The filing itself: its record precedes the request's id, so it is matched by
            // the requester and the time the request was created (within a minute after).
            let files = r.method == "POST"
                && r.path.ends_with("/requests")
                && filed.iter().any(|(user, at)| {
                    r.user.as_ref() == Some(user) && r.time_us <= *at && at - r.time_us < 60_000_000
                });
            if about_session || under_grant || decides || files {
                found.push(r);
            }
        })
        .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_in_full_or_by_a_long_prefix() {
        let id = "0193a7c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b";
        assert!(grant_matches(id, id));
        assert!(grant_matches(id, "0193a7c4-5b"));
        assert!(!grant_matches(id, "0193a7"), "too short");
        assert!(!grant_matches(id, "0193a7c5"));
        assert!(looks_like_id(id));
        assert!(!looks_like_id("../x") && !looks_like_id(""));
    }
}
