//! Recoverable sessions (connection state recovery, docs/RECOVERY.md): for each socket in a chat,
//! keyed by the private session id (`pid`) its client holds, the chat it was in and since when, so
//! that a client that lost its connection can come back on any node, even after the node it was
//! on died, within `--recovery-window-secs`.
//!
//! Like Centrifugo's stream positions, and unlike the Node server's in-memory sessions, nothing
//! here lives only in the process that served the socket: with PostgreSQL a row per socket in
//! `chatgate_session`, written when the socket joins, leaves or disconnects. The writes are
//! gathered for 20 ms (one statement per kind for everything queued; a join costs no round trip of
//! its own), so a node killed within a few tens of milliseconds of a join may leave that one socket
//! unrecoverable: it then reconnects as today. The tables are UNLOGGED (migration 6). A node's death is dated by `chatgate_process`, which every running
//! gateway touches every few seconds: a socket whose process stopped touching it counts as
//! disconnected from that moment.
//!
//! The demo directory keeps them in memory (lost with the process, like its history).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::directory::Role;

/// How often a running gateway says it is alive (`chatgate_process`).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long queued writes gather before they are written together: a burst of joins is a few
/// statements, not one per join.
const GATHER: Duration = Duration::from_millis(20);

/// Where a socket was when it was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The Socket.IO socket id, given back to the recovered socket.
    pub sid: String,
    pub eventid: i32,
    pub userid: i32,
    pub role: Role,
    /// The socket had everything of its chat up to this id when it joined (its `chat-history`).
    pub since: i64,
}

#[derive(Debug, Clone)]
enum Op {
    /// Joined a chat (or came back): the socket's row, from the connection `conn`.
    Entered { record: Record, conn: i64 },
    /// Left its chat: nothing to recover.
    Left,
    /// Connection `conn` ended: the window starts now (unless another connection took the row).
    Disconnected { conn: i64 },
}

/// A socket's latest state, waiting to be written.
#[derive(Debug, Clone)]
enum Pending {
    /// In a chat; `gone`: and disconnected since.
    Entered {
        record: Record,
        conn: i64,
        gone: bool,
    },
    Left,
    Disconnected {
        conn: i64,
    },
}

struct MemoryRow {
    record: Record,
    conn: i64,
    disconnected: Option<Instant>,
}

enum Store {
    Memory(Mutex<HashMap<String, MemoryRow>>),
    Postgres {
        pool: Pool,
        /// Queued writes by pid, the latest state of each.
        queued: Mutex<HashMap<String, Pending>>,
        wake: Notify,
        /// Held while a batch is written, so a lookup never misses a write in flight.
        writing: tokio::sync::Mutex<()>,
    },
}

pub struct Sessions {
    store: Store,
    window: Duration,
    /// This process, in `chatgate_process` (random, so a restarted node is a new process).
    process: i64,
}

/// A lookup or write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError(pub String);

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "recoverable sessions unavailable: {}", self.0)
    }
}

impl std::error::Error for SessionError {}

impl From<tokio_postgres::Error> for SessionError {
    /// The server's own message when there is one (the error's text alone says "db error").
    fn from(e: tokio_postgres::Error) -> SessionError {
        SessionError(crate::history::db_error_text(&e))
    }
}

impl Sessions {
    /// Sessions in memory (the demo directory).
    pub fn memory(window: Duration) -> Arc<Sessions> {
        Arc::new(Sessions {
            store: Store::Memory(Mutex::default()),
            window,
            process: 0,
        })
    }

    /// Sessions in PostgreSQL; [`Sessions::start`] starts the writer and the heartbeat.
    pub fn postgres(pool: Pool, window: Duration) -> Arc<Sessions> {
        Arc::new(Sessions {
            store: Store::Postgres {
                pool,
                queued: Mutex::default(),
                wake: Notify::new(),
                writing: tokio::sync::Mutex::new(()),
            },
            window,
            process: rand::random::<i64>() & i64::MAX,
        })
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Starts the writer and the heartbeat (PostgreSQL), or the pruning of expired rows (memory).
    /// `prune` runs with each pruning (every minute), for what else the window bounds.
    pub fn start(
        self: &Arc<Self>,
        prune: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            + Send
            + 'static,
    ) {
        if let Store::Postgres { .. } = self.store {
            let sessions = self.clone();
            tokio::spawn(async move { sessions.write_loop().await });
        }
        let sessions = self.clone();
        tokio::spawn(async move {
            let mut beats = 0u64;
            loop {
                let prune_now = beats.is_multiple_of(12);
                if let Err(e) = sessions.beat(prune_now).await {
                    tracing::warn!(error = %e, "recovery: heartbeat or pruning failed");
                }
                if prune_now {
                    prune().await;
                }
                beats += 1;
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
    }

    fn queue(&self, pid: &str, op: Op) {
        match &self.store {
            Store::Memory(rows) => {
                let mut rows = rows.lock().unwrap_or_else(|p| p.into_inner());
                match op {
                    Op::Entered { record, conn } => {
                        rows.insert(
                            pid.to_owned(),
                            MemoryRow {
                                record,
                                conn,
                                disconnected: None,
                            },
                        );
                    }
                    Op::Left => {
                        rows.remove(pid);
                    }
                    Op::Disconnected { conn } => {
                        if let Some(row) = rows.get_mut(pid).filter(|r| r.conn == conn) {
                            row.disconnected = Some(Instant::now());
                        }
                    }
                }
            }
            Store::Postgres { queued, wake, .. } => {
                let mut queued = queued.lock().unwrap_or_else(|p| p.into_inner());
                // Only each socket's latest state is written.
                let state = merge(queued.remove(pid), op);
                queued.insert(pid.to_owned(), state);
                drop(queued);
                wake.notify_one();
            }
        }
    }

    /// The socket `pid` (connection `conn`) is in a chat, as `record` says.
    pub fn entered(&self, pid: &str, conn: i64, record: Record) {
        self.queue(pid, Op::Entered { record, conn });
    }

    /// The socket `pid` left its chat.
    pub fn left(&self, pid: &str) {
        self.queue(pid, Op::Left);
    }

    /// Connection `conn` of the socket `pid` ended.
    pub fn disconnected(&self, pid: &str, conn: i64) {
        self.queue(pid, Op::Disconnected { conn });
    }

    /// Where the socket `pid` was, if it disconnected no longer than the window ago (or its process
    /// stopped within the window, or it is still connected: its client knows it lost it).
    pub async fn find(&self, pid: &str) -> Result<Option<Record>, SessionError> {
        match &self.store {
            Store::Memory(rows) => {
                let rows = rows.lock().unwrap_or_else(|p| p.into_inner());
                Ok(rows
                    .get(pid)
                    .filter(|r| r.disconnected.is_none_or(|t| t.elapsed() <= self.window))
                    .map(|r| r.record.clone()))
            }
            Store::Postgres {
                pool,
                queued,
                writing,
                ..
            } => {
                let _written = writing.lock().await;
                let pending = queued
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(pid)
                    .cloned();
                match pending {
                    Some(Pending::Entered { record, .. }) => return Ok(Some(record)),
                    Some(Pending::Left) => return Ok(None),
                    _ => {}
                }
                let client = pool.get().await.map_err(|e| SessionError(e.to_string()))?;
                let row = client
                    .query_opt(
                        "SELECT s.sid, s.eventid, s.userid, s.role, s.since \
                         FROM chatgate_session s \
                         LEFT JOIN chatgate_process p ON p.process = s.process \
                         WHERE s.pid = $1 AND COALESCE(s.disconnected_at, p.seen_at, '-infinity') \
                               >= now() - make_interval(secs => $2)",
                        &[&pid, &self.window.as_secs_f64()],
                    )
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let get = SessionError::from;
                let role: &str = row.try_get(3).map_err(get)?;
                Ok(Some(Record {
                    sid: row.try_get(0).map_err(get)?,
                    eventid: row.try_get(1).map_err(get)?,
                    userid: row.try_get(2).map_err(get)?,
                    role: Role::parse(role)
                        .ok_or_else(|| SessionError(format!("stored role {role:?}")))?,
                    since: row.try_get(4).map_err(get)?,
                }))
            }
        }
    }

    async fn write_loop(&self) {
        let Store::Postgres {
            pool,
            queued,
            wake,
            writing,
        } = &self.store
        else {
            return;
        };
        loop {
            wake.notified().await;
            tokio::time::sleep(GATHER).await;
            let _writing = writing.lock().await;
            let batch = std::mem::take(&mut *queued.lock().unwrap_or_else(|p| p.into_inner()));
            if batch.is_empty() {
                continue;
            }
            let mut wait = Duration::from_millis(100);
            for attempt in 0..3 {
                match self.write(pool, &batch).await {
                    Ok(()) => break,
                    Err(e) if attempt == 2 => {
                        tracing::warn!(error = %e, sockets = batch.len(), "recovery: sessions not written; they reconnect without recovery");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "recovery: sessions not written; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        }
    }

    async fn write(
        &self,
        pool: &Pool,
        batch: &HashMap<String, Pending>,
    ) -> Result<(), SessionError> {
        let fail = |e: &dyn std::fmt::Display| SessionError(e.to_string());
        let mut entered = Columns::default();
        let (mut left, mut gone, mut gone_conns) = (Vec::new(), Vec::new(), Vec::new());
        for (pid, state) in batch {
            match state {
                Pending::Entered { record, conn, gone } => entered.push(pid, record, *conn, *gone),
                Pending::Left => left.push(pid.as_str()),
                Pending::Disconnected { conn } => {
                    gone.push(pid.as_str());
                    gone_conns.push(*conn);
                }
            }
        }
        let client = pool.get().await.map_err(|e| fail(&e))?;
        if !entered.pids.is_empty() {
            client
                .execute(
                    "INSERT INTO chatgate_session \
                         (pid, sid, conn, process, eventid, userid, role, since, updated_at, \
                          disconnected_at) \
                     SELECT r.pid, r.sid, r.conn, $9, r.eventid, r.userid, r.role, r.since, now(), \
                            CASE WHEN r.gone THEN now() END \
                     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[], \
                                 $5::integer[], $6::integer[], $7::text[], $8::bigint[]) \
                          AS r(pid, sid, conn, gone, eventid, userid, role, since) \
                     ON CONFLICT (pid) DO UPDATE SET sid = excluded.sid, conn = excluded.conn, \
                         process = excluded.process, eventid = excluded.eventid, \
                         userid = excluded.userid, role = excluded.role, since = excluded.since, \
                         disconnected_at = excluded.disconnected_at, \
                         updated_at = excluded.updated_at",
                    &[
                        &entered.pids,
                        &entered.sids,
                        &entered.conns,
                        &entered.gone,
                        &entered.eventids,
                        &entered.userids,
                        &entered.roles,
                        &entered.sinces,
                        &self.process,
                    ],
                )
                .await?;
        }
        if !gone.is_empty() {
            client
                .execute(
                    "UPDATE chatgate_session s SET disconnected_at = now(), updated_at = now() \
                     FROM unnest($1::text[], $2::bigint[]) AS g(pid, conn) \
                     WHERE s.pid = g.pid AND s.conn = g.conn",
                    &[&gone, &gone_conns],
                )
                .await?;
        }
        if !left.is_empty() {
            client
                .execute("DELETE FROM chatgate_session WHERE pid = ANY($1)", &[&left])
                .await?;
        }
        Ok(())
    }

    /// Says this process is alive; with `prune`, forgets sessions past their window and processes
    /// gone for a day.
    async fn beat(&self, prune: bool) -> Result<(), SessionError> {
        let fail = |e: &dyn std::fmt::Display| SessionError(e.to_string());
        match &self.store {
            Store::Memory(rows) => {
                if prune {
                    rows.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .retain(|_, r| r.disconnected.is_none_or(|t| t.elapsed() <= self.window));
                }
                Ok(())
            }
            Store::Postgres { pool, .. } => {
                let client = pool.get().await.map_err(|e| fail(&e))?;
                client
                    .execute(
                        "INSERT INTO chatgate_process (process, seen_at) VALUES ($1, now()) \
                         ON CONFLICT (process) DO UPDATE SET seen_at = now()",
                        &[&self.process],
                    )
                    .await?;
                if prune {
                    let window = self.window.as_secs_f64();
                    client
                        .execute(
                            "DELETE FROM chatgate_session s WHERE s.disconnected_at \
                                 < now() - make_interval(secs => $1) \
                             OR NOT EXISTS (SELECT 1 FROM chatgate_process p \
                                 WHERE p.process = s.process \
                                 AND p.seen_at >= now() - make_interval(secs => $1))",
                            &[&window],
                        )
                        .await?;
                    client
                        .execute(
                            "DELETE FROM chatgate_process WHERE seen_at < now() - interval '1 day'",
                            &[],
                        )
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// Writes what is queued (at shutdown: the sockets closed last are recoverable elsewhere).
    pub async fn close(&self) {
        if let Store::Postgres {
            pool,
            queued,
            writing,
            ..
        } = &self.store
        {
            let _writing = writing.lock().await;
            let batch = std::mem::take(&mut *queued.lock().unwrap_or_else(|p| p.into_inner()));
            if !batch.is_empty() {
                if let Err(e) = self.write(pool, &batch).await {
                    tracing::warn!(error = %e, "recovery: sessions not written at shutdown");
                }
            }
        }
    }
}

/// The `Entered` rows of a batch, one array per column.
#[derive(Default)]
struct Columns<'a> {
    pids: Vec<&'a str>,
    sids: Vec<&'a str>,
    conns: Vec<i64>,
    gone: Vec<bool>,
    eventids: Vec<i32>,
    userids: Vec<i32>,
    roles: Vec<&'static str>,
    sinces: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, pid: &'a str, record: &'a Record, conn: i64, gone: bool) {
        self.pids.push(pid);
        self.sids.push(&record.sid);
        self.conns.push(conn);
        self.gone.push(gone);
        self.eventids.push(record.eventid);
        self.userids.push(record.userid);
        self.roles.push(record.role.as_str());
        self.sinces.push(record.since);
    }
}

/// A socket's state to write after `op`, given what was already waiting to be written.
fn merge(waiting: Option<Pending>, op: Op) -> Pending {
    match (waiting, op) {
        (_, Op::Entered { record, conn }) => Pending::Entered {
            record,
            conn,
            gone: false,
        },
        (_, Op::Left) => Pending::Left,
        (Some(Pending::Entered { record, conn, .. }), Op::Disconnected { conn: c })
            if conn == c =>
        {
            Pending::Entered {
                record,
                conn,
                gone: true,
            }
        }
        // An older connection's end changes nothing written after it.
        (Some(kept @ (Pending::Entered { .. } | Pending::Left)), _) => kept,
        (_, Op::Disconnected { conn }) => Pending::Disconnected { conn },
    }
}

/// A connection's number for [`Sessions::entered`] and [`Sessions::disconnected`]: each transport
/// session of a socket is a new connection (a hash of the Engine.IO session id).
pub fn connection_number(engine_sid: &str) -> i64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine_sid.hash(&mut h);
    (h.finish() & i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(eventid: i32) -> Record {
        Record {
            sid: "sid".into(),
            eventid,
            userid: 2,
            role: Role::Tutee,
            since: 10,
        }
    }

    #[test]
    fn only_the_latest_state_of_a_socket_is_written() {
        let entered = |conn| Op::Entered {
            record: record(101),
            conn,
        };
        // Joined then lost in the same batch: one row, written as disconnected.
        let state = merge(Some(merge(None, entered(1))), Op::Disconnected { conn: 1 });
        assert!(matches!(
            state,
            Pending::Entered {
                conn: 1,
                gone: true,
                ..
            }
        ));
        // The end of an older connection does not undo a newer one's entry.
        let state = merge(Some(merge(None, entered(2))), Op::Disconnected { conn: 1 });
        assert!(matches!(
            state,
            Pending::Entered {
                conn: 2,
                gone: false,
                ..
            }
        ));
        // Left wins over what came before; an entry after it wins over it.
        let left = merge(Some(merge(None, entered(1))), Op::Left);
        assert!(matches!(left, Pending::Left));
        assert!(matches!(
            merge(Some(left), Op::Disconnected { conn: 1 }),
            Pending::Left
        ));
        assert!(matches!(
            merge(Some(Pending::Left), entered(3)),
            Pending::Entered { conn: 3, .. }
        ));
        // Alone, a disconnection is written as one (the row was written earlier).
        assert!(matches!(
            merge(None, Op::Disconnected { conn: 4 }),
            Pending::Disconnected { conn: 4 }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_memory_session_lasts_the_window_after_its_connection_ends() {
        let sessions = Sessions::memory(Duration::from_secs(120));
        sessions.entered("p", 1, record(101));
        assert_eq!(sessions.find("p").await, Ok(Some(record(101))));
        // Another connection's end (an older one of the same socket) changes nothing.
        sessions.disconnected("p", 9);
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(
            sessions.find("p").await,
            Ok(Some(record(101))),
            "still connected"
        );
        sessions.disconnected("p", 1);
        tokio::time::advance(Duration::from_secs(119)).await;
        assert_eq!(
            sessions.find("p").await,
            Ok(Some(record(101))),
            "within the window"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(sessions.find("p").await, Ok(None), "past the window");
        sessions.entered("q", 1, record(102));
        sessions.left("q");
        assert_eq!(sessions.find("q").await, Ok(None), "left its chat");
        assert_eq!(sessions.find("unknown").await, Ok(None));
    }
}
