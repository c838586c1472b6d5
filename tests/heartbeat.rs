//! Heartbeats: the server pings on schedule, a client that answers stays, a client that does not is
//! closed, and the application learns why.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chatgate::engine::{Dispatch, Engine, EngineConfig};
use chatgate::server::Router;
use chatgate::socketio::{
    DisconnectReason, IncomingEvent, Namespace, Socket, SocketIo, SocketIoConfig,
};
use support::raw::RawWs;
use tokio::sync::mpsc;

struct Recorder(mpsc::UnboundedSender<&'static str>);

impl Namespace for Recorder {
    fn event(&self, _socket: &Arc<Socket>, _event: IncomingEvent<'_>) -> Dispatch {
        Dispatch::Done
    }

    fn disconnect(&self, _socket: &Arc<Socket>, reason: DisconnectReason) {
        let _ = self.0.send(reason.as_str());
    }
}

async fn server(reasons: mpsc::UnboundedSender<&'static str>) -> support::TestServer {
    let config = EngineConfig {
        ping_interval: Duration::from_millis(100),
        // Generous: a loaded CI machine may take a while to answer; the interval drives the test.
        ping_timeout: Duration::from_millis(1000),
        ..chatgate::app::engine_config(&chatgate::config::ServeArgs::defaults())
    };
    let socketio =
        SocketIo::new(SocketIoConfig::default()).namespace("/", Arc::new(Recorder(reasons)));
    support::start(Router::new().route("/socket.io/", Engine::new(config, socketio))).await
}

#[tokio::test]
async fn silent_client_is_closed_with_ping_timeout() {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let server = server(tx).await;
    let mut ws = RawWs::connect(server.addr, "/socket.io/?EIO=4&transport=websocket")
        .await
        .unwrap();
    // Read frames raw (no automatic pong): open, CONNECT reply, then the ping, then the close.
    ws.send_text("40").await;
    let reason = tokio::time::timeout(Duration::from_secs(5), reasons.recv())
        .await
        .unwrap();
    assert_eq!(reason, Some("ping timeout"));
}

#[tokio::test]
async fn answering_client_stays_through_many_pings() {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let server = server(tx).await;
    let mut ws = RawWs::socketio(server.addr).await;
    // Five pings, each answered: the session outlives five ping timeouts.
    for _ in 0..5 {
        assert_eq!(ws.recv_raw().await.as_deref(), Some("2"));
        ws.send_text("3").await;
    }
    assert!(
        reasons.try_recv().is_err(),
        "no disconnect while pongs come"
    );
    drop(ws);
    let reason = tokio::time::timeout(Duration::from_secs(5), reasons.recv())
        .await
        .unwrap();
    assert_eq!(reason, Some("transport close"));
}
