//! The chat's change log: every edit, deletion, reaction and read mark the room was told about,
//! with the exact payload it received and an id from the message id sequence, so that a client
//! that missed some of them during a brief disconnect can be sent them again, in order, once
//! (connection state recovery, docs/RECOVERY.md). Messages need no log: they are stored anyway.
//!
//! A change gets its id under the chat's order lock, at the moment it is broadcast (see
//! [`super::History::order_change`]), so that ids follow the order in which the room heard
//! messages and changes. The PostgreSQL log is then written by one task, in that order, in
//! batches (`chatgate_change`); a recovery first waits until what was logged before it is written,
//! as a join waits for the message writer. The in-memory store keeps the log in the chat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, Notify};

/// One change as the room heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub id: i64,
    pub eventid: i32,
    /// `message-edited`, `message-deleted`, `message-reaction` or `messages-read`.
    pub event: Box<str>,
    /// The event's argument, as JSON text.
    pub payload: Arc<str>,
    pub at: DateTime<Utc>,
}

/// Changes waiting for the log writer; beyond it a change is broadcast but not logged (counted),
/// and a client recovering across it is sent a normal connect instead.
const QUEUE: usize = 10_000;

const INSERT: &str = "INSERT INTO chatgate_change (id, eventid, event, payload, at) \
     SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::text[], $5::timestamptz[]) \
     ON CONFLICT (id) DO NOTHING";

/// Logged changes, in the order they were given to [`ChangeWriter::log`], and how far the writer
/// is.
pub struct ChangeWriter {
    tx: mpsc::Sender<LoggedChange>,
    queued: AtomicU64,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Changes written, or given up on: a wait never outlasts the writer's attempt.
    settled: AtomicU64,
    settled_changed: Notify,
    dropped: AtomicU64,
}

impl ChangeWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(pool: Pool, query_timeout: Duration) -> ChangeWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared::default());
        tokio::spawn(write(pool, rx, shared.clone(), query_timeout));
        ChangeWriter {
            tx,
            queued: AtomicU64::new(0),
            shared,
        }
    }

    /// Queues a change. Called under the chat's order lock, so the log is in id order per chat.
    pub fn log(&self, change: LoggedChange) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(change).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.settle(1);
        }
    }

    fn settle(&self, n: u64) {
        self.shared.settled.fetch_add(n, Ordering::AcqRel);
        self.shared.settled_changed.notify_waiters();
    }

    /// Changes queued so far (a position to wait for with [`ChangeWriter::written_up_to`]).
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// Waits (at most `timeout`) until the first `n` changes queued are written.
    pub async fn written_up_to(&self, n: u64, timeout: Duration) {
        let shared = &self.shared;
        super::settled_up_to(&shared.settled, &shared.settled_changed, n, timeout).await;
    }

    /// Changes broadcast but not logged (queue full, or the database failed three times).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

async fn write(
    pool: Pool,
    mut rx: mpsc::Receiver<LoggedChange>,
    shared: Arc<Shared>,
    timeout: Duration,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut wait = Duration::from_millis(100);
        let mut written = false;
        for _ in 0..3 {
            match tokio::time::timeout(timeout, insert(&pool, &batch)).await {
                Ok(Ok(())) => {
                    written = true;
                    break;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "change log not written; retrying"),
                Err(_) => tracing::warn!("change log not written within {timeout:?}; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        if !written {
            shared
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        shared
            .settled
            .fetch_add(batch.len() as u64, Ordering::AcqRel);
        shared.settled_changed.notify_waiters();
        batch.clear();
    }
}

async fn insert(pool: &Pool, batch: &[LoggedChange]) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let ids: Vec<i64> = batch.iter().map(|c| c.id).collect();
    let eventids: Vec<i32> = batch.iter().map(|c| c.eventid).collect();
    let events: Vec<&str> = batch.iter().map(|c| &*c.event).collect();
    let payloads: Vec<&str> = batch.iter().map(|c| &*c.payload).collect();
    let ats: Vec<DateTime<Utc>> = batch.iter().map(|c| c.at).collect();
    client
        .execute(INSERT, &[&ids, &eventids, &events, &payloads, &ats])
        .await
        .map(|_| ())
        .map_err(|e| super::db_error_text(&e))
}

/// The changes of `eventid`'s chat with ids in `(after, before)`, oldest first, at most `limit`.
pub async fn read(
    pool: &Pool,
    eventid: i32,
    after: i64,
    before: i64,
    limit: usize,
) -> Result<Vec<LoggedChange>, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT id, event, payload, at FROM chatgate_change \
             WHERE eventid = $1 AND id > $2 AND id < $3 ORDER BY id LIMIT $4",
            &[&eventid, &after, &before, &(limit as i64)],
        )
        .await
        .map_err(|e| super::db_error_text(&e))?;
    rows.iter()
        .map(|row| {
            Ok(LoggedChange {
                id: row.try_get(0).map_err(|e| e.to_string())?,
                eventid,
                event: row.try_get::<_, &str>(1).map_err(|e| e.to_string())?.into(),
                payload: row.try_get::<_, &str>(2).map_err(|e| e.to_string())?.into(),
                at: row.try_get(3).map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

/// Deletes logged changes older than `keep`; returns how many.
pub async fn prune(pool: &Pool, keep: Duration) -> Result<u64, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let keep = keep.as_secs_f64();
    client
        .execute(
            "DELETE FROM chatgate_change WHERE at < now() - make_interval(secs => $1)",
            &[&keep],
        )
        .await
        .map_err(|e| super::db_error_text(&e))
}
