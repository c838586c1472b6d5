//! Connection state recovery (docs/RECOVERY.md): a client that lost its connection for less than
//! `--recovery-window-secs` reconnects with the private session id (`pid`) and the last offset it
//! received, on any node; it gets its socket back (same id, same chat, no `join-chat`, nobody told
//! `user-joined-chat`) and every `receive-message`, `message-edited`, `message-deleted`,
//! `message-reaction` and `messages-read` it missed, in order, once.
//!
//! Offsets are ids: a message's id, or the id a change got when the room was told of it
//! (`History::order_change`), sent as a last string argument of those five events. What the
//! client missed is what its chat saw after its offset (or after its join's history, if it
//! received no offset since), read back from the history and the change log (`History::missed`).
//!
//! The order of a recovery: the session and the directory are checked, and what was missed so far
//! is read (`recover`: any refusal here falls back to a normal connect); then the socket enters
//! its room under the chat's order lock, holding what the room sends it, is sent what it missed,
//! with what the room saw between the first read and its entry read a second time, and is
//! released: held frames already sent are dropped, by their offsets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::message::ReceiveMessage;
use super::state::{room_name, ChatSocket, Membership};
use super::{chat_state, member_count, metrics, Chat, Encoded};
use crate::auth::AuthMode;
use crate::directory::Seat;
use crate::engine::Outgoing;
use crate::history::{History, Missed};
use crate::recovery::{Record, Sessions};
use crate::socketio::{RecoveryRequest, Restore, Socket};

/// Recovery settings (flags in `config.rs`).
pub struct Recovery {
    pub sessions: Arc<Sessions>,
    /// The most messages and changes sent again; a client that missed more reconnects normally
    /// (and reads its history).
    pub max_replay: usize,
    /// In cluster mode, how long a recovery lets other nodes store what they delivered just
    /// before it (their writers gather for milliseconds).
    pub foreign_grace: Option<Duration>,
}

/// What `recover` found, for `restored`.
struct Restoring {
    record: Record,
    name: String,
    token_user: Option<i32>,
    /// The newest id the client has.
    after: i64,
    /// What it missed up to the first read.
    missed: Vec<Missed>,
    /// Where the first read ended.
    first_before: i64,
}

/// The offset of a broadcast: the id of the message or change, as a string argument.
pub fn offset_arg(id: i64) -> String {
    format!("\"{id}\"")
}

/// The offset a frame built with [`offset_arg`] carries (its last argument), if any.
pub fn frame_offset(item: &Outgoing) -> Option<i64> {
    use chatgate_codec::engine::Frame;
    let Some(Frame::Text(text)) = item.frames().first() else {
        return None;
    };
    let body = text.as_str().strip_suffix("\"]")?;
    let start = body.rfind('"')?;
    body[start + 1..].parse().ok()
}

impl Chat {
    pub(super) fn recover_session(
        &self,
        request: RecoveryRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Restore>> + Send>> {
        let Some(recovery) = self.recovery.clone() else {
            return Box::pin(async { None });
        };
        let (history, directory, auth) = (
            self.history.clone(),
            self.directory.clone(),
            self.auth.clone(),
        );
        Box::pin(async move {
            let refused = |why: &'static str| {
                metrics::METRICS.recovery(why);
                None
            };
            let record = match recovery.sessions.find(&request.pid).await {
                Ok(Some(record)) => record,
                Ok(None) => return refused("unknown"),
                Err(e) => {
                    tracing::warn!(error = %e, "recovery: session lookup failed");
                    return refused("unavailable");
                }
            };
            // JWT mode: the token sent again must still be valid, and name the same user.
            let token_user = match &auth {
                AuthMode::Trust => None,
                AuthMode::Jwt(verifier) => {
                    let raw = request
                        .auth
                        .as_deref()
                        .and_then(|a| serde_json::from_str(a).ok());
                    match verifier.verify_auth(raw) {
                        Ok(user) if user == record.userid => Some(user),
                        _ => return refused("unauthorized"),
                    }
                }
            };
            if !history.schema_ready() {
                return refused("unavailable");
            }
            let name = match directory
                .seat(record.eventid, record.userid, record.role)
                .await
            {
                Ok(Seat::Granted { name }) => name,
                Ok(_) => return refused("unauthorized"),
                Err(e) => {
                    tracing::warn!(error = %e, "recovery: directory check failed");
                    return refused("unavailable");
                }
            };
            let offset = request
                .offset
                .as_deref()
                .and_then(|o| o.parse::<i64>().ok());
            let after = offset.unwrap_or(i64::MIN).max(record.since);
            let cursor = history.join(record.eventid, || ()).1;
            let missed = match history
                .missed(record.eventid, after, cursor, recovery.max_replay)
                .await
            {
                Ok(Some(missed)) => missed,
                Ok(None) => return refused("too_much"),
                Err(e) => {
                    tracing::warn!(error = %e, "recovery: history read failed");
                    return refused("unavailable");
                }
            };
            Some(Restore {
                sid: record.sid.clone().into(),
                state: Box::new(Restoring {
                    record,
                    name,
                    token_user,
                    after,
                    missed,
                    first_before: cursor.before,
                }),
            })
        })
    }

    pub(super) fn restore_session(
        &self,
        socket: Arc<Socket>,
        state: Box<dyn std::any::Any + Send>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (Some(recovery), Ok(state)) = (self.recovery.clone(), state.downcast::<Restoring>())
        else {
            return Box::pin(async {});
        };
        let (history, cluster, notify) = (
            self.history.clone(),
            self.cluster.clone(),
            self.notify.clone(),
        );
        Box::pin(async move {
            let Restoring {
                record,
                name,
                token_user,
                after,
                missed,
                first_before,
            } = *state;
            socket.set_data(ChatSocket::new(token_user));
            let room = room_name(record.eventid);
            let entered = {
                let mut inner = chat_state(&socket).lock();
                if inner.gone {
                    None
                } else {
                    let entered = history.join(record.eventid, || socket.join(&room));
                    inner.membership = Some(Arc::new(Membership {
                        eventid: record.eventid,
                        userid: record.userid,
                        role: record.role,
                        name: name.into(),
                        room: room.clone(),
                    }));
                    Some(entered)
                }
            };
            let Some((count, cursor)) = entered else {
                socket.release(|_| false);
                return;
            };
            if let Some(pid) = socket.pid() {
                recovery
                    .sessions
                    .entered(pid, conn(&socket), record.clone());
            }
            if let Some(notify) = &notify {
                super::presence::active(notify, &socket, true);
            }
            // The room's count includes it again; nobody is told (it never asked to join).
            member_count(cluster.as_deref(), &socket, &room, 1, count).await;
            if let Some(grace) = recovery.foreign_grace {
                tokio::time::sleep(grace).await;
            }
            let from = missed
                .last()
                .map_or(after, |m| m.id())
                .max(first_before - 1);
            let rest = match history
                .missed(record.eventid, from, cursor, recovery.max_replay)
                .await
            {
                Ok(Some(rest)) => Ok(rest),
                Ok(None) => Err("no longer kept".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            let mut sent = HashSet::new();
            for item in missed.iter().chain(rest.iter().flatten()) {
                if sent.insert(item.id()) {
                    let _ = socket.send_before_held(frame_of(socket.nsp(), item));
                }
            }
            metrics::METRICS.recovered(sent.len());
            if let Err(e) = rest {
                // What the room saw during the recovery could not be read: end this connection,
                // so that the client reconnects with the offset it has now.
                tracing::warn!(error = %e, "recovery: second read failed");
                socket.release(|_| false);
                socket
                    .session()
                    .close(crate::engine::CloseReason::TransportError);
                return;
            }
            socket.release(|item| frame_offset(item).is_none_or(|id| !sent.contains(&id)));
        })
    }
}

/// The frame a missed item is sent again in: what the room was sent, with its offset.
fn frame_of(nsp: &str, item: &Missed) -> Outgoing {
    match item {
        Missed::Message(m) => {
            Encoded::new(&ReceiveMessage::of(m)).frame_with_offset(nsp, "receive-message", m.id)
        }
        Missed::Change(c) => Encoded::raw(&c.payload).frame_with_offset(nsp, &c.event, c.id),
    }
}

/// The connection number of the socket's current transport session.
fn conn(socket: &Socket) -> i64 {
    crate::recovery::connection_number(socket.session().sid())
}

/// The socket joined `membership`'s chat; its history ends below `before`.
pub(super) fn entered(
    recovery: &Option<Arc<Recovery>>,
    socket: &Socket,
    membership: &Membership,
    before: i64,
) {
    let (Some(recovery), Some(pid)) = (recovery, socket.pid()) else {
        return;
    };
    recovery.sessions.entered(
        pid,
        conn(socket),
        Record {
            sid: socket.id().to_string(),
            eventid: membership.eventid,
            userid: membership.userid,
            role: membership.role,
            since: before - 1,
        },
    );
}

/// The socket left its chat: nothing to recover.
pub(super) fn left(recovery: &Option<Arc<Recovery>>, socket: &Socket) {
    if let (Some(recovery), Some(pid)) = (recovery, socket.pid()) {
        recovery.sessions.left(pid);
    }
}

/// The socket's connection ended (it may come back).
pub(super) fn disconnected(recovery: &Option<Arc<Recovery>>, socket: &Socket) {
    if let (Some(recovery), Some(pid)) = (recovery, socket.pid()) {
        recovery.sessions.disconnected(pid, conn(socket));
    }
}

/// Whether replayable events carry offsets (recovery is on).
pub(super) fn offsets(history: &History) -> bool {
    history.config().log_changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_of_a_frame_is_its_last_argument() {
        let payload = Encoded::raw(r#"{"message":"ends with a quote and bracket \"]","id":7}"#);
        let with = payload.frame_with_offset("/", "receive-message", 249_525_725_294_592);
        assert_eq!(frame_offset(&with), Some(249_525_725_294_592));
        assert_eq!(frame_offset(&payload.frame("/", "receive-message")), None);
        let other = Encoded::raw(r#""not an offset""#).frame("/", "x");
        assert_eq!(frame_offset(&other), None);
    }
}
