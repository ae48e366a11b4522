//! LEB128 unsigned varints, the length and time-delta encoding of the event stream.
//!
//! Decoding distinguishes "ran out of bytes" from "bytes that can never be a varint" so a caller
//! that streams can tell "read more" from "this input is bad".

/// Longest encoding of a `u64` (ten 7-bit groups).
pub const MAX_LEN: usize = 10;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// The input ended inside the varint.
    #[error("input ended inside a varint")]
    Incomplete,
    /// More than ten bytes, or a tenth byte with bits above `u64::MAX`.
    #[error("varint overflows 64 bits")]
    Overflow,
}

/// Appends `value` to `out`.
#[inline]
pub fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes one varint from the front of `input`, returning it and the bytes it used.
#[inline]
pub fn decode(input: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(MAX_LEN) {
        let low = u64::from(byte & 0x7f);
        if i == MAX_LEN - 1 && byte > 1 {
            return Err(VarintError::Overflow);
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if input.len() >= MAX_LEN {
        Err(VarintError::Overflow)
    } else {
        Err(VarintError::Incomplete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            encode(*value, &mut out);
            assert_eq!(&out[..], *bytes, "encoding {value}");
            assert_eq!(decode(bytes), Ok((*value, bytes.len())));
        }
    }

    #[test]
    fn incomplete_is_not_invalid() {
        assert_eq!(decode(&[]), Err(VarintError::Incomplete));
        assert_eq!(decode(&[0x80, 0x80]), Err(VarintError::Incomplete));
        assert_eq!(decode(&[0xff; 10]), Err(VarintError::Overflow));
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(VarintError::Overflow)
        );
    }

    proptest! {
        #[test]
        fn round_trip(value: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode(value, &mut out);
            let used = out.len();
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode(&out), Ok((value, used)));
        }
    }
}
