//! Connection state recovery (docs/RECOVERY.md): the official JavaScript client loses its TCP
//! connection and comes back to the same node, to another node, and after its node was killed;
//! every event it missed arrives once, in order. Then what cannot be recovered, over raw frames:
//! each falls back to a normal connect, and the chat goes on.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::binary::{start, Running};
use support::db::TestDb;
use support::raw::{event_payload, member, RawWs};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn node(db: &TestDb, extra: &[&str]) -> Running {
    let url = db.url();
    let mut args = vec!["--database-url", &url, "--auth", "trust"];
    args.extend_from_slice(extra);
    start(&args).await
}

/// Two nodes in cluster mode over one database and one Redis.
async fn two_nodes(db: &TestDb, redis: &str) -> (Running, Running) {
    let a = node(db, &["--cluster", redis, "--node-id", "0"]).await;
    let b = node(db, &["--cluster", redis, "--node-id", "1"]).await;
    (a, b)
}

#[tokio::test]
async fn the_official_client_recovers_on_the_same_node() {
    let db = TestDb::create().await;
    let a = node(&db, &[]).await;
    support::node("recovery.mjs", &["same", &a.url, &a.url]).await;
    support::node("recovery.mjs", &["auto", &a.url, &a.url]).await;
    support::node("recovery.mjs", &["intentional", &a.url, &a.url]).await;
    support::node("recovery.mjs", &["polling", &a.url, &a.url]).await;
    let recovered = support::raw::metric(
        a.addr(),
        r#"chatgate_recoveries_total{outcome="recovered"}"#,
    )
    .await;
    assert_eq!(
        recovered,
        Some(3.0),
        "three recoveries, not the intentional disconnect"
    );
}

#[tokio::test]
async fn the_official_client_recovers_on_another_node() {
    let db = TestDb::create().await;
    let redis = support::redis_server::RedisServer::start().await;
    let (a, b) = two_nodes(&db, &redis.url()).await;
    support::node("recovery.mjs", &["other", &a.url, &b.url]).await;
    let on_b = support::raw::metric(
        b.addr(),
        r#"chatgate_recoveries_total{outcome="recovered"}"#,
    )
    .await;
    assert_eq!(on_b, Some(1.0), "restored by node B");
}

/// How node A goes away in [`node_goes_away`].
enum Loss {
    /// SIGKILL: nothing written, nothing said.
    Killed,
    /// SIGTERM with `--shutdown-notice reconnect` (a rolling restart): transports closed.
    ShutDown,
}

/// The tutee is on node A, its tutor on node B; node A goes; the tutee comes back on B, recovered.
async fn node_goes_away(loss: Loss) {
    let db = TestDb::create().await;
    let redis = support::redis_server::RedisServer::start().await;
    let url = redis.url();
    let notice = ["--shutdown-notice", "reconnect"];
    let mut a = node(
        &db,
        &[&["--cluster", &url, "--node-id", "0"][..], &notice].concat(),
    )
    .await;
    let b = node(&db, &["--cluster", &url, "--node-id", "1"]).await;
    let mut script = tokio::process::Command::new("node")
        .arg(support::repo_path("tests/clients/recovery.mjs"))
        .args(["killed", &a.url, &b.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(script.stdout.take().expect("stdout")).lines();
    let said = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the script reaches the kill");
    assert_eq!(said.ok().flatten().as_deref(), Some("kill"));
    // The tutee's session is written a few milliseconds after its join: once it is there, node A
    // goes.
    let client = db.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = client
            .query_opt(
                "SELECT 1 FROM chatgate_session WHERE eventid = 101 AND userid = 2",
                &[],
            )
            .await
            .expect("query");
        if row.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session row is written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match loss {
        Loss::Killed => a.kill().await,
        Loss::ShutDown => a.terminate().await,
    }
    let mut stdin = script.stdin.take().expect("stdin");
    stdin.write_all(b"killed\n").await.expect("write");
    let status = tokio::time::timeout(Duration::from_secs(60), script.wait())
        .await
        .expect("the script finishes")
        .expect("status");
    assert!(
        status.success(),
        "recovery.mjs killed failed (its stderr is above)"
    );
    let on_b = support::raw::metric(
        b.addr(),
        r#"chatgate_recoveries_total{outcome="recovered"}"#,
    )
    .await;
    assert_eq!(on_b, Some(1.0));
}

#[tokio::test]
async fn the_official_client_recovers_after_its_node_was_killed() {
    node_goes_away(Loss::Killed).await;
}

#[tokio::test]
async fn a_rolling_restart_hands_clients_over_without_loss() {
    node_goes_away(Loss::ShutDown).await;
}

#[tokio::test]
async fn the_demo_recovers_from_memory() {
    let demo = start(&[]).await;
    support::node("recovery.mjs", &["same", &demo.url, &demo.url]).await;
}

/// The `sid` and `pid` of a CONNECT answer.
fn ids(answer: &str) -> (String, Option<String>) {
    let body: serde_json::Value = serde_json::from_str(
        answer
            .strip_prefix("40")
            .unwrap_or_else(|| panic!("not a CONNECT: {answer}")),
    )
    .expect("JSON");
    (
        body["sid"].as_str().expect("sid").to_owned(),
        body["pid"].as_str().map(str::to_owned),
    )
}

/// A raw connection that sends CONNECT with `payload` and returns the answer.
async fn connect_with(addr: std::net::SocketAddr, payload: &str) -> (RawWs, String) {
    let mut ws = RawWs::open(addr).await;
    ws.send_text(&format!("40{payload}")).await;
    let answer = ws.recv_text().await.expect("CONNECT answer");
    (ws, answer)
}

/// A tutee in event 101 over raw frames, with its sid and pid.
async fn tutee(addr: std::net::SocketAddr, auth: &str) -> (RawWs, String, String) {
    let (mut ws, answer) = connect_with(addr, auth).await;
    let (sid, pid) = ids(&answer);
    let pid = pid.expect("a pid with recovery on");
    let joined = ws.join_chat(101, 2, "tutee").await;
    assert!(joined.starts_with(r#"42["chat-joined""#), "{joined}");
    (ws, sid, pid)
}

/// Sends a message and returns the frame the sender got back (with its offset).
async fn send(ws: &mut RawWs, text: &str) -> String {
    ws.send_text(&format!(r#"42["send-message",{{"message":"{text}"}}]"#))
        .await;
    loop {
        let frame = ws.recv_text().await.expect("receive-message");
        if frame.starts_with(r#"42["receive-message""#) {
            return frame;
        }
    }
}

/// The offset (last argument) of an event frame.
fn offset(frame: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&frame[2..]).expect("event");
    let args = v.as_array().expect("array");
    args.last()
        .and_then(|o| o.as_str())
        .unwrap_or_else(|| panic!("no offset in {frame}"))
        .to_owned()
}

#[tokio::test]
async fn what_cannot_be_recovered_connects_normally_and_the_chat_goes_on() {
    let db = TestDb::create().await;
    let a = node(&db, &["--recovery-max-replay", "3"]).await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    let (ws, sid, pid) = tutee(a.addr(), "").await;
    let first = send(&mut tutor, "one").await;
    let last_seen = offset(&first);
    drop(ws);

    // An unknown pid, a pid that is not a string, a payload that is not an object: a new socket,
    // a new pid, nothing sent but the answer.
    for payload in [
        r#"{"pid":"nobody-has-this-pid","offset":"1"}"#.to_owned(),
        r#"{"pid":42}"#.to_owned(),
        r#"{"pid":null,"offset":"x"}"#.to_owned(),
        r#"{"pid":"","offset":""}"#.to_owned(),
    ] {
        let (mut ws, answer) = connect_with(a.addr(), &payload).await;
        assert!(answer.starts_with(r#"40{"sid":"#), "{payload}: {answer}");
        let (new_sid, new_pid) = ids(&answer);
        assert_ne!(new_sid, sid);
        assert_ne!(new_pid.as_deref(), Some(pid.as_str()));
        ws.send_text(r#"42["send-message",{"message":"x"}]"#).await;
        let refused = ws.recv_text().await.expect("chat-error");
        assert_eq!(
            event_payload(&refused, "chat-error"),
            serde_json::json!({"message": "Not in any chat room"})
        );
    }

    // More missed than --recovery-max-replay: a normal connect (the client reads its history).
    for i in 0..4 {
        send(&mut tutor, &format!("missed {i}")).await;
    }
    let (ws, answer) = connect_with(
        a.addr(),
        &format!(r#"{{"pid":"{pid}","offset":"{last_seen}"}}"#),
    )
    .await;
    let (new_sid, _) = ids(&answer);
    assert_ne!(new_sid, sid, "too much to replay: not recovered");
    drop(ws);

    // With an offset from just before the last message: recovered, that one message sent again,
    // under the same socket id and pid.
    let newest = send(&mut tutor, "the last").await;
    let before_newest: i64 = offset(&newest).parse::<i64>().expect("offset") - 1;
    let (mut ws, answer) = connect_with(
        a.addr(),
        &format!(r#"{{"pid":"{pid}","offset":"{before_newest}"}}"#),
    )
    .await;
    assert_eq!(ids(&answer), (sid.clone(), Some(pid.clone())), "restored");
    let again = ws.recv_text().await.expect("the missed message");
    assert_eq!(again, newest, "sent again byte for byte, offset included");
    // Back in the chat: it can send, and the tutor hears it.
    send(&mut ws, "back").await;
    let heard = tutor.recv_text().await.expect("the tutor hears it");
    assert_eq!(event_payload(&heard, "receive-message")["message"], "back");
    // The tutor was not told it joined again.
    assert!(!heard.starts_with(r#"42["user-joined-chat""#));
    let recovered = support::raw::metric(
        a.addr(),
        r#"chatgate_recoveries_total{outcome="recovered"}"#,
    )
    .await;
    let too_much =
        support::raw::metric(a.addr(), r#"chatgate_recoveries_total{outcome="too_much"}"#).await;
    let unknown =
        support::raw::metric(a.addr(), r#"chatgate_recoveries_total{outcome="unknown"}"#).await;
    assert_eq!(
        (recovered, too_much, unknown),
        (Some(1.0), Some(1.0), Some(2.0))
    );
}

#[tokio::test]
async fn the_window_passes_and_a_chat_no_longer_allowed_is_not_recovered() {
    let db = TestDb::create().await;
    let a = node(&db, &["--recovery-window-secs", "1"]).await;
    let (ws, sid, pid) = tutee(a.addr(), "").await;
    drop(ws);
    // The window is a time: nothing to wait for but the clock.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_ws, answer) = connect_with(a.addr(), &format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_ne!(ids(&answer).0, sid, "past the window: a new socket");

    // Within the window, but the user was taken off the event meanwhile.
    let (ws, sid, pid) = tutee(a.addr(), "").await;
    drop(ws);
    db.execute("UPDATE requested_event SET userid_tutee = 4 WHERE eventid = 101")
        .await;
    let (_ws, answer) = connect_with(a.addr(), &format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_ne!(ids(&answer).0, sid, "no longer a member: a new socket");
    let unauthorized = support::raw::metric(
        a.addr(),
        r#"chatgate_recoveries_total{outcome="unauthorized"}"#,
    )
    .await;
    assert_eq!(unauthorized, Some(1.0));
}

#[tokio::test]
async fn a_token_for_another_user_does_not_recover_a_session() {
    let db = TestDb::create().await;
    let url = db.url();
    let secret = "recovery-test-secret";
    let a = start(&["--database-url", &url, "--jwt-secret", secret]).await;
    let token2 = support::token(secret, serde_json::json!(2), 3600);
    let token4 = support::token(secret, serde_json::json!(4), 3600);
    let (ws, sid, pid) = tutee(a.addr(), &format!(r#"{{"token":"{token2}"}}"#)).await;
    drop(ws);
    // User 4's valid token with user 2's pid: a normal connect as user 4.
    let (_ws, answer) = connect_with(
        a.addr(),
        &format!(r#"{{"token":"{token4}","pid":"{pid}"}}"#),
    )
    .await;
    assert_ne!(ids(&answer).0, sid);
    // No token at all: refused as any connect without one is.
    let (_ws, answer) = connect_with(a.addr(), &format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert!(answer.starts_with("44"), "{answer}");
    // The right user's token: restored.
    let (_ws, answer) = connect_with(
        a.addr(),
        &format!(r#"{{"token":"{token2}","pid":"{pid}"}}"#),
    )
    .await;
    assert_eq!(ids(&answer), (sid, Some(pid)));
}

#[tokio::test]
async fn with_recovery_off_nothing_changes_on_the_wire() {
    let db = TestDb::create().await;
    let a = node(&db, &["--recovery-window-secs", "0"]).await;
    let (mut ws, answer) = connect_with(a.addr(), "").await;
    assert_eq!(ids(&answer).1, None, "no pid");
    ws.join_chat(101, 1, "tutor").await;
    let frame = send(&mut ws, "plain").await;
    let v: serde_json::Value = serde_json::from_str(&frame[2..]).expect("event");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "no offset: {frame}");
    // A client that still sends a pid connects normally.
    let (_ws, answer) = connect_with(a.addr(), r#"{"pid":"old","offset":"1"}"#).await;
    assert!(answer.starts_with(r#"40{"sid":"#), "{answer}");
}

#[tokio::test]
async fn load_history_after_an_id_reads_only_newer_messages() {
    let db = TestDb::create().await;
    let a = node(&db, &[]).await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let frame = send(&mut tutor, &format!("m{i}")).await;
        ids.push(
            event_payload(&frame, "receive-message")["id"]
                .as_i64()
                .expect("id"),
        );
    }
    let ask = |body: String| format!(r#"421["load-history",{body}]"#);
    tutor
        .send_text(&ask(format!(r#"{{"after_id":{},"limit":2}}"#, ids[1])))
        .await;
    let page = tutor.recv_text().await.expect("chat-history");
    let page = event_payload(&page, "chat-history");
    let got: Vec<i64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(got, ids[2..4], "the two oldest after it, oldest first");
    assert_eq!(page["has_more"], true, "a newer one remains");
    let _ack = tutor.recv_text().await;
    tutor
        .send_text(&ask(format!(r#"{{"after_id":{}}}"#, ids[3])))
        .await;
    let page = event_payload(&tutor.recv_text().await.expect("page"), "chat-history");
    assert_eq!(page["messages"][0]["id"].as_i64(), Some(ids[4]));
    assert_eq!(page["has_more"], false);
    let _ack = tutor.recv_text().await;
    // Both directions at once, or an id that is not a positive integer: refused, nothing else.
    for body in [
        format!(r#"{{"after_id":{},"before_id":{}}}"#, ids[0], ids[4]),
        r#"{"after_id":"7"}"#.to_owned(),
        r#"{"after_id":-1}"#.to_owned(),
    ] {
        tutor.send_text(&ask(body.clone())).await;
        let refused = tutor.recv_text().await.expect("chat-error");
        assert_eq!(
            event_payload(&refused, "chat-error"),
            serde_json::json!({"message": "Invalid history request: after_id must be a positive \
                integer, and cannot be combined with before_id"}),
            "{body}"
        );
        let _ack = tutor.recv_text().await;
    }
    send(&mut tutor, "still fine").await;
}
