//! The real binary, started the way a newcomer starts it: with no database it serves the demo
//! directory and the demo page; with a database but no secret it refuses to start; SIGTERM stops it.

mod support;

use std::time::Duration;

use support::binary::start;
use tokio::process::Command;

#[tokio::test]
async fn demo_directory_serves_a_working_chat() {
    let running = start(&[]).await;
    let log = running.log.join("\n");
    for expected in [
        "auth=\"trust\"",
        "demo user 1: Ada Lovelace",
        "demo event 101: tutor 1 (Ada Lovelace), tutee 2 (Alan Turing)",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }
    support::node("chat.mjs", &[&running.url, "flow"]).await;
    support::node("chat.mjs", &[&running.url, "counts"]).await;
}

#[tokio::test]
async fn demo_page_in_a_headless_browser() {
    let running = start(&[]).await;
    let shot = support::repo_path("target/demo-page.png");
    let out = support::node("demo_page.mjs", &[&running.url, &shot.to_string_lossy()]).await;
    assert!(out.contains("ok"));
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "screenshot written"
    );
}

#[tokio::test]
async fn unreachable_database_at_start_is_retried_and_recovered() {
    let db = support::db::TestDb::create().await;
    let (proxy, url) = db.behind_a_down_proxy().await;
    let mut running = start(&[
        "--database-url",
        &url,
        "--auth",
        "trust",
        "--db-connect-timeout-ms",
        "300",
    ])
    .await;
    let addr = running.addr();
    running.log_line("database unreachable; retrying").await;
    let status = |path: &'static str| async move {
        support::raw::http(addr, "GET", path, &[], b"").await.status
    };
    assert_eq!(status("/health").await, 200, "up while the database is not");
    assert_eq!(status("/ready").await, 503);
    running.log_line("database unreachable; retrying").await;
    proxy.up();
    // Ready once the tables are checked too (the schema step follows the database back).
    running.log_line("schema ready").await;
    assert_eq!(status("/ready").await, 200);
    support::node("chat.mjs", &[&running.url, "flow"]).await;
}

#[tokio::test]
async fn database_without_a_secret_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://postgres@127.0.0.1/none",
        ])
        .env_remove("CHATGATE_JWT_SECRET")
        .env_remove("CHATGATE_AUTH")
        .output()
        .await
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--jwt-secret") && stderr.contains("--auth trust"),
        "{stderr}"
    );
}

/// Starts the binary with `args`, connects a Socket.IO client, sends SIGTERM, and returns every
/// frame the client received before the connection closed; asserts a clean exit.
async fn frames_at_sigterm(args: &[&str]) -> Vec<String> {
    let mut running = start(args).await;
    let mut ws = support::raw::RawWs::socketio(running.addr()).await;
    assert!(ws.join_chat(101, 1, "tutor").await.contains("chat-joined"));
    running.signal_term().await;
    let mut frames = Vec::new();
    while let Some(frame) = ws.recv_text().await {
        frames.push(frame);
    }
    running.clean_exit(Duration::from_secs(10)).await;
    frames
}

#[tokio::test]
async fn sigterm_sends_socketio_disconnect_and_exits() {
    let frames = frames_at_sigterm(&["--shutdown-grace-secs", "5"]).await;
    // "41": DISCONNECT of the main namespace, which the official clients report as
    // "io server disconnect"; then the transport closes.
    assert_eq!(frames, ["41"], "frames before the close");
}

#[tokio::test]
async fn sigterm_with_reconnect_notice_only_closes_the_transport() {
    let frames = frames_at_sigterm(&["--shutdown-notice", "reconnect"]).await;
    assert!(frames.is_empty(), "no DISCONNECT, got {frames:?}");
}

#[tokio::test]
async fn json_logs_and_a_separate_admin_address() {
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let admin_arg = admin.to_string();
    let running = start(&["--log-format", "json", "--admin-listen", &admin_arg]).await;
    for line in &running.log {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    let main = running.addr();
    let get = |addr, path: &'static str| async move {
        support::raw::http(addr, "GET", path, &[], b"").await.status
    };
    assert_eq!(get(admin, "/metrics").await, 200);
    assert_eq!(get(admin, "/health").await, 200);
    assert_eq!(get(admin, "/ready").await, 200);
    assert_eq!(
        get(main, "/metrics").await,
        404,
        "operator routes only on the admin address"
    );
    assert_eq!(get(main, "/").await, 200);
}

/// The official client on `transports`, three tutor/tutee pairs mid-burst when the gateway gets
/// `signal`: every client receives every message queued before the goodbye, then `reason` (never a
/// transport error), and the gateway exits cleanly.
async fn official_clients_at_signal(transports: &str, signal: &str, notice: &str, reason: &str) {
    let mut running = start(&["--shutdown-grace-secs", "10", "--shutdown-notice", notice]).await;
    let pid = running.child.id().expect("running").to_string();
    let out = support::node(
        "shutdown.mjs",
        &[&running.url, &pid, signal, transports, reason],
    )
    .await;
    assert!(out.contains("ok:"), "{out}");
    running.clean_exit(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn sigterm_reaches_long_polling_clients_with_their_messages() {
    official_clients_at_signal("polling", "SIGTERM", "disconnect", "io server disconnect").await;
}

#[tokio::test]
async fn sigint_reaches_upgraded_clients_with_their_messages() {
    official_clients_at_signal("default", "SIGINT", "disconnect", "io server disconnect").await;
}

#[tokio::test]
async fn sigint_with_reconnect_notice_closes_long_polling_transports() {
    official_clients_at_signal("polling", "SIGINT", "reconnect", "transport close").await;
}

#[tokio::test]
async fn sigterm_with_reconnect_notice_closes_upgraded_transports() {
    official_clients_at_signal("default", "SIGTERM", "reconnect", "transport close").await;
}

/// During the grace period the gateway still answers the sessions it has but opens no new one.
#[tokio::test]
async fn new_handshakes_are_refused_during_the_grace_period() {
    let mut running = start(&["--shutdown-grace-secs", "10"]).await;
    let addr = running.addr();
    // A polling session that never comes back for its goodbye keeps the gateway in its grace period.
    let open =
        support::raw::http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(open.status, 200);
    running.signal_term().await;
    running.log_line("shutting down").await;
    let refused =
        support::raw::http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert!(String::from_utf8_lossy(&refused.body).contains("shutting down"));
    assert_eq!(
        support::raw::http(addr, "GET", "/ready", &[], b"")
            .await
            .status,
        503
    );
    running.clean_exit(Duration::from_secs(15)).await;
}
