//! Who is here: a member counts as present in a chat while one of their sockets is in it and was
//! active (sent any chat event, or joined) within the idle window. An open tab nobody looks at
//! goes idle, so it does not swallow notifications; a closed one is gone at once.
//!
//! One node keeps it in memory. A cluster keeps it in Redis, so that every node sees every node's
//! members: a hash per chat and user, `<prefix>-presence#<eventid>#<userid>`, one field per socket
//! holding the time (ms since the epoch) its activity expires; the key itself expires with the
//! window, so a node that died leaves nothing behind for long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionManager;

pub enum Presence {
    Local {
        idle: Duration,
        /// (eventid, userid) -> socket id -> when its activity expires.
        active: Mutex<HashMap<(i32, i32), HashMap<String, std::time::Instant>>>,
    },
    Redis(Shared),
}

/// Presence in Redis (cluster mode).
pub struct Shared {
    idle: Duration,
    prefix: String,
    client: redis::Client,
    /// Opened on first use (and kept reconnecting by the manager).
    conn: tokio::sync::OnceCell<ConnectionManager>,
}

impl Shared {
    /// The key of `userid`'s presence in `eventid`'s chat, and a connection; `None` without Redis.
    async fn open(&self, eventid: i32, userid: i32) -> Option<(String, ConnectionManager)> {
        let conn = self
            .conn
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .map_err(|e| tracing::debug!(error = %e, "presence: no Redis"))
            .ok()?
            .clone();
        let key = format!("{}-presence#{eventid}#{userid}", self.prefix);
        Some((key, conn))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Presence {
    pub fn local(idle: Duration) -> Presence {
        Presence::Local {
            idle,
            active: Mutex::default(),
        }
    }

    pub fn redis(url: &str, prefix: &str, idle: Duration) -> Result<Presence, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(Presence::Redis(Shared {
            idle,
            prefix: prefix.to_owned(),
            client,
            conn: tokio::sync::OnceCell::new(),
        }))
    }

    /// Socket `sid` of `userid` was active in `eventid`'s chat just now.
    pub async fn active(&self, eventid: i32, userid: i32, sid: &str) {
        match self {
            Presence::Local { idle, active } => {
                let until = std::time::Instant::now() + *idle;
                active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry((eventid, userid))
                    .or_default()
                    .insert(sid.to_owned(), until);
            }
            Presence::Redis(shared) => {
                let Some((key, mut conn)) = shared.open(eventid, userid).await else {
                    return;
                };
                let ms = shared.idle.as_millis() as i64;
                let result: redis::RedisResult<()> = redis::pipe()
                    .hset(&key, sid, now_ms() + ms)
                    .ignore()
                    .pexpire(&key, ms)
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "presence not recorded");
                }
            }
        }
    }

    /// Socket `sid` of `userid` left `eventid`'s chat (or disconnected).
    pub async fn gone(&self, eventid: i32, userid: i32, sid: &str) {
        match self {
            Presence::Local { active, .. } => {
                let mut active = active.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(sockets) = active.get_mut(&(eventid, userid)) {
                    sockets.remove(sid);
                    if sockets.is_empty() {
                        active.remove(&(eventid, userid));
                    }
                }
            }
            Presence::Redis(shared) => {
                let Some((key, mut conn)) = shared.open(eventid, userid).await else {
                    return;
                };
                let result: redis::RedisResult<()> = redis::cmd("HDEL")
                    .arg(&key)
                    .arg(sid)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "presence not cleared");
                }
            }
        }
    }

    /// Whether `userid` is present in `eventid`'s chat. When Redis cannot say, they are not: a
    /// notification too many beats one missed.
    pub async fn present(&self, eventid: i32, userid: i32) -> bool {
        match self {
            Presence::Local { active, .. } => {
                let now = std::time::Instant::now();
                active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&(eventid, userid))
                    .is_some_and(|sockets| sockets.values().any(|&until| until > now))
            }
            Presence::Redis(shared) => {
                let Some((key, mut conn)) = shared.open(eventid, userid).await else {
                    return false;
                };
                let fields: redis::RedisResult<HashMap<String, i64>> =
                    redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await;
                let now = now_ms();
                fields.is_ok_and(|f| f.values().any(|&until| until > now))
            }
        }
    }
}
