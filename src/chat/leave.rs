//! `leave-chat` `{eventid?}` and disconnects: leave the room, tell the leaver (`chat-left`) and the
//! rest (`user-left-chat`).

use std::sync::Arc;

use serde::Serialize;

use super::payload;
use super::payload::Fields;
use super::state::Membership;
use super::{broadcast, chat_state, member_count, refuse, reply, Chat, ChatError, Encoded};
use crate::cluster::Cluster;
use crate::engine::Dispatch;
use crate::socketio::{DisconnectReason, Socket};

#[derive(Serialize)]
struct ChatLeft {
    eventid: i32,
}

#[derive(Serialize)]
struct UserLeft {
    userid: i32,
    role: &'static str,
    member_count: usize,
}

pub fn leave(chat: &Chat, socket: &Arc<Socket>, fields: Fields<'_>, ack: Option<u64>) -> Dispatch {
    // The payload is optional (`Chat::event` refused one that is not an object).
    let state = chat_state(socket);
    let (old, remaining) = {
        let mut inner = state.lock();
        let Some(current) = inner.membership.as_ref() else {
            drop(inner);
            refuse(socket, ack, ChatError::NotInRoom);
            return Dispatch::Done;
        };
        if payload::present(fields.eventid) && payload::id(fields.eventid) != Some(current.eventid)
        {
            drop(inner);
            refuse(socket, ack, ChatError::EventIdMismatch);
            return Dispatch::Done;
        }
        let old = inner.membership.take().expect("checked above");
        let remaining = socket.leave(&old.room);
        (old, remaining)
    };
    if let Some(notify) = &chat.notify {
        super::presence::gone(notify, socket, old.eventid, old.userid);
    }
    super::recovery::left(&chat.recovery, socket);
    reply(
        socket,
        ack,
        "chat-left",
        &Encoded::new(&ChatLeft {
            eventid: old.eventid,
        }),
    );
    announce_left_soon(chat, socket, old, remaining);
    Dispatch::Done
}

/// Tells the rest of `old`'s room that this socket left; in cluster mode once the cluster-wide
/// count is known, from a task of its own.
fn announce_left_soon(chat: &Chat, socket: &Arc<Socket>, old: Arc<Membership>, remaining: usize) {
    let Some(cluster) = chat.cluster.clone() else {
        send_left(socket, &old, remaining);
        return;
    };
    let socket = socket.clone();
    tokio::spawn(async move { announce_left(Some(&cluster), &socket, &old, remaining).await });
}

/// Tells the rest of `old`'s room that this socket left (`remaining` members here).
pub async fn announce_left(
    cluster: Option<&Cluster>,
    socket: &Arc<Socket>,
    old: &Membership,
    remaining: usize,
) {
    let count = member_count(cluster, socket, &old.room, -1, remaining).await;
    send_left(socket, old, count);
}

fn send_left(socket: &Socket, old: &Membership, count: usize) {
    let payload = UserLeft {
        userid: old.userid,
        role: old.role.as_str(),
        member_count: count,
    };
    broadcast(
        socket,
        &old.room,
        "user-left-chat",
        &Encoded::new(&payload),
        false,
        None,
    );
}

/// The socket is gone: leave its chat, if any, and make sure a join in flight does not bring it back.
pub fn on_disconnect(chat: &Chat, socket: &Arc<Socket>, reason: DisconnectReason) {
    let state = chat_state(socket);
    let left = {
        let mut inner = state.lock();
        inner.gone = true;
        inner
            .membership
            .take()
            .map(|old| (socket.leave(&old.room), old))
    };
    if left.is_some() {
        match reason {
            // The connection was lost: the client may come back within the window.
            DisconnectReason::Session(_) => super::recovery::disconnected(&chat.recovery, socket),
            // Either side ended the socket on purpose: there is nothing to come back to.
            DisconnectReason::ClientNamespaceDisconnect
            | DisconnectReason::ServerNamespaceDisconnect => {
                super::recovery::left(&chat.recovery, socket)
            }
        }
    }
    if let Some((remaining, old)) = left {
        if let Some(notify) = &chat.notify {
            super::presence::gone(notify, socket, old.eventid, old.userid);
        }
        announce_left_soon(chat, socket, old, remaining);
    }
}
