//! Codec benchmarks on the frames a chat actually carries.
//!
//! `cargo bench --bench codec`. Figures and the machine they came from: docs/PERFORMANCE.md.

use bytes::Bytes;
use chatgate::codec::engine::{self, Frame};
use chatgate::codec::socket::{Decoder, EventWriter};
use chatgate::codec::{payload, ByteStr, Limits};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const SEND_MESSAGE: &str = r#"42["send-message",{"message":"Hello, how can I help you with the integral?","eventid":123}]"#;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/decode");
    let frame = ByteStr::from_static(SEND_MESSAGE);
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("send-message", |b| {
        let mut decoder = Decoder::new(Limits::DEFAULT);
        b.iter(|| {
            let packet = engine::Packet::decode_text(black_box(frame.clone()), &Limits::DEFAULT)
                .expect("valid frame");
            let engine::Packet::Message(text) = packet else {
                unreachable!("a message frame")
            };
            let packet = decoder.text(text).expect("valid packet").expect("complete");
            black_box(packet.event().expect("an event").args.len())
        })
    });

    let body = payload::encode_frames(&[
        Frame::Text(ByteStr::from_static("3")),
        Frame::Text(ByteStr::from_static(SEND_MESSAGE)),
        Frame::Text(ByteStr::from_static(r#"42["typing",{"is_typing":true}]"#)),
    ]);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("polling-payload-3-packets", |b| {
        b.iter(|| payload::decode(black_box(body.clone()), &Limits::DEFAULT).expect("valid body"))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/encode");
    let payload = json!({
        "message": "Hello, how can I help you with the integral?",
        "userid": 456,
        "sender_name": "John Doe",
        "role": "tutor",
        "timestamp": "2025-11-16T10:30:00.123456",
        "eventid": 123
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("receive-message", |b| {
        b.iter(|| {
            let mut w = EventWriter::message("/", "receive-message");
            serde_json::to_writer(w.arg(), black_box(&payload)).expect("serializable");
            w.finish()
        })
    });
    let frames: Vec<Frame> = (0..8)
        .map(|_| {
            let mut w = EventWriter::message("/", "receive-message");
            serde_json::to_writer(w.arg(), &payload).expect("serializable");
            Frame::Text(w.finish())
        })
        .collect();
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("polling-payload-8-messages", |b| {
        b.iter(|| payload::encode_frames(black_box(&frames)))
    });
    let binary = Frame::Binary(Bytes::from(vec![7u8; 1024]));
    group.throughput(Throughput::Bytes(1024));
    group.bench_function("polling-binary-1KiB", |b| {
        b.iter(|| payload::encode_frames(std::iter::once(black_box(&binary))))
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
