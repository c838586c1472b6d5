//! The Engine.IO v4 server: sessions, their transports (HTTP long-polling and WebSocket, with the
//! upgrade from one to the other), heartbeats and the HTTP rules of the protocol.
//!
//! This layer moves frames. It never looks inside a message: whatever sits above (Socket.IO, or the
//! raw echo application of the conformance example) implements [`Handler`] and receives each
//! session's messages in order. It never imports anything from the layers above.
//!
//! Files: `session.rs` (one session's state and heartbeat), `outbox.rs` (its outbound queue),
//! `polling.rs` (GET/POST), `websocket.rs` (the WebSocket task), `error.rs` (HTTP refusals).

pub mod error;
pub mod outbox;
pub mod polling;
pub mod session;
pub mod websocket;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chatgate_codec::engine::{self as wire, Frame, Handshake};
use chatgate_codec::{ByteStr, Limits};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::http::{self, Body, OriginPolicy};
use crate::rate::{Bucket, RateLimit};
use crate::sharded::ShardedMap;
pub use error::RequestError;
pub use outbox::{Outgoing, PushError};
pub use session::{CloseReason, Origin, Session, Transport};

/// Work a handler could not finish at once. The transport awaits it before it reads the session's
/// next message, so one client's messages are always handled in order, while its writes continue.
pub type Pending = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a handler made of a message.
pub enum Dispatch {
    /// Handled completely.
    Done,
    /// Still running; the session's next message waits for it.
    Pending(Pending),
}

/// The application on top of Engine.IO: Socket.IO, or a raw echo server in the conformance example.
pub trait Handler: Send + Sync + 'static {
    /// Per-session state of the application.
    type Conn: Send + Sync + 'static;

    /// A session was opened (its open packet is on its way).
    fn open(&self, session: Arc<Session>) -> Self::Conn;

    /// A message arrived: text (without the Engine.IO type digit) or binary. To refuse the client,
    /// call `Session::close`.
    fn message(&self, conn: &Arc<Self::Conn>, frame: Frame) -> Dispatch;

    /// Called at each ping the server sends: a cheap periodic hook (e.g. for a connect timeout).
    fn heartbeat(&self, _conn: &Arc<Self::Conn>) {}

    /// The server is shutting down and the session is about to be closed: the application may
    /// queue its goodbye (Socket.IO sends DISCONNECT). What it queues goes out before the close.
    fn shutdown(&self, _conn: &Arc<Self::Conn>) {}

    /// The session ended. Called exactly once.
    fn close(&self, conn: &Arc<Self::Conn>, reason: CloseReason);
}

/// The settings of one Engine.IO endpoint (the gateway's come from its flags: `app::engine_config`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The path prefix served, with slashes on both ends (default `/socket.io/`).
    pub path: String,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest message or polling body accepted, in bytes; announced to clients as `maxPayload`.
    pub max_payload: usize,
    /// How long a WebSocket may take to finish the upgrade of a polling session.
    pub upgrade_timeout: Duration,
    /// Items a session's outbound queue holds; beyond it, items for that client are dropped.
    pub outbox_capacity: usize,
    /// How long a client's queue may stay full (or a write to it stay blocked) before the client is
    /// disconnected as a slow consumer.
    pub slow_consumer_timeout: Duration,
    /// Initial read buffer of each WebSocket; small keeps idle connections cheap, and it grows for a
    /// large frame.
    pub websocket_read_buffer: usize,
    pub allow_polling: bool,
    pub allow_websocket: bool,
    pub origins: OriginPolicy,
    /// Most sessions held at once; a handshake beyond it gets 503.
    pub max_sessions: usize,
    /// Most sessions on long-polling at once (each costs a pending request and a driver task); a
    /// polling handshake beyond it gets 503, WebSocket handshakes still succeed.
    pub max_polling_sessions: usize,
    /// New sessions per client address: `per_second` on average, `burst` at once; beyond it, 429.
    pub handshake_rate: RateLimit,
}

/// A live session and its application state.
pub struct Entry<H: Handler> {
    pub session: Arc<Session>,
    pub conn: Arc<H::Conn>,
}

impl<H: Handler> Clone for Entry<H> {
    fn clone(&self) -> Self {
        Entry {
            session: self.session.clone(),
            conn: self.conn.clone(),
        }
    }
}

/// One Engine.IO endpoint: its configuration, its application, and its sessions.
pub struct Engine<H: Handler> {
    config: EngineConfig,
    limits: Limits,
    handler: H,
    sessions: ShardedMap<ByteStr, Entry<H>>,
    polling_sessions: AtomicUsize,
    handshakes: ShardedMap<IpAddr, Bucket>,
    /// Sessions ended, by reason (index: position in `CloseReason::ALL`).
    closed: [AtomicU64; 7],
    /// Handshakes refused by a limit.
    refused: AtomicU64,
    /// Set by `shutdown`: sessions are still served, new ones refused.
    draining: AtomicBool,
}

/// A snapshot of an endpoint's sessions, for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct EngineStats {
    pub polling: usize,
    pub websocket: usize,
    /// Items waiting in all outbound queues, and in the longest one.
    pub queued: usize,
    pub queued_max: usize,
    pub closed: Vec<(&'static str, u64)>,
    pub refused: u64,
}

impl<H: Handler> Engine<H> {
    pub fn new(config: EngineConfig, handler: H) -> Arc<Self> {
        let limits = Limits {
            max_payload: config.max_payload,
            ..Limits::DEFAULT
        };
        Arc::new(Engine {
            config,
            limits,
            handler,
            sessions: ShardedMap::for_this_machine(),
            polling_sessions: AtomicUsize::new(0),
            handshakes: ShardedMap::for_this_machine(),
            closed: Default::default(),
            refused: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions the server still owes something (see `Session::owes_client`): what a shutdown
    /// waits for. Walks the session table.
    pub fn sessions_owed(&self) -> usize {
        self.sessions
            .values_cloned()
            .iter()
            .filter(|entry| entry.session.owes_client())
            .count()
    }

    /// Counts of sessions by transport, queue depths and ends by reason. Walks the session table:
    /// meant for a scrape every few seconds, not for a hot path.
    pub fn stats(&self) -> EngineStats {
        let mut stats = EngineStats::default();
        for entry in self.sessions.values_cloned() {
            match entry.session.transport() {
                Transport::Polling => stats.polling += 1,
                Transport::WebSocket => stats.websocket += 1,
            }
            let queued = entry.session.outbox().len();
            stats.queued += queued;
            stats.queued_max = stats.queued_max.max(queued);
        }
        stats.closed = CloseReason::ALL
            .iter()
            .zip(&self.closed)
            .map(|(r, n)| (r.as_str(), n.load(Ordering::Relaxed)))
            .collect();
        stats.refused = self.refused.load(Ordering::Relaxed);
        stats
    }

    /// Closes every session for a server shutdown and refuses new ones from now on. With
    /// `goodbye`, the application first queues its farewell on each ([`Handler::shutdown`]); either
    /// way what is queued is still written. The listener must keep serving requests until the
    /// sessions are gone: long-polling clients fetch their goodbye with a request of their own.
    pub fn shutdown(&self, goodbye: bool) {
        self.draining.store(true, Ordering::Release);
        for entry in self.sessions.values_cloned() {
            if goodbye {
                self.handler.shutdown(&entry.conn);
            }
            entry.session.close(CloseReason::ServerShutdown);
        }
    }

    /// Serves one HTTP request under the endpoint's path.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<Body> {
        let origin = match self.config.origins.check(req.headers()) {
            Ok(origin) => origin.cloned(),
            Err(http::ForeignOrigin) => return RequestError::Forbidden.response(),
        };
        let mut response = if req.method() == Method::OPTIONS {
            http::preflight(&req)
        } else {
            match self.route(req, remote).await {
                Ok(r) => r,
                Err(e) => e.response(),
            }
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            OriginPolicy::decorate(origin.as_ref(), &mut response);
        }
        response
    }

    async fn route(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Result<Response<Body>, RequestError> {
        let query = req.uri().query().unwrap_or("").to_owned();
        let transport = match http::query_param(&query, "transport") {
            Some("polling") if self.config.allow_polling => Transport::Polling,
            Some("websocket") if self.config.allow_websocket => Transport::WebSocket,
            _ => return Err(RequestError::UnknownTransport),
        };
        if let Some(sid) = http::query_param(&query, "sid") {
            let entry = self
                .sessions
                .get_cloned(sid)
                .ok_or(RequestError::UnknownSid)?;
            if entry.session.ping_expired(tokio::time::Instant::now()) {
                entry.session.close(CloseReason::PingTimeout);
            }
            if entry.session.holds_goodbye() && transport == Transport::Polling {
                return match *req.method() {
                    Method::GET => polling::get(&self, entry).await,
                    Method::POST => polling::post(&self, entry, req).await,
                    _ => Err(RequestError::BadRequest),
                };
            }
            if entry.session.is_closed() {
                // Closing, but its driver has not run yet: it is gone for every new request.
                self.finish(&entry);
                return Err(RequestError::UnknownSid);
            }
            return match transport {
                Transport::WebSocket => websocket::upgrade(self, req, Some(entry), remote, query),
                Transport::Polling if entry.session.transport() != Transport::Polling => {
                    Err(RequestError::BadRequest)
                }
                Transport::Polling => match *req.method() {
                    Method::GET => polling::get(&self, entry).await,
                    Method::POST => polling::post(&self, entry, req).await,
                    _ => Err(RequestError::BadRequest),
                },
            };
        }
        if self.draining.load(Ordering::Acquire) {
            return Err(RequestError::ShuttingDown);
        }
        if req.method() != Method::GET {
            return Err(RequestError::BadHandshakeMethod);
        }
        if http::query_param(&query, "EIO") != Some("4") {
            return Err(RequestError::UnsupportedProtocolVersion);
        }
        let refusal = if self.sessions.len() >= self.config.max_sessions {
            Some(RequestError::ServerFull)
        } else if !self.allow_handshake(remote.ip()) {
            Some(RequestError::TooManyHandshakes)
        } else if transport == Transport::Polling
            && self.polling_sessions.load(Ordering::Acquire) >= self.config.max_polling_sessions
        {
            Some(RequestError::TooManyPollingSessions)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refusal);
        }
        match transport {
            Transport::WebSocket => websocket::upgrade(self, req, None, remote, query),
            Transport::Polling => Ok(polling::handshake(
                &self,
                Origin {
                    remote,
                    query: query.into(),
                },
            )),
        }
    }

    /// Takes a token from the address's handshake bucket. Buckets that have refilled are forgotten
    /// when a shard grows, so the table stays small however many addresses pass by.
    fn allow_handshake(&self, ip: IpAddr) -> bool {
        let limit = self.config.handshake_rate;
        let now = tokio::time::Instant::now();
        self.handshakes.with(&ip, |map| {
            if map.len() > 4096 {
                map.retain(|_, bucket| !bucket.is_full(limit, now));
            }
            map.entry(ip).or_default().allow(limit, now)
        })
    }

    /// Sessions currently on long-polling.
    pub fn polling_session_count(&self) -> usize {
        self.polling_sessions.load(Ordering::Acquire)
    }

    /// A polling session moved to WebSocket or ended.
    fn polling_session_gone(&self) {
        self.polling_sessions.fetch_sub(1, Ordering::AcqRel);
    }

    /// Creates a session, lets the application attach its state, and registers it.
    fn open(&self, transport: Transport, origin: Origin) -> Entry<H> {
        let session = Arc::new(Session::new(
            transport,
            self.config.ping_interval,
            self.config.ping_timeout,
            self.config.outbox_capacity,
            self.config.slow_consumer_timeout,
            origin,
        ));
        if transport == Transport::Polling {
            self.polling_sessions.fetch_add(1, Ordering::AcqRel);
        }
        let conn = Arc::new(self.handler.open(session.clone()));
        let entry = Entry { session, conn };
        self.sessions
            .insert(entry.session.sid().clone(), entry.clone());
        entry
    }

    /// The open packet for a new session.
    fn open_frame(&self, session: &Session, upgrades: &[&str]) -> Frame {
        wire::Packet::Open(Handshake {
            sid: session.sid().to_string(),
            upgrades: upgrades.iter().map(|u| (*u).to_owned()).collect(),
            ping_interval: self.config.ping_interval.as_millis() as u64,
            ping_timeout: self.config.ping_timeout.as_millis() as u64,
            max_payload: self.config.max_payload as u64,
        })
        .encode()
    }

    /// Applies one packet from the client, whatever transport brought it.
    fn receive(&self, entry: &Entry<H>, packet: wire::Packet) -> Dispatch {
        match packet {
            wire::Packet::Message(text) => self.handler.message(&entry.conn, Frame::Text(text)),
            wire::Packet::Binary(bytes) => self.handler.message(&entry.conn, Frame::Binary(bytes)),
            wire::Packet::Pong(_) => {
                entry.session.pong(tokio::time::Instant::now());
                Dispatch::Done
            }
            wire::Packet::Close => {
                entry.session.close(CloseReason::TransportClose);
                Dispatch::Done
            }
            // Pings come from servers; upgrade and noop mean nothing outside an upgrade.
            wire::Packet::Ping(_) | wire::Packet::Upgrade | wire::Packet::Noop => Dispatch::Done,
            wire::Packet::Open(_) => {
                entry.session.close(CloseReason::TransportError);
                Dispatch::Done
            }
        }
    }

    /// Runs the heartbeat step the session asks for; `Some(deadline)` while it goes on.
    fn beat(&self, entry: &Entry<H>) -> Option<tokio::time::Instant> {
        match entry.session.beat(tokio::time::Instant::now()) {
            session::Beat::WaitUntil(t) => Some(t),
            session::Beat::SendPing => {
                self.handler.heartbeat(&entry.conn);
                let _ = entry.session.send(Frame::Text(ByteStr::from_static("2")));
                Some(entry.session.heartbeat_deadline())
            }
            session::Beat::TimedOut => {
                entry.session.close(CloseReason::PingTimeout);
                None
            }
        }
    }

    /// The end of a session: unregisters it and tells the application, once.
    fn finish(&self, entry: &Entry<H>) {
        if !entry.session.finish() {
            return;
        }
        entry.session.close(CloseReason::TransportClose);
        let reason = entry
            .session
            .close_reason()
            .unwrap_or(CloseReason::TransportClose);
        self.sessions.remove(entry.session.sid().as_str());
        if entry.session.transport() == Transport::Polling {
            self.polling_session_gone();
        }
        if let Some(i) = CloseReason::ALL.iter().position(|r| *r == reason) {
            self.closed[i].fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(sid = %entry.session.sid(), %reason, "session closed");
        self.handler.close(&entry.conn, reason);
    }
}
