//! chatgate: a Socket.IO gateway for the live chat of booked tutoring sessions.
//!
//! Layers, lowest first; a layer never imports one above it:
//! - `chatgate-codec` (`codec/`, re-exported as [`codec`]): Engine.IO and Socket.IO packets. Pure.
//! - [`server`]: TCP accept, HTTP/1.1 (hyper), routing by path, the header timeout.
//! - [`engine`]: Engine.IO sessions over long-polling and WebSocket, heartbeats, upgrades, limits.
//! - [`socketio`]: Socket.IO namespaces, sockets, acks, rooms and broadcasts; in cluster mode it
//!   hands each broadcast to a relay (`socketio/relay.rs`) and knows nothing of who drains it.
//! - [`cluster`]: cluster mode over Redis (the `@socket.io/redis-adapter` protocol): drains the
//!   relay, publishes, and delivers what other nodes publish through the [`socketio`] layer; also
//!   cluster-wide member counts and flow control across nodes.
//! - [`history`]: stored messages (PostgreSQL group-commit writer, or memory for the demo),
//!   receipts, reactions, edits and deletions; gives each message its id and place in its chat.
//! - [`files`]: file sharing over HTTP (`POST /files`, downloads), bytes in an object store
//!   (a directory or S3), metadata in PostgreSQL or memory; messages carry references.
//! - [`notify`]: offline notifications (an outbox the history writer fills, a worker that
//!   re-checks and delivers signed webhooks), with presence across nodes.
//! - [`recovery`]: the sessions connection state recovery restores (PostgreSQL or memory); the
//!   restore itself and its replay are the chat's (`chat/recovery.rs`, docs/RECOVERY.md).
//! - [`directory`] answers who may join (PostgreSQL or the embedded demo), [`auth`] who a client
//!   is (JWT or trust).
//! - [`chat`]: the tutor/tutee chat (docs/PROTOCOL.md), as a namespace, on top of all of these.
//!
//! Assembly and operations: [`config`] (flags, the one home of every default), [`app`] (wiring,
//! start-up, shutdown), [`admin`] (`/health`, `/ready`, `/metrics`), [`demo`] (the page at `/`),
//! [`migrate`] (chatgate's own tables). Shared pieces: [`rate`] (token buckets), [`batch`]
//! (questions asked at once, read together), [`http`] (response helpers, origin policy),
//! [`sharded`] (the lock-sharded map under the session and room tables).
//!
//! Follow a chat message:
//! `engine/websocket.rs` reads the frame ->
//! `codec` decodes the Engine.IO and Socket.IO packets ->
//! `socketio/mod.rs` splits the event once and routes `send-message` to the chat namespace ->
//! `chat/message.rs` checks it (flow control: the history writer's queue, and in cluster mode the
//! relay and the other nodes' lag), takes the message's id and place from `history` (`History::order`)
//! and encodes `receive-message` once ->
//! `socketio/rooms.rs` takes the room's member list from its shard and queues that one buffer to
//! each member's outbox (`engine/outbox.rs`), and in cluster mode `socketio/relay.rs` queues it
//! for the other nodes (`cluster/mod.rs` publishes it to Redis on its own thread) ->
//! `history` queues the message for the PostgreSQL writer (group commit), which acknowledges the
//! sender once it is stored ->
//! each member's WebSocket task drains its outbox and writes the batch with one call.

#![forbid(unsafe_code)]
// A std or parking_lot guard held across an await blocks every task of the runtime thread waiting
// for it; per-chat ordering uses tokio locks or queues instead.
#![deny(clippy::await_holding_lock, clippy::await_holding_refcell_ref)]

pub use chatgate_codec as codec;

pub mod admin;
pub mod app;
pub mod auth;
pub mod batch;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod directory;
pub mod engine;
pub mod files;
pub mod history;
pub mod http;
pub mod migrate;
pub mod notify;
pub mod rate;
pub mod recovery;
pub mod server;
pub mod sharded;
pub mod socketio;
