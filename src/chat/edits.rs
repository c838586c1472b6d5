//! `edit-message` `{eventid, userid, message_id, message}` and `delete-message`
//! `{eventid, userid, message_id}`: only by the message's author; editing only within
//! `--edit-window-secs` of sending (deleting at any time), with `send-message`'s text rules. The
//! room, the author included, gets `message-edited` `{eventid, message_id, message, edited_at}` or
//! `message-deleted` `{eventid, message_id, deleted_at}`. Deleting a deleted message answers the
//! first deletion and tells nobody.

use std::sync::Arc;

use serde::Serialize;

use super::message::{format_timestamp, now, text};
use super::payload::Fields;
use super::Encoded;
use super::{about_message, answer, change_error, refuse, told, Chat};
use crate::engine::Dispatch;
use crate::history::annotations::{Change, ChangeKind};
use crate::socketio::Socket;

#[derive(Serialize)]
struct MessageEdited<'a> {
    eventid: i32,
    message_id: i64,
    message: &'a str,
    edited_at: String,
}

#[derive(Serialize)]
struct MessageDeleted {
    eventid: i32,
    message_id: i64,
    deleted_at: String,
}

pub fn edit(chat: &Chat, socket: &Arc<Socket>, fields: Fields<'_>, ack: Option<u64>) -> Dispatch {
    let checked =
        about_message(socket, &fields).and_then(|about| Ok((about, text(chat, fields.message)?)));
    match checked {
        Ok(((member, message_id), text)) => {
            let window = chat.config.edit_window;
            let kind = ChangeKind::Edit { text, window };
            apply(chat, socket, member, message_id, kind, ack)
        }
        Err(e) => {
            refuse(socket, ack, e);
            Dispatch::Done
        }
    }
}

pub fn delete(chat: &Chat, socket: &Arc<Socket>, fields: Fields<'_>, ack: Option<u64>) -> Dispatch {
    match about_message(socket, &fields) {
        Ok((member, message_id)) => {
            apply(chat, socket, member, message_id, ChangeKind::Delete, ack)
        }
        Err(e) => {
            refuse(socket, ack, e);
            Dispatch::Done
        }
    }
}

fn apply(
    chat: &Chat,
    socket: &Arc<Socket>,
    member: Arc<super::state::Membership>,
    message_id: i64,
    kind: ChangeKind,
    ack: Option<u64>,
) -> Dispatch {
    let history = chat.history.clone();
    let files = chat.files.clone();
    let audit = chat.config.edit_audit;
    let socket = socket.clone();
    Dispatch::Pending(Box::pin(async move {
        let change = Change {
            eventid: member.eventid,
            message_id,
            userid: member.userid,
            at: now(),
            audit,
            kind,
        };
        // Held until the room is told (see reactions.rs).
        history.stored_so_far(member.eventid).await;
        let _order = history.lock_chat(member.eventid).await;
        let what = match change.kind {
            ChangeKind::Edit { .. } => "edit",
            ChangeKind::Delete => "deletion",
        };
        let done = match history.change(&change).await {
            Ok(done) => done,
            Err(e) => {
                refuse(&socket, ack, change_error(e, what));
                return;
            }
        };
        let (event, payload) = match &change.kind {
            ChangeKind::Edit { text, .. } => (
                "message-edited",
                Encoded::new(&MessageEdited {
                    eventid: member.eventid,
                    message_id,
                    message: text,
                    edited_at: format_timestamp(change.at),
                }),
            ),
            ChangeKind::Delete => (
                "message-deleted",
                Encoded::new(&MessageDeleted {
                    eventid: member.eventid,
                    message_id,
                    deleted_at: format_timestamp(done.at),
                }),
            ),
        };
        if done.now {
            told(&history, &socket, &member, event, &payload, true);
        }
        answer(&socket, ack, &payload);
        // A deleted message's files go with it.
        if let (Some(files), Some(attachments)) = (files, done.attachments) {
            let ids = crate::files::attachment_ids(&attachments);
            if !ids.is_empty() {
                tokio::spawn(async move { files.delete(&ids).await });
            }
        }
    }))
}
