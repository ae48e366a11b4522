//! The synchronous heart of the writer: turns events into sealed chunks under a flush policy.
//! No I/O and no clock of its own (callers pass the session clock), so it is testable and
//! benchmarkable alone; [`crate::store::Recorder`] drives it from a task and uploads its chunks.
//!
//! # Chunk size: the loss bound decides, bytes only cap it
//! A chunk closes at most [`FlushPolicy::max_age`] (≤ 1 s) after its first event (on a grid
//! of that period, see [`ChunkBuilder::deadline_us`]) or at
//! [`FlushPolicy::max_bytes`] (8 MiB), whichever comes first, so chunks grow with the output
//! rate: a quiet interactive session writes one small chunk per second of activity (the loss
//! bound), bulk output writes 8 MiB chunks. Every chunk is one create-only PUT, and PUTs are
//! what a recording costs on S3 ($0.005 per 1,000): at the former 256 KiB cap a GB of bulk
//! output was ~3,800 objects (19 ¢, more than a year of storing the GB); at 8 MiB it is ~120
//! (0.6 ¢), and output above ~3.3 MB/s stays under 300 per GB (`benches/pipeline.rs` prints
//! both, and per interactive session-hour). Readers never assumed a size: a chunk's plaintext
//! may be up to [`crate::chunk::MAX_PLAINTEXT`] (64 MiB), so old and new recordings read alike.
//!
//! The open chunk's buffer grows with the chunk and shrinks back after a chunk that needed far
//! less, so an idle session holds ~300 KiB however much it once printed. The loss bound
//! counts time, and queued chunks are time too: the recorder's upload queue holds
//! [`FlushPolicy::upload_queue`] chunks, ~2 MiB of output however large they are.
//!
//! # Incompressible output
//! zstd costs ~1.2 CPU-s per GB of random bytes only to find nothing to gain. Before compressing
//! a chunk of more than [`PROBE_MIN`] bytes the builder compresses [`PROBES`] samples of
//! [`PROBE_LEN`] bytes spread over it (0.4% of an 8 MiB chunk); when none of them shrinks by
//! [`PROBE_GAIN`], the chunk is stored raw (the format's flag; readers skip zstd). A chunk that
//! is mostly random with a little text between may be stored raw and lose that text's
//! compression: at worst a few percent of its size.

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
    /// Close a chunk at most this long after its first event: the most a crash can lose.
    /// Chunks close on a grid of this period whose phase each session takes from its id (see
    /// [`ChunkBuilder::deadline_us`]).
    pub max_age: Duration,
    /// Close a chunk once its encoded events reach this many bytes: a cap for bulk output,
    /// where the age bound alone would make chunks of a second's output (see the module docs).
    pub max_bytes: usize,
    /// zstd level (3 measures ~0.07 stored/raw on `seq` output at ~0.5 GB/s).
    pub zstd_level: i32,
    /// zstd `hashLog` and `chainLog` overrides (`None`: the level's own). Level 3 sizes its
    /// tables for large inputs (2^17 hash and 2^16 chain entries, 768 KiB); 2^16 + 2^12
    /// entries (272 KiB) keep the match finder in this CPU's L2. Measured on the pipeline
    /// bench's terminal mix in one run (thread CPU time), with 256 KiB chunks: zstd 8-15%
    /// faster, output 1.5% larger on the mix and no larger on `seq`; `benches/pipeline.rs`
    /// prints the untuned level beside it at the policy's chunk size.
    pub zstd_tables: Option<ZstdTables>,
}

pub use crate::zstd_pool::ZstdTables;

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(1),
            max_bytes: 8 << 20,
            zstd_level: 3,
            zstd_tables: Some(ZstdTables {
                hash_log: 16,
                chain_log: 12,
                window_log: 18,
            }),
        }
    }
}

/// Output the recorder's upload queue may hold, in chunks' worth of [`FlushPolicy::max_bytes`]
/// (what 8 chunks of the former 256 KiB held): see [`FlushPolicy::upload_queue`].
const UPLOAD_QUEUE_BYTES: usize = 2 << 20;

/// Chunks smaller than this are compressed whole without probing (interactive output: cheap).
pub const PROBE_MIN: usize = 64 << 10;
/// Samples taken from a larger chunk to decide whether zstd pays.
pub const PROBES: usize = 8;
/// Bytes per sample: a few zstd blocks' worth of matches, and ~5 µs each.
pub const PROBE_LEN: usize = 4 << 10;
/// A sample that zstd shrinks to less than this fraction (in 1/64ths: 60/64 = 94%) of its
/// size means the chunk is compressed. base64 of random bytes (75%) passes; random and
/// already-compressed bytes (100%) do not.
pub const PROBE_GAIN: usize = 60;

/// The open chunk's buffer to begin with, and what it is shrunk back to after a quiet chunk.
/// An interactive session's chunks are a few KiB, and every live session holds one open
/// buffer for its whole life: at the 256 KiB this was, buffers were most of an idle gateway
/// session's memory (the idle bench). Bulk output doubles it up to the policy's chunk size
/// (see `reserve`), a few reallocations per burst.
const BUFFER_FLOOR: usize = 4 << 10;

impl FlushPolicy {
    /// How many sealed chunks the recorder queues for upload: ~2 MiB of output whatever the
    /// chunk size, at least one. The loss bound is about time: on a store slower than the
    /// output, back-pressure holds the session to the store's pace, and what waits in the
    /// queue when the process dies is lost with the open chunk; 8 queued 8 MiB chunks would
    /// be seconds of output on S3.
    pub fn upload_queue(&self) -> usize {
        (UPLOAD_QUEUE_BYTES / self.max_bytes.max(1)).clamp(1, 8)
    }

    /// A reusable compressor with this policy's parameters. Chunks are compressed whole with
    /// their size known, so zstd shrinks its window and tables further for small chunks.
    pub fn compressor(&self) -> Result<zstd::bulk::Compressor<'static>, ChunkError> {
        crate::zstd_pool::compressor(self.zstd_level, self.zstd_tables)
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

/// A point in `[0, max_age)` (µs), picked by the session id's last two bytes (random in
/// UUIDv7 ids): where this session's flush grid starts.
fn flush_phase(session: SessionId, max_age: Duration) -> u64 {
    let id = session.as_bytes();
    let pick = u128::from(u16::from_be_bytes([id[14], id[15]]));
    ((max_age.as_micros() * pick) >> 16) as u64
}

/// Accumulates encoded events and seals them into chunks.
pub struct ChunkBuilder {
    session: SessionId,
    dek: DataKey,
    signer: SigningKey,
    policy: FlushPolicy,
    /// The open chunk's plaintext in the v2 layout: payloads here, heads in `heads`, joined
    /// when the chunk closes ([`crate::event::finish_split`]).
    payloads: Vec<u8>,
    heads: Vec<u8>,
    /// A written chunk's buffer given back ([`Self::recycle`]) for the next raw chunk.
    spare: Option<Vec<u8>>,
    /// zstd's output for the incompressibility probe, reused.
    probe: Vec<u8>,
    first_us: u64,
    last_us: u64,
    count: u32,
    opened_at_us: Option<u64>,
    next_seq: u64,
    prev: ChainDigest,
    totals: Totals,
    /// `policy.max_age` and this session's phase on it (see [`Self::deadline_us`]).
    max_age_us: u64,
    phase_us: u64,
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
        // Fail now, not at the first seal, if the policy's parameters are refused.
        drop(crate::zstd_pool::borrow(
            policy.zstd_level,
            policy.zstd_tables,
        )?);
        Ok(Self {
            session,
            dek,
            signer,
            policy,
            payloads: Vec::with_capacity(BUFFER_FLOOR.min(policy.max_bytes + MAX_EVENT_DATA + 4)),
            heads: Vec::with_capacity(1024),
            spare: None,
            probe: Vec::new(),
            first_us: 0,
            last_us: 0,
            count: 0,
            opened_at_us: None,
            next_seq: 0,
            prev: ChainDigest::genesis(session, meta_bytes),
            totals: Totals::default(),
            max_age_us: (policy.max_age.as_micros() as u64).max(1),
            phase_us: flush_phase(session, policy.max_age),
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
            self.reserve(piece.len());
            let (at, prev) = self.stamp(at_us);
            event::encode_data_split(at, prev, stream, piece, &mut self.heads, &mut self.payloads);
            self.totals.count_data(at_us, stream, piece.len());
            out.extend(self.after_push()?);
        }
        Ok(out)
    }

    /// Makes room for `more` payload bytes, the heads and their length behind them. The
    /// buffer doubles up to the largest chunk the policy allows (plus one maximal event), so
    /// a bulk session's buffer reallocates a handful of times, once.
    fn reserve(&mut self, more: usize) {
        let need = self.payloads.len() + more + self.heads.len() + 64;
        if need > self.payloads.capacity() {
            // Plus what sealing adds in place: the tag, then the header and signature
            // (`SealedChunk::into_encoded`), so a raw chunk never reallocates.
            let most = self.policy.max_bytes
                + MAX_EVENT_DATA
                + self.heads.capacity()
                + 64
                + crate::aead::TAG_LEN
                + crate::chunk::HEADER_LEN
                + crate::chunk::SIGNATURE_LEN;
            let target = (self.payloads.capacity() * 2).min(most).max(need);
            self.payloads.reserve_exact(target - self.payloads.len());
        }
    }

    fn push_one(&mut self, event: &Event) -> Result<Option<SealedChunk>, ChunkError> {
        if let EventKind::PortForwardData { bytes, .. } = &event.kind {
            self.reserve(bytes.len());
        }
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
    /// The first tick after the chunk opened of a grid of period `max_age` whose phase the
    /// session id picks: never more than `max_age` after the first event (the loss bound
    /// holds), and
    /// - sessions that start together do not flush together: their phases spread over the
    ///   whole period. On a gateway, 100 sessions opened at once otherwise sealed and wrote 100
    ///   chunks in the same few milliseconds every second, where the slow keystroke echoes
    ///   clustered (exec bench with `KUBETAPE_BENCH_SAMPLES`);
    /// - a session that keeps writing (typing, a slow stream) closes a chunk once per period,
    ///   not once per 75-100% of it as an age spread per session did: ~3,600 chunk objects per
    ///   session-hour of typing instead of ~4,900 (exec bench, target 3).
    pub fn deadline_us(&self) -> Option<u64> {
        let (period, phase) = (self.max_age_us, self.phase_us);
        self.opened_at_us.map(|t| {
            if t < phase {
                phase
            } else {
                phase + ((t - phase) / period + 1) * period
            }
        })
    }

    /// Gives back a raw chunk's buffer (its encoded bytes, once they are written) for the
    /// next raw chunk to be built in: a raw chunk takes its buffer with it, and the fresh one
    /// that replaced it was faulted in a page at a time, ~0.2 CPU-s per GB of incompressible
    /// output (`benches/pipeline.rs`). One is kept, and only while chunks fill the buffer it
    /// would replace; the shrink after a quiet chunk drops it, so idle sessions hold none.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.is_none()
            && self.payloads.capacity() > BUFFER_FLOOR
            && buf.capacity() >= self.payloads.capacity()
        {
            buf.clear();
            self.spare = Some(buf);
        }
    }

    /// Seals the open chunk, if any.
    pub fn flush(&mut self) -> Result<Option<SealedChunk>, ChunkError> {
        if self.count == 0 {
            return Ok(None);
        }
        let payloads_len = self.payloads.len();
        let mut compressor =
            crate::zstd_pool::borrow(self.policy.zstd_level, self.policy.zstd_tables)?;
        let compress = self.worth_compressing(&mut compressor);
        event::finish_split(&mut self.payloads, &self.heads);
        let range = (self.first_us, self.last_us, self.count);
        let capacity = self.payloads.capacity();
        let sealed = if compress {
            SealedChunk::seal(
                self.session,
                self.next_seq,
                self.prev,
                range,
                &self.payloads,
                &mut compressor,
                &self.dek,
                &self.signer,
            )
        } else {
            // The buffer becomes the chunk (encrypted in place, no copy); the next chunk gets
            // a fresh one of the same size.
            SealedChunk::seal_raw(
                (self.session, self.next_seq, self.prev),
                range,
                &mut self.payloads,
                &self.dek,
                &self.signer,
            )
            .inspect(|_| {
                self.payloads = self
                    .spare
                    .take()
                    .filter(|b| b.capacity() >= capacity)
                    .unwrap_or_else(|| Vec::with_capacity(capacity));
            })
        };
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
        // A buffer a burst grew stays while chunks use a quarter of it, and shrinks back once
        // the session is quiet, so idle sessions do not keep a burst's 8 MiB.
        let used = payloads_len;
        self.payloads.clear();
        if self.payloads.capacity() > BUFFER_FLOOR && used < self.payloads.capacity() / 4 {
            self.payloads.shrink_to(BUFFER_FLOOR.max(used * 2));
            self.spare = None;
        }
        self.heads.clear();
        self.count = 0;
        self.opened_at_us = None;
        self.totals.chunks += 1;
        self.totals.stored_bytes += chunk.encoded_len() as u64;
        Ok(Some(chunk))
    }

    /// Whether zstd may pay on the open chunk's payloads (see the module docs): small chunks
    /// are always tried (the seal stores them raw if zstd does not shrink them); larger ones
    /// when one of [`PROBES`] samples spread over them shrinks by [`PROBE_GAIN`].
    fn worth_compressing(&mut self, compressor: &mut zstd::bulk::Compressor<'static>) -> bool {
        let payloads = &self.payloads;
        if payloads.len() < PROBE_MIN {
            return true;
        }
        let stride = (payloads.len() - PROBE_LEN) / (PROBES - 1);
        (0..PROBES).any(|i| {
            let sample = &payloads[i * stride..i * stride + PROBE_LEN];
            self.probe.clear();
            self.probe
                .reserve(zstd::zstd_safe::compress_bound(PROBE_LEN));
            // A failure to compress a sample is no verdict: compress the chunk (as before).
            match compressor.compress_to_buffer(sample, &mut self.probe) {
                Ok(n) => n * 64 < PROBE_LEN * PROBE_GAIN,
                Err(_) => true,
            }
        })
    }

    /// The policy chunks are closed under.
    pub fn policy(&self) -> &FlushPolicy {
        &self.policy
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
            gaps: Vec::new(),
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
    use crate::keys::DataKey;

    fn builder(max_bytes: usize) -> ChunkBuilder {
        let policy = FlushPolicy {
            max_bytes,
            ..FlushPolicy::default()
        };
        let signer = SigningKey::from_seed("test", [3; 32]);
        ChunkBuilder::new(
            SessionId::new(),
            b"{}",
            DataKey::from_bytes([9; 32]),
            signer,
            policy,
        )
        .unwrap()
    }

    /// splitmix64 bytes: nothing for zstd to find.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn stdout_of(chunk: &SealedChunk) -> Vec<u8> {
        let events = chunk.open(&DataKey::from_bytes([9; 32])).unwrap();
        let mut out = Vec::new();
        for e in events {
            if let EventKind::Data { bytes, .. } = e.kind {
                out.extend_from_slice(&bytes);
            }
        }
        out
    }

    /// Random output is stored raw without zstd, and reads back equal; the buffer the chunk
    /// took is replaced, so the next chunk records normally.
    #[test]
    fn incompressible_chunks_are_stored_raw_and_read_back() {
        let mut b = builder(1 << 20);
        let data = random(3 << 20, 1);
        let chunks = b.push_data(0, Stream::Stdout, &data).unwrap();
        assert_eq!(chunks.len(), 3);
        let mut read = Vec::new();
        for c in &chunks {
            assert!(!c.header.compressed, "random bytes are stored raw");
            read.extend(stdout_of(c));
        }
        assert_eq!(read, data);
        let text = b"total 0\r\n".repeat(20_000);
        b.push_data(1, Stream::Stdout, &text).unwrap();
        let c = b.flush().unwrap().unwrap();
        assert!(c.header.compressed, "text is compressed");
        assert_eq!(stdout_of(&c), text);
    }

    /// A written raw chunk's buffer is built in again (no fresh buffer for the next raw
    /// chunk), its encoded bytes having become nothing but room, and what is recorded in it
    /// reads back whole; a quiet chunk drops the spare, so an idle session holds none.
    #[test]
    fn a_written_chunks_buffer_is_recycled_while_output_is_bulk() {
        let mut b = builder(1 << 20);
        let first = b.push_data(0, Stream::Stdout, &random(1 << 20, 4)).unwrap();
        assert_eq!(first.len(), 1);
        let buf = first.into_iter().next().unwrap().into_encoded();
        let at = buf.as_ptr();
        b.recycle(buf);
        assert!(b.spare.is_some(), "kept while chunks fill the buffer");
        let data = random(1 << 20, 5);
        let second = b.push_data(1, Stream::Stdout, &data).unwrap();
        assert_eq!(second.len(), 1);
        assert!(b.spare.is_none(), "the next raw chunk took it");
        assert_eq!(b.payloads.as_ptr(), at, "and builds in it");
        assert_eq!(stdout_of(&second[0]), data);
        b.recycle(second.into_iter().next().unwrap().into_encoded());
        assert!(b.spare.is_some());
        b.push_data(2, Stream::Stdout, b"$ ").unwrap();
        b.flush().unwrap().unwrap();
        assert!(b.spare.is_none(), "a quiet chunk drops the spare");
        // A buffer smaller than the one it would replace is not kept.
        b.push_data(3, Stream::Stdout, &random(1 << 20, 6)).unwrap();
        b.recycle(Vec::with_capacity(16));
        assert!(b.spare.is_none());
    }

    /// A chunk where only one part compresses is still compressed (one probe is enough).
    #[test]
    fn a_compressible_part_gets_the_chunk_compressed() {
        let mut b = builder(8 << 20);
        let mut data = random(1 << 20, 2);
        data.extend(b"line of log output 200 OK\r\n".repeat(20_000));
        data.extend(random(1 << 20, 3));
        b.push_data(0, Stream::Stdout, &data).unwrap();
        let c = b.flush().unwrap().unwrap();
        assert!(c.header.compressed);
        assert!(c.encoded_len() < data.len());
        assert_eq!(stdout_of(&c), data);
    }

    /// Chunks grow to the byte cap at bulk output, and the buffer shrinks back when the
    /// session goes quiet.
    #[test]
    fn bulk_grows_chunks_and_quiet_shrinks_the_buffer_back() {
        let mut b = builder(8 << 20);
        let read = b"0123456789abcdef".repeat(256);
        let mut closed = Vec::new();
        for i in 0..4096u64 {
            closed.extend(b.push_data(i, Stream::Stdout, &read).unwrap());
        }
        assert_eq!(closed.len(), 2, "16 MiB of output is two 8 MiB chunks");
        assert!(
            closed
                .iter()
                .all(|c| c.header.plaintext_len as usize >= 8 << 20)
        );
        assert!(b.payloads.capacity() >= 8 << 20);
        // The first quiet chunk still holds the burst's last 8 KiB: the buffer shrinks to
        // twice that; after the next, to the floor.
        b.push_data(5_000, Stream::Stdout, b"$ ").unwrap();
        b.flush().unwrap();
        assert!(
            b.payloads.capacity() < 64 << 10,
            "{}",
            b.payloads.capacity()
        );
        b.push_data(6_000, Stream::Stdout, b"$ ").unwrap();
        b.flush().unwrap();
        assert!(
            b.payloads.capacity() <= BUFFER_FLOOR,
            "{}",
            b.payloads.capacity()
        );
    }

    /// The upload queue holds ~2 MiB of chunks whatever their size, and at least one.
    #[test]
    fn upload_queue_is_bounded_in_bytes() {
        let with = |max_bytes| FlushPolicy {
            max_bytes,
            ..FlushPolicy::default()
        };
        assert_eq!(with(256 << 10).upload_queue(), 8);
        assert_eq!(with(1 << 20).upload_queue(), 2);
        assert_eq!(with(8 << 20).upload_queue(), 1);
        assert_eq!(with(64).upload_queue(), 8);
    }

    /// Phases spread over the whole period and differ between sessions.
    #[test]
    fn flush_phases_are_spread_over_the_period() {
        let max = Duration::from_secs(1);
        let phases: Vec<u64> = (0..200)
            .map(|_| flush_phase(SessionId::new(), max))
            .collect();
        assert!(phases.iter().all(|&p| p < 1_000_000), "{phases:?}");
        let (lo, hi) = (phases.iter().min().unwrap(), phases.iter().max().unwrap());
        assert!(hi - lo > 800_000, "phases spread: {lo}..{hi}");
        assert_eq!(flush_phase(SessionId::from_bytes([0; 16]), max), 0);
        assert_eq!(flush_phase(SessionId::from_bytes([0xff; 16]), max), 999_984);
    }

    /// Whenever a chunk opens, its deadline is the next tick of the session's grid: after the
    /// first event, at most `max_age` later (the loss bound); a steady writer closes one chunk
    /// per period.
    #[test]
    fn deadlines_fall_on_the_session_grid_within_the_bound() {
        let policy = FlushPolicy::default();
        let max = policy.max_age.as_micros() as u64;
        for _ in 0..50 {
            let id = SessionId::new();
            let phase = flush_phase(id, policy.max_age);
            let (dek, signer) = (
                DataKey::from_bytes([1; 32]),
                SigningKey::from_seed("k", [2; 32]),
            );
            let mut b = ChunkBuilder::new(id, b"{}", dek, signer, policy).unwrap();
            let mut closed = Vec::new();
            // A keystroke every 30 ms for 10 s, flushed when due as the recorder does.
            for at in (0..10_000_000u64).step_by(30_000) {
                if b.deadline_us().is_some_and(|d| d <= at) {
                    closed.push(b.deadline_us().unwrap());
                    b.flush().unwrap();
                }
                b.push(&Event {
                    at_us: at,
                    kind: EventKind::Data {
                        stream: Stream::Stdin,
                        bytes: b"k".to_vec(),
                    },
                })
                .unwrap();
                let d = b.deadline_us().unwrap();
                assert!(
                    d > b.first_us && d <= b.first_us + max,
                    "{d} for {}",
                    b.first_us
                );
                assert_eq!((d - phase) % max, 0, "on the grid");
            }
            // Ten seconds of typing: ten chunks closed (eleven with the one still open), where
            // ages of 75-100% closed up to thirteen.
            assert!((9..=10).contains(&closed.len()), "{closed:?}");
        }
    }
}
