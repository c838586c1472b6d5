//! The default directory queries, read for many joins at once.
//!
//! A burst of joins (a class starting, the clients of a restarted node coming back) costs the
//! default schema two statements per join; PostgreSQL shares the box with the gateway, and its
//! per-statement work came out of the gateway's joins per second (docs/PERFORMANCE.md). So, as the
//! history pages do (`history/pages.rs`), seats asked for at the same moment are read together:
//! reader tasks take whatever requests are queued and read all their events and users with one
//! statement each (the ids as arrays), pipelined on one connection. A lone join still costs one
//! round trip. Only the default queries can be batched: an operator's own `--event-query` and
//! `--user-query` are run as written, one join at a time.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::DirectoryError;

/// Most joins read with one pair of statements.
const MAX_BATCH: usize = 64;
/// Reader tasks, each holding one pooled connection while it reads a batch.
const READERS: usize = 2;

const EVENTS: &str = "SELECT r.k, e.userid_tutor, e.userid_tutee \
     FROM unnest($1::integer[]) WITH ORDINALITY AS r(eventid, k) \
     JOIN requested_event e ON e.eventid = r.eventid";

const USERS: &str =
    "SELECT r.k, u.name FROM unnest($1::integer[]) WITH ORDINALITY AS r(userid, k) \
     JOIN users u ON u.userid = r.userid";

/// An event's two seats (if the event exists) and the user's name (if the user exists).
pub type Found = (Option<(Option<i32>, Option<i32>)>, Option<String>);

struct Request {
    eventid: i32,
    userid: i32,
    answer: oneshot::Sender<Result<Found, DirectoryError>>,
}

pub struct SeatReader {
    queue: mpsc::Sender<Request>,
    /// The readers' pool and queue end until the first request starts them on its runtime.
    idle: std::sync::Mutex<Option<(Pool, mpsc::Receiver<Request>)>>,
}

impl SeatReader {
    pub fn new(pool: Pool) -> SeatReader {
        let (queue, rx) = mpsc::channel(MAX_BATCH * READERS * 4);
        SeatReader {
            queue,
            idle: std::sync::Mutex::new(Some((pool, rx))),
        }
    }

    pub async fn find(&self, eventid: i32, userid: i32) -> Result<Found, DirectoryError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((pool, rx)) = idle {
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..READERS {
                tokio::spawn(read_batches(pool.clone(), rx.clone()));
            }
        }
        let (answer, answered) = oneshot::channel();
        let gone = || DirectoryError("the directory readers stopped".into());
        self.queue
            .send(Request {
                eventid,
                userid,
                answer,
            })
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

async fn read_batches(pool: Pool, rx: Arc<Mutex<mpsc::Receiver<Request>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        // A join that gave up (timeout, disconnect) is not read.
        batch.retain(|r| !r.answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        let eventids: Vec<i32> = batch.iter().map(|r| r.eventid).collect();
        let userids: Vec<i32> = batch.iter().map(|r| r.userid).collect();
        match read(&pool, &eventids, &userids).await {
            Ok(found) => {
                for (r, found) in batch.drain(..).zip(found) {
                    let _ = r.answer.send(Ok(found));
                }
            }
            Err(e) => {
                for r in batch.drain(..) {
                    let _ = r.answer.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn read(
    pool: &Pool,
    eventids: &[i32],
    userids: &[i32],
) -> Result<Vec<Found>, DirectoryError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| DirectoryError(format!("{what}: {e}"));
    let client = pool.get().await.map_err(|e| fail("no connection", &e))?;
    let (events, users) =
        tokio::try_join!(client.prepare_cached(EVENTS), client.prepare_cached(USERS))
            .map_err(|e| fail("directory query", &e))?;
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    let event_params: [Param; 1] = [&eventids];
    let user_params: [Param; 1] = [&userids];
    // Both statements go out before either answer is read: one round trip.
    let (event_rows, user_rows) = tokio::try_join!(
        client.query(&events, &event_params),
        client.query(&users, &user_params),
    )
    .map_err(|e| fail("query", &e))?;
    let mut found: Vec<Found> = vec![(None, None); eventids.len()];
    let slot = |k: i64| usize::try_from(k - 1).ok().filter(|&k| k < eventids.len());
    for row in &event_rows {
        let k: i64 = row.try_get(0).map_err(|e| fail("event row", &e))?;
        if let Some(k) = slot(k) {
            // An event listed twice takes its first row (run one join at a time, the same table
            // makes the join fail with an error).
            found[k].0.get_or_insert((
                row.try_get(1).map_err(|e| fail("event row", &e))?,
                row.try_get(2).map_err(|e| fail("event row", &e))?,
            ));
        }
    }
    for row in &user_rows {
        let k: i64 = row.try_get(0).map_err(|e| fail("user row", &e))?;
        if let Some(k) = slot(k) {
            found[k]
                .1
                .get_or_insert(row.try_get(1).map_err(|e| fail("user row", &e))?);
        }
    }
    Ok(found)
}
