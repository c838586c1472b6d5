//! What happens to a message after it was sent: read receipts, emoji reactions, edits and
//! deletions. The types here are shared by both stores (`memory.rs`, `postgres_annotations.rs`);
//! the rules that do not depend on the store (who may edit, until when) are here too, so both
//! stores refuse the same things with the same errors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::directory::Role;

/// The newest message a member has read in a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMark {
    pub userid: i32,
    pub role: Role,
    pub last_read_id: i64,
    pub read_at: DateTime<Utc>,
}

/// A `mark-read`, waiting to be applied with the others of its interval.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub eventid: i32,
    pub userid: i32,
    pub role: Role,
    pub message_id: i64,
    pub at: DateTime<Utc>,
}

/// What applying a batch of [`ReadRequest`]s did.
#[derive(Debug, Default)]
pub struct ReadsApplied {
    /// Per request, in order: the message exists in that chat.
    pub valid: Vec<bool>,
    /// `(eventid, userid)` whose stored mark moved forward.
    pub advanced: HashSet<(i32, i32)>,
    /// The stored mark of every `(eventid, userid)` of the batch that has one, after the batch.
    pub current: HashMap<(i32, i32), ReadMark>,
}

/// One emoji's total on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
    /// Whether the user the page is for is among those who reacted with it.
    pub mine: bool,
}

/// `add` or `remove` `emoji` on a message.
#[derive(Debug, Clone)]
pub struct Reaction {
    pub eventid: i32,
    pub message_id: i64,
    pub userid: i32,
    pub emoji: String,
    pub add: bool,
    pub at: DateTime<Utc>,
}

/// After a reaction: whether it changed anything (adding twice, or removing what is not there,
/// does not), and every emoji's total on the message, in the order they were first used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reacted {
    pub changed: bool,
    pub counts: Vec<(String, i64)>,
}

/// An edit or a deletion by `userid`, at `at`.
#[derive(Debug, Clone)]
pub struct Change {
    pub eventid: i32,
    pub message_id: i64,
    pub userid: i32,
    pub at: DateTime<Utc>,
    /// Keep the old text in `chatgate_message_audit` (`--edit-audit on`).
    pub audit: bool,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone)]
pub enum ChangeKind {
    /// New text, allowed until `window` after the message was sent.
    Edit {
        text: String,
        window: Duration,
    },
    Delete,
}

/// After a deletion: when it was deleted, and whether by this request (deleting twice answers
/// the first deletion's time and changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub at: DateTime<Utc>,
    pub now: bool,
    /// The attachments the message had until this deletion (their files are to be deleted).
    pub attachments: Option<Arc<str>>,
}

/// Most reactions one user may have on one message. A chat has two users, so a message carries at
/// most twice this many emojis, and every `message-reaction` (which carries all the totals) stays
/// small.
pub const MAX_REACTIONS_PER_USER: i64 = 20;

/// Why a change to a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// No such message in this chat (or it is older than what the store keeps).
    UnknownMessage,
    NotAuthor,
    /// An edit after the window, which was `window`.
    EditWindowPassed {
        window: Duration,
    },
    Deleted,
    /// The user already has [`MAX_REACTIONS_PER_USER`] reactions on the message.
    TooManyReactions,
    /// `--history off`: no message is kept, so none can be changed.
    Off,
    /// The store did not answer.
    Unavailable(String),
}

/// What the rules need to know about the message being changed.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub userid: i32,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Whether `change` may be made to `target`. A deletion of a deleted message is not an error (the
/// caller answers the first deletion); an edit of one is.
pub fn check(target: &Target, change: &Change) -> Result<(), ChangeError> {
    if target.userid != change.userid {
        return Err(ChangeError::NotAuthor);
    }
    match &change.kind {
        ChangeKind::Edit { window, .. } => {
            if target.deleted_at.is_some() {
                return Err(ChangeError::Deleted);
            }
            let span = chrono::Duration::from_std(*window).unwrap_or(chrono::Duration::MAX);
            if target
                .created_at
                .checked_add_signed(span)
                .is_some_and(|end| end < change.at)
            {
                return Err(ChangeError::EditWindowPassed { window: *window });
            }
            Ok(())
        }
        ChangeKind::Delete => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(userid: i32, kind: ChangeKind, at: DateTime<Utc>) -> Change {
        Change {
            eventid: 1,
            message_id: 1,
            userid,
            at,
            audit: false,
            kind,
        }
    }

    #[test]
    fn only_the_author_within_the_window() {
        let sent = Utc::now();
        let target = Target {
            userid: 7,
            created_at: sent,
            deleted_at: None,
        };
        let edit = |userid, after_secs| {
            change(
                userid,
                ChangeKind::Edit {
                    text: "x".into(),
                    window: Duration::from_secs(60),
                },
                sent + chrono::Duration::seconds(after_secs),
            )
        };
        assert_eq!(check(&target, &edit(7, 59)), Ok(()));
        assert_eq!(
            check(&target, &edit(7, 61)),
            Err(ChangeError::EditWindowPassed {
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(check(&target, &edit(8, 1)), Err(ChangeError::NotAuthor));
        let later = sent + chrono::Duration::days(30);
        assert_eq!(
            check(&target, &change(7, ChangeKind::Delete, later)),
            Ok(())
        );
        assert_eq!(
            check(&target, &change(8, ChangeKind::Delete, sent)),
            Err(ChangeError::NotAuthor)
        );
        let deleted = Target {
            deleted_at: Some(sent),
            ..target
        };
        assert_eq!(check(&deleted, &edit(7, 1)), Err(ChangeError::Deleted));
        assert_eq!(
            check(&deleted, &change(7, ChangeKind::Delete, sent)),
            Ok(())
        );
    }
}
