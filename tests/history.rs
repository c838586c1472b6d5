//! Message history against a real PostgreSQL: `chat-history` after a join, `load-history` pages,
//! isolation between events, ids, restarts, a database outage while chatting, the flush at
//! shutdown, `chatgate migrate`, and the in-memory history of the demo directory.

mod support;

use support::raw::member;

use std::time::Duration;

use serde_json::Value;
use support::binary::start;
use support::db::TestDb;
use support::proxy::Proxy;
use support::raw::event_payload as payload;
use support::raw::RawWs;

const TRUST: &[&str] = &["--auth", "trust"];

/// `(messages, has_more)` of a `chat-history` frame.
fn page(frame: &str, eventid: i32) -> (Vec<Value>, bool) {
    let p = payload(frame, "chat-history");
    assert_eq!(p["eventid"], eventid, "{frame}");
    let messages = p["messages"].as_array().expect("messages").clone();
    (messages, p["has_more"].as_bool().expect("has_more"))
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["message"].as_str().expect("message").to_owned())
        .collect()
}

/// Reads frames up to the `receive-message` of `text` and returns its payload; only other
/// messages and join/leave announcements may come before it.
async fn receive(ws: &mut RawWs, text: &str) -> Value {
    loop {
        let frame = ws.recv_text().await.expect("a receive-message");
        if frame.starts_with(r#"42["receive-message""#) {
            let p = payload(&frame, "receive-message");
            if p["message"] == text {
                return p;
            }
        } else {
            assert!(frame.starts_with(r#"42["user-"#), "unexpected {frame}");
        }
    }
}

/// Sends a message and returns the `receive-message` payload the sender gets back.
async fn send(ws: &mut RawWs, text: &str) -> Value {
    ws.send_text(&format!(r#"42["send-message",{{"message":"{text}"}}]"#))
        .await;
    receive(ws, text).await
}

/// Sends `load-history` with `body` and returns the answer frame (skipping announcements and
/// messages of others).
async fn load(ws: &mut RawWs, body: &str) -> String {
    ws.send_text(&format!(r#"42["load-history",{body}]"#)).await;
    loop {
        let frame = ws.recv_text().await.expect("an answer to load-history");
        if !frame.starts_with(r#"42["user-"#) && !frame.starts_with(r#"42["receive-message""#) {
            return frame;
        }
    }
}

/// Joins from a socket that may have unread messages and announcements; returns the history frame.
async fn join_again(ws: &mut RawWs, eventid: i32, userid: i32, role: &str) -> String {
    ws.send_text(&format!(
        r#"42["join-chat",{{"eventid":{eventid},"userid":{userid},"role":"{role}"}}]"#
    ))
    .await;
    loop {
        let frame = ws.recv_text().await.expect("chat-joined");
        if frame.starts_with(r#"42["chat-joined""#) {
            return ws.recv_text().await.expect("chat-history");
        }
        assert!(
            frame.starts_with(r#"42["user-"#) || frame.starts_with(r#"42["receive-message""#),
            "unexpected {frame}"
        );
    }
}

fn id(m: &Value) -> i64 {
    m["id"].as_i64().expect("an integer id")
}

#[tokio::test]
async fn joiners_get_every_message_in_order_exactly_as_delivered() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let (history, more) = page(tutor.last_history.as_deref().unwrap(), 101);
    assert!(history.is_empty() && !more, "a new chat has no history");
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let mut live = Vec::new();
    for i in 0..6 {
        let (ws, who) = if i % 2 == 0 {
            (&mut tutor, "tutor")
        } else {
            (&mut tutee, "tutee")
        };
        live.push(send(ws, &format!("{who} says {i} ✓")).await);
    }
    for pair in live.windows(2) {
        assert!(id(&pair[1]) > id(&pair[0]), "ids increase: {pair:?}");
    }
    // Another tab of the tutee joins: the history is the live messages, byte for byte.
    let tab = member(server.addr, 101, 2, "tutee").await;
    let (history, more) = page(tab.last_history.as_deref().unwrap(), 101);
    assert_eq!(history, live);
    assert!(!more);
    // Re-joining the chat one is in sends the history again.
    let again = join_again(&mut tutor, 101, 1, "tutor").await;
    assert_eq!(page(&again, 101).0, live);
}

#[tokio::test]
async fn the_official_javascript_client_reads_history() {
    let db = TestDb::create().await;
    let flags = ["--auth", "trust", "--history-page", "2"];
    let server = support::chat_gateway(&db.url(), &flags).await;
    support::node("chat.mjs", &[&server.url(), "history"]).await;
}

#[tokio::test]
async fn pages_have_exact_boundaries_and_limits() {
    let db = TestDb::create().await;
    let flags = [
        "--auth",
        "trust",
        "--message-rate",
        "0",
        "--history-page",
        "3",
        "--history-max-page",
        "4",
    ];
    let server = support::chat_gateway(&db.url(), &flags).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut sent = Vec::new();
    for i in 1..=8 {
        sent.push(send(&mut tutor, &format!("m{i}")).await);
    }
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let (first, more) = page(tutee.last_history.as_deref().unwrap(), 101);
    assert_eq!(
        texts(&first),
        ["m6", "m7", "m8"],
        "the newest page, oldest first"
    );
    assert!(more);
    // Walk back with before_id = the first id of the page.
    let (second, more) = page(
        &load(
            &mut tutee,
            &format!(r#"{{"eventid":101,"before_id":{}}}"#, id(&first[0])),
        )
        .await,
        101,
    );
    assert_eq!(texts(&second), ["m3", "m4", "m5"]);
    assert!(more);
    let (third, more) = page(
        &load(
            &mut tutee,
            &format!(r#"{{"before_id":{}}}"#, id(&second[0])),
        )
        .await,
        101,
    );
    assert_eq!(texts(&third), ["m1", "m2"]);
    assert!(!more, "nothing before m1");
    let (none, more) = page(
        &load(&mut tutee, &format!(r#"{{"before_id":{}}}"#, id(&sent[0]))).await,
        101,
    );
    assert!(none.is_empty() && !more);
    // before_id is exclusive, limit is capped at --history-max-page.
    let (capped, more) = page(
        &load(
            &mut tutee,
            &format!(r#"{{"before_id":{},"limit":1000}}"#, id(&sent[7])),
        )
        .await,
        101,
    );
    assert_eq!(texts(&capped), ["m4", "m5", "m6", "m7"]);
    assert!(more);
    let (one, _) = page(&load(&mut tutee, r#"{"limit":1}"#).await, 101);
    assert_eq!(texts(&one), ["m8"], "no before_id: the newest");
    // Bad requests: a clear error, and the socket still works.
    for bad in [
        r#"{"limit":0}"#,
        r#"{"limit":-3}"#,
        r#"{"limit":2.5}"#,
        r#"{"before_id":"12"}"#,
        r#"{"before_id":[1]}"#,
        r#"{"before_id":99999999999999999999}"#,
    ] {
        assert_eq!(
            load(&mut tutee, bad).await,
            r#"42["chat-error",{"message":"Invalid history request: before_id and limit must be positive integers"}]"#,
            "{bad}"
        );
    }
    let acked = {
        tutee
            .send_text(r#"427["load-history",{"limit":"x"}]"#)
            .await;
        tutee.recv_text().await.unwrap();
        tutee.recv_text().await.unwrap()
    };
    assert_eq!(
        acked,
        r#"437[{"error":"Invalid history request: before_id and limit must be positive integers"}]"#
    );
    assert_eq!(
        texts(&page(&load(&mut tutee, "{}").await, 101).0),
        ["m6", "m7", "m8"]
    );
}

#[tokio::test]
async fn history_belongs_to_its_event_and_its_members_only() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut a = member(server.addr, 101, 1, "tutor").await;
    let mut b = member(server.addr, 102, 3, "tutor").await;
    send(&mut a, "for 101").await;
    send(&mut b, "for 102").await;
    let a2 = member(server.addr, 101, 2, "tutee").await;
    let b2 = member(server.addr, 102, 4, "tutee").await;
    assert_eq!(
        texts(&page(a2.last_history.as_deref().unwrap(), 101).0),
        ["for 101"]
    );
    assert_eq!(
        texts(&page(b2.last_history.as_deref().unwrap(), 102).0),
        ["for 102"]
    );
    // A member of 102 cannot read 101's history by naming it.
    assert_eq!(
        load(&mut b, r#"{"eventid":101}"#).await,
        r#"42["chat-error",{"message":"Event ID mismatch"}]"#
    );
    // Nor can a socket that joined nothing, or whose join was refused.
    let mut stranger = RawWs::socketio(server.addr).await;
    assert_eq!(
        load(&mut stranger, r#"{"eventid":101}"#).await,
        r#"42["chat-error",{"message":"Not in any chat room"}]"#
    );
    assert_eq!(
        stranger.join_chat(101, 3, "tutor").await,
        r#"42["chat-error",{"message":"Unauthorized: You are not part of this event"}]"#
    );
    assert_eq!(
        load(&mut stranger, r#"{"eventid":101}"#).await,
        r#"42["chat-error",{"message":"Not in any chat room"}]"#,
        "a refused join sends no history and grants none"
    );
    // After switching chats, only the new chat's history is readable.
    let (history, _) = page(&join_again(&mut a, 103, 1, "tutor").await, 103);
    assert!(history.is_empty());
    assert_eq!(
        load(&mut a, r#"{"eventid":101}"#).await,
        r#"42["chat-error",{"message":"Event ID mismatch"}]"#
    );
}

#[tokio::test]
async fn history_and_ids_survive_a_restart() {
    let db = TestDb::create().await;
    let flags = ["--database-url", &db.url(), "--auth", "trust"];
    let mut first = start(&flags).await;
    let mut tutor = member(first.addr(), 101, 1, "tutor").await;
    let before: Vec<Value> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(send(&mut tutor, &format!("before restart {i}")).await);
        }
        v
    };
    first.terminate().await;
    let second = start(&flags).await;
    let mut tutor = member(second.addr(), 101, 1, "tutor").await;
    let (history, _) = page(tutor.last_history.as_deref().unwrap(), 101);
    assert_eq!(history, before, "stored before the restart, read after it");
    let after = send(&mut tutor, "after restart").await;
    assert!(
        id(&after) > id(&before[2]),
        "ids keep increasing across a restart"
    );
}

/// Reads one metric's value from `/metrics`.
async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    support::raw::metric(addr, name)
        .await
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Waits until a metric reaches `at_least` (the writer's progress has no client-visible event).
async fn metric_reaches(addr: std::net::SocketAddr, name: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(addr, name).await < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed below {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stored(db: &TestDb) -> Vec<(i64, String)> {
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query("SELECT id, message FROM chatgate_message ORDER BY id", &[])
        .await
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_database_outage_delays_storage_never_delivery() {
    let db = TestDb::create().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db.url_via(&proxy.addr.to_string());
    // One message in the writer's hands and two in its queue; a fourth is not kept.
    let flags = [
        "--auth",
        "trust",
        "--history-batch",
        "1",
        "--history-queue",
        "2",
        "--db-connect-timeout-ms",
        "300",
        "--db-query-timeout-ms",
        "500",
    ];
    let server = support::chat_gateway(&url, &flags).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let kept = send(&mut tutor, "stored before the outage").await;
    receive(&mut tutee, "stored before the outage").await;
    metric_reaches(server.addr, "chatgate_history_stored_total", 1.0).await;

    proxy.down();
    // Each message asks for an ack: it comes once the message is stored.
    tutor
        .send_text(r#"421["send-message",{"message":"outage 1"}]"#)
        .await;
    receive(&mut tutee, "outage 1").await;
    metric_reaches(server.addr, "chatgate_history_failed_batches_total", 1.0).await;
    for (ack, text) in [(2, "outage 2"), (3, "outage 3"), (4, "outage 4")] {
        tutor
            .send_text(&format!(
                r#"42{ack}["send-message",{{"message":"{text}"}}]"#
            ))
            .await;
        receive(&mut tutee, text).await;
    }
    // Frames at the tutor: its four copies, then the one immediate ack: the fourth was not kept.
    let mut at_tutor = Vec::new();
    for _ in 0..5 {
        at_tutor.push(tutor.recv_text().await.unwrap());
    }
    assert_eq!(
        at_tutor.last().unwrap(),
        r#"434[{"error":"Message delivered but not stored"}]"#,
        "{at_tutor:?}"
    );
    assert_eq!(
        metric(server.addr, "chatgate_history_dropped_total").await,
        1.0
    );

    proxy.up();
    // The three kept messages are stored, in order, and each sender's ack says so.
    let mut acks = Vec::new();
    for _ in 0..3 {
        acks.push(tutor.recv_text().await.unwrap());
    }
    for (frame, n) in acks.iter().zip(1..) {
        assert!(frame.starts_with(&format!("43{n}[{{")), "{frame}");
        assert!(
            frame.contains(&format!(r#""message":"outage {n}""#)),
            "{frame}"
        );
    }
    let rows = stored(&db).await;
    let texts: Vec<&str> = rows.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        texts,
        [
            "stored before the outage",
            "outage 1",
            "outage 2",
            "outage 3"
        ]
    );
    assert_eq!(rows[0].0, id(&kept));
    // And a joiner sees exactly what was stored.
    let tab = member(server.addr, 101, 2, "tutee").await;
    let (history, _) = page(tab.last_history.as_deref().unwrap(), 101);
    assert_eq!(crate::texts(&history), texts);
}

#[tokio::test]
async fn a_writer_that_lags_slows_senders_and_stores_everything() {
    let db = TestDb::create().await;
    // A queue of two and batches of one: a burst of 60 is far ahead of the writer.
    let flags = [
        "--auth",
        "trust",
        "--message-rate",
        "0",
        "--history-queue",
        "2",
        "--history-batch",
        "1",
    ];
    let server = support::chat_gateway(&db.url(), &flags).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    for i in 0..60 {
        tutor
            .send_text(&format!(r#"42["send-message",{{"message":"burst {i}"}}]"#))
            .await;
    }
    for i in 0..60 {
        receive(&mut tutee, &format!("burst {i}")).await;
    }
    metric_reaches(server.addr, "chatgate_history_stored_total", 60.0).await;
    assert_eq!(
        metric(server.addr, "chatgate_history_dropped_total").await,
        0.0
    );
    let rows = stored(&db).await;
    assert_eq!(rows.len(), 60, "every message stored");
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(rows[59].1, "burst 59");
}

#[tokio::test]
async fn sigterm_stores_what_is_queued_before_exiting() {
    let db = TestDb::create().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db.url_via(&proxy.addr.to_string());
    let mut running = start(&[
        "--database-url",
        &url,
        "--auth",
        "trust",
        "--message-rate",
        "0",
        "--shutdown-grace-secs",
        "20",
        "--db-connect-timeout-ms",
        "300",
        "--db-query-timeout-ms",
        "500",
    ])
    .await;
    let mut tutor = member(running.addr(), 101, 1, "tutor").await;
    proxy.down();
    for i in 0..50 {
        send(&mut tutor, &format!("queued {i}")).await;
    }
    // The messages wait in the queue while the database is away; SIGTERM arrives, then it returns.
    running.signal_term().await;
    running.log_line("shutting down").await;
    proxy.up();
    running.clean_exit(Duration::from_secs(30)).await;
    let rows = stored(&db).await;
    assert_eq!(rows.len(), 50, "every queued message stored at shutdown");
    assert_eq!(rows[49].1, "queued 49");
}

#[tokio::test]
async fn migrate_is_versioned_and_rerunnable() {
    let db = TestDb::create().await; // already migrated once
    assert_eq!(
        chatgate::migrate::migrate(&db.url()).await.expect("again"),
        Vec::<i32>::new(),
        "nothing left to apply"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["migrate", "--database-url", &db.url()])
        .output()
        .await
        .expect("run chatgate migrate");
    assert!(out.status.success(), "{out:?}");
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM chatgate_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let index: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'chatgate_message_eventid_id'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(index, 1, "the history index exists");
}

#[tokio::test]
async fn the_demo_keeps_a_bounded_history_in_memory() {
    let running = start(&["--history-memory-per-chat", "3", "--message-rate", "0"]).await;
    let mut tutor = member(running.addr(), 101, 1, "tutor").await;
    for i in 1..=5 {
        send(&mut tutor, &format!("m{i}")).await;
    }
    let tutee = member(running.addr(), 101, 2, "tutee").await;
    let (history, more) = page(tutee.last_history.as_deref().unwrap(), 101);
    assert_eq!(texts(&history), ["m3", "m4", "m5"], "the newest three only");
    assert!(!more, "nothing older is kept");
    let other = member(running.addr(), 102, 3, "tutor").await;
    assert!(page(other.last_history.as_deref().unwrap(), 102)
        .0
        .is_empty());
}
