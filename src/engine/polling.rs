//! HTTP long-polling: the handshake GET, the long-poll GET that carries server packets, the POST that
//! carries client packets, and the driver task that runs a polling session's heartbeat.
//!
//! At most one GET and one POST per session at a time, as the protocol requires; an overlapping
//! request is a broken or hostile client, and closes the session.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use chatgate_codec::engine::Frame;
use chatgate_codec::{payload, ByteStr};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::{
    CloseReason, Dispatch, Engine, Entry, Handler, Origin, RequestError, Session, Transport,
};
use crate::http::{self, Body};

const TEXT_PLAIN: &str = "text/plain; charset=UTF-8";

/// Opens a polling session: the response is the open packet alone.
pub(super) fn handshake<H: Handler>(engine: &Arc<Engine<H>>, origin: Origin) -> Response<Body> {
    let entry = engine.open(Transport::Polling, origin);
    let upgrades: &[&str] = if engine.config.allow_websocket {
        &["websocket"]
    } else {
        &[]
    };
    let open = engine.open_frame(&entry.session, upgrades);
    tokio::spawn(drive(engine.clone(), entry));
    let mut body = Vec::new();
    payload::encode_frame_into(&open, &mut body);
    http::response(StatusCode::OK, TEXT_PLAIN, body)
}

/// The driver of a polling session: heartbeat and end of session. It hands over to the WebSocket
/// task when the session is upgraded.
async fn drive<H: Handler>(engine: Arc<Engine<H>>, entry: Entry<H>) {
    loop {
        let changed = entry.session.changed_notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if entry.session.holds_goodbye() {
            // The client's next GET collects the goodbye and finishes the session; one that does
            // not come back within the ping timeout would have been dead anyway.
            let _ = tokio::time::timeout(engine.config.ping_timeout, changed).await;
            engine.finish(&entry);
            return;
        }
        if entry.session.is_closed() {
            engine.finish(&entry);
            return;
        }
        if entry.session.transport() == Transport::WebSocket {
            return;
        }
        if let Some(deadline) = engine.beat(&entry) {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = changed => {}
            }
        }
    }
}

/// Clears the session's GET or POST slot however the request ends (a client that goes away drops the
/// request future mid-wait).
struct Slot<'a> {
    session: &'a Session,
    post: bool,
}

impl<'a> Slot<'a> {
    /// Claims the session's GET (or POST) slot; an overlapping request closes the session.
    fn claim(session: &'a Session, post: bool) -> Result<Slot<'a>, RequestError> {
        let free = if post {
            session.begin_post()
        } else {
            session.begin_get()
        };
        if !free {
            session.close(CloseReason::TransportError);
            return Err(RequestError::BadRequest);
        }
        Ok(Slot { session, post })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.post {
            self.session.end_post()
        } else {
            self.session.end_get()
        }
    }
}

/// The long-poll: waits until the session has something to say, then says all of it.
pub(super) async fn get<H: Handler>(
    engine: &Engine<H>,
    entry: Entry<H>,
) -> Result<Response<Body>, RequestError> {
    let session = &*entry.session;
    let _slot = Slot::claim(session, false)?;
    let mut batch = VecDeque::new();
    loop {
        session.outbox().drain_into(&mut batch);
        let closing = session.close_reason();
        let released = session.is_upgrading() || session.transport() == Transport::WebSocket;
        if !batch.is_empty() || closing.is_some() || released {
            let mut frames: Vec<&Frame> = batch.iter().flat_map(|item| item.frames()).collect();
            let tail;
            let mut finish = closing.is_some();
            match closing {
                // The server's goodbye (a Socket.IO DISCONNECT, the last messages) goes out alone;
                // the close packet waits for the next request. The official client acts on the
                // messages of a payload one tick after its close packet, so a close in the same
                // payload would overtake them ("transport close" instead of "io server
                // disconnect", and the last messages dropped).
                Some(_) if session.holds_goodbye() && !frames.is_empty() => {
                    session.take_goodbye();
                    finish = false;
                }
                // The client asked to close: end its poll quietly, as the reference server does.
                Some(CloseReason::TransportClose) => {
                    tail = Frame::Text(ByteStr::from_static("6"));
                    frames.push(&tail);
                }
                Some(_) => {
                    tail = Frame::Text(ByteStr::from_static("1"));
                    frames.push(&tail);
                }
                None if frames.is_empty() => {
                    tail = Frame::Text(ByteStr::from_static("6"));
                    frames.push(&tail);
                }
                None => {}
            }
            let body = payload::encode_frames(frames);
            if finish {
                engine.finish(&entry);
            }
            return Ok(http::response(StatusCode::OK, TEXT_PLAIN, body));
        }
        session.outbox().ready().await;
    }
}

/// Client packets: decoded as one payload, applied in order, answered with `ok`.
pub(super) async fn post<H: Handler>(
    engine: &Engine<H>,
    entry: Entry<H>,
    req: Request<Incoming>,
) -> Result<Response<Body>, RequestError> {
    let session = &*entry.session;
    let _slot = Slot::claim(session, true)?;
    let max = engine.config.max_payload;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        session.close(CloseReason::TransportError);
        return Err(RequestError::PayloadTooLarge);
    }
    let body: Bytes = match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            session.close(CloseReason::TransportError);
            return Err(RequestError::PayloadTooLarge);
        }
        Err(_) => return Err(RequestError::BadRequest),
    };
    let packets = match payload::decode(body, &engine.limits) {
        Ok(packets) => packets,
        Err(e) => {
            tracing::debug!(sid = %session.sid(), error = %e, "malformed polling payload");
            session.close(CloseReason::TransportError);
            return Err(RequestError::BadRequest);
        }
    };
    for packet in packets {
        if let Dispatch::Pending(work) = engine.receive(&entry, packet) {
            work.await;
        }
    }
    if session.holds_goodbye() && session.outbox().is_empty() {
        // The client took its goodbye and answers (usually with its own close packet): done.
        engine.finish(&entry);
    }
    Ok(http::response(StatusCode::OK, "text/html", "ok"))
}
