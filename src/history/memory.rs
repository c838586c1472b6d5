//! History in memory, for the demo directory: the last `per_chat` messages of each chat, with their
//! reactions and the chat's read marks, lost when the process stops. The chats live inside the
//! order-lock stripes of [`super::History`], so storing or changing a message takes no lock of its
//! own.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::annotations::{
    check, Change, ChangeError, ChangeKind, Deleted, Reacted, Reaction, ReactionCount, ReadMark,
    ReadRequest, Target,
};
use super::changes::LoggedChange;
use super::{Missed, Page, StoredMessage};

/// One chat: its newest messages (oldest first), their reactions, and who read up to where.
#[derive(Debug, Default)]
pub struct ChatLog {
    messages: VecDeque<Arc<StoredMessage>>,
    /// Message id -> each emoji with the users who reacted with it, in the order first used.
    reactions: HashMap<i64, Vec<(String, BTreeSet<i32>)>>,
    reads: HashMap<i32, ReadMark>,
    /// The change log (`changes.rs`), oldest first, as long as the messages.
    changes: VecDeque<LoggedChange>,
    /// The newest id no longer kept (message or change): a recovery from before it is incomplete.
    forgotten: i64,
}

impl ChatLog {
    fn position(&self, id: i64) -> Option<usize> {
        // Ids increase along the deque.
        let i = self.messages.partition_point(|m| m.id < id);
        (self.messages.get(i)?.id == id).then_some(i)
    }

    fn counts(&self, id: i64) -> Vec<(String, i64)> {
        self.reactions.get(&id).map_or_else(Vec::new, |emojis| {
            emojis
                .iter()
                .map(|(emoji, users)| (emoji.clone(), users.len() as i64))
                .collect()
        })
    }
}

/// The chat of `eventid` and the position of message `id` in it.
fn locate(chats: &mut Chats, eventid: i32, id: i64) -> Result<(&mut ChatLog, usize), ChangeError> {
    let chat = chats.get_mut(&eventid).ok_or(ChangeError::UnknownMessage)?;
    let i = chat.position(id).ok_or(ChangeError::UnknownMessage)?;
    Ok((chat, i))
}

/// The chats of one stripe, by event id.
pub type Chats = HashMap<i32, ChatLog>;

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
        if chat.messages.len() == self.per_chat {
            if let Some(gone) = chat.messages.pop_front() {
                chat.reactions.remove(&gone.id);
                chat.forgotten = chat.forgotten.max(gone.id);
            }
        }
        chat.messages.push_back(Arc::new(message));
    }

    /// Logs a change the room was told about.
    pub fn log_change(&self, chats: &mut Chats, change: LoggedChange) {
        let chat = chats.entry(change.eventid).or_default();
        if chat.changes.len() >= self.per_chat {
            if let Some(gone) = chat.changes.pop_front() {
                chat.forgotten = chat.forgotten.max(gone.id);
            }
        }
        chat.changes.push_back(change);
    }

    /// The messages and changes of `eventid`'s chat with ids in `(after, before)`, in id order, at
    /// most `limit`; `None` when some of them are no longer kept or there are more.
    pub fn missed(
        &self,
        chats: &Chats,
        eventid: i32,
        after: i64,
        before: i64,
        limit: usize,
    ) -> Option<Vec<Missed>> {
        let Some(chat) = chats.get(&eventid) else {
            return Some(Vec::new());
        };
        if chat.forgotten > after {
            return None;
        }
        let in_range = |id: i64| id > after && id < before;
        let mut items: Vec<Missed> = chat
            .messages
            .iter()
            .filter(|m| in_range(m.id))
            .map(|m| Missed::Message(m.clone()))
            .chain(
                chat.changes
                    .iter()
                    .filter(|c| in_range(c.id))
                    .map(|c| Missed::Change(c.clone())),
            )
            .collect();
        if items.len() > limit {
            return None;
        }
        items.sort_by_key(Missed::id);
        Some(items)
    }

    /// Up to `limit` messages with ids above `after` and below `before`, oldest first, and whether
    /// newer ones exist, with their reactions and the chat's read marks (`load-history` with
    /// `after_id`).
    pub fn forward_page(
        &self,
        chats: &Chats,
        eventid: i32,
        after: i64,
        limit: usize,
        viewer: i32,
    ) -> Page {
        let Some(chat) = chats.get(&eventid) else {
            return Page::default();
        };
        let start = chat.messages.partition_point(|m| m.id <= after);
        let end = (start + limit).min(chat.messages.len());
        self.page_of(chat, start..end, end < chat.messages.len(), viewer)
    }

    /// The messages of `chat` in `range` (positions along its deque), with their reactions and the
    /// chat's read marks.
    fn page_of(
        &self,
        chat: &ChatLog,
        range: std::ops::Range<usize>,
        has_more: bool,
        viewer: i32,
    ) -> Page {
        let messages: Vec<_> = chat.messages.range(range).cloned().collect();
        let reactions = self.reactions_of(chat, &messages, viewer);
        let mut reads: Vec<ReadMark> = chat.reads.values().cloned().collect();
        reads.sort_by_key(|r| r.userid);
        Page {
            messages,
            has_more,
            reactions,
            reads,
        }
    }

    fn reactions_of(
        &self,
        chat: &ChatLog,
        messages: &[Arc<StoredMessage>],
        viewer: i32,
    ) -> HashMap<i64, Vec<ReactionCount>> {
        messages
            .iter()
            .filter_map(|m| {
                let emojis = chat.reactions.get(&m.id)?;
                let counts = emojis
                    .iter()
                    .map(|(emoji, users)| ReactionCount {
                        emoji: emoji.clone(),
                        count: users.len() as i64,
                        mine: users.contains(&viewer),
                    })
                    .collect();
                Some((m.id, counts))
            })
            .collect()
    }

    /// Up to `limit` messages with ids below `before`, oldest first, with their reactions (`mine`
    /// for `viewer`) and the chat's read marks.
    pub fn page(
        &self,
        chats: &Chats,
        eventid: i32,
        before: i64,
        limit: usize,
        viewer: i32,
    ) -> Page {
        let Some(chat) = chats.get(&eventid) else {
            return Page::default();
        };
        // Ids increase along the deque, so the ones below `before` are a prefix.
        let end = chat.messages.partition_point(|m| m.id < before);
        let start = end.saturating_sub(limit);
        self.page_of(chat, start..end, start > 0, viewer)
    }

    pub fn react(&self, chats: &mut Chats, r: &Reaction) -> Result<Reacted, ChangeError> {
        let (chat, i) = locate(chats, r.eventid, r.message_id)?;
        if chat.messages[i].deleted_at.is_some() {
            return Err(ChangeError::Deleted);
        }
        let emojis = chat.reactions.entry(r.message_id).or_default();
        let slot = emojis.iter().position(|(e, _)| *e == r.emoji);
        let already = slot.is_some_and(|k| emojis[k].1.contains(&r.userid));
        if r.add && !already {
            let mine = emojis
                .iter()
                .filter(|(_, users)| users.contains(&r.userid))
                .count();
            if mine as i64 >= super::annotations::MAX_REACTIONS_PER_USER {
                return Err(ChangeError::TooManyReactions);
            }
        }
        let changed = match (slot, r.add) {
            (Some(k), true) => emojis[k].1.insert(r.userid),
            (None, true) => {
                emojis.push((r.emoji.clone(), BTreeSet::from([r.userid])));
                true
            }
            (Some(k), false) => {
                let removed = emojis[k].1.remove(&r.userid);
                if emojis[k].1.is_empty() {
                    emojis.remove(k);
                }
                removed
            }
            (None, false) => false,
        };
        if emojis.is_empty() {
            chat.reactions.remove(&r.message_id);
        }
        Ok(Reacted {
            changed,
            counts: chat.counts(r.message_id),
        })
    }

    /// Edits or deletes a message; a deletion answers when it was deleted.
    pub fn change(&self, chats: &mut Chats, c: &Change) -> Result<Deleted, ChangeError> {
        let (chat, i) = locate(chats, c.eventid, c.message_id)?;
        let old = &chat.messages[i];
        let target = Target {
            userid: old.userid,
            created_at: old.created_at,
            deleted_at: old.deleted_at,
        };
        check(&target, c)?;
        if let Some(at) = old.deleted_at {
            return Ok(Deleted {
                at,
                now: false,
                attachments: None,
            });
        }
        // The audit trail is a database table; the demo keeps no old text either way.
        let mut new = StoredMessage::clone(old);
        match &c.kind {
            ChangeKind::Edit { text, .. } => {
                new.message = text.clone();
                new.edited_at = Some(c.at);
            }
            ChangeKind::Delete => {
                new.message = String::new();
                new.deleted_at = Some(c.at);
                chat.reactions.remove(&c.message_id);
            }
        }
        let attachments = match c.kind {
            ChangeKind::Delete => new.attachments.take(),
            ChangeKind::Edit { .. } => None,
        };
        chat.messages[i] = Arc::new(new);
        Ok(Deleted {
            at: c.at,
            now: true,
            attachments,
        })
    }

    /// Applies a read mark: `None` if its message is not in its chat, else whether the member's
    /// mark moved forward (it never moves back).
    pub fn mark_read(&self, chats: &mut Chats, r: &ReadRequest) -> Option<bool> {
        let chat = chats.get_mut(&r.eventid)?;
        chat.position(r.message_id)?;
        let moved = chat
            .reads
            .get(&r.userid)
            .is_none_or(|old| old.last_read_id < r.message_id);
        if moved {
            chat.reads.insert(
                r.userid,
                ReadMark {
                    userid: r.userid,
                    role: r.role,
                    last_read_id: r.message_id,
                    read_at: r.at,
                },
            );
        }
        Some(moved)
    }

    /// A member's read mark.
    pub fn read_mark(&self, chats: &Chats, eventid: i32, userid: i32) -> Option<ReadMark> {
        chats.get(&eventid)?.reads.get(&userid).cloned()
    }

    /// Messages of `role` with ids in `first..=last` that are not deleted.
    pub fn live_between(
        &self,
        chats: &Chats,
        eventid: i32,
        first: i64,
        last: i64,
        role: crate::directory::Role,
    ) -> i64 {
        chats.get(&eventid).map_or(0, |chat| {
            chat.messages
                .iter()
                .filter(|m| {
                    m.id >= first && m.id <= last && m.role == role && m.deleted_at.is_none()
                })
                .count() as i64
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::directory::Role;

    pub(in crate::history) fn message(id: i64, eventid: i32) -> StoredMessage {
        StoredMessage {
            id,
            eventid,
            userid: 1,
            role: Role::Tutor,
            sender_name: "Ada".into(),
            message: format!("m{id}"),
            created_at: chrono::Utc::now(),
            edited_at: None,
            deleted_at: None,
            attachments: None,
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
        let first = store.page(&chats, 5, i64::MAX, 3, 0);
        assert_eq!(ids(&first), [50, 60, 70]);
        assert!(first.has_more);
        let second = store.page(&chats, 5, 50, 3, 0);
        assert_eq!(ids(&second), [20, 30, 40]);
        assert!(second.has_more);
        let last = store.page(&chats, 5, 20, 3, 0);
        assert_eq!(ids(&last), [10]);
        assert!(!last.has_more);
        assert!(store.page(&chats, 5, 10, 3, 0).messages.is_empty());
        assert!(store.page(&chats, 7, i64::MAX, 3, 0).messages.is_empty());
    }

    #[test]
    fn a_user_has_a_bounded_number_of_reactions_per_message() {
        use crate::history::annotations::{Reaction, MAX_REACTIONS_PER_USER};
        let store = MemoryStore::new(10);
        let mut chats = Chats::new();
        store.push(&mut chats, message(16, 5));
        let react = |userid, n: i64| Reaction {
            eventid: 5,
            message_id: 16,
            userid,
            emoji: format!("e{n}"),
            add: true,
            at: chrono::Utc::now(),
        };
        for n in 0..MAX_REACTIONS_PER_USER {
            assert!(store.react(&mut chats, &react(1, n)).is_ok());
        }
        let over = store.react(&mut chats, &react(1, MAX_REACTIONS_PER_USER));
        assert_eq!(over, Err(ChangeError::TooManyReactions));
        let again = store.react(&mut chats, &react(1, 0)).expect("a no-op");
        assert!(!again.changed);
        assert!(store.react(&mut chats, &react(2, 99)).is_ok(), "per user");
    }

    #[test]
    fn a_chat_keeps_its_newest_messages_only() {
        let store = MemoryStore::new(3);
        let mut chats = Chats::new();
        for id in 1..=5 {
            store.push(&mut chats, message(id, 1));
        }
        let page = store.page(&chats, 1, i64::MAX, 10, 0);
        assert_eq!(ids(&page), [3, 4, 5]);
        assert!(!page.has_more);
    }
}
