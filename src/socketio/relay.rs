//! Broadcasts leaving this node: a bounded queue the Socket.IO layer owns and fills, and that
//! whoever carries broadcasts to other nodes (the `cluster` module) drains. The Socket.IO
//! layer knows nothing of who reads it, so the dependency runs one way: the cluster imports this
//! layer (to drain the relay, and to deliver what other nodes send), never the reverse.
//!
//! Each entry is the frame exactly as it was queued to the local members, so the reader encodes
//! it for the wire once and nothing is built twice on the sender's path.

use std::sync::{Mutex, OnceLock};

use chatgate_codec::ByteStr;
use tokio::sync::mpsc;

use crate::engine::Outgoing;

/// One broadcast for the other nodes: the room, the socket that must not get it, and the frame.
pub struct Relayed {
    pub room: Box<str>,
    pub except: Option<ByteStr>,
    pub item: Outgoing,
}

/// Told when the relay is full and a broadcast is dropped (the reader knows why: its link is down,
/// stalled, or slower than the senders).
pub trait DropObserver: Send + Sync {
    fn dropped(&self);
}

pub struct Relay {
    tx: mpsc::Sender<Relayed>,
    rx: Mutex<Option<mpsc::Receiver<Relayed>>>,
    observer: OnceLock<Box<dyn DropObserver>>,
}

impl Relay {
    /// A relay holding at most `capacity` broadcasts (at least 1).
    pub fn new(capacity: usize) -> Relay {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Relay {
            tx,
            rx: Mutex::new(Some(rx)),
            observer: OnceLock::new(),
        }
    }

    /// The reading end, once.
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Relayed>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Who is told of drops (the reader), once.
    pub fn observe_drops(&self, observer: Box<dyn DropObserver>) {
        let _ = self.observer.set(observer);
    }

    /// Queues a broadcast, never waiting; a full relay drops it and tells the observer, which
    /// counts it with the reason.
    pub(super) fn push(&self, relayed: Relayed) {
        if self.tx.try_send(relayed).is_err() {
            if let Some(observer) = self.observer.get() {
                observer.dropped();
            }
        }
    }

    /// Broadcasts waiting now.
    pub fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.tx.capacity() == 0
    }

    /// Completes when the relay has room (for flow control: a sender waits before its message).
    pub async fn room(&self) {
        // The place is given back at once: the broadcast takes one a moment later.
        let _ = self.tx.reserve().await;
    }
}
