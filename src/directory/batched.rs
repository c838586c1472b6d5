//! The default directory queries, read for many joins at once.
//!
//! A burst of joins (a class starting, the clients of a restarted node coming back) costs the
//! default schema two statements per join; PostgreSQL shares the box with the gateway, and its
//! per-statement work came out of the gateway's joins per second (docs/PERFORMANCE.md). So, as the
//! history pages do (`history/pages.rs`), seats asked for at the same moment are read together
//! (`crate::batch`): all their events and users with one statement each (the ids as arrays),
//! pipelined on one connection. A lone join still costs one
//! round trip. Only the default queries can be batched: an operator's own `--event-query` and
//! `--user-query` are run as written, one join at a time.

use deadpool_postgres::Pool;

use super::DirectoryError;
use crate::batch::Batcher;

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

/// Reads seats, in batches (`crate::batch`).
pub struct SeatReader {
    batcher: Batcher<(i32, i32), Result<Found, DirectoryError>>,
}

impl SeatReader {
    pub fn new(pool: Pool) -> SeatReader {
        let batcher = Batcher::new(READERS, MAX_BATCH, move |batch: Vec<(i32, i32)>| {
            let pool = pool.clone();
            async move {
                let (eventids, userids): (Vec<i32>, Vec<i32>) = batch.into_iter().unzip();
                match read(&pool, &eventids, &userids).await {
                    Ok(found) => found.into_iter().map(Ok).collect(),
                    Err(e) => eventids.iter().map(|_| Err(e.clone())).collect(),
                }
            }
        });
        SeatReader { batcher }
    }

    pub async fn find(&self, eventid: i32, userid: i32) -> Result<Found, DirectoryError> {
        self.batcher
            .ask((eventid, userid))
            .await
            .unwrap_or_else(|| Err(DirectoryError("the directory readers stopped".into())))
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
