//! Read marks are coalesced: `mark-read`s wait (at most `--read-flush-ms`) and are applied together,
//! so a burst of them costs the database a few statements per interval, not a write each. The
//! newest valid mark of each member wins, and a mark never moves back (see
//! `postgres_annotations::mark_read`).
//!
//! A mark naming a message made on another node a moment ago may reach us before that node has
//! stored it; such a mark is kept for the next intervals (at most [`ROUNDS`]) before it is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::annotations::{ChangeError, ReadMark, ReadRequest, ReadsApplied};

/// What became of a `mark-read`.
#[derive(Debug, Clone)]
pub enum ReadOutcome {
    Refused(ChangeError),
    /// The member's mark after the batch; `announce` is true for exactly one request of each
    /// member whose mark moved forward (the last valid one), which tells the room.
    Marked {
        mark: ReadMark,
        announce: bool,
    },
}

pub type OnRead = Box<dyn FnOnce(ReadOutcome) + Send>;

/// Intervals a mark of another node's recent message waits for that message to be stored.
pub const ROUNDS: u8 = 5;

/// How long after its making another node's message may still be unstored.
pub const FOREIGN_GRACE: Duration = Duration::from_secs(5);

pub(super) struct Waiting {
    pub request: ReadRequest,
    pub done: OnRead,
    pub rounds: u8,
}

pub(super) struct Reads {
    waiting: Mutex<Vec<Waiting>>,
    pub wake: Notify,
    pub interval: Duration,
    pub running: AtomicBool,
}

impl Reads {
    pub fn new(interval: Duration) -> Reads {
        Reads {
            waiting: Mutex::default(),
            wake: Notify::new(),
            interval,
            running: AtomicBool::new(false),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a mark; returns true if the flusher must be started.
    pub fn push(&self, request: ReadRequest, done: OnRead) -> bool {
        self.waiting().push(Waiting {
            request,
            done,
            rounds: 0,
        });
        self.wake.notify_one();
        !self.running.swap(true, Ordering::AcqRel)
    }

    pub fn take(&self) -> Vec<Waiting> {
        std::mem::take(&mut *self.waiting())
    }

    pub fn is_empty(&self) -> bool {
        self.waiting().is_empty()
    }

    /// What became of each waiting mark (to be told), and the marks to try again next interval.
    pub fn settle(
        batch: Vec<Waiting>,
        applied: Result<ReadsApplied, ChangeError>,
        retry: impl Fn(&ReadRequest) -> bool,
    ) -> (Vec<(OnRead, ReadOutcome)>, Vec<Waiting>) {
        let applied = match applied {
            Ok(applied) => applied,
            Err(e) => {
                let told = batch
                    .into_iter()
                    .map(|w| (w.done, ReadOutcome::Refused(e.clone())))
                    .collect();
                return (told, Vec::new());
            }
        };
        let valid = |i: usize| applied.valid.get(i).copied().unwrap_or(false);
        let mut announcer: HashMap<(i32, i32), usize> = HashMap::new();
        for (i, w) in batch.iter().enumerate() {
            let key = (w.request.eventid, w.request.userid);
            if valid(i) && applied.advanced.contains(&key) {
                announcer.insert(key, i);
            }
        }
        let mut again = Vec::new();
        let mut told = Vec::with_capacity(batch.len());
        for (i, w) in batch.into_iter().enumerate() {
            if !valid(i) {
                if w.rounds < ROUNDS && retry(&w.request) {
                    again.push(Waiting {
                        rounds: w.rounds + 1,
                        ..w
                    });
                } else {
                    told.push((w.done, ReadOutcome::Refused(ChangeError::UnknownMessage)));
                }
                continue;
            }
            let r = &w.request;
            let key = (r.eventid, r.userid);
            let mark = applied.current.get(&key).cloned().unwrap_or(ReadMark {
                userid: r.userid,
                role: r.role,
                last_read_id: r.message_id,
                read_at: r.at,
            });
            let announce = announcer.get(&key) == Some(&i);
            told.push((w.done, ReadOutcome::Marked { mark, announce }));
        }
        (told, again)
    }

    /// Puts marks back for the next interval.
    pub fn requeue(&self, again: Vec<Waiting>) {
        if again.is_empty() {
            return;
        }
        self.waiting().extend(again);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Role;
    use std::sync::Arc;

    fn request(userid: i32, message_id: i64) -> ReadRequest {
        ReadRequest {
            eventid: 1,
            userid,
            role: Role::Tutee,
            message_id,
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn one_announcement_per_member_and_bad_ids_refused() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let waiting = |id: i64, userid: i32| {
            let seen = seen.clone();
            Waiting {
                request: request(userid, id),
                done: Box::new(move |o| seen.lock().unwrap().push((id, o))),
                rounds: 0,
            }
        };
        let batch = vec![
            waiting(10, 2),
            waiting(30, 2),
            waiting(99, 2),
            waiting(20, 2),
        ];
        let mark = ReadMark {
            userid: 2,
            role: Role::Tutee,
            last_read_id: 30,
            read_at: chrono::Utc::now(),
        };
        let applied = ReadsApplied {
            valid: vec![true, true, false, true],
            advanced: [(1, 2)].into(),
            current: [((1, 2), mark)].into(),
        };
        let (told, again) = Reads::settle(batch, Ok(applied), |_| false);
        assert!(again.is_empty());
        for (done, outcome) in told {
            done(outcome);
        }
        let seen = seen.lock().unwrap();
        let announced: Vec<i64> = seen
            .iter()
            .filter(|(_, o)| matches!(o, ReadOutcome::Marked { announce: true, .. }))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(announced, [20], "the last valid mark tells the room, once");
        assert!(seen.iter().all(|(id, o)| match o {
            ReadOutcome::Marked { mark, .. } => mark.last_read_id == 30 && *id != 99,
            ReadOutcome::Refused(e) => *id == 99 && *e == ChangeError::UnknownMessage,
        }));
    }
}
