//! The HTTP long-polling payload: several Engine.IO packets in one request or response body.
//!
//! Packets are joined by the record separator (0x1e), which cannot occur in a text packet's UTF-8
//! JSON text unescaped and never occurs in base64. Text packets keep their type digit; a binary
//! message travels as `b` followed by its base64 form.

use bytes::Bytes;

use crate::base64;
use crate::engine::{check_size, EngineError, Frame, Packet};
use crate::{ByteStr, Limits};

/// The separator between packets of a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// Decodes a polling body into its packets, in order. The whole body is refused if any packet is
/// malformed: a client that sends one bad packet in a batch is broken, and half-applying a batch would
/// leave its session in a state the client did not intend.
pub fn decode(body: Bytes, limits: &Limits) -> Result<Vec<Packet>, EngineError> {
    check_size(body.len(), limits)?;
    let text = ByteStr::from_utf8(body).map_err(|_| EngineError::NotUtf8)?;
    let mut packets = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes().clone();
    loop {
        let end = memchr(SEPARATOR, &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let part = text.slice(start..end);
        packets.push(decode_one(part, limits)?);
        if end == bytes.len() {
            return Ok(packets);
        }
        start = end + 1;
    }
}

fn decode_one(part: ByteStr, limits: &Limits) -> Result<Packet, EngineError> {
    match part.as_bytes().first() {
        Some(b'b') => base64::decode(&part.as_bytes()[1..])
            .map(|raw| Packet::Binary(Bytes::from(raw)))
            .map_err(EngineError::Base64),
        _ => Packet::decode_text(part, limits),
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Appends one frame in payload form: text as is, binary as `b` + base64.
pub fn encode_frame_into(frame: &Frame, out: &mut Vec<u8>) {
    match frame {
        Frame::Text(text) => out.extend_from_slice(text.as_bytes()),
        Frame::Binary(bytes) => {
            out.push(b'b');
            base64::encode_into(bytes, out);
        }
    }
}

/// Joins already-encoded frames into one polling response body.
pub fn encode_frames<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> Bytes {
    let mut out = Vec::new();
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        encode_frame_into(frame, &mut out);
    }
    Bytes::from(out)
}

/// Encodes packets into one polling body.
pub fn encode(packets: &[Packet]) -> Bytes {
    let frames: Vec<Frame> = packets.iter().map(Packet::encode).collect();
    encode_frames(&frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &'static [u8]) -> Result<Vec<Packet>, EngineError> {
        decode(Bytes::from_static(s), &Limits::DEFAULT)
    }

    #[test]
    fn spec_payload_example() {
        // The spec's example: "hello", "€" and the bytes 1,2,3,4 in one payload.
        let wire: &[u8] = "4hello\u{1e}4€\u{1e}bAQIDBA==".as_bytes();
        let packets = vec![
            Packet::Message("hello".into()),
            Packet::Message("€".into()),
            Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
        ];
        assert_eq!(
            decode(Bytes::copy_from_slice(wire), &Limits::DEFAULT).unwrap(),
            packets
        );
        assert_eq!(encode(&packets), wire);
    }

    #[test]
    fn single_packets_and_control_packets() {
        assert_eq!(dec(b"2").unwrap(), vec![Packet::Ping(ByteStr::new())]);
        assert_eq!(dec(b"6\x1e1").unwrap(), vec![Packet::Noop, Packet::Close]);
        assert_eq!(dec(b"b").unwrap(), vec![Packet::Binary(Bytes::new())]);
    }

    #[test]
    fn malformed_payloads_are_refused_whole() {
        assert_eq!(dec(b""), Err(EngineError::Empty));
        assert_eq!(dec(b"4a\x1e"), Err(EngineError::Empty));
        assert_eq!(dec(b"\x1e4a"), Err(EngineError::Empty));
        assert_eq!(dec(b"4a\x1e9"), Err(EngineError::UnknownType('9')));
        assert!(matches!(dec(b"4a\x1ebA*=="), Err(EngineError::Base64(_))));
        assert_eq!(dec(b"4\xc3"), Err(EngineError::NotUtf8));
        let limits = Limits {
            max_payload: 3,
            ..Limits::DEFAULT
        };
        assert_eq!(
            decode(Bytes::from_static(b"4abc"), &limits),
            Err(EngineError::TooLarge { len: 4, max: 3 })
        );
    }
}
