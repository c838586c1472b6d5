//! Standard-alphabet base64 (RFC 4648 §4), as the Engine.IO polling payload carries binary packets.
//!
//! Written here rather than pulled in so that the codec depends on `bytes` and `serde_json` only.
//! Decoding accepts input with or without `=` padding (browsers pad, some clients do not) and rejects
//! everything else: foreign characters, misplaced padding, a lone trailing character, and non-zero
//! bits left over in the last character (which would make two inputs decode to the same bytes).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a base64 text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// A byte outside the alphabet, at this offset.
    InvalidByte(usize),
    /// `=` somewhere other than the last one or two places of the final quantum.
    MisplacedPadding,
    /// A length that no encoder produces (one character left over).
    InvalidLength,
    /// The last character carries bits that do not belong to any byte.
    TrailingBits,
}

impl std::fmt::Display for Base64Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Base64Error::InvalidByte(at) => write!(f, "invalid base64 character at offset {at}"),
            Base64Error::MisplacedPadding => f.write_str("misplaced base64 padding"),
            Base64Error::InvalidLength => f.write_str("invalid base64 length"),
            Base64Error::TrailingBits => f.write_str("non-canonical base64 (trailing bits set)"),
        }
    }
}

impl std::error::Error for Base64Error {}

/// Appends the padded base64 form of `input` to `out`.
pub fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// The padded base64 form of `input`.
pub fn encode(input: &[u8]) -> String {
    let mut out = Vec::new();
    encode_into(input, &mut out);
    // The alphabet and '=' are ASCII.
    String::from_utf8(out).expect("base64 output is ASCII")
}

fn value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes base64 text; the output is at most three quarters of the input, allocated once.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, Base64Error> {
    // Strip at most two '=' from the end; any other '=' is an error found below.
    let mut body = input;
    let mut padding = 0;
    while padding < 2 && body.last() == Some(&b'=') {
        body = &body[..body.len() - 1];
        padding += 1;
    }
    if padding > 0 && !input.len().is_multiple_of(4) {
        return Err(Base64Error::MisplacedPadding);
    }
    if body.len() % 4 == 1 {
        return Err(Base64Error::InvalidLength);
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (at, &byte) in body.iter().enumerate() {
        let v = match value(byte) {
            Some(v) => v,
            None if byte == b'=' => return Err(Base64Error::MisplacedPadding),
            None => return Err(Base64Error::InvalidByte(at)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return Err(Base64Error::TrailingBits);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in cases {
            assert_eq!(encode(plain.as_bytes()), *coded);
            assert_eq!(decode(coded.as_bytes()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn engine_io_spec_example() {
        // The Engine.IO spec's binary packet example: bytes 1,2,3,4 travel as "AQIDBA==".
        assert_eq!(encode(&[1, 2, 3, 4]), "AQIDBA==");
        assert_eq!(decode(b"AQIDBA==").unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn accepts_missing_padding() {
        assert_eq!(decode(b"AQIDBA").unwrap(), [1, 2, 3, 4]);
        assert_eq!(decode(b"Zm8").unwrap(), b"fo");
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(decode(b"A"), Err(Base64Error::InvalidLength));
        assert_eq!(decode(b"AB=C"), Err(Base64Error::MisplacedPadding));
        assert_eq!(decode(b"AQ==="), Err(Base64Error::MisplacedPadding));
        assert_eq!(decode(b"AQ="), Err(Base64Error::MisplacedPadding));
        assert_eq!(decode(b"AQ!D"), Err(Base64Error::InvalidByte(2)));
        assert_eq!(decode(b"Zh=="), Err(Base64Error::TrailingBits));
    }
}
