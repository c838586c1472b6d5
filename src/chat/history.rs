//! `chat-history` `{eventid, messages, has_more}`: the latest page of a chat, sent after every
//! `chat-joined`, and older pages on `load-history` `{eventid?, before_id?, limit?}`.
//!
//! Only a member reads a chat's history: `load-history` is answered for the chat the socket is in
//! (joined through the directory's authorization), never for an event id the client names.
//! `messages` are oldest first and shaped like `receive-message` payloads (with `id`); `has_more`
//! says older ones exist, to be asked for with `before_id` = the first message's id.
//!
//! `load-history` `{after_id}` reads the other way, for a client that reconnected without
//! connection state recovery and wants only what it has not seen: the `limit` oldest messages
//! newer than `after_id`, and `has_more` says newer ones exist (ask again with `after_id` = the
//! last message's id). `before_id` and `after_id` together are refused (with a text of their own:
//! the one for `before_id` and `limit` is unchanged).

use std::sync::Arc;

use serde::Serialize;

use super::message::ReceiveMessage;
use super::payload::Fields;
use super::reactions::Counts;
use super::receipts::MessagesRead;
use super::{chat_state, payload, refuse, reply, Chat, ChatError, Encoded};
use crate::engine::Dispatch;
use crate::history::{Cursor, History};
use crate::socketio::Socket;

#[derive(Serialize)]
struct ChatHistory<'a> {
    eventid: i32,
    messages: Vec<ReceiveMessage<'a>>,
    has_more: bool,
    /// Every member's read mark (`{userid, role, last_read_id, timestamp}`), so a late joiner
    /// can draw the ticks.
    read_receipts: Vec<MessagesRead>,
}

/// Sends `limit` messages of `eventid`'s chat with ids below `before` (a join passes its cursor),
/// with `my_reactions` for `viewer`.
#[allow(clippy::too_many_arguments)]
pub async fn send_page(
    history: &History,
    socket: &Arc<Socket>,
    eventid: i32,
    before: i64,
    limit: usize,
    cursor: Option<Cursor>,
    viewer: i32,
    ack: Option<u64>,
) {
    let page = history.page(eventid, before, limit, cursor, viewer).await;
    answer_page(socket, eventid, page, ack);
}

/// Sends `chat-history` with `page`, or the error of a failed read.
fn answer_page(
    socket: &Socket,
    eventid: i32,
    page: Result<crate::history::Page, crate::history::HistoryError>,
    ack: Option<u64>,
) {
    match page {
        Ok(page) => {
            let messages = page
                .messages
                .iter()
                .map(|m| {
                    let mut out = ReceiveMessage::of(m);
                    if let Some(counts) = page.reactions.get(&m.id) {
                        out.reactions = Some(Counts(
                            counts.iter().map(|c| (c.emoji.as_str(), c.count)).collect(),
                        ));
                        out.my_reactions = counts
                            .iter()
                            .filter(|c| c.mine)
                            .map(|c| c.emoji.as_str())
                            .collect();
                    }
                    out
                })
                .collect();
            let payload = ChatHistory {
                eventid,
                messages,
                has_more: page.has_more,
                read_receipts: page
                    .reads
                    .iter()
                    .map(|r| MessagesRead::of(None, r))
                    .collect(),
            };
            reply(socket, ack, "chat-history", &Encoded::new(&payload));
        }
        Err(e) => {
            tracing::warn!(error = %e, eventid, "history query failed");
            refuse(socket, ack, ChatError::HistoryUnavailable);
        }
    }
}

pub fn load(chat: &Chat, socket: &Arc<Socket>, fields: Fields<'_>, ack: Option<u64>) -> Dispatch {
    let Some(member) = chat_state(socket).membership() else {
        refuse(socket, ack, ChatError::NotInRoom);
        return Dispatch::Done;
    };
    if payload::present(fields.eventid) && payload::id(fields.eventid) != Some(member.eventid) {
        refuse(socket, ack, ChatError::EventIdMismatch);
        return Dispatch::Done;
    }
    let (Ok(before), Ok(limit)) = (
        payload::positive(fields.before_id),
        payload::positive(fields.limit),
    ) else {
        refuse(socket, ack, ChatError::BadHistoryRequest);
        return Dispatch::Done;
    };
    let after = match payload::positive(fields.after_id) {
        Ok(after) if !(after.is_some() && before.is_some()) => after,
        _ => {
            refuse(socket, ack, ChatError::BadHistoryAfter);
            return Dispatch::Done;
        }
    };
    let config = chat.history.config();
    let limit = limit.map_or(config.page, |l| (l as usize).min(config.max_page));
    let before = before.unwrap_or(i64::MAX);
    let history = chat.history.clone();
    let socket = socket.clone();
    Dispatch::Pending(Box::pin(async move {
        let (eventid, viewer) = (member.eventid, member.userid);
        match after {
            Some(after) => {
                let page = history.page_after(eventid, after, limit, viewer).await;
                answer_page(&socket, eventid, page, ack);
            }
            None => send_page(&history, &socket, eventid, before, limit, None, viewer, ack).await,
        }
    }))
}
