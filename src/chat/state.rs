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
    /// When this socket's activity was last reported to the notifications' presence.
    pub seen: Option<tokio::time::Instant>,
    messages: Bucket,
    typing: Bucket,
    reactions: Bucket,
    reads: Bucket,
}

/// The rate-limit budgets of a socket; each client event draws on at most one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// `send-message`, and what costs a database round trip like it: `load-history`,
    /// `edit-message`, `delete-message`.
    Messages,
    Typing,
    Reactions,
    Reads,
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

    /// Whether one more event of `budget` is within `limit` (and counts it).
    pub fn allow(&self, budget: Budget, limit: RateLimit) -> bool {
        if limit.per_second <= 0.0 {
            // Unlimited: no lock, no clock read (the clock was a visible share of a message's
            // cost at saturation).
            return true;
        }
        let mut inner = self.lock();
        let bucket = match budget {
            Budget::Messages => &mut inner.messages,
            Budget::Typing => &mut inner.typing,
            Budget::Reactions => &mut inner.reactions,
            Budget::Reads => &mut inner.reads,
        };
        bucket.allow(limit, tokio::time::Instant::now())
    }

    /// The current membership.
    pub fn membership(&self) -> Option<Arc<Membership>> {
        self.lock().membership.clone()
    }
}

/// The room name of an event's chat, as the original server names it (docs/PROTOCOL.md).
pub fn room_name(eventid: i32) -> String {
    format!("chat_{eventid}")
}
