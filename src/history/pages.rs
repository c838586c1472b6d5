//! History pages read from PostgreSQL in batches.
//!
//! Every join reads a page (its messages, their reactions, the chat's read marks). Read one join
//! at a time, a burst of joins (a class starting, every client of a restarted node coming back)
//! costs PostgreSQL three statements per join, and PostgreSQL shares the box with the gateway:
//! measured at 19,800 joins, the page reads took as much CPU as the rest of the database work of a
//! join together, and that CPU came out of the gateway's joins per second. So pages asked for at
//! the same moment are read together: a few reader tasks each take whatever requests are queued
//! (up to [`MAX_BATCH`]) and read all their pages with the same three statements (the requests as
//! arrays, a `LATERAL` page per request), pipelined on one connection (`crate::batch`). Nothing
//! waits to fill a batch: an idle server reads a lone page at once, with the same one round trip
//! as before, and batches only grow when requests arrive faster than the database answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::annotations::{ReactionCount, ReadMark};
use super::{HistoryError, Page, StoredMessage};
use crate::batch::Batcher;
use crate::directory::Role;

/// Most pages read with one set of statements: large enough that a burst costs the database a
/// few statements, small enough that one batch's rows stay a few hundred KiB.
pub const MAX_BATCH: usize = 64;

/// The pages: `r.k` is the request's place in the batch (1-based), newest message first.
const MESSAGES: &str = "SELECT r.k, m.id, m.userid, m.role, m.sender_name, m.message, \
         m.created_at, m.edited_at, m.deleted_at, m.attachments \
     FROM unnest($1::integer[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS r(eventid, before, take, k) \
     CROSS JOIN LATERAL ( \
         SELECT * FROM chatgate_message c \
         WHERE c.eventid = r.eventid AND c.id < r.before ORDER BY c.id DESC LIMIT r.take) m \
     ORDER BY r.k, m.id DESC";

/// The reactions on each page's messages, `mine` for the request's viewer.
const REACTIONS: &str =
    "SELECT r.k, x.message_id, x.emoji, count(*), bool_or(x.userid = r.viewer) \
     FROM unnest($1::integer[], $2::bigint[], $3::bigint[], $4::integer[]) \
         WITH ORDINALITY AS r(eventid, before, lim, viewer, k) \
     CROSS JOIN LATERAL ( \
         SELECT c.id FROM chatgate_message c \
         WHERE c.eventid = r.eventid AND c.id < r.before ORDER BY c.id DESC LIMIT r.lim) m \
     JOIN chatgate_reaction x ON x.message_id = m.id \
     GROUP BY r.k, x.message_id, x.emoji \
     ORDER BY r.k, x.message_id, min(x.created_at), x.emoji";

/// Every member's read mark in each chat of the batch.
const READS: &str = "SELECT eventid, userid, role, last_read_id, read_at FROM chatgate_read \
     WHERE eventid = ANY($1) ORDER BY eventid, userid";

/// One page asked for.
struct Request {
    eventid: i32,
    before: i64,
    limit: usize,
    viewer: i32,
}

/// Pages read and the batches they were read in, for `/metrics`.
#[derive(Default)]
pub struct PageCounts {
    pub pages: AtomicU64,
    pub batches: AtomicU64,
}

/// Reads pages, in batches (`crate::batch`).
pub struct PageReader {
    batcher: Batcher<Request, Result<Page, HistoryError>>,
    counts: Arc<PageCounts>,
}

impl PageReader {
    /// `readers` reader tasks will read through `pool`, each holding one of its connections while
    /// it reads a batch.
    pub fn new(pool: Pool, readers: usize) -> PageReader {
        let counts = Arc::new(PageCounts::default());
        let c = counts.clone();
        let batcher = Batcher::new(readers, MAX_BATCH, move |batch: Vec<Request>| {
            let (pool, counts) = (pool.clone(), c.clone());
            async move {
                counts.batches.fetch_add(1, Ordering::Relaxed);
                counts
                    .pages
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let rows = read(&pool, &batch_keys(&batch)).await;
                answers(&batch, rows)
            }
        });
        PageReader { batcher, counts }
    }

    pub fn counts(&self) -> &PageCounts {
        &self.counts
    }

    /// Up to `limit` messages of `eventid`'s chat with ids below `before`, oldest first, with their
    /// reactions (`mine` for `viewer`) and the chat's read marks. The caller bounds the wait.
    pub async fn page(
        &self,
        eventid: i32,
        before: i64,
        limit: usize,
        viewer: i32,
    ) -> Result<Page, HistoryError> {
        let request = Request {
            eventid,
            before,
            limit,
            viewer,
        };
        self.batcher
            .ask(request)
            .await
            .unwrap_or_else(|| Err(HistoryError("the history readers stopped".into())))
    }
}

/// What the statements need of a batch.
struct Keys {
    eventids: Vec<i32>,
    befores: Vec<i64>,
    limits: Vec<i64>,
    fetches: Vec<i64>,
    viewers: Vec<i32>,
}

fn batch_keys(requests: &[Request]) -> Keys {
    Keys {
        eventids: requests.iter().map(|r| r.eventid).collect(),
        befores: requests.iter().map(|r| r.before).collect(),
        limits: requests.iter().map(|r| r.limit as i64).collect(),
        // One more than asked: whether it comes back says if there are older ones.
        fetches: requests.iter().map(|r| r.limit as i64 + 1).collect(),
        viewers: requests.iter().map(|r| r.viewer).collect(),
    }
}

/// The rows of one batch, by request (0-based).
struct Rows {
    messages: Vec<Vec<StoredMessage>>,
    reactions: Vec<HashMap<i64, Vec<ReactionCount>>>,
    reads: HashMap<i32, Vec<ReadMark>>,
}

async fn read(pool: &Pool, keys: &Keys) -> Result<Rows, HistoryError> {
    let fail = |e: &dyn std::fmt::Display| HistoryError(e.to_string());
    let client = pool.get().await.map_err(|e| fail(&e))?;
    let (messages, reactions, reads) = tokio::try_join!(
        client.prepare_cached(MESSAGES),
        client.prepare_cached(REACTIONS),
        client.prepare_cached(READS),
    )
    .map_err(|e| fail(&e))?;
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    let message_params: [Param; 3] = [&keys.eventids, &keys.befores, &keys.fetches];
    let reaction_params: [Param; 4] = [&keys.eventids, &keys.befores, &keys.limits, &keys.viewers];
    let read_params: [Param; 1] = [&keys.eventids];
    // Three statements pipelined on one connection: one round trip's wait, not three.
    let (message_rows, reaction_rows, read_rows) = tokio::try_join!(
        client.query(&messages, &message_params),
        client.query(&reactions, &reaction_params),
        client.query(&reads, &read_params),
    )
    .map_err(|e| fail(&e))?;
    let n = keys.eventids.len();
    let mut rows = Rows {
        messages: (0..n).map(|_| Vec::new()).collect(),
        reactions: (0..n).map(|_| HashMap::new()).collect(),
        reads: HashMap::new(),
    };
    for row in &message_rows {
        let k = slot(row, n).map_err(|e| fail(&e))?;
        rows.messages[k].push(stored_message(row, keys.eventids[k])?);
    }
    for row in &reaction_rows {
        let k = slot(row, n).map_err(|e| fail(&e))?;
        let (id, count) = reaction_count(row)?;
        rows.reactions[k].entry(id).or_default().push(count);
    }
    for row in &read_rows {
        let eventid: i32 = row.try_get(0).map_err(|e| fail(&e))?;
        let mark = super::postgres_annotations::read_mark(row, 1).map_err(|e| fail(&e))?;
        rows.reads.entry(eventid).or_default().push(mark);
    }
    Ok(rows)
}

/// A message row whose columns from the second on are those of `MESSAGES`.
fn stored_message(row: &tokio_postgres::Row, eventid: i32) -> Result<StoredMessage, HistoryError> {
    let fail = |e: &dyn std::fmt::Display| HistoryError(e.to_string());
    let role: &str = row.try_get(3).map_err(|e| fail(&e))?;
    let sender_name: &str = row.try_get(4).map_err(|e| fail(&e))?;
    Ok(StoredMessage {
        id: row.try_get(1).map_err(|e| fail(&e))?,
        eventid,
        userid: row.try_get(2).map_err(|e| fail(&e))?,
        role: Role::parse(role).ok_or_else(|| HistoryError(format!("stored role {role:?}")))?,
        sender_name: sender_name.into(),
        message: row.try_get(5).map_err(|e| fail(&e))?,
        created_at: row.try_get::<_, DateTime<Utc>>(6).map_err(|e| fail(&e))?,
        edited_at: row.try_get(7).map_err(|e| fail(&e))?,
        deleted_at: row.try_get(8).map_err(|e| fail(&e))?,
        attachments: row
            .try_get::<_, Option<&str>>(9)
            .map_err(|e| fail(&e))?
            .map(Arc::from),
    })
}

/// A reaction row whose columns from the second on are those of `REACTIONS`.
fn reaction_count(row: &tokio_postgres::Row) -> Result<(i64, ReactionCount), HistoryError> {
    let fail = |e: &dyn std::fmt::Display| HistoryError(e.to_string());
    Ok((
        row.try_get(1).map_err(|e| fail(&e))?,
        ReactionCount {
            emoji: row.try_get(2).map_err(|e| fail(&e))?,
            count: row.try_get(3).map_err(|e| fail(&e))?,
            mine: row.try_get(4).map_err(|e| fail(&e))?,
        },
    ))
}

/// Messages of one chat after an id, oldest first (recoveries and `load-history` with
/// `after_id`, both rare: read one at a time, not batched).
const MESSAGES_AFTER: &str = "SELECT 1::bigint, id, userid, role, sender_name, message, \
         created_at, edited_at, deleted_at, attachments FROM chatgate_message \
     WHERE eventid = $1 AND id > $2 AND id < $3 ORDER BY id LIMIT $4";

const REACTIONS_OF: &str = "SELECT 1::bigint, message_id, emoji, count(*), bool_or(userid = $2) \
     FROM chatgate_reaction WHERE message_id = ANY($1) \
     GROUP BY message_id, emoji ORDER BY message_id, min(created_at), emoji";

/// Up to `limit` messages of `eventid`'s chat with ids in `(after, before)`, oldest first.
pub async fn messages_after(
    client: &tokio_postgres::Client,
    eventid: i32,
    after: i64,
    before: i64,
    limit: usize,
) -> Result<Vec<StoredMessage>, HistoryError> {
    let rows = client
        .query(
            MESSAGES_AFTER,
            &[&eventid, &after, &before, &(limit as i64)],
        )
        .await
        .map_err(|e| HistoryError(super::db_error_text(&e)))?;
    rows.iter()
        .map(|row| stored_message(row, eventid))
        .collect()
}

/// The page of `limit` messages after `after` (oldest first; `has_more`: newer ones exist), with
/// their reactions (`mine` for `viewer`) and the chat's read marks.
pub async fn forward_page(
    pool: &Pool,
    eventid: i32,
    after: i64,
    limit: usize,
    viewer: i32,
) -> Result<Page, HistoryError> {
    let fail = |e: &dyn std::fmt::Display| HistoryError(e.to_string());
    let client = pool.get().await.map_err(|e| fail(&e))?;
    let mut messages = messages_after(&client, eventid, after, i64::MAX, limit + 1).await?;
    let has_more = messages.len() > limit;
    messages.truncate(limit);
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    let chats = vec![eventid];
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    let reaction_params: [Param; 2] = [&ids, &viewer];
    let read_params: [Param; 1] = [&chats];
    let (reaction_rows, read_rows) = tokio::try_join!(
        client.query(REACTIONS_OF, &reaction_params),
        client.query(READS, &read_params),
    )
    .map_err(|e| fail(&e))?;
    let mut reactions: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
    for row in &reaction_rows {
        let (id, count) = reaction_count(row)?;
        reactions.entry(id).or_default().push(count);
    }
    let reads = read_rows
        .iter()
        .map(|row| super::postgres_annotations::read_mark(row, 1).map_err(|e| fail(&e)))
        .collect::<Result<_, _>>()?;
    Ok(Page {
        messages: messages.into_iter().map(Arc::new).collect(),
        has_more,
        reactions,
        reads,
    })
}

/// The 0-based request a row belongs to.
fn slot(row: &tokio_postgres::Row, n: usize) -> Result<usize, String> {
    let k: i64 = row.try_get(0).map_err(|e| e.to_string())?;
    usize::try_from(k - 1)
        .ok()
        .filter(|&k| k < n)
        .ok_or_else(|| format!("page row for request {k} of {n}"))
}

/// Each request's page, or the batch's error for each.
fn answers(
    requests: &[Request],
    rows: Result<Rows, HistoryError>,
) -> Vec<Result<Page, HistoryError>> {
    let mut rows = match rows {
        Ok(rows) => rows,
        Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
    };
    requests
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let mut newest_first = std::mem::take(&mut rows.messages[k]);
            let has_more = newest_first.len() > r.limit;
            newest_first.truncate(r.limit);
            Ok(Page {
                messages: newest_first.into_iter().rev().map(Arc::new).collect(),
                has_more,
                reactions: std::mem::take(&mut rows.reactions[k]),
                // Two requests of one chat in a batch (its tutor and its tutee) get the same marks.
                reads: rows.reads.get(&r.eventid).cloned().unwrap_or_default(),
            })
        })
        .collect()
}
