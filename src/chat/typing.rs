//! `typing` `{is_typing}`: tell the others in the room (`user-typing`); ignored outside a chat.

use std::sync::Arc;

use serde::Serialize;

use super::payload;
use super::payload::Fields;
use super::{answer, broadcast, chat_state, refuse, Chat, ChatError, Encoded};
use crate::engine::Dispatch;
use crate::socketio::Socket;

#[derive(Serialize)]
struct UserTyping {
    userid: i32,
    role: &'static str,
    is_typing: bool,
}

#[derive(Serialize)]
struct Ignored<'a> {
    error: &'a str,
}

pub fn typing(
    _chat: &Chat,
    socket: &Arc<Socket>,
    fields: Fields<'_>,
    ack: Option<u64>,
) -> Dispatch {
    let Some(member) = chat_state(socket).membership() else {
        // The original chat (docs/PROTOCOL.md) lists no error for this: no chat-error, but an ack (if asked) says why nothing happened.
        answer(
            socket,
            ack,
            &Encoded::new(&Ignored {
                error: &ChatError::NotInRoom.message(),
            }),
        );
        return Dispatch::Done;
    };
    let Some(is_typing) = payload::boolean(fields.is_typing) else {
        refuse(socket, ack, ChatError::BadTyping);
        return Dispatch::Done;
    };
    let payload = Encoded::new(&UserTyping {
        userid: member.userid,
        role: member.role.as_str(),
        is_typing,
    });
    broadcast(socket, &member.room, "user-typing", &payload, false, None);
    answer(socket, ack, &payload);
    Dispatch::Done
}
