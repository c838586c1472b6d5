//! The Socket.IO v5 server, on top of the Engine.IO layer: namespaces, sockets, events,
//! acknowledgements (both ways), binary packets, rooms and broadcasts.
//!
//! It implements `engine::Handler`: each Engine.IO message becomes a Socket.IO packet (through the
//! codec's `Decoder`) and goes to the socket of its namespace. Applications register a [`Namespace`]
//! per namespace name. This layer knows nothing of the chat; the engine knows nothing of it.
//!
//! Files: `client.rs` (one Engine.IO session's decoder and sockets), `socket.rs` (one namespace
//! connection), `rooms.rs` (the sharded room table and the broadcast loop), `relay.rs` (broadcasts
//! handed to whoever carries them to other nodes, in cluster mode).

pub mod client;
pub mod relay;
pub mod rooms;
pub mod socket;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatgate_codec::engine::Frame;
use chatgate_codec::socket::{Kind, Packet};
use chatgate_codec::{ByteStr, Limits};
use serde_json::value::RawValue;

use crate::engine::{self, CloseReason, Dispatch, Session};
pub use client::Client;
pub use rooms::Rooms;
pub use socket::{packet_item, text_frame, AckError, EmitError, Socket};

/// Why a socket left its namespace. The text is the one the Socket.IO documentation gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The Engine.IO session ended.
    Session(CloseReason),
    /// The client sent DISCONNECT for this namespace.
    ClientNamespaceDisconnect,
    /// The server disconnected the socket.
    ServerNamespaceDisconnect,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Session(r) => r.as_str(),
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
        }
    }
}

/// A namespace's refusal of a CONNECT: the client receives CONNECT_ERROR with this message (and
/// `data`, if given, as the error's `data` field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub data: Option<serde_json::Value>,
}

impl Refusal {
    pub fn new(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            data: None,
        }
    }
}

/// An event from a client, split once (name and arguments borrowed from the packet).
#[derive(Debug)]
pub struct IncomingEvent<'a> {
    pub name: &'a str,
    args: Vec<&'a RawValue>,
    /// The whole packet: `data` is the JSON array (name first), `attachments` its binary parts.
    pub packet: &'a Packet,
}

impl<'a> IncomingEvent<'a> {
    /// The acknowledgement id, when the client asked for one.
    pub fn ack_id(&self) -> Option<u64> {
        self.packet.id
    }

    /// The arguments after the event name, as raw JSON.
    pub fn args(&self) -> &[&'a RawValue] {
        &self.args
    }

    pub fn attachments(&self) -> &[Bytes] {
        &self.packet.attachments
    }
}

/// A client reconnecting with the private session id and offset it holds (connection state
/// recovery: the CONNECT payload's `pid` and `offset`, next to its authentication).
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    pub pid: String,
    /// The last offset the client received (absent if it received none).
    pub offset: Option<String>,
    /// The whole CONNECT payload, as JSON text.
    pub auth: Option<ByteStr>,
}

/// What a namespace restores: the socket id to give back, and its own state for
/// [`Namespace::restored`].
pub struct Restore {
    pub sid: ByteStr,
    pub state: Box<dyn std::any::Any + Send>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The application side of one namespace.
pub trait Namespace: Send + Sync + 'static {
    /// Whether CONNECT answers carry a private session id (`pid`), with which the client can
    /// reconnect and be restored (connection state recovery).
    fn recovers(&self) -> bool {
        false
    }

    /// A client reconnects with a pid: what to restore, or `None` for a normal connect (which then
    /// goes through [`Namespace::connect`]).
    fn recover(&self, _request: RecoveryRequest) -> BoxFuture<Option<Restore>> {
        Box::pin(async { None })
    }

    /// The socket is restored (the old id and pid, the client told) and holds what its rooms send
    /// it: put it back where it was, send what it missed, and [`Socket::release`] it.
    fn restored(
        &self,
        _socket: Arc<Socket>,
        _state: Box<dyn std::any::Any + Send>,
    ) -> BoxFuture<()> {
        Box::pin(async {})
    }

    /// A client asks to connect, with its CONNECT payload. Refusing sends CONNECT_ERROR.
    fn connect(&self, _socket: &Arc<Socket>, _auth: Option<&RawValue>) -> Result<(), Refusal> {
        Ok(())
    }

    /// The client is connected and has been told so.
    fn connected(&self, _socket: &Arc<Socket>) {}

    /// An event arrived. Events of one client are handled in order: a `Pending` result holds the
    /// client's next packet until it completes.
    fn event(&self, socket: &Arc<Socket>, event: IncomingEvent<'_>) -> Dispatch;

    /// The socket left the namespace. Called once per socket.
    fn disconnect(&self, _socket: &Arc<Socket>, _reason: DisconnectReason) {}
}

/// A registered namespace: its name, its application, its rooms.
pub struct NamespaceEntry {
    pub name: ByteStr,
    pub handler: Arc<dyn Namespace>,
    pub rooms: Rooms,
    /// In cluster mode: the broadcasts for the other nodes, drained by the cluster.
    pub relay: Option<Arc<relay::Relay>>,
    /// Every connected socket by id, kept in cluster mode only (other nodes ask about sockets).
    pub sockets: Option<crate::sharded::ShardedMap<ByteStr, Arc<Socket>>>,
    /// The handler's [`Namespace::recovers`], asked once.
    pub recovers: bool,
}

impl NamespaceEntry {
    /// The local sockets a cluster message addresses (Socket.IO's room semantics): the members of
    /// any of `rooms`, a socket id counting as the room of that socket, or every socket when
    /// `rooms` is empty; minus the sockets named in `except` and the members of rooms named there.
    /// Each socket once. Sockets by id are known in cluster mode only.
    pub fn select(&self, rooms: &[String], except: &[String]) -> Vec<Arc<Socket>> {
        let by_id = |id: &str| self.sockets.as_ref().and_then(|s| s.get_cloned(id));
        let mut excluded: HashSet<*const Socket> = HashSet::new();
        for name in except {
            match self.rooms.members(name) {
                Some(members) => excluded.extend(members.iter().map(Arc::as_ptr)),
                None => excluded.extend(by_id(name).as_ref().map(Arc::as_ptr)),
            }
        }
        let mut found = Vec::new();
        let mut add = |socket: Arc<Socket>| {
            if excluded.insert(Arc::as_ptr(&socket)) {
                found.push(socket);
            }
        };
        if rooms.is_empty() {
            let all = self.sockets.as_ref().map(|s| s.values_cloned());
            all.unwrap_or_default().into_iter().for_each(&mut add);
        }
        for room in rooms {
            match self.rooms.members(room) {
                Some(members) => members.iter().cloned().for_each(&mut add),
                None => by_id(room).into_iter().for_each(&mut add),
            }
        }
        found
    }
}

/// Socket.IO settings.
#[derive(Debug, Clone)]
pub struct SocketIoConfig {
    /// A client that joins no namespace within this time is disconnected. Checked at each heartbeat,
    /// so the effective limit is at most one `pingInterval` later.
    pub connect_timeout: Duration,
    /// Bounds on decoded packets (payload size, attachments, JSON depth).
    pub limits: Limits,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            connect_timeout: Duration::from_secs(45),
            limits: Limits::DEFAULT,
        }
    }
}

/// The Socket.IO server: the namespaces an application registered.
pub struct SocketIo {
    config: SocketIoConfig,
    namespaces: HashMap<ByteStr, Arc<NamespaceEntry>>,
    /// Capacity of each namespace's relay, in cluster mode.
    relay: Option<usize>,
}

impl SocketIo {
    pub fn new(config: SocketIoConfig) -> SocketIo {
        SocketIo {
            config,
            namespaces: HashMap::new(),
            relay: None,
        }
    }

    /// Cluster mode: namespaces registered after this hand their broadcasts to a relay of
    /// `capacity` (`relay.rs`) for the other nodes, and keep their sockets by id (other nodes ask
    /// about them).
    pub fn with_relay(mut self, capacity: Option<usize>) -> SocketIo {
        self.relay = capacity;
        self
    }

    /// Registers `handler` for the namespace `name` (for example `/`).
    pub fn namespace(mut self, name: &str, handler: Arc<dyn Namespace>) -> SocketIo {
        let name = ByteStr::from(name.to_owned());
        let recovers = handler.recovers();
        self.namespaces.insert(
            name.clone(),
            Arc::new(NamespaceEntry {
                name,
                handler,
                rooms: Rooms::default(),
                relay: self
                    .relay
                    .map(|capacity| Arc::new(relay::Relay::new(capacity))),
                sockets: self
                    .relay
                    .map(|_| crate::sharded::ShardedMap::for_this_machine()),
                recovers,
            }),
        );
        self
    }

    /// The registered namespace `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<NamespaceEntry>> {
        self.namespaces.get(name)
    }

    fn connect(&self, client: &Arc<Client>, packet: Packet) -> Dispatch {
        let nsp = packet.nsp.clone();
        let Some(entry) = self.namespaces.get(&nsp) else {
            send_connect_error(client.session(), &nsp, &Refusal::new("Invalid namespace"));
            return Dispatch::Done;
        };
        if let Some(existing) = client.socket(&nsp) {
            // A repeated CONNECT: confirm the existing socket rather than open a second one.
            send_connect_ok(&existing);
            return Dispatch::Done;
        }
        let auth = packet.data.clone();
        let recovery = entry
            .recovers
            .then(|| recovery_request(auth.as_ref()))
            .flatten();
        let Some(request) = recovery else {
            open_socket(entry, client, auth);
            return Dispatch::Done;
        };
        let (entry, client) = (entry.clone(), client.clone());
        // Its next packets wait until the socket is restored or opened.
        Dispatch::Pending(Box::pin(async move {
            let pid = ByteStr::from(request.pid.clone());
            let Some(restore) = entry.handler.recover(request).await else {
                open_socket(&entry, &client, auth);
                return;
            };
            if client.session().is_closed() || client.socket(&entry.name).is_some() {
                return;
            }
            let socket = Arc::new(Socket::restored(
                entry.clone(),
                &client,
                auth,
                restore.sid,
                pid,
            ));
            // The socket it replaces may still look connected here (its client noticed the loss
            // first): it is gone for good.
            let stale = entry
                .sockets
                .as_ref()
                .and_then(|s| s.get_cloned(socket.id()));
            if let Some(stale) = stale {
                stale.disconnect();
            }
            if !accept(&entry, &client, &socket) {
                return;
            }
            entry.handler.restored(socket.clone(), restore.state).await;
            // In case the namespace did not (it must not hold the socket's frames forever).
            socket.release(|_| true);
        }))
    }

    fn dispatch(&self, client: &Arc<Client>, packet: Packet) -> Dispatch {
        match packet.kind {
            Kind::Connect => self.connect(client, packet),
            Kind::Disconnect => {
                if let Some(socket) = client.forget(&packet.nsp) {
                    socket.closed(DisconnectReason::ClientNamespaceDisconnect);
                }
                Dispatch::Done
            }
            Kind::Event | Kind::BinaryEvent => {
                // Packets for a namespace the client has not joined are dropped, as the reference
                // server does.
                let Some(socket) = client.socket(&packet.nsp) else {
                    return Dispatch::Done;
                };
                let Some(event) = packet.event() else {
                    return Dispatch::Done;
                };
                let handler = socket_handler(&socket);
                handler.event(
                    &socket,
                    IncomingEvent {
                        name: &event.name,
                        args: event.args,
                        packet: &packet,
                    },
                )
            }
            Kind::Ack | Kind::BinaryAck => {
                if let Some(socket) = client.socket(&packet.nsp) {
                    socket.resolve_ack(packet);
                }
                Dispatch::Done
            }
            Kind::ConnectError => {
                // Only servers send CONNECT_ERROR.
                client.session().close(CloseReason::ParseError);
                Dispatch::Done
            }
        }
    }
}

fn socket_handler(socket: &Socket) -> Arc<dyn Namespace> {
    socket_namespace(socket).handler.clone()
}

fn socket_namespace(socket: &Socket) -> &NamespaceEntry {
    socket.namespace_entry()
}

/// A normal connect: a new socket, if the namespace accepts the client.
fn open_socket(entry: &Arc<NamespaceEntry>, client: &Arc<Client>, auth: Option<ByteStr>) {
    let socket = Arc::new(Socket::new(entry.clone(), client, auth.clone()));
    let auth_raw: Option<&RawValue> = auth.as_deref().and_then(|d| serde_json::from_str(d).ok());
    match entry.handler.connect(&socket, auth_raw) {
        Ok(()) => {
            if accept(entry, client, &socket) {
                entry.handler.connected(&socket);
            }
        }
        Err(refusal) => send_connect_error(client.session(), &entry.name, &refusal),
    }
}

/// Makes a socket the client's connection to its namespace and tells the client (CONNECT);
/// `false` (and nothing done) once the client's session has ended.
fn accept(entry: &NamespaceEntry, client: &Client, socket: &Arc<Socket>) -> bool {
    if !client.add(socket.clone()) {
        return false;
    }
    if let Some(sockets) = &entry.sockets {
        sockets.insert(socket.id().clone(), socket.clone());
    }
    send_connect_ok(socket);
    true
}

/// The `pid` and `offset` of a CONNECT payload, if it has a `pid` (a string, as the official
/// clients send it).
fn recovery_request(auth: Option<&ByteStr>) -> Option<RecoveryRequest> {
    #[derive(serde::Deserialize)]
    struct Held<'a> {
        #[serde(borrow)]
        pid: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        offset: Option<std::borrow::Cow<'a, str>>,
    }
    let text = auth?;
    let held: Held = serde_json::from_str(text).ok()?;
    Some(RecoveryRequest {
        pid: held.pid?.into_owned(),
        offset: held.offset.map(|o| o.into_owned()),
        auth: Some(text.clone()),
    })
}

fn send_connect_ok(socket: &Socket) {
    let data = match socket.pid() {
        Some(pid) => format!(r#"{{"sid":"{}","pid":"{pid}"}}"#, socket.id()),
        None => format!(r#"{{"sid":"{}"}}"#, socket.id()),
    };
    let packet = Packet::new(Kind::Connect, ByteStr::from(socket.nsp().to_owned())).with_data(data);
    // First, also for a restored socket holding what its rooms send it.
    let _ = socket.send_before_held(packet_item(&packet));
}

fn send_connect_error(session: &Session, nsp: &ByteStr, refusal: &Refusal) {
    let mut body = serde_json::json!({ "message": refusal.message });
    if let Some(data) = &refusal.data {
        body["data"] = data.clone();
    }
    let packet = Packet::new(Kind::ConnectError, nsp.clone()).with_data(body.to_string());
    let _ = session.send(packet_item(&packet));
}

impl engine::Handler for SocketIo {
    type Conn = Arc<Client>;

    fn open(&self, session: Arc<Session>) -> Arc<Client> {
        Arc::new(Client::new(session, self.config.limits))
    }

    fn message(&self, client: &Arc<Arc<Client>>, frame: Frame) -> Dispatch {
        match client.decode(frame) {
            Ok(Some(packet)) => self.dispatch(client, packet),
            Ok(None) => Dispatch::Done,
            Err(e) => {
                tracing::debug!(sid = %client.sid(), error = %e, "malformed socket.io packet");
                client.session().close(CloseReason::ParseError);
                Dispatch::Done
            }
        }
    }

    fn heartbeat(&self, client: &Arc<Arc<Client>>) {
        if client.connect_overdue(self.config.connect_timeout) {
            client.session().close(CloseReason::ForcedClose);
        }
    }

    fn shutdown(&self, client: &Arc<Arc<Client>>) {
        // A DISCONNECT per namespace: the official clients then report "io server disconnect"
        // and do not reconnect by themselves.
        for socket in client.take_all() {
            socket.disconnect();
        }
    }

    fn close(&self, client: &Arc<Arc<Client>>, reason: CloseReason) {
        for socket in client.take_all() {
            socket.closed(DisconnectReason::Session(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(payload: &str) -> Option<RecoveryRequest> {
        recovery_request(Some(&ByteStr::from(payload.to_owned())))
    }

    #[test]
    fn a_connect_payload_asks_for_recovery_with_a_string_pid() {
        let r = request(r#"{"token":"t","pid":"abc","offset":"42"}"#).expect("asks");
        assert_eq!((r.pid.as_str(), r.offset.as_deref()), ("abc", Some("42")));
        assert_eq!(request(r#"{"pid":"abc"}"#).expect("asks").offset, None);
        for plain in [
            r#"{"token":"t"}"#,
            r#"{"pid":42}"#,
            r#"{"pid":null}"#,
            "[]",
            "nonsense",
        ] {
            assert!(request(plain).is_none(), "{plain}");
        }
        assert!(recovery_request(None).is_none());
    }
}
