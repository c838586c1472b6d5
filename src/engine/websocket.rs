//! The WebSocket transport: the HTTP upgrade, the probe that moves a polling session over, and the one
//! task that then reads, writes and keeps the heartbeat of the connection.
//!
//! The task waits on four things at once, in this order of preference: the application's pending work
//! for the last message (so messages are handled in order), the next frame from the client (only when
//! no work is pending), the session's outbox (drained whole and flushed once, when nothing more is
//! there to read or after a burst of reads), and the heartbeat deadline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chatgate_codec::engine::{self as wire, Frame};
use chatgate_codec::ByteStr;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{
    CloseReason, Dispatch, Engine, Entry, Handler, Origin, Outgoing, Pending, RequestError,
    Transport,
};
use crate::http::Body;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Answers a WebSocket upgrade request with 101 and starts the connection's task.
pub(super) fn upgrade<H: Handler>(
    engine: Arc<Engine<H>>,
    mut req: Request<Incoming>,
    entry: Option<Entry<H>>,
    remote: SocketAddr,
    query: String,
) -> Result<Response<Body>, RequestError> {
    let headers = req.headers();
    let wants_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let (true, Some(key), true) = (wants_websocket, key, version_ok) else {
        return Err(RequestError::BadRequest);
    };
    let accept = derive_accept_key(key.as_bytes());

    let config = engine.config.clone();
    let mut ws_config = WebSocketConfig::default();
    ws_config.read_buffer_size = config.websocket_read_buffer;
    // Frames are queued by `feed` and written by one `flush` per batch; never write earlier.
    ws_config.write_buffer_size = 64 * 1024;
    ws_config.max_message_size = Some(config.max_payload);
    ws_config.max_frame_size = Some(config.max_payload);

    // Only the upgrade handle goes into the task, not the whole request: the task lives as long as
    // the connection, and its size is paid per connection.
    let on_upgrade = hyper::upgrade::on(&mut req);
    drop(req);
    let task = async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config))
                .await;
        run(
            engine,
            ws,
            entry,
            Origin {
                remote,
                query: query.into(),
            },
        )
        .await;
    };
    // The task lives as long as the connection, so its size is paid per connection (1,032 bytes
    // when last measured): keep big, rarely used states boxed.
    tokio::spawn(task);

    let mut response = Response::new(crate::http::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| RequestError::BadRequest)?,
    );
    Ok(response)
}

/// Not an `async fn`: those store their arguments twice (rust-lang/rust#62958), and this future,
/// with the WebSocket inside, lives as long as the connection: an `async move` block keeps one copy
/// (400 bytes less per connection, measured).
#[allow(clippy::manual_async_fn)]
fn run<H: Handler>(
    engine: Arc<Engine<H>>,
    mut ws: Socket,
    entry: Option<Entry<H>>,
    origin: Origin,
) -> impl std::future::Future<Output = ()> {
    async move {
        let entry = match entry {
            None => {
                let entry = engine.open(Transport::WebSocket, origin);
                let open = engine.open_frame(&entry.session, &[]);
                // The open packet goes out alone, flushed, before anything else.
                let out = framed(std::iter::once(&open));
                if Box::pin(write_frames(&mut ws, &out)).await.is_err() {
                    entry.session.close(CloseReason::TransportError);
                    engine.finish(&entry);
                    return;
                }
                entry
            }
            Some(entry) => {
                if !entry.session.begin_upgrade() {
                    // Already upgraded, or another probe is running: accept, then close this one.
                    let _ = Box::pin(ws.close(None)).await;
                    return;
                }
                let timeout = engine.config.upgrade_timeout;
                match Box::pin(tokio::time::timeout(timeout, probe(&mut ws, &entry))).await {
                    Ok(Ok(())) => {
                        entry.session.complete_upgrade();
                        engine.polling_session_gone();
                    }
                    _ => {
                        entry.session.abort_upgrade();
                        let _ = Box::pin(ws.close(None)).await;
                        return;
                    }
                }
                entry
            }
        };
        let reason = drive(&engine, &mut ws, &entry).await;
        entry.session.close(reason);
        let close = tokio::time::timeout(std::time::Duration::from_secs(1), ws.close(None));
        let _ = Box::pin(close).await;
        engine.finish(&entry);
    }
}

/// The upgrade handshake on the new WebSocket: `2probe` -> `3probe`, then `5`. Meanwhile the polling
/// transport keeps working, and a waiting long-poll is released with a noop.
async fn probe<H: Handler>(ws: &mut Socket, entry: &Entry<H>) -> Result<(), ()> {
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == "2probe" => {}
        _ => return Err(()),
    }
    ws.send(Message::text("3probe")).await.map_err(|_| ())?;
    entry.session.outbox().wake();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "5" => return Ok(()),
            Some(Ok(Message::Text(t))) if t.as_str() == "6" => continue,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return Err(()),
        }
    }
}

/// Most frames read before the outbox is flushed, so a client that never stops sending still gets
/// its answers (and the outbox never fills up behind a flood of reads).
const READ_BURST: u32 = 32;

/// Runs the connection until it ends; returns why.
async fn drive<H: Handler>(engine: &Engine<H>, ws: &mut Socket, entry: &Entry<H>) -> CloseReason {
    let session = &*entry.session;
    let mut batch = VecDeque::new();
    let mut pending: Option<Pending> = None;
    // Frames read since the last flush. Reading everything the client already sent before
    // writing turns a burst of requests into one write of all their answers.
    let mut burst = 0u32;
    let sleep = tokio::time::sleep_until(session.heartbeat_deadline());
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            () = async { pending.as_mut().expect("guarded by the branch condition").await }, if pending.is_some() => {
                pending = None;
            }
            incoming = ws.next(), if pending.is_none() && burst < READ_BURST => {
                burst += 1;
                let packet = match incoming {
                    None | Some(Ok(Message::Close(_))) => return CloseReason::TransportClose,
                    Some(Err(e)) => {
                        tracing::debug!(sid = %session.sid(), error = %e, "websocket read failed");
                        return read_error_reason(&e);
                    }
                    Some(Ok(Message::Text(text))) => {
                        // tungstenite checked it already; checking again (a few ns for a chat
                        // frame) keeps this crate free of `unsafe`.
                        match ByteStr::from_utf8(Bytes::from(text)) {
                            Ok(text) => wire::Packet::decode_text(text, engine.limits()),
                            Err(_) => return CloseReason::ParseError,
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => wire::Packet::decode_binary(bytes, engine.limits()),
                    Some(Ok(_)) => continue, // WebSocket ping/pong: tungstenite answers them.
                };
                let packet = match packet {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(sid = %session.sid(), error = %e, "malformed engine.io packet");
                        return CloseReason::TransportError;
                    }
                };
                let is_pong = matches!(packet, wire::Packet::Pong(_));
                if let Dispatch::Pending(work) = engine.receive(entry, packet) {
                    pending = Some(work);
                }
                if is_pong {
                    sleep.as_mut().reset(session.heartbeat_deadline());
                }
                if let Some(reason) = session.close_reason() {
                    // Let what is queued (e.g. a disconnect packet) go out first.
                    Box::pin(flush_outbox(ws, session)).await;
                    return reason;
                }
            }
            // Flush when the client has nothing more to read for us right now, or after a burst.
            () = async { if burst < READ_BURST { session.outbox().ready().await } } => {
                burst = 0;
                session.outbox().drain_into(&mut batch);
                // A client that does not read blocks this write once the kernel's buffers are
                // full: past the slow-consumer timeout it is dropped.
                // Boxed: the write's state (a timer and the write) would otherwise be part of every
                // idle connection's task (about 200 bytes each); a small allocation per write is
                // cheaper than that at any connection count that matters.
                let write = tokio::time::timeout(session.slow_consumer_timeout(), write_batch(ws, &mut batch));
                match Box::pin(write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return CloseReason::TransportError,
                    Err(_) => return CloseReason::SlowConsumer,
                }
                // An idle connection keeps no queue buffers (most connections are idle most of
                // the time: this is a fifth of their memory); a busy one keeps them.
                if session.outbox().release_if_empty() {
                    batch = VecDeque::new();
                }
                if let Some(reason) = session.close_reason() {
                    return reason;
                }
            }
            () = &mut sleep => {
                match engine.beat(entry) {
                    Some(deadline) => sleep.as_mut().reset(deadline),
                    None => return session.close_reason().unwrap_or(CloseReason::PingTimeout),
                }
            }
        }
    }
}

/// Writes a batch of outgoing frames with one `write` call (see [`write_frames`]).
async fn write_batch(ws: &mut Socket, batch: &mut VecDeque<Outgoing>) -> std::io::Result<()> {
    let out = framed(batch.iter().flat_map(|item| item.frames()));
    batch.clear();
    write_frames(ws, &out).await
}

/// The WebSocket framing of each frame (a server's frames are unmasked: a 2 to 10 byte header, then
/// the payload), laid out in one buffer sized once; it is freed after the write, so nothing stays
/// allocated while the connection is idle.
fn framed<'a>(frames: impl Iterator<Item = &'a Frame> + Clone) -> Vec<u8> {
    let size: usize = frames.clone().map(|frame| frame.len() + 10).sum();
    let mut out = Vec::with_capacity(size);
    for frame in frames {
        let (opcode, payload): (u8, &[u8]) = match frame {
            Frame::Text(t) => (0x1, t.as_bytes()),
            Frame::Binary(b) => (0x2, &b[..]),
        };
        out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 0xffff => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
    }
    out
}

/// Writes framed bytes straight to the socket, under tungstenite, with one call. tungstenite's own
/// output (pongs, the close frame) is flushed first, so frames never interleave inside one
/// another; and tungstenite's write buffer is never used for our frames, so it never grows.
async fn write_frames(ws: &mut Socket, out: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    ws.flush().await.map_err(std::io::Error::other)?;
    ws.get_mut().write_all(out).await
}

/// A connection that simply went away is a "transport close", as Socket.IO names it; a client that
/// broke the WebSocket protocol (oversized or malformed frames) is a "transport error".
fn read_error_reason(e: &tokio_tungstenite::tungstenite::Error) -> CloseReason {
    use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
    match e {
        Error::ConnectionClosed
        | Error::AlreadyClosed
        | Error::Io(_)
        | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            CloseReason::TransportClose
        }
        _ => CloseReason::TransportError,
    }
}

async fn flush_outbox(ws: &mut Socket, session: &super::Session) {
    let mut batch = VecDeque::new();
    session.outbox().drain_into(&mut batch);
    let _ = write_batch(ws, &mut batch).await;
}
