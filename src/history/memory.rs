//! History in memory, for the demo directory: the last `per_chat` messages of each chat, lost when
//! the process stops. The chats live inside the order-lock stripes of [`super::History`], so
//! storing a message takes no lock of its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Page, StoredMessage};

/// The chats of one stripe: event id -> its messages, oldest first.
pub type Chats = HashMap<i32, VecDeque<Arc<StoredMessage>>>;

pub struct MemoryStore {
    per_chat: usize,
}

impl MemoryStore {
    pub fn new(per_chat: usize) -> MemoryStore {
        MemoryStore {
            per_chat: per_chat.max(1),
        }
    }

    pub fn push(&self, chats: &mut Chats, message: StoredMessage) {
        let chat = chats.entry(message.eventid).or_default();
        if chat.len() == self.per_chat {
            chat.pop_front();
        }
        chat.push_back(Arc::new(message));
    }

    /// Up to `limit` messages with ids below `before`, oldest first.
    pub fn page(&self, chats: &Chats, eventid: i32, before: i64, limit: usize) -> Page {
        let Some(chat) = chats.get(&eventid) else {
            return Page::default();
        };
        // Ids increase along the deque, so the ones below `before` are a prefix.
        let end = chat.partition_point(|m| m.id < before);
        let start = end.saturating_sub(limit);
        Page {
            messages: chat.range(start..end).cloned().collect(),
            has_more: start > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Role;

    fn message(id: i64, eventid: i32) -> StoredMessage {
        StoredMessage {
            id,
            eventid,
            userid: 1,
            role: Role::Tutor,
            sender_name: "Ada".into(),
            message: format!("m{id}"),
            created_at: chrono::Utc::now(),
        }
    }

    fn ids(page: &Page) -> Vec<i64> {
        page.messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn pages_walk_back_without_overlap_or_gap() {
        let store = MemoryStore::new(100);
        let mut chats = Chats::new();
        for id in 1..=7 {
            store.push(&mut chats, message(id * 10, 5));
            store.push(&mut chats, message(id * 10 + 1, 6));
        }
        let first = store.page(&chats, 5, i64::MAX, 3);
        assert_eq!(ids(&first), [50, 60, 70]);
        assert!(first.has_more);
        let second = store.page(&chats, 5, 50, 3);
        assert_eq!(ids(&second), [20, 30, 40]);
        assert!(second.has_more);
        let last = store.page(&chats, 5, 20, 3);
        assert_eq!(ids(&last), [10]);
        assert!(!last.has_more);
        assert!(store.page(&chats, 5, 10, 3).messages.is_empty());
        assert!(store.page(&chats, 7, i64::MAX, 3).messages.is_empty());
    }

    #[test]
    fn a_chat_keeps_its_newest_messages_only() {
        let store = MemoryStore::new(3);
        let mut chats = Chats::new();
        for id in 1..=5 {
            store.push(&mut chats, message(id, 1));
        }
        let page = store.page(&chats, 1, i64::MAX, 10);
        assert_eq!(ids(&page), [3, 4, 5]);
        assert!(!page.has_more);
    }
}
