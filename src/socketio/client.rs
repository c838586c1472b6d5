//! `Client`: the Socket.IO state of one Engine.IO session: its packet decoder (which reassembles
//! binary packets) and its sockets, one per connected namespace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgate_codec::engine::Frame;
use chatgate_codec::socket::{Decoder, SocketError};
use chatgate_codec::{ByteStr, Limits};
use tokio::time::Instant;

use super::Socket;
use crate::engine::Session;

struct State {
    decoder: Decoder,
    sockets: Vec<Arc<Socket>>,
    /// Whether any namespace was ever connected (the connect timeout no longer applies).
    ever_connected: bool,
    /// The session ended: a socket restored after that must not be added.
    ended: bool,
}

pub struct Client {
    session: Arc<Session>,
    opened: Instant,
    state: Mutex<State>,
}

impl Client {
    pub(super) fn new(session: Arc<Session>, limits: Limits) -> Client {
        Client {
            session,
            opened: Instant::now(),
            state: Mutex::new(State {
                decoder: Decoder::new(limits),
                sockets: Vec::new(),
                ever_connected: false,
                ended: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Feeds one Engine.IO message to the decoder.
    pub(super) fn decode(
        &self,
        frame: Frame,
    ) -> Result<Option<chatgate_codec::socket::Packet>, SocketError> {
        let mut state = self.state();
        match frame {
            Frame::Text(text) => state.decoder.text(text),
            Frame::Binary(bytes) => state.decoder.binary(bytes),
        }
    }

    /// The socket connected to `nsp`, if any.
    pub fn socket(&self, nsp: &str) -> Option<Arc<Socket>> {
        self.state()
            .sockets
            .iter()
            .find(|s| s.nsp() == nsp)
            .cloned()
    }

    /// Adds a connected socket; `false` (and nothing added) once the session ended.
    pub(super) fn add(&self, socket: Arc<Socket>) -> bool {
        let mut state = self.state();
        if state.ended {
            return false;
        }
        state.ever_connected = true;
        state.sockets.push(socket);
        true
    }

    /// Removes the socket of `nsp`; returns it.
    pub(super) fn forget(&self, nsp: &str) -> Option<Arc<Socket>> {
        let mut state = self.state();
        let i = state.sockets.iter().position(|s| s.nsp() == nsp)?;
        Some(state.sockets.swap_remove(i))
    }

    /// Removes every socket (the session ended).
    pub(super) fn take_all(&self) -> Vec<Arc<Socket>> {
        let mut state = self.state();
        state.ended = true;
        std::mem::take(&mut state.sockets)
    }

    /// Whether the client has been connected for `timeout` without joining any namespace.
    pub(super) fn connect_overdue(&self, timeout: Duration) -> bool {
        !self.state().ever_connected && self.opened.elapsed() >= timeout
    }

    /// A namespace id for logs.
    pub fn sid(&self) -> &ByteStr {
        self.session.sid()
    }
}
