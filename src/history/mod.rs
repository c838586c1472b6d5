//! Message history: every chat message is stored, and a joiner gets the latest page of its chat.
//!
//! The live path never waits for storage. A message is given its id here ([`ids`]), delivered to
//! the room, and then handed to the store: in memory (the demo directory, bounded per chat) or to a
//! PostgreSQL writer task through a bounded queue (`postgres.rs`, group commit). So a message is
//! **delivered first, stored after**; what that means when the database is down or the process
//! stops is written in `docs/HISTORY.md`.
//!
//! Order: per chat, giving the id, delivering and queueing happen under one lock (a stripe of
//! `History::stripes`, chosen by event id), and a join takes the same lock to enter the room and
//! note the newest id. So ids in a chat increase in delivery order, and a joiner's history (ids up
//! to the noted one) and what it receives live (ids after it) neither overlap nor leave a gap.

pub mod annotations;
pub mod changes;
pub mod ids;
mod memory;
mod pages;
// The PostgreSQL writer and its SQL stay behind `History`: nothing outside this module sees them.
mod postgres;
mod postgres_annotations;
pub mod reads;

pub use postgres::WriterStats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::directory::Role;
use annotations::{
    Change, ChangeError, Deleted, Reacted, Reaction, ReactionCount, ReadMark, ReadRequest,
    ReadsApplied,
};
use ids::Ids;
use memory::MemoryStore;
use postgres::PostgresStore;

/// History settings.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Messages sent after `chat-joined`, and the default `limit` of `load-history`.
    pub page: usize,
    /// The largest `limit` a `load-history` gets (larger ones are capped).
    pub max_page: usize,
    /// Messages kept per chat by the in-memory store.
    pub memory_per_chat: usize,
    /// Messages waiting for the PostgreSQL writer; beyond it, messages are delivered but not stored.
    pub queue: usize,
    /// Most rows the writer inserts with one statement.
    pub batch: usize,
    /// How long the writer lets a batch that is not full gather more messages (group commit).
    pub linger: Duration,
    /// How long a history query, or one batch insert, may take.
    pub query_timeout: Duration,
    /// This node's number in ids (0-15).
    pub node_id: u8,
    /// How long `mark-read`s gather before they are applied together.
    pub read_flush: Duration,
    /// Offline notifications (docs/NOTIFICATIONS.md): with PostgreSQL, the transaction that stores
    /// messages also files them in the notification outbox, due this long after the first.
    pub notify_after: Option<Duration>,
    /// Keep the change log (`changes.rs`) for connection state recovery.
    pub log_changes: bool,
}

/// One chat message as stored; every field of a `receive-message` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub eventid: i32,
    pub userid: i32,
    pub role: Role,
    /// The sender's name when the message was sent.
    pub sender_name: Arc<str>,
    pub message: String,
    /// Microsecond precision (PostgreSQL's), so a stored message reads back exactly as delivered.
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    /// A deleted message is a tombstone: no text, no reactions, no attachments.
    pub deleted_at: Option<DateTime<Utc>>,
    /// The message's attachments as the JSON array it was delivered with (`None`: none), kept as
    /// text so that a page reads back byte for byte as the live message did.
    pub attachments: Option<Arc<str>>,
}

/// Now, to the microsecond, as PostgreSQL keeps times: a stored time reads back exactly as sent.
pub fn now() -> DateTime<Utc> {
    use chrono::Timelike;
    let now = Utc::now();
    now.with_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// Told whether a message was kept: `true` once stored (or at once when history is off), `false`
/// when it was delivered but will not be stored (queue full, or still queued at the shutdown
/// deadline).
pub type OnStored = Box<dyn FnOnce(bool) + Send + Sync>;

/// A page of a chat's history, oldest first.
#[derive(Debug, Default)]
pub struct Page {
    pub messages: Vec<Arc<StoredMessage>>,
    /// Older messages exist before the first one.
    pub has_more: bool,
    /// The reactions of the page's messages, by message id.
    pub reactions: HashMap<i64, Vec<ReactionCount>>,
    /// Every member's read mark in the chat.
    pub reads: Vec<ReadMark>,
}

/// Something a recovering client missed in its chat: a message (sent again as `receive-message`, as
/// it is stored now) or a logged change (sent again as it was).
#[derive(Debug, Clone)]
pub enum Missed {
    Message(Arc<StoredMessage>),
    Change(changes::LoggedChange),
}

impl Missed {
    pub fn id(&self) -> i64 {
        match self {
            Missed::Message(m) => m.id,
            Missed::Change(c) => c.id,
        }
    }
}

/// See [`History::unread`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    pub read_up_to: Option<i64>,
    /// Messages of the range not deleted.
    pub live: i64,
}

/// Where a joiner's history ends: ids below `before` were delivered before it entered the room.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub before: i64,
    /// Messages queued for storage up to the join; the page waits until they are written.
    queued: u64,
    /// Changes queued for the change log up to the join.
    changes: u64,
}

/// A history query failed; the chat says "Failed to load history".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryError(pub String);

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "history unavailable: {}", self.0)
    }
}

impl std::error::Error for HistoryError {}

enum Store {
    /// Nothing kept (`--history off`); ids are still given.
    Off,
    Memory(MemoryStore),
    Postgres(PostgresStore),
}

pub struct History {
    ids: Arc<Ids>,
    /// Per-chat order locks (see the module docs); the in-memory store keeps its chats in them.
    stripes: Box<[Mutex<memory::Chats>]>,
    /// Per-chat locks held across a reaction, edit or deletion and its broadcast, so that the
    /// room hears the changes of one chat in the order they were made. One per chat with a change
    /// under way (removed when the last holder leaves): a slow change never holds up another chat.
    change_locks: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>,
    reads: reads::Reads,
    store: Store,
    config: HistoryConfig,
    /// The PostgreSQL change log's writer, started with the first change logged.
    changes: std::sync::OnceLock<changes::ChangeWriter>,
    /// Whether the store's tables are known to be current (always, but for PostgreSQL before the
    /// start-up check of `app::prepare_schema`). Joins wait for it, so no join meets a missing
    /// table.
    schema_ready: Arc<AtomicBool>,
}

const STRIPES: usize = 64;

/// `work`'s result, or `Unavailable` if it takes longer than `timeout`.
async fn within<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, ChangeError>>,
) -> Result<T, ChangeError> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(ChangeError::Unavailable(format!(
                "no answer within {timeout:?}"
            )))
        })
}

/// What went wrong with a statement, in PostgreSQL's words when it answered (the error's own text
/// says only "db error").
pub fn db_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Waits (at most `timeout`) until a writer's `settled` count (told through `changed`) reaches `n`:
/// what was queued before some moment is written, or given up on.
async fn settled_up_to(
    settled: &std::sync::atomic::AtomicU64,
    changed: &tokio::sync::Notify,
    n: u64,
    timeout: Duration,
) {
    let wait = async {
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if settled.load(Ordering::Acquire) >= n {
                return;
            }
            notified.await;
        }
    };
    let _ = tokio::time::timeout(timeout, wait).await;
}

/// A place in the history writer's queue, taken before a message gets its id (flow control; see
/// [`History::reserve`]). Empty when no place is needed or none was to be had.
pub struct Reservation<'a>(Option<postgres::Place<'a>>);

/// Whether a message may go at once, or must first wait for a place in the writer's queue.
pub enum Slot<'a> {
    Now(Reservation<'a>),
    /// Completes with a place, or with none when the wait timed out.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Reservation<'static>> + Send>>),
}

/// A message's place in its chat's order (see [`History::order`]): the chat's order lock, held
/// until the message is handed to the store.
#[must_use = "a message given an id is stored with `Ordered::store`"]
pub struct Ordered<'a> {
    id: i64,
    history: &'a History,
    chats: MutexGuard<'a, memory::Chats>,
    place: Option<postgres::Place<'a>>,
}

impl Ordered<'_> {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Hands the message (with this id) to the store and releases the chat's order lock;
    /// `on_stored` hears whether it was kept (with PostgreSQL, after the commit).
    pub fn store(self, message: StoredMessage, on_stored: Option<OnStored>) {
        let Ordered {
            history,
            mut chats,
            place,
            ..
        } = self;
        let kept = match &history.store {
            Store::Off => true,
            Store::Memory(store) => {
                store.push(&mut chats, message);
                true
            }
            Store::Postgres(store) => match store.enqueue(message, on_stored, place) {
                // The writer tells `on_stored` after the commit.
                Ok(()) => return,
                Err(on_stored) => {
                    drop(chats);
                    if let Some(f) = on_stored {
                        f(false);
                    }
                    return;
                }
            },
        };
        drop(chats);
        if let Some(f) = on_stored {
            f(kept);
        }
    }
}

/// One chat's change lock (see [`History::lock_chat`]); the chat's entry goes when the last holder
/// or waiter is done.
pub struct ChatLock<'a> {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    locks: &'a Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>,
    eventid: i32,
}

impl Drop for ChatLock<'_> {
    fn drop(&mut self) {
        // Release first, then forget the chat's lock if nobody else holds or awaits it: every
        // clone of the lock is made under the map's mutex, so the count is exact here.
        drop(self.guard.take());
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks
            .get(&self.eventid)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.eventid);
        }
    }
}

impl History {
    fn with_store(
        config: HistoryConfig,
        ids: Arc<Ids>,
        store: Store,
        schema_ready: Arc<AtomicBool>,
    ) -> History {
        History {
            ids,
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            change_locks: Mutex::default(),
            reads: reads::Reads::new(config.read_flush),
            changes: std::sync::OnceLock::new(),
            schema_ready,
            store,
            config,
        }
    }

    /// No history: messages get ids and are not kept.
    pub fn off(config: HistoryConfig) -> History {
        let ids = Arc::new(Ids::new(config.node_id));
        History::with_store(config, ids, Store::Off, Arc::new(AtomicBool::new(true)))
    }

    /// History in memory, at most `memory_per_chat` messages per chat (the demo directory).
    pub fn memory(config: HistoryConfig) -> History {
        let ids = Arc::new(Ids::new(config.node_id));
        let store = Store::Memory(MemoryStore::new(config.memory_per_chat));
        History::with_store(config, ids, store, Arc::new(AtomicBool::new(true)))
    }

    /// History in PostgreSQL: pages read through `read_pool`, messages written by a thread started
    /// here, through `write_pool`.
    pub fn postgres(
        config: HistoryConfig,
        read_pool: deadpool_postgres::Pool,
        write_pool: deadpool_postgres::Pool,
    ) -> std::io::Result<History> {
        let ids = Arc::new(Ids::new(config.node_id));
        // Not ready until `app::prepare_schema` has checked or migrated the tables.
        let schema_ready = Arc::new(AtomicBool::new(false));
        let store = PostgresStore::start(
            read_pool,
            write_pool,
            &config,
            ids.clone(),
            schema_ready.clone(),
        )?;
        Ok(History::with_store(
            config,
            ids,
            Store::Postgres(store),
            schema_ready,
        ))
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Whether the store can be used: its tables are current.
    pub fn schema_ready(&self) -> bool {
        self.schema_ready.load(Ordering::Acquire)
    }

    /// Whether the store lives in PostgreSQL (and so has a schema to prepare).
    pub fn needs_schema(&self) -> bool {
        matches!(self.store, Store::Postgres(_))
    }

    pub fn mark_schema_ready(&self) {
        self.schema_ready.store(true, Ordering::Release);
    }

    fn stripe(&self, eventid: i32) -> MutexGuard<'_, memory::Chats> {
        let i = (eventid as u32 as usize) % self.stripes.len();
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place in the writer's queue for the next message. `Slot::Later` when the queue is full
    /// but the database keeps up: the sender waits (at most the query timeout) for a place, which
    /// slows senders to what the database can store instead of leaving messages unstored. During
    /// an outage the queue is not waited for: messages are delivered and, once it is full, not
    /// stored.
    pub fn reserve(&self) -> Slot<'_> {
        match &self.store {
            Store::Postgres(store) => match store.reserve() {
                postgres::Slot::Now(place) => Slot::Now(Reservation(place)),
                postgres::Slot::Later(wait) => {
                    Slot::Later(Box::pin(async move { Reservation(wait.await) }))
                }
            },
            _ => Slot::Now(Reservation(None)),
        }
    }

    /// The next message of `eventid`'s chat gets its place in the chat's order: an id, under the
    /// chat's order lock, held until [`Ordered::store`]. The caller broadcasts in between, so every
    /// member and the store see a chat's messages in id order. `reservation` is the writer-queue
    /// place from [`History::reserve`].
    pub fn order<'a>(&'a self, eventid: i32, reservation: Reservation<'a>) -> Ordered<'a> {
        let chats = self.stripe(eventid);
        Ordered {
            id: self.ids.next(),
            history: self,
            chats,
            place: reservation.0,
        }
    }

    /// Runs `enter` (which puts a socket into `eventid`'s room) under the chat's order lock, and
    /// notes where the joiner's history ends.
    pub fn join<R>(&self, eventid: i32, enter: impl FnOnce() -> R) -> (R, Cursor) {
        let _chats = self.stripe(eventid);
        let r = enter();
        let cursor = Cursor {
            before: self.ids.high_water().saturating_add(1),
            queued: match &self.store {
                Store::Postgres(store) => store.queued(),
                _ => 0,
            },
            changes: self.changes.get().map_or(0, changes::ChangeWriter::queued),
        };
        (r, cursor)
    }

    /// A change to `eventid`'s chat (a reaction, edit, deletion or read mark) gets its place in the
    /// chat's order: `broadcast` runs under the chat's order lock with the change's id, and returns
    /// the event and payload the room was told, which go to the change log (when it is kept).
    pub fn order_change(
        &self,
        eventid: i32,
        broadcast: impl FnOnce(i64) -> Option<(&'static str, Arc<str>)>,
    ) {
        let mut chats = self.stripe(eventid);
        let id = self.ids.next();
        let Some((event, payload)) = broadcast(id) else {
            return;
        };
        if !self.config.log_changes {
            return;
        }
        let change = changes::LoggedChange {
            id,
            eventid,
            event: event.into(),
            payload,
            at: now(),
        };
        match &self.store {
            Store::Off => {}
            Store::Memory(store) => store.log_change(&mut chats, change),
            Store::Postgres(store) => self
                .changes
                .get_or_init(|| {
                    changes::ChangeWriter::start(store.pool().clone(), store.query_timeout())
                })
                .log(change),
        }
    }

    /// What `eventid`'s chat saw with ids in `(after, before)`, messages and logged changes in id
    /// order, at most `limit`; `Ok(None)` when that is more than `limit` or no longer all kept.
    /// `before` is a join's cursor: first waits (at most the query timeout) until what this node
    /// queued before it is written.
    pub async fn missed(
        &self,
        eventid: i32,
        after: i64,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Option<Vec<Missed>>, HistoryError> {
        let before = cursor.before;
        match &self.store {
            Store::Off => Ok(None),
            Store::Memory(store) => {
                Ok(store.missed(&self.stripe(eventid), eventid, after, before, limit))
            }
            Store::Postgres(store) => {
                store.written_up_to(cursor.queued).await;
                if let Some(changes) = self.changes.get() {
                    changes
                        .written_up_to(cursor.changes, store.query_timeout())
                        .await;
                }
                let fail = |e: &dyn std::fmt::Display| HistoryError(e.to_string());
                let client = store.pool().get().await.map_err(|e| fail(&e))?;
                let fetch = limit + 1;
                let (messages, changes) = tokio::try_join!(
                    pages::messages_after(&client, eventid, after, before, fetch),
                    async {
                        changes::read(store.pool(), eventid, after, before, fetch)
                            .await
                            .map_err(HistoryError)
                    },
                )?;
                if messages.len() + changes.len() > limit {
                    return Ok(None);
                }
                let mut items: Vec<Missed> = messages
                    .into_iter()
                    .map(|m| Missed::Message(Arc::new(m)))
                    .chain(changes.into_iter().map(Missed::Change))
                    .collect();
                items.sort_by_key(Missed::id);
                Ok(Some(items))
            }
        }
    }

    /// Deletes logged changes older than `keep` (PostgreSQL; the memory store keeps a bounded
    /// number per chat).
    pub async fn prune_changes(&self, keep: Duration) -> Result<u64, HistoryError> {
        match &self.store {
            Store::Postgres(store) => changes::prune(store.pool(), keep)
                .await
                .map_err(HistoryError),
            _ => Ok(0),
        }
    }

    /// Changes broadcast but not logged.
    pub fn changes_dropped(&self) -> u64 {
        self.changes.get().map_or(0, changes::ChangeWriter::dropped)
    }

    /// Up to `limit` messages of `eventid`'s chat with ids above `after`, oldest first, with their
    /// reactions (`mine` for `viewer`) and the chat's read marks; `has_more` says newer ones exist
    /// (`load-history` with `after_id`).
    pub async fn page_after(
        &self,
        eventid: i32,
        after: i64,
        limit: usize,
        viewer: i32,
    ) -> Result<Page, HistoryError> {
        match &self.store {
            Store::Off => Ok(Page::default()),
            Store::Memory(store) => {
                Ok(store.forward_page(&self.stripe(eventid), eventid, after, limit, viewer))
            }
            Store::Postgres(store) => {
                // What this node delivered so far is stored first: a client asks for what it
                // has not seen, which may be what was sent a moment ago.
                store.written_up_to(store.queued()).await;
                let work = pages::forward_page(store.pool(), eventid, after, limit, viewer);
                tokio::time::timeout(store.query_timeout(), work)
                    .await
                    .unwrap_or_else(|_| Err(HistoryError("no answer in time".into())))
            }
        }
    }

    /// Up to `limit` messages of `eventid`'s chat with ids below `before`, oldest first, with
    /// their reactions (`mine` for `viewer`) and the chat's read marks. With a join's cursor,
    /// first waits (at most the query timeout) until what was queued before the join is written,
    /// so a message delivered just before the join is not missing from it.
    pub async fn page(
        &self,
        eventid: i32,
        before: i64,
        limit: usize,
        after_join: Option<Cursor>,
        viewer: i32,
    ) -> Result<Page, HistoryError> {
        match &self.store {
            Store::Off => Ok(Page::default()),
            Store::Memory(store) => {
                Ok(store.page(&self.stripe(eventid), eventid, before, limit, viewer))
            }
            Store::Postgres(store) => {
                if let Some(cursor) = after_join {
                    store.written_up_to(cursor.queued).await;
                }
                store.page(eventid, before, limit, viewer).await
            }
        }
    }

    /// What an offline notification about `sender_role`'s messages `first..=last` of `eventid`'s
    /// chat must know before it goes to `reader`: how far `reader` has read, and how many of
    /// those messages are still there (not deleted).
    pub async fn unread(
        &self,
        eventid: i32,
        reader: i32,
        sender_role: crate::directory::Role,
        first: i64,
        last: i64,
    ) -> Result<Unread, HistoryError> {
        match &self.store {
            Store::Off => Ok(Unread {
                read_up_to: None,
                live: 1,
            }),
            Store::Memory(store) => {
                let chats = self.stripe(eventid);
                Ok(Unread {
                    read_up_to: store
                        .read_mark(&chats, eventid, reader)
                        .map(|r| r.last_read_id),
                    live: store.live_between(&chats, eventid, first, last, sender_role),
                })
            }
            Store::Postgres(store) => {
                let fail = |e: &dyn std::fmt::Display| HistoryError(e.to_string());
                let client = store.pool().get().await.map_err(|e| fail(&e))?;
                let row = client
                    .query_one(
                        "SELECT (SELECT last_read_id FROM chatgate_read \
                                 WHERE eventid = $1 AND userid = $2), \
                                (SELECT count(*) FROM chatgate_message WHERE eventid = $1 \
                                 AND id BETWEEN $3 AND $4 AND role = $5 AND deleted_at IS NULL)",
                        &[&eventid, &reader, &first, &last, &sender_role.as_str()],
                    )
                    .await
                    .map_err(|e| fail(&e))?;
                Ok(Unread {
                    read_up_to: row.try_get(0).map_err(|e| fail(&e))?,
                    live: row.try_get(1).map_err(|e| fail(&e))?,
                })
            }
        }
    }

    /// Held across a change to `eventid`'s chat and its broadcast (see `change_locks`).
    pub async fn lock_chat(&self, eventid: i32) -> ChatLock<'_> {
        let lock = self
            .change_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(eventid)
            .or_default()
            .clone();
        ChatLock {
            guard: Some(lock.lock_owned().await),
            locks: &self.change_locks,
            eventid,
        }
    }

    /// Waits (at most the query timeout) until what this node delivered so far in `eventid`'s chat
    /// is stored: a client may react to a message a moment after it arrived. Called before
    /// [`History::lock_chat`], so that the wait holds up no other change.
    pub async fn stored_so_far(&self, eventid: i32) {
        if let Store::Postgres(store) = &self.store {
            let queued = {
                // Under the chat's order lock: every message of the chat delivered so far is queued.
                let _chats = self.stripe(eventid);
                store.queued()
            };
            store.written_up_to(queued).await;
        }
    }

    /// Runs a change to a stored message (see [`History::stored_so_far`]). Gives another node's
    /// message of a moment ago a little time to be stored by that node.
    async fn change_stored<T, M, P, F>(
        &self,
        eventid: i32,
        message_id: i64,
        memory: M,
        postgres: P,
    ) -> Result<T, ChangeError>
    where
        M: Fn(&MemoryStore, &mut memory::Chats) -> Result<T, ChangeError>,
        P: Fn(deadpool_postgres::Pool) -> F,
        F: std::future::Future<Output = Result<T, ChangeError>>,
    {
        let store = match &self.store {
            Store::Off => return Err(ChangeError::Off),
            Store::Memory(store) => return memory(store, &mut self.stripe(eventid)),
            Store::Postgres(store) => store,
        };
        let timeout = store.query_timeout();
        let mut wait = Duration::from_millis(50);
        let mut tries = 0;
        loop {
            let result = within(timeout, postgres(store.pool().clone())).await;
            let foreign = self
                .ids
                .foreign_and_recent(message_id, reads::FOREIGN_GRACE);
            match result {
                Err(ChangeError::UnknownMessage) if foreign && tries < reads::ROUNDS => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Adds or removes a reaction; answers the message's totals.
    pub async fn react(&self, r: &Reaction) -> Result<Reacted, ChangeError> {
        self.change_stored(
            r.eventid,
            r.message_id,
            |store, chats| store.react(chats, r),
            |pool| async move { postgres_annotations::react(&pool, r).await },
        )
        .await
    }

    /// Edits or deletes a message; answers when it was deleted (for a deletion).
    pub async fn change(&self, c: &Change) -> Result<Deleted, ChangeError> {
        self.change_stored(
            c.eventid,
            c.message_id,
            |store, chats| store.change(chats, c),
            |pool| async move { postgres_annotations::change(&pool, c).await },
        )
        .await
    }

    /// Queues a read mark; `done` is told what became of it within about `read_flush`.
    pub fn mark_read(self: &Arc<Self>, request: ReadRequest, done: reads::OnRead) {
        if let Store::Off = self.store {
            done(reads::ReadOutcome::Refused(ChangeError::Off));
            return;
        }
        if self.reads.push(request, done) {
            let history = self.clone();
            tokio::spawn(async move {
                loop {
                    history.reads.wake.notified().await;
                    tokio::time::sleep(history.reads.interval).await;
                    history.flush_reads().await;
                }
            });
        }
    }

    /// Applies the waiting read marks now.
    async fn flush_reads(&self) {
        let batch = self.reads.take();
        if batch.is_empty() {
            return;
        }
        let requests: Vec<ReadRequest> = batch.iter().map(|w| w.request.clone()).collect();
        let applied = self.apply_reads(&requests).await;
        let (told, again) = reads::Reads::settle(batch, applied, |r| {
            self.ids
                .foreign_and_recent(r.message_id, reads::FOREIGN_GRACE)
        });
        self.reads.requeue(again);
        // Each is a broadcast: hundreds of them at once would hold up the messages of every
        // chat on this thread for milliseconds, so let other tasks run between small groups.
        for (i, (done, outcome)) in told.into_iter().enumerate() {
            done(outcome);
            if i % 16 == 15 {
                tokio::task::yield_now().await;
            }
        }
    }

    async fn apply_reads(&self, requests: &[ReadRequest]) -> Result<ReadsApplied, ChangeError> {
        match &self.store {
            Store::Off => Err(ChangeError::Off),
            Store::Memory(store) => {
                let mut applied = ReadsApplied::default();
                for r in requests {
                    let moved = store.mark_read(&mut self.stripe(r.eventid), r);
                    applied.valid.push(moved.is_some());
                    let key = (r.eventid, r.userid);
                    if moved == Some(true) {
                        applied.advanced.insert(key);
                    }
                }
                for r in requests {
                    let key = (r.eventid, r.userid);
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        applied.current.entry(key)
                    {
                        let chats = self.stripe(r.eventid);
                        if let Some(mark) = store.read_mark(&chats, r.eventid, r.userid) {
                            slot.insert(mark);
                        }
                    }
                }
                Ok(applied)
            }
            Store::Postgres(store) => {
                // Marks name messages delivered before them: let this node's writer store those.
                store.written_up_to(store.queued()).await;
                let work = postgres_annotations::mark_read(store.pool(), requests);
                within(store.query_timeout(), work).await
            }
        }
    }

    /// Stops the writer after it has stored what is queued, or at `deadline`, whichever is first;
    /// returns how many messages were left unstored.
    pub async fn close(&self, deadline: tokio::time::Instant) -> u64 {
        // Read marks still gathering are applied now, not lost.
        if !self.reads.is_empty() {
            let _ = tokio::time::timeout_at(deadline, self.flush_reads()).await;
        }
        match &self.store {
            Store::Postgres(store) => store.close(deadline).await,
            _ => 0,
        }
    }

    /// Figures for `/metrics`; `None` when nothing is written to a database.
    pub fn writer_stats(&self) -> Option<WriterStats> {
        match &self.store {
            Store::Postgres(store) => Some(store.stats()),
            _ => None,
        }
    }

    /// How long batch writes took; `None` when nothing is written to a database.
    pub fn write_latency(&self) -> Option<&crate::directory::LatencyHistogram> {
        match &self.store {
            Store::Postgres(store) => Some(store.write_latency()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn config() -> HistoryConfig {
        HistoryConfig {
            page: 50,
            max_page: 200,
            memory_per_chat: 100,
            queue: 16,
            batch: 16,
            linger: Duration::ZERO,
            query_timeout: Duration::from_secs(1),
            node_id: 0,
            read_flush: Duration::from_millis(10),
            notify_after: None,
            log_changes: true,
        }
    }

    #[test]
    fn a_change_in_one_chat_never_holds_up_another_and_locks_are_forgotten() {
        let history = History::memory(config());
        let held = history.lock_chat(1).now_or_never().expect("free");
        assert!(
            history.lock_chat(2).now_or_never().is_some(),
            "another chat's change goes ahead"
        );
        assert!(
            history.lock_chat(1).now_or_never().is_none(),
            "the same chat's next change waits"
        );
        drop(held);
        let again = history.lock_chat(1).now_or_never().expect("free again");
        drop(again);
        assert!(
            history.change_locks.lock().unwrap().is_empty(),
            "no lock kept for chats without a change under way"
        );
    }

    #[test]
    fn ids_follow_the_order_of_the_chat() {
        let history = History::memory(config());
        let first = history.order(7, Reservation(None));
        let id = first.id();
        first.store(memory::tests::message(id, 7), None);
        let second = history.order(7, Reservation(None));
        assert!(second.id() > id);
    }
}
