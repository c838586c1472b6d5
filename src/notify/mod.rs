//! Offline notifications (docs/NOTIFICATIONS.md): when a message arrives for a member who is not
//! there to read it, the host application hears about it once per burst, by a signed webhook.
//! Built like Zulip's offline notifications and Matrix's pushers:
//!
//! - **Outbox.** The history writer's statement that stores messages also files them in
//!   `chatgate_notification` (one pending row per chat and recipient seat; later messages fold in),
//!   so a stored message always has its notification and a crash loses neither (`history/`).
//!   The demo directory keeps the outbox in memory and logs instead of calling a webhook.
//! - **Due time.** A row is due `--notify-delay-secs` after its first message. Workers on every
//!   node claim due rows with `FOR UPDATE SKIP LOCKED`, so each goes out from one node.
//! - **Re-check.** At the due time the row is dropped if the recipient has read up to its last
//!   message, is present in the chat (`presence`), switched notifications off (`notify-settings`),
//!   or every message of it was deleted.
//! - **Delivery.** `webhook`: Standard Webhooks signatures, a `webhook-id` stable across retries;
//!   failures retried with exponential backoff and jitter (1 s up to `--notify-max-backoff-secs`),
//!   given up (`dead`) after `--notify-give-up-secs`.

pub mod presence;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::directory::{Directory, Role};
use crate::history::{History, StoredMessage};
use presence::Presence;
use webhook::{Delivery, Webhook};

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub delay: Duration,
    pub preview: bool,
    pub poll: Duration,
    pub max_backoff: Duration,
    pub give_up: Duration,
    /// How long a claimed notification is its worker's before it counts as abandoned (the node
    /// died mid-delivery) and another claims it: longer than any delivery can take.
    pub claim: Duration,
}

/// Where notifications go.
pub enum Channel {
    Webhook(Webhook),
    /// The demo: a log line per notification.
    Log,
}

impl Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Log => "log",
        }
    }
}

/// One notification: messages `first..=last` of `eventid`'s chat for its `recipient_role` seat.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    eventid: i32,
    recipient_role: Role,
    sender_userid: i32,
    sender_name: String,
    count: i32,
    first_message_id: i64,
    last_message_id: i64,
    preview: String,
    attempts: i32,
    first_attempt_at: Option<DateTime<Utc>>,
}

/// A pending row of the in-memory outbox, with its state.
#[derive(Debug, Clone)]
struct MemoryRow {
    row: Row,
    state: &'static str,
    next_at: DateTime<Utc>,
}

enum Outbox {
    Postgres(deadpool_postgres::Pool),
    Memory {
        rows: Mutex<Vec<MemoryRow>>,
        next_id: AtomicU64,
        settings: Mutex<HashMap<i32, bool>>,
    },
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct NotifyStats {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    /// Dropped at the due time: read, present, opted out, deleted, no recipient.
    pub dropped: [AtomicU64; 5],
    pub pending: AtomicU64,
}

pub const DROP_REASONS: [&str; 5] = ["read", "present", "opted_out", "deleted", "no_recipient"];

/// Why a due notification is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drop {
    Read = 0,
    Present = 1,
    OptedOut = 2,
    Deleted = 3,
    NoRecipient = 4,
}

pub struct Notifier {
    pub config: NotifyConfig,
    outbox: Outbox,
    channel: Channel,
    pub presence: Presence,
    directory: Arc<dyn Directory>,
    history: Arc<History>,
    pub stats: NotifyStats,
}

/// The webhook's body.
#[derive(Serialize)]
struct Body<'a> {
    /// The notification's id, as in `webhook-id`.
    id: &'a str,
    eventid: i32,
    recipient: Person<'a>,
    sender: Person<'a>,
    count: i64,
    first_message_id: i64,
    last_message_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<String>,
}

#[derive(Serialize)]
struct Person<'a> {
    userid: i32,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// Longest preview, in characters.
const PREVIEW_CHARS: usize = 140;

/// Rows one worker claims at once.
const BATCH: i64 = 32;

fn delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

impl Notifier {
    pub fn new(
        config: NotifyConfig,
        pool: Option<deadpool_postgres::Pool>,
        channel: Channel,
        presence: Presence,
        directory: Arc<dyn Directory>,
        history: Arc<History>,
    ) -> Notifier {
        let outbox = match pool {
            Some(pool) => Outbox::Postgres(pool),
            None => Outbox::Memory {
                rows: Mutex::default(),
                next_id: AtomicU64::new(1),
                settings: Mutex::default(),
            },
        };
        Notifier {
            config,
            outbox,
            channel,
            presence,
            directory,
            history,
            stats: NotifyStats::default(),
        }
    }

    pub fn channel_name(&self) -> &'static str {
        self.channel.name()
    }

    /// Files a delivered message in the in-memory outbox (the demo); with PostgreSQL the history
    /// writer files it in the transaction that stores it, and this does nothing.
    pub fn note(&self, m: &StoredMessage) {
        let Outbox::Memory { rows, next_id, .. } = &self.outbox else {
            return;
        };
        let recipient_role = m.role.other();
        let mut rows = rows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = rows.iter_mut().find(|r| {
            r.state == "pending"
                && r.row.eventid == m.eventid
                && r.row.recipient_role == recipient_role
        }) {
            let r = &mut pending.row;
            r.count += 1;
            r.last_message_id = r.last_message_id.max(m.id);
            r.first_message_id = r.first_message_id.min(m.id);
            r.sender_userid = m.userid;
            r.sender_name = m.sender_name.to_string();
            r.preview.clone_from(&m.message);
            return;
        }
        rows.push(MemoryRow {
            row: Row {
                id: next_id.fetch_add(1, Ordering::Relaxed) as i64,
                eventid: m.eventid,
                recipient_role,
                sender_userid: m.userid,
                sender_name: m.sender_name.to_string(),
                count: 1,
                first_message_id: m.id,
                last_message_id: m.id,
                preview: m.message.clone(),
                attempts: 0,
                first_attempt_at: None,
            },
            state: "pending",
            next_at: crate::history::now() + delta(self.config.delay),
        });
    }

    /// `notify-settings`: whether `userid` wants offline notifications.
    pub async fn set_enabled(&self, userid: i32, enabled: bool) -> Result<(), String> {
        match &self.outbox {
            Outbox::Memory { settings, .. } => {
                settings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(userid, enabled);
                Ok(())
            }
            Outbox::Postgres(pool) => {
                let client = pool.get().await.map_err(|e| e.to_string())?;
                client
                    .execute(
                        "INSERT INTO chatgate_notify_settings (userid, enabled, updated_at) \
                         VALUES ($1, $2, now()) ON CONFLICT (userid) DO UPDATE \
                         SET enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at",
                        &[&userid, &enabled],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    }

    async fn enabled(&self, userid: i32) -> Result<bool, String> {
        match &self.outbox {
            Outbox::Memory { settings, .. } => Ok(*settings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&userid)
                .unwrap_or(&true)),
            Outbox::Postgres(pool) => {
                let client = pool.get().await.map_err(|e| e.to_string())?;
                let row = client
                    .query_opt(
                        "SELECT enabled FROM chatgate_notify_settings WHERE userid = $1",
                        &[&userid],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(row
                    .map_or(Ok(true), |r| r.try_get(0))
                    .map_err(|e| e.to_string())?)
            }
        }
    }

    /// Runs the worker until the process ends.
    pub fn start(self: &Arc<Self>) {
        let notifier = Arc::downgrade(self);
        let poll = self.config.poll;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let Some(notifier) = notifier.upgrade() else {
                    return;
                };
                // Several rounds while there is a backlog, one per poll otherwise.
                while notifier.round().await == BATCH as usize {}
            }
        });
    }

    /// Claims the due rows and handles them; returns how many it claimed.
    async fn round(&self) -> usize {
        let rows = match self.claim().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "notifications: cannot claim due ones");
                return 0;
            }
        };
        let n = rows.len();
        futures_util::future::join_all(rows.into_iter().map(|row| self.handle(row))).await;
        n
    }

    async fn claim(&self) -> Result<Vec<Row>, String> {
        let now = crate::history::now();
        let until = now + delta(self.config.claim);
        match &self.outbox {
            Outbox::Memory { rows, .. } => {
                let mut rows = rows.lock().unwrap_or_else(|p| p.into_inner());
                self.stats.pending.store(
                    rows.iter().filter(|r| r.state != "dead").count() as u64,
                    Ordering::Relaxed,
                );
                let mut due = Vec::new();
                for r in rows.iter_mut() {
                    if r.state != "dead" && r.next_at <= now && due.len() < BATCH as usize {
                        r.state = "sending";
                        r.next_at = until;
                        r.row.first_attempt_at.get_or_insert(now);
                        due.push(r.row.clone());
                    }
                }
                Ok(due)
            }
            Outbox::Postgres(pool) => {
                let client = pool.get().await.map_err(|e| e.to_string())?;
                let pending: i64 = client
                    .query_one(
                        "SELECT count(*) FROM chatgate_notification WHERE state <> 'dead'",
                        &[],
                    )
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(|e| e.to_string())?;
                self.stats.pending.store(pending as u64, Ordering::Relaxed);
                let rows = client
                    .query(
                        "UPDATE chatgate_notification SET state = 'sending', next_at = $2, \
                             first_attempt_at = coalesce(first_attempt_at, $1) \
                         WHERE id IN (SELECT id FROM chatgate_notification \
                             WHERE state <> 'dead' AND next_at <= $1 \
                             ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                         RETURNING id, eventid, recipient_role, sender_userid, sender_name, count, \
                             first_message_id, last_message_id, preview, attempts, first_attempt_at",
                        &[&now, &until, &BATCH],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                rows.iter()
                    .map(|r| {
                        let role: &str = r.try_get(2).map_err(|e| e.to_string())?;
                        Ok(Row {
                            id: r.try_get(0).map_err(|e| e.to_string())?,
                            eventid: r.try_get(1).map_err(|e| e.to_string())?,
                            recipient_role: Role::parse(role)
                                .ok_or_else(|| format!("stored role {role:?}"))?,
                            sender_userid: r.try_get(3).map_err(|e| e.to_string())?,
                            sender_name: r.try_get(4).map_err(|e| e.to_string())?,
                            count: r.try_get(5).map_err(|e| e.to_string())?,
                            first_message_id: r.try_get(6).map_err(|e| e.to_string())?,
                            last_message_id: r.try_get(7).map_err(|e| e.to_string())?,
                            preview: r.try_get(8).map_err(|e| e.to_string())?,
                            attempts: r.try_get(9).map_err(|e| e.to_string())?,
                            first_attempt_at: r.try_get(10).map_err(|e| e.to_string())?,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Decides, delivers and settles one claimed row.
    async fn handle(&self, row: Row) {
        match self.decide(&row).await {
            Ok(Ok((recipient, live))) => {
                let id = format!("ntf_{}", row.id);
                let body = Body {
                    id: &id,
                    eventid: row.eventid,
                    recipient: Person {
                        userid: recipient,
                        role: row.recipient_role.as_str(),
                        name: None,
                    },
                    sender: Person {
                        userid: row.sender_userid,
                        role: row.recipient_role.other().as_str(),
                        name: Some(&row.sender_name),
                    },
                    count: live,
                    first_message_id: row.first_message_id,
                    last_message_id: row.last_message_id,
                    preview: self
                        .config
                        .preview
                        .then(|| row.preview.chars().take(PREVIEW_CHARS).collect()),
                };
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let delivery = match &self.channel {
                    Channel::Webhook(hook) => hook.send(&id, body).await,
                    Channel::Log => {
                        tracing::info!(
                            notification = %String::from_utf8_lossy(&body),
                            "offline notification (demo: logged, not sent)"
                        );
                        Delivery::Accepted
                    }
                };
                match delivery {
                    Delivery::Accepted => {
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                        self.settle(&row, None).await;
                    }
                    Delivery::Failed(why) => self.retry(&row, &why).await,
                }
            }
            Ok(Err(drop)) => {
                self.stats.dropped[drop as usize].fetch_add(1, Ordering::Relaxed);
                self.settle(&row, None).await;
            }
            Err(why) => self.retry(&row, &why).await,
        }
    }

    /// The recipient and the messages still to tell about, or why not to.
    async fn decide(&self, row: &Row) -> Result<Result<(i32, i64), Drop>, String> {
        let seats = self
            .directory
            .members(row.eventid)
            .await
            .map_err(|e| e.to_string())?;
        let recipient = match (seats, row.recipient_role) {
            (Some((Some(tutor), _)), Role::Tutor) => tutor,
            (Some((_, Some(tutee))), Role::Tutee) => tutee,
            _ => return Ok(Err(Drop::NoRecipient)),
        };
        if !self.enabled(recipient).await? {
            return Ok(Err(Drop::OptedOut));
        }
        let unread = self
            .history
            .unread(
                row.eventid,
                recipient,
                row.recipient_role.other(),
                row.first_message_id,
                row.last_message_id,
            )
            .await
            .map_err(|e| e.to_string())?;
        if unread.read_up_to.is_some_and(|r| r >= row.last_message_id) {
            return Ok(Err(Drop::Read));
        }
        if unread.live == 0 {
            return Ok(Err(Drop::Deleted));
        }
        if self.presence.present(row.eventid, recipient).await {
            return Ok(Err(Drop::Present));
        }
        Ok(Ok((recipient, unread.live.min(i64::from(row.count)))))
    }

    /// Done with a row (sent or dropped): it goes; or, with `dead`, it stays as given up.
    async fn settle(&self, row: &Row, dead: Option<&str>) {
        match &self.outbox {
            Outbox::Memory { rows, .. } => {
                let mut rows = rows.lock().unwrap_or_else(|p| p.into_inner());
                match dead {
                    None => rows.retain(|r| r.row.id != row.id),
                    Some(_) => {
                        if let Some(r) = rows.iter_mut().find(|r| r.row.id == row.id) {
                            r.state = "dead";
                        }
                    }
                }
            }
            Outbox::Postgres(pool) => {
                let result =
                    async {
                        let client = pool.get().await.map_err(|e| e.to_string())?;
                        match dead {
                        None => client
                            .execute("DELETE FROM chatgate_notification WHERE id = $1", &[&row.id])
                            .await,
                        Some(why) => client
                            .execute(
                                "UPDATE chatgate_notification SET state = 'dead', last_error = $2 \
                                 WHERE id = $1",
                                &[&row.id, &why],
                            )
                            .await,
                    }
                    .map_err(|e| e.to_string())
                    }
                    .await;
                if let Err(e) = result {
                    // Left claimed: it is claimed again when the claim expires, and its receiver
                    // drops the duplicate by its webhook-id.
                    tracing::warn!(error = %e, id = row.id, "notification not settled");
                }
            }
        }
    }

    /// Schedules the next attempt (exponential backoff with jitter), or gives up.
    async fn retry(&self, row: &Row, why: &str) {
        let now = crate::history::now();
        let started = row.first_attempt_at.unwrap_or(now);
        if now - started >= delta(self.config.give_up) {
            tracing::warn!(id = row.id, error = why, "notification given up");
            self.stats.dead.fetch_add(1, Ordering::Relaxed);
            self.settle(row, Some(why)).await;
            return;
        }
        self.stats.retried.fetch_add(1, Ordering::Relaxed);
        let attempts = row.attempts + 1;
        let base = Duration::from_secs(1)
            .saturating_mul(1u32 << (attempts - 1).clamp(0, 20))
            .min(self.config.max_backoff);
        // Up to a fifth more, at random: retries of many notifications spread out.
        let jitter = base.mul_f64(rand::random::<f64>() * 0.2);
        let next = now + delta(base + jitter);
        tracing::info!(
            id = row.id,
            attempts,
            error = why,
            "notification failed; will retry"
        );
        match &self.outbox {
            Outbox::Memory { rows, .. } => {
                let mut rows = rows.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(r) = rows.iter_mut().find(|r| r.row.id == row.id) {
                    r.state = "retrying";
                    r.next_at = next;
                    r.row.attempts = attempts;
                }
            }
            Outbox::Postgres(pool) => {
                let result = async {
                    let client = pool.get().await.map_err(|e| e.to_string())?;
                    client
                        .execute(
                            "UPDATE chatgate_notification SET state = 'retrying', next_at = $2, \
                                 attempts = $3, last_error = $4 WHERE id = $1",
                            &[&row.id, &next, &attempts, &why],
                        )
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, id = row.id, "notification retry not scheduled");
                }
            }
        }
    }
}
