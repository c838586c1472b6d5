//! The messages of `@socket.io/redis-adapter` 8.x (classic mode) and `@socket.io/redis-emitter`,
//! read and written by our own code.
//!
//! A broadcast is the msgpack array `[uid, packet, opts]` (as the `notepack.io` encoder writes it):
//! `packet` is `{type: 2, data: [event, ...args], nsp}`, `opts` is `{rooms: [...], except: [...],
//! flags: {...}}`. It is published on `<prefix>#<nsp>#<room>#` when it goes to exactly one room,
//! `<prefix>#<nsp>#` otherwise. Event arguments travel as msgpack values: JSON here is converted
//! both ways, and msgpack binary becomes a Socket.IO attachment.

use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::Value as Json;

/// A broadcast as it travels between nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The sending node (`"emitter"` for `@socket.io/redis-emitter`).
    pub uid: String,
    pub nsp: String,
    /// `[event, ...args]` as JSON text, binary arguments replaced by Socket.IO placeholders.
    pub data: String,
    /// The binary arguments, in placeholder order.
    pub attachments: Vec<Bytes>,
    /// Rooms to deliver to; empty means every socket of the namespace.
    pub rooms: Vec<String>,
    /// Socket ids and rooms whose sockets must not receive it.
    pub except: Vec<String>,
}

/// Why a message from another node could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Not msgpack, or trailing bytes after the message.
    Msgpack(String),
    /// Msgpack, but not the shape the adapter writes; says which part.
    Shape(&'static str),
    /// A packet type other than EVENT (2).
    PacketType(i64),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Msgpack(e) => write!(f, "not a msgpack message: {e}"),
            WireError::Shape(what) => write!(f, "unexpected message shape: {what}"),
            WireError::PacketType(t) => write!(f, "packet type {t} is not an event"),
        }
    }
}

impl std::error::Error for WireError {}

/// The channel a broadcast to `rooms` is published on.
pub fn broadcast_channel(prefix: &str, nsp: &str, rooms: &[String]) -> String {
    match rooms {
        [room] => format!("{prefix}#{nsp}#{room}#"),
        _ => format!("{prefix}#{nsp}#"),
    }
}

/// The room a broadcast channel names (`Some("")` for the all-rooms channel), or `None` when the
/// channel is not a broadcast channel of `nsp`.
pub fn channel_room<'a>(channel: &'a str, prefix: &str, nsp: &str) -> Option<&'a str> {
    let rest = channel.strip_prefix(prefix)?.strip_prefix('#')?;
    let rest = rest.strip_prefix(nsp)?.strip_prefix('#')?;
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_suffix('#')
}

/// Encodes a broadcast of the event array `data` (JSON text, no binary) from node `uid`.
pub fn encode_broadcast(
    uid: &str,
    nsp: &str,
    data: &str,
    rooms: &[String],
    except: &[String],
) -> Result<Vec<u8>, WireError> {
    use rmp::encode as mp;
    let fail = |e: &dyn std::fmt::Display| WireError::Msgpack(e.to_string());
    let mut out = Vec::with_capacity(64 + data.len());
    let strings = |out: &mut Vec<u8>, v: &[String]| -> Result<(), WireError> {
        mp::write_array_len(out, v.len() as u32).map_err(|e| fail(&e))?;
        for s in v {
            mp::write_str(out, s).map_err(|e| fail(&e))?;
        }
        Ok(())
    };
    mp::write_array_len(&mut out, 3).map_err(|e| fail(&e))?;
    mp::write_str(&mut out, uid).map_err(|e| fail(&e))?;
    mp::write_map_len(&mut out, 3).map_err(|e| fail(&e))?;
    mp::write_str(&mut out, "type").map_err(|e| fail(&e))?;
    mp::write_uint(&mut out, 2).map_err(|e| fail(&e))?;
    mp::write_str(&mut out, "data").map_err(|e| fail(&e))?;
    // JSON straight to msgpack, no tree in between: this runs once per broadcast.
    let mut json = serde_json::Deserializer::from_str(data);
    let mut msgpack = rmp_serde::Serializer::new(&mut out);
    serde_transcode::transcode(&mut json, &mut msgpack)
        .map_err(|_| WireError::Shape("event data"))?;
    json.end().map_err(|_| WireError::Shape("event data"))?;
    mp::write_str(&mut out, "nsp").map_err(|e| fail(&e))?;
    mp::write_str(&mut out, nsp).map_err(|e| fail(&e))?;
    mp::write_map_len(&mut out, 3).map_err(|e| fail(&e))?;
    mp::write_str(&mut out, "rooms").map_err(|e| fail(&e))?;
    strings(&mut out, rooms)?;
    mp::write_str(&mut out, "except").map_err(|e| fail(&e))?;
    strings(&mut out, except)?;
    mp::write_str(&mut out, "flags").map_err(|e| fail(&e))?;
    mp::write_map_len(&mut out, 0).map_err(|e| fail(&e))?;
    Ok(out)
}

/// Decodes a broadcast message.
pub fn decode_broadcast(bytes: &[u8]) -> Result<Broadcast, WireError> {
    let mut reader = bytes;
    let value =
        rmpv::decode::read_value(&mut reader).map_err(|e| WireError::Msgpack(e.to_string()))?;
    if !reader.is_empty() {
        return Err(WireError::Msgpack("trailing bytes".into()));
    }
    let Mp::Array(parts) = value else {
        return Err(WireError::Shape("not an array"));
    };
    let [uid, packet, opts] =
        <[Mp; 3]>::try_from(parts).map_err(|_| WireError::Shape("not [uid, packet, opts]"))?;
    let uid = uid.as_str().ok_or(WireError::Shape("uid"))?.to_owned();
    let packet = map(&packet).ok_or(WireError::Shape("packet"))?;
    match get(packet, "type").and_then(Mp::as_i64) {
        Some(2) => {}
        Some(t) => return Err(WireError::PacketType(t)),
        None => return Err(WireError::Shape("packet type")),
    }
    let nsp = match get(packet, "nsp") {
        None | Some(Mp::Nil) => "/".to_owned(),
        Some(n) => n.as_str().ok_or(WireError::Shape("nsp"))?.to_owned(),
    };
    let data = get(packet, "data").ok_or(WireError::Shape("data"))?;
    if !matches!(data, Mp::Array(a) if a.first().is_some_and(Mp::is_str)) {
        return Err(WireError::Shape("data is not [event, ...args]"));
    }
    let mut attachments = Vec::new();
    let mut json = Vec::with_capacity(128);
    write_json(data, &mut attachments, &mut json);
    let opts = map(&opts).ok_or(WireError::Shape("opts"))?;
    Ok(Broadcast {
        uid,
        nsp,
        data: String::from_utf8(json).map_err(|_| WireError::Shape("event data"))?,
        attachments,
        rooms: names(get(opts, "rooms")),
        except: names(get(opts, "except")),
    })
}

fn map(v: &Mp) -> Option<&[(Mp, Mp)]> {
    match v {
        Mp::Map(m) => Some(m),
        _ => None,
    }
}

fn get<'a>(m: &'a [(Mp, Mp)], key: &str) -> Option<&'a Mp> {
    m.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Room names: strings, or numbers (a JavaScript room may be a number), as text.
fn names(v: Option<&Mp>) -> Vec<String> {
    let Some(Mp::Array(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| match i {
            Mp::String(s) => s.as_str().map(str::to_owned),
            Mp::Integer(n) => Some(n.to_string()),
            Mp::F64(f) => Some(f.to_string()),
            _ => None,
        })
        .collect()
}

/// JSON to msgpack as `notepack.io` writes JavaScript values: integers as the smallest integer
/// type, other numbers as float64, objects as maps with string keys.
pub fn to_msgpack(v: &Json) -> Mp {
    match v {
        Json::Null => Mp::Nil,
        Json::Bool(b) => Mp::Boolean(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_u64() {
                Mp::from(i)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Mp::from(s.as_str()),
        Json::Array(a) => Mp::Array(a.iter().map(to_msgpack).collect()),
        Json::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), to_msgpack(v)))
                .collect(),
        ),
    }
}

/// Msgpack written straight as JSON text, keys in the order they came (a `receive-message` from
/// another node reads exactly like one made here), no tree in between. Binary values, and values
/// JSON cannot hold, as in [`to_json`].
pub fn write_json(v: &Mp, attachments: &mut Vec<Bytes>, out: &mut Vec<u8>) {
    use std::io::Write as _;
    match v {
        Mp::Nil => out.extend_from_slice(b"null"),
        Mp::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Mp::Integer(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            (None, Some(i)) => {
                let _ = write!(out, "{i}");
            }
            (None, None) => out.extend_from_slice(b"null"),
        },
        Mp::F32(_) | Mp::F64(_) | Mp::Binary(_) | Mp::Ext(..) => {
            let _ = serde_json::to_writer(&mut *out, &to_json(v, attachments));
        }
        Mp::String(s) => {
            let text = s.as_str().map_or_else(
                || String::from_utf8_lossy(s.as_bytes()),
                std::borrow::Cow::Borrowed,
            );
            let _ = serde_json::to_writer(&mut *out, text.as_ref());
        }
        Mp::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, attachments, out);
            }
            out.push(b']');
        }
        Mp::Map(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let key = match k {
                    Mp::String(s) => s.as_str().unwrap_or_default().to_owned(),
                    other => other.to_string(),
                };
                let _ = serde_json::to_writer(&mut *out, &key);
                out.push(b':');
                write_json(v, attachments, out);
            }
            out.push(b'}');
        }
    }
}

/// Msgpack to JSON; binary values become Socket.IO placeholders and are moved to `attachments`.
/// Values JSON cannot hold (NaN, infinities, extension types) become `null`, as `JSON.stringify`
/// would write them.
pub fn to_json(v: &Mp, attachments: &mut Vec<Bytes>) -> Json {
    match v {
        Mp::Nil => Json::Null,
        Mp::Boolean(b) => Json::Bool(*b),
        Mp::Integer(n) => n
            .as_u64()
            .map(Json::from)
            .or_else(|| n.as_i64().map(Json::from))
            .unwrap_or(Json::Null),
        Mp::F32(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Mp::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Mp::String(s) => Json::String(s.as_str().map_or_else(
            || String::from_utf8_lossy(s.as_bytes()).into_owned(),
            str::to_owned,
        )),
        Mp::Binary(b) => {
            let num = attachments.len();
            attachments.push(Bytes::copy_from_slice(b));
            serde_json::json!({ "_placeholder": true, "num": num })
        }
        Mp::Array(a) => Json::Array(a.iter().map(|i| to_json(i, attachments)).collect()),
        Mp::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Mp::String(s) => s.as_str().unwrap_or_default().to_owned(),
                        other => other.to_string(),
                    };
                    (key, to_json(v, attachments))
                })
                .collect(),
        ),
        Mp::Ext(..) => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels() {
        assert_eq!(
            broadcast_channel("socket.io", "/", &["chat_101".into()]),
            "socket.io#/#chat_101#"
        );
        assert_eq!(broadcast_channel("socket.io", "/", &[]), "socket.io#/#");
        assert_eq!(
            broadcast_channel("p", "/", &["a".into(), "b".into()]),
            "p#/#"
        );
        assert_eq!(
            channel_room("socket.io#/#chat_101#", "socket.io", "/"),
            Some("chat_101")
        );
        assert_eq!(channel_room("socket.io#/#", "socket.io", "/"), Some(""));
        assert_eq!(channel_room("socket.io#/admin#x#", "socket.io", "/"), None);
        assert_eq!(channel_room("other#/#x#", "socket.io", "/"), None);
    }

    #[test]
    fn a_broadcast_round_trips() {
        let data = r#"["receive-message",{"message":"hé 👋","userid":1,"id":245495122898944,"x":1.5,"n":null,"ok":true,"neg":-3}]"#;
        let bytes =
            encode_broadcast("abc123", "/", data, &["chat_101".into()], &["sid1".into()]).unwrap();
        let b = decode_broadcast(&bytes).unwrap();
        assert_eq!(b.uid, "abc123");
        assert_eq!(b.nsp, "/");
        // Byte for byte: the same values, the keys in the order they were written.
        assert_eq!(b.data, data);
        assert_eq!(b.rooms, ["chat_101"]);
        assert_eq!(b.except, ["sid1"]);
        assert!(b.attachments.is_empty());
    }

    #[test]
    fn writes_what_notepack_writes() {
        // notepack: small integers as fixints, 1.5 as float64, maps with string keys.
        let bytes = encode_broadcast("u", "/", r#"["ev",1,1.5,{"a":300}]"#, &[], &[]).unwrap();
        let data = [
            0x94, 0xa2, b'e', b'v', 0x01, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x81, 0xa1, b'a',
            0xcd, 0x01, 0x2c,
        ];
        assert!(bytes.windows(data.len()).any(|w| w == data), "{bytes:02x?}");
        assert!(encode_broadcast("u", "/", "[1,", &[], &[]).is_err());
        assert!(encode_broadcast("u", "/", "[1] x", &[], &[]).is_err());
    }

    /// Bytes as `notepack.io` 3 encodes
    /// `["emitter", {type: 2, data: ["ev", 1, 1.5, Buffer.from([1, 2])], nsp: "/"},
    ///   {rooms: ["r"], flags: {}, except: []}]` (written out by hand from its encoding rules).
    #[test]
    fn reads_what_notepack_writes() {
        let mut b = vec![0x93, 0xa7];
        b.extend_from_slice(b"emitter");
        b.push(0x83);
        b.extend_from_slice(&[0xa4, b't', b'y', b'p', b'e', 0x02]);
        b.extend_from_slice(&[0xa4, b'd', b'a', b't', b'a', 0x94, 0xa2, b'e', b'v', 0x01]);
        b.extend_from_slice(&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xc4, 0x02, 0x01, 0x02]);
        b.extend_from_slice(&[0xa3, b'n', b's', b'p', 0xa1, b'/']);
        b.push(0x83);
        b.extend_from_slice(&[0xa5, b'r', b'o', b'o', b'm', b's', 0x91, 0xa1, b'r']);
        b.extend_from_slice(&[0xa5, b'f', b'l', b'a', b'g', b's', 0x80]);
        b.extend_from_slice(&[0xa6, b'e', b'x', b'c', b'e', b'p', b't', 0x90]);
        let m = decode_broadcast(&b).unwrap();
        assert_eq!(m.uid, "emitter");
        assert_eq!(m.data, r#"["ev",1,1.5,{"_placeholder":true,"num":0}]"#);
        assert_eq!(m.attachments, [Bytes::from_static(&[1, 2])]);
        assert_eq!(m.rooms, ["r"]);
        assert!(m.except.is_empty());
        // Trailing bytes, another packet type, and garbage are errors, never panics.
        let mut trailing = b.clone();
        trailing.push(0);
        assert!(decode_broadcast(&trailing).is_err());
        assert!(decode_broadcast(&[
            0x93, 0xa1, b'x', 0x81, 0xa4, b't', b'y', b'p', b'e', 0x03, 0x80
        ])
        .is_err());
        for garbage in [&b""[..], b"\xc1", b"{}", b"\x93\x01\x02\x03"] {
            assert!(decode_broadcast(garbage).is_err());
        }
    }
}
