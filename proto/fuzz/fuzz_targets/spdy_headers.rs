//! SPDY header blocks, three ways, chosen by the first input byte:
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
//!   most `MAX_PAIRS` pairs, and is refused otherwise. A block may be padded (one extra pair) to
//!   an uncompressed size within 8 bytes of `MAX_BLOCK`, so the limit itself is exercised.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use proto::spdy::headers::{
    HeaderDecoder, HeaderEncoder, MAX_BLOCK, MAX_PAIRS, encode_block, parse_block,
};

#[derive(Arbitrary, Debug)]
struct Block {
    pairs: Vec<(String, String)>,
    /// ≥ 0xfff0: pad to `MAX_BLOCK - 8 + (pad - 0xfff0)` uncompressed bytes. Rare on purpose:
    /// a 256 KiB block costs milliseconds to deflate and inflate, small ones microseconds.
    pad: u16,
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
    for Block { mut pairs, pad } in blocks {
        let raw_len = |pairs: &[(String, String)]| {
            4 + pairs
                .iter()
                .map(|(n, v)| 8 + n.len() + v.len())
                .sum::<usize>()
        };
        if pad >= 0xfff0 {
            let want = MAX_BLOCK - 8 + usize::from(pad - 0xfff0);
            let fill = want.saturating_sub(raw_len(&pairs) + 8 + "x-pad".len());
            pairs.push(("x-pad".into(), "p".repeat(fill)));
        }
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let raw = encode_block(&refs);
        assert_eq!(raw.len(), raw_len(&pairs));
        let block = encoder.encode(&refs);
        let decoded = decoder.decode(&block);
        if raw.len() > MAX_BLOCK || pairs.len() > MAX_PAIRS as usize {
            assert!(
                decoded.is_err(),
                "over the limits, {} bytes and {} pairs",
                raw.len(),
                pairs.len()
            );
            // The inflate context is now out of step with the encoder's: the connection is over.
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
