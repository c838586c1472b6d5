//! The chat's side of offline notifications (docs/NOTIFICATIONS.md): telling the notifier who is
//! here (a socket's events keep its member present; leaving or disconnecting ends it), and
//! `notify-settings` `{enabled}`, a member's own opt-out.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::payload::Fields;
use super::{chat_state, refuse, reply, Chat, ChatError, Encoded};
use crate::engine::Dispatch;
use crate::notify::Notifier;
use crate::socketio::Socket;

/// A socket's activity is reported at most this often: presence is a window of minutes, and a
/// busy chat must not write to Redis on every message.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The socket (in a chat) was active just now; `now` reports it even if it did recently (a join).
pub fn active(notify: &Arc<Notifier>, socket: &Socket, now: bool) {
    let state = chat_state(socket);
    let member = {
        let mut inner = state.lock();
        let Some(member) = inner.membership.clone() else {
            return;
        };
        let t = tokio::time::Instant::now();
        if !now && inner.seen.is_some_and(|seen| t - seen < REPORT_EVERY) {
            return;
        }
        inner.seen = Some(t);
        member
    };
    let notify = notify.clone();
    let sid = socket.id().to_string();
    tokio::spawn(async move {
        notify
            .presence
            .active(member.eventid, member.userid, &sid)
            .await;
    });
}

/// The socket left `eventid`'s chat as `userid`.
pub fn gone(notify: &Arc<Notifier>, socket: &Socket, eventid: i32, userid: i32) {
    let notify = notify.clone();
    let sid = socket.id().to_string();
    tokio::spawn(async move { notify.presence.gone(eventid, userid, &sid).await });
}

#[derive(Serialize)]
struct Settings {
    enabled: bool,
}

/// `notify-settings` `{enabled: true|false}`: whether the member wants offline notifications.
/// Answered with `notify-settings` `{enabled}` (and the ack).
pub fn settings(
    chat: &Chat,
    socket: &Arc<Socket>,
    fields: Fields<'_>,
    ack: Option<u64>,
) -> Dispatch {
    let Some(member) = chat_state(socket).membership() else {
        refuse(socket, ack, ChatError::NotInRoom);
        return Dispatch::Done;
    };
    let enabled = match fields.enabled.map(|r| r.get().trim()) {
        Some("true") => true,
        Some("false") => false,
        _ => {
            refuse(socket, ack, ChatError::BadNotifySettings);
            return Dispatch::Done;
        }
    };
    let Some(notify) = chat.notify.clone() else {
        refuse(socket, ack, ChatError::NotificationsOff);
        return Dispatch::Done;
    };
    let socket = socket.clone();
    Dispatch::Pending(Box::pin(async move {
        match notify.set_enabled(member.userid, enabled).await {
            Ok(()) => reply(
                &socket,
                ack,
                "notify-settings",
                &Encoded::new(&Settings { enabled }),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "notification settings not saved");
                refuse(
                    &socket,
                    ack,
                    ChatError::FailedToSave {
                        what: "notification settings",
                    },
                );
            }
        }
    }))
}
