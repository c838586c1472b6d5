//! `mark-read` `{eventid, userid, message_id}`: the member has read up to `message_id`. The other
//! members (the same user's other tabs included) get `messages-read`
//! `{eventid, userid, role, last_read_id, timestamp}` once the mark is applied, which is at most
//! `--read-flush-ms` later: marks are coalesced (`history/reads.rs`). A mark never moves back; one
//! that would is answered with the member's current mark and tells nobody.

use std::sync::Arc;

use serde::Serialize;

use super::message::{format_timestamp, now};
use super::payload::Fields;
use super::{about_message, answer, change_error, refuse, told, Chat, Encoded};
use crate::engine::Dispatch;
use crate::history::annotations::{ReadMark, ReadRequest};
use crate::history::reads::ReadOutcome;
use crate::socketio::Socket;

/// The `messages-read` payload, and each entry of `chat-history`'s `read_receipts`.
#[derive(Serialize)]
pub(crate) struct MessagesRead {
    #[serde(skip_serializing_if = "Option::is_none")]
    eventid: Option<i32>,
    userid: i32,
    role: &'static str,
    last_read_id: i64,
    timestamp: String,
}

impl MessagesRead {
    pub fn of(eventid: Option<i32>, mark: &ReadMark) -> MessagesRead {
        MessagesRead {
            eventid,
            userid: mark.userid,
            role: mark.role.as_str(),
            last_read_id: mark.last_read_id,
            timestamp: format_timestamp(mark.read_at),
        }
    }
}

pub fn mark_read(
    chat: &Chat,
    socket: &Arc<Socket>,
    fields: Fields<'_>,
    ack: Option<u64>,
) -> Dispatch {
    let (member, message_id) = match about_message(socket, &fields) {
        Ok(about) => about,
        Err(e) => {
            refuse(socket, ack, e);
            return Dispatch::Done;
        }
    };
    let request = ReadRequest {
        eventid: member.eventid,
        userid: member.userid,
        role: member.role,
        message_id,
        at: now(),
    };
    let socket = socket.clone();
    let history = chat.history.clone();
    chat.history.mark_read(
        request,
        Box::new(move |outcome| match outcome {
            ReadOutcome::Refused(e) => refuse(&socket, ack, change_error(e, "read mark")),
            ReadOutcome::Marked { mark, announce } => {
                let payload = Encoded::new(&MessagesRead::of(Some(member.eventid), &mark));
                if announce {
                    told(&history, &socket, &member, "messages-read", &payload, false);
                }
                answer(&socket, ack, &payload);
            }
        }),
    );
    Dispatch::Done
}
