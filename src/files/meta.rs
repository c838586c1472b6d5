//! File metadata: in PostgreSQL (`chatgate_file`, migration 4) with a database, in memory for the
//! demo directory. The bytes are in the file store; a row exists only once its file is completely
//! stored, so a row never names a half-written file.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub file_id: String,
    pub eventid: i32,
    /// The uploader.
    pub userid: i32,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    /// Lowercase hex.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub attached: bool,
    pub thumbnail: bool,
}

/// The metadata store did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError(pub String);

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "file metadata unavailable: {}", self.0)
    }
}

fn fail(e: impl std::fmt::Display) -> MetaError {
    MetaError(e.to_string())
}

/// Why files could not be attached to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    Unknown(String),
    /// Uploaded by someone else, or to another chat.
    NotYours(String),
    AlreadyAttached(String),
}

/// What a quota-checked insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// The user's uploads of the last 24 hours plus this one would pass the quota; `used` bytes.
    OverQuota {
        used: i64,
    },
}

pub enum Meta {
    Memory(Mutex<Files>),
    Postgres(Pool),
}

const DAY: chrono::TimeDelta = chrono::TimeDelta::days(1);

const COLUMNS: &str =
    "file_id, eventid, userid, name, size, content_type, sha256, created_at, attached_at IS NOT NULL, thumbnail";

fn record(row: &tokio_postgres::Row) -> Result<FileRecord, MetaError> {
    Ok(FileRecord {
        file_id: row.try_get(0).map_err(fail)?,
        eventid: row.try_get(1).map_err(fail)?,
        userid: row.try_get(2).map_err(fail)?,
        name: row.try_get(3).map_err(fail)?,
        size: row.try_get(4).map_err(fail)?,
        content_type: row.try_get(5).map_err(fail)?,
        sha256: row.try_get(6).map_err(fail)?,
        created_at: row.try_get(7).map_err(fail)?,
        attached: row.try_get(8).map_err(fail)?,
        thumbnail: row.try_get(9).map_err(fail)?,
    })
}

type Files = HashMap<String, FileRecord>;

fn lock(files: &Mutex<Files>) -> std::sync::MutexGuard<'_, Files> {
    files.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes `userid` uploaded after `since`, in the memory store.
fn used_since(files: &Files, userid: i32, since: DateTime<Utc>) -> i64 {
    files
        .values()
        .filter(|f| f.userid == userid && f.created_at > since)
        .map(|f| f.size)
        .sum()
}

/// The same in PostgreSQL: `$1` the user, `$2` since when.
const USED: &str =
    "SELECT coalesce(sum(size), 0)::bigint FROM chatgate_file WHERE userid = $1 AND created_at > $2";

impl Meta {
    /// Bytes `userid` uploaded in the 24 hours before `now` (files since deleted not counted).
    pub async fn used(&self, userid: i32, now: DateTime<Utc>) -> Result<i64, MetaError> {
        match self {
            Meta::Memory(files) => Ok(used_since(&lock(files), userid, now - DAY)),
            Meta::Postgres(pool) => {
                let client = pool.get().await.map_err(fail)?;
                let row = client
                    .query_one(USED, &[&userid, &(now - DAY)])
                    .await
                    .map_err(fail)?;
                row.try_get(0).map_err(fail)
            }
        }
    }

    /// Records a stored file unless it would take its uploader past `quota` bytes in 24 hours.
    /// Concurrent uploads of one user are serialised here, so together they never pass it.
    pub async fn insert(&self, f: &FileRecord, quota: i64) -> Result<Inserted, MetaError> {
        match self {
            Meta::Memory(files) => {
                let mut m = lock(files);
                let used = used_since(&m, f.userid, f.created_at - DAY);
                if used + f.size > quota {
                    return Ok(Inserted::OverQuota { used });
                }
                m.insert(f.file_id.clone(), f.clone());
                Ok(Inserted::Yes)
            }
            Meta::Postgres(pool) => {
                let mut client = pool.get().await.map_err(fail)?;
                let tx = client.transaction().await.map_err(fail)?;
                // One user's uploads take turns here (a lock per user, held to the commit).
                tx.execute("SELECT pg_advisory_xact_lock(7, $1)", &[&f.userid])
                    .await
                    .map_err(fail)?;
                let used: i64 = tx
                    .query_one(USED, &[&f.userid, &(f.created_at - DAY)])
                    .await
                    .map_err(fail)?
                    .try_get(0)
                    .map_err(fail)?;
                if used + f.size > quota {
                    return Ok(Inserted::OverQuota { used });
                }
                tx.execute(
                    "INSERT INTO chatgate_file (file_id, eventid, userid, name, size, content_type, \
                         sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &f.file_id,
                        &f.eventid,
                        &f.userid,
                        &f.name,
                        &f.size,
                        &f.content_type,
                        &f.sha256,
                        &f.created_at,
                    ],
                )
                .await
                .map_err(fail)?;
                tx.commit().await.map_err(fail)?;
                Ok(Inserted::Yes)
            }
        }
    }

    pub async fn get(&self, file_id: &str) -> Result<Option<FileRecord>, MetaError> {
        match self {
            Meta::Memory(files) => Ok(lock(files).get(file_id).cloned()),
            Meta::Postgres(pool) => {
                let client = pool.get().await.map_err(fail)?;
                let sql = format!("SELECT {COLUMNS} FROM chatgate_file WHERE file_id = $1");
                let row = client.query_opt(&sql, &[&file_id]).await.map_err(fail)?;
                row.as_ref().map(record).transpose()
            }
        }
    }

    /// Marks `ids` attached if every one was uploaded by `userid` to `eventid`'s chat and none is
    /// attached yet; otherwise changes nothing and says which file is refused and why.
    pub async fn claim(
        &self,
        eventid: i32,
        userid: i32,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Result<Vec<FileRecord>, ClaimRefusal>, MetaError> {
        let check = |found: &[FileRecord]| -> Result<(), ClaimRefusal> {
            for id in ids {
                let Some(f) = found.iter().find(|f| &f.file_id == id) else {
                    return Err(ClaimRefusal::Unknown(id.clone()));
                };
                if f.eventid != eventid || f.userid != userid {
                    return Err(ClaimRefusal::NotYours(id.clone()));
                }
                if f.attached {
                    return Err(ClaimRefusal::AlreadyAttached(id.clone()));
                }
            }
            Ok(())
        };
        match self {
            Meta::Memory(files) => {
                let mut m = lock(files);
                let found: Vec<FileRecord> =
                    ids.iter().filter_map(|id| m.get(id).cloned()).collect();
                if let Err(refusal) = check(&found) {
                    return Ok(Err(refusal));
                }
                for id in ids {
                    if let Some(f) = m.get_mut(id) {
                        f.attached = true;
                    }
                }
                Ok(Ok(ordered(ids, found)))
            }
            Meta::Postgres(pool) => {
                let mut client = pool.get().await.map_err(fail)?;
                let tx = client.transaction().await.map_err(fail)?;
                let sql = format!(
                    "SELECT {COLUMNS} FROM chatgate_file WHERE file_id = ANY($1) FOR UPDATE"
                );
                let found = tx
                    .query(&sql, &[&ids])
                    .await
                    .map_err(fail)?
                    .iter()
                    .map(record)
                    .collect::<Result<Vec<_>, _>>()?;
                if let Err(refusal) = check(&found) {
                    return Ok(Err(refusal));
                }
                tx.execute(
                    "UPDATE chatgate_file SET attached_at = $2 WHERE file_id = ANY($1)",
                    &[&ids, &now],
                )
                .await
                .map_err(fail)?;
                tx.commit().await.map_err(fail)?;
                Ok(Ok(ordered(ids, found)))
            }
        }
    }

    pub async fn set_thumbnail(&self, file_id: &str) -> Result<(), MetaError> {
        match self {
            Meta::Memory(files) => {
                if let Some(f) = lock(files).get_mut(file_id) {
                    f.thumbnail = true;
                }
                Ok(())
            }
            Meta::Postgres(pool) => {
                let client = pool.get().await.map_err(fail)?;
                client
                    .execute(
                        "UPDATE chatgate_file SET thumbnail = true WHERE file_id = $1",
                        &[&file_id],
                    )
                    .await
                    .map_err(fail)?;
                Ok(())
            }
        }
    }

    /// Files never attached, uploaded before `cutoff` (at most `limit`).
    pub async fn unattached_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<String>, MetaError> {
        match self {
            Meta::Memory(files) => Ok(lock(files)
                .values()
                .filter(|f| !f.attached && f.created_at < cutoff)
                .take(limit as usize)
                .map(|f| f.file_id.clone())
                .collect()),
            Meta::Postgres(pool) => {
                let client = pool.get().await.map_err(fail)?;
                client
                    .query(
                        "SELECT file_id FROM chatgate_file WHERE attached_at IS NULL \
                         AND created_at < $1 ORDER BY created_at LIMIT $2",
                        &[&cutoff, &limit],
                    )
                    .await
                    .map_err(fail)?
                    .iter()
                    .map(|r| r.try_get(0).map_err(fail))
                    .collect()
            }
        }
    }

    /// Forgets files (their bytes are deleted first, by the caller).
    pub async fn remove(&self, ids: &[String]) -> Result<(), MetaError> {
        match self {
            Meta::Memory(files) => {
                let mut m = lock(files);
                for id in ids {
                    m.remove(id);
                }
                Ok(())
            }
            Meta::Postgres(pool) => {
                let client = pool.get().await.map_err(fail)?;
                client
                    .execute("DELETE FROM chatgate_file WHERE file_id = ANY($1)", &[&ids])
                    .await
                    .map_err(fail)?;
                Ok(())
            }
        }
    }
}

/// `found` in the order of `ids` (the order the sender gave).
fn ordered(ids: &[String], mut found: Vec<FileRecord>) -> Vec<FileRecord> {
    found.sort_by_key(|f| ids.iter().position(|id| id == &f.file_id));
    found
}
