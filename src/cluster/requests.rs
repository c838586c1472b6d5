//! Requests between nodes, as `@socket.io/redis-adapter` 8.x sends them on
//! `<prefix>-request#<nsp>#`, answered on `<prefix>-response#<nsp>#`.
//!
//! A Node.js peer counts every subscriber of the request channel and waits for each one's answer,
//! so every request type the adapter defines is answered here, even those the chat itself never
//! makes: all rooms (1), fetch sockets (5), server-side emit with ack (6), broadcast with ack (7,
//! answered with a client count (8) and one message per client ack (9)); remote join, leave and
//! disconnect (2, 3, 4) are applied to the local sockets they match; the 7.x form of sockets (0)
//! and of 2-4 with a `requestId` are answered too. Requests are JSON when they start with `{`,
//! msgpack otherwise (broadcast with ack, and answers 9).

use std::sync::Arc;

use bytes::Bytes;
use chatgate_codec::ByteStr;
use rmpv::Value as Mp;
use serde_json::{json, Value as Json};

use super::{wire, Cluster};
use crate::socketio::{NamespaceEntry, Socket};

/// How long a broadcast with ack waits for client acks when the request names no timeout.
const DEFAULT_ACK_TIMEOUT_MS: u64 = 5000;

/// Reads and answers one request.
pub(super) fn handle(cluster: &Arc<Cluster>, namespace: &Arc<NamespaceEntry>, payload: &[u8]) {
    let mut attachments = Vec::new();
    let request: Json = if payload.first() == Some(&b'{') {
        match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(_) => return cluster.malformed("request is not JSON"),
        }
    } else {
        let mut reader = payload;
        match rmpv::decode::read_value(&mut reader) {
            Ok(v) if reader.is_empty() => wire::to_json(&v, &mut attachments),
            _ => return cluster.malformed("request is not msgpack"),
        }
    };
    let Some(kind) = request["type"].as_u64() else {
        return cluster.malformed("request without a type");
    };
    let from_self = request["uid"].as_str() == Some(cluster.uid());
    let request_id = request.get("requestId").cloned().unwrap_or(Json::Null);
    match kind {
        0 => {
            let rooms = strings(&request["rooms"]);
            let ids: Vec<String> = namespace
                .select(&rooms, &[])
                .iter()
                .map(|s| s.id().to_string())
                .collect();
            cluster.respond_json(json!({ "requestId": request_id, "sockets": ids }));
        }
        1 if !from_self => {
            let rooms: Vec<String> = namespace
                .rooms
                .counts()
                .into_iter()
                .map(|(room, _)| room.into())
                .chain(
                    namespace
                        .select(&[], &[])
                        .iter()
                        .map(|s| s.id().to_string()),
                )
                .collect();
            cluster.respond_json(json!({ "requestId": request_id, "rooms": rooms }));
        }
        2..=4 => remote_change(cluster, namespace, kind, &request, request_id),
        5 if !from_self => {
            let (rooms, except) = opts(&request);
            let sockets: Vec<Json> = namespace
                .select(&rooms, &except)
                .iter()
                .map(|s| describe(s))
                .collect();
            cluster.respond_json(json!({ "requestId": request_id, "sockets": sockets }));
        }
        6 if !from_self => {
            // The chat defines no server-side events; a Node peer waiting for our answer gets
            // `null`, so it never times out on us.
            tracing::debug!(data = %request["data"], "cluster: server-side emit");
            if !request_id.is_null() {
                cluster.respond_json(json!({ "type": 6, "requestId": request_id, "data": null }));
            }
        }
        7 if !from_self => {
            broadcast_with_ack(cluster, namespace, &request, request_id, attachments)
        }
        1 | 5..=7 => {}
        _ => cluster.malformed("unknown request type"),
    }
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| match r {
                    Json::String(s) => Some(s.clone()),
                    Json::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn opts(request: &Json) -> (Vec<String>, Vec<String>) {
    (
        strings(&request["opts"]["rooms"]),
        strings(&request["opts"]["except"]),
    )
}

/// A socket as `fetchSockets()` describes it.
fn describe(socket: &Socket) -> Json {
    let auth = socket
        .auth()
        .and_then(|a| serde_json::from_str::<Json>(a).ok())
        .unwrap_or_else(|| json!({}));
    let mut rooms: Vec<String> = vec![socket.id().to_string()];
    rooms.extend(socket.rooms().iter().map(|r| r.to_string()));
    let now = chrono::Utc::now();
    json!({
        "id": socket.id().as_str(),
        "handshake": {
            "headers": {},
            "time": now.to_rfc2822(),
            "address": "",
            "xdomain": false,
            "secure": false,
            "issued": now.timestamp_millis(),
            "url": "/socket.io/",
            "query": {},
            "auth": auth,
        },
        "rooms": rooms,
        "data": {},
    })
}

/// Remote join (2), leave (3) and disconnect (4), in the 8.x form (`opts`) or the 7.x form
/// (`sid`, answered).
fn remote_change(
    cluster: &Arc<Cluster>,
    namespace: &NamespaceEntry,
    kind: u64,
    request: &Json,
    request_id: Json,
) {
    let targets = match request["sid"].as_str() {
        Some(sid) => namespace
            .sockets
            .as_ref()
            .and_then(|s| s.get_cloned(sid))
            .into_iter()
            .collect(),
        None => {
            let (rooms, except) = opts(request);
            namespace.select(&rooms, &except)
        }
    };
    let mut rooms = strings(&request["rooms"]);
    if let Some(room) = request["room"].as_str() {
        rooms.push(room.to_owned());
    }
    for socket in &targets {
        match kind {
            2 => rooms.iter().for_each(|r| {
                socket.join(r);
            }),
            3 => rooms.iter().for_each(|r| {
                socket.leave(r);
            }),
            _ => {
                socket.disconnect();
                if request["close"].as_bool() == Some(true) {
                    socket
                        .session()
                        .close(crate::engine::CloseReason::ForcedClose);
                }
            }
        }
    }
    if request["sid"].is_string() && !targets.is_empty() && !request_id.is_null() {
        cluster.respond_json(json!({ "requestId": request_id }));
    }
}

/// Broadcast with ack (7): deliver to the matching local sockets, say how many (8), and pass on
/// each client's acknowledgement (9) until the request's timeout.
fn broadcast_with_ack(
    cluster: &Arc<Cluster>,
    namespace: &NamespaceEntry,
    request: &Json,
    request_id: Json,
    attachments: Vec<Bytes>,
) {
    let data = &request["packet"]["data"];
    if !data
        .as_array()
        .is_some_and(|a| a.first().is_some_and(Json::is_string))
    {
        return cluster.malformed("broadcast with ack without [event, ...args]");
    }
    let (rooms, except) = opts(request);
    let targets = namespace.select(&rooms, &except);
    cluster.respond_json(json!({
        "type": 8,
        "requestId": request_id,
        "clientCount": targets.len(),
    }));
    let timeout = std::time::Duration::from_millis(
        request["opts"]["flags"]["timeout"]
            .as_u64()
            .unwrap_or(DEFAULT_ACK_TIMEOUT_MS),
    );
    let data = ByteStr::from(data.to_string());
    for socket in targets {
        let cluster = cluster.clone();
        let data = data.clone();
        let attachments = attachments.clone();
        let request_id = request_id.clone();
        tokio::spawn(async move {
            let ack = tokio::time::timeout(timeout, socket.emit_packet_with_ack(data, attachments));
            let Ok(Ok(packet)) = ack.await else { return };
            let first = packet
                .data
                .as_deref()
                .and_then(|d| serde_json::from_str::<Json>(d).ok())
                .and_then(|args| args.as_array().and_then(|a| a.first().cloned()))
                .unwrap_or(Json::Null);
            let answer = Mp::Map(vec![
                (Mp::from("type"), Mp::from(9)),
                (Mp::from("requestId"), wire::to_msgpack(&request_id)),
                (Mp::from("packet"), wire::to_msgpack(&first)),
            ]);
            let mut bytes = Vec::new();
            if rmpv::encode::write_value(&mut bytes, &answer).is_ok() {
                cluster.respond(bytes);
            }
        });
    }
}
