//! Every `chat-error` the chat sends, in one place. The strings of the original chat server
//! (docs/PROTOCOL.md, "Error strings") are the public interface and are reproduced to the letter;
//! the others cover cases the original leaves open.

/// A refusal of a client's chat event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatError {
    /// `eventid` or `userid` missing, or not an integer in PostgreSQL's `integer` range.
    MissingIds,
    EventNotFound,
    /// Not the holder of the named seat, an unknown role, or a userid other than the token's.
    Unauthorized,
    NotInRoom,
    EventIdMismatch,
    EmptyMessage,
    /// `message` is present but not a string.
    MessageNotText,
    /// `message` is longer than the configured maximum (in characters).
    MessageTooLong {
        max: usize,
    },
    /// `is_typing` is missing or not a boolean.
    BadTyping,
    /// The directory failed during a join.
    FailedToJoin,
    FailedToSend,
    FailedToLeave,
    /// Too many events in a short time (per-socket rate limit).
    RateLimited,
    /// The history store did not answer (database down or slow).
    HistoryUnavailable,
    /// `load-history` with a `before_id` or `limit` that is not a positive integer.
    BadHistoryRequest,
    /// `load-history` with an `after_id` that is not a positive integer, or with both `after_id`
    /// and `before_id` (counted with `BadHistoryRequest`: the same label).
    BadHistoryAfter,
    /// `message_id` missing or not a positive integer.
    BadMessageId,
    /// `message_id` names no message of the joined chat (or one older than the store keeps).
    UnknownMessage,
    /// An edit or deletion of someone else's message.
    NotAuthor,
    /// An edit after the edit window.
    EditWindowPassed {
        window_secs: u64,
    },
    /// A reaction to, or an edit of, a deleted message.
    MessageDeleted,
    /// `emoji` is not exactly one emoji.
    BadEmoji,
    /// `action` is not `"add"` or `"remove"`.
    BadReactionAction,
    /// `userid` is present and is not the joined user's.
    UserIdMismatch,
    /// Receipts, reactions, edits and deletions need stored messages (`--history off`).
    HistoryOff,
    /// The user already has the most reactions allowed on the message.
    TooManyReactions,
    /// The store did not answer; `what` was not saved.
    FailedToSave {
        what: &'static str,
    },
    /// The event's payload is present but not a JSON object.
    BadPayload,
    /// `attachments` is not a list of distinct file ids, or has too many.
    BadAttachments {
        max: usize,
    },
    /// A file named in `attachments` cannot be attached (`why` says which and why).
    AttachmentRefused {
        why: String,
    },
    /// `notify-settings` without a boolean `enabled`.
    BadNotifySettings,
    /// `notify-settings` on a server without offline notifications.
    NotificationsOff,
}

impl ChatError {
    /// Position of this kind in `metrics::ERROR_KINDS`.
    pub fn kind(&self) -> usize {
        match self {
            ChatError::MissingIds => 0,
            ChatError::EventNotFound => 1,
            ChatError::Unauthorized => 2,
            ChatError::NotInRoom => 3,
            ChatError::EventIdMismatch => 4,
            ChatError::EmptyMessage => 5,
            ChatError::MessageNotText => 6,
            ChatError::MessageTooLong { .. } => 7,
            ChatError::BadTyping => 8,
            ChatError::FailedToJoin => 9,
            ChatError::FailedToSend => 10,
            ChatError::FailedToLeave => 11,
            ChatError::RateLimited => 12,
            ChatError::HistoryUnavailable => 13,
            ChatError::BadHistoryRequest | ChatError::BadHistoryAfter => 14,
            ChatError::BadMessageId => 15,
            ChatError::UnknownMessage => 16,
            ChatError::NotAuthor => 17,
            ChatError::EditWindowPassed { .. } => 18,
            ChatError::MessageDeleted => 19,
            ChatError::BadEmoji => 20,
            ChatError::BadReactionAction => 21,
            ChatError::UserIdMismatch => 22,
            ChatError::HistoryOff => 23,
            ChatError::FailedToSave { .. } => 24,
            ChatError::TooManyReactions => 25,
            ChatError::BadPayload => 26,
            ChatError::BadAttachments { .. } => 27,
            ChatError::AttachmentRefused { .. } => 28,
            ChatError::BadNotifySettings => 29,
            ChatError::NotificationsOff => 30,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ChatError::MissingIds => "Missing eventid or userid".into(),
            ChatError::EventNotFound => "Event not found".into(),
            ChatError::Unauthorized => "Unauthorized: You are not part of this event".into(),
            ChatError::NotInRoom => "Not in any chat room".into(),
            ChatError::EventIdMismatch => "Event ID mismatch".into(),
            ChatError::EmptyMessage => "Empty message".into(),
            ChatError::MessageNotText => "Invalid message: must be a string".into(),
            ChatError::MessageTooLong { max } => {
                format!("Message too long: at most {max} characters")
            }
            ChatError::BadTyping => {
                "Invalid typing indicator: is_typing must be true or false".into()
            }
            ChatError::FailedToJoin => "Failed to join chat".into(),
            ChatError::FailedToSend => "Failed to send message".into(),
            ChatError::FailedToLeave => "Failed to leave chat".into(),
            ChatError::RateLimited => "Rate limit exceeded".into(),
            ChatError::HistoryUnavailable => "Failed to load history".into(),
            ChatError::BadHistoryAfter => "Invalid history request: after_id must be a positive integer, and cannot be combined with before_id".into(),
            ChatError::BadHistoryRequest => {
                "Invalid history request: before_id and limit must be positive integers".into()
            }
            ChatError::BadMessageId => "Invalid message_id: must be a positive integer".into(),
            ChatError::UnknownMessage => "Message not found in this chat".into(),
            ChatError::NotAuthor => {
                "Not your message: only its author can edit or delete it".into()
            }
            ChatError::EditWindowPassed { window_secs } => {
                let window = if window_secs % 60 == 0 {
                    format!("{} minutes", window_secs / 60)
                } else {
                    format!("{window_secs} seconds")
                };
                format!("Edit window passed: a message can be edited for {window} after it is sent")
            }
            ChatError::MessageDeleted => "Message was deleted".into(),
            ChatError::BadEmoji => {
                "Invalid emoji: emoji must be exactly one emoji (skin tones and ZWJ sequences count as one)".into()
            }
            ChatError::BadReactionAction => {
                "Invalid reaction action: action must be \"add\" or \"remove\"".into()
            }
            ChatError::UserIdMismatch => {
                "User ID mismatch: userid must be the user who joined this chat".into()
            }
            ChatError::HistoryOff => {
                "Message history is off on this server: messages cannot be marked, reacted to, edited or deleted".into()
            }
            ChatError::FailedToSave { what } => format!("Failed to save {what}: try again"),
            ChatError::BadPayload => "Invalid payload: must be an object".into(),
            ChatError::BadAttachments { max } => format!(
                "Invalid attachments: must be a list of at most {max} different file ids from POST /files"
            ),
            ChatError::AttachmentRefused { why } => format!("Attachment refused: {why}"),
            ChatError::BadNotifySettings => {
                "Invalid notify-settings: enabled must be true or false".into()
            }
            ChatError::NotificationsOff => {
                "Offline notifications are off on this server".into()
            }
            ChatError::TooManyReactions => format!(
                "Too many reactions: at most {} per user on one message",
                crate::history::annotations::MAX_REACTIONS_PER_USER
            ),
        }
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ChatError {}

#[cfg(test)]
mod tests {
    use super::ChatError::*;

    #[test]
    fn seed_strings_to_the_letter() {
        assert_eq!(MissingIds.message(), "Missing eventid or userid");
        assert_eq!(EventNotFound.message(), "Event not found");
        assert_eq!(
            Unauthorized.message(),
            "Unauthorized: You are not part of this event"
        );
        assert_eq!(NotInRoom.message(), "Not in any chat room");
        assert_eq!(EventIdMismatch.message(), "Event ID mismatch");
        assert_eq!(EmptyMessage.message(), "Empty message");
        assert_eq!(FailedToJoin.message(), "Failed to join chat");
        assert_eq!(FailedToSend.message(), "Failed to send message");
        assert_eq!(FailedToLeave.message(), "Failed to leave chat");
    }

    #[test]
    fn metric_labels_name_each_kind() {
        let all = [
            MissingIds,
            EventNotFound,
            Unauthorized,
            NotInRoom,
            EventIdMismatch,
            EmptyMessage,
            MessageNotText,
            MessageTooLong { max: 5 },
            BadTyping,
            FailedToJoin,
            FailedToSend,
            FailedToLeave,
            RateLimited,
            HistoryUnavailable,
            BadHistoryRequest,
            BadMessageId,
            UnknownMessage,
            NotAuthor,
            EditWindowPassed { window_secs: 900 },
            MessageDeleted,
            BadEmoji,
            BadReactionAction,
            UserIdMismatch,
            HistoryOff,
            FailedToSave { what: "reaction" },
            TooManyReactions,
            BadPayload,
            BadAttachments { max: 10 },
            AttachmentRefused { why: "x".into() },
            BadNotifySettings,
            NotificationsOff,
        ];
        assert_eq!(all.len(), crate::chat::metrics::ERROR_KINDS.len());
        // A second text under one label: `after_id`'s, added without changing the first.
        let all = all.into_iter().chain([BadHistoryAfter]);
        for e in all {
            let label = crate::chat::metrics::ERROR_KINDS[e.kind()];
            assert!(e.message().starts_with(label), "{label} for {e}");
        }
    }
}
