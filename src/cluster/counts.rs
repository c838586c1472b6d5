//! Cluster-wide member counts, exact without asking every node.
//!
//! Each room has a Redis hash `<prefix>-count#<nsp>#<room>` holding, per node, how many of the
//! room's members that node has; each node keeps a liveness key `<prefix>-node#<uid>` that expires
//! `liveness` after its last beat. One Lua script applies a node's change and sums the counts of
//! live nodes, removing the entries of dead ones: a SIGKILLed node's members leave the counts once
//! its liveness key expires. If Redis restarts empty (or this node was cut off past its
//! liveness), the next beat finds its key gone and writes its rooms' counts back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::ClusterConfig;
use crate::socketio::NamespaceEntry;

/// KEYS[1]: the room's hash. ARGV: node uid, delta, liveness key prefix, liveness in ms.
const CHANGE: &str = r"
redis.call('SET', ARGV[3] .. ARGV[1], '1', 'PX', ARGV[4])
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if mine <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local n = tonumber(all[i + 1])
  if n > 0 and redis.call('EXISTS', ARGV[3] .. all[i]) == 1 then
    total = total + n
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return total
";

pub struct Counts {
    conn: std::sync::Mutex<Option<MultiplexedConnection>>,
    /// Asks the publisher for a new connection (a count failed, or the subscriber lost Redis).
    pub reconnect: tokio::sync::Notify,
    script: redis::Script,
    uid: String,
    prefix: String,
    liveness: Duration,
    /// A change could not be written: the next beat writes every count again.
    dirty: AtomicBool,
}

/// How long a join or leave waits for the cluster count before using the local one.
const COUNT_TIMEOUT: Duration = Duration::from_millis(500);

impl Counts {
    pub fn new(config: &ClusterConfig, uid: &str) -> Counts {
        Counts {
            conn: std::sync::Mutex::new(None),
            reconnect: tokio::sync::Notify::new(),
            script: redis::Script::new(CHANGE),
            uid: uid.to_owned(),
            prefix: config.prefix.clone(),
            liveness: config.liveness,
            dirty: AtomicBool::new(false),
        }
    }

    fn room_key(&self, nsp: &str, room: &str) -> String {
        format!("{}-count#{}#{}", self.prefix, nsp, room)
    }

    fn node_prefix(&self) -> String {
        format!("{}-node#", self.prefix)
    }

    /// `SET <node key> 1 PX <liveness>`: this node is alive for one more liveness window.
    fn liveness_set(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}{}", self.node_prefix(), self.uid))
            .arg("1")
            .arg("PX")
            .arg(self.liveness.as_millis() as u64);
        cmd
    }

    /// The publisher's connection (one multiplexed connection per node carries publishes and
    /// counts); an error until the publisher has connected.
    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        self.conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "the cluster publisher is not connected",
                ))
            })
    }

    /// Called by the publisher with each new connection.
    pub fn use_connection(&self, conn: MultiplexedConnection) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
    }

    /// Applies this node's change of `delta` members in `room` and returns the room's member count
    /// across the cluster; `local` (this node's count) if Redis does not answer in time.
    pub async fn changed(&self, nsp: &str, room: &str, delta: i64, local: usize) -> usize {
        let run = async {
            let mut conn = self.connection().await?;
            self.script
                .key(self.room_key(nsp, room))
                .arg(&self.uid)
                .arg(delta)
                .arg(self.node_prefix())
                .arg(self.liveness.as_millis() as u64)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(COUNT_TIMEOUT, run).await {
            Ok(Ok(total)) => usize::try_from(total).unwrap_or(0).max(local),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, room, "cluster: count not updated");
                self.dirty.store(true, Ordering::Release);
                self.reconnect.notify_one();
                local
            }
            Err(_) => {
                self.dirty.store(true, Ordering::Release);
                local
            }
        }
    }

    /// Refreshes this node's liveness key; writes every local count again if the key was gone
    /// (Redis restarted, or this node was away) or a change could not be written.
    pub async fn beat(&self, namespace: &NamespaceEntry) {
        let run = async {
            let mut conn = self.connection().await?;
            let previous: Option<String> = self
                .liveness_set()
                .arg("GET")
                .query_async(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(previous.is_none())
        };
        match tokio::time::timeout(COUNT_TIMEOUT, run).await {
            Ok(Ok(lost)) => {
                if lost || self.dirty.swap(false, Ordering::AcqRel) {
                    self.resync(namespace).await;
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cluster: liveness beat failed");
                self.dirty.store(true, Ordering::Release);
                self.reconnect.notify_one();
            }
            Err(_) => self.dirty.store(true, Ordering::Release),
        }
    }

    /// Writes this node's member count of every local room.
    pub async fn resync(&self, namespace: &NamespaceEntry) {
        let nsp = namespace.name.to_string();
        let run = async {
            let mut conn = self.connection().await?;
            let mut pipe = redis::pipe();
            pipe.add_command(self.liveness_set()).ignore();
            for (room, count) in namespace.rooms.counts() {
                pipe.hset(self.room_key(&nsp, &room), &self.uid, count)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        };
        match tokio::time::timeout(COUNT_TIMEOUT * 4, run).await {
            Ok(Ok(())) => tracing::debug!("cluster: counts written"),
            _ => {
                self.dirty.store(true, Ordering::Release);
            }
        }
    }
}
