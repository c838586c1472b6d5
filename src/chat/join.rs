//! `join-chat` `{eventid, userid, role}`: authorize against the directory, leave the current chat if
//! it is another one, join `chat_{eventid}`, tell the joiner (`chat-joined`) and the others
//! (`user-joined-chat`).

use std::sync::Arc;

use serde::Serialize;

use super::payload::{self, Fields};
use super::state::{room_name, Membership};
use super::{broadcast, chat_state, leave, member_count, refuse, reply, Chat, ChatError, Encoded};
use crate::auth::AuthMode;
use crate::cluster::Cluster;
use crate::directory::{Role, Seat};
use crate::engine::Dispatch;
use crate::history::{Cursor, History};
use crate::socketio::Socket;

#[derive(Serialize)]
struct ChatJoined {
    eventid: i32,
    member_count: usize,
    role: &'static str,
}

#[derive(Serialize)]
struct UserJoined {
    userid: i32,
    role: &'static str,
    member_count: usize,
}

/// A join request that passed the checks that need no directory.
struct Request {
    eventid: i32,
    userid: i32,
    role: Role,
}

fn check(chat: &Chat, socket: &Socket, fields: Fields<'_>) -> Result<Request, ChatError> {
    let (Some(eventid), Some(userid)) = (payload::id(fields.eventid), payload::id(fields.userid))
    else {
        return Err(ChatError::MissingIds);
    };
    let role = payload::string(fields.role)
        .ok()
        .flatten()
        .and_then(|r| Role::parse(&r))
        .ok_or(ChatError::Unauthorized)?;
    if let AuthMode::Jwt(_) = chat.auth {
        if chat_state(socket).token_user != Some(userid) {
            return Err(ChatError::Unauthorized);
        }
    }
    Ok(Request {
        eventid,
        userid,
        role,
    })
}

pub fn join(chat: &Chat, socket: &Arc<Socket>, fields: Fields<'_>, ack: Option<u64>) -> Dispatch {
    let request = match check(chat, socket, fields) {
        Ok(r) => r,
        Err(e) => {
            refuse(socket, ack, e);
            return Dispatch::Done;
        }
    };
    let directory = chat.directory.clone();
    let history = chat.history.clone();
    let cluster = chat.cluster.clone();
    let notify = chat.notify.clone();
    let recovery = chat.recovery.clone();
    let socket = socket.clone();
    Dispatch::Pending(Box::pin(async move {
        if !history.schema_ready() {
            // Like a database outage: nothing of the chat can work until the tables are there.
            tracing::warn!(
                eventid = request.eventid,
                "join refused: the schema is not ready"
            );
            refuse(&socket, ack, ChatError::FailedToJoin);
            return;
        }
        let seat = directory
            .seat(request.eventid, request.userid, request.role)
            .await;
        match seat {
            Ok(Seat::Granted { name }) => {
                if let Some(entered) = enter(&history, &socket, &request, name) {
                    if let Some(member) = chat_state(&socket).membership() {
                        super::recovery::entered(
                            &recovery,
                            &socket,
                            &member,
                            entered.cursor.before,
                        );
                    }
                    if let Some(notify) = &notify {
                        if let Some((_, old)) = &entered.left {
                            super::presence::gone(notify, &socket, old.eventid, old.userid);
                        }
                        super::presence::active(notify, &socket, true);
                    }
                    announce(cluster.as_deref(), &socket, &request, &entered, ack).await;
                    let page = history.config().page;
                    super::history::send_page(
                        &history,
                        &socket,
                        request.eventid,
                        entered.cursor.before,
                        page,
                        Some(entered.cursor),
                        request.userid,
                        None,
                    )
                    .await;
                }
            }
            Ok(Seat::EventNotFound) => refuse(&socket, ack, ChatError::EventNotFound),
            Ok(Seat::NotMember) => refuse(&socket, ack, ChatError::Unauthorized),
            Err(e) => {
                tracing::warn!(error = %e, eventid = request.eventid, "join failed");
                refuse(&socket, ack, ChatError::FailedToJoin);
            }
        }
    }))
}

/// What a join changed, to be announced once the member counts are known.
struct Entered {
    room: String,
    /// Members of the room here after the join.
    count: usize,
    /// Joining the chat it is already in: confirm, announce nothing.
    again: bool,
    /// The chat it left to join this one, and the members left there.
    left: Option<(usize, Arc<Membership>)>,
    cursor: Cursor,
}

/// Puts an authorized socket into the event's room (`None` if it disconnected meanwhile).
fn enter(
    history: &History,
    socket: &Arc<Socket>,
    request: &Request,
    name: String,
) -> Option<Entered> {
    let state = chat_state(socket);
    let room = room_name(request.eventid);
    let mut inner = state.lock();
    if inner.gone {
        return None;
    }
    let again = inner.membership.as_ref().is_some_and(|m| {
        m.eventid == request.eventid && m.userid == request.userid && m.role == request.role
    });
    if again {
        drop(inner);
        let (count, cursor) = history.join(request.eventid, || socket.room_size(&room));
        return Some(Entered {
            room,
            count,
            again,
            left: None,
            cursor,
        });
    }
    // A socket is in at most one chat: leave the current one first.
    let left = inner
        .membership
        .take()
        .map(|old| (socket.leave(&old.room), old));
    // Under the chat's order lock: history up to the cursor, live messages after it.
    let (count, cursor) = history.join(request.eventid, || socket.join(&room));
    inner.membership = Some(Arc::new(Membership {
        eventid: request.eventid,
        userid: request.userid,
        role: request.role,
        name: name.into(),
        room: room.clone(),
    }));
    Some(Entered {
        room,
        count,
        again,
        left,
        cursor,
    })
}

/// Tells the joiner (`chat-joined`) and the room (`user-joined-chat`), with member counts that are
/// cluster-wide in cluster mode.
async fn announce(
    cluster: Option<&Cluster>,
    socket: &Arc<Socket>,
    request: &Request,
    entered: &Entered,
    ack: Option<u64>,
) {
    if let Some((remaining, old)) = &entered.left {
        leave::announce_left(cluster, socket, old, *remaining).await;
    }
    let delta = if entered.again { 0 } else { 1 };
    let count = member_count(cluster, socket, &entered.room, delta, entered.count).await;
    let joined = ChatJoined {
        eventid: request.eventid,
        member_count: count,
        role: request.role.as_str(),
    };
    reply(socket, ack, "chat-joined", &Encoded::new(&joined));
    if entered.again {
        return;
    }
    let announce = UserJoined {
        userid: request.userid,
        role: request.role.as_str(),
        member_count: count,
    };
    broadcast(
        socket,
        &entered.room,
        "user-joined-chat",
        &Encoded::new(&announce),
        false,
        None,
    );
}
