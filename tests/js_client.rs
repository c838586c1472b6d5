//! The official JavaScript client (`socket.io-client` 4.x from npm) against the engine and Socket.IO
//! layers: transports and the upgrade, acks both ways, binary, reconnection, namespaces, rooms.

mod support;

use support::echo_app;

async fn scenario(name: &str) {
    let server = support::start(echo_app::router()).await;
    support::node("engine.mjs", &[&server.url(), name]).await;
}

#[tokio::test]
async fn polling_then_upgrade_to_websocket() {
    scenario("upgrade").await;
}

#[tokio::test]
async fn polling_only_events_acks_unicode_and_binary() {
    scenario("polling").await;
}

#[tokio::test]
async fn websocket_only_acks_both_ways() {
    scenario("acks").await;
}

#[tokio::test]
async fn binary_payloads_and_binary_acks() {
    scenario("binary").await;
}

#[tokio::test]
async fn reconnects_after_the_server_drops_the_connection() {
    scenario("reconnect").await;
}

#[tokio::test]
async fn server_namespace_disconnect_reaches_the_client() {
    scenario("kicked").await;
}

#[tokio::test]
async fn namespaces_refusal_unknown_and_auth() {
    scenario("namespaces").await;
}

#[tokio::test]
async fn room_broadcast_skips_sender_and_other_rooms() {
    scenario("rooms").await;
}
