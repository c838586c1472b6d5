//! Flow control across nodes: how far behind the slowest node's subscriber is, so that senders on
//! every node slow down while one node cannot keep up with what the cluster publishes.
//!
//! Redis pub/sub has no back-pressure of its own: a node that reads slower than the others
//! publish falls behind (the backlog waits in Redis's output buffer for that connection, and at
//! its limit Redis cuts the subscription and the backlog is lost). So each node measures its own
//! lag and tells the others:
//! - every `PROBE_EVERY` its publisher publishes a probe, carrying the wall-clock time, on a
//!   channel only this node subscribes to (`{prefix}-probe#{uid}`; Node.js peers' patterns do not
//!   match it). It reaches the node's subscriber behind everything published before it, so the age
//!   of the newest probe received is the node's receive lag (it grows by itself when the
//!   subscriber stops reading: no answer needed from a stuck node).
//! - in the same round trip it writes its lag into the hash `{prefix}-lag` (field: node uid, value
//!   `lag_ms:written_at_ms`) and reads everyone's. Entries not refreshed for `STALE_MS` (a dead or
//!   stopped node) are ignored: a node that is gone must not hold the cluster back.
//! - a sender whose message would be published while the largest lag is over
//!   `--cluster-max-lag-ms` waits (at most `--cluster-publish-wait-ms`) until it is back under.
//!
//! Lags are differences of one node's own clock; only the staleness check compares clocks across
//! nodes, with a margin (`STALE_MS`) far above what NTP leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// How often each node probes its own lag.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);

/// A lag entry older than this is a node that stopped reporting: ignored.
const STALE_MS: u64 = 3_000;

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct Lag {
    /// 0: flow control across nodes is off.
    limit_ms: u64,
    /// Send time (wall ms) of the newest probe this node's subscriber received; 0 before the first.
    newest_probe: AtomicU64,
    /// The largest fresh lag of any node, this one included (ms).
    cluster_ms: AtomicU64,
    caught_up: Notify,
}

impl Lag {
    pub fn new(limit: Duration) -> Lag {
        Lag {
            limit_ms: limit.as_millis() as u64,
            newest_probe: AtomicU64::new(0),
            cluster_ms: AtomicU64::new(0),
            caught_up: Notify::new(),
        }
    }

    /// Whether senders should wait: some node is further behind than the limit.
    pub fn lagging(&self) -> bool {
        self.limit_ms > 0 && self.cluster_ms.load(Ordering::Acquire) > self.limit_ms
    }

    /// The largest lag in the cluster, for `/metrics`.
    pub fn cluster_ms(&self) -> u64 {
        self.cluster_ms.load(Ordering::Acquire)
    }

    /// A probe of this node came back through its subscription.
    pub fn probe_received(&self, payload: &[u8]) {
        if let Some(sent) = std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            self.newest_probe.fetch_max(sent, Ordering::AcqRel);
        }
    }

    /// This node's receive lag at `now` (wall ms): the age of its newest probe beyond the probe
    /// period. 0 until the first probe came back.
    pub fn own_ms(&self, now: u64) -> u64 {
        match self.newest_probe.load(Ordering::Acquire) {
            0 => 0,
            newest => now
                .saturating_sub(newest)
                .saturating_sub(PROBE_EVERY.as_millis() as u64),
        }
    }

    /// This node's entry in the lag hash.
    pub fn entry(&self, now: u64) -> String {
        format!("{}:{now}", self.own_ms(now))
    }

    /// Takes in every node's entry (read back in the round trip that wrote ours); returns the
    /// fields that have been stale long enough to delete.
    pub fn update(&self, now: u64, entries: &HashMap<String, String>) -> Vec<String> {
        let mut worst = self.own_ms(now);
        let mut gone = Vec::new();
        for (uid, value) in entries {
            let Some((lag, at)) = value.split_once(':') else {
                gone.push(uid.clone());
                continue;
            };
            let (Ok(lag), Ok(at)) = (lag.parse::<u64>(), at.parse::<u64>()) else {
                gone.push(uid.clone());
                continue;
            };
            let age = now.saturating_sub(at);
            if age <= STALE_MS {
                worst = worst.max(lag);
            } else if age > 20 * STALE_MS {
                gone.push(uid.clone());
            }
        }
        self.cluster_ms.store(worst, Ordering::Release);
        if !self.lagging() {
            self.caught_up.notify_waiters();
        }
        gone
    }

    /// Completes once no node is over the limit.
    pub async fn caught_up(&self) {
        loop {
            let notified = self.caught_up.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.lagging() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_lag_is_the_age_of_the_newest_probe_beyond_the_period() {
        let lag = Lag::new(Duration::from_millis(500));
        assert_eq!(lag.own_ms(10_000), 0, "nothing measured yet");
        lag.probe_received(b"10000");
        lag.probe_received(b"9000"); // an older probe never moves it back
        lag.probe_received(b"not a time");
        assert_eq!(lag.own_ms(10_050), 0);
        assert_eq!(lag.own_ms(10_700), 600);
        assert_eq!(lag.entry(10_700), "600:10700");
    }

    #[test]
    fn the_worst_fresh_entry_counts_and_stale_ones_do_not() {
        let lag = Lag::new(Duration::from_millis(500));
        lag.probe_received(b"100000");
        let now = 100_050;
        let entries: HashMap<String, String> = [
            ("fresh-slow", format!("800:{}", now - 200)),
            ("fresh-fast", format!("10:{now}")),
            ("stopped", format!("9000:{}", now - STALE_MS - 1)),
            ("long-dead", format!("9000:{}", now - 30 * STALE_MS)),
            ("garbage", "x".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut gone = lag.update(now, &entries);
        gone.sort();
        assert_eq!(gone, ["garbage", "long-dead"]);
        assert_eq!(lag.cluster_ms(), 800);
        assert!(lag.lagging());
        let caught_up: HashMap<String, String> =
            [("fresh-slow".to_owned(), format!("100:{now}"))].into();
        lag.update(now, &caught_up);
        assert!(!lag.lagging());
        assert!(!Lag::new(Duration::ZERO).lagging(), "0 turns it off");
    }
}
