//! `send-message` `{message, eventid?}`: the hot path. Validate, encode `receive-message` once, queue
//! the same frame to every member of the room (sender included).

use std::sync::Arc;

use chrono::Timelike;
use serde::Serialize;
use serde_json::value::RawValue;

use super::payload;
use super::payload::Fields;
use super::state::Membership;
use super::{answer, answer_error, broadcast, chat_state, refuse, Chat, ChatError, Encoded};
use crate::engine::Dispatch;
use crate::history::{History, OnStored, Reservation, Slot, StoredMessage};
use crate::socketio::Socket;

/// The `receive-message` payload: the original server's fields, plus the stored message's `id`
/// (docs/PROTOCOL.md, "receive-message"). In history,
/// a message that was edited, deleted or reacted to says so in fields that a live message never
/// has, so an untouched message in history is byte for byte the one delivered live.
#[derive(Serialize)]
pub(crate) struct ReceiveMessage<'a> {
    message: &'a str,
    userid: i32,
    sender_name: &'a str,
    role: &'static str,
    timestamp: String,
    eventid: i32,
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// A tombstone: `message` is empty.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Each emoji's total, in the order first used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactions: Option<super::reactions::Counts<'a>>,
    /// The emojis the member the page is for reacted with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub my_reactions: Vec<&'a str>,
    /// `[{file_id, name, size, content_type, url}]`, as sent (docs/FILES.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    attachments: Option<&'a RawValue>,
}

impl<'a> ReceiveMessage<'a> {
    /// The payload of a message, live or from history: both read the same.
    pub fn of(m: &'a StoredMessage) -> ReceiveMessage<'a> {
        ReceiveMessage {
            message: &m.message,
            userid: m.userid,
            sender_name: &m.sender_name,
            role: m.role.as_str(),
            timestamp: format_timestamp(m.created_at),
            eventid: m.eventid,
            id: m.id,
            edited_at: m.edited_at.map(format_timestamp),
            deleted: m.deleted_at.is_some(),
            deleted_at: m.deleted_at.map(format_timestamp),
            reactions: None,
            my_reactions: Vec::new(),
            // Stored as the JSON it was delivered with; a tombstone has none.
            attachments: m
                .attachments
                .as_deref()
                .filter(|_| m.deleted_at.is_none())
                .and_then(|a| serde_json::from_str(a).ok()),
        }
    }
}

/// Writes the digits by hand: this runs once per message, and chrono's general `format` machinery
/// cost more than the rest of the message's encoding.
pub fn format_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Datelike;
    fn put(out: &mut [u8], mut n: u32) {
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let mut b = *b"0000-00-00T00:00:00.000000";
    put(&mut b[0..4], t.year().clamp(0, 9999) as u32);
    put(&mut b[5..7], t.month());
    put(&mut b[8..10], t.day());
    put(&mut b[11..13], t.hour());
    put(&mut b[14..16], t.minute());
    put(&mut b[17..19], t.second());
    // A leap second shows as nanoseconds past 1e9; keep six digits.
    put(&mut b[20..26], (t.nanosecond() / 1000).min(999_999));
    String::from_utf8(b.to_vec()).expect("ASCII digits and punctuation")
}

/// The ack error of a message that was delivered but will not be stored.
pub const NOT_STORED: &str = "Message delivered but not stored";

pub fn send(chat: &Chat, socket: &Arc<Socket>, fields: Fields<'_>, ack: Option<u64>) -> Dispatch {
    match try_send(chat, socket, fields, ack) {
        Ok(dispatch) => dispatch,
        Err(e) => {
            refuse(socket, ack, e);
            Dispatch::Done
        }
    }
}

fn try_send(
    chat: &Chat,
    socket: &Arc<Socket>,
    fields: Fields<'_>,
    ack: Option<u64>,
) -> Result<Dispatch, ChatError> {
    let Some(member) = chat_state(socket).membership() else {
        return Err(ChatError::NotInRoom);
    };
    if payload::present(fields.eventid) && payload::id(fields.eventid) != Some(member.eventid) {
        return Err(ChatError::EventIdMismatch);
    }
    if let Some((files, ids)) = attachments(chat, fields.attachments)? {
        // With attachments the text may be empty (a photo without a caption).
        let message = caption(chat, fields.message)?;
        return Ok(attach_and_send(
            chat, files, socket, member, message, ids, ack,
        ));
    }
    let message = text(chat, fields.message)?;
    // Flow control: when the cluster's publish queue is full while Redis is up, or the history
    // writer's queue is full while the database keeps up, the sender waits for room (its later
    // packets wait behind it) rather than having its message lost to the other nodes or to history.
    let publish_room = chat.cluster.as_ref().and_then(|c| c.wait_for_room());
    if publish_room.is_none() {
        if let Slot::Now(reservation) = chat.history.reserve() {
            let text = Text {
                message,
                attachments: None,
            };
            let notify = chat.notify.as_deref();
            deliver(
                &chat.history,
                socket,
                &member,
                text,
                notify,
                ack,
                reservation,
            );
            return Ok(Dispatch::Done);
        }
    }
    let history = chat.history.clone();
    let notify = chat.notify.clone();
    let socket = socket.clone();
    Ok(Dispatch::Pending(Box::pin(async move {
        let text = Text {
            message,
            attachments: None,
        };
        let notify = notify.as_deref();
        deliver_when_room(&history, publish_room, &socket, &member, text, notify, ack).await;
    })))
}

/// Waits for room in the cluster's publish queue (if given) and the history writer's queue, then
/// delivers.
async fn deliver_when_room(
    history: &History,
    publish_room: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    socket: &Arc<Socket>,
    member: &Membership,
    text: Text,
    notify: Option<&crate::notify::Notifier>,
    ack: Option<u64>,
) {
    if let Some(room) = publish_room {
        room.await;
    }
    let reservation = match history.reserve() {
        Slot::Now(reservation) => reservation,
        Slot::Later(wait) => wait.await,
    };
    deliver(history, socket, member, text, notify, ack, reservation);
}

/// Files to attach, and the file sharing that claims them.
type Attaching = (Arc<crate::files::Files>, Vec<String>);

/// `attachments`: absent, `null` or `[]` (none: `None`), or an array of distinct file ids, at
/// most `--max-attachments`, with the file sharing that will claim them.
fn attachments(chat: &Chat, raw: Option<&RawValue>) -> Result<Option<Attaching>, ChatError> {
    let max = chat.files.as_ref().map_or(0, |f| f.config.max_attachments);
    let Some(raw) = raw.filter(|r| r.get().trim() != "null") else {
        return Ok(None);
    };
    let bad = ChatError::BadAttachments { max };
    let ids: Vec<String> = serde_json::from_str(raw.get()).map_err(|_| bad.clone())?;
    if ids.is_empty() {
        return Ok(None);
    }
    let Some(files) = chat.files.clone() else {
        return Err(ChatError::AttachmentRefused {
            why: "file sharing is off on this server".into(),
        });
    };
    let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len();
    if ids.len() > max || !distinct || !ids.iter().all(|id| crate::files::is_file_id(id)) {
        return Err(bad);
    }
    Ok(Some((files, ids)))
}

/// The text of a message with attachments: absent, or a string within the length limit (blank
/// allowed).
fn caption(chat: &Chat, raw: Option<&RawValue>) -> Result<String, ChatError> {
    match payload::string(raw).map_err(|_| ChatError::MessageNotText)? {
        None => Ok(String::new()),
        Some(t) if t.trim().is_empty() => Ok(String::new()),
        Some(_) => text(chat, raw),
    }
}

/// A message with attachments: the files are claimed first (each must be this user's upload to
/// this chat, not attached yet), then the message goes like any other, carrying them.
fn attach_and_send(
    chat: &Chat,
    files: Arc<crate::files::Files>,
    socket: &Arc<Socket>,
    member: Arc<Membership>,
    message: String,
    ids: Vec<String>,
    ack: Option<u64>,
) -> Dispatch {
    let history = chat.history.clone();
    let cluster = chat.cluster.clone();
    let notify = chat.notify.clone();
    let socket = socket.clone();
    Dispatch::Pending(Box::pin(async move {
        use crate::files::ClaimRefusal;
        let attachments = match files.claim(member.eventid, member.userid, &ids).await {
            Ok(Ok(attachments)) => attachments,
            Ok(Err(refusal)) => {
                let why = match refusal {
                    ClaimRefusal::Unknown(id) => format!("file {id} was not found"),
                    ClaimRefusal::NotYours(id) => {
                        format!("file {id} was not uploaded to this chat by you")
                    }
                    ClaimRefusal::AlreadyAttached(id) => {
                        format!("file {id} is already attached to a message")
                    }
                };
                refuse(&socket, ack, ChatError::AttachmentRefused { why });
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, eventid = member.eventid, "attachments not claimed");
                refuse(
                    &socket,
                    ack,
                    ChatError::FailedToSave {
                        what: "the message's attachments",
                    },
                );
                return;
            }
        };
        let json = serde_json::to_string(&attachments).ok().map(Arc::from);
        let room = cluster.as_ref().and_then(|c| c.wait_for_room());
        let text = Text {
            message,
            attachments: json,
        };
        let notify = notify.as_deref();
        deliver_when_room(&history, room, &socket, &member, text, notify, ack).await;
    }))
}

/// The text of a `send-message` or `edit-message`: a string, not blank, within the length limit.
pub(crate) fn text(chat: &Chat, raw: Option<&RawValue>) -> Result<String, ChatError> {
    let message = payload::string(raw)
        .map_err(|_| ChatError::MessageNotText)?
        .unwrap_or_default();
    if message.trim().is_empty() {
        return Err(ChatError::EmptyMessage);
    }
    let max = chat.config.max_message_chars;
    if message.len() > max && message.chars().count() > max {
        return Err(ChatError::MessageTooLong { max });
    }
    Ok(message.into_owned())
}

pub(crate) use crate::history::now;

/// What a message says: its text and its attachments (the JSON array it carries, if any).
struct Text {
    message: String,
    attachments: Option<Arc<str>>,
}

/// Gives the message its id and place in the chat's order, delivers it to the room, then hands it
/// to the history (the order lock held from the id to the store: see `History::order`).
fn deliver(
    history: &History,
    socket: &Arc<Socket>,
    member: &Membership,
    text: Text,
    notify: Option<&crate::notify::Notifier>,
    ack: Option<u64>,
    reservation: Reservation<'_>,
) {
    let Text {
        message,
        attachments,
    } = text;
    let created_at = now();
    let ordered = history.order(member.eventid, reservation);
    let stored = StoredMessage {
        id: ordered.id(),
        eventid: member.eventid,
        userid: member.userid,
        role: member.role,
        sender_name: member.name.clone(),
        message,
        created_at,
        edited_at: None,
        deleted_at: None,
        attachments,
    };
    if let Some(notify) = notify {
        notify.note(&stored);
    }
    let payload = Encoded::new(&ReceiveMessage::of(&stored));
    // Encoded once; every member's queue gets the same buffer.
    let offset = super::recovery::offsets(history).then_some(stored.id);
    broadcast(
        socket,
        &member.room,
        "receive-message",
        &payload,
        true,
        offset,
    );
    // The sender's ack, if asked, confirms storage: it waits for the commit.
    let on_stored = ack.map(|ack| {
        let socket = socket.clone();
        Box::new(move |kept: bool| {
            if kept {
                answer(&socket, Some(ack), &payload);
            } else {
                answer_error(&socket, Some(ack), NOT_STORED);
            }
        }) as OnStored
    });
    ordered.store(stored, on_stored);
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_matches_chrono_formatting() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .with_ymd_and_hms(2025, 11, 16, 10, 30, 0)
            .unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(super::format_timestamp(t), "2025-11-16T10:30:00.123456");
        let now = chrono::Utc::now();
        assert_eq!(
            super::format_timestamp(now),
            now.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
        );
    }

    #[test]
    fn timestamp_format() {
        let t = super::format_timestamp(chrono::Utc::now());
        assert_eq!(t.len(), 26, "{t}");
        assert_eq!(&t[10..11], "T");
        assert_eq!(&t[19..20], ".");
        assert!(t[20..].bytes().all(|b| b.is_ascii_digit()));
        assert!(!t.ends_with('Z'));
    }
}
