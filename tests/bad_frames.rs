//! Malformed input over a bare WebSocket: the offender is closed, the server stays up, and a client
//! in the middle of a conversation is not disturbed.

mod support;

use support::echo_app;
use support::raw::RawWs;

/// Sends `frames` on a fresh Socket.IO connection and asserts the server closes it, while a bystander
/// keeps working.
async fn closes_offender(frames: &[&str]) {
    let server = support::start(echo_app::router()).await;
    let mut bystander = RawWs::socketio(server.addr).await;
    let mut offender = RawWs::socketio(server.addr).await;
    for frame in frames {
        offender.send_text(frame).await;
    }
    offender.expect_closed().await;
    bystander.assert_echo("bystander").await;
    let mut newcomer = RawWs::socketio(server.addr).await;
    newcomer.assert_echo("newcomer").await;
}

#[tokio::test]
async fn unknown_engine_packet_type() {
    closes_offender(&["9hello"]).await;
}

#[tokio::test]
async fn empty_text_frame() {
    closes_offender(&[""]).await;
}

#[tokio::test]
async fn unknown_socketio_packet_type() {
    closes_offender(&["4abc"]).await;
}

#[tokio::test]
async fn event_data_not_an_array() {
    closes_offender(&[r#"42{"event":"echo"}"#]).await;
}

#[tokio::test]
async fn event_name_not_a_string() {
    closes_offender(&[r#"42[42,"x"]"#]).await;
}

#[tokio::test]
async fn truncated_json() {
    closes_offender(&[r#"42["echo","unterminated"#]).await;
}

#[tokio::test]
async fn ack_id_overflow() {
    closes_offender(&[r#"4299999999999999999999999["echo"]"#]).await;
}

#[tokio::test]
async fn json_nested_too_deep() {
    let deep = format!(r#"42["echo",{}{}]"#, "[".repeat(200), "]".repeat(200));
    closes_offender(&[&deep]).await;
}

#[tokio::test]
async fn too_many_attachments_announced() {
    closes_offender(&[r#"4599-["echo",{"_placeholder":true,"num":0}]"#]).await;
}

#[tokio::test]
async fn attachments_that_never_arrive() {
    // A text packet where the announced attachment should be.
    closes_offender(&[
        r#"451-["echo",{"_placeholder":true,"num":0}]"#,
        r#"42["echo","x"]"#,
    ])
    .await;
}

#[tokio::test]
async fn reserved_event_name() {
    closes_offender(&[r#"42["disconnect"]"#]).await;
}

#[tokio::test]
async fn binary_frame_without_a_packet() {
    let server = support::start(echo_app::router()).await;
    let mut offender = RawWs::socketio(server.addr).await;
    offender.send_binary(vec![1, 2, 3]).await;
    offender.expect_closed().await;
    let mut newcomer = RawWs::socketio(server.addr).await;
    newcomer.assert_echo("after stray binary").await;
}

#[tokio::test]
async fn frame_over_max_payload() {
    let server = support::start(echo_app::router()).await;
    let mut bystander = RawWs::socketio(server.addr).await;
    let mut offender = RawWs::socketio(server.addr).await;
    let big = format!(r#"42["echo","{}"]"#, "x".repeat(20_000));
    offender.send_text(&big).await;
    offender.expect_closed().await;
    bystander.assert_echo("bystander").await;
}

#[tokio::test]
async fn events_before_connecting_a_namespace_are_dropped() {
    let server = support::start(echo_app::router()).await;
    let mut ws = RawWs::open(server.addr).await;
    // No CONNECT yet: the event goes nowhere, and the session stays usable.
    ws.send_text(r#"42["echo","too early"]"#).await;
    ws.send_text("40").await;
    let reply = ws.recv_text().await.expect("CONNECT reply");
    assert!(reply.starts_with("40{"), "{reply}");
    ws.assert_echo("in order").await;
}

#[tokio::test]
async fn second_websocket_on_an_upgraded_session_is_closed() {
    let server = support::start(echo_app::router()).await;
    let sid = support::raw::polling_handshake(server.addr).await;
    let path = format!("/socket.io/?EIO=4&transport=websocket&sid={sid}");
    let mut first = RawWs::connect(server.addr, &path)
        .await
        .expect("upgrade accepted");
    first.send_text("2probe").await;
    assert_eq!(first.recv_text().await.as_deref(), Some("3probe"));
    first.send_text("5").await;
    first.send_text("40").await;
    let reply = first
        .recv_text()
        .await
        .expect("CONNECT reply over the upgraded transport");
    assert!(reply.starts_with("40{"), "{reply}");
    let mut second = RawWs::connect(server.addr, &path)
        .await
        .expect("accepted, then closed");
    second.expect_closed().await;
    first.assert_echo("first unharmed").await;
}
