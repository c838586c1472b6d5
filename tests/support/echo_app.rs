//! The Socket.IO application the engine-level tests run against: echo, acks both ways, binary,
//! rooms, and ways for a client to make the server drop it.

use std::sync::Arc;
use std::time::Duration;

use chatgate::codec::ByteStr;
use chatgate::engine::{CloseReason, Dispatch, Engine, EngineConfig};
use chatgate::http::OriginPolicy;
use chatgate::server::Router;
use chatgate::socketio::{IncomingEvent, Namespace, Refusal, Socket, SocketIo, SocketIoConfig};
use serde_json::value::RawValue;
use serde_json::{json, Value};

pub struct EchoApp;

fn args_json(event: &IncomingEvent<'_>) -> Vec<String> {
    event.args().iter().map(|a| a.get().to_owned()).collect()
}

fn first_arg(event: &IncomingEvent<'_>) -> Value {
    event
        .args()
        .first()
        .and_then(|a| serde_json::from_str(a.get()).ok())
        .unwrap_or(Value::Null)
}

impl Namespace for EchoApp {
    fn event(&self, socket: &Arc<Socket>, event: IncomingEvent<'_>) -> Dispatch {
        let args = args_json(&event);
        let attachments = event.attachments().to_vec();
        match event.name {
            "echo" => {
                let mut data = String::from(r#"["echo-back""#);
                for a in &args {
                    data.push(',');
                    data.push_str(a);
                }
                data.push(']');
                let _ = socket.emit_packet(ByteStr::from(data), attachments.clone());
            }
            "join" => {
                let room = first_arg(&event).as_str().unwrap_or("").to_owned();
                let count = socket.join(&room);
                if let Some(id) = event.ack_id() {
                    let _ = socket.ack(id, ByteStr::from(format!("[{count}]")), Vec::new());
                }
                return Dispatch::Done;
            }
            "shout" => {
                let arg = first_arg(&event);
                let room = arg["room"].as_str().unwrap_or("");
                let mut w = chatgate::codec::socket::EventWriter::message("/", "shouted");
                let _ = serde_json::to_writer(w.arg(), &arg["text"]);
                let item = chatgate::socketio::text_frame(w.finish());
                socket.broadcast_others(room, &item);
            }
            "ask-me" => {
                // The client's ACK arrives as its next packet, so the wait must not hold the
                // client's packet queue: it runs on a task of its own.
                let socket = socket.clone();
                tokio::spawn(async move {
                    let question = json!({"q": "ready?"});
                    let asked = socket.emit_with_ack("question", &question);
                    let reply = tokio::time::timeout(Duration::from_secs(5), asked).await;
                    let answer = match reply {
                        Ok(Ok(packet)) => packet.data.map(|d| d.to_string()).unwrap_or_default(),
                        other => format!("no answer: {other:?}"),
                    };
                    let _ = socket.emit("answer-received", &answer);
                });
            }
            "drop-me" => socket.session().close(CloseReason::ForcedClose),
            "bye" => socket.disconnect(),
            _ => {}
        }
        if let Some(id) = event.ack_id() {
            let _ = socket.ack(
                id,
                ByteStr::from(format!("[{}]", args.join(","))),
                attachments,
            );
        }
        Dispatch::Done
    }
}

/// `/admin` lets in only clients whose CONNECT payload holds `{"token":"secret"}`.
pub struct AdminApp;

impl Namespace for AdminApp {
    fn connect(&self, _socket: &Arc<Socket>, auth: Option<&RawValue>) -> Result<(), Refusal> {
        let auth: Value = auth
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or(Value::Null);
        if auth["token"] == "secret" {
            Ok(())
        } else {
            Err(Refusal::new("bad token"))
        }
    }

    fn connected(&self, socket: &Arc<Socket>) {
        let _ = socket.emit("welcome", "admin");
    }

    fn event(&self, _socket: &Arc<Socket>, _event: IncomingEvent<'_>) -> Dispatch {
        Dispatch::Done
    }
}

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(1000),
        ping_timeout: Duration::from_millis(1000),
        max_payload: 10_000,
        origins: OriginPolicy::new(["http://allowed.example".to_owned()]),
        ..chatgate::app::engine_config(&chatgate::config::ServeArgs::defaults())
    }
}

pub fn router() -> Router {
    router_with(engine_config())
}

pub fn router_with(config: EngineConfig) -> Router {
    let socketio = SocketIo::new(SocketIoConfig::default())
        .namespace("/", Arc::new(EchoApp))
        .namespace("/admin", Arc::new(AdminApp));
    Router::new().route("/socket.io/", Engine::new(config, socketio))
}
