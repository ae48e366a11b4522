//! The synchronous heart of the writer: turns events into sealed chunks under a flush policy.
//! No I/O and no clock of its own (callers pass the session clock), so it is testable and
//! benchmarkable alone; [`crate::store::Recorder`] drives it from a task and uploads its chunks.

use std::time::Duration;

use crate::chunk::{ChainDigest, ChunkError, SealedChunk};
use crate::event::{self, Event, EventKind, ForwardOutcome, Stream};
use crate::keys::{DataKey, SigningKey};
use crate::seal::{ExitInfo, ForwardTotals, SealPayload, SealState, StreamBytes};
use crate::session::SessionId;
use crate::time::unix_micros_now;

/// Longest stream payload kept in one event; longer writes are split (same timestamp).
pub const MAX_EVENT_DATA: usize = 64 << 10;

/// When a chunk is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Close a chunk at most this long after its first event: the most a crash can lose. Each
    /// session uses 75-100% of it, fixed by its id (see [`ChunkBuilder::deadline_us`]).
    pub max_age: Duration,
    /// Close a chunk once its encoded events reach this many bytes.
    pub max_bytes: usize,
    /// zstd level (3 measures ~0.07 stored/raw on `seq` output at ~0.5 GB/s).
    pub zstd_level: i32,
    /// zstd `hashLog` and `chainLog` overrides (`None`: the level's own). Level 3 sizes its
    /// tables for large inputs (2^17 hash and 2^16 chain entries, 768 KiB); a chunk is at most
    /// ~260 KiB, and 2^16 + 2^12 entries (272 KiB) keep the match finder in this CPU's L2.
    /// Measured on the pipeline bench's terminal mix in one run (thread CPU time): zstd 8-15%
    /// faster, output 1.5% larger on the mix and no larger on `seq`. `benches/pipeline.rs`
    /// prints the untuned level beside it.
    pub zstd_tables: Option<ZstdTables>,
}

/// Match-finder table sizes (log2 of entries) for zstd's double-fast strategy (levels 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdTables {
    pub hash_log: u32,
    pub chain_log: u32,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(1),
            max_bytes: 256 << 10,
            zstd_level: 3,
            zstd_tables: Some(ZstdTables {
                hash_log: 16,
                chain_log: 12,
            }),
        }
    }
}

impl FlushPolicy {
    /// A reusable compressor with this policy's parameters. Chunks are compressed whole with
    /// their size known, so zstd shrinks its window and tables further for small chunks.
    pub fn compressor(&self) -> Result<zstd::bulk::Compressor<'static>, ChunkError> {
        let bad = |e: std::io::Error| ChunkError::Compress(e.to_string());
        let mut compressor = zstd::bulk::Compressor::new(self.zstd_level).map_err(bad)?;
        if let Some(tables) = self.zstd_tables {
            use zstd::zstd_safe::CParameter;
            compressor
                .set_parameter(CParameter::HashLog(tables.hash_log))
                .map_err(bad)?;
            compressor
                .set_parameter(CParameter::ChainLog(tables.chain_log))
                .map_err(bad)?;
        }
        Ok(compressor)
    }
}

/// Running totals for the seal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub bytes: StreamBytes,
    pub events: u64,
    pub chunks: u64,
    pub last_us: u64,
    pub stored_bytes: u64,
    /// Port-forward connections and bytes (zero for other sessions).
    pub forward: ForwardTotals,
}

impl Totals {
    pub fn count(&mut self, event: &Event) {
        if let EventKind::Data { stream, bytes } = &event.kind {
            return self.count_data(event.at_us, *stream, bytes.len());
        }
        self.events += 1;
        self.last_us = self.last_us.max(event.at_us);
        match &event.kind {
            EventKind::PortForwardData { bytes, .. } => {
                self.bytes.port_forward += bytes.len() as u64;
            }
            EventKind::PortForwardOpen { .. } => self.forward.connections += 1,
            EventKind::PortForwardBytes {
                to_pod, from_pod, ..
            } => {
                self.forward.to_pod = self.forward.to_pod.saturating_add(*to_pod);
                self.forward.from_pod = self.forward.from_pod.saturating_add(*from_pod);
            }
            EventKind::PortForwardEnd {
                outcome: ForwardOutcome::Refused,
                ..
            } => self.forward.refused += 1,
            _ => {}
        }
    }

    /// What the seal says of port-forward connections: `None` when there were none.
    pub fn forward_summary(&self) -> Option<ForwardTotals> {
        (self.forward != ForwardTotals::default()).then_some(self.forward)
    }

    /// [`Self::count`] for a stream write, without building its [`Event`].
    pub fn count_data(&mut self, at_us: u64, stream: Stream, len: usize) {
        self.events += 1;
        self.last_us = self.last_us.max(at_us);
        let n = len as u64;
        match stream {
            Stream::Stdin => self.bytes.stdin += n,
            Stream::Stdout => self.bytes.stdout += n,
            Stream::Stderr => self.bytes.stderr += n,
        }
    }
}

/// 75-100% of `max_age`, picked by the session id's last two bytes (random in UUIDv7 ids).
fn spread_age(session: SessionId, max_age: Duration) -> u64 {
    let id = session.as_bytes();
    let pick = u128::from(u16::from_be_bytes([id[14], id[15]]));
    let full = max_age.as_micros();
    (full - full * pick / (4 << 16)) as u64
}

/// Accumulates encoded events and seals them into chunks.
pub struct ChunkBuilder {
    session: SessionId,
    dek: DataKey,
    signer: SigningKey,
    compressor: zstd::bulk::Compressor<'static>,
    policy: FlushPolicy,
    /// The open chunk's plaintext in the v2 layout: payloads here, heads in `heads`, joined
    /// when the chunk closes ([`crate::event::finish_split`]).
    payloads: Vec<u8>,
    heads: Vec<u8>,
    first_us: u64,
    last_us: u64,
    count: u32,
    opened_at_us: Option<u64>,
    next_seq: u64,
    prev: ChainDigest,
    totals: Totals,
    /// This session's share of `policy.max_age` (see [`Self::deadline_us`]).
    max_age_us: u64,
}

impl std::fmt::Debug for ChunkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBuilder")
            .field("session", &self.session)
            .field("next_seq", &self.next_seq)
            .field("buffered", &self.buffered())
            .finish_non_exhaustive()
    }
}

impl ChunkBuilder {
    /// Starts a session's chain from the metadata bytes exactly as stored.
    pub fn new(
        session: SessionId,
        meta_bytes: &[u8],
        dek: DataKey,
        signer: SigningKey,
        policy: FlushPolicy,
    ) -> Result<Self, ChunkError> {
        let compressor = policy.compressor()?;
        Ok(Self {
            session,
            dek,
            signer,
            compressor,
            policy,
            // Room for the fullest chunk: one event short of max_bytes, a maximal event, and
            // the heads with their length, so the buffer never grows.
            payloads: Vec::with_capacity(policy.max_bytes + MAX_EVENT_DATA + 4),
            heads: Vec::with_capacity(1024),
            first_us: 0,
            last_us: 0,
            count: 0,
            opened_at_us: None,
            next_seq: 0,
            prev: ChainDigest::genesis(session, meta_bytes),
            totals: Totals::default(),
            max_age_us: spread_age(session, policy.max_age),
        })
    }

    /// Adds an event stamped `event.at_us` (events must come in time order). Returns the chunks
    /// that filled up (usually none, one for a large write).
    pub fn push(&mut self, event: &Event) -> Result<Vec<SealedChunk>, ChunkError> {
        match &event.kind {
            // Split when longer than MAX_EVENT_DATA, as the relay's writes are.
            EventKind::Data { stream, bytes } => self.push_data(event.at_us, *stream, bytes),
            _ => Ok(self.push_one(event)?.into_iter().collect()),
        }
    }

    /// Adds a stream write without building an [`Event`] first (the relay hot path): the
    /// bytes are copied once, into the chunk.
    pub fn push_data(
        &mut self,
        at_us: u64,
        stream: Stream,
        bytes: &[u8],
    ) -> Result<Vec<SealedChunk>, ChunkError> {
        let mut out = Vec::new();
        // An empty write is still an event (as through `push`).
        let mut pieces = bytes.chunks(MAX_EVENT_DATA);
        let first = pieces.next().unwrap_or_default();
        for piece in std::iter::once(first).chain(pieces) {
            let (at, prev) = self.stamp(at_us);
            event::encode_data_split(at, prev, stream, piece, &mut self.heads, &mut self.payloads);
            self.totals.count_data(at_us, stream, piece.len());
            out.extend(self.after_push()?);
        }
        Ok(out)
    }

    fn push_one(&mut self, event: &Event) -> Result<Option<SealedChunk>, ChunkError> {
        let (at, prev) = self.stamp(event.at_us);
        if at == event.at_us {
            event.encode_split(prev, &mut self.heads, &mut self.payloads);
        } else {
            Event {
                at_us: at,
                kind: event.kind.clone(),
            }
            .encode_split(prev, &mut self.heads, &mut self.payloads);
        }
        self.totals.count(event);
        self.after_push()
    }

    /// The time to record an event stamped `at_us` at, and the offset its delta is from.
    /// A clock that steps back is clamped rather than allowed to corrupt the delta encoding.
    fn stamp(&mut self, at_us: u64) -> (u64, u64) {
        let at = at_us.max(self.last_us);
        let prev = if self.count == 0 {
            self.first_us = at;
            self.opened_at_us = Some(at);
            at
        } else {
            self.last_us
        };
        self.last_us = at;
        (at, prev)
    }

    fn after_push(&mut self) -> Result<Option<SealedChunk>, ChunkError> {
        self.count += 1;
        if self.buffered() >= self.policy.max_bytes {
            self.flush()
        } else {
            Ok(None)
        }
    }

    /// Encoded bytes in the open chunk.
    fn buffered(&self) -> usize {
        self.payloads.len() + self.heads.len()
    }

    /// When the open chunk must be closed (session clock, µs), if one is open.
    ///
    /// The age is spread over 75-100% of `max_age` by the session id's last (random) bytes, so
    /// sessions that start together do not flush together: on a gateway, 100 sessions opened
    /// at once otherwise sealed and wrote 100 chunks in the same few milliseconds every
    /// second, and those bursts were where the slow keystroke echoes clustered (exec bench
    /// with `KUBETAPE_BENCH_SAMPLES`). Never longer than `max_age`: the loss bound holds.
    pub fn deadline_us(&self) -> Option<u64> {
        self.opened_at_us.map(|t| t + self.max_age_us)
    }

    /// Seals the open chunk, if any.
    pub fn flush(&mut self) -> Result<Option<SealedChunk>, ChunkError> {
        if self.count == 0 {
            return Ok(None);
        }
        let payloads_len = self.payloads.len();
        event::finish_split(&mut self.payloads, &self.heads);
        let sealed = SealedChunk::seal(
            self.session,
            self.next_seq,
            self.prev,
            (self.first_us, self.last_us, self.count),
            &self.payloads,
            &mut self.compressor,
            &self.dek,
            &self.signer,
        );
        let chunk = match sealed {
            Ok(chunk) => chunk,
            Err(e) => {
                // Leave the open chunk as it was, so a caller may retry.
                self.payloads.truncate(payloads_len);
                return Err(e);
            }
        };
        self.prev = chunk.digest();
        self.next_seq += 1;
        self.payloads.clear();
        self.heads.clear();
        self.count = 0;
        self.opened_at_us = None;
        self.totals.chunks += 1;
        self.totals.stored_bytes += chunk.encoded_len() as u64;
        Ok(Some(chunk))
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The seal for everything flushed so far.
    pub fn seal_payload(&self, state: SealState, exit: Option<ExitInfo>) -> SealPayload {
        SealPayload {
            format: crate::FORMAT_VERSION,
            session: self.session,
            state,
            chunks: self.next_seq,
            final_digest: self.prev.to_hex(),
            duration_us: self.totals.last_us,
            sealed_at_us: unix_micros_now(),
            exit,
            bytes: self.totals.bytes,
            events: self.totals.events,
            commands: None,
            port_forward: self.totals.forward_summary(),
        }
    }

    /// The session's data key (the commands object is encrypted under it too).
    #[cfg(feature = "store")]
    pub(crate) fn dek(&self) -> &DataKey {
        &self.dek
    }

    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flush ages stay within 75-100% of the policy's and differ between sessions.
    #[test]
    fn flush_ages_are_spread_within_the_bound() {
        let max = Duration::from_secs(1);
        let ages: Vec<u64> = (0..200)
            .map(|_| spread_age(SessionId::new(), max))
            .collect();
        for &age in &ages {
            assert!((750_000..=1_000_000).contains(&age), "{age}");
        }
        let (lo, hi) = (ages.iter().min().unwrap(), ages.iter().max().unwrap());
        assert!(hi - lo > 150_000, "ages spread: {lo}..{hi}");
        assert_eq!(spread_age(SessionId::from_bytes([0; 16]), max), 1_000_000);
        assert_eq!(spread_age(SessionId::from_bytes([0xff; 16]), max), 750_004);
    }
}
