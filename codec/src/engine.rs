//! Engine.IO v4 packets: the transport layer's framing.
//!
//! An Engine.IO packet is one type digit followed by its data. Over WebSocket each packet is one
//! message: text messages carry the digit, binary messages are always a `message` packet with raw bytes
//! and no digit. Over HTTP long-polling several packets travel in one body (see `payload`).
//!
//! Type digits (protocol v4): `0` open, `1` close, `2` ping, `3` pong, `4` message, `5` upgrade,
//! `6` noop. Ping and pong may carry a payload: `probe` during the WebSocket upgrade.

use bytes::Bytes;
use serde_json::Value;

use crate::base64::Base64Error;
use crate::{ByteStr, Limits};

/// One WebSocket message, or one packet of a polling payload before the payload framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(ByteStr),
    Binary(Bytes),
}

impl Frame {
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The fields of the open packet the server sends first on every new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Session id; the client repeats it as `sid` on every later polling request.
    pub sid: String,
    /// Transports the client may upgrade to (`["websocket"]` for a polling session).
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong before closing the session.
    pub ping_timeout: u64,
    /// Largest payload, in bytes, the server accepts in one message or polling request.
    pub max_payload: u64,
}

impl Handshake {
    /// The JSON text, keys in the order the reference server writes them (serde_json's map would sort
    /// them, and people compare open packets by eye).
    fn to_json(&self) -> String {
        let quote = |s: &str| Value::from(s).to_string();
        let upgrades: Vec<String> = self.upgrades.iter().map(|u| quote(u)).collect();
        format!(
            r#"{{"sid":{},"upgrades":[{}],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            quote(&self.sid),
            upgrades.join(","),
            self.ping_interval,
            self.ping_timeout,
            self.max_payload
        )
    }

    fn from_json(text: &str) -> Result<Handshake, EngineError> {
        let bad = |why: &str| EngineError::BadHandshake(why.to_owned());
        let value: Value =
            serde_json::from_str(text).map_err(|e| EngineError::BadHandshake(e.to_string()))?;
        let obj = value.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let number = |key: &str| {
            obj.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(&format!("`{key}` is not a non-negative integer")))
        };
        let sid = obj
            .get("sid")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`sid` is not a string"))?
            .to_owned();
        let upgrades = obj
            .get("upgrades")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("`upgrades` is not an array"))?
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`upgrades` holds a non-string"))?;
        Ok(Handshake {
            sid,
            upgrades,
            ping_interval: number("pingInterval")?,
            ping_timeout: number("pingTimeout")?,
            max_payload: number("maxPayload")?,
        })
    }
}

/// An Engine.IO v4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Open(Handshake),
    Close,
    /// Heartbeat from the server; the text is empty, or `probe` during an upgrade.
    Ping(ByteStr),
    /// Answer to a ping, echoing its text.
    Pong(ByteStr),
    /// A text message: for Socket.IO, one encoded Socket.IO packet.
    Message(ByteStr),
    /// A binary message: for Socket.IO, one attachment of a binary packet.
    Binary(Bytes),
    Upgrade,
    Noop,
}

/// Why an Engine.IO packet or payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// A packet with no type digit at all.
    Empty,
    /// The first character is not one of the seven type digits.
    UnknownType(char),
    /// Text that is not UTF-8.
    NotUtf8,
    /// An open packet whose JSON is missing or mistypes a field.
    BadHandshake(String),
    /// Close, upgrade and noop carry no data; this one did.
    UnexpectedData(&'static str),
    /// A polling payload's binary packet (`b...`) is not valid base64.
    Base64(Base64Error),
    /// More bytes than `Limits::max_payload`.
    TooLarge { len: usize, max: usize },
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Empty => f.write_str("empty Engine.IO packet"),
            EngineError::UnknownType(c) => write!(f, "unknown Engine.IO packet type {c:?}"),
            EngineError::NotUtf8 => f.write_str("Engine.IO text packet is not valid UTF-8"),
            EngineError::BadHandshake(why) => write!(f, "invalid open packet: {why}"),
            EngineError::UnexpectedData(kind) => write!(f, "{kind} packet must not carry data"),
            EngineError::Base64(e) => write!(f, "binary packet in polling payload: {e}"),
            EngineError::TooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the limit of {max} bytes")
            }
        }
    }
}

impl std::error::Error for EngineError {}

pub(crate) fn check_size(len: usize, limits: &Limits) -> Result<(), EngineError> {
    if len > limits.max_payload {
        return Err(EngineError::TooLarge {
            len,
            max: limits.max_payload,
        });
    }
    Ok(())
}

impl Packet {
    /// Decodes a WebSocket text message (or one packet of a polling payload).
    pub fn decode_text(text: ByteStr, limits: &Limits) -> Result<Packet, EngineError> {
        check_size(text.len(), limits)?;
        let first = *text.as_bytes().first().ok_or(EngineError::Empty)?;
        if !(b'0'..=b'6').contains(&first) {
            let c = text.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(EngineError::UnknownType(c));
        }
        // The first byte is an ASCII digit, so slicing after it stays on a char boundary.
        let rest = text.slice(1..text.len());
        let no_data = |kind: &'static str, packet: Packet| {
            if rest.is_empty() {
                Ok(packet)
            } else {
                Err(EngineError::UnexpectedData(kind))
            }
        };
        match first {
            b'0' => Handshake::from_json(&rest).map(Packet::Open),
            b'1' => no_data("close", Packet::Close),
            b'2' => Ok(Packet::Ping(rest)),
            b'3' => Ok(Packet::Pong(rest)),
            b'4' => Ok(Packet::Message(rest)),
            b'5' => no_data("upgrade", Packet::Upgrade),
            _ => no_data("noop", Packet::Noop),
        }
    }

    /// Decodes raw bytes that claim to be a text packet (a polling body, fuzz input).
    pub fn decode_text_bytes(bytes: Bytes, limits: &Limits) -> Result<Packet, EngineError> {
        check_size(bytes.len(), limits)?;
        let text = ByteStr::from_utf8(bytes).map_err(|_| EngineError::NotUtf8)?;
        Packet::decode_text(text, limits)
    }

    /// Decodes a WebSocket binary message: in v4 always a binary `message` packet.
    pub fn decode_binary(bytes: Bytes, limits: &Limits) -> Result<Packet, EngineError> {
        check_size(bytes.len(), limits)?;
        Ok(Packet::Binary(bytes))
    }

    /// Decodes one WebSocket message of either kind.
    pub fn decode(frame: Frame, limits: &Limits) -> Result<Packet, EngineError> {
        match frame {
            Frame::Text(text) => Packet::decode_text(text, limits),
            Frame::Binary(bytes) => Packet::decode_binary(bytes, limits),
        }
    }

    /// Encodes the packet as one WebSocket message.
    pub fn encode(&self) -> Frame {
        let text = |digit: &str, data: &str| {
            let mut s = String::with_capacity(1 + data.len());
            s.push_str(digit);
            s.push_str(data);
            Frame::Text(ByteStr::from(s))
        };
        match self {
            Packet::Open(h) => text("0", &h.to_json()),
            Packet::Close => Frame::Text(ByteStr::from_static("1")),
            Packet::Ping(data) if data.is_empty() => Frame::Text(ByteStr::from_static("2")),
            Packet::Ping(data) => text("2", data),
            Packet::Pong(data) if data.is_empty() => Frame::Text(ByteStr::from_static("3")),
            Packet::Pong(data) => text("3", data),
            Packet::Message(data) => text("4", data),
            Packet::Binary(bytes) => Frame::Binary(bytes.clone()),
            Packet::Upgrade => Frame::Text(ByteStr::from_static("5")),
            Packet::Noop => Frame::Text(ByteStr::from_static("6")),
        }
    }

    /// A text `message` frame around already-encoded text, in one allocation.
    pub fn message_frame(data: &str) -> Frame {
        let mut s = String::with_capacity(1 + data.len());
        s.push('4');
        s.push_str(data);
        Frame::Text(ByteStr::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &'static str) -> Result<Packet, EngineError> {
        Packet::decode_text(ByteStr::from_static(s), &Limits::DEFAULT)
    }

    fn enc(p: &Packet) -> Frame {
        p.encode()
    }

    fn text(s: &'static str) -> Frame {
        Frame::Text(ByteStr::from_static(s))
    }

    // The examples of the Engine.IO v4 specification, "Packet encoding" and "Protocol" sections.

    #[test]
    fn spec_open_packet() {
        let wire = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let expected = Packet::Open(Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        });
        assert_eq!(dec(wire).unwrap(), expected);
        assert_eq!(enc(&expected), text(wire));
    }

    #[test]
    fn spec_heartbeat_and_probe_packets() {
        assert_eq!(dec("2").unwrap(), Packet::Ping(ByteStr::new()));
        assert_eq!(dec("3").unwrap(), Packet::Pong(ByteStr::new()));
        assert_eq!(dec("2probe").unwrap(), Packet::Ping("probe".into()));
        assert_eq!(dec("3probe").unwrap(), Packet::Pong("probe".into()));
        assert_eq!(enc(&Packet::Ping(ByteStr::new())), text("2"));
        assert_eq!(enc(&Packet::Pong("probe".into())), text("3probe"));
    }

    #[test]
    fn spec_message_close_upgrade_noop() {
        assert_eq!(dec("4hello").unwrap(), Packet::Message("hello".into()));
        assert_eq!(dec("4€").unwrap(), Packet::Message("€".into()));
        assert_eq!(dec("1").unwrap(), Packet::Close);
        assert_eq!(dec("5").unwrap(), Packet::Upgrade);
        assert_eq!(dec("6").unwrap(), Packet::Noop);
        assert_eq!(enc(&Packet::Message("hello".into())), text("4hello"));
        assert_eq!(enc(&Packet::Close), text("1"));
        assert_eq!(enc(&Packet::Upgrade), text("5"));
        assert_eq!(enc(&Packet::Noop), text("6"));
    }

    #[test]
    fn spec_binary_message_over_websocket_has_no_type_prefix() {
        let bytes = Bytes::from_static(&[1, 2, 3, 4]);
        let p = Packet::decode_binary(bytes.clone(), &Limits::DEFAULT).unwrap();
        assert_eq!(p, Packet::Binary(bytes.clone()));
        assert_eq!(enc(&p), Frame::Binary(bytes));
    }

    #[test]
    fn decoding_borrows_the_frame() {
        let frame = ByteStr::from(String::from("4hello"));
        let base = frame.as_ptr();
        match Packet::decode_text(frame, &Limits::DEFAULT).unwrap() {
            Packet::Message(m) => assert_eq!(m.as_ptr(), base.wrapping_add(1)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        assert_eq!(dec(""), Err(EngineError::Empty));
        assert_eq!(dec("7"), Err(EngineError::UnknownType('7')));
        assert_eq!(dec("x4"), Err(EngineError::UnknownType('x')));
        assert_eq!(dec("é"), Err(EngineError::UnknownType('é')));
        assert_eq!(dec("1x"), Err(EngineError::UnexpectedData("close")));
        assert_eq!(dec("5probe"), Err(EngineError::UnexpectedData("upgrade")));
        assert_eq!(dec("6 "), Err(EngineError::UnexpectedData("noop")));
        assert!(matches!(dec("0"), Err(EngineError::BadHandshake(_))));
        assert!(matches!(dec("0[]"), Err(EngineError::BadHandshake(_))));
        assert!(matches!(
            dec(r#"0{"sid":1}"#),
            Err(EngineError::BadHandshake(_))
        ));
        assert_eq!(
            Packet::decode_text_bytes(Bytes::from_static(b"4\xff"), &Limits::DEFAULT),
            Err(EngineError::NotUtf8)
        );
    }

    #[test]
    fn oversized_packets_are_refused() {
        let limits = Limits {
            max_payload: 4,
            ..Limits::DEFAULT
        };
        assert_eq!(
            Packet::decode_text(ByteStr::from_static("4hello"), &limits),
            Err(EngineError::TooLarge { len: 6, max: 4 })
        );
        assert_eq!(
            Packet::decode_binary(Bytes::from_static(&[0; 5]), &limits),
            Err(EngineError::TooLarge { len: 5, max: 4 })
        );
    }
}
