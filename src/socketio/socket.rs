//! `Socket`: one client's connection to one namespace, and what can be done with it: emit events,
//! answer and request acknowledgements, join and leave rooms, disconnect.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use chatgate_codec::engine::Frame;
use chatgate_codec::socket::{EventWriter, Kind, Packet};
use chatgate_codec::ByteStr;
use serde::Serialize;
use tokio::sync::oneshot;

use super::client::Client;
use super::{DisconnectReason, NamespaceEntry};
use crate::engine::{Outgoing, PushError, Session};

/// Why an emit did not reach the client's queue.
pub type EmitError = PushError;

/// Why a server-to-client acknowledgement did not come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// The socket disconnected before the client answered.
    Disconnected,
    /// The request could not be queued.
    NotSent(PushError),
}

#[derive(Default)]
struct Acks {
    next_id: u64,
    waiting: HashMap<u64, oneshot::Sender<Packet>>,
}

pub struct Socket {
    id: ByteStr,
    namespace: Arc<NamespaceEntry>,
    session: Arc<Session>,
    client: Weak<Client>,
    auth: Option<ByteStr>,
    /// The private session id given with CONNECT when the namespace recovers connections.
    pid: Option<ByteStr>,
    connected: AtomicBool,
    /// A restored socket holds what the room sends it until it has been sent what it missed
    /// (see [`Socket::release`]).
    holding: AtomicBool,
    held: Mutex<Vec<Outgoing>>,
    rooms: Mutex<Vec<Box<str>>>,
    acks: Mutex<Acks>,
    data: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("nsp", &self.namespace.name)
            .finish()
    }
}

/// Turns a frame built by `EventWriter` (text with the Engine.IO `4` prefix) into an outbox item.
pub fn text_frame(text: ByteStr) -> Outgoing {
    Outgoing::One(Frame::Text(text))
}

/// An encoded packet and its attachments as one outbox item (kept together in the queue).
pub fn packet_item(packet: &Packet) -> Outgoing {
    let (text, attachments) = packet.encode_message();
    if attachments.is_empty() {
        return Outgoing::One(Frame::Text(text));
    }
    let mut frames = Vec::with_capacity(1 + attachments.len());
    frames.push(Frame::Text(text));
    frames.extend(attachments.into_iter().map(Frame::Binary));
    Outgoing::Many(frames.into())
}

impl Socket {
    pub(super) fn new(
        namespace: Arc<NamespaceEntry>,
        client: &Arc<Client>,
        auth: Option<ByteStr>,
    ) -> Socket {
        let pid = namespace.recovers.then(crate::engine::session::new_id);
        Socket::with_ids(
            namespace,
            client,
            auth,
            crate::engine::session::new_id(),
            pid,
        )
    }

    /// A socket restored by connection state recovery: the id and pid of the one it replaces, and
    /// holding what the room sends it until [`Socket::release`].
    pub(super) fn restored(
        namespace: Arc<NamespaceEntry>,
        client: &Arc<Client>,
        auth: Option<ByteStr>,
        id: ByteStr,
        pid: ByteStr,
    ) -> Socket {
        let socket = Socket::with_ids(namespace, client, auth, id, Some(pid));
        socket.holding.store(true, Ordering::Release);
        socket
    }

    fn with_ids(
        namespace: Arc<NamespaceEntry>,
        client: &Arc<Client>,
        auth: Option<ByteStr>,
        id: ByteStr,
        pid: Option<ByteStr>,
    ) -> Socket {
        Socket {
            id,
            namespace,
            session: client.session().clone(),
            client: Arc::downgrade(client),
            auth,
            pid,
            connected: AtomicBool::new(true),
            holding: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            rooms: Mutex::new(Vec::new()),
            acks: Mutex::new(Acks::default()),
            data: OnceLock::new(),
        }
    }

    /// The socket id (20 URL-safe characters), distinct from the Engine.IO session id.
    pub fn id(&self) -> &ByteStr {
        &self.id
    }

    pub fn nsp(&self) -> &str {
        &self.namespace.name
    }

    pub(super) fn namespace_entry(&self) -> &NamespaceEntry {
        &self.namespace
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The CONNECT payload as JSON text, if the client sent one.
    pub fn auth(&self) -> Option<&ByteStr> {
        self.auth.as_ref()
    }

    /// The private session id its client holds (connection state recovery), if any.
    pub fn pid(&self) -> Option<&ByteStr> {
        self.pid.as_ref()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Attaches the application's per-socket state; only the first call takes effect.
    pub fn set_data<T: Any + Send + Sync>(&self, data: T) -> bool {
        self.data.set(Box::new(data)).is_ok()
    }

    /// The application's per-socket state, if it is a `T`.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.data.get().and_then(|d| d.downcast_ref())
    }

    // --- sending ---------------------------------------------------------------------------------

    /// Queues an already-encoded item (a frame from `EventWriter`, shared by a broadcast).
    pub fn send(&self, item: Outgoing) -> Result<(), EmitError> {
        // One relaxed load on the broadcast path; only a socket being restored takes the lock.
        if self.holding.load(Ordering::Acquire) {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if self.holding.load(Ordering::Acquire) {
                held.push(item);
                return Ok(());
            }
        }
        self.session.send(item)
    }

    /// Queues `item` ahead of what a restored socket holds (what it missed, sent again).
    pub fn send_before_held(&self, item: Outgoing) -> Result<(), EmitError> {
        self.session.send(item)
    }

    /// Ends the hold of a restored socket: what the room sent it meanwhile goes out now, in order,
    /// but for the items `keep` refuses (those it was already sent again). Nothing after waits.
    pub fn release(&self, mut keep: impl FnMut(&Outgoing) -> bool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for item in std::mem::take(&mut *held) {
            if keep(&item) {
                let _ = self.session.send(item);
            }
        }
        self.holding.store(false, Ordering::Release);
        held.shrink_to_fit();
    }

    /// Emits `event` with one JSON argument.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, arg: &T) -> Result<(), EmitError> {
        let mut w = EventWriter::message(self.nsp(), event);
        serde_json::to_writer(w.arg(), arg).map_err(|_| PushError::Closed)?;
        self.send(text_frame(w.finish()))
    }

    /// Emits an event whose data (a JSON array, event name first) and attachments are given as is.
    pub fn emit_packet(&self, data: ByteStr, attachments: Vec<Bytes>) -> Result<(), EmitError> {
        let kind = if attachments.is_empty() {
            Kind::Event
        } else {
            Kind::BinaryEvent
        };
        let mut packet = Packet::new(kind, self.namespace.name.clone()).with_data(data);
        packet.attachments = attachments;
        self.send(packet_item(&packet))
    }

    /// Answers the client's acknowledgement request `id` with `args` (a JSON array) and attachments.
    pub fn ack(&self, id: u64, args: ByteStr, attachments: Vec<Bytes>) -> Result<(), EmitError> {
        let kind = if attachments.is_empty() {
            Kind::Ack
        } else {
            Kind::BinaryAck
        };
        let mut packet = Packet::new(kind, self.namespace.name.clone())
            .with_id(id)
            .with_data(args);
        packet.attachments = attachments;
        self.send(packet_item(&packet))
    }

    /// Emits `event` with one JSON argument and waits for the client's acknowledgement. The caller
    /// bounds the wait (`tokio::time::timeout`).
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        arg: &T,
    ) -> Result<Packet, AckError> {
        let (id, rx) = self.expect_ack();
        let mut w = EventWriter::message_with_ack(self.nsp(), event, id);
        if serde_json::to_writer(w.arg(), arg).is_err() {
            self.forget_ack(id);
            return Err(AckError::NotSent(PushError::Closed));
        }
        self.send_expecting_ack(id, rx, text_frame(w.finish()))
            .await
    }

    /// Emits an event given as raw data (a JSON array, event name first) and attachments, and waits
    /// for the client's acknowledgement (bounded by the caller).
    pub async fn emit_packet_with_ack(
        &self,
        data: ByteStr,
        attachments: Vec<Bytes>,
    ) -> Result<Packet, AckError> {
        let (id, rx) = self.expect_ack();
        let kind = if attachments.is_empty() {
            Kind::Event
        } else {
            Kind::BinaryEvent
        };
        let mut packet = Packet::new(kind, self.namespace.name.clone())
            .with_id(id)
            .with_data(data);
        packet.attachments = attachments;
        self.send_expecting_ack(id, rx, packet_item(&packet)).await
    }

    fn expect_ack(&self) -> (u64, oneshot::Receiver<Packet>) {
        let (tx, rx) = oneshot::channel();
        let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        let id = acks.next_id;
        acks.next_id += 1;
        acks.waiting.insert(id, tx);
        (id, rx)
    }

    fn forget_ack(&self, id: u64) {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .remove(&id);
    }

    async fn send_expecting_ack(
        &self,
        id: u64,
        rx: oneshot::Receiver<Packet>,
        item: Outgoing,
    ) -> Result<Packet, AckError> {
        if let Err(e) = self.send(item) {
            self.forget_ack(id);
            return Err(AckError::NotSent(e));
        }
        rx.await.map_err(|_| AckError::Disconnected)
    }

    /// Delivers the client's ACK to whoever waits for it; unknown ids are ignored.
    pub(super) fn resolve_ack(&self, packet: Packet) {
        let Some(id) = packet.id else { return };
        let waiter = self
            .acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .remove(&id);
        if let Some(tx) = waiter {
            let _ = tx.send(packet);
        }
    }

    // --- rooms -----------------------------------------------------------------------------------

    /// Joins `room`; returns its member count after the join.
    pub fn join(self: &Arc<Self>, room: &str) -> usize {
        let count = self.namespace.rooms.join(room, self);
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if !rooms.iter().any(|r| &**r == room) {
            // Most sockets are in one room: room for one, not the four a first push reserves.
            rooms.reserve_exact(1);
            rooms.push(room.into());
        }
        count
    }

    /// Leaves `room`; returns its member count after the leave.
    pub fn leave(self: &Arc<Self>, room: &str) -> usize {
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|r| &**r != room);
        self.namespace.rooms.leave(room, self)
    }

    /// The rooms this socket is in.
    pub fn rooms(&self) -> Vec<Box<str>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues `item` to every member of `room` but this socket (in cluster mode, on every node).
    pub fn broadcast_others(&self, room: &str, item: &Outgoing) -> usize {
        self.relay(room, Some(self.id()), item);
        self.namespace.rooms.broadcast(room, Some(self), item)
    }

    /// Queues `item` to every member of `room`, this socket included if it is a member (in cluster
    /// mode, on every node).
    pub fn broadcast_all(&self, room: &str, item: &Outgoing) -> usize {
        self.relay(room, None, item);
        self.namespace.rooms.broadcast(room, None, item)
    }

    /// In cluster mode, hands the broadcast to the namespace's relay for the other nodes.
    fn relay(&self, room: &str, except: Option<&ByteStr>, item: &Outgoing) {
        if let Some(relay) = &self.namespace.relay {
            relay.push(super::relay::Relayed {
                room: room.into(),
                except: except.cloned(),
                item: item.clone(),
            });
        }
    }

    /// Whether broadcasts of this socket's namespace also go to other nodes (cluster mode).
    pub fn is_relayed(&self) -> bool {
        self.namespace.relay.is_some()
    }

    /// The number of members of `room` in this namespace.
    pub fn room_size(&self, room: &str) -> usize {
        self.namespace.rooms.count(room)
    }

    // --- ending ----------------------------------------------------------------------------------

    /// Disconnects the client from this namespace (it receives a DISCONNECT packet). The Engine.IO
    /// session stays open for its other namespaces.
    pub fn disconnect(self: &Arc<Self>) {
        let packet = Packet::new(Kind::Disconnect, self.namespace.name.clone());
        let _ = self.send(packet_item(&packet));
        if let Some(client) = self.client.upgrade() {
            client.forget(self.nsp());
        }
        self.closed(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Leaves all rooms, fails pending acks and tells the namespace; once.
    pub(super) fn closed(self: &Arc<Self>, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(sockets) = &self.namespace.sockets {
            sockets.remove(self.id());
        }
        let rooms = std::mem::take(&mut *self.rooms.lock().unwrap_or_else(|p| p.into_inner()));
        self.namespace.handler.disconnect(self, reason);
        for room in rooms.iter() {
            self.namespace.rooms.leave(room, self);
        }
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .clear();
    }
}
