//! The test application the official Engine.IO and Socket.IO conformance suites expect
//! (`test-suite/` of socketio/engine.io-protocol and socketio/socket.io-protocol), built on chatgate's
//! engine and Socket.IO layers. Not part of the production gateway.
//!
//!     cargo run --release --example conformance -- --listen 127.0.0.1:3000
//!
//! - `/engine.io/`: a raw Engine.IO echo server (every message comes back as it was sent).
//! - `/socket.io/`: namespaces `/` and `/custom`. On connect both emit `auth` with the CONNECT
//!   payload (`{}` without one); on `/`, `message` is echoed as `message-back` with the same
//!   arguments, and `message-with-ack` is acknowledged with its arguments.
//! - Both: pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1,000,000, any origin.
//!
//! docs/CONFORMANCE.md says how to run the suites against it.

use std::sync::Arc;
use std::time::Duration;

use chatgate::codec::engine::{Frame, Packet as EnginePacket};
use chatgate::codec::ByteStr;
use chatgate::engine::{CloseReason, Dispatch, Engine, EngineConfig, Handler, Session};
use chatgate::http::OriginPolicy;
use chatgate::server::{self, Router};
use chatgate::socketio::{IncomingEvent, Namespace, Socket, SocketIo, SocketIoConfig};

/// Engine.IO echo: text stays text, binary stays binary.
struct Echo;

impl Handler for Echo {
    type Conn = Arc<Session>;

    fn open(&self, session: Arc<Session>) -> Arc<Session> {
        session
    }

    fn message(&self, session: &Arc<Arc<Session>>, frame: Frame) -> Dispatch {
        let echo = match frame {
            Frame::Text(text) => EnginePacket::message_frame(&text),
            Frame::Binary(bytes) => Frame::Binary(bytes),
        };
        let _ = session.send(echo);
        Dispatch::Done
    }

    fn close(&self, _session: &Arc<Arc<Session>>, _reason: CloseReason) {}
}

/// Emits `auth` on connect; on the main namespace, also echoes `message` and acks `message-with-ack`.
struct TestNamespace {
    echo: bool,
}

fn join_args(event: &IncomingEvent<'_>) -> String {
    event
        .args()
        .iter()
        .map(|a| a.get())
        .collect::<Vec<_>>()
        .join(",")
}

impl Namespace for TestNamespace {
    fn connected(&self, socket: &Arc<Socket>) {
        let auth = socket.auth().map_or("{}", |a| a.as_str());
        let data = ByteStr::from(format!(r#"["auth",{auth}]"#));
        // The suite's raw client (ws 8.5.0) emits every frame of one TCP read synchronously, while
        // its test re-arms a one-shot listener only after each await: a second frame that arrives in
        // the same read as the CONNECT reply is dropped on the floor. Real clients do not have this
        // problem; the suite's reference server escapes it by waiting for a write callback. Here the
        // `auth` event leaves a few milliseconds after the reply, in a read of its own.
        let socket = socket.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = socket.emit_packet(data, Vec::new());
        });
    }

    fn event(&self, socket: &Arc<Socket>, event: IncomingEvent<'_>) -> Dispatch {
        if !self.echo {
            return Dispatch::Done;
        }
        let args = join_args(&event);
        let attachments = event.attachments().to_vec();
        match (event.name, event.ack_id()) {
            ("message", _) => {
                let sep = if args.is_empty() { "" } else { "," };
                let data = format!(r#"["message-back"{sep}{args}]"#);
                let _ = socket.emit_packet(ByteStr::from(data), attachments);
            }
            ("message-with-ack", Some(id)) => {
                let _ = socket.ack(id, ByteStr::from(format!("[{args}]")), attachments);
            }
            _ => {}
        }
        Dispatch::Done
    }
}

fn engine_config(path: &str) -> EngineConfig {
    EngineConfig {
        path: path.to_owned(),
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        origins: OriginPolicy::any(),
        ..chatgate::app::engine_config(&chatgate::config::ServeArgs::defaults())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:3000".to_owned();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!("usage: conformance [--listen ADDR]");
                std::process::exit(2);
            }
        }
    }

    let socketio = SocketIo::new(SocketIoConfig {
        connect_timeout: Duration::from_millis(1000),
        ..SocketIoConfig::default()
    })
    .namespace("/", Arc::new(TestNamespace { echo: true }))
    .namespace("/custom", Arc::new(TestNamespace { echo: false }));

    let router = Router::new()
        .route(
            "/engine.io/",
            Engine::new(engine_config("/engine.io/"), Echo),
        )
        .route(
            "/socket.io/",
            Engine::new(engine_config("/socket.io/"), socketio),
        );

    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("conformance: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("conformance server on http://{listen} (/engine.io/ and /socket.io/)");
    server::serve(
        listener,
        router,
        chatgate::app::server_config(&chatgate::config::ServeArgs::defaults()),
        std::future::pending(),
    )
    .await;
}
