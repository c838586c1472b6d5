//! The tutor/tutee chat (docs/PROTOCOL.md), as a Socket.IO namespace.
//!
//! One file per client event: `join.rs` (`join-chat`), `message.rs` (`send-message`), `leave.rs`
//! (`leave-chat` and disconnect), `typing.rs` (`typing`), `history.rs` (`load-history`, and the
//! `chat-history` sent after a join), `receipts.rs` (`mark-read`), `reactions.rs`
//! (`react-message`), `edits.rs` (`edit-message`, `delete-message`). `errors.rs` holds every
//! `chat-error` text,
//! `payload.rs` the reading of client payloads, `state.rs` what is kept per socket.
//!
//! Follow a chat message: the WebSocket task reads a frame -> codec decode -> `socketio` routes the
//! `send-message` event to [`Chat::event`] -> `message.rs` validates it and encodes `receive-message`
//! once -> `Socket::broadcast_all` -> the room shard's member list -> each member's outbox -> each
//! member's WebSocket task drains its outbox and flushes once.

pub mod edits;
pub mod errors;
pub mod history;
pub mod join;
pub mod leave;
pub mod message;
pub mod metrics;
pub mod payload;
pub mod presence;
pub mod reactions;
pub mod receipts;
pub mod recovery;
pub mod state;
pub mod typing;

use std::sync::Arc;

use chatgate_codec::socket::EventWriter;
use chatgate_codec::ByteStr;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::AuthMode;
use crate::cluster::Cluster;
use crate::directory::Directory;
use crate::engine::Dispatch;
use crate::history::annotations::ChangeError;
use crate::history::History;
use crate::socketio::{text_frame, DisconnectReason, IncomingEvent, Namespace, Refusal, Socket};
pub use errors::ChatError;
use state::{Budget, ChatSocket, Membership};

/// Chat settings (their defaults: the flags in `config.rs`).
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Longest accepted message, in characters (Unicode scalar values).
    pub max_message_chars: usize,
    /// `send-message` per socket.
    pub message_rate: crate::rate::RateLimit,
    /// `typing` per socket.
    pub typing_rate: crate::rate::RateLimit,
    /// `mark-read` per socket (a client marks as it scrolls, so more than messages).
    pub read_rate: crate::rate::RateLimit,
    /// `react-message` per socket.
    pub reaction_rate: crate::rate::RateLimit,
    /// How long after sending its author may edit a message.
    pub edit_window: std::time::Duration,
    /// Keep old texts in `chatgate_message_audit`.
    pub edit_audit: bool,
}

pub struct Chat {
    pub(crate) directory: Arc<dyn Directory>,
    pub(crate) history: Arc<History>,
    /// In cluster mode: member counts across nodes, and flow control for messages.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// File sharing (`--files on`): attachments are claimed through it.
    pub(crate) files: Option<Arc<crate::files::Files>>,
    /// Offline notifications: presence is kept here, settings changed here.
    pub(crate) notify: Option<Arc<crate::notify::Notifier>>,
    /// Connection state recovery (`--recovery-window-secs`), when on.
    pub(crate) recovery: Option<Arc<recovery::Recovery>>,
    pub(crate) auth: AuthMode,
    pub(crate) config: ChatConfig,
}

impl Chat {
    /// The budget `event` draws on, with its limit; `None` for events that are not rate limited.
    fn budget(&self, event: &str) -> Option<(Budget, crate::rate::RateLimit)> {
        let c = &self.config;
        match event {
            "send-message" | "load-history" | "edit-message" | "delete-message" => {
                Some((Budget::Messages, c.message_rate))
            }
            "typing" => Some((Budget::Typing, c.typing_rate)),
            "react-message" => Some((Budget::Reactions, c.reaction_rate)),
            "mark-read" => Some((Budget::Reads, c.read_rate)),
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        directory: Arc<dyn Directory>,
        history: Arc<History>,
        cluster: Option<Arc<Cluster>>,
        files: Option<Arc<crate::files::Files>>,
        notify: Option<Arc<crate::notify::Notifier>>,
        recovery: Option<recovery::Recovery>,
        auth: AuthMode,
        config: ChatConfig,
    ) -> Arc<Chat> {
        Arc::new(Chat {
            directory,
            history,
            cluster,
            files,
            notify,
            recovery: recovery.map(Arc::new),
            auth,
            config,
        })
    }
}

/// The chat state of a socket (attached at connect, so always there for sockets of this namespace).
pub(crate) fn chat_state(socket: &Socket) -> &ChatSocket {
    static DETACHED: std::sync::OnceLock<ChatSocket> = std::sync::OnceLock::new();
    socket
        .data::<ChatSocket>()
        .unwrap_or_else(|| DETACHED.get_or_init(ChatSocket::default))
}

/// A chat payload encoded once as JSON, ready to be an event argument or an ack.
pub(crate) struct Encoded(Vec<u8>);

impl Encoded {
    pub fn new<T: Serialize>(payload: &T) -> Encoded {
        Encoded(serde_json::to_vec(payload).expect("chat payloads always serialize"))
    }

    /// A payload already encoded (a logged change's).
    pub fn raw(json: &str) -> Encoded {
        Encoded(json.as_bytes().to_vec())
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("serde_json writes UTF-8")
    }

    /// The frame of `event` carrying this payload, for one socket or a whole room.
    pub fn frame(&self, nsp: &str, event: &str) -> crate::engine::Outgoing {
        let mut w = EventWriter::message(nsp, event);
        w.raw_arg(self.as_str());
        text_frame(w.finish())
    }

    /// The frame of `event` carrying this payload and, as a last argument, the offset `id`
    /// (connection state recovery: `chat/recovery.rs`).
    pub fn frame_with_offset(&self, nsp: &str, event: &str, id: i64) -> crate::engine::Outgoing {
        let mut w = EventWriter::message(nsp, event);
        w.raw_arg(self.as_str());
        w.raw_arg(&recovery::offset_arg(id));
        text_frame(w.finish())
    }
}

/// Sends `event` with `payload` to the socket, and the same payload as the ack if one was asked.
pub(crate) fn reply(socket: &Socket, ack: Option<u64>, event: &str, payload: &Encoded) {
    let _ = socket.send(payload.frame(socket.nsp(), event));
    metrics::METRICS.event_out(event, 1);
    answer(socket, ack, payload);
}

/// Sends `event` with `payload` to the room: to every member, or to all but `socket`. The frame is
/// encoded once for everyone. `offset`: the id a recovering client names to say it got this far
/// (for the five events recovery sends again; `None` when recovery is off).
pub(crate) fn broadcast(
    socket: &Socket,
    room: &str,
    event: &str,
    payload: &Encoded,
    include_sender: bool,
    offset: Option<i64>,
) {
    let frame = match offset {
        Some(id) => payload.frame_with_offset(socket.nsp(), event, id),
        None => payload.frame(socket.nsp(), event),
    };
    let delivered = if include_sender {
        socket.broadcast_all(room, &frame)
    } else {
        socket.broadcast_others(room, &frame)
    };
    metrics::METRICS.event_out(event, delivered);
}

/// Tells `member`'s room of a change to a message (`event`: a reaction, edit, deletion or read
/// mark), in the chat's order, with its offset when recovery is on; the change log keeps it.
pub(crate) fn told(
    history: &History,
    socket: &Socket,
    member: &Membership,
    event: &'static str,
    payload: &Encoded,
    include_sender: bool,
) {
    let offsets = recovery::offsets(history);
    history.order_change(member.eventid, |id| {
        broadcast(
            socket,
            &member.room,
            event,
            payload,
            include_sender,
            offsets.then_some(id),
        );
        offsets
            .then(|| Arc::from(payload.as_str()))
            .map(|p| (event, p))
    });
}

/// The member count of `room` after this node changed it by `delta` (`local` members here): across
/// the cluster in cluster mode (one Redis round trip), else `local`.
pub(crate) async fn member_count(
    cluster: Option<&Cluster>,
    socket: &Socket,
    room: &str,
    delta: i64,
    local: usize,
) -> usize {
    match cluster {
        Some(cluster) => {
            cluster
                .counts
                .changed(socket.nsp(), room, delta, local)
                .await
        }
        None => local,
    }
}

/// The chat and the message a `mark-read`, `react-message`, `edit-message` or `delete-message` is
/// about: the socket's own chat (an `eventid` or `userid` in the payload must be its), and a
/// `message_id` that is a positive integer.
pub(crate) fn about_message(
    socket: &Socket,
    fields: &payload::Fields<'_>,
) -> Result<(Arc<Membership>, i64), ChatError> {
    let member = chat_state(socket)
        .membership()
        .ok_or(ChatError::NotInRoom)?;
    if payload::present(fields.eventid) && payload::id(fields.eventid) != Some(member.eventid) {
        return Err(ChatError::EventIdMismatch);
    }
    if payload::present(fields.userid) && payload::id(fields.userid) != Some(member.userid) {
        return Err(ChatError::UserIdMismatch);
    }
    match payload::positive(fields.message_id) {
        Ok(Some(id)) => Ok((member, id)),
        _ => Err(ChatError::BadMessageId),
    }
}

/// The `chat-error` of a refused change; `what` names what was not saved when the store failed.
pub(crate) fn change_error(e: ChangeError, what: &'static str) -> ChatError {
    match e {
        ChangeError::UnknownMessage => ChatError::UnknownMessage,
        ChangeError::NotAuthor => ChatError::NotAuthor,
        ChangeError::EditWindowPassed { window } => ChatError::EditWindowPassed {
            window_secs: window.as_secs(),
        },
        ChangeError::Deleted => ChatError::MessageDeleted,
        ChangeError::TooManyReactions => ChatError::TooManyReactions,
        ChangeError::Off => ChatError::HistoryOff,
        ChangeError::Unavailable(reason) => {
            tracing::warn!(error = %reason, what, "change not saved");
            ChatError::FailedToSave { what }
        }
    }
}

/// Answers the client's acknowledgement request, if any, with `payload`.
pub(crate) fn answer(socket: &Socket, ack: Option<u64>, payload: &Encoded) {
    if let Some(id) = ack {
        let _ = socket.ack(
            id,
            ByteStr::from(format!("[{}]", payload.as_str())),
            Vec::new(),
        );
    }
}

/// Answers the client's acknowledgement request, if any, with `{error}`.
pub(crate) fn answer_error(socket: &Socket, ack: Option<u64>, error: &str) {
    if ack.is_some() {
        answer(socket, ack, &Encoded::new(&AckError { error }));
    }
}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct AckError<'a> {
    error: &'a str,
}

/// Sends `chat-error` and, if asked, an ack `{error}`.
pub(crate) fn refuse(socket: &Socket, ack: Option<u64>, error: ChatError) {
    metrics::METRICS.error(&error);
    metrics::METRICS.event_out("chat-error", 1);
    let text = error.message();
    let _ = socket
        .send(Encoded::new(&ErrorPayload { message: &text }).frame(socket.nsp(), "chat-error"));
    answer(socket, ack, &Encoded::new(&AckError { error: &text }));
}

/// A chat event's handler: the payload's fields (already known to be an object), the ack id.
type Handler = fn(&Chat, &Arc<Socket>, payload::Fields<'_>, Option<u64>) -> Dispatch;

impl Namespace for Chat {
    fn recovers(&self) -> bool {
        self.recovery.is_some()
    }

    fn recover(
        &self,
        request: crate::socketio::RecoveryRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<crate::socketio::Restore>> + Send>>
    {
        self.recover_session(request)
    }

    fn restored(
        &self,
        socket: Arc<Socket>,
        state: Box<dyn std::any::Any + Send>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        self.restore_session(socket, state)
    }

    fn connect(&self, socket: &Arc<Socket>, auth: Option<&RawValue>) -> Result<(), Refusal> {
        let token_user = match &self.auth {
            AuthMode::Trust => None,
            AuthMode::Jwt(verifier) => Some(
                verifier
                    .verify_auth(auth)
                    .map_err(|e| Refusal::new(e.message()))?,
            ),
        };
        socket.set_data(ChatSocket::new(token_user));
        Ok(())
    }

    fn event(&self, socket: &Arc<Socket>, event: IncomingEvent<'_>) -> Dispatch {
        let ack = event.ack_id();
        let args = event.args();
        metrics::METRICS.event_in(event.name);
        if let Some((budget, limit)) = self.budget(event.name) {
            if !chat_state(socket).allow(budget, limit) {
                refuse(socket, ack, ChatError::RateLimited);
                return Dispatch::Done;
            }
        }
        if let Some(notify) = &self.notify {
            // Not for a leave: its `gone` must be the last word.
            if event.name != "leave-chat" {
                presence::active(notify, socket, false);
            }
        }
        let handler: Handler = match event.name {
            "join-chat" => join::join,
            "send-message" => message::send,
            "leave-chat" => leave::leave,
            "load-history" => history::load,
            "mark-read" => receipts::mark_read,
            "react-message" => reactions::react,
            "edit-message" => edits::edit,
            "delete-message" => edits::delete,
            "typing" => typing::typing,
            "notify-settings" => presence::settings,
            // Events docs/PROTOCOL.md does not define are ignored, as Socket.IO servers do; a
            // client that asked for an ack is told why, rather than left waiting.
            other => {
                answer_error(socket, ack, &format!("Unknown event: {other}"));
                return Dispatch::Done;
            }
        };
        // Every event's payload is an object, or absent where it is optional; anything else is
        // refused here, once for all handlers, and changes nothing.
        match payload::fields(args) {
            Ok(fields) => handler(self, socket, fields, ack),
            Err(payload::NotAnObject) => {
                refuse(socket, ack, ChatError::BadPayload);
                Dispatch::Done
            }
        }
    }

    fn disconnect(&self, socket: &Arc<Socket>, reason: DisconnectReason) {
        leave::on_disconnect(self, socket, reason);
    }
}
