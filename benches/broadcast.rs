//! The broadcast hot path without the network: encoding a `receive-message` once and queueing it to
//! every member of a room (then draining each member's queue, as its writer would), for rooms of 2,
//! 10 and 1,000; and joins/leaves on the room table from several threads at once.
//!
//! `cargo bench --bench broadcast`. Figures: docs/PERFORMANCE.md.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::codec::engine::Frame;
use chatgate::codec::socket::EventWriter;
use chatgate::codec::ByteStr;
use chatgate::engine::{Dispatch, Handler, Origin, Session, Transport};
use chatgate::socketio::{
    text_frame, IncomingEvent, Namespace, Rooms, Socket, SocketIo, SocketIoConfig,
};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Serialize;

struct Quiet;

impl Namespace for Quiet {
    fn event(&self, _socket: &Arc<Socket>, _event: IncomingEvent<'_>) -> Dispatch {
        Dispatch::Done
    }
}

/// `n` connected sockets (each with its own session) on namespace `/`.
fn sockets(n: usize) -> Vec<Arc<Socket>> {
    let socketio = SocketIo::new(SocketIoConfig::default()).namespace("/", Arc::new(Quiet));
    (0..n)
        .map(|_| {
            let session = Arc::new(Session::new(
                Transport::WebSocket,
                Duration::from_secs(25),
                Duration::from_secs(20),
                1 << 20,
                Duration::from_secs(10),
                Origin {
                    remote: "127.0.0.1:1".parse().expect("literal address"),
                    query: "".into(),
                },
            ));
            let client = Arc::new(socketio.open(session));
            let _ = socketio.message(&client, Frame::Text(ByteStr::from_static("0")));
            client.socket("/").expect("connected to /")
        })
        .collect()
}

#[derive(Serialize)]
struct ReceiveMessage<'a> {
    message: &'a str,
    userid: i32,
    sender_name: &'a str,
    role: &'static str,
    timestamp: &'a str,
    eventid: i32,
}

fn broadcast(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast/receive-message");
    for members in [2usize, 10, 1000] {
        let room = sockets(members);
        for s in &room {
            s.join("chat_1");
        }
        let sender = room[0].clone();
        let mut scratch = VecDeque::new();
        group.throughput(Throughput::Elements(members as u64));
        group.bench_with_input(BenchmarkId::new("room", members), &members, |b, _| {
            b.iter(|| {
                let mut w = EventWriter::message("/", "receive-message");
                let payload = ReceiveMessage {
                    message: "Hello, how can I help you with the integral?",
                    userid: 456,
                    sender_name: "John Doe",
                    role: "tutor",
                    timestamp: "2025-11-16T10:30:00.123456",
                    eventid: 1,
                };
                serde_json::to_writer(w.arg(), &payload).expect("serializable");
                let sent = sender.broadcast_all("chat_1", &text_frame(w.finish()));
                // Each member's writer takes its queue.
                for s in &room {
                    s.session().outbox().drain_into(&mut scratch);
                    scratch.clear();
                }
                black_box(sent)
            })
        });
    }
    group.finish();
}

fn room_table(c: &mut Criterion) {
    let mut group = c.benchmark_group("rooms/join-leave");
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let per_thread = 1000;
    let pool = sockets(threads * 2);
    for (name, shared) in [("distinct-rooms", false), ("same-room", true)] {
        group.throughput(Throughput::Elements((threads * per_thread * 2) as u64));
        group.bench_function(BenchmarkId::new(name, format!("{threads}-threads")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let rooms = Rooms::default();
                    let start = Instant::now();
                    std::thread::scope(|scope| {
                        for t in 0..threads {
                            let (rooms, pool) = (&rooms, &pool);
                            scope.spawn(move || {
                                let room = if shared {
                                    "chat_0".to_owned()
                                } else {
                                    format!("chat_{t}")
                                };
                                let (a, b) = (&pool[2 * t], &pool[2 * t + 1]);
                                for _ in 0..per_thread {
                                    rooms.join(&room, a);
                                    rooms.join(&room, b);
                                    rooms.leave(&room, a);
                                    rooms.leave(&room, b);
                                }
                            });
                        }
                    });
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, broadcast, room_table);
criterion_main!(benches);
