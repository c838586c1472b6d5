//! Command-line flags (each with an environment twin) and what they default to. The flags and their
//! names are a public interface (docs/PROTOCOL.md, "Compatibility"): add, never rename.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::directory::postgres::{DEFAULT_EVENT_QUERY, DEFAULT_USER_QUERY};

#[derive(Parser, Debug)]
#[command(
    name = "chatgate",
    version,
    about = "Socket.IO gateway for tutor/tutee event chats"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `chatgate` alone is `chatgate serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default).
    Serve(Box<ServeArgs>),
    /// Create or update the gateway's own tables.
    Migrate(MigrateArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthArg {
    /// The `userid` in join-chat is believed. Development and the demo only.
    Trust,
    /// An HS256 token in the CONNECT payload (`io(url, { auth: { token } })`).
    Jwt,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownNotice {
    Disconnect,
    Reconnect,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CHATGATE_LISTEN", default_value = "0.0.0.0:6969")]
    pub listen: SocketAddr,

    /// PostgreSQL URL of the host application's database; without it, the embedded demo directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Authentication mode. Default: `jwt` with a database, `trust` with the demo directory.
    #[arg(long, env = "CHATGATE_AUTH", value_enum)]
    pub auth: Option<AuthArg>,

    /// HS256 secret for `--auth jwt`. Never logged.
    #[arg(long, env = "CHATGATE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Browser origins allowed besides the gateway's own (repeat, or comma-separate in the env
    /// variable); `*` allows any. Requests without an Origin header (apps, servers) are always allowed.
    #[arg(
        long = "cors-origin",
        env = "CHATGATE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Socket.IO path.
    #[arg(long, env = "CHATGATE_PATH", default_value = "/socket.io/")]
    pub path: String,

    /// Milliseconds between server pings.
    #[arg(long, env = "CHATGATE_PING_INTERVAL_MS", default_value_t = 25_000)]
    pub ping_interval_ms: u64,

    /// Milliseconds a client has to answer a ping.
    #[arg(long, env = "CHATGATE_PING_TIMEOUT_MS", default_value_t = 20_000)]
    pub ping_timeout_ms: u64,

    /// Largest message or polling body accepted, in bytes.
    #[arg(long, env = "CHATGATE_MAX_PAYLOAD", default_value_t = 1_000_000, value_parser = at_least_one)]
    pub max_payload: usize,

    /// Longest chat message, in characters.
    #[arg(long, env = "CHATGATE_MAX_MESSAGE_CHARS", default_value_t = 5000)]
    pub max_message_chars: usize,

    /// `send-message` events per second a socket may send on average (0: unlimited).
    #[arg(long, env = "CHATGATE_MESSAGE_RATE", default_value_t = 10.0)]
    pub message_rate: f64,

    /// `send-message` events a socket may send in a burst.
    #[arg(long, env = "CHATGATE_MESSAGE_BURST", default_value_t = 20.0)]
    pub message_burst: f64,

    /// `typing` events per second a socket may send on average (0: unlimited).
    #[arg(long, env = "CHATGATE_TYPING_RATE", default_value_t = 5.0)]
    pub typing_rate: f64,

    /// `typing` events a socket may send in a burst.
    #[arg(long, env = "CHATGATE_TYPING_BURST", default_value_t = 10.0)]
    pub typing_burst: f64,

    /// Most simultaneous sessions; further handshakes get 503.
    #[arg(long, env = "CHATGATE_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Most simultaneous long-polling sessions; further polling handshakes get 503 (WebSocket
    /// handshakes still succeed).
    #[arg(long, env = "CHATGATE_MAX_POLLING_SESSIONS", default_value_t = 10_000)]
    pub max_polling_sessions: usize,

    /// New sessions per second one client address may open on average (0: unlimited). Generous by
    /// default because many users can share one address (NAT, a reverse proxy).
    #[arg(long, env = "CHATGATE_HANDSHAKE_RATE", default_value_t = 100.0)]
    pub handshake_rate: f64,

    /// New sessions one client address may open in a burst.
    #[arg(long, env = "CHATGATE_HANDSHAKE_BURST", default_value_t = 1000.0)]
    pub handshake_burst: f64,

    /// Frames a client's outbound queue holds; beyond it, frames for that client are dropped until
    /// it catches up or the slow-consumer timeout disconnects it.
    #[arg(long, env = "CHATGATE_OUTBOX_CAPACITY", default_value_t = 1024, value_parser = at_least_one)]
    pub outbox_capacity: usize,

    /// Milliseconds a client's outbound queue may stay full, or a write to it stay blocked, before
    /// the client is disconnected as a slow consumer (the others never wait for it).
    #[arg(long, env = "CHATGATE_SLOW_CONSUMER_MS", default_value_t = 10_000)]
    pub slow_consumer_ms: u64,

    /// Serve `/health`, `/ready` and `/metrics` on this address only (instead of on `--listen`).
    #[arg(long, env = "CHATGATE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Milliseconds a new connection has to deliver complete request headers; idle or trickling
    /// connections are dropped (slowloris).
    #[arg(long, env = "CHATGATE_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,

    /// Largest number of pooled database connections.
    #[arg(long, env = "CHATGATE_DB_POOL_SIZE", default_value_t = 16, value_parser = at_least_one)]
    pub db_pool_size: usize,

    /// Milliseconds to wait for a database connection.
    #[arg(long, env = "CHATGATE_DB_CONNECT_TIMEOUT_MS", default_value_t = 3000)]
    pub db_connect_timeout_ms: u64,

    /// Milliseconds a join's authorization queries may take.
    #[arg(long, env = "CHATGATE_DB_QUERY_TIMEOUT_MS", default_value_t = 3000)]
    pub db_query_timeout_ms: u64,

    /// SQL returning (tutor user id, tutee user id) of event `$1`.
    #[arg(long, env = "CHATGATE_EVENT_QUERY", default_value = DEFAULT_EVENT_QUERY)]
    pub event_query: String,

    /// SQL returning the display name of user `$1`.
    #[arg(long, env = "CHATGATE_USER_QUERY", default_value = DEFAULT_USER_QUERY)]
    pub user_query: String,

    /// Worker threads; 0 = one per core, 1 = a single-threaded runtime.
    #[arg(long, env = "CHATGATE_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Log format.
    #[arg(long, env = "CHATGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Seconds to let clients drain on SIGTERM/SIGINT before exiting.
    #[arg(long, env = "CHATGATE_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,

    /// What clients are told on SIGTERM/SIGINT. `disconnect`: a Socket.IO DISCONNECT, so the
    /// official clients report "io server disconnect" and stay disconnected until the application
    /// reconnects them. `reconnect`: only the transport closes, so they reconnect by themselves
    /// (to another node behind a load balancer, during a rolling restart).
    #[arg(long, env = "CHATGATE_SHUTDOWN_NOTICE", value_enum, default_value_t = ShutdownNotice::Disconnect)]
    pub shutdown_notice: ShutdownNotice,

    /// The tables chatgate owns, at start: `auto` brings them up to date (several nodes starting
    /// at once migrate once); `off` only checks, and refuses to start when they are behind (run
    /// `chatgate migrate` first). Unused with `--history off` or the demo directory.
    #[arg(long, env = "CHATGATE_MIGRATE", value_enum, default_value_t = MigrateMode::Auto)]
    pub migrate: MigrateMode,

    /// Message history: `on` stores every message (in PostgreSQL with a database, in memory with
    /// the demo directory) and sends `chat-history` after each join; `off` keeps nothing.
    #[arg(long, env = "CHATGATE_HISTORY", value_enum, default_value_t = Switch::On)]
    pub history: Switch,

    /// Messages in the `chat-history` sent after a join, and the default `load-history` limit.
    #[arg(long, env = "CHATGATE_HISTORY_PAGE", default_value_t = 50, value_parser = at_least_one)]
    pub history_page: usize,

    /// Largest `limit` a `load-history` is answered with (larger ones are capped).
    #[arg(long, env = "CHATGATE_HISTORY_MAX_PAGE", default_value_t = 200, value_parser = at_least_one)]
    pub history_max_page: usize,

    /// Messages per chat the in-memory history (demo directory) keeps.
    #[arg(long, env = "CHATGATE_HISTORY_MEMORY_PER_CHAT", default_value_t = 1000, value_parser = at_least_one)]
    pub history_memory_per_chat: usize,

    /// Messages waiting to be written to PostgreSQL; when it is full (a long database outage), new
    /// messages are still delivered but not stored.
    #[arg(long, env = "CHATGATE_HISTORY_QUEUE", default_value_t = 65_536, value_parser = at_least_one)]
    pub history_queue: usize,

    /// Most messages written with one INSERT (group commit).
    #[arg(long, env = "CHATGATE_HISTORY_BATCH", default_value_t = 1024, value_parser = at_least_one)]
    pub history_batch: usize,

    /// Milliseconds the history writer lets a batch gather more messages before writing it (one
    /// commit for all; only send-message acks and a join's history wait for it). 0: write at once.
    #[arg(long, env = "CHATGATE_HISTORY_LINGER_MS", default_value_t = 5)]
    pub history_linger_ms: u64,

    /// Milliseconds `mark-read`s gather before they are applied together (at most one database
    /// write per member and chat per interval; `messages-read` is told after it).
    #[arg(long, env = "CHATGATE_READ_FLUSH_MS", default_value_t = 200)]
    pub read_flush_ms: u64,

    /// `mark-read` events per second a socket may send on average (0: unlimited).
    #[arg(long, env = "CHATGATE_READ_RATE", default_value_t = 20.0)]
    pub read_rate: f64,

    /// `mark-read` events a socket may send in a burst.
    #[arg(long, env = "CHATGATE_READ_BURST", default_value_t = 40.0)]
    pub read_burst: f64,

    /// `react-message` events per second a socket may send on average (0: unlimited).
    #[arg(long, env = "CHATGATE_REACTION_RATE", default_value_t = 10.0)]
    pub reaction_rate: f64,

    /// `react-message` events a socket may send in a burst.
    #[arg(long, env = "CHATGATE_REACTION_BURST", default_value_t = 20.0)]
    pub reaction_burst: f64,

    /// Seconds after sending during which its author may edit a message (deleting has no limit).
    #[arg(long, env = "CHATGATE_EDIT_WINDOW_SECS", default_value_t = 900)]
    pub edit_window_secs: u64,

    /// Keep the text a message had before each edit or deletion in `chatgate_message_audit`
    /// (PostgreSQL only). Off: the old text is gone.
    #[arg(long, env = "CHATGATE_EDIT_AUDIT", value_enum, default_value_t = Switch::Off)]
    pub edit_audit: Switch,

    /// Cluster mode: a Redis URL (`redis://host:port`). Nodes sharing it serve the same chats, and
    /// speak the protocol of `@socket.io/redis-adapter` 8.x (classic mode).
    #[arg(long, env = "CHATGATE_CLUSTER")]
    pub cluster: Option<String>,

    /// Prefix of the cluster's Redis channels and keys (the Node adapter's `key` option).
    #[arg(long, env = "CHATGATE_CLUSTER_PREFIX", default_value = "socket.io")]
    pub cluster_prefix: String,

    /// Milliseconds after which a silent node counts as dead and its members leave the counts.
    #[arg(long, env = "CHATGATE_CLUSTER_LIVENESS_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(300..))]
    pub cluster_liveness_ms: u64,

    /// Milliseconds the cluster publisher lets broadcasts gather into one write to Redis (less CPU
    /// per message, that much more latency between nodes). 0: publish each at once.
    #[arg(long, env = "CHATGATE_CLUSTER_LINGER_MS", default_value_t = 1)]
    pub cluster_linger_ms: u64,

    /// Broadcasts waiting for the publisher. When it is full, a sender waits for room (flow
    /// control) instead of its broadcast being dropped for the other nodes.
    #[arg(long, env = "CHATGATE_CLUSTER_PUBLISH_QUEUE", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub cluster_publish_queue: u32,

    /// Longest a sender waits for room in a full publish queue, in milliseconds; also how long a
    /// write to Redis may hang before Redis counts as stalled (then nobody waits, and broadcasts
    /// are delivered here only, counted as dropped for the other nodes).
    #[arg(
        long,
        env = "CHATGATE_CLUSTER_PUBLISH_WAIT_MS",
        default_value_t = 2_000
    )]
    pub cluster_publish_wait_ms: u64,

    /// Broadcasts from other nodes waiting to be delivered here. When this node cannot keep up,
    /// the excess is dropped and counted, so memory stays bounded.
    #[arg(long, env = "CHATGATE_CLUSTER_RECEIVE_QUEUE", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub cluster_receive_queue: u32,

    /// Milliseconds a node's subscriber may fall behind what the cluster publishes before
    /// senders on every node wait for it (flow control across nodes; see docs/CLUSTER.md). 0: off.
    #[arg(long, env = "CHATGATE_CLUSTER_MAX_LAG_MS", default_value_t = 500)]
    pub cluster_max_lag_ms: u64,

    /// File sharing (docs/FILES.md): `on` serves `POST /files` and downloads, and lets messages
    /// carry attachments; `off` refuses attachments.
    #[arg(long, env = "CHATGATE_FILES", value_enum, default_value_t = Switch::On)]
    pub files: Switch,

    /// Where file uploads and downloads are served.
    #[arg(long, env = "CHATGATE_FILES_PATH", default_value = "/files")]
    pub files_path: String,

    /// Where files are stored: `dir:PATH` (a local directory, created if missing) or
    /// `s3://BUCKET` (any S3-compatible service; credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY). Nodes of a cluster need a store they share.
    #[arg(
        long,
        env = "CHATGATE_FILE_STORE",
        default_value = "dir:chatgate-files"
    )]
    pub file_store: crate::files::StoreConfig,

    /// The S3 endpoint for an S3-compatible service other than AWS (e.g. http://127.0.0.1:9000).
    #[arg(long, env = "CHATGATE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// The S3 region.
    #[arg(long, env = "CHATGATE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// The S3 access key id (better given in the environment than on the command line).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,

    /// The S3 secret access key (better given in the environment than on the command line).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Largest file accepted, in bytes (refused with 413 as soon as it is passed).
    #[arg(long, env = "CHATGATE_MAX_FILE_BYTES", default_value_t = 25 * 1024 * 1024, value_parser = at_least_one_u64)]
    pub max_file_bytes: u64,

    /// Bytes one user may upload in 24 hours (refused with 429 beyond).
    #[arg(long, env = "CHATGATE_FILE_QUOTA_BYTES", default_value_t = 250 * 1024 * 1024, value_parser = at_least_one_u64)]
    pub file_quota_bytes: u64,

    /// Most files one message may carry.
    #[arg(long, env = "CHATGATE_MAX_ATTACHMENTS", default_value_t = 10, value_parser = at_least_one)]
    pub max_attachments: usize,

    /// Milliseconds an upload may send nothing before it is cut off (408).
    #[arg(long, env = "CHATGATE_UPLOAD_IDLE_TIMEOUT_MS", default_value_t = 30_000, value_parser = at_least_one_u64)]
    pub upload_idle_timeout_ms: u64,

    /// Seconds an uploaded file may wait to be attached to a message before it is deleted.
    #[arg(long, env = "CHATGATE_UNATTACHED_FILE_GRACE_SECS", default_value_t = 86_400, value_parser = at_least_one_u64)]
    pub unattached_file_grace_secs: u64,

    /// Largest image accepted, in pixels (width x height); larger ones are refused without
    /// being decoded.
    #[arg(long, env = "CHATGATE_MAX_IMAGE_PIXELS", default_value_t = 50_000_000, value_parser = at_least_one_u64)]
    pub max_image_pixels: u64,

    /// Uploads in progress at once over all users (503 beyond); each holds at most two store
    /// parts in memory (two of 256 KiB for a directory, one of 5 MiB in flight and one filling for S3).
    #[arg(long, env = "CHATGATE_MAX_CONCURRENT_UPLOADS", default_value_t = 32, value_parser = at_least_one)]
    pub max_concurrent_uploads: usize,

    /// Offline notifications (docs/NOTIFICATIONS.md): tell a member who is not there that a
    /// message arrived, by a webhook (`--notify-webhook-url`) or, with the demo directory, a log
    /// line. With a database and no webhook there is nowhere to send them: off.
    #[arg(long, env = "CHATGATE_NOTIFY", value_enum, default_value_t = Switch::On)]
    pub notify: Switch,

    /// Seconds after a message before its recipient is told, if they have not read it and are not
    /// in the chat; later messages fold into the same notification.
    #[arg(long, env = "CHATGATE_NOTIFY_DELAY_SECS", default_value_t = 60)]
    pub notify_delay_secs: u64,

    /// Where notifications are POSTed (Standard Webhooks).
    #[arg(long, env = "CHATGATE_NOTIFY_WEBHOOK_URL")]
    pub notify_webhook_url: Option<String>,

    /// The webhooks' signing secret (`whsec_<base64>`, or any string); required with a URL.
    #[arg(long, env = "CHATGATE_NOTIFY_WEBHOOK_SECRET", hide_env_values = true)]
    pub notify_webhook_secret: Option<String>,

    /// Milliseconds a webhook call may take before it counts as failed.
    #[arg(long, env = "CHATGATE_NOTIFY_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = at_least_one_u64)]
    pub notify_webhook_timeout_ms: u64,

    /// `on` puts the last message's first 140 characters in the notification; off by default:
    /// tutees may be minors, and the host application can fetch what it may show.
    #[arg(long, env = "CHATGATE_NOTIFY_PREVIEW", value_enum, default_value_t = Switch::Off)]
    pub notify_preview: Switch,

    /// Seconds a member's socket counts as present in a chat after its last event there: an
    /// open tab idle longer does not stop notifications.
    #[arg(long, env = "CHATGATE_NOTIFY_IDLE_SECS", default_value_t = 120, value_parser = at_least_one_u64)]
    pub notify_idle_secs: u64,

    /// Milliseconds between the notification worker's looks at the outbox.
    #[arg(long, env = "CHATGATE_NOTIFY_POLL_MS", default_value_t = 1000, value_parser = at_least_one_u64)]
    pub notify_poll_ms: u64,

    /// Longest wait between two attempts of a failing webhook, in seconds.
    #[arg(long, env = "CHATGATE_NOTIFY_MAX_BACKOFF_SECS", default_value_t = 3600, value_parser = at_least_one_u64)]
    pub notify_max_backoff_secs: u64,

    /// Seconds after its first attempt a failing notification is given up (dead-lettered).
    #[arg(long, env = "CHATGATE_NOTIFY_GIVE_UP_SECS", default_value_t = 86_400, value_parser = at_least_one_u64)]
    pub notify_give_up_secs: u64,

    /// Connection state recovery (docs/RECOVERY.md): seconds after losing its connection a client
    /// may reconnect, on any node, and get its socket back with every event it missed; 0 turns it
    /// off. Needs message history. With it on, the five events it sends again carry an offset as
    /// a last argument.
    #[arg(long, env = "CHATGATE_RECOVERY_WINDOW_SECS", default_value_t = 120)]
    pub recovery_window_secs: u64,

    /// The most messages and changes a recovery sends again; a client that missed more
    /// reconnects normally and reads its history.
    #[arg(long, env = "CHATGATE_RECOVERY_MAX_REPLAY", default_value_t = 1000, value_parser = at_least_one_u64)]
    pub recovery_max_replay: u64,

    /// This node's number (0-15), part of every message id: nodes sharing a database must differ.
    #[arg(long, env = "CHATGATE_NODE_ID", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..16))]
    pub node_id: u8,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateMode {
    Auto,
    Off,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

/// A count that must be at least 1 (a queue, a page, a pool): refused at start with clap's error,
/// instead of being quietly raised somewhere inside.
fn at_least_one(text: &str) -> Result<usize, String> {
    at_least_one_u64(text).and_then(|n| usize::try_from(n).map_err(|e| e.to_string()))
}

/// A size or a time that must be at least 1.
fn at_least_one_u64(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl ServeArgs {
    /// Every flag at its default: what `chatgate` with no arguments runs with. The one place the
    /// defaults are written is the `#[arg]` attributes above; tests and examples that assemble
    /// parts of the gateway start from this.
    pub fn defaults() -> ServeArgs {
        Cli::parse_from(["chatgate"]).serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_below_one_are_refused_with_a_message() {
        for flag in ["--history-page", "--history-queue", "--outbox-capacity"] {
            let err = Cli::try_parse_from(["chatgate", flag, "0"]).expect_err(flag);
            assert!(err.to_string().contains("must be at least 1"), "{err}");
        }
        let err = Cli::try_parse_from(["chatgate", "--cluster-liveness-ms", "100"]).expect_err("");
        assert!(err.to_string().contains("300"), "{err}");
    }
}
