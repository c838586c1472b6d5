//! Connection limits: total sessions, long-polling sessions, handshakes per address. Over each, a
//! clear refusal; the sessions already open are unharmed.

mod support;

use chatgate::engine::EngineConfig;
use chatgate::rate::RateLimit;
use support::echo_app;
use support::raw::{http, polling_handshake, RawWs};

const POLLING: &str = "/socket.io/?EIO=4&transport=polling";

#[tokio::test]
async fn over_max_connections_new_handshakes_get_503() {
    let config = EngineConfig {
        max_sessions: 2,
        ..echo_app::engine_config()
    };
    let server = support::start(echo_app::router_with(config)).await;
    let mut a = RawWs::socketio(server.addr).await;
    let mut b = RawWs::socketio(server.addr).await;
    let refused = http(server.addr, "GET", POLLING, &[], b"").await;
    assert_eq!(refused.status, 503);
    assert_eq!(
        refused.text(),
        r#"{"code":4,"message":"Server full: too many connections"}"#
    );
    assert!(
        RawWs::connect(server.addr, "/socket.io/?EIO=4&transport=websocket")
            .await
            .is_err()
    );
    a.assert_echo("a unharmed").await;
    b.assert_echo("b unharmed").await;
    // A place frees up when a session ends.
    drop(a);
    b.assert_echo("round trip after a left").await;
    let mut c = loop {
        // The server notices a's close asynchronously; try until it has (bounded by the test timeout).
        if let Ok(mut ws) =
            RawWs::connect(server.addr, "/socket.io/?EIO=4&transport=websocket").await
        {
            if ws
                .recv_raw()
                .await
                .is_some_and(|open| open.starts_with('0'))
            {
                break ws;
            }
        }
    };
    c.send_text("40").await;
    assert!(c.recv_text().await.unwrap().starts_with("40"));
    c.assert_echo("c admitted").await;
}

#[tokio::test]
async fn over_max_polling_sessions_polling_gets_503_websocket_still_works() {
    let config = EngineConfig {
        max_polling_sessions: 2,
        ..echo_app::engine_config()
    };
    let server = support::start(echo_app::router_with(config)).await;
    let first = polling_handshake(server.addr).await;
    let _second = polling_handshake(server.addr).await;
    let refused = http(server.addr, "GET", POLLING, &[], b"").await;
    assert_eq!(refused.status, 503);
    assert_eq!(
        refused.text(),
        r#"{"code":4,"message":"Server full: too many long-polling sessions, use WebSocket"}"#
    );
    let mut ws = RawWs::socketio(server.addr).await;
    ws.assert_echo("websocket unaffected").await;
    // The existing polling session still works.
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={first}");
    let reply = http(server.addr, "POST", &path, &[], b"40").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"));
    // Upgrading one to WebSocket frees its polling place.
    let mut up = RawWs::connect(
        server.addr,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={first}"),
    )
    .await
    .unwrap();
    up.send_text("2probe").await;
    assert_eq!(up.recv_text().await.as_deref(), Some("3probe"));
    up.send_text("5").await;
    // The CONNECT reply to the POST above was still queued: it comes over the new transport.
    assert!(up.recv_text().await.unwrap().starts_with("40{"));
    up.assert_echo("upgraded").await;
    assert_eq!(
        http(server.addr, "GET", POLLING, &[], b"").await.status,
        200,
        "a place freed by the upgrade"
    );
}

#[tokio::test]
async fn handshakes_per_address_are_rate_limited() {
    let config = EngineConfig {
        handshake_rate: RateLimit {
            per_second: 0.5,
            burst: 3.0,
        },
        ..echo_app::engine_config()
    };
    let server = support::start(echo_app::router_with(config)).await;
    let mut kept = RawWs::socketio(server.addr).await;
    polling_handshake(server.addr).await;
    polling_handshake(server.addr).await;
    let refused = http(server.addr, "GET", POLLING, &[], b"").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.text(),
        r#"{"code":3,"message":"Too many handshakes from this address"}"#
    );
    kept.assert_echo("open sessions unaffected").await;
}

/// Reads until the server closes the connection; panics if it does not within 5 s.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, what: &str) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue, // a 408 or similar before the close is fine
            Err(_) => panic!("the server kept the {what} connection open"),
        }
    }
}

#[tokio::test]
async fn slowloris_connections_are_dropped_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let config = chatgate::server::ServerConfig {
        header_timeout: std::time::Duration::from_millis(300),
    };
    let server = support::start_with(echo_app::router(), config).await;
    // Headers trickling in, never finished.
    let mut trickle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    trickle
        .write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A connection that sends nothing at all.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut trickle, "half-sent").await;
    closed_by_server(&mut silent, "silent").await;
    let mut ws = RawWs::socketio(server.addr).await;
    ws.assert_echo("server fine").await;
}
