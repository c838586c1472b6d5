//! Property tests: for generated packets of every kind, decode(encode(p)) == p, at each layer and
//! across layers (a Socket.IO packet inside Engine.IO messages inside a polling payload).

use bytes::Bytes;
use chatgate_codec::engine::{self, Frame, Handshake};
use chatgate_codec::socket::{self, Decoder, Kind};
use chatgate_codec::{payload, ByteStr, Limits};
use proptest::prelude::*;
use serde_json::Value;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode except the payload separator, which the Engine.IO spec forbids in text packets.
    any::<String>().prop_map(|s| s.replace('\u{1e}', ""))
}

fn engine_packet() -> impl Strategy<Value = engine::Packet> {
    let handshake = (
        "[A-Za-z0-9_-]{1,24}",
        proptest::collection::vec("[a-z]{1,10}", 0..3),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(sid, upgrades, i, t, m)| {
            engine::Packet::Open(Handshake {
                sid,
                upgrades,
                ping_interval: i.into(),
                ping_timeout: t.into(),
                max_payload: m.into(),
            })
        });
    prop_oneof![
        handshake,
        Just(engine::Packet::Close),
        text().prop_map(|s| engine::Packet::Ping(s.into())),
        text().prop_map(|s| engine::Packet::Pong(s.into())),
        text().prop_map(|s| engine::Packet::Message(s.into())),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| engine::Packet::Binary(Bytes::from(b))),
        Just(engine::Packet::Upgrade),
        Just(engine::Packet::Noop),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![Just("/".to_owned()), "/[a-zA-Z0-9_:.-]{1,20}"]
}

fn event_name() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("reserved names are refused by design", |n| {
        !socket::RESERVED_EVENTS.contains(&n.as_str())
    })
}

fn socket_packet() -> impl Strategy<Value = socket::Packet> {
    let args = proptest::collection::vec(json_value(), 0..4);
    let attachments = proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from),
        0..4,
    );
    (
        0usize..7,
        namespace(),
        any::<Option<u64>>(),
        any::<u64>(),
        event_name(),
        args,
        json_value(),
        any::<String>(),
        attachments,
    )
        .prop_map(
            |(k, nsp, id, ack_id, name, args, value, text, attachments)| {
                let kind = Kind::ALL[k];
                let mut p = socket::Packet::new(kind, ByteStr::from(nsp));
                let array = |head: Option<Value>, extra: &[Bytes]| {
                    let mut items: Vec<Value> = head.into_iter().chain(args.clone()).collect();
                    for num in 0..extra.len() {
                        items.push(serde_json::json!({"_placeholder": true, "num": num}));
                    }
                    Value::Array(items).to_string()
                };
                match kind {
                    Kind::Connect => {
                        if let Value::Object(_) = value {
                            p = p.with_data(value.to_string());
                        }
                    }
                    Kind::Disconnect => {}
                    Kind::ConnectError => {
                        p = p.with_data(serde_json::json!({ "message": text }).to_string());
                    }
                    Kind::Event => {
                        p = p.with_data(array(Some(Value::String(name)), &[]));
                        p.id = id;
                    }
                    Kind::Ack => {
                        p = p.with_data(array(None, &[])).with_id(ack_id);
                    }
                    Kind::BinaryEvent => {
                        p = p.with_data(array(Some(Value::String(name)), &attachments));
                        p.id = id;
                        p.attachments = attachments;
                    }
                    Kind::BinaryAck => {
                        p = p.with_data(array(None, &attachments)).with_id(ack_id);
                        p.attachments = attachments;
                    }
                }
                p
            },
        )
}

/// Feeds an encoded Socket.IO packet through a fresh decoder, as a connection would receive it.
fn decode_socket(text: ByteStr, attachments: Vec<Bytes>) -> socket::Packet {
    let mut decoder = Decoder::new(Limits::DEFAULT);
    let mut out = decoder.text(text).expect("encoded packet decodes");
    for a in attachments {
        assert!(out.is_none(), "packet completed before its attachments");
        out = decoder.binary(a).expect("attachment accepted");
    }
    out.expect("packet complete after its attachments")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn engine_packets_round_trip(p in engine_packet()) {
        let decoded = engine::Packet::decode(p.encode(), &Limits::DEFAULT).unwrap();
        prop_assert_eq!(decoded, p);
    }

    #[test]
    fn polling_payloads_round_trip(packets in proptest::collection::vec(engine_packet(), 1..8)) {
        let body = payload::encode(&packets);
        prop_assert_eq!(payload::decode(body, &Limits::DEFAULT).unwrap(), packets);
    }

    #[test]
    fn socket_packets_round_trip(p in socket_packet()) {
        let (text, attachments) = p.encode();
        prop_assert_eq!(decode_socket(text, attachments), p);
    }

    #[test]
    fn socket_packets_round_trip_through_polling(p in socket_packet()) {
        // Socket.IO over Engine.IO over a polling body: the path a polling client's emit takes.
        let (text, attachments) = p.encode_message();
        let mut frames = vec![Frame::Text(text)];
        frames.extend(attachments.into_iter().map(Frame::Binary));
        let body = payload::encode_frames(&frames);
        let packets = payload::decode(body, &Limits::DEFAULT).unwrap();
        let mut decoder = Decoder::new(Limits::DEFAULT);
        let mut out = None;
        for packet in packets {
            out = match packet {
                engine::Packet::Message(t) => decoder.text(t).unwrap(),
                engine::Packet::Binary(b) => decoder.binary(b).unwrap(),
                other => panic!("unexpected {other:?}"),
            };
        }
        prop_assert_eq!(out.unwrap(), p);
    }

    #[test]
    fn event_writer_matches_packet_encoding(
        nsp in namespace(), name in event_name(), args in proptest::collection::vec(json_value(), 0..4)
    ) {
        let mut w = socket::EventWriter::packet(&nsp, &name);
        for a in &args {
            serde_json::to_writer(w.arg(), a).unwrap();
        }
        let written = w.finish();
        let mut items = vec![Value::String(name.clone())];
        items.extend(args.iter().cloned());
        let expected = socket::Packet::new(Kind::Event, ByteStr::from(nsp))
            .with_data(Value::Array(items).to_string());
        prop_assert_eq!(&written, &expected.encode().0);
        let decoded = decode_socket(written, Vec::new());
        prop_assert_eq!(decoded.event().unwrap().name, name);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let b = Bytes::from(bytes);
        let _ = payload::decode(b.clone(), &Limits::DEFAULT);
        let _ = engine::Packet::decode_text_bytes(b.clone(), &Limits::DEFAULT);
        if let Ok(text) = ByteStr::from_utf8(b) {
            let _ = socket::Packet::decode(text, &Limits::DEFAULT);
        }
    }
}
