//! SPDY/3 header blocks: `u32 count` then `(u32 len, name, u32 len, value)` pairs (multi-values
//! NUL-separated, names lowercase), zlib-compressed with the SPDY dictionary.
//!
//! Each direction of a connection has ONE compression context for its whole life: every block
//! must be inflated in order from the first, and a writer must deflate with its own context, sync
//! flushing after each block. So a relay that changes any header block re-encodes with its own
//! [`HeaderEncoder`] rather than forwarding bytes.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;
use super::frame::SpdyError;

/// Largest decompressed header block accepted (a zlib-bomb guard; real blocks are < 1 KiB).
pub const MAX_BLOCK: usize = 256 << 10;
/// Most name/value pairs accepted in one block.
pub const MAX_PAIRS: u32 = 1024;

/// Name/value pairs in wire order.
pub type Headers = Vec<(String, String)>;

/// Looks up the first value of `name`.
pub fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Serializes pairs into an uncompressed block.
pub fn encode_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (headers.len() as u32).to_be_bytes().to_vec();
    for (n, v) in headers {
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n.to_ascii_lowercase().as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Parses an uncompressed block.
pub fn parse_block(b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |m: &str| SpdyError::HeaderBlock(m.to_string());
    let mut at = 0usize;
    let take_u32 = |at: &mut usize| -> Result<u32, SpdyError> {
        let v = b.get(*at..*at + 4).ok_or_else(|| bad("truncated"))?;
        *at += 4;
        Ok(u32::from_be_bytes(v.try_into().expect("4 bytes")))
    };
    let count = take_u32(&mut at)?;
    if count > MAX_PAIRS {
        return Err(bad("too many headers"));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let string = |at: &mut usize| -> Result<String, SpdyError> {
            let len = take_u32(at)? as usize;
            let s = b.get(*at..*at + len).ok_or_else(|| bad("truncated"))?;
            *at += len;
            String::from_utf8(s.to_vec()).map_err(|_| bad("not UTF-8"))
        };
        let name = string(&mut at)?;
        let value = string(&mut at)?;
        out.push((name, value));
    }
    Ok(out)
}

/// One direction's inflate context.
pub struct HeaderDecoder {
    z: Decompress,
}

impl std::fmt::Debug for HeaderDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderDecoder")
    }
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecoder {
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Inflates and parses the next block of this direction.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        parse_block(&self.inflate(block)?)
    }

    /// Inflates the next block of this direction (for callers that forward it unparsed).
    pub fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let err = |m: String| SpdyError::HeaderBlock(m);
        let mut out = Vec::with_capacity(256);
        loop {
            if out.len() == out.capacity() {
                // Room for one byte past the limit tells a block of exactly MAX_BLOCK bytes (then
                // the inflater stops short of it) from a longer one (it fills it).
                if out.len() > MAX_BLOCK {
                    return Err(err("decompressed block exceeds the limit".into()));
                }
                out.reserve_exact(out.len().max(256).min(MAX_BLOCK + 1 - out.len()));
            }
            let before_in = self.z.total_in();
            let before_out = out.len();
            match self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => {
                    return Err(err("zlib stream ended; SPDY contexts never end".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    if e.needs_dictionary() != Some(0xE3C6_A7C2) {
                        return Err(err("peer uses an unknown zlib dictionary".into()));
                    }
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| err(e.to_string()))?;
                }
                Err(e) => return Err(err(e.to_string())),
            }
            let used = (self.z.total_in() - before_in) as usize;
            input = &input[used..];
            let progressed = used > 0 || out.len() > before_out;
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed && out.len() < out.capacity() {
                return Err(err("truncated header block".into()));
            }
        }
    }
}

/// One direction's deflate context.
pub struct HeaderEncoder {
    z: Compress,
}

impl std::fmt::Debug for HeaderEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderEncoder")
    }
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    pub fn new() -> Self {
        // Best compression, as spdystream uses, so our first block begins `78 F9` like kubectl's.
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary())
            .expect("a fresh deflate context accepts a dictionary");
        Self { z }
    }

    /// Compresses the next block of this direction.
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let raw = encode_block(headers);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(64);
            let before = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate into a growing buffer");
            input = &input[(self.z.total_in() - before) as usize..];
            // Done when all input is consumed and the sync flush fit in the buffer.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_context_per_direction() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        let first = enc.encode(&[("streamtype", "error")]);
        // zlib header with FDICT and the SPDY dictionary id, as observed from kubectl.
        assert_eq!(&first[..6], &[0x78, 0xF9, 0xE3, 0xC6, 0xA7, 0xC2]);
        assert_eq!(
            dec.decode(&first).unwrap(),
            vec![("streamtype".to_string(), "error".to_string())]
        );
        for kind in ["stdin", "stdout", "stderr", "resize"] {
            let block = enc.encode(&[("streamtype", kind), ("port", "80")]);
            let h = dec.decode(&block).unwrap();
            assert_eq!(get(&h, "streamtype"), Some(kind));
            assert_eq!(get(&h, "port"), Some("80"));
        }
        // A fresh decoder cannot start mid-stream: contexts are per connection.
        let later = enc.encode(&[("streamtype", "stdout")]);
        assert!(HeaderDecoder::new().decode(&later).is_err());
    }

    #[test]
    fn empty_block_for_syn_reply() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        assert_eq!(dec.decode(&enc.encode(&[])).unwrap(), vec![]);
    }

    /// Found by fuzzing (spdy_headers): the buffer reached MAX_BLOCK exactly when the block did,
    /// and a full buffer at the limit was taken for "more to come", so the largest block the
    /// limit allows was refused.
    #[test]
    fn block_limit_is_inclusive() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        // count, name length, "x-pad", value length: 17 bytes besides the value.
        let value = "p".repeat(MAX_BLOCK - 17);
        assert_eq!(encode_block(&[("x-pad", &value)]).len(), MAX_BLOCK);
        let h = dec.decode(&enc.encode(&[("x-pad", &value)])).unwrap();
        assert_eq!(get(&h, "x-pad").map(str::len), Some(MAX_BLOCK - 17));
        // One byte more is refused, by a decoder in step with the encoder.
        let value = "p".repeat(MAX_BLOCK - 16);
        assert!(dec.decode(&enc.encode(&[("x-pad", &value)])).is_err());
    }

    #[test]
    fn bad_blocks() {
        assert!(parse_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(parse_block(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(HeaderDecoder::new().decode(b"\x78\x9c garbage").is_err());
        assert!(
            HeaderDecoder::new()
                .decode(&[0x78, 0xbb, 0, 0, 0, 1])
                .is_err(),
            "unknown dictionary"
        );
    }
}
