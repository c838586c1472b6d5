//! `Rooms`: the lock-sharded room table of one namespace, and the broadcast path through it.
//!
//! A room's members are kept as an immutable `Arc<[Arc<Socket>]>`, replaced on every join or leave.
//! Membership changes (rare: a join or a leave per chat session) pay for a copy; broadcasts (frequent:
//! every message) take the shard lock only to clone one `Arc`, then push to each member's outbox with
//! no lock held. Rooms hash to shards, so different rooms never contend.

use std::sync::Arc;

use crate::engine::Outgoing;
use crate::sharded::ShardedMap;

use super::Socket;

type Members = Arc<[Arc<Socket>]>;

pub struct Rooms {
    table: ShardedMap<Box<str>, Members>,
}

impl Default for Rooms {
    fn default() -> Self {
        Rooms {
            table: ShardedMap::for_this_machine(),
        }
    }
}

impl Rooms {
    /// Adds `socket` to `room`; returns the member count after the change.
    pub fn join(&self, room: &str, socket: &Arc<Socket>) -> usize {
        self.table.with(room, |map| {
            let members = map.entry(room.into()).or_insert_with(|| Arc::new([]));
            if !members.iter().any(|m| Arc::ptr_eq(m, socket)) {
                let mut next = Vec::with_capacity(members.len() + 1);
                next.extend(members.iter().cloned());
                next.push(socket.clone());
                *members = next.into();
            }
            members.len()
        })
    }

    /// Removes `socket` from `room`; returns the member count after the change (0 if the room is
    /// gone or the socket was not in it and it is empty).
    pub fn leave(&self, room: &str, socket: &Arc<Socket>) -> usize {
        self.table.with(room, |map| {
            let Some(members) = map.get_mut(room) else {
                return 0;
            };
            if members.iter().any(|m| Arc::ptr_eq(m, socket)) {
                let next: Vec<_> = members
                    .iter()
                    .filter(|m| !Arc::ptr_eq(m, socket))
                    .cloned()
                    .collect();
                if next.is_empty() {
                    map.remove(room);
                    return 0;
                }
                *members = next.into();
            }
            members.len()
        })
    }

    /// The members of `room` right now (a snapshot; later changes do not affect it).
    pub fn members(&self, room: &str) -> Option<Members> {
        self.table.get_cloned(room)
    }

    pub fn count(&self, room: &str) -> usize {
        self.table
            .with(room, |map| map.get(room).map_or(0, |m| m.len()))
    }

    /// Number of non-empty rooms.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every non-empty room with its member count (for cluster bookkeeping).
    pub fn counts(&self) -> Vec<(Box<str>, usize)> {
        self.table
            .entries_cloned()
            .into_iter()
            .map(|(room, members)| (room, members.len()))
            .collect()
    }

    /// Queues `item` to every member of `room` except `except`; returns how many it was queued to.
    /// Never waits: a member whose queue is full is disconnected as a slow consumer (see
    /// `Session::send`) and the others still get the item.
    pub fn broadcast(&self, room: &str, except: Option<&Socket>, item: &Outgoing) -> usize {
        let Some(members) = self.members(room) else {
            return 0;
        };
        let mut sent = 0;
        for member in members.iter() {
            if except.is_some_and(|e| std::ptr::eq(e, &**member)) {
                continue;
            }
            if member.send(item.clone()).is_ok() {
                sent += 1;
            }
        }
        sent
    }
}
