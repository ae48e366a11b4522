//! Gaps: a writer's signed admission that part of a session was lost, and what.
//!
//! The recorder never drops output silently. When the store and the local spool both refuse
//! what it holds for longer than its policy allows (see [`crate::store::Recorder`]), it gives
//! up on the chunks it could not write, and says so twice:
//! - in the recording, as a **gap event** (tag 12) at the start of the chunk that follows the
//!   lost ones, so `cat`, `play` and `export` show the loss where it happened;
//! - in the **seal**, as `gaps` (signed, plaintext), so that `verify` reports the loss even with
//!   only the public key, and accepts the missing chunks as declared rather than as damage.
//!
//! A gap that covers chunks also carries `resume`, the chain digest of the last chunk it covers:
//! the chunk after the gap links to that digest, so the chain is still checked across the gap
//! (a verifier cannot compute the digest of a chunk it does not have). The chunks a gap covers
//! were sealed and their puts may have reached the store after all (a put that timed out can
//! still land), so they may be present or absent; present ones verify like any other chunk,
//! but their bytes are not in the seal's counts.
//!
//! A gap without chunks records events that never reached the recorder (an audit log's records
//! dropped while its stream could not be written): nothing is missing from the chain, the gap
//! only says what is not there.
//!
//! Stored as JSON text (in the event, and as elements of the seal's `gaps`), like audit records,
//! so fields added later survive older readers verbatim.

use crate::chunk::ChainDigest;
use crate::counts::StreamBytes;

/// What was lost, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// Why it was lost, for a person: e.g. "the store was unavailable for 30 s and the local
    /// spool was full".
    pub cause: String,
    /// First and last event offset of what was lost (µs since the session started).
    pub from_us: u64,
    pub to_us: u64,
    /// Stream bytes lost.
    pub bytes: StreamBytes,
    /// Events lost (in an audit stream: records).
    pub events: u64,
    /// The sealed chunks the gap stands for, when the loss was of chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<GapChunks>,
}

/// A run of chunks given up on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GapChunks {
    /// Sequence numbers of the first and last chunk lost (inclusive).
    pub first: u64,
    pub last: u64,
    /// Chain digest of chunk `last` (hex): what chunk `last + 1` links to.
    pub resume: String,
}

impl Gap {
    /// The event payload / seal element: compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a gap serializes")
    }

    /// Parses a gap event's text.
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// Whether this gap accounts for the chunks `first..=last` being absent, with the chunk
    /// after them linking to `next_prev`: the absent run must lie within the gap's chunks and
    /// end where they end (chunks before it in the gap may have landed after all).
    pub fn explains(&self, first: u64, last: u64, next_prev: &ChainDigest) -> bool {
        self.chunks.as_ref().is_some_and(|c| {
            c.first <= first
                && last == c.last
                && ChainDigest::from_hex(&c.resume).is_some_and(|d| d.ct_eq(next_prev))
        })
    }

    /// Whether chunk `seq` is one this gap gave up on.
    pub fn covers(&self, seq: u64) -> bool {
        self.chunks
            .as_ref()
            .is_some_and(|c| (c.first..=c.last).contains(&seq))
    }

    /// One line for people: `0:12.300–0:13.500: 4.1 KB of output, 37 events lost (cause)`.
    pub fn describe(&self) -> String {
        let out = self.bytes.stdout + self.bytes.stderr;
        let mut what = Vec::new();
        if out > 0 {
            what.push(format!("{out} bytes of output"));
        }
        if self.bytes.stdin > 0 {
            what.push(format!("{} bytes of input", self.bytes.stdin));
        }
        if self.bytes.port_forward > 0 {
            what.push(format!("{} port-forwarded bytes", self.bytes.port_forward));
        }
        let plural = if self.events == 1 { "" } else { "s" };
        what.push(format!("{} event{plural}", self.events));
        format!(
            "{}–{}: {} lost ({})",
            clock(self.from_us),
            clock(self.to_us),
            what.join(", "),
            self.cause
        )
    }
}

/// `m:ss.mmm` (or `h:mm:ss.mmm`) of a session offset.
fn clock(us: u64) -> String {
    let ms = us / 1000;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{ms:03}")
    } else {
        format!("{m}:{s:02}.{ms:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    fn gap(chunks: Option<GapChunks>) -> Gap {
        Gap {
            cause: "store down".into(),
            from_us: 12_300_000,
            to_us: 13_500_000,
            bytes: StreamBytes {
                stdout: 4100,
                ..StreamBytes::default()
            },
            events: 37,
            chunks,
        }
    }

    #[test]
    fn json_round_trips_and_is_stable() {
        let g = gap(Some(GapChunks {
            first: 4,
            last: 6,
            resume: "ab".repeat(32),
        }));
        let json = g.to_json();
        assert_eq!(Gap::parse(&json).unwrap(), g);
        assert!(json.starts_with(r#"{"cause":"store down","from_us":12300000,"to_us":13500000,"bytes":{"stdin":0,"stdout":4100,"stderr":0,"port_forward":0},"events":37,"chunks":{"first":4,"last":6,"#), "{json}");
        // Fields a newer writer adds are ignored, not refused.
        let newer = json.replacen('{', r#"{"new_field":[1,2],"#, 1);
        assert_eq!(Gap::parse(&newer).unwrap(), g);
        assert!(Gap::parse("{}").is_err());
        assert!(Gap::parse("not json").is_err());
    }

    #[test]
    fn a_gap_explains_only_the_run_it_declares_with_its_digest() {
        let digest = ChainDigest::genesis(SessionId::from_bytes([1; 16]), b"meta");
        let other = ChainDigest::genesis(SessionId::from_bytes([2; 16]), b"meta");
        let g = gap(Some(GapChunks {
            first: 4,
            last: 6,
            resume: digest.to_hex(),
        }));
        assert!(g.explains(4, 6, &digest));
        assert!(g.explains(5, 6, &digest), "chunk 4 landed after all");
        assert!(!g.explains(3, 6, &digest), "chunk 3 is not the gap's");
        assert!(
            !g.explains(4, 5, &digest),
            "the run must end where the gap does"
        );
        assert!(
            !g.explains(4, 6, &other),
            "the next chunk must link to the gap's digest"
        );
        assert!(!gap(None).explains(4, 6, &digest));
        assert!(g.covers(4) && g.covers(6) && !g.covers(7));
    }

    #[test]
    fn described_for_people() {
        assert_eq!(
            gap(None).describe(),
            "0:12.300–0:13.500: 4100 bytes of output, 37 events lost (store down)"
        );
        assert_eq!(clock(3_723_004_000), "1:02:03.004");
    }
}
