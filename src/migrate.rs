//! `chatgate migrate`: creates and updates the tables the gateway owns (never the host
//! application's). Migrations are numbered, applied in order inside a transaction each, recorded in
//! `chatgate_schema_migrations`, and re-running is a no-op.

use tokio_postgres::NoTls;

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
];

pub async fn migrate(url: &str) -> Result<Vec<i32>, String> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS chatgate_schema_migrations (
                 version integer PRIMARY KEY,
                 description text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(|e| format!("cannot create chatgate_schema_migrations: {e}"))?;
    let mut applied = Vec::new();
    for (version, description, sql) in MIGRATIONS {
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        // Serializes concurrent `migrate` runs.
        tx.batch_execute("LOCK TABLE chatgate_schema_migrations IN EXCLUSIVE MODE")
            .await
            .map_err(|e| e.to_string())?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM chatgate_schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if !done {
            tx.batch_execute(sql)
                .await
                .map_err(|e| format!("migration {version} ({description}) failed: {e}"))?;
            tx.execute(
                "INSERT INTO chatgate_schema_migrations (version, description) VALUES ($1, $2)",
                &[version, description],
            )
            .await
            .map_err(|e| e.to_string())?;
            applied.push(*version);
        }
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    drop(client);
    let _ = driver.await;
    Ok(applied)
}
