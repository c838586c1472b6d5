//! Counters of the chat for `/metrics`: events in by name, events out by name (per recipient),
//! refusals by `chat-error` kind.
//!
//! Process-wide statics: one gateway runs one chat, and the counters are only ever added to, so
//! every handler can count without the registry being threaded through it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::ChatError;

/// Client events, in the order of the `IN` counters; anything else counts as `other`.
pub const EVENTS_IN: [&str; 11] = [
    "join-chat",
    "send-message",
    "leave-chat",
    "typing",
    "load-history",
    "mark-read",
    "react-message",
    "edit-message",
    "delete-message",
    "notify-settings",
    "other",
];

/// Server events, in the order of the `OUT` counters.
pub const EVENTS_OUT: [&str; 13] = [
    "chat-joined",
    "chat-history",
    "user-joined-chat",
    "receive-message",
    "user-left-chat",
    "chat-left",
    "user-typing",
    "messages-read",
    "message-reaction",
    "message-edited",
    "message-deleted",
    "notify-settings",
    "chat-error",
];

/// `chat-error` kinds, in the order of `ChatError::kind`.
pub const ERROR_KINDS: [&str; 31] = [
    "Missing eventid or userid",
    "Event not found",
    "Unauthorized: You are not part of this event",
    "Not in any chat room",
    "Event ID mismatch",
    "Empty message",
    "Invalid message: must be a string",
    "Message too long",
    "Invalid typing indicator",
    "Failed to join chat",
    "Failed to send message",
    "Failed to leave chat",
    "Rate limit exceeded",
    "Failed to load history",
    "Invalid history request",
    "Invalid message_id",
    "Message not found in this chat",
    "Not your message",
    "Edit window passed",
    "Message was deleted",
    "Invalid emoji",
    "Invalid reaction action",
    "User ID mismatch",
    "Message history is off",
    "Failed to save",
    "Too many reactions",
    "Invalid payload",
    "Invalid attachments",
    "Attachment refused",
    "Invalid notify-settings",
    "Offline notifications are off",
];

/// What became of reconnections with a pid (`chatgate_recoveries_total`): restored, or the reason
/// they connected normally.
pub const RECOVERY_OUTCOMES: [&str; 5] = [
    "recovered",
    "unknown",
    "unauthorized",
    "too_much",
    "unavailable",
];

pub struct ChatMetrics {
    recoveries: [AtomicU64; RECOVERY_OUTCOMES.len()],
    replayed: AtomicU64,
    events_in: [AtomicU64; EVENTS_IN.len()],
    events_out: [AtomicU64; EVENTS_OUT.len()],
    errors: [AtomicU64; ERROR_KINDS.len()],
}

pub static METRICS: ChatMetrics = ChatMetrics {
    recoveries: [const { AtomicU64::new(0) }; RECOVERY_OUTCOMES.len()],
    replayed: AtomicU64::new(0),
    events_in: [const { AtomicU64::new(0) }; EVENTS_IN.len()],
    events_out: [const { AtomicU64::new(0) }; EVENTS_OUT.len()],
    errors: [const { AtomicU64::new(0) }; ERROR_KINDS.len()],
};

impl ChatMetrics {
    pub fn event_in(&self, name: &str) {
        let i = EVENTS_IN
            .iter()
            .position(|e| *e == name)
            .unwrap_or(EVENTS_IN.len() - 1);
        self.events_in[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `count` recipients got `name`.
    pub fn event_out(&self, name: &str, count: usize) {
        if let Some(i) = EVENTS_OUT.iter().position(|e| *e == name) {
            self.events_out[i].fetch_add(count as u64, Ordering::Relaxed);
        }
    }

    /// A reconnection with a pid ended as `outcome` (one of [`RECOVERY_OUTCOMES`]).
    pub fn recovery(&self, outcome: &str) {
        if let Some(i) = RECOVERY_OUTCOMES.iter().position(|o| *o == outcome) {
            self.recoveries[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A socket was restored and sent `replayed` events it missed.
    pub fn recovered(&self, replayed: usize) {
        self.recovery("recovered");
        self.replayed.fetch_add(replayed as u64, Ordering::Relaxed);
    }

    /// Recoveries by outcome, and the events sent again.
    pub fn recoveries(&self) -> (Vec<(&'static str, u64)>, u64) {
        let outcomes = RECOVERY_OUTCOMES
            .iter()
            .zip(&self.recoveries)
            .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
            .collect();
        (outcomes, self.replayed.load(Ordering::Relaxed))
    }

    pub fn error(&self, error: &ChatError) {
        self.errors[error.kind()].fetch_add(1, Ordering::Relaxed);
    }

    /// `(label, value)` pairs of each family.
    pub fn snapshot(&self) -> [Vec<(&'static str, u64)>; 3] {
        let read = |names: &[&'static str], counters: &[AtomicU64]| {
            names
                .iter()
                .zip(counters)
                .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
                .collect::<Vec<_>>()
        };
        [
            read(&EVENTS_IN, &self.events_in),
            read(&EVENTS_OUT, &self.events_out),
            read(&ERROR_KINDS, &self.errors),
        ]
    }
}
