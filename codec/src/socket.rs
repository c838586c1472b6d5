//! Socket.IO v5 packets: namespaces, events, acknowledgements and binary attachments.
//!
//! A packet is encoded as text, carried in one Engine.IO `message`:
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
//! ```
//!
//! The namespace is omitted for `/`. Binary packets (`BINARY_EVENT`, `BINARY_ACK`) replace each
//! binary value in the data with `{"_placeholder":true,"num":N}` and announce how many attachments
//! follow; each attachment then arrives as its own binary Engine.IO message. [`Decoder`] reassembles
//! them.
//!
//! Decoding keeps the namespace and the JSON data as slices of the incoming frame ([`ByteStr`]); the
//! JSON is validated (syntax, depth, the shape each packet type requires) but not turned into values.
//! [`EventWriter`] builds an event's frame in one buffer, so a broadcast is encoded once and shared.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::json::{self, JsonError};
use crate::{ByteStr, Limits};

/// The seven packet types of protocol v5, with their wire digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Connect = 0,
    Disconnect = 1,
    Event = 2,
    Ack = 3,
    ConnectError = 4,
    BinaryEvent = 5,
    BinaryAck = 6,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Connect,
        Kind::Disconnect,
        Kind::Event,
        Kind::Ack,
        Kind::ConnectError,
        Kind::BinaryEvent,
        Kind::BinaryAck,
    ];

    fn from_digit(d: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(d.checked_sub(b'0')?)).copied()
    }

    fn digit(self) -> u8 {
        b'0' + self as u8
    }

    /// Whether binary attachments follow packets of this type.
    pub fn is_binary(self) -> bool {
        matches!(self, Kind::BinaryEvent | Kind::BinaryAck)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "CONNECT",
            Kind::Disconnect => "DISCONNECT",
            Kind::Event => "EVENT",
            Kind::Ack => "ACK",
            Kind::ConnectError => "CONNECT_ERROR",
            Kind::BinaryEvent => "BINARY_EVENT",
            Kind::BinaryAck => "BINARY_ACK",
        }
    }
}

/// Event names the official clients and servers reserve for their own use; a packet that carries one
/// would impersonate a lifecycle event in the application.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Longest namespace accepted, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 256;

/// A Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub kind: Kind,
    /// The namespace, `/` by default.
    pub nsp: ByteStr,
    /// Acknowledgement id: on an EVENT, the sender wants an ACK with this id; on an ACK, the id it answers.
    pub id: Option<u64>,
    /// The JSON data as sent, validated; `None` when the packet has none.
    pub data: Option<ByteStr>,
    /// Binary attachments, for the binary kinds only, in placeholder order.
    pub attachments: Vec<Bytes>,
}

/// Why a Socket.IO packet was refused. Each variant names the rule the input broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketError {
    /// An empty message.
    Empty,
    /// The first character is not a packet type digit.
    UnknownType(char),
    /// More bytes than `Limits::max_payload`.
    TooLarge { len: usize, max: usize },
    /// A binary packet whose attachment count is missing, not a number, or not ended by `-`.
    BadAttachmentCount,
    /// A binary packet announcing more attachments than `Limits::max_attachments`.
    TooManyAttachments { count: usize, max: usize },
    /// A namespace that is too long or holds whitespace, control characters or JSON punctuation.
    BadNamespace,
    /// An ack id too large for 64 bits.
    AckIdOverflow,
    /// An ACK or BINARY_ACK without an ack id.
    MissingAckId,
    /// The data is not well-formed JSON or nests too deeply.
    Json(JsonError),
    /// The data has the wrong shape for the packet type; says which shape was expected.
    InvalidData { kind: Kind, expected: &'static str },
    /// An EVENT whose first element is not a string.
    EventNameNotString,
    /// An EVENT that uses a name reserved for lifecycle events.
    ReservedEventName(String),
    /// A placeholder whose `num` does not name one of the announced attachments.
    BadPlaceholder,
    /// A binary message arrived when no binary packet was waiting for attachments.
    UnexpectedAttachment,
    /// A text packet arrived before the previous binary packet's attachments were all received.
    MissingAttachments { expected: usize, received: usize },
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketError::Empty => f.write_str("empty Socket.IO packet"),
            SocketError::UnknownType(c) => write!(f, "unknown Socket.IO packet type {c:?}"),
            SocketError::TooLarge { len, max } => {
                write!(f, "packet of {len} bytes exceeds the limit of {max} bytes")
            }
            SocketError::BadAttachmentCount => {
                f.write_str("binary packet without a valid attachment count")
            }
            SocketError::TooManyAttachments { count, max } => {
                write!(
                    f,
                    "packet announces {count} attachments, the limit is {max}"
                )
            }
            SocketError::BadNamespace => f.write_str("invalid namespace"),
            SocketError::AckIdOverflow => f.write_str("ack id does not fit in 64 bits"),
            SocketError::MissingAckId => f.write_str("acknowledgement without an ack id"),
            SocketError::Json(e) => e.fmt(f),
            SocketError::InvalidData { kind, expected } => {
                write!(f, "{} data must be {expected}", kind.name())
            }
            SocketError::EventNameNotString => f.write_str("event name is not a string"),
            SocketError::ReservedEventName(name) => write!(f, "event name {name:?} is reserved"),
            SocketError::BadPlaceholder => {
                f.write_str("binary placeholder does not name an announced attachment")
            }
            SocketError::UnexpectedAttachment => {
                f.write_str("binary attachment without a binary packet waiting for it")
            }
            SocketError::MissingAttachments { expected, received } => write!(
                f,
                "a new packet arrived after {received} of {expected} binary attachments"
            ),
        }
    }
}

impl std::error::Error for SocketError {}

impl From<JsonError> for SocketError {
    fn from(e: JsonError) -> Self {
        SocketError::Json(e)
    }
}

/// The outcome of decoding one text packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole packet.
    Complete(Packet),
    /// A binary packet whose `expected` attachments follow as binary messages.
    Incomplete { packet: Packet, expected: usize },
}

/// An event packet's name and arguments, borrowed from its data.
#[derive(Debug)]
pub struct Event<'a> {
    /// Borrowed from the packet unless the name has JSON escapes.
    pub name: std::borrow::Cow<'a, str>,
    pub args: Vec<&'a RawValue>,
}

/// Reads leading ASCII digits as a number, returning it and how many bytes it took.
fn leading_number(bytes: &[u8]) -> Result<(Option<u64>, usize), SocketError> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return Ok((None, 0));
    }
    let mut n: u64 = 0;
    for &b in &bytes[..len] {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(SocketError::AckIdOverflow)?;
    }
    Ok((Some(n), len))
}

fn valid_namespace(nsp: &str) -> bool {
    nsp.len() <= MAX_NAMESPACE_LEN
        && nsp.starts_with('/')
        && !nsp
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '[' | '{' | ','))
}

impl Packet {
    /// A packet with no data, no ack id and no attachments.
    pub fn new(kind: Kind, nsp: impl Into<ByteStr>) -> Packet {
        Packet {
            kind,
            nsp: nsp.into(),
            id: None,
            data: None,
            attachments: Vec::new(),
        }
    }

    /// The same packet carrying `data` (raw JSON, trusted: the caller produced it).
    pub fn with_data(mut self, data: impl Into<ByteStr>) -> Packet {
        self.data = Some(data.into());
        self
    }

    pub fn with_id(mut self, id: u64) -> Packet {
        self.id = Some(id);
        self
    }

    /// Decodes one text packet (the data of an Engine.IO `message`).
    pub fn decode(text: ByteStr, limits: &Limits) -> Result<Decoded, SocketError> {
        if text.len() > limits.max_payload {
            return Err(SocketError::TooLarge {
                len: text.len(),
                max: limits.max_payload,
            });
        }
        let bytes = text.as_bytes();
        let first = *bytes.first().ok_or(SocketError::Empty)?;
        let kind = Kind::from_digit(first).ok_or_else(|| {
            SocketError::UnknownType(text.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER))
        })?;
        let mut pos = 1;

        let mut expected = 0;
        if kind.is_binary() {
            let (count, len) =
                leading_number(&bytes[pos..]).map_err(|_| SocketError::BadAttachmentCount)?;
            let count = count.ok_or(SocketError::BadAttachmentCount)?;
            pos += len;
            if bytes.get(pos) != Some(&b'-') {
                return Err(SocketError::BadAttachmentCount);
            }
            pos += 1;
            expected = usize::try_from(count).unwrap_or(usize::MAX);
            if expected > limits.max_attachments {
                return Err(SocketError::TooManyAttachments {
                    count: expected,
                    max: limits.max_attachments,
                });
            }
        }

        let nsp = if bytes.get(pos) == Some(&b'/') {
            let end = bytes[pos..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |i| pos + i);
            let nsp = text.slice(pos..end);
            if !valid_namespace(&nsp) {
                return Err(SocketError::BadNamespace);
            }
            pos = (end + 1).min(bytes.len());
            nsp
        } else {
            ByteStr::from_static("/")
        };

        let (id, len) = leading_number(&bytes[pos..])?;
        pos += len;

        let data = if pos < bytes.len() {
            Some(text.slice(pos..bytes.len()))
        } else {
            None
        };
        let packet = Packet {
            kind,
            nsp,
            id,
            data,
            attachments: Vec::new(),
        };
        packet.validate(expected, limits)?;
        Ok(if kind.is_binary() && expected > 0 {
            Decoded::Incomplete { packet, expected }
        } else {
            Decoded::Complete(packet)
        })
    }

    /// Checks the data against the shape the packet type requires.
    fn validate(&self, attachments: usize, limits: &Limits) -> Result<(), SocketError> {
        let text = self.data.as_deref();
        if let Some(text) = text {
            json::check_depth(text, limits.max_depth)?;
        }
        // The first significant character tells the JSON type; each branch then parses the text
        // once, which also validates its syntax.
        let shape = text.map(|t| t.trim_start().bytes().next().unwrap_or(b' '));
        let kind = self.kind;
        let invalid = |expected| SocketError::InvalidData { kind, expected };
        let syntax = |text: Option<&str>| -> Result<(), SocketError> {
            match text {
                Some(t) => json::parse_raw(t, limits.max_depth)
                    .map(|_| ())
                    .map_err(SocketError::from),
                None => Ok(()),
            }
        };
        match kind {
            Kind::Connect => match shape {
                None | Some(b'{') => syntax(text)?,
                Some(_) => return Err(invalid("absent or a JSON object")),
            },
            Kind::Disconnect => {
                if shape.is_some() {
                    return Err(invalid("absent"));
                }
            }
            Kind::ConnectError => match shape {
                Some(b'{' | b'"') => syntax(text)?,
                _ => return Err(invalid("a JSON object or string")),
            },
            Kind::Event | Kind::BinaryEvent => {
                let text = text
                    .filter(|_| shape == Some(b'['))
                    .ok_or(invalid("a non-empty JSON array"))?;
                let first = *json::elements(text)?
                    .first()
                    .ok_or(invalid("a non-empty JSON array"))?;
                let name: String = serde_json::from_str(first.get())
                    .map_err(|_| SocketError::EventNameNotString)?;
                if RESERVED_EVENTS.contains(&name.as_str()) {
                    return Err(SocketError::ReservedEventName(name));
                }
            }
            Kind::Ack | Kind::BinaryAck => {
                if shape != Some(b'[') {
                    return Err(invalid("a JSON array"));
                }
                syntax(text)?;
                if self.id.is_none() {
                    return Err(SocketError::MissingAckId);
                }
            }
        }
        if kind.is_binary() {
            // Placeholders are rare (binary packets only), so a value tree is affordable here.
            let value: Value = match text {
                Some(raw) => serde_json::from_str(raw)
                    .map_err(|e| SocketError::Json(JsonError::Syntax(e.to_string())))?,
                None => Value::Null,
            };
            check_placeholders(&value, attachments)?;
        }
        Ok(())
    }

    /// The event name and arguments of an EVENT or BINARY_EVENT packet.
    pub fn event(&self) -> Option<Event<'_>> {
        if !matches!(self.kind, Kind::Event | Kind::BinaryEvent) {
            return None;
        }
        let mut args = json::elements(self.data.as_deref()?).ok()?;
        if args.is_empty() {
            return None;
        }
        let raw = args.remove(0).get();
        let name = match serde_json::from_str::<&str>(raw) {
            Ok(plain) => std::borrow::Cow::Borrowed(plain),
            Err(_) => std::borrow::Cow::Owned(serde_json::from_str::<String>(raw).ok()?),
        };
        Some(Event { name, args })
    }

    /// Encodes the packet as Socket.IO text plus its attachments.
    pub fn encode(&self) -> (ByteStr, Vec<Bytes>) {
        let mut buf = Vec::new();
        self.write_into(&mut buf);
        (bytes_to_str(buf), self.attachments.clone())
    }

    /// Encodes the packet as the text of an Engine.IO `message` frame (`4` + the packet), ready to
    /// send over WebSocket, plus its attachments (each one binary Engine.IO message).
    pub fn encode_message(&self) -> (ByteStr, Vec<Bytes>) {
        let mut buf = vec![b'4'];
        self.write_into(&mut buf);
        (bytes_to_str(buf), self.attachments.clone())
    }

    fn write_into(&self, buf: &mut Vec<u8>) {
        let data_len = self.data.as_ref().map_or(0, |d| d.len());
        buf.reserve(self.nsp.len() + data_len + 24);
        buf.push(self.kind.digit());
        if self.kind.is_binary() {
            buf.extend_from_slice(self.attachments.len().to_string().as_bytes());
            buf.push(b'-');
        }
        write_namespace(buf, &self.nsp);
        if let Some(id) = self.id {
            buf.extend_from_slice(id.to_string().as_bytes());
        }
        if let Some(data) = &self.data {
            buf.extend_from_slice(data.as_bytes());
        }
    }
}

fn write_namespace(buf: &mut Vec<u8>, nsp: &str) {
    if nsp != "/" {
        buf.extend_from_slice(nsp.as_bytes());
        buf.push(b',');
    }
}

fn bytes_to_str(buf: Vec<u8>) -> ByteStr {
    // Every piece written is UTF-8 (digits, ASCII punctuation, `ByteStr`s and serde_json output).
    ByteStr::from(String::from_utf8(buf).expect("encoder writes only UTF-8"))
}

/// Whether `value` is a placeholder object, and which attachment it names.
fn placeholder_num(value: &Value) -> Option<Option<u64>> {
    let obj = value.as_object()?;
    if obj.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(obj.get("num").and_then(Value::as_u64))
}

fn check_placeholders(value: &Value, attachments: usize) -> Result<(), SocketError> {
    if let Some(num) = placeholder_num(value) {
        return match num {
            Some(n) if (n as usize) < attachments && n < u64::from(u32::MAX) => Ok(()),
            _ => Err(SocketError::BadPlaceholder),
        };
    }
    match value {
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| check_placeholders(v, attachments)),
        Value::Object(map) => map
            .values()
            .try_for_each(|v| check_placeholders(v, attachments)),
        _ => Ok(()),
    }
}

/// The placeholder that stands for attachment `num` in a binary packet's data.
pub fn placeholder(num: usize) -> String {
    format!(r#"{{"_placeholder":true,"num":{num}}}"#)
}

/// Turns a stream of Engine.IO messages back into Socket.IO packets, joining each binary packet with
/// the attachments that follow it. One per connection; it holds at most one incomplete packet.
///
/// It has no clock: a caller that must not wait forever for attachments checks
/// [`Decoder::is_awaiting_attachments`] against its own timer.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    pending: Option<(Packet, usize)>,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            pending: None,
        }
    }

    /// Feeds a text message. A complete packet comes back at once; a binary packet's header comes
    /// back as `None` until its attachments arrive.
    pub fn text(&mut self, text: ByteStr) -> Result<Option<Packet>, SocketError> {
        if let Some((packet, expected)) = self.pending.take() {
            return Err(SocketError::MissingAttachments {
                expected,
                received: packet.attachments.len(),
            });
        }
        match Packet::decode(text, &self.limits)? {
            Decoded::Complete(packet) => Ok(Some(packet)),
            Decoded::Incomplete {
                mut packet,
                expected,
            } => {
                packet.attachments.reserve_exact(expected);
                self.pending = Some((packet, expected));
                Ok(None)
            }
        }
    }

    /// Feeds a binary message: the next attachment of the pending packet.
    pub fn binary(&mut self, bytes: Bytes) -> Result<Option<Packet>, SocketError> {
        if bytes.len() > self.limits.max_payload {
            self.pending = None;
            return Err(SocketError::TooLarge {
                len: bytes.len(),
                max: self.limits.max_payload,
            });
        }
        let (mut packet, expected) = self
            .pending
            .take()
            .ok_or(SocketError::UnexpectedAttachment)?;
        packet.attachments.push(bytes);
        if packet.attachments.len() == expected {
            Ok(Some(packet))
        } else {
            self.pending = Some((packet, expected));
            Ok(None)
        }
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_awaiting_attachments(&self) -> bool {
        self.pending.is_some()
    }
}

/// Builds an EVENT packet's frame in one buffer: the header, the event name, then each argument
/// serialized straight into the buffer by the caller. The result is shared by every recipient of a
/// broadcast (cloning a `ByteStr` does not copy).
pub struct EventWriter {
    buf: Vec<u8>,
}

impl EventWriter {
    /// An EVENT as the text of an Engine.IO `message` (`42...`), ready for a WebSocket text frame.
    pub fn message(nsp: &str, event: &str) -> EventWriter {
        EventWriter::start(b"4", nsp, None, event)
    }

    /// An EVENT as bare Socket.IO text (`2...`).
    pub fn packet(nsp: &str, event: &str) -> EventWriter {
        EventWriter::start(b"", nsp, None, event)
    }

    /// An EVENT that asks for an acknowledgement with `id`, as an Engine.IO `message`.
    pub fn message_with_ack(nsp: &str, event: &str, id: u64) -> EventWriter {
        EventWriter::start(b"4", nsp, Some(id), event)
    }

    fn start(prefix: &[u8], nsp: &str, id: Option<u64>, event: &str) -> EventWriter {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(prefix);
        buf.push(Kind::Event.digit());
        write_namespace(&mut buf, nsp);
        if let Some(id) = id {
            buf.extend_from_slice(id.to_string().as_bytes());
        }
        buf.push(b'[');
        serde_json::to_writer(&mut buf, event).expect("writing to a Vec cannot fail");
        EventWriter { buf }
    }

    /// The buffer to serialize the next argument into, e.g. with `serde_json::to_writer`. Exactly one
    /// JSON value must be written per call.
    pub fn arg(&mut self) -> &mut Vec<u8> {
        self.buf.push(b',');
        &mut self.buf
    }

    /// Appends an argument that is already JSON text.
    pub fn raw_arg(&mut self, json: &str) -> &mut EventWriter {
        self.arg().extend_from_slice(json.as_bytes());
        self
    }

    pub fn finish(mut self) -> ByteStr {
        self.buf.push(b']');
        bytes_to_str(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &'static str) -> Result<Decoded, SocketError> {
        Packet::decode(ByteStr::from_static(s), &Limits::DEFAULT)
    }

    fn complete(s: &'static str) -> Packet {
        match dec(s) {
            Ok(Decoded::Complete(p)) => p,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn packet(
        kind: Kind,
        nsp: &'static str,
        id: Option<u64>,
        data: Option<&'static str>,
    ) -> Packet {
        Packet {
            kind,
            nsp: ByteStr::from_static(nsp),
            id,
            data: data.map(ByteStr::from_static),
            attachments: Vec::new(),
        }
    }

    /// Decodes `wire`, compares with `expected`, and checks that encoding gives `wire` back.
    fn round_trip(wire: &'static str, expected: Packet) {
        assert_eq!(complete(wire), expected, "decode {wire}");
        assert_eq!(expected.encode().0, wire, "encode {wire}");
    }

    // The examples of the Socket.IO v5 specification, section "Exchange protocol" and "Packet encoding".

    #[test]
    fn spec_connect_packets() {
        round_trip("0", packet(Kind::Connect, "/", None, None));
        round_trip("0/admin,", packet(Kind::Connect, "/admin", None, None));
        round_trip(
            r#"0{"token":"123"}"#,
            packet(Kind::Connect, "/", None, Some(r#"{"token":"123"}"#)),
        );
        round_trip(
            r#"0/admin,{"token":"123"}"#,
            packet(Kind::Connect, "/admin", None, Some(r#"{"token":"123"}"#)),
        );
        round_trip(
            r#"0{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
            packet(
                Kind::Connect,
                "/",
                None,
                Some(r#"{"sid":"oSO0OpakMV_3jnilAAAA"}"#),
            ),
        );
        // A client may omit the trailing comma when nothing follows the namespace.
        assert_eq!(
            complete("0/admin"),
            packet(Kind::Connect, "/admin", None, None)
        );
    }

    #[test]
    fn spec_connect_error_packets() {
        round_trip(
            r#"4{"message":"Not authorized"}"#,
            packet(
                Kind::ConnectError,
                "/",
                None,
                Some(r#"{"message":"Not authorized"}"#),
            ),
        );
        round_trip(
            r#"4/admin,{"message":"Not authorized"}"#,
            packet(
                Kind::ConnectError,
                "/admin",
                None,
                Some(r#"{"message":"Not authorized"}"#),
            ),
        );
        // Protocol v4 servers sent a bare string; still accepted.
        round_trip(
            r#"4"Not authorized""#,
            packet(Kind::ConnectError, "/", None, Some(r#""Not authorized""#)),
        );
    }

    #[test]
    fn spec_disconnect_packets() {
        round_trip("1", packet(Kind::Disconnect, "/", None, None));
        round_trip("1/admin,", packet(Kind::Disconnect, "/admin", None, None));
    }

    #[test]
    fn spec_event_packets() {
        round_trip(
            r#"2["foo"]"#,
            packet(Kind::Event, "/", None, Some(r#"["foo"]"#)),
        );
        round_trip(
            r#"2["hello","world"]"#,
            packet(Kind::Event, "/", None, Some(r#"["hello","world"]"#)),
        );
        round_trip(
            r#"2/admin,["bar"]"#,
            packet(Kind::Event, "/admin", None, Some(r#"["bar"]"#)),
        );
        round_trip(
            r#"2/admin,["project:delete",123]"#,
            packet(
                Kind::Event,
                "/admin",
                None,
                Some(r#"["project:delete",123]"#),
            ),
        );
        round_trip(
            r#"212["foo"]"#,
            packet(Kind::Event, "/", Some(12), Some(r#"["foo"]"#)),
        );
        round_trip(
            r#"2/admin,13["bar"]"#,
            packet(Kind::Event, "/admin", Some(13), Some(r#"["bar"]"#)),
        );
    }

    #[test]
    fn spec_ack_packets() {
        round_trip(
            r#"312["bar"]"#,
            packet(Kind::Ack, "/", Some(12), Some(r#"["bar"]"#)),
        );
        round_trip(
            r#"3/admin,13["bar"]"#,
            packet(Kind::Ack, "/admin", Some(13), Some(r#"["bar"]"#)),
        );
        round_trip(r#"31[]"#, packet(Kind::Ack, "/", Some(1), Some("[]")));
    }

    #[test]
    fn spec_binary_event_and_ack_headers() {
        let cases: [(&str, Kind, &str, Option<u64>, &str); 4] = [
            (
                r#"51-["baz",{"_placeholder":true,"num":0}]"#,
                Kind::BinaryEvent,
                "/",
                None,
                r#"["baz",{"_placeholder":true,"num":0}]"#,
            ),
            (
                r#"51-/admin,["baz",{"_placeholder":true,"num":0}]"#,
                Kind::BinaryEvent,
                "/admin",
                None,
                r#"["baz",{"_placeholder":true,"num":0}]"#,
            ),
            (
                r#"61-15[{"_placeholder":true,"num":0}]"#,
                Kind::BinaryAck,
                "/",
                Some(15),
                r#"[{"_placeholder":true,"num":0}]"#,
            ),
            (
                r#"61-/admin,15[{"_placeholder":true,"num":0}]"#,
                Kind::BinaryAck,
                "/admin",
                Some(15),
                r#"[{"_placeholder":true,"num":0}]"#,
            ),
        ];
        for (wire, kind, nsp, id, data) in cases {
            match dec(wire).unwrap() {
                Decoded::Incomplete {
                    packet: p,
                    expected,
                } => {
                    assert_eq!(expected, 1, "{wire}");
                    assert_eq!(p, packet(kind, nsp, id, Some(data)), "{wire}");
                    let mut full = p.clone();
                    full.attachments.push(Bytes::from_static(&[1, 2, 3]));
                    assert_eq!(full.encode().0, wire);
                }
                other => panic!("{wire}: {other:?}"),
            }
        }
    }

    #[test]
    fn binary_reassembly_joins_header_and_attachments() {
        let mut decoder = Decoder::new(Limits::DEFAULT);
        let header = r#"52-["upload",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        assert_eq!(decoder.text(ByteStr::from_static(header)), Ok(None));
        assert!(decoder.is_awaiting_attachments());
        assert_eq!(decoder.binary(Bytes::from_static(b"\x01")), Ok(None));
        let packet = decoder
            .binary(Bytes::from_static(b"\x02\x03"))
            .unwrap()
            .unwrap();
        assert_eq!(packet.kind, Kind::BinaryEvent);
        assert_eq!(packet.attachments, [&b"\x01"[..], &b"\x02\x03"[..]]);
        assert!(!decoder.is_awaiting_attachments());
        // The decoder is ready for the next packet.
        assert!(decoder
            .text(ByteStr::from_static(r#"2["x"]"#))
            .unwrap()
            .is_some());
    }

    #[test]
    fn attachments_that_never_arrive_or_arrive_uninvited_are_errors() {
        let mut decoder = Decoder::new(Limits::DEFAULT);
        assert_eq!(
            decoder.binary(Bytes::from_static(b"x")),
            Err(SocketError::UnexpectedAttachment)
        );
        let header = r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        decoder.text(ByteStr::from_static(header)).unwrap();
        decoder.binary(Bytes::from_static(b"x")).unwrap();
        assert_eq!(
            decoder.text(ByteStr::from_static(r#"2["b"]"#)),
            Err(SocketError::MissingAttachments {
                expected: 2,
                received: 1
            })
        );
        // The broken packet is dropped; decoding goes on.
        assert!(decoder
            .text(ByteStr::from_static(r#"2["b"]"#))
            .unwrap()
            .is_some());
    }

    #[test]
    fn binary_packet_with_zero_attachments_is_complete() {
        let p = complete(r#"50-["a"]"#);
        assert_eq!(p.kind, Kind::BinaryEvent);
        assert!(p.attachments.is_empty());
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        use SocketError::*;
        let cases: &[(&'static str, SocketError)] = &[
            ("", Empty),
            ("7", UnknownType('7')),
            ("a", UnknownType('a')),
            (r#"5["a"]"#, BadAttachmentCount),
            (r#"5-["a"]"#, BadAttachmentCount),
            (r#"51["a"]"#, BadAttachmentCount),
            (r#"599999999999999999999999-["a"]"#, BadAttachmentCount),
            (r#"511-["a"]"#, TooManyAttachments { count: 11, max: 10 }),
            (r#"2/ad min,["a"]"#, BadNamespace),
            (r#"2/admin["a"]"#, BadNamespace),
            ("2/\u{1},[\"a\"]", BadNamespace),
            (r#"2123456789012345678901["a"]"#, AckIdOverflow),
            (r#"3["a"]"#, MissingAckId),
            (
                r#"2"a""#,
                InvalidData {
                    kind: Kind::Event,
                    expected: "a non-empty JSON array",
                },
            ),
            (
                r#"2{}"#,
                InvalidData {
                    kind: Kind::Event,
                    expected: "a non-empty JSON array",
                },
            ),
            (
                r#"2[]"#,
                InvalidData {
                    kind: Kind::Event,
                    expected: "a non-empty JSON array",
                },
            ),
            (
                "2",
                InvalidData {
                    kind: Kind::Event,
                    expected: "a non-empty JSON array",
                },
            ),
            (r#"2[1]"#, EventNameNotString),
            (r#"2[null,"x"]"#, EventNameNotString),
            (r#"2["disconnect"]"#, ReservedEventName("disconnect".into())),
            (
                r#"0[]"#,
                InvalidData {
                    kind: Kind::Connect,
                    expected: "absent or a JSON object",
                },
            ),
            (
                r#"1{}"#,
                InvalidData {
                    kind: Kind::Disconnect,
                    expected: "absent",
                },
            ),
            (
                "4",
                InvalidData {
                    kind: Kind::ConnectError,
                    expected: "a JSON object or string",
                },
            ),
            (
                r#"31{}"#,
                InvalidData {
                    kind: Kind::Ack,
                    expected: "a JSON array",
                },
            ),
            (r#"51-["a",{"_placeholder":true,"num":1}]"#, BadPlaceholder),
            (
                r#"51-["a",{"_placeholder":true,"num":"0"}]"#,
                BadPlaceholder,
            ),
            (r#"51-["a",{"_placeholder":true}]"#, BadPlaceholder),
        ];
        for (wire, expected) in cases {
            assert_eq!(dec(wire).as_ref().err(), Some(expected), "{wire:?}");
        }
        assert!(matches!(dec(r#"2["a""#), Err(Json(JsonError::Syntax(_)))));
        assert!(matches!(dec(r#"2["a"]x"#), Err(Json(JsonError::Syntax(_)))));
        assert!(matches!(
            dec("2[\"a\",tru]"),
            Err(Json(JsonError::Syntax(_)))
        ));
        let deep = format!("2[\"a\",{}{}]", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            Packet::decode(ByteStr::from(deep), &Limits::DEFAULT),
            Err(Json(JsonError::TooDeep { max: 32 }))
        );
    }

    #[test]
    fn oversized_packets_and_attachments_are_refused() {
        let limits = Limits {
            max_payload: 8,
            ..Limits::DEFAULT
        };
        assert_eq!(
            Packet::decode(ByteStr::from_static(r#"2["hello"]"#), &limits),
            Err(SocketError::TooLarge { len: 10, max: 8 })
        );
        let mut decoder = Decoder::new(limits);
        decoder
            .text(ByteStr::from_static(
                r#"51-[{"_placeholder":true,"num":0}]"#,
            ))
            .ok();
        let limits = Limits {
            max_payload: 64,
            ..Limits::DEFAULT
        };
        let mut decoder2 = Decoder::new(limits);
        decoder2
            .text(ByteStr::from_static(
                r#"51-["a",{"_placeholder":true,"num":0}]"#,
            ))
            .unwrap();
        assert_eq!(
            decoder2.binary(Bytes::from(vec![0u8; 65])),
            Err(SocketError::TooLarge { len: 65, max: 64 })
        );
        assert!(!decoder2.is_awaiting_attachments());
        drop(decoder);
    }

    #[test]
    fn decoding_borrows_namespace_and_data() {
        let text = ByteStr::from(String::from(r#"2/chat,7["send-message",{"message":"hi"}]"#));
        let base = text.as_ptr() as usize;
        let p = complete_owned(text);
        assert_eq!(p.nsp.as_ptr() as usize, base + 1);
        assert_eq!(p.data.as_ref().unwrap().as_ptr() as usize, base + 8);
        assert_eq!(p.id, Some(7));
    }

    fn complete_owned(text: ByteStr) -> Packet {
        match Packet::decode(text, &Limits::DEFAULT) {
            Ok(Decoded::Complete(p)) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn event_gives_name_and_arguments() {
        let p = complete(r#"2["send-message",{"message":"hi","eventid":1},3]"#);
        let event = p.event().unwrap();
        assert_eq!(event.name, "send-message");
        assert_eq!(event.args.len(), 2);
        assert_eq!(event.args[0].get(), r#"{"message":"hi","eventid":1}"#);
        let escaped = complete(r#"2["caf\u00e9"]"#);
        assert_eq!(escaped.event().unwrap().name, "café");
        assert!(complete("0").event().is_none());
    }

    #[test]
    fn event_writer_builds_frames_a_decoder_accepts() {
        let mut w = EventWriter::message("/", "receive-message");
        serde_json::to_writer(
            w.arg(),
            &serde_json::json!({"message": "he said \"hi\" 👋"}),
        )
        .unwrap();
        let frame = w.finish();
        assert_eq!(
            frame,
            r#"42["receive-message",{"message":"he said \"hi\" 👋"}]"#
        );
        let p = complete_owned(frame.slice(1..frame.len()));
        assert_eq!(p.event().unwrap().name, "receive-message");

        let mut w = EventWriter::message_with_ack("/admin", "ping", 5);
        w.raw_arg("1").raw_arg("[2]");
        assert_eq!(w.finish(), r#"42/admin,5["ping",1,[2]]"#);
        assert_eq!(EventWriter::packet("/", "x").finish(), r#"2["x"]"#);
    }

    #[test]
    fn encode_message_adds_the_engine_prefix() {
        let p = packet(Kind::Event, "/", Some(1), Some(r#"["a"]"#));
        assert_eq!(p.encode_message().0, r#"421["a"]"#);
        assert_eq!(placeholder(3), r#"{"_placeholder":true,"num":3}"#);
    }
}
