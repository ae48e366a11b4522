//! SPDY header blocks, two ways, chosen by the first input byte:
//!
//! - `0x00..=0x7f`, **blocks**: the rest is a sequence of compressed blocks, each one length byte
//!   then that many bytes (the last one takes what is left), fed in order to ONE `HeaderDecoder`
//!   as a connection's SYN_STREAM/SYN_REPLY/HEADERS frames would be. A second decoder fed the same
//!   blocks with `inflate` then `parse_block` must agree with `decode` block for block (both
//!   errors, or the same headers); an inflated block is never larger than `MAX_BLOCK` and a parsed
//!   one never has more than `MAX_PAIRS` pairs. Errors do not stop the sequence: a decoder used
//!   after a failure must still not panic. `parse_block` is also run on the raw rest.
//! - `0x80..=0xff`, **round trip**: fuzzer-built blocks of name/value pairs (`arbitrary`) go
//!   through one `HeaderEncoder` and one `HeaderDecoder`; each decodes to exactly its pairs with
//!   names ASCII-lowercased, as long as the uncompressed block is within `MAX_BLOCK` and has at
//!   most `MAX_PAIRS` pairs, and is refused otherwise. A block may also ask for a check of the
//!   limit itself: a fresh decoder must accept a first block of `MAX_BLOCK - 8 + k` uncompressed
//!   bytes exactly when `k <= 8` (the 16 blocks are deflated once per process: a 256 KiB deflate
//!   at best compression per run would be most of the target's time).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use proto::spdy::headers::{
    HeaderDecoder, HeaderEncoder, MAX_BLOCK, MAX_PAIRS, encode_block, parse_block,
};

type Pairs = Vec<(String, String)>;

#[derive(Arbitrary, Debug)]
struct Block {
    pairs: Vec<(String, String)>,
    /// ≥ 0xfff0: also check the limit with `AT_LIMIT[limit - 0xfff0]`. Rare on purpose: inflating
    /// 256 KiB takes milliseconds, a small block microseconds.
    limit: u16,
}

/// Pads a block of `pairs` with one more pair to `size` uncompressed bytes.
fn pad(pairs: &mut Vec<(String, String)>, size: usize) {
    let fill = size.saturating_sub(raw_len(pairs) + 8 + "x-pad".len());
    pairs.push(("x-pad".into(), "p".repeat(fill)));
}

fn raw_len(pairs: &[(String, String)]) -> usize {
    4 + pairs
        .iter()
        .map(|(n, v)| 8 + n.len() + v.len())
        .sum::<usize>()
}

/// First blocks of a connection, deflated by a fresh encoder, of `MAX_BLOCK - 8 + k`
/// uncompressed bytes for `k` in `0..16`, with their pairs.
static AT_LIMIT: LazyLock<Vec<(Pairs, Vec<u8>)>> = LazyLock::new(|| {
    (0..16)
        .map(|k| {
            let mut pairs = vec![("streamtype".to_string(), "data".to_string())];
            pad(&mut pairs, MAX_BLOCK - 8 + k);
            assert_eq!(raw_len(&pairs), MAX_BLOCK - 8 + k);
            let block = HeaderEncoder::new().encode(&refs(&pairs));
            (pairs, block)
        })
        .collect()
});

fn refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode < 0x80 {
        blocks(rest);
    } else if let Ok(blocks) = Unstructured::new(rest).arbitrary::<Vec<Block>>() {
        round_trip(blocks);
    }
});

fn blocks(mut rest: &[u8]) {
    if let Ok(headers) = parse_block(rest) {
        assert!(headers.len() <= MAX_PAIRS as usize);
    }
    let mut decoder = HeaderDecoder::new();
    let mut twin = HeaderDecoder::new();
    while let Some((&len, tail)) = rest.split_first() {
        let (block, tail) = tail.split_at((len as usize).min(tail.len()));
        rest = tail;
        let decoded = decoder.decode(block);
        let inflated = twin.inflate(block);
        if let Ok(raw) = &inflated {
            assert!(raw.len() <= MAX_BLOCK, "inflated {} bytes", raw.len());
        }
        let parsed = inflated.and_then(|raw| parse_block(&raw));
        assert_eq!(decoded.is_ok(), parsed.is_ok(), "{decoded:?} vs {parsed:?}");
        if let (Ok(a), Ok(b)) = (&decoded, &parsed) {
            assert_eq!(a, b);
            assert!(a.len() <= MAX_PAIRS as usize);
        }
    }
}

fn round_trip(blocks: Vec<Block>) {
    let mut encoder = HeaderEncoder::new();
    let mut decoder = HeaderDecoder::new();
    for Block { pairs, limit } in blocks {
        if limit >= 0xfff0 {
            let (pairs, block) = &AT_LIMIT[usize::from(limit - 0xfff0)];
            let size = raw_len(pairs);
            match HeaderDecoder::new().decode(block) {
                Ok(got) => {
                    assert!(size <= MAX_BLOCK, "{size} bytes accepted");
                    assert_eq!(&got, pairs);
                }
                Err(e) => assert!(size > MAX_BLOCK, "{size} bytes refused: {e}"),
            }
        }
        let raw = encode_block(&refs(&pairs));
        assert_eq!(raw.len(), raw_len(&pairs));
        let block = encoder.encode(&refs(&pairs));
        let decoded = decoder.decode(&block);
        if raw.len() > MAX_BLOCK || pairs.len() > MAX_PAIRS as usize {
            assert!(
                decoded.is_err(),
                "over the limits, {} bytes and {} pairs",
                raw.len(),
                pairs.len()
            );
            // The inflate context may now be out of step with the encoder's: the connection is over.
            return;
        }
        let expected: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        match decoded {
            Ok(got) => assert_eq!(got, expected),
            Err(e) => panic!(
                "block of {} bytes, {} pairs refused: {e}",
                raw.len(),
                expected.len()
            ),
        }
    }
}
