//! The chat (docs/PROTOCOL.md) against a real PostgreSQL and the official clients: every event,
//! every error string, room isolation, member counts, tabs, switching, unicode, JWT, trust,
//! long-polling, and the database failing under a running server.

mod support;

use std::time::Duration;

use support::db::TestDb;
use support::proxy::Proxy;
use support::raw::RawWs;

use support::chat_gateway as gateway;

async fn scenario(name: &str, flags: &[&str], extra: &[&str]) {
    let db = TestDb::create().await;
    let server = gateway(&db.url(), flags).await;
    let url = server.url();
    let mut args = vec![url.as_str(), name];
    args.extend_from_slice(extra);
    support::node("chat.mjs", &args).await;
}

const TRUST: &[&str] = &["--auth", "trust"];

/// Payloads that are not objects (a string, a number, null, an array, a boolean, an empty string)
/// for one event, from the official client: refused, heard by nobody, the chat unharmed.
async fn not_an_object(event: &str) {
    scenario("not-an-object", TRUST, &[event]).await;
}

#[tokio::test]
async fn join_chat_refuses_a_payload_that_is_not_an_object() {
    not_an_object("join-chat").await;
}

#[tokio::test]
async fn send_message_refuses_a_payload_that_is_not_an_object() {
    not_an_object("send-message").await;
}

#[tokio::test]
async fn leave_chat_refuses_a_payload_that_is_not_an_object() {
    not_an_object("leave-chat").await;
}

#[tokio::test]
async fn typing_refuses_a_payload_that_is_not_an_object() {
    not_an_object("typing").await;
}

#[tokio::test]
async fn load_history_refuses_a_payload_that_is_not_an_object() {
    not_an_object("load-history").await;
}

#[tokio::test]
async fn mark_read_refuses_a_payload_that_is_not_an_object() {
    not_an_object("mark-read").await;
}

#[tokio::test]
async fn react_message_refuses_a_payload_that_is_not_an_object() {
    not_an_object("react-message").await;
}

#[tokio::test]
async fn edit_message_refuses_a_payload_that_is_not_an_object() {
    not_an_object("edit-message").await;
}

#[tokio::test]
async fn delete_message_refuses_a_payload_that_is_not_an_object() {
    not_an_object("delete-message").await;
}

#[tokio::test]
async fn every_event_between_tutor_and_tutee() {
    scenario("flow", TRUST, &[]).await;
}

#[tokio::test]
async fn every_error_string() {
    scenario("errors", TRUST, &[]).await;
}

#[tokio::test]
async fn message_length_limit_is_configurable() {
    scenario(
        "errors",
        &["--auth", "trust", "--max-message-chars", "20"],
        &["20"],
    )
    .await;
}

#[tokio::test]
async fn rooms_are_isolated() {
    scenario("isolation", TRUST, &[]).await;
}

#[tokio::test]
async fn member_counts_through_tabs_leaves_and_disconnects() {
    scenario("counts", TRUST, &[]).await;
}

#[tokio::test]
async fn switching_events_and_rejoining() {
    scenario("switching", TRUST, &[]).await;
}

#[tokio::test]
async fn unicode_and_emoji() {
    scenario("unicode", TRUST, &[]).await;
}

#[tokio::test]
async fn rate_limits_refuse_floods() {
    let flags = [
        "--auth",
        "trust",
        "--message-rate",
        "1",
        "--message-burst",
        "3",
        "--typing-rate",
        "1",
        "--typing-burst",
        "2",
    ];
    scenario("ratelimit", &flags, &[]).await;
}

#[tokio::test]
async fn chat_over_long_polling() {
    scenario("polling", TRUST, &[]).await;
}

use support::token;

#[tokio::test]
async fn jwt_accepted_refused_expired_and_wrong_user() {
    let good = token("test-secret", serde_json::json!("1"), 600);
    let expired = token("test-secret", serde_json::json!(1), -600);
    let forged = token("another-secret", serde_json::json!(1), 600);
    scenario(
        "jwt",
        &["--auth", "jwt", "--jwt-secret", "test-secret"],
        &[&good, &expired, &forged],
    )
    .await;
}

#[tokio::test]
async fn jwt_is_the_default_with_a_database() {
    let good = token("s", serde_json::json!(1), 600);
    let expired = token("s", serde_json::json!(1), -600);
    let forged = token("t", serde_json::json!(1), 600);
    scenario("jwt", &["--jwt-secret", "s"], &[&good, &expired, &forged]).await;
}

#[tokio::test]
async fn configurable_queries_for_another_schema() {
    let db = TestDb::create().await;
    db.execute(
        "CREATE TABLE people (id integer PRIMARY KEY, display text NOT NULL);
         CREATE TABLE sessions (id integer PRIMARY KEY, teacher integer, learner integer);
         INSERT INTO people VALUES (1, 'Ada Lovelace'), (2, 'Alan Turing');
         INSERT INTO sessions VALUES (101, 1, 2);
         DROP TABLE requested_event; DROP TABLE users;",
    )
    .await;
    let server = gateway(
        &db.url(),
        &[
            "--auth",
            "trust",
            "--event-query",
            "SELECT teacher, learner FROM sessions WHERE id = $1",
            "--user-query",
            "SELECT display FROM people WHERE id = $1",
        ],
    )
    .await;
    support::node("chat.mjs", &[&server.url(), "flow"]).await;
}

async fn join(ws: &mut RawWs, eventid: i32, userid: i32, role: &str) -> String {
    ws.join_chat(eventid, userid, role).await
}

#[tokio::test]
async fn database_outage_fails_joins_keeps_chats_and_recovers() {
    let db = TestDb::create().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db.url_via(&proxy.addr.to_string());
    let server = gateway(
        &url,
        &[
            "--auth",
            "trust",
            "--db-connect-timeout-ms",
            "500",
            "--db-query-timeout-ms",
            "1000",
        ],
    )
    .await;

    let mut tutor = RawWs::socketio(server.addr).await;
    let mut tutee = RawWs::socketio(server.addr).await;
    assert!(join(&mut tutor, 101, 1, "tutor")
        .await
        .starts_with(r#"42["chat-joined""#));
    assert!(join(&mut tutee, 101, 2, "tutee")
        .await
        .starts_with(r#"42["chat-joined""#));
    assert!(tutor
        .recv_text()
        .await
        .unwrap()
        .starts_with(r#"42["user-joined-chat""#));

    let ready = |addr| async move {
        support::raw::http(addr, "GET", "/ready", &[], b"")
            .await
            .status
    };
    assert_eq!(ready(server.addr).await, 200);

    proxy.down();
    assert_eq!(
        ready(server.addr).await,
        503,
        "not ready while the database is cut off"
    );
    assert_eq!(
        support::raw::http(server.addr, "GET", "/health", &[], b"")
            .await
            .status,
        200
    );
    let mut late = RawWs::socketio(server.addr).await;
    assert_eq!(
        join(&mut late, 102, 3, "tutor").await,
        r#"42["chat-error",{"message":"Failed to join chat"}]"#
    );
    // Joined chats do not need the database.
    tutor
        .send_text(r#"42["send-message",{"message":"during the outage"}]"#)
        .await;
    for ws in [&mut tutor, &mut tutee] {
        let got = ws.recv_text().await.unwrap();
        assert!(got.contains(r#""message":"during the outage""#), "{got}");
    }

    proxy.up();
    assert_eq!(ready(server.addr).await, 200, "ready again");
    let reply = join(&mut late, 102, 3, "tutor").await;
    assert!(
        reply.starts_with(r#"42["chat-joined",{"eventid":102"#),
        "recovered: {reply}"
    );
    drop(db);
}

#[tokio::test]
async fn unreachable_database_at_join_gives_failed_to_join() {
    // Nothing listens on this port: every join fails, and the server stays up.
    let server = gateway(
        "postgres://postgres@127.0.0.1:1/none",
        &[
            "--auth",
            "trust",
            "--db-connect-timeout-ms",
            "300",
            "--db-query-timeout-ms",
            "500",
        ],
    )
    .await;
    let mut ws = RawWs::socketio(server.addr).await;
    for _ in 0..3 {
        assert_eq!(
            join(&mut ws, 101, 1, "tutor").await,
            r#"42["chat-error",{"message":"Failed to join chat"}]"#
        );
    }
    ws.send_text(r#"42["send-message",{"message":"x"}]"#).await;
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"42["chat-error",{"message":"Not in any chat room"}]"#
    );
}

#[tokio::test]
async fn python_client_chats() {
    let db = TestDb::create().await;
    let server = gateway(&db.url(), TRUST).await;
    let out = support::python("chat_client.py", &[&server.url()]).await;
    assert!(out.contains("ok"), "{out}");
}

#[tokio::test]
async fn acks_answer_every_event() {
    let db = TestDb::create().await;
    let server = gateway(&db.url(), TRUST).await;
    let mut ws = RawWs::socketio(server.addr).await;
    ws.send_text(r#"421["join-chat",{"eventid":101,"userid":1,"role":"tutor"}]"#)
        .await;
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"42["chat-joined",{"eventid":101,"member_count":1,"role":"tutor"}]"#
    );
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"431[{"eventid":101,"member_count":1,"role":"tutor"}]"#
    );
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"42["chat-history",{"eventid":101,"messages":[],"has_more":false,"read_receipts":[]}]"#
    );
    ws.send_text(r#"422["typing",{"is_typing":false}]"#).await;
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"432[{"userid":1,"role":"tutor","is_typing":false}]"#
    );
    ws.send_text(r#"423["leave-chat"]"#).await;
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"42["chat-left",{"eventid":101}]"#
    );
    assert_eq!(ws.recv_text().await.unwrap(), r#"433[{"eventid":101}]"#);
    ws.send_text(r#"424["leave-chat"]"#).await;
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"42["chat-error",{"message":"Not in any chat room"}]"#
    );
    assert_eq!(
        ws.recv_text().await.unwrap(),
        r#"434[{"error":"Not in any chat room"}]"#
    );
}

#[tokio::test]
async fn a_disconnect_during_a_join_leaves_no_ghost_member() {
    let db = TestDb::create().await;
    let server = gateway(&db.url(), TRUST).await;
    // Many clients send a join and vanish at once; a watcher then sees an exact count.
    for _ in 0..20 {
        let mut ghost = RawWs::socketio(server.addr).await;
        ghost
            .send_text(r#"42["join-chat",{"eventid":101,"userid":2,"role":"tutee"}]"#)
            .await;
        drop(ghost);
    }
    let mut watcher = RawWs::socketio(server.addr).await;
    // Joins in flight finish (or are dropped) before this one is answered only if they were first in
    // line; poll the count through re-joins until no ghost remains or time runs out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = join(&mut watcher, 101, 1, "tutor").await;
        if reply.contains(r#""member_count":1"#) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ghost members remain: {reply}"
        );
        watcher.send_text(r#"42["leave-chat"]"#).await;
        let _ = watcher.recv_text().await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_nobody_waits_for_it() {
    let db = TestDb::create().await;
    let server = gateway(
        &db.url(),
        &[
            "--auth",
            "trust",
            "--message-rate",
            "0",
            "--outbox-capacity",
            "64",
            "--slow-consumer-ms",
            "300",
        ],
    )
    .await;
    let mut sender = RawWs::socketio(server.addr).await;
    let mut reader = RawWs::socketio(server.addr).await;
    let mut slow = RawWs::socketio(server.addr).await;
    assert!(join(&mut sender, 101, 1, "tutor")
        .await
        .starts_with(r#"42["chat-joined""#));
    assert!(join(&mut reader, 101, 2, "tutee")
        .await
        .starts_with(r#"42["chat-joined""#));
    assert!(join(&mut slow, 101, 2, "tutee")
        .await
        .starts_with(r#"42["chat-joined""#));
    // From here on `slow` never reads again.

    const MESSAGES: usize = 4000;
    let reading = tokio::spawn(async move {
        let (mut received, mut slow_left) = (0, false);
        while received < MESSAGES || !slow_left {
            let frame = reader.recv_text().await.expect("reader stays connected");
            if frame.starts_with(r#"42["receive-message""#) {
                assert!(
                    frame.contains(&format!(r#""message":"{received:05} "#)),
                    "in order: {}",
                    &frame[..60]
                );
                received += 1;
            } else if frame.starts_with(r#"42["user-left-chat""#) {
                assert_eq!(
                    frame,
                    r#"42["user-left-chat",{"userid":2,"role":"tutee","member_count":2}]"#
                );
                slow_left = true;
            }
        }
        received
    });
    // 4,000 messages of 4,000 characters: far more than the slow client's queue and socket buffers.
    let filler = "x".repeat(3990);
    for i in 0..MESSAGES {
        sender
            .send_text(&format!(
                r#"42["send-message",{{"message":"{i:05} {filler}"}}]"#
            ))
            .await;
        // The sender's own copy (after the join announcements queued before it).
        loop {
            let echo = sender
                .recv_text()
                .await
                .expect("the sender is never held up");
            if echo.starts_with(r#"42["receive-message""#) {
                break;
            }
            assert!(
                echo.starts_with(r#"42["user-"#) || echo.starts_with(r#"42["chat-history""#),
                "{}",
                &echo[..40.min(echo.len())]
            );
        }
    }
    let received = tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("reader done")
        .unwrap();
    assert_eq!(
        received, MESSAGES,
        "the other member received every message"
    );
    drop(slow);
}

#[tokio::test]
async fn a_query_slower_than_the_timeout_fails_the_join_not_the_server() {
    let db = TestDb::create().await;
    // The event query takes 2 s; the gateway gives it 300 ms.
    let server = gateway(
        &db.url(),
        &[
            "--auth",
            "trust",
            "--db-query-timeout-ms",
            "300",
            "--event-query",
            "SELECT userid_tutor, userid_tutee FROM requested_event, pg_sleep(2) WHERE eventid = $1",
        ],
    )
    .await;
    let mut ws = RawWs::socketio(server.addr).await;
    assert_eq!(
        join(&mut ws, 101, 1, "tutor").await,
        r#"42["chat-error",{"message":"Failed to join chat"}]"#
    );
    let mut other = RawWs::socketio(server.addr).await;
    other.send_text(r#"42["typing",{"is_typing":true}]"#).await;
    other.send_text(r#"421["leave-chat"]"#).await;
    assert_eq!(
        other.recv_text().await.unwrap(),
        r#"42["chat-error",{"message":"Not in any chat room"}]"#
    );
}
