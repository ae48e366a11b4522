//! Chunks: the unit of storage. A chunk is a run of events, compressed, encrypted and signed,
//! linked to the chunk before it.
//!
//! # Layout (formats v1 and v2, all integers big-endian)
//! ```text
//! off  len  field
//!   0    4  magic "KTCK"
//!   4    1  format version (1 or 2; this crate writes 2)
//!   5    1  flags: bit 0 = body is zstd-compressed; other bits must be 0
//!   6    2  reserved, 0
//!   8   16  session id
//!  24    8  sequence number (0, 1, 2, ...)
//!  32    8  first event offset, µs since session start
//!  40    8  last event offset, µs
//!  48   32  previous chain digest (chunk 0: the genesis digest, which commits to meta.json)
//!  80    4  event count
//!  84    4  plaintext (encoded events) length
//!  88    4  ciphertext length, including the 16-byte GCM tag
//!  92    n  ciphertext = AES-256-GCM(DEK, nonce, zstd(events), aad = bytes 0..92)
//! 92+n  64  Ed25519 signature over "kubetape/chunk/vN" ‖ chain digest of this chunk
//! ```
//! The versions differ only inside the plaintext: v1 holds the events one after the other, v2
//! holds their payloads first and their heads behind them ([`crate::event`]), which zstd
//! compresses faster and smaller. Every domain string names the version, so a signature or
//! digest made for one version never verifies as the other.
//!
//! Nonce = `"KTck" ‖ sequence` (the DEK is per session and sequences never repeat within one, so
//! a nonce is never reused under a key). The header is the AEAD's associated data: it stays
//! readable without any key (time range, order, linkage) yet cannot be altered undetected.
//!
//! Chain digest = SHA-256("kubetape/chain/v1" ‖ header ‖ ciphertext) in v1, and
//! BLAKE3-derive-key([`CHAIN_CONTEXT_V2`], ciphertext ‖ header) in v2 ([`ChainDigest::of`]).
//! Each header carries the digest of its predecessor, so dropping, reordering, replacing or
//! splicing chunks breaks the chain for anyone, without the data key. The signature lets a
//! verifier holding only the public key say *which* chunk is damaged rather than only "the chain
//! breaks here", and makes the prefix of an unsealed (crashed or live) session authentic too.
//!
//! The header layout is frozen: it is authenticated data, so changing it is a new format version.

use sha2::{Digest as _, Sha256};

use crate::aead::{self, TAG_LEN};
use crate::event::{self, Event, EventError};
use crate::keys::{DataKey, PublicKey, SigningKey};
use crate::session::SessionId;

pub const MAGIC: [u8; 4] = *b"KTCK";
/// The chunk format version this crate writes; it reads every version from 1 up to it.
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 92;
pub const SIGNATURE_LEN: usize = 64;
const FLAG_ZSTD: u8 = 0x01;
/// BLAKE3 key-derivation context of the v2 chain digest (see [`ChainDigest::of`]).
pub const CHAIN_CONTEXT_V2: &str = "kubetape 2026-11-23 chunk chain digest v2";
/// Upper bound on a chunk's plaintext; readers refuse more (a decompression-bomb guard).
pub const MAX_PLAINTEXT: u32 = 64 << 20;

const NONCE_DOMAIN: &[u8; 4] = b"KTck";

/// Why a chunk could not be decoded or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk is {0} bytes, shorter than a header and signature")]
    TooShort(usize),
    #[error("bad magic (not a kubetape chunk)")]
    BadMagic,
    #[error("unsupported chunk format version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown flags {0:#04x}")]
    UnknownFlags(u8),
    #[error("header field {0} is out of range")]
    BadHeader(&'static str),
    #[error("ciphertext length {declared} does not match the {actual} bytes present")]
    LengthMismatch { declared: u64, actual: u64 },
    #[error("decryption failed: wrong data key, or header or body altered")]
    Decrypt,
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("compression failed: {0}")]
    Compress(String),
    #[error("events: {0}")]
    Events(#[from] EventError),
    #[error(
        "header says {declared} events from {first_us} to {last_us} µs; body holds {count} from {body_first} to {body_last}"
    )]
    EventsDisagree {
        declared: u32,
        count: usize,
        first_us: u64,
        last_us: u64,
        body_first: u64,
        body_last: u64,
    },
}

/// A 32-byte chain digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainDigest(pub [u8; 32]);

impl std::fmt::Debug for ChainDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainDigest({})", self.to_hex())
    }
}

impl ChainDigest {
    /// The digest chunk 0 links to: it commits to the session id and the metadata bytes.
    pub fn genesis(session: SessionId, meta_bytes: &[u8]) -> Self {
        let meta = Sha256::digest(meta_bytes);
        Self(
            Sha256::new()
                .chain_update(b"kubetape/genesis/v1")
                .chain_update(session.as_bytes())
                .chain_update(meta)
                .finalize()
                .into(),
        )
    }

    /// The digest of a chunk of format `version` (its header bytes and ciphertext).
    ///
    /// v1: SHA-256("kubetape/chain/v1" ‖ header ‖ ciphertext). v2: BLAKE3 in key-derivation
    /// mode with context [`CHAIN_CONTEXT_V2`] over ciphertext ‖ header (fixed length, last, so
    /// the split is unambiguous). Why BLAKE3: the digest runs over every stored byte, and on
    /// the pipeline bench SHA-256 (SHA-NI, ~2 GB/s) was 5% of the writer's CPU; BLAKE3 (SIMD,
    /// ~5 GB/s here) is 2%. Why ciphertext first: BLAKE3 hashes 1 KiB chunks in parallel only
    /// from an aligned start; behind a 109-byte prefix (domain and header) it measured 1.7x slower.
    pub fn of(version: u8, header: &[u8], ciphertext: &[u8]) -> Self {
        match version {
            1 => Self(
                Sha256::new()
                    .chain_update(b"kubetape/chain/v1")
                    .chain_update(header)
                    .chain_update(ciphertext)
                    .finalize()
                    .into(),
            ),
            _ => Self(
                blake3::Hasher::new_derive_key(CHAIN_CONTEXT_V2)
                    .update(ciphertext)
                    .update(header)
                    .finalize()
                    .into(),
            ),
        }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// Constant-time equality; digests gate trust decisions.
    pub fn ct_eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

/// The plaintext, authenticated header of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    /// 1 or 2: how the plaintext lays out its events (see the module docs).
    pub version: u8,
    pub compressed: bool,
    pub session: SessionId,
    pub seq: u64,
    pub first_us: u64,
    pub last_us: u64,
    pub prev: ChainDigest,
    pub events: u32,
    pub plaintext_len: u32,
    pub ciphertext_len: u32,
}

impl ChunkHeader {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = self.version;
        b[5] = if self.compressed { FLAG_ZSTD } else { 0 };
        b[8..24].copy_from_slice(self.session.as_bytes());
        b[24..32].copy_from_slice(&self.seq.to_be_bytes());
        b[32..40].copy_from_slice(&self.first_us.to_be_bytes());
        b[40..48].copy_from_slice(&self.last_us.to_be_bytes());
        b[48..80].copy_from_slice(&self.prev.0);
        b[80..84].copy_from_slice(&self.events.to_be_bytes());
        b[84..88].copy_from_slice(&self.plaintext_len.to_be_bytes());
        b[88..92].copy_from_slice(&self.ciphertext_len.to_be_bytes());
        b
    }

    /// Parses the first [`HEADER_LEN`] bytes; checks everything that can be checked without keys.
    pub fn parse(b: &[u8]) -> Result<Self, ChunkError> {
        if b.len() < HEADER_LEN {
            return Err(ChunkError::TooShort(b.len()));
        }
        if b[0..4] != MAGIC {
            return Err(ChunkError::BadMagic);
        }
        if !(1..=VERSION).contains(&b[4]) {
            return Err(ChunkError::UnsupportedVersion(b[4]));
        }
        if b[5] & !FLAG_ZSTD != 0 {
            return Err(ChunkError::UnknownFlags(b[5]));
        }
        if b[6..8] != [0, 0] {
            return Err(ChunkError::BadHeader("reserved"));
        }
        let u64_at = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let header = ChunkHeader {
            version: b[4],
            compressed: b[5] & FLAG_ZSTD != 0,
            session: SessionId::from_bytes(b[8..24].try_into().expect("16 bytes")),
            seq: u64_at(24),
            first_us: u64_at(32),
            last_us: u64_at(40),
            prev: ChainDigest(b[48..80].try_into().expect("32 bytes")),
            events: u32_at(80),
            plaintext_len: u32_at(84),
            ciphertext_len: u32_at(88),
        };
        if header.first_us > header.last_us {
            return Err(ChunkError::BadHeader("time range"));
        }
        if header.plaintext_len > MAX_PLAINTEXT {
            return Err(ChunkError::BadHeader("plaintext length"));
        }
        if (header.ciphertext_len as usize) < TAG_LEN {
            return Err(ChunkError::BadHeader("ciphertext length"));
        }
        Ok(header)
    }
}

/// A chunk as stored: header, ciphertext, signature. Only structure is checked on decode;
/// [`SealedChunk::open`] authenticates and decrypts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedChunk {
    pub header: ChunkHeader,
    header_bytes: [u8; HEADER_LEN],
    ciphertext: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
    /// Computed once: the writer, the verifier and the signature check all need it.
    digest: ChainDigest,
}

impl SealedChunk {
    /// Compresses, encrypts and signs `plaintext` (events in the v2 layout: see
    /// [`crate::event::encode_all_split`]) as chunk `seq`.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        session: SessionId,
        seq: u64,
        prev: ChainDigest,
        (first_us, last_us, events): (u64, u64, u32),
        plaintext: &[u8],
        compressor: &mut zstd::bulk::Compressor<'_>,
        dek: &DataKey,
        signer: &SigningKey,
    ) -> Result<Self, ChunkError> {
        // The body is built where it will be encrypted: zstd writes into a buffer with room
        // for the tag, and AES-GCM works in place.
        let mut body =
            Vec::with_capacity(zstd::zstd_safe::compress_bound(plaintext.len()) + TAG_LEN);
        compressor
            .compress_to_buffer(plaintext, &mut body)
            .map_err(|e| ChunkError::Compress(e.to_string()))?;
        // Incompressible output (already-compressed or random data) is stored as it is: the
        // reader then skips zstd too, and the chunk is never larger than its events.
        let is_compressed = body.len() < plaintext.len();
        if !is_compressed {
            body.clear();
            body.reserve_exact(plaintext.len() + TAG_LEN);
            body.extend_from_slice(plaintext);
        }
        let meta = (session, seq, prev, (first_us, last_us, events));
        Self::encrypt_and_sign(meta, plaintext.len(), is_compressed, body, dek, signer)
            .map_err(|(e, _)| e)
    }

    /// [`Self::seal`] without trying zstd, taking the plaintext's buffer instead of
    /// copying it: encrypted in place (it needs [`TAG_LEN`] bytes of spare capacity not to
    /// grow), it becomes the chunk's ciphertext and `plaintext` is left empty. The writer's
    /// path for incompressible output, where that copy was a fifth of the cost. On error
    /// `plaintext` is left as it was.
    pub fn seal_raw(
        (session, seq, prev): (SessionId, u64, ChainDigest),
        range: (u64, u64, u32),
        plaintext: &mut Vec<u8>,
        dek: &DataKey,
        signer: &SigningKey,
    ) -> Result<Self, ChunkError> {
        let len = plaintext.len();
        let body = std::mem::take(plaintext);
        Self::encrypt_and_sign((session, seq, prev, range), len, false, body, dek, signer).map_err(
            |(e, mut body)| {
                body.truncate(len);
                *plaintext = body;
                e
            },
        )
    }

    /// Encrypts `body` (zstd's output or the plaintext itself) in place and signs the chunk;
    /// on error hands `body` back.
    fn encrypt_and_sign(
        (session, seq, prev, (first_us, last_us, events)): (
            SessionId,
            u64,
            ChainDigest,
            (u64, u64, u32),
        ),
        plaintext_len: usize,
        is_compressed: bool,
        mut body: Vec<u8>,
        dek: &DataKey,
        signer: &SigningKey,
    ) -> Result<Self, (ChunkError, Vec<u8>)> {
        let lengths = u32::try_from(plaintext_len)
            .ok()
            .filter(|&n| n <= MAX_PLAINTEXT)
            .zip(u32::try_from(body.len() + TAG_LEN).ok());
        let Some((plaintext_len, ciphertext_len)) = lengths else {
            return Err((ChunkError::BadHeader("plaintext length"), body));
        };
        let header = ChunkHeader {
            version: VERSION,
            compressed: is_compressed,
            session,
            seq,
            first_us,
            last_us,
            prev,
            events,
            plaintext_len,
            ciphertext_len,
        };
        let header_bytes = header.to_bytes();
        if aead::seal_in_place(dek.bytes(), nonce(seq), &header_bytes, &mut body).is_err() {
            return Err((ChunkError::BadHeader("body length"), body));
        }
        let mut ciphertext = body;
        debug_assert_eq!(ciphertext.len(), header.ciphertext_len as usize);
        // The buffer had room for incompressible input (zstd's bound); a chunk waiting in an
        // upload queue should hold only its bytes, ~5x less on terminal output, and room for
        // the header and signature [`Self::into_encoded`] adds.
        if ciphertext.capacity() > ciphertext.len() + (ciphertext.len() >> 4) {
            ciphertext.shrink_to(ciphertext.len() + HEADER_LEN + SIGNATURE_LEN);
        }
        let digest = ChainDigest::of(VERSION, &header_bytes, &ciphertext);
        let signature = signer.sign(sign_domain(VERSION), &digest.0);
        Ok(Self {
            header,
            header_bytes,
            ciphertext,
            signature,
            digest,
        })
    }

    /// Parses a stored chunk's structure.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChunkError> {
        if bytes.len() < HEADER_LEN + TAG_LEN + SIGNATURE_LEN {
            return Err(ChunkError::TooShort(bytes.len()));
        }
        let header = ChunkHeader::parse(bytes)?;
        let actual = (bytes.len() - HEADER_LEN - SIGNATURE_LEN) as u64;
        if u64::from(header.ciphertext_len) != actual {
            return Err(ChunkError::LengthMismatch {
                declared: header.ciphertext_len.into(),
                actual,
            });
        }
        let (rest, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let header_bytes: [u8; HEADER_LEN] =
            bytes[..HEADER_LEN].try_into().expect("checked length");
        let ciphertext = rest[HEADER_LEN..].to_vec();
        let digest = ChainDigest::of(header.version, &header_bytes, &ciphertext);
        Ok(Self {
            header,
            header_bytes,
            ciphertext,
            signature: sig.try_into().expect("64 bytes"),
            digest,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ciphertext.len() + SIGNATURE_LEN);
        out.extend_from_slice(&self.header_bytes);
        out.extend_from_slice(&self.ciphertext);
        out.extend_from_slice(&self.signature);
        out
    }

    /// [`Self::encode`] in the ciphertext's own buffer: the header is moved in front of it and
    /// the signature appended, where `encode` took a second buffer. The recorder's path: for
    /// the 8 MiB chunks of bulk output, that buffer was fresh memory, faulted in a page at a
    /// time, and a copy of every recorded byte (perf on the exec bench's gateway).
    pub fn into_encoded(self) -> Vec<u8> {
        let mut out = self.ciphertext;
        out.reserve_exact(HEADER_LEN + SIGNATURE_LEN);
        out.splice(0..0, self.header_bytes);
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.ciphertext.len() + SIGNATURE_LEN
    }

    /// This chunk's chain digest (what the next chunk, or the seal, must name).
    pub fn digest(&self) -> ChainDigest {
        self.digest
    }

    /// Whether the signature over this chunk's digest verifies under `key`.
    pub fn signature_valid(&self, key: &PublicKey) -> bool {
        key.verify(
            sign_domain(self.header.version),
            &self.digest().0,
            &self.signature,
        )
    }

    /// Authenticates, decrypts, decompresses and decodes the events.
    pub fn open(&self, dek: &DataKey) -> Result<Vec<Event>, ChunkError> {
        let plain = aead::open(
            dek.bytes(),
            nonce(self.header.seq),
            &self.header_bytes,
            &self.ciphertext,
        )
        .map_err(|_| ChunkError::Decrypt)?;
        let raw = if self.header.compressed {
            let raw = zstd::bulk::decompress(&plain, self.header.plaintext_len as usize)
                .map_err(|e| ChunkError::Decompress(e.to_string()))?;
            if raw.len() != self.header.plaintext_len as usize {
                return Err(ChunkError::Decompress(format!(
                    "{} bytes, header says {}",
                    raw.len(),
                    self.header.plaintext_len
                )));
            }
            raw
        } else {
            if plain.len() != self.header.plaintext_len as usize {
                return Err(ChunkError::Decompress(format!(
                    "{} bytes, header says {}",
                    plain.len(),
                    self.header.plaintext_len
                )));
            }
            plain
        };
        let events = match self.header.version {
            1 => event::decode_all(&raw, self.header.first_us)?,
            _ => event::decode_split(&raw, self.header.first_us)?,
        };
        let h = &self.header;
        let (body_first, body_last) = (
            events.first().map_or(h.first_us, |e| e.at_us),
            events.last().map_or(h.first_us, |e| e.at_us),
        );
        if events.len() != h.events as usize || body_first != h.first_us || body_last != h.last_us {
            return Err(ChunkError::EventsDisagree {
                declared: h.events,
                count: events.len(),
                first_us: h.first_us,
                last_us: h.last_us,
                body_first,
                body_last,
            });
        }
        Ok(events)
    }
}

fn sign_domain(version: u8) -> &'static [u8] {
    match version {
        1 => b"kubetape/chunk/v1",
        _ => b"kubetape/chunk/v2",
    }
}

fn nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(NONCE_DOMAIN);
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ChunkHeader {
        ChunkHeader {
            version: 2,
            compressed: true,
            session: SessionId::from_bytes([0xAA; 16]),
            seq: 0x0102,
            first_us: 5,
            last_us: 9,
            prev: ChainDigest([0x11; 32]),
            events: 3,
            plaintext_len: 0x40,
            ciphertext_len: 0x20,
        }
    }

    #[test]
    fn header_layout_is_frozen() {
        let b = header().to_bytes();
        assert_eq!(&b[0..4], b"KTCK", "magic");
        assert_eq!(b[4], 2, "version");
        assert_eq!(b[5], 1, "flags: zstd");
        assert_eq!(&b[6..8], &[0, 0], "reserved");
        assert_eq!(&b[8..24], &[0xAA; 16], "session id");
        assert_eq!(
            &b[24..32],
            &[0, 0, 0, 0, 0, 0, 1, 2],
            "sequence, big-endian"
        );
        assert_eq!(&b[32..40], &5u64.to_be_bytes(), "first offset");
        assert_eq!(&b[40..48], &9u64.to_be_bytes(), "last offset");
        assert_eq!(&b[48..80], &[0x11; 32], "previous digest");
        assert_eq!(
            &b[80..92],
            &[0, 0, 0, 3, 0, 0, 0, 0x40, 0, 0, 0, 0x20],
            "counts"
        );
        assert_eq!(ChunkHeader::parse(&b).unwrap(), header());
    }

    #[test]
    fn header_rejects() {
        let good = header().to_bytes();
        let with = |i: usize, v: u8| {
            let mut b = good;
            b[i] = v;
            ChunkHeader::parse(&b)
        };
        assert_eq!(with(0, b'X'), Err(ChunkError::BadMagic));
        assert_eq!(with(4, 3), Err(ChunkError::UnsupportedVersion(3)));
        assert_eq!(with(4, 0), Err(ChunkError::UnsupportedVersion(0)));
        assert_eq!(with(4, 1).map(|h| h.version), Ok(1), "v1 stays readable");
        assert_eq!(with(5, 0x81), Err(ChunkError::UnknownFlags(0x81)));
        assert_eq!(with(7, 1), Err(ChunkError::BadHeader("reserved")));
        assert_eq!(with(39, 10), Err(ChunkError::BadHeader("time range")));
        assert_eq!(
            with(84, 0xff),
            Err(ChunkError::BadHeader("plaintext length"))
        );
        assert_eq!(
            ChunkHeader::parse(&good[..91]),
            Err(ChunkError::TooShort(91))
        );
    }

    /// zstd is kept only when it shrinks the body: random bytes (or tiny chunks, where the
    /// frame overhead wins) are stored as they are, flagged, and read back the same.
    #[test]
    fn incompressible_bodies_are_stored_raw() {
        let dek = DataKey::from_bytes([1; 32]);
        let signer = SigningKey::from_seed("k", [2; 32]);
        let mut z = zstd::bulk::Compressor::new(3).unwrap();
        let session = SessionId::from_bytes([3; 16]);
        let mut state = 0x1234_5678_9abc_def0u64;
        let random: Vec<u8> = (0..64 << 10)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let text = b"line of terminal output\r\n".repeat(2000);
        for (bytes, expect_compressed) in [(random, false), (text, true)] {
            let ev = Event {
                at_us: 1,
                kind: crate::EventKind::Data {
                    stream: crate::Stream::Stdout,
                    bytes,
                },
            };
            let plain = event::encode_all_split(std::slice::from_ref(&ev), 1);
            let c = SealedChunk::seal(
                session,
                0,
                ChainDigest([0; 32]),
                (1, 1, 1),
                &plain,
                &mut z,
                &dek,
                &signer,
            )
            .unwrap();
            assert_eq!(c.header.compressed, expect_compressed);
            assert!(c.ciphertext.len() <= plain.len() + TAG_LEN);
            let encoded = c.encode();
            let back = SealedChunk::decode(&encoded).unwrap();
            assert_eq!(back.open(&dek).unwrap(), vec![ev]);
            // The recorder's in-place encoding is the same bytes.
            assert_eq!(c.into_encoded(), encoded);
        }
    }

    /// A raw chunk's ciphertext is the plaintext's own buffer: encoded in place it is still
    /// exactly what `encode` writes, and decodes and opens.
    #[test]
    fn a_raw_chunk_encodes_in_place_as_encode_does() {
        let dek = DataKey::from_bytes([4; 32]);
        let signer = SigningKey::from_seed("k", [5; 32]);
        let ev = Event {
            at_us: 3,
            kind: crate::EventKind::Data {
                stream: crate::Stream::Stdout,
                bytes: (0..70_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            },
        };
        let mut plain = event::encode_all_split(std::slice::from_ref(&ev), 3);
        plain.reserve(TAG_LEN);
        let session = SessionId::from_bytes([6; 16]);
        let c = SealedChunk::seal_raw(
            (session, 2, ChainDigest([1; 32])),
            (3, 3, 1),
            &mut plain,
            &dek,
            &signer,
        )
        .unwrap();
        let encoded = c.encode();
        assert_eq!(encoded.len(), c.encoded_len());
        assert_eq!(c.clone().into_encoded(), encoded);
        assert_eq!(
            SealedChunk::decode(&encoded).unwrap().open(&dek).unwrap(),
            vec![ev]
        );
    }

    #[test]
    fn seal_open_and_nonce_binding() {
        let dek = DataKey::from_bytes([1; 32]);
        let signer = SigningKey::from_seed("k", [2; 32]);
        let mut z = zstd::bulk::Compressor::new(3).unwrap();
        let ev = Event {
            at_us: 7,
            kind: crate::EventKind::Marker { text: "hi".into() },
        };
        let plain = event::encode_all_split(std::slice::from_ref(&ev), 7);
        let session = SessionId::from_bytes([3; 16]);
        let c = SealedChunk::seal(
            session,
            4,
            ChainDigest([0; 32]),
            (7, 7, 1),
            &plain,
            &mut z,
            &dek,
            &signer,
        )
        .unwrap();
        assert!(c.signature_valid(&signer.public()));
        assert_eq!(c.open(&dek).unwrap(), vec![ev]);
        assert_eq!(SealedChunk::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            c.open(&DataKey::from_bytes([9; 32])),
            Err(ChunkError::Decrypt)
        );
        // The nonce is derived from the sequence number in the (authenticated) header, so a
        // chunk cannot be decrypted as if it were another position.
        let mut bytes = c.encode();
        bytes[31] ^= 1;
        let moved = SealedChunk::decode(&bytes).unwrap();
        assert_eq!(moved.open(&dek), Err(ChunkError::Decrypt));
        assert!(!moved.signature_valid(&signer.public()));
    }
}
