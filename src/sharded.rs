//! `ShardedMap`: a hash map split into independently locked shards.
//!
//! Used for the session table and the room table: lookups and updates for different keys take
//! different locks, so connections on different cores do not contend. Each lock is a
//! `std::sync::Mutex` held only for a map operation, never across an `.await` (closures passed in
//! cannot await).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};

pub struct ShardedMap<K, V> {
    shards: Box<[Mutex<HashMap<K, V>>]>,
    hasher: RandomState,
    mask: usize,
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// A map with `shards` shards, rounded up to a power of two. About four per core keeps the
    /// chance that two cores want the same shard low without wasting memory.
    pub fn new(shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        ShardedMap {
            shards: (0..n).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            mask: n - 1,
        }
    }

    /// A shard count suited to this machine: four per available core.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores * 4)
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, HashMap<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) & self.mask;
        // The maps hold plain data; a panic elsewhere cannot leave one half-updated.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the shard that holds `key`, under its lock.
    pub fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&mut HashMap<K, V>) -> R) -> R
    where
        Q: Hash + ?Sized,
    {
        f(&mut self.shard(key))
    }

    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let mut shard = self.shard(&key);
        shard.insert(key, value)
    }

    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).remove(key)
    }

    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.shard(key).get(key).cloned()
    }

    /// Total entries; takes each shard's lock in turn, so only approximate under concurrent change.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clones out every entry (shard by shard), for rare whole-table work.
    pub fn entries_cloned(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let shard = s.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(shard.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// Clones out every value (shard by shard), for rare whole-table work such as shutdown.
    pub fn values_cloned(&self) -> Vec<V>
    where
        V: Clone,
    {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            out.extend(
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .cloned(),
            );
        }
        out
    }
}
