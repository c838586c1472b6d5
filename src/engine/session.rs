//! `Session`: the state of one Engine.IO session, whatever transport carries it.
//!
//! A session outlives its transports: it starts on long-polling or WebSocket, may move from polling to
//! WebSocket (the upgrade), and ends once, with one `CloseReason`. Exactly one *driver* runs it at a
//! time: the polling driver task (heartbeat, close) for a polling session, then the WebSocket task
//! after an upgrade, or the WebSocket task from the start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chatgate_codec::ByteStr;
use rand::RngCore;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::outbox::{Outbox, Outgoing, PushError};

/// Why a session ended. The text is the reason the Socket.IO documentation gives for a disconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the connection or sent a close packet.
    TransportClose,
    /// The transport failed: a read or write error, or a frame the protocol forbids.
    TransportError,
    /// No pong within `pingTimeout` of a ping.
    PingTimeout,
    /// The Socket.IO layer could not decode a packet.
    ParseError,
    /// The server closed the session (for example the application disconnected the client).
    ForcedClose,
    /// The client stopped reading and its outbound queue stayed full.
    SlowConsumer,
    /// The server is shutting down.
    ServerShutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 7] = [
        CloseReason::TransportClose,
        CloseReason::TransportError,
        CloseReason::PingTimeout,
        CloseReason::ParseError,
        CloseReason::ForcedClose,
        CloseReason::SlowConsumer,
        CloseReason::ServerShutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::ForcedClose => "forced close",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::ServerShutdown => "server shutting down",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which transport currently carries the session's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    WebSocket,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

/// What the heartbeat asks the driver to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Nothing before this instant.
    WaitUntil(Instant),
    /// Send a ping now (already recorded as sent).
    SendPing,
    /// The last ping was not answered in time.
    TimedOut,
}

#[derive(Debug)]
struct State {
    transport: Transport,
    /// A WebSocket is probing this polling session (`2probe` answered, `5` not yet received).
    upgrading: bool,
    /// A long-poll GET is in progress.
    polling_get: bool,
    /// A POST is in progress.
    polling_post: bool,
    /// When the heartbeat next needs attention.
    deadline: Instant,
    awaiting_pong: bool,
}

/// What the session keeps of the request that opened it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub remote: SocketAddr,
    /// The query string of the handshake request, without the leading `?`.
    pub query: Box<str>,
}

#[derive(Debug)]
pub struct Session {
    sid: ByteStr,
    outbox: Outbox,
    state: Mutex<State>,
    ping_interval: Duration,
    ping_timeout: Duration,
    slow_consumer_timeout: Duration,
    origin: Origin,
    close_reason: OnceLock<CloseReason>,
    /// Set once the engine has run its end-of-session work (table removal, the handler's close).
    finished: AtomicBool,
    /// A long-poll carried the goodbye of a session the server closed (see `holds_goodbye`).
    goodbye_taken: AtomicBool,
    /// Wakes drivers on a state change they must act on: close requested, upgrade done.
    changed: Notify,
}

/// A fresh session id: 15 random bytes as 20 characters of URL-safe base64, as the reference server's
/// ids look. Unguessable, because knowing a polling session's id is enough to read and write it.
pub fn new_id() -> ByteStr {
    let mut raw = [0u8; 15];
    rand::rng().fill_bytes(&mut raw);
    let id: String = chatgate_codec::base64::encode(&raw)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    ByteStr::from(id)
}

impl Session {
    pub fn new(
        transport: Transport,
        ping_interval: Duration,
        ping_timeout: Duration,
        outbox_capacity: usize,
        slow_consumer_timeout: Duration,
        origin: Origin,
    ) -> Session {
        Session {
            sid: new_id(),
            outbox: Outbox::new(outbox_capacity),
            state: Mutex::new(State {
                transport,
                upgrading: false,
                polling_get: false,
                polling_post: false,
                deadline: Instant::now() + ping_interval,
                awaiting_pong: false,
            }),
            ping_interval,
            ping_timeout,
            slow_consumer_timeout,
            origin,
            close_reason: OnceLock::new(),
            finished: AtomicBool::new(false),
            goodbye_taken: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    pub fn sid(&self) -> &ByteStr {
        &self.sid
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn transport(&self) -> Transport {
        self.state().transport
    }

    /// Queues one item for the client, never waiting for it. While the queue is full, items for
    /// this client are dropped; once it has stayed full for the slow-consumer timeout, the session is
    /// closed. The sender and everyone else carry on either way.
    pub fn send(&self, item: impl Into<Outgoing>) -> Result<(), PushError> {
        let result = self.outbox.push(item.into());
        if result == Err(PushError::Full)
            && self
                .outbox
                .full_for()
                .is_some_and(|d| d >= self.slow_consumer_timeout)
        {
            self.close(CloseReason::SlowConsumer);
        }
        result
    }

    /// How long a client may leave its queue full, or a write to it blocked, before it is dropped.
    pub fn slow_consumer_timeout(&self) -> Duration {
        self.slow_consumer_timeout
    }

    /// Asks for the session to end. The first reason given wins; the driver does the rest.
    pub fn close(&self, reason: CloseReason) {
        if self.close_reason.set(reason).is_ok() {
            self.outbox.close();
            self.changed.notify_waiters();
        }
    }

    /// The reason the session is closing, once `close` was called.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.get().copied()
    }

    pub fn is_closed(&self) -> bool {
        self.close_reason.get().is_some()
    }

    /// Marks the end-of-session work as done; true for the one caller that must do it.
    pub(super) fn finish(&self) -> bool {
        let first = !self.finished.swap(true, Ordering::AcqRel);
        if first {
            self.changed.notify_waiters();
        }
        first
    }

    pub(super) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub(super) fn take_goodbye(&self) {
        self.goodbye_taken.store(true, Ordering::Release);
    }

    /// Whether the server still owes the client something: a live session, or a closed one whose
    /// goodbye no request has carried yet. A shutdown waits for these alone.
    pub fn owes_client(&self) -> bool {
        let goodbye_delivered = self.holds_goodbye() && self.goodbye_taken.load(Ordering::Acquire);
        !self.is_finished() && !goodbye_delivered
    }

    /// Whether the client still has to collect a goodbye the server queued: a long-polling session
    /// the server closed (shutdown, or the application disconnecting it) keeps its last frames and
    /// its close packet until the client's next GET takes them. Without that wait, a client that is
    /// between two polls would find its session gone and report a transport error.
    pub fn holds_goodbye(&self) -> bool {
        matches!(
            self.close_reason(),
            Some(CloseReason::ServerShutdown | CloseReason::ForcedClose)
        ) && self.transport() == Transport::Polling
            && !self.is_finished()
    }

    /// Completes when `close` is called or the transport changes; registered before the caller
    /// checks the state, so no notification slips in between.
    pub fn changed_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    // --- heartbeat -------------------------------------------------------------------------------

    /// Advances the heartbeat: the server pings every `ping_interval` after the last pong (or the
    /// open), and the client has `ping_timeout` to answer. The timeout runs from when the ping is
    /// queued, whether or not a transport is there to carry it.
    pub fn beat(&self, now: Instant) -> Beat {
        let mut state = self.state();
        if now < state.deadline {
            return Beat::WaitUntil(state.deadline);
        }
        if state.awaiting_pong {
            return Beat::TimedOut;
        }
        state.awaiting_pong = true;
        state.deadline = now + self.ping_timeout;
        Beat::SendPing
    }

    /// Whether the last ping went unanswered past its deadline, whether or not a timer has noticed yet.
    pub fn ping_expired(&self, now: Instant) -> bool {
        let state = self.state();
        state.awaiting_pong && now >= state.deadline
    }

    /// Records a pong; returns the new heartbeat deadline.
    pub fn pong(&self, now: Instant) -> Instant {
        let mut state = self.state();
        if state.awaiting_pong {
            state.awaiting_pong = false;
            state.deadline = now + self.ping_interval;
        }
        state.deadline
    }

    pub fn heartbeat_deadline(&self) -> Instant {
        self.state().deadline
    }

    // --- polling ---------------------------------------------------------------------------------

    /// Claims the session's one long-poll slot; false if a GET is already waiting.
    pub(super) fn begin_get(&self) -> bool {
        !std::mem::replace(&mut self.state().polling_get, true)
    }

    pub(super) fn end_get(&self) {
        self.state().polling_get = false;
    }

    /// Claims the session's one POST slot; false if a POST is already in progress.
    pub(super) fn begin_post(&self) -> bool {
        !std::mem::replace(&mut self.state().polling_post, true)
    }

    pub(super) fn end_post(&self) {
        self.state().polling_post = false;
    }

    // --- upgrade ---------------------------------------------------------------------------------

    /// Whether a WebSocket may start probing this session: it is on polling and no probe runs.
    pub(super) fn begin_upgrade(&self) -> bool {
        let mut state = self.state();
        if state.transport != Transport::Polling || state.upgrading || self.is_closed() {
            return false;
        }
        state.upgrading = true;
        true
    }

    /// Whether a probe is under way (a long-poll must then return at once, with a noop if empty).
    pub fn is_upgrading(&self) -> bool {
        self.state().upgrading
    }

    /// The probe failed or was abandoned: the session stays on polling.
    pub(super) fn abort_upgrade(&self) {
        self.state().upgrading = false;
    }

    /// The client sent `upgrade`: from now on the WebSocket carries everything.
    pub(super) fn complete_upgrade(&self) {
        {
            let mut state = self.state();
            state.transport = Transport::WebSocket;
            state.upgrading = false;
        }
        self.changed.notify_waiters();
        // Release a long-poll still waiting, so the client can finish its polling transport.
        self.outbox.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_codec::engine::Frame;

    fn session() -> Session {
        Session::new(
            Transport::Polling,
            Duration::from_millis(300),
            Duration::from_millis(200),
            8,
            Duration::from_millis(100),
            Origin {
                remote: "127.0.0.1:1".parse().expect("literal address"),
                query: "".into(),
            },
        )
    }

    #[test]
    fn ids_are_20_url_safe_characters() {
        for _ in 0..100 {
            let id = new_id();
            assert_eq!(id.len(), 20);
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
        assert_ne!(new_id(), new_id());
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_pings_then_times_out_without_pong() {
        let s = session();
        let t0 = Instant::now();
        assert_eq!(s.beat(t0), Beat::WaitUntil(t0 + Duration::from_millis(300)));
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(s.beat(t1), Beat::SendPing);
        assert_eq!(
            s.beat(t1 + Duration::from_millis(199)),
            Beat::WaitUntil(t1 + Duration::from_millis(200))
        );
        assert_eq!(s.beat(t1 + Duration::from_millis(200)), Beat::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn pong_schedules_the_next_ping_an_interval_later() {
        let s = session();
        let t1 = Instant::now() + Duration::from_millis(300);
        assert_eq!(s.beat(t1), Beat::SendPing);
        let t2 = t1 + Duration::from_millis(50);
        assert_eq!(s.pong(t2), t2 + Duration::from_millis(300));
        assert_eq!(s.beat(t2 + Duration::from_millis(300)), Beat::SendPing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_full_past_the_timeout_closes_the_session_as_slow_consumer() {
        let s = session();
        let frame = || Frame::Text(ByteStr::from_static("4x"));
        for _ in 0..8 {
            s.send(frame()).unwrap();
        }
        assert_eq!(s.send(frame()), Err(PushError::Full));
        assert_eq!(s.close_reason(), None, "full, but not for long yet");
        tokio::time::advance(Duration::from_millis(99)).await;
        assert_eq!(s.send(frame()), Err(PushError::Full));
        assert_eq!(s.close_reason(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(s.send(frame()), Err(PushError::Full));
        assert_eq!(s.close_reason(), Some(CloseReason::SlowConsumer));
    }

    #[tokio::test(start_paused = true)]
    async fn draining_resets_the_slow_consumer_clock() {
        let s = session();
        let frame = || Frame::Text(ByteStr::from_static("4x"));
        for _ in 0..9 {
            let _ = s.send(frame());
        }
        tokio::time::advance(Duration::from_millis(150)).await;
        s.outbox()
            .drain_into(&mut std::collections::VecDeque::new());
        assert!(s.send(frame()).is_ok());
        assert_eq!(s.close_reason(), None);
    }

    #[test]
    fn one_get_and_one_post_at_a_time() {
        let s = session();
        assert!(s.begin_get());
        assert!(!s.begin_get());
        s.end_get();
        assert!(s.begin_get());
        assert!(s.begin_post());
        assert!(!s.begin_post());
    }
}
