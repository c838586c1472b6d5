//! Cluster mode (`--cluster redis://...`): several chatgate nodes, and Node.js socket.io servers
//! with `@socket.io/redis-adapter` 8.x, serving one set of chats through Redis pub/sub.
//!
//! - `wire.rs`: the adapter's message format (msgpack, as `notepack.io` writes it).
//! - `counts.rs`: cluster-wide member counts, one Redis hash per room with a count per node and a
//!   liveness key per node, updated by a Lua script.
//! - here: the link to Redis: one multiplexed connection (publishes, pipelined, and the counts'
//!   scripts) and one subscriber connection per node, both reconnecting by themselves.
//!
//! A broadcast is delivered to the local members of its room by the node that makes it (the frame
//! built once), and published once to Redis; other nodes deliver it to their own members. Pub/sub is
//! at-most-once: what is published while Redis is away is lost (see docs/CLUSTER.md).

pub mod counts;
pub mod lag;
mod requests;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chatgate_codec::socket::{Kind, Packet};
use chatgate_codec::ByteStr;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::engine::Outgoing;
use crate::socketio::relay::{DropObserver, Relay, Relayed};
use crate::socketio::{packet_item, NamespaceEntry};

/// Cluster settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Channel and key prefix, `socket.io` as in the Node adapter.
    pub prefix: String,
    /// A node whose liveness key is older than this is taken for dead (its members leave the
    /// counts).
    pub liveness: Duration,
    /// How long the publisher lets broadcasts gather before it writes them (0: at once).
    pub linger: Duration,
    /// Longest a sender waits for room; a write to Redis hanging longer means Redis is stalled.
    pub publish_wait: Duration,
    /// Broadcasts from other nodes waiting for delivery here (dropped and counted beyond it).
    pub receive_queue: usize,
    /// While some node's subscriber is further behind than this, senders wait (0: never).
    pub max_lag: Duration,
}

/// Why cluster mode could not start.
#[derive(Debug)]
pub struct ClusterError(pub String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cluster: {}", self.0)
    }
}

impl std::error::Error for ClusterError {}

/// Why a broadcast did not reach (all of) its members on other nodes. Pub/sub is at-most-once;
/// these are the ways it loses something, each counted and logged (once per 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Redis was unreachable: what this node published meanwhile is lost for the others.
    RedisDown,
    /// A write to Redis hung longer than `--cluster-publish-wait-ms` (a paused or stuck Redis):
    /// senders no longer wait, their broadcasts reach this node's members only.
    RedisStalled,
    /// The publish queue stayed full for `--cluster-publish-wait-ms` while Redis was answering:
    /// this node publishes more than Redis takes.
    PublishQueueFull,
    /// Broadcasts from other nodes arrived faster than this node delivers them.
    ReceiveQueueFull,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::RedisDown,
        DropReason::RedisStalled,
        DropReason::PublishQueueFull,
        DropReason::ReceiveQueueFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::RedisDown => "redis_down",
            DropReason::RedisStalled => "redis_stalled",
            DropReason::PublishQueueFull => "publish_queue_full",
            DropReason::ReceiveQueueFull => "receive_queue_full",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            DropReason::RedisDown => "Redis is unreachable",
            DropReason::RedisStalled => "Redis stopped answering writes",
            DropReason::PublishQueueFull => "this node publishes more than Redis takes",
            DropReason::ReceiveQueueFull => "this node cannot deliver what other nodes send",
        }
    }
}

/// Figures for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub published: AtomicU64,
    /// Broadcasts lost for other nodes (or, for `ReceiveQueueFull`, for this one), by
    /// `DropReason` (index in `DropReason::ALL`).
    dropped: [AtomicU64; 4],
    warned: [std::sync::Mutex<crate::rate::Bucket>; 4],
    pub received: AtomicU64,
    /// Broadcasts for rooms with no member here, dropped before decoding.
    pub skipped: AtomicU64,
    pub malformed: AtomicU64,
    /// Senders waiting for room in the publish queue right now.
    pub waiting: AtomicU64,
}

impl ClusterStats {
    /// Counts `n` broadcasts dropped for `reason`, with a warning at most every 10 s per reason.
    pub fn dropped(&self, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        let i = reason as usize;
        let total = self.dropped[i].fetch_add(n, Ordering::Relaxed) + n;
        let warn = self.warned[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(
                crate::rate::RateLimit::WARNINGS,
                tokio::time::Instant::now(),
            );
        if warn {
            tracing::warn!(
                reason = reason.as_str(),
                dropped_so_far = total,
                "cluster: broadcasts dropped: {}",
                reason.explain()
            );
        }
    }

    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }
}

pub struct Cluster {
    uid: String,
    config: ClusterConfig,
    client: redis::Client,
    /// This node's own messages (answers to other nodes' requests); broadcasts come from the
    /// namespace's relay (`socketio::relay`).
    outgoing: mpsc::Sender<Publish>,
    incoming: std::sync::Mutex<Option<mpsc::Receiver<Publish>>>,
    relay: OnceLock<Arc<Relay>>,
    subscribed: AtomicBool,
    publishing: AtomicBool,
    /// When the write to Redis under way began (ms since `epoch`, 0: none under way): a write
    /// hanging longer than `publish_wait` means Redis is stalled.
    writing_since: AtomicU64,
    epoch: std::time::Instant,
    pub stats: ClusterStats,
    pub counts: counts::Counts,
    pub lag: lag::Lag,
    namespace: OnceLock<Arc<NamespaceEntry>>,
}

/// A channel and the message to publish on it.
type Publish = (String, Vec<u8>);

/// Answers to other nodes' requests waiting for the publisher (broadcasts wait in the relay).
const ANSWER_QUEUE: usize = 4096;

/// Counts a broadcast the relay had no room for, with the reason only the cluster knows.
struct RelayDrops(std::sync::Weak<Cluster>);

impl DropObserver for RelayDrops {
    fn dropped(&self) {
        if let Some(cluster) = self.0.upgrade() {
            cluster.stats.dropped(cluster.drop_reason(), 1);
        }
    }
}

impl Cluster {
    /// Checks the URL; connects nothing yet ([`Cluster::start`] does, and keeps retrying).
    pub fn new(config: ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| ClusterError(format!("invalid Redis URL: {e}")))?;
        let uid = node_uid();
        let (outgoing, incoming) = mpsc::channel(ANSWER_QUEUE);
        Ok(Arc::new(Cluster {
            counts: counts::Counts::new(&config, &uid),
            lag: lag::Lag::new(config.max_lag),
            uid,
            config,
            client,
            outgoing,
            incoming: std::sync::Mutex::new(Some(incoming)),
            relay: OnceLock::new(),
            subscribed: AtomicBool::new(false),
            publishing: AtomicBool::new(false),
            writing_since: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            stats: ClusterStats::default(),
            namespace: OnceLock::new(),
        }))
    }

    /// This node's id in the cluster (6 characters, as the Node adapter's).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// Whether both Redis connections are up.
    pub fn link_up(&self) -> bool {
        self.subscribed.load(Ordering::Acquire) && self.publishing.load(Ordering::Acquire)
    }

    /// Starts the publisher, the subscriber and the liveness beat for `namespace` (the chat's),
    /// whose relay (`SocketIo::with_relay`) carries its broadcasts.
    pub fn start(self: &Arc<Self>, namespace: Arc<NamespaceEntry>) {
        let Some(relay) = namespace.relay.clone() else {
            tracing::error!("cluster: the namespace has no relay; cluster mode is off");
            return;
        };
        if self.namespace.set(namespace).is_err() {
            return;
        }
        relay.observe_drops(Box::new(RelayDrops(Arc::downgrade(self))));
        let broadcasts = relay.take_receiver();
        let _ = self.relay.set(relay);
        let incoming = self
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // The Redis connections get a thread and runtime of their own: on a busy server's runtime
        // the publisher would wait behind every connection's task at each round trip, and fall
        // behind what the chat broadcasts.
        let cluster = self.clone();
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("chatgate-cluster".into())
                    .spawn(move || {
                        runtime.block_on(async move {
                            if let (Some(incoming), Some(broadcasts)) = (incoming, broadcasts) {
                                tokio::spawn(cluster.clone().publisher(incoming, broadcasts));
                            }
                            tokio::spawn(cluster.clone().subscriber());
                            cluster.counts_beat().await;
                        })
                    })
            });
        if let Err(e) = started {
            tracing::error!(error = %e, "cluster: cannot start the Redis thread; cluster mode is off");
        }
    }

    // --- out --------------------------------------------------------------------------------------

    /// The wire form of a broadcast taken from the relay: the frame built for the local
    /// members, its event array read in place, written as the adapter's msgpack.
    fn encode(&self, nsp: &str, relayed: &Relayed) -> Option<Publish> {
        let data = event_data(&relayed.item)?;
        let rooms = [relayed.room.to_string()];
        let except: Vec<String> = relayed.except.iter().map(|e| e.to_string()).collect();
        match wire::encode_broadcast(&self.uid, nsp, &data, &rooms, &except) {
            Ok(bytes) => Some((
                wire::broadcast_channel(&self.config.prefix, nsp, &rooms),
                bytes,
            )),
            Err(e) => {
                tracing::debug!(error = %e, "cluster: broadcast not encodable");
                None
            }
        }
    }

    /// Hands an answer to the publisher; counts it as dropped, with the reason, if the queue is
    /// full.
    fn enqueue(&self, channel: String, bytes: Vec<u8>) {
        if self.outgoing.try_send((channel, bytes)).is_err() {
            self.stats.dropped(self.drop_reason(), 1);
        }
    }

    /// Why a full queue is full now.
    fn drop_reason(&self) -> DropReason {
        if !self.link_up() {
            DropReason::RedisDown
        } else if self.stalled() {
            DropReason::RedisStalled
        } else {
            DropReason::PublishQueueFull
        }
    }

    /// Broadcasts waiting for the publisher now.
    pub fn publish_queue_len(&self) -> usize {
        self.relay.get().map_or(0, |r| r.len())
    }

    /// Whether the write to Redis under way has hung longer than `publish_wait`.
    fn stalled(&self) -> bool {
        let since = self.writing_since.load(Ordering::Acquire);
        since != 0
            && self.now_ms().saturating_sub(since) > self.config.publish_wait.as_millis() as u64
    }

    /// Milliseconds since this node's cluster started (never 0, which means "no write").
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Flow control, while Redis is up and answering: when this node's publish queue is full, or
    /// some node's subscriber lags further behind than `--cluster-max-lag-ms` (`lag.rs`), a wait
    /// (at most `--cluster-publish-wait-ms`) until that is over. A sender awaits it before its
    /// message, so overload slows senders instead of their broadcasts being dropped, or arriving
    /// seconds late, on the other nodes. `None` when there is no reason to wait, or when Redis is
    /// away or stalled: then nobody waits (the local chat goes on; pub/sub is at-most-once, and a
    /// drop is counted by reason).
    pub fn wait_for_room(
        self: &Arc<Self>,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        let relay = self.relay.get()?;
        let full = relay.is_full();
        if !(full || self.lag.lagging()) || !self.link_up() || self.stalled() {
            return None;
        }
        let cluster = self.clone();
        let relay = relay.clone();
        Some(Box::pin(async move {
            cluster.stats.waiting.fetch_add(1, Ordering::Relaxed);
            let room = async {
                if full {
                    relay.room().await;
                }
                cluster.lag.caught_up().await;
            };
            let _ = tokio::time::timeout(cluster.config.publish_wait, room).await;
            cluster.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        }))
    }

    /// The probe's round trip (see `lag.rs`): publishes this node's probe, writes its lag and
    /// reads everyone's.
    async fn probe(&self, conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
        let key = format!("{}-lag", self.config.prefix);
        let now = lag::wall_ms();
        let (entries,): (std::collections::HashMap<String, String>,) = redis::pipe()
            .publish(self.probe_channel(), now.to_string())
            .ignore()
            .hset(&key, &self.uid, self.lag.entry(now))
            .ignore()
            .hgetall(&key)
            .query_async(conn)
            .await?;
        let gone = self.lag.update(now, &entries);
        if !gone.is_empty() {
            redis::cmd("HDEL")
                .arg(&key)
                .arg(&gone)
                .query_async::<()>(conn)
                .await?;
        }
        Ok(())
    }

    /// The channel only this node subscribes to, for its lag probes.
    fn probe_channel(&self) -> String {
        format!("{}-probe#{}", self.config.prefix, self.uid)
    }

    async fn publisher(
        self: Arc<Self>,
        mut queue: mpsc::Receiver<Publish>,
        mut broadcasts: mpsc::Receiver<Relayed>,
    ) {
        let nsp = self.nsp_name();
        let mut batch: Vec<Publish> = Vec::new();
        let mut taken: Vec<Relayed> = Vec::new();
        let mut backoff = Duration::from_millis(100);
        // An idle connection learns that Redis went away only when used: ping it on the beat.
        let mut ping = tokio::time::interval(self.config.liveness / 3);
        let mut probe = tokio::time::interval(lag::PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut conn = match self.client.get_multiplexed_async_connection().await {
                Ok(c) => {
                    backoff = Duration::from_millis(100);
                    self.counts.use_connection(c.clone());
                    self.publishing.store(true, Ordering::Release);
                    tracing::info!("cluster: publisher connected");
                    c
                }
                Err(e) => {
                    self.publishing.store(false, Ordering::Release);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cluster: Redis unreachable");
                    // At-most-once: what queued up meanwhile is dropped, not delivered late.
                    let stale = batch.len() as u64 + drain(&mut queue) + drain(&mut broadcasts);
                    batch.clear();
                    self.stats.dropped(DropReason::RedisDown, stale);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            loop {
                if batch.is_empty() {
                    tokio::select! {
                        n = broadcasts.recv_many(&mut taken, 256) => {
                            if n == 0 {
                                return;
                            }
                            // Let more broadcasts gather (one write and one reply for all of them
                            // instead of a round of system calls each): at a chat's pace most
                            // pipelines would otherwise carry a single message.
                            if taken.len() < 256 && !self.config.linger.is_zero() {
                                tokio::time::sleep(self.config.linger).await;
                            }
                            while taken.len() < 256 {
                                match broadcasts.try_recv() {
                                    Ok(r) => taken.push(r),
                                    Err(_) => break,
                                }
                            }
                            batch.extend(taken.drain(..).filter_map(|r| self.encode(&nsp, &r)));
                            if batch.is_empty() {
                                continue;
                            }
                        }
                        n = queue.recv_many(&mut batch, 256) => {
                            if n == 0 {
                                return;
                            }
                        }
                        () = self.counts.reconnect.notified() => {
                            self.publishing.store(false, Ordering::Release);
                            break;
                        }
                        _ = probe.tick(), if !self.config.max_lag.is_zero() => {
                            if let Err(e) = self.probe(&mut conn).await {
                                self.publishing.store(false, Ordering::Release);
                                tracing::warn!(error = %e, "cluster: lag probe failed; reconnecting");
                                break;
                            }
                            continue;
                        }
                        _ = ping.tick() => {
                            if redis::cmd("PING").query_async::<()>(&mut conn).await.is_err() {
                                self.publishing.store(false, Ordering::Release);
                                break;
                            }
                            continue;
                        }
                    }
                }
                let mut pipe = redis::pipe();
                for (channel, bytes) in &batch {
                    pipe.publish(channel, bytes.as_slice()).ignore();
                }
                self.writing_since.store(self.now_ms(), Ordering::Release);
                let written = pipe.query_async::<()>(&mut conn).await;
                self.writing_since.store(0, Ordering::Release);
                match written {
                    Ok(()) => {
                        self.stats
                            .published
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        batch.clear();
                    }
                    Err(e) => {
                        // The batch is kept for the new connection (dropped if there is none).
                        self.publishing.store(false, Ordering::Release);
                        tracing::warn!(error = %e, "cluster: publish failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    // --- in ---------------------------------------------------------------------------------------

    async fn subscriber(self: Arc<Self>) {
        let Some(namespace) = self.namespace.get().cloned() else {
            return;
        };
        let nsp = namespace.name.to_string();
        let (deliveries, queued) = mpsc::channel(self.config.receive_queue);
        tokio::spawn(self.clone().deliverer(namespace.clone(), queued));
        let pattern = format!("{}#{}#*", self.config.prefix, nsp);
        let requests = format!("{}-request#{}#", self.config.prefix, nsp);
        let probes = self.probe_channel();
        let mut backoff = Duration::from_millis(100);
        loop {
            let pubsub = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.psubscribe(&pattern).await?;
                // One subscription of the request channel per node: Node peers count its
                // subscribers to know how many answers to wait for.
                pubsub.subscribe(&requests).await?;
                pubsub.subscribe(&probes).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let mut pubsub = match pubsub.await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cluster: cannot subscribe");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            self.subscribed.store(true, Ordering::Release);
            tracing::info!(pattern, "cluster: subscribed");
            // Redis may have restarted empty: put this node's members back into the counts.
            self.counts.resync(&namespace).await;
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let channel = msg.get_channel_name();
                if channel == probes {
                    self.lag.probe_received(msg.get_payload_bytes());
                } else if channel == requests {
                    requests::handle(&self, &namespace, msg.get_payload_bytes());
                } else if self.wanted(&namespace, &nsp, channel) {
                    // Handed to the delivery task through a bounded queue: this loop only
                    // copies, so it keeps up with what Redis sends and the client library's
                    // own buffer stays small; a node that cannot deliver as fast drops (and
                    // counts) the excess instead of holding an ever-growing backlog.
                    if deliveries
                        .try_send(msg.get_payload_bytes().to_vec())
                        .is_err()
                    {
                        self.stats.dropped(DropReason::ReceiveQueueFull, 1);
                    }
                }
            }
            self.subscribed.store(false, Ordering::Release);
            // Redis went away: the publisher's connection is as dead as this one.
            self.publishing.store(false, Ordering::Release);
            self.counts.reconnect.notify_one();
            tracing::warn!("cluster: subscription lost; reconnecting");
        }
    }

    /// Whether a broadcast on `channel` may concern members here. Most broadcasts are for rooms
    /// with no member here: those are skipped from the channel name alone, before any copy.
    fn wanted(&self, namespace: &NamespaceEntry, nsp: &str, channel: &str) -> bool {
        let Some(room) = wire::channel_room(channel, &self.config.prefix, nsp) else {
            return false;
        };
        if !room.is_empty() && namespace.rooms.count(room) == 0 {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Delivers what the subscriber queued, in order.
    async fn deliverer(
        self: Arc<Self>,
        namespace: Arc<NamespaceEntry>,
        mut queued: mpsc::Receiver<Vec<u8>>,
    ) {
        let nsp = namespace.name.to_string();
        while let Some(payload) = queued.recv().await {
            self.receive(&namespace, &nsp, &payload);
        }
    }

    /// Delivers a broadcast from another node to the local members of its rooms.
    fn receive(&self, namespace: &NamespaceEntry, nsp: &str, payload: &[u8]) {
        let message = match wire::decode_broadcast(payload) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "cluster: unreadable broadcast");
                return;
            }
        };
        if message.uid == self.uid || message.nsp != nsp {
            return;
        }
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let kind = if message.attachments.is_empty() {
            Kind::Event
        } else {
            Kind::BinaryEvent
        };
        let mut packet = Packet::new(kind, ByteStr::from(message.nsp)).with_data(message.data);
        packet.attachments = message.attachments;
        let item = packet_item(&packet);
        for socket in namespace.select(&message.rooms, &message.except) {
            let _ = socket.send(item.clone());
        }
    }

    /// Publishes an answer to a request on the common response channel.
    fn respond(&self, bytes: Vec<u8>) {
        let channel = format!("{}-response#{}#", self.config.prefix, self.nsp_name());
        self.enqueue(channel, bytes);
    }

    fn respond_json(&self, answer: serde_json::Value) {
        self.respond(answer.to_string().into_bytes());
    }

    fn malformed(&self, what: &str) {
        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(what, "cluster: unreadable request");
    }

    fn nsp_name(&self) -> String {
        self.namespace
            .get()
            .map_or_else(|| "/".to_owned(), |n| n.name.to_string())
    }

    async fn counts_beat(self: Arc<Self>) {
        let period = self.config.liveness / 3;
        loop {
            if let Some(namespace) = self.namespace.get() {
                self.counts.beat(namespace).await;
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// Empties the queue; returns how many items it held.
fn drain<T>(queue: &mut mpsc::Receiver<T>) -> u64 {
    let mut n = 0;
    while queue.try_recv().is_ok() {
        n += 1;
    }
    n
}

/// The event array of a frame built by this node (`42[...]`, or `42/nsp,[...]`).
fn event_data(item: &Outgoing) -> Option<std::borrow::Cow<'_, str>> {
    use chatgate_codec::engine::Frame;
    let Some(Frame::Text(text)) = item.frames().first() else {
        return None;
    };
    // A frame of the main namespace without an ack id, as the chat builds them: `42[...]`. The
    // array is the rest of the frame, read in place.
    if let Some(data) = text.as_str().strip_prefix("42") {
        if data.starts_with('[') {
            return Some(std::borrow::Cow::Borrowed(data));
        }
    }
    // Otherwise skip the Engine.IO message digit; the rest is a Socket.IO packet.
    let packet = ByteStr::from(text.as_str().get(1..)?.to_owned());
    match Packet::decode(packet, &chatgate_codec::Limits::DEFAULT) {
        Ok(chatgate_codec::socket::Decoded::Complete(p)) if p.kind == Kind::Event => p
            .data
            .map(|d| std::borrow::Cow::Owned(d.as_str().to_owned())),
        _ => None,
    }
}

/// Six characters of `A-Za-z0-9-_`, as the Node adapter's node ids.
fn node_uid() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..6)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % 64] as char)
        .collect()
}
