//! Message history: every chat message is stored, and a joiner gets the latest page of its chat.
//!
//! The live path never waits for storage. A message is given its id here ([`ids`]), delivered to
//! the room, and then handed to the store: in memory (the demo directory, bounded per chat) or to a
//! PostgreSQL writer task through a bounded queue (`postgres.rs`, group commit). So a message is
//! **delivered first, stored after**; what that means when the database is down or the process
//! stops is written in `docs/HISTORY.md`.
//!
//! Order: per chat, giving the id, delivering and queueing happen under one lock (a stripe of
//! [`History::stripes`], chosen by event id), and a join takes the same lock to enter the room and
//! note the newest id. So ids in a chat increase in delivery order, and a joiner's history (ids up
//! to the noted one) and what it receives live (ids after it) neither overlap nor leave a gap.

pub mod ids;
pub mod memory;
pub mod postgres;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::directory::Role;
use ids::Ids;
use memory::MemoryStore;
use postgres::PostgresStore;
pub use postgres::{Place, Slot};

/// History settings.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Messages sent after `chat-joined`, and the default `limit` of `load-history`. Default 50.
    pub page: usize,
    /// The largest `limit` a `load-history` gets (larger ones are capped). Default 200.
    pub max_page: usize,
    /// Messages kept per chat by the in-memory store. Default 1000.
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
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            page: 50,
            max_page: 200,
            memory_per_chat: 1000,
            queue: 65_536,
            batch: 1024,
            linger: Duration::from_millis(5),
            query_timeout: Duration::from_secs(2),
            node_id: 0,
        }
    }
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
}

/// Where a joiner's history ends: ids below `before` were delivered before it entered the room.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub before: i64,
    /// Messages queued for storage up to the join; the page waits until they are written.
    queued: u64,
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
    store: Store,
    config: HistoryConfig,
}

const STRIPES: usize = 64;

impl History {
    fn with_store(config: HistoryConfig, ids: Arc<Ids>, store: Store) -> History {
        History {
            ids,
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            store,
            config,
        }
    }

    /// No history: messages get ids and are not kept.
    pub fn off(config: HistoryConfig) -> History {
        let ids = Arc::new(Ids::new(config.node_id));
        History::with_store(config, ids, Store::Off)
    }

    /// History in memory, at most `memory_per_chat` messages per chat (the demo directory).
    pub fn memory(config: HistoryConfig) -> History {
        let ids = Arc::new(Ids::new(config.node_id));
        let store = Store::Memory(MemoryStore::new(config.memory_per_chat));
        History::with_store(config, ids, store)
    }

    /// History in PostgreSQL: pages read through `read_pool`, messages written by a thread started
    /// here, through `write_pool`.
    pub fn postgres(
        config: HistoryConfig,
        read_pool: deadpool_postgres::Pool,
        write_pool: deadpool_postgres::Pool,
    ) -> std::io::Result<History> {
        let ids = Arc::new(Ids::new(config.node_id));
        let store = PostgresStore::start(read_pool, write_pool, &config, ids.clone())?;
        Ok(History::with_store(config, ids, Store::Postgres(store)))
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
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
            Store::Postgres(store) => store.reserve(),
            _ => Slot::Now(None),
        }
    }

    /// Gives the next message of `eventid`'s chat its id: `deliver(id)` broadcasts it and returns
    /// what to store, with whom to tell once it is stored. Runs under the chat's order lock.
    /// `place` is the writer-queue place from [`History::reserve`], if one was taken.
    pub fn append<F>(&self, eventid: i32, place: Option<Place<'_>>, deliver: F)
    where
        F: FnOnce(i64) -> (StoredMessage, Option<OnStored>),
    {
        let mut chats = self.stripe(eventid);
        let (message, on_stored) = deliver(self.ids.next());
        let kept = match &self.store {
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
        };
        (r, cursor)
    }

    /// Up to `limit` messages of `eventid`'s chat with ids below `before`, oldest first. With a
    /// join's cursor, first waits (at most the query timeout) until what was queued before the
    /// join is written, so a message delivered just before the join is not missing from it.
    pub async fn page(
        &self,
        eventid: i32,
        before: i64,
        limit: usize,
        after_join: Option<Cursor>,
    ) -> Result<Page, HistoryError> {
        match &self.store {
            Store::Off => Ok(Page::default()),
            Store::Memory(store) => Ok(store.page(&self.stripe(eventid), eventid, before, limit)),
            Store::Postgres(store) => {
                if let Some(cursor) = after_join {
                    store.written_up_to(cursor.queued).await;
                }
                store.page(eventid, before, limit).await
            }
        }
    }

    /// Stops the writer after it has stored what is queued, or at `deadline`, whichever is first;
    /// returns how many messages were left unstored.
    pub async fn close(&self, deadline: tokio::time::Instant) -> u64 {
        match &self.store {
            Store::Postgres(store) => store.close(deadline).await,
            _ => 0,
        }
    }

    /// Figures for `/metrics`; `None` when nothing is written to a database.
    pub fn writer_stats(&self) -> Option<postgres::WriterStats> {
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
