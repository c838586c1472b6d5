//! The tables the gateway owns (never the host application's): created and updated by `chatgate
//! migrate`, or by `serve` itself at start (`--migrate auto`, the default). Migrations are numbered,
//! applied in order inside a transaction each, recorded in `chatgate_schema_migrations`, and
//! re-running is a no-op.
//!
//! Several nodes starting at once against one database migrate once: the whole run holds a
//! PostgreSQL advisory lock, and a schema that is already current is only read (so a role without
//! CREATE rights starts fine once someone has migrated).

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// `(version, description, SQL)`, in order. Append only: an applied migration never changes.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "migration bookkeeping",
        "SELECT 1", // the bookkeeping table itself is created below, before any migration runs
    ),
    (
        2,
        "message history",
        // Named `chatgate_` like the bookkeeping table, so it never meets a host application's
        // own `chat_message`. Ids are made by the gateway (src/history/ids.rs). The index serves
        // both the newest page of a chat and the pages before a given id.
        "CREATE TABLE chatgate_message (
             id          bigint PRIMARY KEY,
             eventid     integer NOT NULL,
             userid      integer NOT NULL,
             role        text NOT NULL CHECK (role IN ('tutor', 'tutee')),
             sender_name text NOT NULL,
             message     text NOT NULL,
             created_at  timestamptz NOT NULL
         );
         CREATE INDEX chatgate_message_eventid_id ON chatgate_message (eventid, id);",
    ),
    (
        3,
        "read receipts, reactions, edits and deletions",
        // A deleted message keeps its row (a tombstone: `deleted_at` set, text emptied) so that
        // history pages keep their ids and a client can draw "message deleted". Reactions go with
        // their message. The audit table is written only with `--edit-audit on`.
        "ALTER TABLE chatgate_message
             ADD COLUMN edited_at  timestamptz,
             ADD COLUMN deleted_at timestamptz;
         CREATE TABLE chatgate_read (
             eventid      integer NOT NULL,
             userid       integer NOT NULL,
             role         text NOT NULL CHECK (role IN ('tutor', 'tutee')),
             last_read_id bigint NOT NULL,
             read_at      timestamptz NOT NULL,
             PRIMARY KEY (eventid, userid)
         );
         CREATE TABLE chatgate_reaction (
             message_id bigint NOT NULL REFERENCES chatgate_message (id) ON DELETE CASCADE,
             userid     integer NOT NULL,
             emoji      text NOT NULL,
             created_at timestamptz NOT NULL,
             PRIMARY KEY (message_id, userid, emoji)
         );
         CREATE TABLE chatgate_message_audit (
             message_id  bigint NOT NULL,
             eventid     integer NOT NULL,
             userid      integer NOT NULL,
             action      text NOT NULL CHECK (action IN ('edit', 'delete')),
             old_message text NOT NULL,
             at          timestamptz NOT NULL
         );
         CREATE INDEX chatgate_message_audit_message ON chatgate_message_audit (message_id);
         -- A reaction in one round trip (it is the most frequent change): lock the message's row,
         -- add or remove, and total the message's reactions, each statement seeing what was
         -- committed before the lock was granted. `status`: 'unknown' (not a message of that
         -- chat), 'deleted', 'too_many' (the user has p_max reactions on it already), or 'ok'.
         CREATE FUNCTION chatgate_react(p_id bigint, p_eventid integer, p_userid integer,
                                        p_emoji text, p_add boolean, p_at timestamptz,
                                        p_max bigint,
                                        OUT status text, OUT changed boolean,
                                        OUT emojis text[], OUT counts bigint[])
         LANGUAGE plpgsql AS $$
         DECLARE
             gone timestamptz;
             n integer;
         BEGIN
             SELECT deleted_at INTO gone FROM chatgate_message
                 WHERE id = p_id AND eventid = p_eventid FOR UPDATE;
             IF NOT FOUND THEN status := 'unknown'; RETURN; END IF;
             IF gone IS NOT NULL THEN status := 'deleted'; RETURN; END IF;
             IF p_add AND NOT EXISTS (SELECT 1 FROM chatgate_reaction WHERE message_id = p_id
                                            AND userid = p_userid AND emoji = p_emoji)
                AND (SELECT count(*) FROM chatgate_reaction
                         WHERE message_id = p_id AND userid = p_userid) >= p_max THEN
                 status := 'too_many'; RETURN;
             END IF;
             IF p_add THEN
                 INSERT INTO chatgate_reaction (message_id, userid, emoji, created_at)
                     VALUES (p_id, p_userid, p_emoji, p_at) ON CONFLICT DO NOTHING;
             ELSE
                 DELETE FROM chatgate_reaction
                     WHERE message_id = p_id AND userid = p_userid AND emoji = p_emoji;
             END IF;
             GET DIAGNOSTICS n = ROW_COUNT;
             changed := n > 0;
             SELECT coalesce(array_agg(t.emoji ORDER BY t.first, t.emoji), '{}'),
                    coalesce(array_agg(t.total ORDER BY t.first, t.emoji), '{}')
                 INTO emojis, counts
                 FROM (SELECT r.emoji, count(*) AS total, min(r.created_at) AS first
                         FROM chatgate_reaction r WHERE r.message_id = p_id
                         GROUP BY r.emoji) t;
             status := 'ok';
         END $$;",
    ),
    (
        4,
        "file attachments",
        // A message's attachments are kept with it as the JSON array it was delivered with, so a
        // page reads back byte for byte as the live message did. `chatgate_file` holds every
        // uploaded file's metadata (the bytes are in the file store); `attached_at` is set when a
        // message takes the file, and files never attached are deleted after a grace period.
        "ALTER TABLE chatgate_message ADD COLUMN attachments text;
         CREATE TABLE chatgate_file (
             file_id      text PRIMARY KEY,
             eventid      integer NOT NULL,
             userid       integer NOT NULL,
             name         text NOT NULL,
             size         bigint NOT NULL,
             content_type text NOT NULL,
             sha256       text NOT NULL,
             created_at   timestamptz NOT NULL,
             attached_at  timestamptz,
             message_id   bigint,
             thumbnail    boolean NOT NULL DEFAULT false
         );
         CREATE INDEX chatgate_file_unattached ON chatgate_file (created_at)
             WHERE attached_at IS NULL;
         CREATE INDEX chatgate_file_quota ON chatgate_file (userid, created_at);",
    ),
    (
        5,
        "offline notifications",
        // The outbox (docs/NOTIFICATIONS.md): one row per chat and recipient seat while messages
        // wait to be told about, written in the transaction that stores them. `pending` rows fold
        // later messages in (one per chat and seat: the partial unique index) until `next_at`;
        // then a worker claims them (`sending`, `next_at` = the claim's expiry), and a row that
        // failed waits for its retry (`retrying`) or gives up (`dead`). A sent or dropped row is
        // deleted.
        "CREATE TABLE chatgate_notification (
             id               bigserial PRIMARY KEY,
             eventid          integer NOT NULL,
             recipient_role   text NOT NULL CHECK (recipient_role IN ('tutor', 'tutee')),
             sender_userid    integer NOT NULL,
             sender_name      text NOT NULL,
             count            integer NOT NULL,
             first_message_id bigint NOT NULL,
             last_message_id  bigint NOT NULL,
             preview          text NOT NULL,
             created_at       timestamptz NOT NULL,
             state            text NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'sending', 'retrying', 'dead')),
             next_at          timestamptz NOT NULL,
             attempts         integer NOT NULL DEFAULT 0,
             first_attempt_at timestamptz,
             last_error       text
         );
         CREATE UNIQUE INDEX chatgate_notification_folding
             ON chatgate_notification (eventid, recipient_role) WHERE state = 'pending';
         CREATE INDEX chatgate_notification_next ON chatgate_notification (next_at)
             WHERE state <> 'dead';
         CREATE TABLE chatgate_notify_settings (
             userid     integer PRIMARY KEY,
             enabled    boolean NOT NULL,
             updated_at timestamptz NOT NULL
         );",
    ),
    (
        6,
        "connection state recovery",
        // docs/RECOVERY.md. `chatgate_change` is the chat's log of what happened to messages
        // (edits, deletions, reactions, read marks), with the exact payload the room received and
        // an id from the same sequence as message ids, so that a client that missed some can be
        // sent them again in order. `chatgate_session` keeps, per recoverable socket, the chat it
        // was in; `chatgate_process` the last sign of life of each running gateway, which dates
        // the disconnection of the sockets of a process that died without saying so. All three
        // are UNLOGGED: they only serve reconnections within minutes, so they stay out of the
        // write-ahead log (and so out of replication and backups); if PostgreSQL itself crashes
        // they come back empty and clients reconnect without recovery.
        "CREATE UNLOGGED TABLE chatgate_change (
             id      bigint PRIMARY KEY,
             eventid integer NOT NULL,
             event   text NOT NULL,
             payload text NOT NULL,
             at      timestamptz NOT NULL
         );
         CREATE INDEX chatgate_change_chat ON chatgate_change (eventid, id);
         CREATE INDEX chatgate_change_at ON chatgate_change (at);
         CREATE UNLOGGED TABLE chatgate_process (
             process bigint PRIMARY KEY,
             seen_at timestamptz NOT NULL
         );
         CREATE UNLOGGED TABLE chatgate_session (
             pid             text PRIMARY KEY,
             sid             text NOT NULL,
             conn            bigint NOT NULL,
             process         bigint NOT NULL,
             eventid         integer NOT NULL,
             userid          integer NOT NULL,
             role            text NOT NULL,
             since           bigint NOT NULL,
             disconnected_at timestamptz,
             updated_at      timestamptz NOT NULL
         );",
    ),
];

/// The schema version this build needs.
pub const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock key every migrating process takes ("chatgate" in ASCII).
const LOCK_KEY: i64 = 0x6368_6174_6761_7465;

/// Why the schema could not be brought up to date or used; each says what to do.
#[derive(Debug)]
pub enum MigrateError {
    /// The database did not answer.
    Connect(String),
    /// The role may not create chatgate's tables.
    NoCreatePermission { role: String, detail: String },
    /// `--migrate off` and the schema is older than this build needs.
    Behind { have: i32, need: i32 },
    /// A migration's SQL failed.
    Failed {
        version: i32,
        description: &'static str,
        error: String,
    },
    /// Any other database error while reading or recording versions.
    Query(String),
}

impl MigrateError {
    /// Whether trying again later can help (the database was away), as opposed to a problem an
    /// operator must fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, MigrateError::Connect(_) | MigrateError::Query(_))
    }
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateError::Connect(e) => write!(f, "cannot connect to the database: {e}"),
            MigrateError::NoCreatePermission { role, detail } => write!(
                f,
                "the database role \"{role}\" may not create chatgate's tables ({detail}): \
                 grant it CREATE rights (GRANT CREATE ON SCHEMA public TO \"{role}\"), or run \
                 `chatgate migrate --database-url URL` once as a role that has them (the \
                 database owner), then start again"
            ),
            MigrateError::Behind { have, need } => write!(
                f,
                "the database schema is at version {have}, this chatgate needs version {need}: \
                 run `chatgate migrate --database-url URL` first, or start with --migrate auto"
            ),
            MigrateError::Failed {
                version,
                description,
                error,
            } => write!(f, "migration {version} ({description}) failed: {error}"),
            MigrateError::Query(e) => write!(f, "cannot read the schema version: {e}"),
        }
    }
}

impl std::error::Error for MigrateError {}

/// Classifies a database error met while creating tables.
fn ddl_error(
    role: &str,
    e: tokio_postgres::Error,
    failed: impl FnOnce(String) -> MigrateError,
) -> MigrateError {
    match e.as_db_error() {
        Some(db) if db.code() == &SqlState::INSUFFICIENT_PRIVILEGE => {
            MigrateError::NoCreatePermission {
                role: role.to_owned(),
                detail: db.message().to_owned(),
            }
        }
        Some(db) => failed(db.message().to_owned()),
        None => MigrateError::Query(e.to_string()),
    }
}

fn query_error(e: tokio_postgres::Error) -> MigrateError {
    MigrateError::Query(e.to_string())
}

/// One connection for schema work (its driver runs on a task of its own).
pub async fn connect(url: &str, timeout: Duration) -> Result<Client, MigrateError> {
    let connecting = tokio_postgres::connect(url, NoTls);
    let (client, connection) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| MigrateError::Connect(format!("no answer within {timeout:?}")))?
        .map_err(|e| MigrateError::Connect(e.to_string()))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The highest migration applied (0 for a database chatgate has never touched).
pub async fn schema_version(client: &Client) -> Result<i32, MigrateError> {
    let row = client
        .query_one(
            "SELECT to_regclass('chatgate_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(query_error)?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM chatgate_schema_migrations",
            &[],
        )
        .await
        .map_err(query_error)?;
    Ok(row.get(0))
}

/// `--migrate off`: the schema must already be current. A newer schema is fine (migrations only
/// add, so a node of the previous release keeps working during a rolling upgrade).
pub async fn check(client: &Client) -> Result<i32, MigrateError> {
    let have = schema_version(client).await?;
    if have < LATEST {
        return Err(MigrateError::Behind { have, need: LATEST });
    }
    Ok(have)
}

/// Brings the schema up to date; returns the versions this call applied.
pub async fn apply(client: &mut Client) -> Result<Vec<i32>, MigrateError> {
    if schema_version(client).await? >= LATEST {
        return Ok(Vec::new());
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(query_error)?;
    let applied = apply_locked(client).await;
    // Also released when the connection closes, should this fail.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    applied
}

async fn apply_locked(client: &mut Client) -> Result<Vec<i32>, MigrateError> {
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(query_error)?
        .get(0);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS chatgate_schema_migrations (
                 version integer PRIMARY KEY,
                 description text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(|e| {
            ddl_error(&role, e, |error| MigrateError::Failed {
                version: 1,
                description: MIGRATIONS[0].1,
                error,
            })
        })?;
    let mut applied = Vec::new();
    for (version, description, sql) in MIGRATIONS {
        let tx = client.transaction().await.map_err(query_error)?;
        // Serializes with a `chatgate migrate` of an older release, which took no advisory lock.
        tx.batch_execute("LOCK TABLE chatgate_schema_migrations IN EXCLUSIVE MODE")
            .await
            .map_err(|e| ddl_error(&role, e, MigrateError::Query))?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM chatgate_schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(query_error)?
            .is_some();
        if !done {
            tx.batch_execute(sql).await.map_err(|e| {
                ddl_error(&role, e, |error| MigrateError::Failed {
                    version: *version,
                    description,
                    error,
                })
            })?;
            tx.execute(
                "INSERT INTO chatgate_schema_migrations (version, description) VALUES ($1, $2)",
                &[version, description],
            )
            .await
            .map_err(query_error)?;
            applied.push(*version);
        }
        tx.commit().await.map_err(query_error)?;
    }
    Ok(applied)
}

/// `chatgate migrate`: connects, brings the schema up to date, disconnects.
pub async fn migrate(url: &str) -> Result<Vec<i32>, MigrateError> {
    let mut client = connect(url, Duration::from_secs(10)).await?;
    apply(&mut client).await
}
