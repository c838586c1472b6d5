//! The HTTP rules of Engine.IO: refusals with the spec's status and JSON body, origin checks, and
//! bad polling input. After each bad request the server still serves a normal client.

mod support;

use support::echo_app;
use support::raw::{http, polling_handshake, RawWs};

const UNKNOWN_SID: &str = r#"{"code":1,"message":"Session ID unknown"}"#;

#[tokio::test]
async fn handshake_refusals_carry_the_spec_codes() {
    let server = support::start(echo_app::router()).await;
    let cases = [
        (
            "GET",
            "/socket.io/?EIO=3&transport=polling",
            400,
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
        (
            "GET",
            "/socket.io/?transport=polling",
            400,
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=carrier-pigeon",
            400,
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            "GET",
            "/socket.io/?EIO=4",
            400,
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            "POST",
            "/socket.io/?EIO=4&transport=polling",
            400,
            r#"{"code":2,"message":"Bad handshake method"}"#,
        ),
        (
            "PUT",
            "/socket.io/?EIO=4&transport=polling",
            400,
            r#"{"code":2,"message":"Bad handshake method"}"#,
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            400,
            UNKNOWN_SID,
        ),
        (
            "POST",
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            400,
            UNKNOWN_SID,
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=websocket&sid=nope",
            400,
            UNKNOWN_SID,
        ),
    ];
    for (method, path, status, body) in cases {
        let reply = http(server.addr, method, path, &[], b"4x").await;
        assert_eq!(reply.status, status, "{method} {path}");
        assert_eq!(reply.text(), body, "{method} {path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    let mut ws = RawWs::socketio(server.addr).await;
    ws.assert_echo("still up").await;
}

#[tokio::test]
async fn open_packet_announces_the_configuration() {
    let server = support::start(echo_app::router()).await;
    let reply = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    let open: serde_json::Value = serde_json::from_str(&reply.text()[1..]).unwrap();
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 1000);
    assert_eq!(open["pingTimeout"], 1000);
    assert_eq!(open["maxPayload"], 10_000);
    assert_eq!(open["sid"].as_str().unwrap().len(), 20);
}

#[tokio::test]
async fn foreign_origins_are_refused_on_polling_and_websocket() {
    let server = support::start(echo_app::router()).await;
    let path = "/socket.io/?EIO=4&transport=polling";
    let foreign = http(
        server.addr,
        "GET",
        path,
        &[("Origin", "http://evil.example")],
        b"",
    )
    .await;
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.text(), r#"{"code":4,"message":"Forbidden"}"#);

    let allowed = http(
        server.addr,
        "GET",
        path,
        &[("Origin", "http://allowed.example")],
        b"",
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://allowed.example")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );

    let same_host = format!("http://{}", server.addr);
    let same = http(server.addr, "GET", path, &[("Origin", &same_host)], b"").await;
    assert_eq!(same.status, 200, "a page served by the gateway itself");

    let preflight = http(
        server.addr,
        "OPTIONS",
        path,
        &[
            ("Origin", "http://allowed.example"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );

    // The same list guards the WebSocket upgrade (cross-site WebSocket hijacking).
    let ws = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=websocket",
        &[
            ("Origin", "http://evil.example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    )
    .await;
    assert_eq!(ws.status, 403);
}

#[tokio::test]
async fn garbage_post_closes_only_that_session() {
    let server = support::start(echo_app::router()).await;
    let mut bystander = RawWs::socketio(server.addr).await;
    let sid = polling_handshake(server.addr).await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    for body in [&b"\xff\xfe"[..], b"9garbage", b"4ok\x1e", b"bnot-base64!"] {
        let sid = polling_handshake(server.addr).await;
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        let reply = http(server.addr, "POST", &path, &[], body).await;
        assert_eq!(reply.status, 400, "body {body:?}");
        let after = http(server.addr, "GET", &path, &[], b"").await;
        assert_eq!(after.status, 400, "session gone after body {body:?}");
        assert_eq!(after.text(), UNKNOWN_SID);
    }
    // A bad Socket.IO packet inside a valid Engine.IO payload ends that session too.
    let reply = http(
        server.addr,
        "POST",
        &path,
        &[],
        b"40\x1e42{\"not\":\"an array\"}",
    )
    .await;
    assert_eq!(reply.status, 200, "the engine accepted the payload");
    let after = http(server.addr, "GET", &path, &[], b"").await;
    assert!(
        after.status == 400 || after.text().ends_with('1'),
        "session closed after a bad socket.io packet: {} {}",
        after.status,
        after.text()
    );
    bystander.assert_echo("bystander unharmed").await;
}

#[tokio::test]
async fn oversized_post_gets_413_and_closes_the_session() {
    let server = support::start(echo_app::router()).await;
    let sid = polling_handshake(server.addr).await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let big = format!("4{}", "x".repeat(10_001));
    let reply = http(server.addr, "POST", &path, &[], big.as_bytes()).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.text(), r#"{"code":3,"message":"Payload too large"}"#);
    let after = http(server.addr, "GET", &path, &[], b"").await;
    assert_eq!(after.status, 400);
    let mut ws = RawWs::socketio(server.addr).await;
    ws.assert_echo("after 413").await;
}

#[tokio::test]
async fn duplicate_long_poll_closes_the_session() {
    let server = support::start(echo_app::router()).await;
    let sid = polling_handshake(server.addr).await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    // Two polls at once: whichever arrives second is refused, and the one parked is released with a
    // close packet, since a client that polls twice is broken.
    let (a, b) = tokio::join!(
        http(server.addr, "GET", &path, &[], b""),
        http(server.addr, "GET", &path, &[], b"")
    );
    let (parked, refused) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(refused.status, 400);
    assert_eq!(parked.status, 200);
    assert!(
        parked.text().ends_with('1'),
        "parked poll ends with a close packet: {}",
        parked.text()
    );
    let after = http(server.addr, "GET", &path, &[], b"").await;
    assert_eq!(after.status, 400);
}

#[tokio::test]
async fn polling_session_carries_socketio_both_ways() {
    let server = support::start(echo_app::router()).await;
    let sid = polling_handshake(server.addr).await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let reply = http(
        server.addr,
        "POST",
        &path,
        &[],
        b"40\x1e42[\"echo\",\"one\"]\x1e421[\"echo\",\"two\"]",
    )
    .await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"));
    let reply = http(server.addr, "GET", &path, &[], b"").await;
    let packets: Vec<&str> = std::str::from_utf8(&reply.body)
        .unwrap()
        .split('\x1e')
        .collect();
    assert_eq!(packets.len(), 4, "{packets:?}");
    assert!(packets[0].starts_with("40{\"sid\":"));
    assert_eq!(
        &packets[1..],
        [
            r#"42["echo-back","one"]"#,
            r#"42["echo-back","two"]"#,
            r#"431["two"]"#
        ]
    );
}
