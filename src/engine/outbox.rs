//! `Outbox`: one session's bounded queue of frames waiting to be written.
//!
//! Anyone may push (the session's own handlers, a broadcast from another connection's task); one
//! writer drains: the WebSocket task, or the pending long-poll GET. The writer takes everything queued
//! in one lock and writes it as one batch, so a burst costs one wake-up and one flush, not one per frame.
//!
//! A `std::sync::Mutex` around a `VecDeque` rather than a channel: pushes never await (a broadcast must
//! never wait for a peer), the lock is held for a push or a swap only, and an idle outbox holds no
//! buffer at all (a channel keeps a block of slots allocated per connection).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::time::Instant;

use chatgate_codec::engine::Frame;
use futures_util::task::AtomicWaker;

/// What a writer sends: one frame, or several that must stay together (a binary packet's header and
/// its attachments, which another sender's frames must not split).
#[derive(Debug, Clone)]
pub enum Outgoing {
    One(Frame),
    Many(Arc<[Frame]>),
}

impl Outgoing {
    /// The frames, in order.
    pub fn frames(&self) -> &[Frame] {
        match self {
            Outgoing::One(f) => std::slice::from_ref(f),
            Outgoing::Many(fs) => fs,
        }
    }
}

impl From<Frame> for Outgoing {
    fn from(frame: Frame) -> Self {
        Outgoing::One(frame)
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds `capacity` items: the reader is not keeping up.
    Full,
    /// The session is closed.
    Closed,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// Since when pushes have been refused for lack of room (cleared when the writer drains).
    full_since: Option<Instant>,
}

#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// Set by pushes, cleared by the writer when it wakes: one flag and one waker, because there is
    /// one writer at a time (a mutex-guarded waiter list would cost a lock per wake-up).
    signalled: AtomicBool,
    writer: AtomicWaker,
    closed: AtomicBool,
    capacity: usize,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::default()),
            signalled: AtomicBool::new(false),
            writer: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            capacity,
        }
    }

    /// Queues `item` without waiting. Never blocks on the reader.
    pub fn push(&self, item: Outgoing) -> Result<(), PushError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PushError::Closed);
        }
        {
            let mut queue = self.lock();
            if queue.items.len() >= self.capacity {
                queue.full_since.get_or_insert_with(Instant::now);
                return Err(PushError::Full);
            }
            queue.items.push_back(item);
        }
        self.signal();
        Ok(())
    }

    pub fn push_frame(&self, frame: Frame) -> Result<(), PushError> {
        self.push(Outgoing::One(frame))
    }

    /// Moves everything queued into `into` (which should be empty), in one lock.
    pub fn drain_into(&self, into: &mut VecDeque<Outgoing>) {
        let mut queue = self.lock();
        std::mem::swap(&mut queue.items, into);
        queue.full_since = None;
    }

    /// Frees the queue's buffer if nothing is queued; returns whether it was empty.
    pub fn release_if_empty(&self) -> bool {
        let mut queue = self.lock();
        if queue.items.is_empty() {
            queue.items = VecDeque::new();
            true
        } else {
            false
        }
    }

    /// Number of items waiting.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// How long pushes have been refused because the queue is full; `None` while there is room.
    pub fn full_for(&self) -> Option<std::time::Duration> {
        self.lock().full_since.map(|since| since.elapsed())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until something may have been pushed, or the outbox was closed, since the last wait.
    /// Spurious wake-ups are possible; the writer drains and finds nothing. One writer at a time.
    pub async fn ready(&self) {
        poll_fn(|cx| {
            if self.signalled.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.writer.register(cx.waker());
            // A push between the check and the registration set the flag: look again.
            if self.signalled.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn signal(&self) {
        self.signalled.store(true, Ordering::Release);
        self.writer.wake();
    }

    /// Refuses further pushes and wakes the writer.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.signal();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Wakes the writer without pushing (for example to end a long-poll during an upgrade).
    pub fn wake(&self) {
        self.signal();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves a queue of frames, which is still consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_codec::ByteStr;

    fn text(s: &'static str) -> Frame {
        Frame::Text(ByteStr::from_static(s))
    }

    #[test]
    fn bounded_and_closable() {
        let outbox = Outbox::new(2);
        outbox.push_frame(text("4a")).unwrap();
        outbox.push_frame(text("4b")).unwrap();
        assert_eq!(outbox.push_frame(text("4c")), Err(PushError::Full));
        let mut batch = VecDeque::new();
        outbox.drain_into(&mut batch);
        assert_eq!(batch.len(), 2);
        assert!(outbox.is_empty());
        outbox.close();
        assert_eq!(outbox.push_frame(text("4d")), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn a_push_before_the_wait_is_not_lost() {
        let outbox = Outbox::new(4);
        outbox.push_frame(text("4a")).unwrap();
        // The signal set by the push wakes the next wait at once.
        outbox.ready().await;
        assert_eq!(outbox.len(), 1);
    }
}
