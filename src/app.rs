//! Assembles the gateway from its settings: directory, authentication, the chat namespace, the
//! Engine.IO endpoint and the demo page, and runs it until a shutdown signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::admin::Admin;
use crate::auth::{AuthMode, JwtVerifier};
use crate::chat::{Chat, ChatConfig};
use crate::cluster::{Cluster, ClusterConfig, ClusterError};
use crate::config::{AuthArg, MigrateMode, ServeArgs, ShutdownNotice, Switch};
use crate::demo::DemoPage;
use crate::directory::demo::DemoDirectory;
use crate::directory::postgres::{PostgresConfig, PostgresDirectory};
use crate::directory::{Directory, DirectoryError};
use crate::engine::{Engine, EngineConfig};
use crate::files::{Files, FilesConfig, StoreConfig};
use crate::history::{History, HistoryConfig};
use crate::http::OriginPolicy;
use crate::migrate::MigrateError;
use crate::rate::RateLimit;
use crate::server::{self, Router, ServerConfig};
use crate::socketio::{SocketIo, SocketIoConfig};

/// Why the gateway would not start; each says what to change.
#[derive(Debug)]
pub enum StartError {
    MissingJwtSecret,
    Directory(DirectoryError),
    Listen(std::net::SocketAddr, std::io::Error),
    /// The history writer's thread could not start.
    History(std::io::Error),
    Cluster(ClusterError),
    /// chatgate's tables could not be brought up to date, or are behind with `--migrate off`.
    Schema(MigrateError),
    Files(crate::files::StoreError),
    Notify(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::MissingJwtSecret => f.write_str(
                "JWT authentication needs a secret: set --jwt-secret (or CHATGATE_JWT_SECRET), \
                 or pass --auth trust to believe the userid clients send (development only)",
            ),
            StartError::Directory(e) => write!(f, "{e}"),
            StartError::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            StartError::History(e) => write!(f, "cannot start the history writer: {e}"),
            StartError::Cluster(e) => write!(f, "{e}"),
            StartError::Schema(e) => write!(f, "{e}"),
            StartError::Files(e) => write!(f, "{e}"),
            StartError::Notify(e) => write!(f, "offline notifications: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The assembled gateway.
pub struct Gateway {
    pub router: Router,
    /// `/health`, `/ready` and `/metrics` alone, for `--admin-listen` (otherwise they are also on
    /// the main router).
    pub admin_router: Router,
    /// Set at shutdown; `/ready` reports it.
    pub shutting_down: Arc<AtomicBool>,
    pub engine: Arc<Engine<SocketIo>>,
    pub history: Arc<History>,
    /// Connection state recovery's sessions, written out at shutdown.
    pub sessions: Option<Arc<crate::recovery::Sessions>>,
    pub auth: &'static str,
    pub demo: bool,
    /// What file sharing and offline notifications run with, for the start-up log.
    pub features: Vec<String>,
}

/// Which authentication the settings ask for (docs/PROTOCOL.md, "Authentication": `jwt` by
/// default with a database, `trust` with the demo directory; a database without a secret and
/// without `--auth trust` is an error, never a silent downgrade).
pub fn auth_mode(args: &ServeArgs) -> Result<AuthMode, StartError> {
    let jwt = |secret: &Option<String>| match secret {
        Some(s) if !s.is_empty() => Ok(AuthMode::Jwt(Box::new(JwtVerifier::new(s.as_bytes())))),
        _ => Err(StartError::MissingJwtSecret),
    };
    match (args.auth, &args.database_url) {
        (Some(AuthArg::Trust), _) => Ok(AuthMode::Trust),
        (Some(AuthArg::Jwt), _) | (None, Some(_)) => jwt(&args.jwt_secret),
        (None, None) if args.jwt_secret.is_some() => jwt(&args.jwt_secret),
        (None, None) => Ok(AuthMode::Trust),
    }
}

/// The directory the settings ask for.
pub fn directory(args: &ServeArgs) -> Result<Arc<dyn Directory>, StartError> {
    match &args.database_url {
        None => Ok(Arc::new(DemoDirectory::default())),
        Some(url) => {
            let config = PostgresConfig {
                url: url.clone(),
                pool_size: args.db_pool_size,
                connect_timeout: Duration::from_millis(args.db_connect_timeout_ms),
                query_timeout: Duration::from_millis(args.db_query_timeout_ms),
                event_query: args.event_query.clone(),
                user_query: args.user_query.clone(),
            };
            Ok(Arc::new(
                PostgresDirectory::new(&config).map_err(StartError::Directory)?,
            ))
        }
    }
}

/// The message history the settings ask for: in PostgreSQL with a database (its own pools, so
/// history reads and writes never take the connections joins need), in memory with the demo
/// directory, or none.
pub fn history(args: &ServeArgs) -> Result<Arc<History>, StartError> {
    let config = history_config(args);
    Ok(Arc::new(match (args.history, &args.database_url) {
        (Switch::Off, _) => History::off(config),
        (Switch::On, None) => History::memory(config),
        (Switch::On, Some(url)) => {
            let timeout = Duration::from_millis(args.db_connect_timeout_ms);
            let pool = |size| {
                crate::directory::postgres::pool(url, size, timeout).map_err(StartError::Directory)
            };
            History::postgres(config, pool(4)?, pool(1)?).map_err(StartError::History)?
        }
    }))
}

/// A pool of `size` connections of its own to the database, if there is one (each part that
/// writes has its own, so that none waits for another's connections).
fn database_pool(
    args: &ServeArgs,
    size: usize,
) -> Result<Option<deadpool_postgres::Pool>, StartError> {
    args.database_url
        .as_deref()
        .map(|url| {
            let timeout = Duration::from_millis(args.db_connect_timeout_ms);
            crate::directory::postgres::pool(url, size, timeout).map_err(StartError::Directory)
        })
        .transpose()
}

/// Whether offline notifications run, and so whether the history writer files messages in the
/// outbox (due this long after the first): on, with history, and somewhere to send them (a
/// webhook, or the demo's log).
pub fn notify_after(args: &ServeArgs) -> Option<Duration> {
    let somewhere = args.notify_webhook_url.is_some() || args.database_url.is_none();
    (args.notify == Switch::On && args.history == Switch::On && somewhere)
        .then(|| Duration::from_secs(args.notify_delay_secs))
}

/// The notification worker as the settings ask (see [`notify_after`]), started.
pub fn notifier(
    args: &ServeArgs,
    directory: Arc<dyn Directory>,
    history: Arc<History>,
) -> Result<Option<Arc<crate::notify::Notifier>>, StartError> {
    use crate::notify::{presence::Presence, Channel, Notifier, NotifyConfig};
    let Some(delay) = notify_after(args) else {
        return Ok(None);
    };
    let channel = match (&args.notify_webhook_url, &args.notify_webhook_secret) {
        (Some(url), Some(secret)) => Channel::Webhook(
            crate::notify::webhook::Webhook::new(
                url,
                secret,
                Duration::from_millis(args.notify_webhook_timeout_ms),
            )
            .map_err(StartError::Notify)?,
        ),
        (Some(_), None) => return Err(StartError::Notify(
            "--notify-webhook-url needs --notify-webhook-secret (CHATGATE_NOTIFY_WEBHOOK_SECRET): \
                 receivers check every webhook's signature"
                .into(),
        )),
        (None, _) => Channel::Log,
    };
    let idle = Duration::from_secs(args.notify_idle_secs);
    let presence = match &args.cluster {
        Some(url) => {
            Presence::redis(url, &args.cluster_prefix, idle).map_err(StartError::Notify)?
        }
        None => Presence::local(idle),
    };
    let pool = database_pool(args, 2)?;
    let config = NotifyConfig {
        delay,
        preview: args.notify_preview == Switch::On,
        poll: Duration::from_millis(args.notify_poll_ms),
        max_backoff: Duration::from_secs(args.notify_max_backoff_secs),
        give_up: Duration::from_secs(args.notify_give_up_secs),
        // Two webhook timeouts and a margin: a live worker is always done by then.
        claim: Duration::from_millis(args.notify_webhook_timeout_ms) * 2 + Duration::from_secs(5),
    };
    let notifier = Arc::new(Notifier::new(
        config, pool, channel, presence, directory, history,
    ));
    notifier.start();
    Ok(Some(notifier))
}

/// File sharing as the settings ask: off, or on with its store (metadata in the database if there
/// is one, in memory with the demo directory).
pub fn files(args: &ServeArgs) -> Result<Option<Arc<Files>>, StartError> {
    if args.files == Switch::Off {
        return Ok(None);
    }
    let mut store = args.file_store.clone();
    if let StoreConfig::S3 {
        endpoint,
        region,
        key_id,
        secret,
        ..
    } = &mut store
    {
        endpoint.clone_from(&args.s3_endpoint);
        region.clone_from(&args.s3_region);
        key_id.clone_from(&args.s3_access_key_id);
        secret.clone_from(&args.s3_secret_access_key);
    }
    let (store, part_size) = crate::files::open_store(&store).map_err(StartError::Files)?;
    let pool = database_pool(args, 4)?;
    let config = FilesConfig {
        path: args.files_path.clone(),
        max_bytes: args.max_file_bytes,
        quota_bytes: args.file_quota_bytes,
        max_attachments: args.max_attachments,
        idle_timeout: Duration::from_millis(args.upload_idle_timeout_ms),
        grace: Duration::from_secs(args.unattached_file_grace_secs),
        max_image_pixels: args.max_image_pixels,
        max_uploads: args.max_concurrent_uploads,
    };
    Ok(Some(Arc::new(Files::new(config, store, part_size, pool))))
}

pub fn history_config(args: &ServeArgs) -> HistoryConfig {
    HistoryConfig {
        page: args.history_page,
        max_page: args.history_max_page,
        memory_per_chat: args.history_memory_per_chat,
        queue: args.history_queue,
        batch: args.history_batch,
        linger: Duration::from_millis(args.history_linger_ms),
        query_timeout: Duration::from_millis(args.db_query_timeout_ms),
        node_id: args.node_id,
        read_flush: Duration::from_millis(args.read_flush_ms),
        notify_after: notify_after(args),
        log_changes: recovery_on(args),
    }
}

/// Whether connection state recovery runs: a window, and a history to replay from.
fn recovery_on(args: &ServeArgs) -> bool {
    args.recovery_window_secs > 0 && args.history == Switch::On
}

/// Connection state recovery's sessions (PostgreSQL with a database, memory otherwise), started.
fn recovery(
    args: &ServeArgs,
    history: &Arc<History>,
    cluster: bool,
) -> Result<Option<crate::chat::recovery::Recovery>, StartError> {
    if !recovery_on(args) {
        return Ok(None);
    }
    let window = Duration::from_secs(args.recovery_window_secs);
    let sessions = match database_pool(args, 2)? {
        Some(pool) => crate::recovery::Sessions::postgres(pool, window),
        None => crate::recovery::Sessions::memory(window),
    };
    let history = history.clone();
    // The change log is kept for twice the window and a minute: a client that disconnected a
    // window ago may have missed what came shortly before.
    let keep = window * 2 + Duration::from_secs(60);
    sessions.start(move || {
        let history = history.clone();
        Box::pin(async move {
            if let Err(e) = history.prune_changes(keep).await {
                tracing::warn!(error = %e, "recovery: change log not pruned");
            }
        })
    });
    Ok(Some(crate::chat::recovery::Recovery {
        sessions,
        max_replay: args.recovery_max_replay as usize,
        // Other nodes' writers gather for `--history-linger-ms`; give them that and a margin.
        foreign_grace: cluster.then(|| Duration::from_millis(args.history_linger_ms * 2 + 50)),
    }))
}

pub fn engine_config(args: &ServeArgs) -> EngineConfig {
    let mut path = args.path.clone();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if !path.ends_with('/') {
        path.push('/');
    }
    EngineConfig {
        path,
        ping_interval: Duration::from_millis(args.ping_interval_ms),
        ping_timeout: Duration::from_millis(args.ping_timeout_ms),
        max_payload: args.max_payload,
        outbox_capacity: args.outbox_capacity,
        slow_consumer_timeout: Duration::from_millis(args.slow_consumer_ms),
        origins: OriginPolicy::new(args.cors_origins.iter().cloned()),
        max_sessions: args.max_connections,
        max_polling_sessions: args.max_polling_sessions,
        handshake_rate: RateLimit {
            per_second: args.handshake_rate,
            burst: args.handshake_burst,
        },
        // Not flags: the reference server's upgrade timeout, and a read buffer that keeps idle
        // connections small (it grows for a large frame).
        upgrade_timeout: Duration::from_secs(10),
        websocket_read_buffer: 512,
        allow_polling: true,
        allow_websocket: true,
    }
}

pub fn server_config(args: &ServeArgs) -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_millis(args.header_timeout_ms),
    }
}

/// Builds the gateway with the directory given (tests pass their own).
pub fn assemble(args: &ServeArgs, directory: Arc<dyn Directory>) -> Result<Gateway, StartError> {
    let auth = auth_mode(args)?;
    let auth_name = auth.name();
    let shutting_down = Arc::new(AtomicBool::new(false));
    let directory_for_admin = directory.clone();
    let history = history(args)?;
    let cluster = match &args.cluster {
        None => None,
        Some(url) => Some(
            Cluster::new(ClusterConfig {
                url: url.clone(),
                prefix: args.cluster_prefix.clone(),
                liveness: Duration::from_millis(args.cluster_liveness_ms),
                linger: Duration::from_millis(args.cluster_linger_ms),
                publish_wait: Duration::from_millis(args.cluster_publish_wait_ms),
                receive_queue: args.cluster_receive_queue as usize,
                max_lag: Duration::from_millis(args.cluster_max_lag_ms),
            })
            .map_err(StartError::Cluster)?,
        ),
    };
    let files = files(args)?;
    let notify = notifier(args, directory.clone(), history.clone())?;
    let mut features = vec![
        match &files {
            Some(f) => format!(
                "file sharing: {} under {} (docs/FILES.md)",
                args.file_store, f.config.path
            ),
            None => "file sharing: off".to_owned(),
        },
        match &notify {
            Some(n) => format!(
                "offline notifications: {} after {} s unread (docs/NOTIFICATIONS.md)",
                n.channel_name(),
                args.notify_delay_secs
            ),
            None if args.notify == Switch::On && args.database_url.is_some() => {
                "offline notifications: off (no --notify-webhook-url)".to_owned()
            }
            None => "offline notifications: off".to_owned(),
        },
    ];
    let recovery = recovery(args, &history, cluster.is_some())?;
    let sessions = recovery.as_ref().map(|r| r.sessions.clone());
    features.push(match &recovery {
        Some(_) => format!(
            "connection state recovery: {} s window (docs/RECOVERY.md)",
            args.recovery_window_secs
        ),
        None if args.recovery_window_secs > 0 => {
            "connection state recovery: off (needs --history on)".to_owned()
        }
        None => "connection state recovery: off".to_owned(),
    });
    let chat = Chat::new(
        directory.clone(),
        history.clone(),
        cluster.clone(),
        files.clone(),
        notify.clone(),
        recovery,
        auth.clone(),
        ChatConfig {
            max_message_chars: args.max_message_chars,
            message_rate: RateLimit {
                per_second: args.message_rate,
                burst: args.message_burst,
            },
            typing_rate: RateLimit {
                per_second: args.typing_rate,
                burst: args.typing_burst,
            },
            read_rate: RateLimit {
                per_second: args.read_rate,
                burst: args.read_burst,
            },
            reaction_rate: RateLimit {
                per_second: args.reaction_rate,
                burst: args.reaction_burst,
            },
            edit_window: Duration::from_secs(args.edit_window_secs),
            edit_audit: args.edit_audit == Switch::On,
        },
    );
    let config = engine_config(args);
    let limits = chatgate_codec::Limits {
        max_payload: args.max_payload,
        ..chatgate_codec::Limits::DEFAULT
    };
    let socketio = SocketIo::new(SocketIoConfig {
        limits,
        ..SocketIoConfig::default()
    })
    .with_relay(
        cluster
            .is_some()
            .then_some(args.cluster_publish_queue as usize),
    )
    .namespace("/", chat);
    if let (Some(cluster), Some(nsp)) = (&cluster, socketio.get("/")) {
        cluster.start(nsp.clone());
    }
    let path = config.path.clone();
    let engine = Engine::new(config, socketio);
    let admin = Arc::new(Admin::new(
        directory_for_admin,
        history.clone(),
        cluster,
        shutting_down.clone(),
        engine.clone(),
        files.clone(),
        notify,
    ));
    let admin_router = Router::new()
        .route("/health", admin.clone())
        .route("/ready", admin.clone())
        .route("/metrics", admin.clone());
    let mut router = Router::new().route(path, engine.clone());
    if args.admin_listen.is_none() {
        router = router
            .route("/health", admin.clone())
            .route("/ready", admin.clone())
            .route("/metrics", admin);
    }
    if let Some(files) = files {
        files.start_collector();
        let endpoint = crate::files::endpoint::FilesEndpoint::new(
            files.clone(),
            directory,
            auth,
            OriginPolicy::new(args.cors_origins.iter().cloned()),
        );
        router = router.route(files.config.path.clone(), Arc::new(endpoint));
    }
    let router = router.route("/", Arc::new(DemoPage));
    Ok(Gateway {
        router,
        admin_router,
        shutting_down,
        engine,
        history,
        sessions,
        auth: auth_name,
        demo: args.database_url.is_none(),
        features,
    })
}

/// Runs the gateway until SIGINT or SIGTERM, then closes every session and waits (at most the grace
/// period) for their queues to drain.
pub async fn run(args: ServeArgs) -> Result<(), StartError> {
    let shutdown = shutdown_signal();
    let directory = directory(&args)?;
    let gateway = assemble(&args, directory.clone())?;
    if args.database_url.is_some() {
        tokio::spawn(watch_database(directory));
    }
    prepare_schema(&args, gateway.history.clone()).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| StartError::Listen(args.listen, e))?;
    let local = listener.local_addr().unwrap_or(args.listen);
    // Both addresses are bound before the first log line, so whoever waits for the log can connect.
    let admin_listener = match args.admin_listen {
        Some(admin) => {
            let l = tokio::net::TcpListener::bind(admin)
                .await
                .map_err(|e| StartError::Listen(admin, e))?;
            tracing::info!(admin = %admin, "operator routes (/health, /ready, /metrics) on a separate address");
            Some(l)
        }
        None => None,
    };
    tracing::info!(listen = %local, auth = gateway.auth, "chatgate listening");
    for line in &gateway.features {
        tracing::info!("{line}");
    }
    if gateway.demo {
        for line in DemoDirectory::describe() {
            tracing::info!("{line}");
        }
        let host = if local.ip().is_unspecified() {
            format!("127.0.0.1:{}", local.port())
        } else {
            local.to_string()
        };
        tracing::info!(
            "demo page: http://{host}/ (open it in two tabs, join event 101 as tutor and as tutee)"
        );
        tracing::info!("clients connect with io('http://{host}')");
    }
    let server_config = server_config(&args);
    if let Some(admin_listener) = admin_listener {
        let router = gateway.admin_router.clone();
        let config = server_config.clone();
        tokio::spawn(server::serve(
            admin_listener,
            router,
            config,
            std::future::pending(),
        ));
    }
    // The listener keeps serving through the grace period: a long-polling client fetches its
    // goodbye (and what was queued before it) with a request of its own, often on a new TCP
    // connection. New sessions are refused meanwhile (503, see `Engine::shutdown`).
    let (stop_listening, listening_stopped) = tokio::sync::oneshot::channel::<()>();
    let listening = tokio::spawn(server::serve(
        listener,
        gateway.router.clone(),
        server_config,
        async move {
            let _ = listening_stopped.await;
        },
    ));
    shutdown.await;
    gateway.shutting_down.store(true, Ordering::Release);
    let sessions = gateway.engine.session_count();
    gateway
        .engine
        .shutdown(args.shutdown_notice == ShutdownNotice::Disconnect);
    // Logged once new sessions are refused, so whoever waits for this line can rely on it.
    tracing::info!(sessions, "shutting down");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.shutdown_grace_secs);
    while gateway.engine.sessions_owed() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_listening.send(());
    let _ = listening.await;
    if let Some(sessions) = &gateway.sessions {
        sessions.close().await;
    }
    // Every message delivered so far is queued by now (sessions are closed): store it, within
    // what is left of the grace period.
    let unstored = gateway.history.close(deadline).await;
    if unstored > 0 {
        tracing::error!(unstored, "messages delivered but not stored at shutdown");
    }
    tracing::info!(left = gateway.engine.session_count(), "stopped");
    Ok(())
}

/// At start, checks the database until it answers, with exponential backoff (0.5 s to 30 s) and a
/// log line per attempt. The gateway serves meanwhile: `/health` answers, `/ready` says 503, joins
/// get "Failed to join chat", and the pool connects by itself once the database is there.
async fn watch_database(directory: Arc<dyn Directory>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if directory.ready().await {
            tracing::info!("database reachable");
            return;
        }
        tracing::warn!(
            retry_in_ms = backoff.as_millis() as u64,
            "database unreachable; retrying"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Brings chatgate's tables up to date (`--migrate auto`) or checks them (`off`) before the
/// gateway serves. A database that answers settles it now: a problem an operator must fix (no
/// CREATE rights, a schema behind with `off`) stops the start with a message that says what to do.
/// A database that does not answer yet is retried in the background; until the schema is ready,
/// `/ready` says 503 and joins get "Failed to join chat", never a history error.
pub async fn prepare_schema(args: &ServeArgs, history: Arc<History>) -> Result<(), StartError> {
    let Some(url) = args.database_url.clone() else {
        return Ok(());
    };
    if !history.needs_schema() {
        return Ok(());
    }
    let timeout = Duration::from_millis(args.db_connect_timeout_ms);
    match schema_step(&url, args.migrate, timeout).await {
        Ok(()) => {
            history.mark_schema_ready();
            Ok(())
        }
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "cannot prepare the schema yet; retrying");
            tokio::spawn(watch_schema(url, args.migrate, timeout, history));
            Ok(())
        }
        Err(e) => Err(StartError::Schema(e)),
    }
}

async fn schema_step(url: &str, mode: MigrateMode, timeout: Duration) -> Result<(), MigrateError> {
    let mut client = crate::migrate::connect(url, timeout).await?;
    match mode {
        MigrateMode::Auto => {
            let applied = crate::migrate::apply(&mut client).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "schema migrated");
            }
        }
        MigrateMode::Off => {
            crate::migrate::check(&client).await?;
        }
    }
    Ok(())
}

/// Retries the schema step until it succeeds (backoff 0.5 s to 5 s; a problem an operator must fix
/// is logged as an error and re-checked, so running `chatgate migrate` meanwhile is enough).
async fn watch_schema(url: String, mode: MigrateMode, timeout: Duration, history: Arc<History>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        tokio::time::sleep(backoff).await;
        match schema_step(&url, mode, timeout).await {
            Ok(()) => {
                tracing::info!("schema ready");
                history.mark_schema_ready();
                return;
            }
            Err(e) if e.is_transient() => tracing::debug!(error = %e, "schema not ready yet"),
            Err(e) => tracing::error!(error = %e, "schema not usable; joins are refused"),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives right after the start-up log lines (a supervisor, a test)
/// must begin a graceful shutdown, not kill the process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_uses_the_flags_defaults_and_nothing_else() {
        let args = ServeArgs::defaults();
        let history = history_config(&args);
        assert_eq!(history.query_timeout.as_millis(), 3000);
        assert_eq!(history.page, 50);
        let engine = engine_config(&args);
        assert_eq!(engine.ping_interval.as_millis(), 25_000);
        assert_eq!(engine.max_payload, 1_000_000);
        assert_eq!(server_config(&args).header_timeout.as_secs(), 10);
    }
}
