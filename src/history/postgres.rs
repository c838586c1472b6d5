//! History in PostgreSQL (`chatgate_message`, created by `chatgate migrate`).
//!
//! Writes go through a bounded queue to one writer task, which inserts whatever has accumulated
//! with one statement and one commit (group commit): at low load a batch is a message or two and is
//! written at once; under load batches grow and the database sees few, large transactions. A batch
//! that fails (database down, timeout) is retried with backoff; meanwhile the queue fills, and once
//! it is full new messages are delivered but not stored (counted, and their senders' acks say so).
//! Inserting is idempotent (`ON CONFLICT (id) DO NOTHING`), so a retry after a commit whose answer
//! was lost stores nothing twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, Notify};

use super::ids::Ids;
use super::pages::PageReader;
use super::{HistoryConfig, HistoryError, OnStored, Page, StoredMessage};
use crate::directory::LatencyHistogram;

/// The messages of a batch that are not stored yet (a retried batch stores nothing twice), from
/// one array per column (`Columns`). A macro, so that `INSERT_AND_FILE` can embed the same text.
macro_rules! insert_new_messages {
    () => {
        "INSERT INTO chatgate_message \
             (id, eventid, userid, role, sender_name, message, created_at, attachments) \
         SELECT * FROM unnest($1::bigint[], $2::integer[], $3::integer[], $4::text[], \
                              $5::text[], $6::text[], $7::timestamptz[], $8::text[]) \
         ON CONFLICT (id) DO NOTHING"
    };
}

const INSERT: &str = insert_new_messages!();

pub struct Queued {
    message: StoredMessage,
    on_stored: Option<OnStored>,
}

/// A reserved place in the writer's queue.
pub enum Place<'a> {
    Borrowed(mpsc::Permit<'a, Queued>),
    Owned(mpsc::OwnedPermit<Queued>),
}

/// Whether a message may go at once, or must first wait for a place in the queue.
pub enum Slot<'a> {
    /// Go: with a place (`None`: no place needed, or none to be had).
    Now(Option<Place<'a>>),
    /// Wait for a place (or for the wait to time out: `None`).
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Option<Place<'static>>> + Send>>),
}

/// What the writer has done, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct WriterStats {
    pub queued: u64,
    pub stored: u64,
    /// Delivered but never stored: the queue was full, or the shutdown deadline passed.
    pub dropped: u64,
    pub failed_batches: u64,
    /// History pages read, and the batches they were read in (see `pages`).
    pub pages_read: u64,
    pub page_batches: u64,
}

/// Counters shared by the live path, the writer and the readers.
#[derive(Default)]
struct Shared {
    /// Messages accepted into the queue.
    queued: AtomicU64,
    /// Messages the writer is done with (stored, or given up at the shutdown deadline); in queue
    /// order, so `settled >= n` means the first `n` queued are done.
    settled: AtomicU64,
    settled_changed: Notify,
    stored: AtomicU64,
    dropped: AtomicU64,
    failed_batches: AtomicU64,
    closing: AtomicBool,
    close_now: Notify,
    /// The last batch was stored (the database keeps up); false after a failed one.
    healthy: AtomicBool,
    /// Set at shutdown: when the writer gives up on what is still queued.
    deadline: Mutex<Option<tokio::time::Instant>>,
    write_latency: LatencyHistogram,
}

/// Page readers (see `pages`): with one, a burst of joins made the largest batches and cost
/// PostgreSQL least (19,800 joins: 90 CPU ticks against 168 with four readers, that is one per
/// read connection); two, so that one slow page (a large `load-history`) does not hold up every
/// join's page behind it.
const READERS: usize = 2;

pub struct PostgresStore {
    pool: Pool,
    pages: PageReader,
    warned: Mutex<crate::rate::Bucket>,
    queue: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
    /// Completes when the writer thread is done.
    writer: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    query_timeout: Duration,
}

impl PostgresStore {
    /// Starts the writer on a thread of its own with its own connection (`write_pool`): on a busy
    /// server's runtime it would wait behind every connection's task at each step of a batch, and
    /// with more than one core it writes in parallel with the delivery work. `read_pool` serves
    /// history pages on the caller's runtime.
    pub fn start(
        read_pool: Pool,
        write_pool: Pool,
        config: &HistoryConfig,
        ids: Arc<Ids>,
        schema_ready: Arc<AtomicBool>,
    ) -> std::io::Result<PostgresStore> {
        let (queue, rx) = mpsc::channel(config.queue);
        let shared = Arc::new(Shared::default());
        shared.healthy.store(true, Ordering::Release);
        let writer = Writer {
            pool: write_pool,
            rx,
            shared: shared.clone(),
            batch: config.batch,
            linger: config.linger,
            timeout: config.query_timeout,
            ids,
            schema_ready,
            notify_after: config.notify_after,
        };
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("chatgate-history".into())
            .spawn(move || {
                runtime.block_on(writer.run());
                let _ = done.send(());
            })?;
        Ok(PostgresStore {
            pages: PageReader::new(read_pool.clone(), READERS),
            pool: read_pool,
            warned: Mutex::default(),
            queue,
            shared,
            writer: Mutex::new(Some(finished)),
            query_timeout: config.query_timeout,
        })
    }

    /// See [`super::History::reserve`].
    pub fn reserve(&self) -> Slot<'_> {
        match self.queue.try_reserve() {
            Ok(permit) => Slot::Now(Some(Place::Borrowed(permit))),
            Err(mpsc::error::TrySendError::Full(()))
                if self.shared.healthy.load(Ordering::Acquire) =>
            {
                let queue = self.queue.clone();
                let wait = self.query_timeout;
                Slot::Later(Box::pin(async move {
                    match tokio::time::timeout(wait, queue.reserve_owned()).await {
                        Ok(Ok(permit)) => Some(Place::Owned(permit)),
                        _ => None,
                    }
                }))
            }
            Err(_) => Slot::Now(None),
        }
    }

    /// Hands a delivered message to the writer, in its reserved `place` if it has one; gives
    /// `on_stored` back if there is no room.
    pub fn enqueue(
        &self,
        message: StoredMessage,
        on_stored: Option<OnStored>,
        place: Option<Place<'_>>,
    ) -> Result<(), Option<OnStored>> {
        let queued = Queued { message, on_stored };
        if let Some(place) = place {
            match place {
                Place::Borrowed(permit) => permit.send(queued),
                Place::Owned(permit) => {
                    permit.send(queued);
                }
            }
            self.shared.queued.fetch_add(1, Ordering::AcqRel);
            return Ok(());
        }
        match self.queue.try_send(queued) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let queued = match e {
                    mpsc::error::TrySendError::Full(q) | mpsc::error::TrySendError::Closed(q) => q,
                };
                // One line per burst, not one per message: a flood of log lines is the last thing
                // an overloaded server needs.
                let warn = self.warned.lock().unwrap_or_else(|p| p.into_inner()).allow(
                    crate::rate::RateLimit::WARNINGS,
                    tokio::time::Instant::now(),
                );
                if warn {
                    tracing::warn!(
                        dropped_so_far = dropped,
                        eventid = queued.message.eventid,
                        "history queue full: messages delivered but not stored"
                    );
                }
                Err(queued.on_stored)
            }
        }
    }

    pub fn queued(&self) -> u64 {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Waits until the first `n` queued messages are written (at most the query timeout).
    pub async fn written_up_to(&self, n: u64) {
        let shared = &self.shared;
        super::settled_up_to(
            &shared.settled,
            &shared.settled_changed,
            n,
            self.query_timeout,
        )
        .await;
    }

    /// The pool reactions, edits and read marks go through.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    pub async fn page(
        &self,
        eventid: i32,
        before: i64,
        limit: usize,
        viewer: i32,
    ) -> Result<Page, HistoryError> {
        let query = self.pages.page(eventid, before, limit, viewer);
        match tokio::time::timeout(self.query_timeout, query).await {
            Ok(result) => result,
            Err(_) => Err(HistoryError(format!(
                "no answer within {:?}",
                self.query_timeout
            ))),
        }
    }

    /// Tells the writer to store what is queued and stop, giving up at `deadline`; waits for it.
    /// Returns how many messages were given up.
    pub async fn close(&self, deadline: tokio::time::Instant) -> u64 {
        let before = self.shared.dropped.load(Ordering::Acquire);
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.shared.closing.store(true, Ordering::Release);
        self.shared.close_now.notify_one();
        let finished = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(finished) = finished {
            let _ = finished.await;
        }
        self.shared.dropped.load(Ordering::Acquire) - before
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            queued: self
                .shared
                .queued
                .load(Ordering::Relaxed)
                .saturating_sub(self.shared.settled.load(Ordering::Relaxed)),
            stored: self.shared.stored.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            failed_batches: self.shared.failed_batches.load(Ordering::Relaxed),
            pages_read: self.pages.counts().pages.load(Ordering::Relaxed),
            page_batches: self.pages.counts().batches.load(Ordering::Relaxed),
        }
    }

    /// How long batch inserts took.
    pub fn write_latency(&self) -> &LatencyHistogram {
        &self.shared.write_latency
    }
}

struct Writer {
    pool: Pool,
    rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    batch: usize,
    /// How long a batch that is not full waits for more messages.
    linger: Duration,
    timeout: Duration,
    ids: Arc<Ids>,
    /// Set once chatgate's tables are known to be current (shared with `History`).
    schema_ready: Arc<AtomicBool>,
    /// Offline notifications on: messages go to the outbox in the same statement.
    notify_after: Option<Duration>,
}

impl Writer {
    async fn run(mut self) {
        self.observe_stored_ids().await;
        let mut batch = Vec::with_capacity(self.batch);
        loop {
            let closing = self.shared.closing.load(Ordering::Acquire);
            if closing {
                // Accept nothing new; store what is queued.
                self.rx.close();
            }
            let n = tokio::select! {
                n = self.rx.recv_many(&mut batch, self.batch) => n,
                () = self.shared.close_now.notified(), if !closing => continue,
            };
            if n == 0 {
                return; // closed and empty
            }
            if batch.len() < self.batch && !closing && !self.linger.is_zero() {
                // Group commit: let a few more messages arrive (no wake-up per message, one commit
                // for all of them); only acks and a join's history wait for this.
                tokio::select! {
                    () = tokio::time::sleep(self.linger) => {}
                    () = self.shared.close_now.notified() => {}
                }
                while batch.len() < self.batch {
                    match self.rx.try_recv() {
                        Ok(queued) => batch.push(queued),
                        Err(_) => break,
                    }
                }
            }
            let stored = self.write(&batch).await;
            let count = batch.len() as u64;
            if stored {
                self.shared.stored.fetch_add(count, Ordering::Relaxed);
            } else {
                self.shared.dropped.fetch_add(count, Ordering::Relaxed);
                tracing::error!(
                    messages = count,
                    "shutdown deadline passed: queued messages were not stored"
                );
            }
            self.shared.settled.fetch_add(count, Ordering::AcqRel);
            self.shared.settled_changed.notify_waiters();
            for queued in batch.drain(..) {
                if let Some(f) = queued.on_stored {
                    f(stored);
                }
            }
            if batch.capacity() > self.batch * 4 {
                batch = Vec::with_capacity(self.batch);
            }
        }
    }

    /// Ids must keep increasing across restarts even if the clock was set back: start above the
    /// largest stored one. Retried in the background until the database answers.
    async fn observe_stored_ids(&self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            // Before the start-up schema step (`app::prepare_schema`) the table may not exist
            // yet; no message can be sent before it either (joins wait for it).
            if !self.schema_ready.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let max = async {
                let client = self.pool.get().await.map_err(|e| e.to_string())?;
                client
                    .query_one("SELECT max(id) FROM chatgate_message", &[])
                    .await
                    .map_err(|e| e.to_string())?
                    .try_get::<_, Option<i64>>(0)
                    .map_err(|e| e.to_string())
            };
            match tokio::time::timeout(self.timeout, max).await {
                Ok(Ok(max)) => {
                    if let Some(id) = max {
                        self.ids.observe(id);
                    }
                    return;
                }
                Ok(Err(e)) => {
                    let hint = if e.contains("chatgate_message") {
                        " (run `chatgate migrate`)"
                    } else {
                        ""
                    };
                    tracing::warn!(error = %e, "history: cannot read stored ids{hint}");
                }
                Err(_) => tracing::warn!("history: database did not answer"),
            }
            if self.shared.closing.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Inserts the batch, retrying with backoff until it is stored; `false` if the shutdown
    /// deadline passed first.
    async fn write(&self, batch: &[Queued]) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            let result = tokio::time::timeout(self.timeout, self.insert(batch)).await;
            self.shared.write_latency.record(started.elapsed());
            let error = match result {
                Ok(Ok(())) => {
                    self.shared.healthy.store(true, Ordering::Release);
                    if backoff > Duration::from_millis(100) {
                        tracing::info!("history: writes resumed");
                    }
                    return true;
                }
                Ok(Err(e)) => e,
                Err(_) => format!("no answer within {:?}", self.timeout),
            };
            self.shared.failed_batches.fetch_add(1, Ordering::Relaxed);
            self.shared.healthy.store(false, Ordering::Release);
            tracing::warn!(
                error = %error,
                messages = batch.len(),
                retry_in_ms = backoff.as_millis() as u64,
                "history: batch not stored; retrying"
            );
            let deadline = *self
                .shared
                .deadline
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let wake = tokio::time::Instant::now() + backoff;
            match deadline {
                Some(d) if d <= tokio::time::Instant::now() => return false,
                Some(d) => tokio::time::sleep_until(wake.min(d)).await,
                None => {
                    // A shutdown during the wait shortens it to its deadline.
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => {}
                        () = self.shared.close_now.notified() => {}
                    }
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn insert(&self, batch: &[Queued]) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        if let Some(after) = self.notify_after {
            return insert_and_file(&client, batch, after)
                .await
                .map_err(|e| e.to_string());
        }
        if batch.len() < COPY_FROM {
            return insert_new(&client, batch).await.map_err(|e| e.to_string());
        }
        match copy(&client, batch).await {
            Ok(()) => Ok(()),
            // A retry of a batch whose commit went through but whose answer was lost: COPY cannot
            // skip rows that exist, the slower INSERT can.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                insert_new(&client, batch).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The messages of a batch that were not stored yet, and, in the same statement (so in the same
/// transaction, and idempotent on a retry), the outbox rows telling each chat's other seat about
/// them: one row per chat and recipient seat while it is pending, later messages folded in.
const INSERT_AND_FILE: &str = concat!(
    "WITH stored AS (",
    insert_new_messages!(),
    " RETURNING id, eventid, userid, role, sender_name, message) \
     INSERT INTO chatgate_notification AS n (eventid, recipient_role, sender_userid, sender_name, \
         count, first_message_id, last_message_id, preview, created_at, next_at) \
     SELECT eventid, CASE role WHEN 'tutor' THEN 'tutee' ELSE 'tutor' END, \
         (array_agg(userid ORDER BY id DESC))[1], (array_agg(sender_name ORDER BY id DESC))[1], \
         count(*), min(id), max(id), (array_agg(message ORDER BY id DESC))[1], $9, $10 \
     FROM stored GROUP BY eventid, role \
     ON CONFLICT (eventid, recipient_role) WHERE state = 'pending' DO UPDATE SET \
         count = n.count + EXCLUDED.count, \
         first_message_id = least(n.first_message_id, EXCLUDED.first_message_id), \
         last_message_id = greatest(n.last_message_id, EXCLUDED.last_message_id), \
         sender_userid = EXCLUDED.sender_userid, sender_name = EXCLUDED.sender_name, \
         preview = EXCLUDED.preview"
);

async fn insert_and_file(
    client: &deadpool_postgres::Client,
    batch: &[Queued],
    after: Duration,
) -> Result<(), tokio_postgres::Error> {
    let statement = client.prepare_cached(INSERT_AND_FILE).await?;
    let c = Columns::of(batch);
    let now = super::now();
    let due = now + chrono::TimeDelta::from_std(after).unwrap_or(chrono::TimeDelta::MAX);
    let mut params = c.params();
    params.push(&now);
    params.push(&due);
    client.execute(&statement, &params).await.map(|_| ())
}

/// Batches of at least this many rows go by COPY (cheaper per row, one more round trip); smaller
/// ones by one prepared INSERT.
const COPY_FROM: usize = 64;

const COPY: &str = "COPY chatgate_message \
     (id, eventid, userid, role, sender_name, message, created_at, attachments) FROM STDIN BINARY";

/// The fast path: binary COPY, which PostgreSQL ingests with the least work per row.
async fn copy(
    client: &deadpool_postgres::Client,
    batch: &[Queued],
) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    let sink = client.copy_in(COPY).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::INT4,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TEXT,
        ],
    );
    tokio::pin!(writer);
    for q in batch {
        let m = &q.message;
        let role = m.role.as_str();
        let name: &str = &m.sender_name;
        writer
            .as_mut()
            .write(&[
                &m.id,
                &m.eventid,
                &m.userid,
                &role,
                &name,
                &m.message,
                &m.created_at,
                &m.attachments.as_deref(),
            ])
            .await?;
    }
    writer.as_mut().finish().await.map(|_| ())
}

/// The idempotent path: inserts the rows that are not stored yet.
async fn insert_new(
    client: &deadpool_postgres::Client,
    batch: &[Queued],
) -> Result<(), tokio_postgres::Error> {
    let statement = client.prepare_cached(INSERT).await?;
    let c = Columns::of(batch);
    client.execute(&statement, &c.params()).await.map(|_| ())
}

/// A batch's messages as one array per column, in `INSERT`'s order.
struct Columns<'a> {
    ids: Vec<i64>,
    eventids: Vec<i32>,
    userids: Vec<i32>,
    roles: Vec<&'a str>,
    names: Vec<&'a str>,
    texts: Vec<&'a str>,
    times: Vec<chrono::DateTime<chrono::Utc>>,
    attachments: Vec<Option<&'a str>>,
}

type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);

impl<'a> Columns<'a> {
    fn of(batch: &'a [Queued]) -> Columns<'a> {
        let messages = || batch.iter().map(|q| &q.message);
        Columns {
            ids: messages().map(|m| m.id).collect(),
            eventids: messages().map(|m| m.eventid).collect(),
            userids: messages().map(|m| m.userid).collect(),
            roles: messages().map(|m| m.role.as_str()).collect(),
            names: messages().map(|m| &*m.sender_name).collect(),
            texts: messages().map(|m| m.message.as_str()).collect(),
            times: messages().map(|m| m.created_at).collect(),
            attachments: messages().map(|m| m.attachments.as_deref()).collect(),
        }
    }

    fn params(&self) -> Vec<Param<'_>> {
        vec![
            &self.ids,
            &self.eventids,
            &self.userids,
            &self.roles,
            &self.names,
            &self.texts,
            &self.times,
            &self.attachments,
        ]
    }
}
