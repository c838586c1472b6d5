//! The official Python client (`python-socketio` from PyPI) against the engine and Socket.IO layers.

mod support;

use support::echo_app;

#[tokio::test]
async fn python_client_over_websocket() {
    let server = support::start(echo_app::router()).await;
    let out = support::python("engine_client.py", &[&server.url(), "websocket"]).await;
    assert!(out.contains("ok"));
}

#[tokio::test]
async fn python_client_over_polling_with_upgrade() {
    let server = support::start(echo_app::router()).await;
    let out = support::python("engine_client.py", &[&server.url(), "polling"]).await;
    assert!(out.contains("ok"));
}
