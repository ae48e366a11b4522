//! The local search index: every finished session's commands, kept in a cache directory and
//! brought up to date from the store incrementally before each search.
//!
//! Layout of the index directory (0700; it holds decrypted command lines):
//! ```text
//! known.bin        sorted 16-byte ids of every session already indexed (or skipped for good)
//! forgotten.bin    sorted 16-byte ids of sessions shredded or deleted by retention, whose
//!                  commands were purged from the segments (and are never indexed again)
//! follow.json      when the last full listing and the last sync ran
//! seg-<n>.ktix     segments, one per sync that found something (see `segment`)
//! ```
//! A sync finds candidate sessions, diffs them against `known.bin`, and indexes the ones that
//! have ended (a seal exists): their commands object when the recorder wrote one, otherwise the
//! exec's own command line. Candidates come from a full listing of the store's sessions the
//! first time and once a day (listing 100k session prefixes takes ~0.7 s on a local disk), and
//! otherwise from the store's `ended/<day>/` markers since the day before the last sync, which
//! recorders write as they seal. Many small segments are merged into one once there are more
//! than [`MAX_SEGMENTS`].
//!
//! **Forgetting**: the index holds decrypted command lines, so a session that is crypto-shredded
//! or deleted by retention must leave it too. Every sync lists the store's shred records and
//! retention results (small ledgers) and, when one names a session the index holds, rewrites
//! the segments without it before anything is searched.

pub mod segment;

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures::StreamExt as _;
use regex::bytes::Regex;
use storage_schema::layout::{self, StreamDir};
use storage_schema::store::{SessionReader, Store, ended_since, list_sessions};
use storage_schema::{Keyring, SessionId, StreamClass};

use storage_schema::commands::EntryKind;

use self::segment::{IndexedCommand, IndexedSession, Segment, SegmentBuilder, SegmentError};

/// Merge segments once there are more than this many.
const MAX_SEGMENTS: usize = 16;
/// Sessions read from the store at once (S3 latency hides behind concurrency).
const CONCURRENCY: usize = 16;
/// A full listing of the store at least this often (catches sessions whose marker is missing).
const FULL_LISTING_EVERY_US: u64 = 24 * 3600 * 1_000_000;
/// Markers are listed from this long before the last sync (clock skew between gateways).
const MARKER_MARGIN_US: u64 = 24 * 3600 * 1_000_000;

/// `follow.json`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Follow {
    full_listing_us: u64,
    synced_us: u64,
}

/// One search hit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub session: String,
    /// Wall clock of the command, µs since the Unix epoch.
    pub at_unix_us: u64,
    /// Offset into the session, µs.
    pub offset_us: u64,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// 1-based position of the entry in its session (`play --at '#N'`).
    pub number: usize,
    /// `command`, or (`--all-input`) `input` for a line typed to a program, `aborted` for one
    /// abandoned with Ctrl-C.
    pub kind: &'static str,
    pub command: String,
}

/// Restricts hits; `None` fields match everything. Names accept `*` wildcards.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub since_unix_us: Option<u64>,
    pub until_unix_us: Option<u64>,
    /// Every line typed (input to programs, aborted lines), not only commands.
    pub all_input: bool,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub indexed: usize,
    pub open: usize,
    pub unreadable: usize,
}

#[derive(Debug)]
pub struct Index {
    dir: PathBuf,
    known: Vec<[u8; 16]>,
    segments: Vec<(PathBuf, Segment)>,
}

impl Index {
    /// Opens (creating) the index in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        create_private_dir(dir)?;
        let known = match std::fs::read(dir.join("known.bin")) {
            Ok(bytes) if bytes.len() % 16 == 0 => bytes
                .chunks_exact(16)
                .map(|c| c.try_into().expect("16 bytes"))
                .collect(),
            Ok(_) => anyhow::bail!(
                "the search index in {} is damaged (known.bin); rebuild it with `kubetape search --reindex`",
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "ktix"))
            .collect();
        paths.sort_by_key(|p| segment_number(p));
        let mut segments = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let segment = match Segment::parse(bytes) {
                Ok(segment) => segment,
                // Written by another version of kubetape: the index is a cache, start over.
                Err(SegmentError::Version(v)) => {
                    tracing::info!(index = %dir.display(), version = v, "rebuilding an index of another version");
                    Self::clear(dir)?;
                    return Self::open(dir);
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{} (rebuild the index with `kubetape search --reindex`)",
                            path.display()
                        )
                    });
                }
            };
            segments.push((path, segment));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            known,
            segments,
        })
    }

    /// Deletes everything indexed so the next sync starts over.
    pub fn clear(dir: &Path) -> anyhow::Result<()> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
        }
    }

    pub fn session_count(&self) -> usize {
        self.segments.iter().map(|(_, s)| s.session_count()).sum()
    }

    pub fn command_count(&self) -> usize {
        self.segments.iter().map(|(_, s)| s.command_count()).sum()
    }

    /// Indexes the sessions that ended since the last sync. `progress(done, total)` is called
    /// as sessions are read.
    pub async fn sync(
        &mut self,
        store: &Store,
        keyring: &Keyring,
        mut progress: impl FnMut(usize, usize),
    ) -> anyhow::Result<SyncReport> {
        self.forget(store).await?;
        let known: HashSet<[u8; 16]> = self.known.iter().copied().collect();
        let now = storage_schema::time::unix_micros_now();
        let mut follow = self.follow();
        let full = self.known.is_empty()
            || now.saturating_sub(follow.full_listing_us) > FULL_LISTING_EVERY_US;
        let candidates = if full {
            list_sessions(store).await?
        } else {
            let since = layout::day_of(follow.synced_us.saturating_sub(MARKER_MARGIN_US));
            ended_since(store, &since).await?
        };
        let fresh: Vec<SessionId> = candidates
            .into_iter()
            .filter(|id| !known.contains(id.as_bytes()))
            .collect();
        if full {
            follow.full_listing_us = now;
        }
        follow.synced_us = now;
        self.write_follow(&follow)?;
        let mut report = SyncReport::default();
        if fresh.is_empty() {
            return Ok(report);
        }
        let total = fresh.len();
        let mut builder = SegmentBuilder::default();
        let mut newly_known = Vec::new();
        let mut reads = futures::stream::iter(
            fresh
                .into_iter()
                .map(|id| async move { (id, read_session(store, keyring, id).await) }),
        )
        .buffer_unordered(CONCURRENCY);
        let mut done = 0;
        while let Some((id, outcome)) = reads.next().await {
            done += 1;
            progress(done, total);
            match outcome {
                Outcome::Open => report.open += 1,
                Outcome::Skip => newly_known.push(*id.as_bytes()),
                Outcome::Unreadable(reason) => {
                    tracing::warn!(session = %id, %reason, "not indexed");
                    report.unreadable += 1;
                    // Missing keys may come back (another --keys): try again next time.
                }
                Outcome::Ended(session, commands) => {
                    builder.add(&session, &commands);
                    newly_known.push(*id.as_bytes());
                    report.indexed += 1;
                }
            }
        }
        if builder.sessions() > 0 {
            self.write_segment(builder.finish())?;
        }
        if !newly_known.is_empty() {
            self.known.extend(newly_known);
            self.known.sort_unstable();
            self.write_known()?;
            if self.segments.len() > MAX_SEGMENTS {
                self.merge()?;
            }
        }
        Ok(report)
    }

    /// Hits for `pattern` (searched in every command's text) that pass `filter`, oldest first.
    pub fn search(&self, pattern: &Regex, filter: &Filter) -> anyhow::Result<Vec<Hit>> {
        let names = filter.compile();
        let mut hits = Vec::new();
        for (path, segment) in &self.segments {
            let mut sessions: Vec<Option<Option<IndexedSession>>> =
                vec![None; segment.session_count()];
            let mut last = None;
            for m in pattern.find_iter(segment.text()) {
                let Some(command) = segment.command_at(m.start()) else {
                    continue;
                };
                if last == Some(command) {
                    continue;
                }
                last = Some(command);
                let record = segment.command(command);
                if !filter.all_input && record.kind != EntryKind::Command {
                    continue;
                }
                let session = sessions[record.session].get_or_insert_with(|| {
                    let parsed = segment.session(record.session);
                    if let Err(e) = &parsed {
                        tracing::warn!(index = %path.display(), error = %e, "skipping a damaged entry");
                    }
                    parsed.ok().filter(|s| names.matches(s))
                });
                let Some(session) = session else { continue };
                let at_unix_us = session.started_at_us.saturating_add(record.at_us);
                if !filter.matches_time(at_unix_us) {
                    continue;
                }
                hits.push(Hit {
                    session: session.session.clone(),
                    at_unix_us,
                    offset_us: record.at_us,
                    user: session.user.clone(),
                    cluster: session.cluster.clone(),
                    namespace: session.namespace.clone(),
                    pod: session.pod.clone(),
                    container: session.container.clone(),
                    number: record.number as usize,
                    kind: record.kind.name(),
                    command: record.text.to_string(),
                });
            }
        }
        hits.sort_by_key(|h| h.at_unix_us);
        Ok(hits)
    }

    fn write_segment(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let next = self
            .segments
            .last()
            .map_or(0, |(p, _)| segment_number(p) + 1);
        let path = self.dir.join(format!("seg-{next:08}.ktix"));
        write_atomic(&path, &bytes)?;
        self.segments.push((path, Segment::parse(bytes)?));
        Ok(())
    }

    fn follow(&self) -> Follow {
        std::fs::read(self.dir.join("follow.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write_follow(&self, follow: &Follow) -> anyhow::Result<()> {
        write_atomic(
            &self.dir.join("follow.json"),
            &serde_json::to_vec(follow).expect("serializes"),
        )
    }

    fn write_known(&self) -> anyhow::Result<()> {
        let bytes: Vec<u8> = self.known.iter().flatten().copied().collect();
        write_atomic(&self.dir.join("known.bin"), &bytes)
    }

    /// Purges the sessions the store says were shredded or deleted since the last sync, and
    /// marks them known so they are never indexed again.
    async fn forget(&mut self, store: &Store) -> anyhow::Result<()> {
        let (shredded, bad) = storage_schema::store::shred::all(store).await?;
        for e in bad {
            tracing::warn!(error = %e, "an unreadable shred record");
        }
        let mut gone: Vec<[u8; 16]> = shredded.keys().map(|id| *id.as_bytes()).collect();
        gone.extend(
            storage_schema::store::retention::deleted_sessions(store)
                .await?
                .iter()
                .map(|id| *id.as_bytes()),
        );
        let path = self.dir.join("forgotten.bin");
        let already: HashSet<[u8; 16]> = match std::fs::read(&path) {
            Ok(bytes) => bytes
                .chunks_exact(16)
                .map(|c| c.try_into().expect("16 bytes"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let fresh: HashSet<[u8; 16]> = gone
            .into_iter()
            .filter(|id| !already.contains(id))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let fresh_text: HashSet<String> = fresh
            .iter()
            .map(|b| SessionId::from_bytes(*b).to_string())
            .collect();
        if !self.segments.is_empty() {
            self.merge_without(&fresh_text)?;
        }
        let mut all: Vec<[u8; 16]> = already.into_iter().chain(fresh.iter().copied()).collect();
        all.sort_unstable();
        write_atomic(&path, &all.concat())?;
        let known: HashSet<[u8; 16]> = self.known.iter().copied().collect();
        self.known
            .extend(fresh.into_iter().filter(|id| !known.contains(id)));
        self.known.sort_unstable();
        self.write_known()
    }

    /// Rewrites all segments as one.
    fn merge(&mut self) -> anyhow::Result<()> {
        self.merge_without(&HashSet::new())
    }

    /// Rewrites all segments as one, leaving out the sessions in `drop`.
    fn merge_without(&mut self, drop: &HashSet<String>) -> anyhow::Result<()> {
        let mut builder = SegmentBuilder::default();
        for (_, segment) in &self.segments {
            let mut by_session: Vec<Vec<IndexedCommand>> =
                vec![Vec::new(); segment.session_count()];
            for i in 0..segment.command_count() {
                let r = segment.command(i);
                by_session[r.session].push(IndexedCommand {
                    at_us: r.at_us,
                    number: r.number,
                    kind: r.kind,
                    text: r.text.to_string(),
                });
            }
            for (i, commands) in by_session.iter().enumerate() {
                let session = segment.session(i)?;
                if !drop.contains(&session.session) {
                    builder.add(&session, commands);
                }
            }
        }
        let old: Vec<PathBuf> = self.segments.drain(..).map(|(p, _)| p).collect();
        let last = old.last().map_or(0, |p| segment_number(p));
        let path = self.dir.join(format!("seg-{:08}.ktix", last + 1));
        let bytes = builder.finish();
        write_atomic(&path, &bytes)?;
        self.segments.push((path, Segment::parse(bytes)?));
        for p in old {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
        Ok(())
    }
}

impl Filter {
    /// The name patterns, compiled once per search: compiling them for every session a hit
    /// fell in was 95% of a filtered search (718 ms over 100k sessions, ~7,000 hits, in
    /// `benches/search.rs`; 30 ms compiled once).
    fn compile(&self) -> NameFilter {
        let compile = |want: &Option<String>| want.as_deref().map(Glob::new);
        NameFilter {
            user: compile(&self.user),
            namespace: compile(&self.namespace),
            pod: compile(&self.pod),
        }
    }

    fn matches_time(&self, at_unix_us: u64) -> bool {
        self.since_unix_us.is_none_or(|t| at_unix_us >= t)
            && self.until_unix_us.is_none_or(|t| at_unix_us <= t)
    }
}

/// [`Filter`]'s name patterns, compiled; `None` matches every session.
struct NameFilter {
    user: Option<Glob>,
    namespace: Option<Glob>,
    pod: Option<Glob>,
}

impl NameFilter {
    fn matches(&self, s: &IndexedSession) -> bool {
        let field = |want: &Option<Glob>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref().is_some_and(|h| w.matches(h)),
        };
        self.user.as_ref().is_none_or(|u| u.matches(&s.user))
            && field(&self.namespace, &s.namespace)
            && field(&self.pod, &s.pod)
    }
}

/// A `*` pattern compiled once. A pattern too large to compile matches nothing (fail closed:
/// a filter never widens a search).
#[derive(Debug)]
pub struct Glob(Option<regex::Regex>);

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let parts: Vec<String> = pattern.split('*').map(regex::escape).collect();
        Self(regex::Regex::new(&format!("^(?s:{})$", parts.join(".*"))).ok())
    }

    pub fn matches(&self, text: &str) -> bool {
        self.0.as_ref().is_some_and(|re| re.is_match(text))
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text)
}

enum Outcome {
    Open,
    /// Not of class `Session` (a port-forward, or an audit stream an older gateway wrote under
    /// `sessions/`): remembered, never searched.
    Skip,
    Unreadable(String),
    Ended(IndexedSession, Vec<IndexedCommand>),
}

/// Reads session `id` for the index. Candidates come from listing `sessions/` and from `ended/`
/// markers, which name streams there, so it is read there.
async fn read_session(store: &Store, keyring: &Keyring, id: SessionId) -> Outcome {
    let dir = StreamDir::session(id);
    match store.get_opt(&dir.seal()).await {
        Ok(None) => return Outcome::Open,
        Ok(Some(_)) => {}
        Err(e) => return Outcome::Unreadable(e.to_string()),
    }
    let reader = match SessionReader::open_at(store, keyring, dir).await {
        Ok(r) => r,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    let meta = reader.meta();
    match meta.class() {
        StreamClass::Session => {}
        // No terminal, so no typed commands: connections are in `play` and `audit`.
        StreamClass::PortForward | StreamClass::AuditStream => return Outcome::Skip,
    }
    let (source, entries) = match reader.commands().await {
        Ok(Some(entries)) => ("recorded", entries),
        // Sealed without a commands object (interrupted, or by an older recorder): extract them
        // here, once, from the events.
        Ok(None) => {
            let mut extractor = transcript::CommandExtractor::new(meta);
            if let Err(e) = reader.for_each_event(|event| extractor.feed(event)).await {
                return Outcome::Unreadable(e.to_string());
            }
            ("extracted", extractor.finish())
        }
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    let commands = IndexedCommand::rows(&entries);
    Outcome::Ended(
        IndexedSession {
            session: id.to_string(),
            started_at_us: meta.started_at_us,
            user: meta.identity.user.clone(),
            groups: meta.identity.groups.clone(),
            cluster: meta.target.cluster.clone(),
            namespace: meta.target.namespace.clone(),
            pod: meta.target.pod.clone(),
            container: meta.target.container.clone(),
            source: source.into(),
        },
        commands,
    )
}

fn segment_number(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("seg-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the search index directory {}", dir.display()))?;
    // It holds decrypted command lines: only the owner may read it, even if it existed.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("prod", "prod"));
        assert!(!glob("prod", "prod2"));
        assert!(glob("team-*", "team-a"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*b*c", "a-c"));
        assert!(!glob("ab*ba", "aba"));
    }
}
