//! chatgate-floor: the least a server on chatgate's stack can do for the load tool's fan-out, as
//! a yardstick in the same run (TARGETS.md, "minimal server on our stack"). tokio's current-thread
//! runtime and tokio-tungstenite, WebSocket only, no database, no checks, no history: the
//! Engine.IO open and Socket.IO connect answered, `join-chat` puts the connection in its room,
//! `send-message` is encoded once as `receive-message` and queued to every member, and each
//! connection's writer drains its queue and flushes once. It trusts its client completely: a
//! benchmark baseline, never a server.
//!
//!   chatgate-floor --listen 127.0.0.1:7150        (loopback only)

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// One connection's outbound queue.
#[derive(Default)]
struct Outbox {
    frames: RefCell<VecDeque<Utf8Bytes>>,
    ready: Notify,
}

impl Outbox {
    fn push(&self, frame: Utf8Bytes) {
        self.frames.borrow_mut().push_back(frame);
        self.ready.notify_one();
    }
}

type Rooms = Rc<RefCell<HashMap<u32, Vec<Rc<Outbox>>>>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr.parse().expect("an address"),
        _ => "127.0.0.1:7150".parse().expect("default address"),
    };
    if !listen.ip().is_loopback() {
        eprintln!("chatgate-floor listens on loopback only");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .expect("bind the listen address");
        eprintln!("chatgate-floor listening on {listen}");
        let rooms: Rooms = Rc::default();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::task::spawn_local(connection(stream, rooms.clone()));
        }
    });
}

async fn connection(stream: tokio::net::TcpStream, rooms: Rooms) {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 512;
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let outbox = Rc::new(Outbox::default());
    outbox.push(Utf8Bytes::from_static(
        r#"0{"sid":"floorfloorfloorfloor","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
    ));
    let writer = {
        let outbox = outbox.clone();
        tokio::task::spawn_local(async move {
            loop {
                let batch: Vec<Utf8Bytes> = outbox.frames.borrow_mut().drain(..).collect();
                if batch.is_empty() {
                    outbox.ready.notified().await;
                    continue;
                }
                for frame in batch {
                    if sink.feed(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        })
    };
    let mut room = None;
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        if text == "40" {
            outbox.push(Utf8Bytes::from_static(
                r#"40{"sid":"floorfloorfloorfloor"}"#,
            ));
        } else if text.starts_with(r#"42["join-chat""#) {
            let eventid = number_after(text, r#""eventid":"#).unwrap_or(0);
            let members = {
                let mut rooms = rooms.borrow_mut();
                let members = rooms.entry(eventid).or_default();
                members.push(outbox.clone());
                members.len()
            };
            room = Some(eventid);
            outbox.push(Utf8Bytes::from(format!(
                r#"42["chat-joined",{{"eventid":{eventid},"member_count":{members},"role":"tutor"}}]"#
            )));
        } else if let (Some(eventid), Some(message)) =
            (room, text.strip_prefix(r#"42["send-message",{"message":""#))
        {
            let message = message.split('"').next().unwrap_or("");
            let frame = Utf8Bytes::from(format!(
                r#"42["receive-message",{{"message":"{message}","userid":1,"sender_name":"Floor","role":"tutor","timestamp":"2026-01-01T00:00:00.000000","eventid":{eventid},"id":1}}]"#
            ));
            if let Some(members) = rooms.borrow().get(&eventid) {
                for member in members {
                    member.push(frame.clone());
                }
            }
        }
    }
    writer.abort();
    if let Some(eventid) = room {
        if let Some(members) = rooms.borrow_mut().get_mut(&eventid) {
            members.retain(|m| !Rc::ptr_eq(m, &outbox));
        }
    }
}

/// The unsigned number right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u32> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
