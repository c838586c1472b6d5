//! What the chat remembers about each socket: who it proved to be (JWT) and which chat it is in.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::directory::Role;
use crate::rate::{Bucket, RateLimit};

/// The chat a socket is in.
#[derive(Debug, Clone)]
pub struct Membership {
    pub eventid: i32,
    pub userid: i32,
    pub role: Role,
    /// `users.name`, looked up once at join and shared by every message (and its stored copy).
    pub name: Arc<str>,
    /// `chat_{eventid}`.
    pub room: String,
}

#[derive(Debug, Default)]
pub struct Inner {
    /// Shared, so the message path takes it with a reference-count increment, not two string copies.
    pub membership: Option<Arc<Membership>>,
    /// The socket disconnected: a join still in flight must not add it to a room.
    pub gone: bool,
    messages: Bucket,
    typing: Bucket,
    reactions: Bucket,
    reads: Bucket,
}

/// Per-socket chat state, attached to the Socket.IO socket at connect.
#[derive(Debug, Default)]
pub struct ChatSocket {
    /// The user id a verified token names (JWT mode); `None` in trust mode.
    pub token_user: Option<i32>,
    inner: Mutex<Inner>,
}

impl ChatSocket {
    pub fn new(token_user: Option<i32>) -> ChatSocket {
        ChatSocket {
            token_user,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Held only for bookkeeping and room membership changes, never across an await.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether one more `send-message` is within the rate limit (and counts it).
    pub fn allow_message(&self, limit: RateLimit) -> bool {
        self.lock()
            .messages
            .allow(limit, tokio::time::Instant::now())
    }

    /// Whether one more `react-message` is within the rate limit (and counts it).
    pub fn allow_reaction(&self, limit: RateLimit) -> bool {
        self.lock()
            .reactions
            .allow(limit, tokio::time::Instant::now())
    }

    /// Whether one more `mark-read` is within the rate limit (and counts it).
    pub fn allow_read(&self, limit: RateLimit) -> bool {
        self.lock().reads.allow(limit, tokio::time::Instant::now())
    }

    /// Whether one more `typing` is within the rate limit (and counts it).
    pub fn allow_typing(&self, limit: RateLimit) -> bool {
        self.lock().typing.allow(limit, tokio::time::Instant::now())
    }

    /// The current membership.
    pub fn membership(&self) -> Option<Arc<Membership>> {
        self.lock().membership.clone()
    }
}

/// The room name of an event's chat, as the seed names it.
pub fn room_name(eventid: i32) -> String {
    format!("chat_{eventid}")
}
