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

/// Figures for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub published: AtomicU64,
    /// Broadcasts not published: Redis was away or the publish queue was full.
    pub publish_dropped: AtomicU64,
    pub received: AtomicU64,
    /// Broadcasts for rooms with no member here, dropped before decoding.
    pub skipped: AtomicU64,
    pub malformed: AtomicU64,
}

pub struct Cluster {
    uid: String,
    config: ClusterConfig,
    client: redis::Client,
    outgoing: mpsc::Sender<Publish>,
    incoming: std::sync::Mutex<Option<mpsc::Receiver<Publish>>>,
    subscribed: AtomicBool,
    publishing: AtomicBool,
    pub stats: ClusterStats,
    pub counts: counts::Counts,
    namespace: OnceLock<Arc<NamespaceEntry>>,
}

/// A channel and the message to publish on it.
type Publish = (String, Vec<u8>);

/// Broadcasts waiting for the publisher; beyond it they are dropped (counted).
const PUBLISH_QUEUE: usize = 65_536;

impl Cluster {
    /// Checks the URL; connects nothing yet ([`Cluster::start`] does, and keeps retrying).
    pub fn new(config: ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| ClusterError(format!("invalid Redis URL: {e}")))?;
        let uid = node_uid();
        let (outgoing, incoming) = mpsc::channel(PUBLISH_QUEUE);
        Ok(Arc::new(Cluster {
            counts: counts::Counts::new(&config, &uid),
            uid,
            config,
            client,
            outgoing,
            incoming: std::sync::Mutex::new(Some(incoming)),
            subscribed: AtomicBool::new(false),
            publishing: AtomicBool::new(false),
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

    /// Starts the publisher, the subscriber and the liveness beat for `namespace` (the chat's).
    pub fn start(self: &Arc<Self>, namespace: Arc<NamespaceEntry>) {
        if self.namespace.set(namespace).is_err() {
            return;
        }
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
                            if let Some(incoming) = incoming {
                                tokio::spawn(cluster.clone().publisher(incoming));
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

    /// Publishes a broadcast that was just delivered locally: `item` is the frame built for the
    /// local members, `except` the socket that must not get it. Never waits.
    pub fn publish(&self, nsp: &str, room: &str, item: &Outgoing, except: Option<&str>) {
        let Some(data) = event_data(item) else {
            return;
        };
        let rooms = [room.to_owned()];
        let except: Vec<String> = except.map(str::to_owned).into_iter().collect();
        let bytes = match wire::encode_broadcast(&self.uid, nsp, &data, &rooms, &except) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "cluster: broadcast not encodable");
                return;
            }
        };
        self.enqueue(
            wire::broadcast_channel(&self.config.prefix, nsp, &rooms),
            bytes,
        );
    }

    /// Hands a message to the publisher; counts it as dropped if the queue is full.
    fn enqueue(&self, channel: String, bytes: Vec<u8>) {
        if self.outgoing.try_send((channel, bytes)).is_err() {
            self.stats.publish_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// When the publish queue is full while Redis is up: a wait (at most 2 s) until it has room.
    /// A sender awaits it before its message, so overload slows senders instead of dropping their
    /// broadcasts for the other nodes. `None` when there is room, or Redis is away (then nothing
    /// waits: pub/sub is at-most-once).
    pub fn wait_for_room(
        &self,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        if self.outgoing.capacity() > 0 || !self.link_up() {
            return None;
        }
        let queue = self.outgoing.clone();
        Some(Box::pin(async move {
            // The place is given back at once: the broadcast itself takes one a moment later.
            let _ = tokio::time::timeout(Duration::from_secs(2), queue.reserve_owned()).await;
        }))
    }

    async fn publisher(self: Arc<Self>, mut queue: mpsc::Receiver<Publish>) {
        let mut batch: Vec<Publish> = Vec::new();
        let mut backoff = Duration::from_millis(100);
        // An idle connection learns that Redis went away only when used: ping it on the beat.
        let mut ping = tokio::time::interval(self.config.liveness / 3);
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
                    let stale = batch.len() as u64 + drain(&mut queue);
                    batch.clear();
                    self.stats
                        .publish_dropped
                        .fetch_add(stale, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            loop {
                if batch.is_empty() {
                    tokio::select! {
                        n = queue.recv_many(&mut batch, 256) => {
                            if n == 0 {
                                return;
                            }
                            // Let more broadcasts gather (one write and one reply for all of them
                            // instead of a round of system calls each): at a chat's pace most
                            // pipelines would otherwise carry a single message.
                            if batch.len() < 256 && !self.config.linger.is_zero() {
                                tokio::time::sleep(self.config.linger).await;
                            }
                            while batch.len() < 256 {
                                match queue.try_recv() {
                                    Ok(p) => batch.push(p),
                                    Err(_) => break,
                                }
                            }
                        }
                        () = self.counts.reconnect.notified() => {
                            self.publishing.store(false, Ordering::Release);
                            break;
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
                match pipe.query_async::<()>(&mut conn).await {
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
        let pattern = format!("{}#{}#*", self.config.prefix, nsp);
        let requests = format!("{}-request#{}#", self.config.prefix, nsp);
        let mut backoff = Duration::from_millis(100);
        loop {
            let pubsub = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.psubscribe(&pattern).await?;
                // One subscription of the request channel per node: Node peers count its
                // subscribers to know how many answers to wait for.
                pubsub.subscribe(&requests).await?;
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
                if channel == requests {
                    requests::handle(&self, &namespace, msg.get_payload_bytes());
                } else {
                    self.receive(&namespace, &nsp, channel, msg.get_payload_bytes());
                }
            }
            self.subscribed.store(false, Ordering::Release);
            // Redis went away: the publisher's connection is as dead as this one.
            self.publishing.store(false, Ordering::Release);
            self.counts.reconnect.notify_one();
            tracing::warn!("cluster: subscription lost; reconnecting");
        }
    }

    /// Delivers a broadcast from another node to the local members of its rooms.
    fn receive(&self, namespace: &NamespaceEntry, nsp: &str, channel: &str, payload: &[u8]) {
        let Some(room) = wire::channel_room(channel, &self.config.prefix, nsp) else {
            return;
        };
        // Most broadcasts are for rooms with no member here: drop those before decoding.
        if !room.is_empty() && namespace.rooms.count(room) == 0 {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let message = match wire::decode_broadcast(payload) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, channel, "cluster: unreadable broadcast");
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
fn drain(queue: &mut mpsc::Receiver<Publish>) -> u64 {
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
