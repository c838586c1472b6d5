//! Message ids: made by the gateway, not by the database, so a message can be delivered with its id
//! before it is stored (the live path never waits for PostgreSQL).
//!
//! An id is `slot << 4 | node`, where `slot` is milliseconds since 2025-01-01 UTC times 256 plus a
//! counter. That is 41 + 8 + 4 = 53 bits: every id is exact in a JavaScript number (up to 2^53),
//! ids from one node only increase, and nodes (up to 16, `--node-id`) never collide. More than 256
//! messages in a millisecond borrow slots from the next millisecond instead of waiting; the clock
//! catches up as soon as the burst ends.

use std::sync::atomic::{AtomicU64, Ordering};

/// 2025-01-01T00:00:00Z in Unix milliseconds.
const EPOCH_MS: u64 = 1_735_689_600_000;
const NODE_BITS: u32 = 4;
const COUNTER_BITS: u32 = 8;

/// The most nodes that can share one history without colliding ids.
pub const MAX_NODES: u8 = 1 << NODE_BITS;

#[derive(Debug)]
pub struct Ids {
    node: u64,
    /// The last slot handed out.
    last: AtomicU64,
}

impl Ids {
    /// `node` must be below [`MAX_NODES`] (the flag's parser checks it).
    pub fn new(node: u8) -> Ids {
        Ids {
            node: u64::from(node) & (u64::from(MAX_NODES) - 1),
            last: AtomicU64::new(0),
        }
    }

    fn now_slot() -> u64 {
        let ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        ms.saturating_sub(EPOCH_MS) << COUNTER_BITS
    }

    /// A new id, greater than every id this node made before.
    pub fn next(&self) -> i64 {
        let now = Self::now_slot();
        let mut last = self.last.load(Ordering::Relaxed);
        let slot = loop {
            let slot = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, slot, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break slot,
                Err(seen) => last = seen,
            }
        };
        ((slot << NODE_BITS) | self.node) as i64
    }

    /// An id above every id made so far (on any node whose clock agrees) and below every id this
    /// node makes later: "everything up to now". Moves the counter to the current millisecond so
    /// that no later id can fall below it.
    pub fn high_water(&self) -> i64 {
        let now = Self::now_slot();
        let last = self.last.fetch_max(now, Ordering::AcqRel).max(now);
        ((last << NODE_BITS) | (u64::from(MAX_NODES) - 1)) as i64
    }

    /// Whether `id` was made by another node no longer than `within` ago (or is from its future):
    /// a message that may still wait in that node's write queue, so "not stored" may not mean
    /// "does not exist" yet.
    pub fn foreign_and_recent(&self, id: i64, within: std::time::Duration) -> bool {
        let id = id.max(0) as u64;
        if id & (u64::from(MAX_NODES) - 1) == self.node {
            return false;
        }
        let made_ms = (id >> NODE_BITS >> COUNTER_BITS) + EPOCH_MS;
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        now_ms.saturating_sub(made_ms) <= within.as_millis() as u64
    }

    /// Makes every later id greater than `id` (an id already stored, e.g. by this node before a
    /// restart with the clock set back).
    pub fn observe(&self, id: i64) {
        let slot = (id.max(0) as u64) >> NODE_BITS;
        self.last.fetch_max(slot, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_fit_javascript_and_carry_the_node() {
        let ids = Ids::new(5);
        let mut prev = 0;
        for _ in 0..10_000 {
            let id = ids.next();
            assert!(id > prev, "{id} after {prev}");
            assert!(id < 1 << 53, "{id} is not exact in a JavaScript number");
            assert_eq!(id & 0xf, 5);
            let hw = ids.high_water();
            assert!(id <= hw);
            assert!(ids.next() > hw, "ids after the high water are above it");
            prev = id;
        }
    }

    #[test]
    fn recent_ids_of_other_nodes_are_told_apart() {
        let here = Ids::new(1);
        let there = Ids::new(2);
        let within = std::time::Duration::from_secs(5);
        assert!(here.foreign_and_recent(there.next(), within));
        assert!(!here.foreign_and_recent(here.next(), within));
        let old = (1000_i64 << 12) | 2; // a second after the epoch, node 2
        assert!(!here.foreign_and_recent(old, within));
    }

    #[test]
    fn observe_moves_past_a_stored_id() {
        let ids = Ids::new(0);
        let far = ids.next() + (1000 << 12);
        ids.observe(far);
        assert!(ids.next() > far);
    }

    #[test]
    fn concurrent_ids_are_unique() {
        let ids = std::sync::Arc::new(Ids::new(1));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..5000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
