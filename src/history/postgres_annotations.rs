//! Reactions, edits, deletions and read marks in PostgreSQL (tables of migration 3).
//!
//! A reaction, edit or deletion is one short transaction that first locks the message's row
//! (`FOR UPDATE`): changes to one message are applied one after the other on every node, and the
//! totals a reaction answers include every reaction committed before it. A reaction, the most
//! frequent, is one round trip (the function `chatgate_react` of migration 3); edits and deletions
//! are rare and keep their rules in Rust (`annotations::check`, shared with the memory store). Read marks are applied in
//! batches (see `reads.rs`): one statement validates them all, one upserts the newest valid mark
//! per member, and the upsert only ever moves a mark forward, whichever node wrote first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::annotations::{
    check, Change, ChangeError, ChangeKind, Deleted, Reacted, Reaction, ReadMark, ReadRequest,
    ReadsApplied, Target,
};
use crate::directory::Role;

fn unavailable(e: impl std::fmt::Display) -> ChangeError {
    ChangeError::Unavailable(e.to_string())
}

const LOCK: &str = "SELECT userid, created_at, deleted_at FROM chatgate_message \
     WHERE id = $1 AND eventid = $2 FOR UPDATE";

/// Locks the message's row for the rest of the transaction; `UnknownMessage` if it is not in the
/// chat.
async fn lock(
    tx: &deadpool_postgres::Transaction<'_>,
    eventid: i32,
    message_id: i64,
) -> Result<Target, ChangeError> {
    let statement = tx.prepare_cached(LOCK).await.map_err(unavailable)?;
    let row = tx
        .query_opt(&statement, &[&message_id, &eventid])
        .await
        .map_err(unavailable)?
        .ok_or(ChangeError::UnknownMessage)?;
    Ok(Target {
        userid: row.try_get(0).map_err(unavailable)?,
        created_at: row.try_get(1).map_err(unavailable)?,
        deleted_at: row.try_get(2).map_err(unavailable)?,
    })
}

/// One round trip: the work is `chatgate_react` (migration 3).
const REACT: &str =
    "SELECT status, changed, emojis, counts FROM chatgate_react($1, $2, $3, $4, $5, $6, $7)";

pub async fn react(pool: &Pool, r: &Reaction) -> Result<Reacted, ChangeError> {
    let client = pool.get().await.map_err(unavailable)?;
    let statement = prepared(&client, REACT).await?;
    let row = client
        .query_one(
            &statement,
            &[
                &r.message_id,
                &r.eventid,
                &r.userid,
                &r.emoji,
                &r.add,
                &r.at,
                &super::annotations::MAX_REACTIONS_PER_USER,
            ],
        )
        .await
        .map_err(unavailable)?;
    let status: &str = row.try_get(0).map_err(unavailable)?;
    match status {
        "ok" => {}
        "deleted" => return Err(ChangeError::Deleted),
        "too_many" => return Err(ChangeError::TooManyReactions),
        "unknown" => return Err(ChangeError::UnknownMessage),
        other => return Err(unavailable(format!("chatgate_react said {other:?}"))),
    }
    let emojis: Vec<String> = row.try_get(2).map_err(unavailable)?;
    let counts: Vec<i64> = row.try_get(3).map_err(unavailable)?;
    Ok(Reacted {
        changed: row.try_get(1).map_err(unavailable)?,
        counts: emojis.into_iter().zip(counts).collect(),
    })
}

const AUDIT: &str = "INSERT INTO chatgate_message_audit \
     (message_id, eventid, userid, action, old_message, at) \
     SELECT id, eventid, userid, $2, message, $3 FROM chatgate_message WHERE id = $1";
const EDIT: &str = "UPDATE chatgate_message SET message = $2, edited_at = $3 WHERE id = $1";
const UNREACT: &str = "DELETE FROM chatgate_reaction WHERE message_id = $1";
/// Answers the attachments the message had (the row is locked: the subquery sees them).
const DELETE: &str =
    "UPDATE chatgate_message m SET message = '', deleted_at = $2, attachments = NULL \
     FROM (SELECT attachments FROM chatgate_message WHERE id = $1) old \
     WHERE m.id = $1 RETURNING old.attachments";

/// Edits or deletes a message; a deletion answers when it was deleted. Every statement is
/// prepared once per connection (`prepare_cached`), not on each use.
pub async fn change(pool: &Pool, c: &Change) -> Result<Deleted, ChangeError> {
    let mut client = pool.get().await.map_err(unavailable)?;
    let tx = client.transaction().await.map_err(unavailable)?;
    let target = lock(&tx, c.eventid, c.message_id).await?;
    check(&target, c)?;
    if let Some(at) = target.deleted_at {
        return Ok(Deleted {
            at,
            now: false,
            attachments: None,
        });
    }
    if c.audit {
        let action = match c.kind {
            ChangeKind::Edit { .. } => "edit",
            ChangeKind::Delete => "delete",
        };
        let audit = tx.prepare_cached(AUDIT).await.map_err(unavailable)?;
        tx.execute(&audit, &[&c.message_id, &action, &c.at])
            .await
            .map_err(unavailable)?;
    }
    let attachments = match &c.kind {
        ChangeKind::Edit { text, .. } => {
            let edit = tx.prepare_cached(EDIT).await.map_err(unavailable)?;
            tx.execute(&edit, &[&c.message_id, text, &c.at])
                .await
                .map_err(unavailable)?;
            None
        }
        ChangeKind::Delete => {
            // Nothing of a deleted message is kept but the tombstone (and the audit copy, if asked).
            let unreact = tx.prepare_cached(UNREACT).await.map_err(unavailable)?;
            tx.execute(&unreact, &[&c.message_id])
                .await
                .map_err(unavailable)?;
            let delete = tx.prepare_cached(DELETE).await.map_err(unavailable)?;
            let row = tx
                .query_one(&delete, &[&c.message_id, &c.at])
                .await
                .map_err(unavailable)?;
            row.try_get::<_, Option<String>>(0)
                .map_err(unavailable)?
                .map(Arc::from)
        }
    };
    tx.commit().await.map_err(unavailable)?;
    Ok(Deleted {
        at: c.at,
        now: true,
        attachments,
    })
}

const VALID: &str = "SELECT c.i FROM unnest($1::integer[], $2::bigint[]) WITH ORDINALITY \
     AS c(eventid, id, i) JOIN chatgate_message m ON m.id = c.id AND m.eventid = c.eventid";

const UPSERT: &str = "INSERT INTO chatgate_read (eventid, userid, role, last_read_id, read_at) \
     SELECT * FROM unnest($1::integer[], $2::integer[], $3::text[], $4::bigint[], \
                          $5::timestamptz[]) \
     ON CONFLICT (eventid, userid) DO UPDATE \
     SET role = EXCLUDED.role, last_read_id = EXCLUDED.last_read_id, read_at = EXCLUDED.read_at \
     WHERE chatgate_read.last_read_id < EXCLUDED.last_read_id \
     RETURNING eventid, userid";

const CURRENT: &str = "SELECT r.eventid, r.userid, r.role, r.last_read_id, r.read_at \
     FROM chatgate_read r JOIN unnest($1::integer[], $2::integer[]) AS k(eventid, userid) \
     ON r.eventid = k.eventid AND r.userid = k.userid";

/// A `chatgate_read` row's mark, its columns starting at `from`.
pub(super) fn read_mark(row: &tokio_postgres::Row, from: usize) -> Result<ReadMark, String> {
    let fail = |e: tokio_postgres::Error| e.to_string();
    let role: &str = row.try_get(from + 1).map_err(fail)?;
    Ok(ReadMark {
        userid: row.try_get(from).map_err(fail)?,
        role: Role::parse(role).ok_or_else(|| format!("stored role {role:?}"))?,
        last_read_id: row.try_get(from + 2).map_err(fail)?,
        read_at: row.try_get(from + 3).map_err(fail)?,
    })
}

/// `sql` prepared on `client`, once per connection.
async fn prepared(
    client: &deadpool_postgres::Client,
    sql: &str,
) -> Result<tokio_postgres::Statement, ChangeError> {
    client.prepare_cached(sql).await.map_err(unavailable)
}

/// Validates and applies a batch of read marks: three statements, however many marks.
pub async fn mark_read(pool: &Pool, requests: &[ReadRequest]) -> Result<ReadsApplied, ChangeError> {
    let client = pool.get().await.map_err(unavailable)?;
    let eventids: Vec<i32> = requests.iter().map(|r| r.eventid).collect();
    let ids: Vec<i64> = requests.iter().map(|r| r.message_id).collect();
    let valid_rows = client
        .query(&prepared(&client, VALID).await?, &[&eventids, &ids])
        .await
        .map_err(unavailable)?;
    let mut valid = vec![false; requests.len()];
    for row in &valid_rows {
        let i: i64 = row.try_get(0).map_err(unavailable)?;
        if let Some(v) = valid.get_mut((i - 1) as usize) {
            *v = true;
        }
    }
    // The newest valid mark of each member: one row per key, as an upsert needs.
    let mut newest: HashMap<(i32, i32), &ReadRequest> = HashMap::new();
    for (r, _) in requests.iter().zip(&valid).filter(|(_, v)| **v) {
        newest
            .entry((r.eventid, r.userid))
            .and_modify(|n| {
                if r.message_id > n.message_id {
                    *n = r;
                }
            })
            .or_insert(r);
    }
    let marks: Vec<&ReadRequest> = newest.values().copied().collect();
    let col = |f: fn(&ReadRequest) -> i32| marks.iter().map(|r| f(r)).collect::<Vec<i32>>();
    let (m_events, m_users) = (col(|r| r.eventid), col(|r| r.userid));
    let roles: Vec<&str> = marks.iter().map(|r| r.role.as_str()).collect();
    let last: Vec<i64> = marks.iter().map(|r| r.message_id).collect();
    let at: Vec<DateTime<Utc>> = marks.iter().map(|r| r.at).collect();
    let advanced = client
        .query(
            &prepared(&client, UPSERT).await?,
            &[&m_events, &m_users, &roles, &last, &at],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<HashSet<(i32, i32)>, tokio_postgres::Error>>()
        .map_err(unavailable)?;
    let users: Vec<i32> = requests.iter().map(|r| r.userid).collect();
    let mut current = HashMap::new();
    for row in client
        .query(&prepared(&client, CURRENT).await?, &[&eventids, &users])
        .await
        .map_err(unavailable)?
    {
        let eventid: i32 = row.try_get(0).map_err(unavailable)?;
        let mark = read_mark(&row, 1).map_err(unavailable)?;
        current.insert((eventid, mark.userid), mark);
    }
    Ok(ReadsApplied {
        valid,
        advanced,
        current,
    })
}
