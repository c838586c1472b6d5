//! Offline notifications against a real PostgreSQL, a real HTTP receiver in the test (which checks
//! every signature) and real chatgate processes: one notification for a burst, none when the
//! recipient is present or reads in time, an idle tab, opting out, retries after failures and
//! hangs, two nodes sharing the work, and a node killed with notifications pending or in flight.
//!
//! "Nothing else arrived" is proven by a later notification of another chat (due after the one
//! that must not come): workers take due notifications in due order, so once it is in, the other
//! was handled.

mod support;

use support::raw::member;

use std::time::Duration;

use support::binary::{start, Running};
use support::db::TestDb;
use support::raw::{event_payload as payload, RawWs};
use support::webhook::{Delivery, Receiver, Reply};

/// A node with notifications due `delay` seconds after a message, to `hook`.
async fn node(db: &TestDb, hook: &Receiver, delay: &str, extra: &[&str]) -> Running {
    let url = db.url();
    let hook_url = hook.url();
    let mut args = vec![
        "--database-url",
        &url,
        "--auth",
        "trust",
        "--notify-webhook-url",
        &hook_url,
        "--notify-webhook-secret",
        &hook.secret,
        "--notify-delay-secs",
        delay,
        "--notify-poll-ms",
        "100",
    ];
    args.extend_from_slice(extra);
    start(&args).await
}

/// Sends a message and returns its id (from the sender's own `receive-message`).
async fn send(ws: &mut RawWs, text: &str) -> i64 {
    ws.send_text(&format!(r#"42["send-message",{{"message":"{text}"}}]"#))
        .await;
    loop {
        let frame = ws.recv_text().await.expect("a frame");
        if frame.starts_with(r#"42["receive-message""#) {
            let p = payload(&frame, "receive-message");
            if p["message"] == text {
                return p["id"].as_i64().expect("id");
            }
        }
    }
}

fn eventid(d: &Delivery) -> i64 {
    d.body["eventid"].as_i64().expect("eventid")
}

async fn metric(addr: std::net::SocketAddr, sample: &str) -> f64 {
    support::raw::metric(addr, sample).await.unwrap_or(0.0)
}

/// Waits (at most 10 s) until a counter reaches `value`: the worker counts a delivery once the
/// receiver's answer is in, a moment after the receiver has it.
async fn metric_reaches(addr: std::net::SocketAddr, sample: &str, value: f64) {
    reaches(sample, value, || metric(addr, sample)).await;
}

/// Waits (at most 10 s) until `read` says `value`.
async fn reaches<F: std::future::Future<Output = f64>>(
    what: &str,
    value: f64,
    read: impl Fn() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = read().await;
        if now == value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} stayed {now}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_burst_to_an_absent_member_is_one_signed_content_free_notification() {
    let db = TestDb::create().await;
    let mut hook = Receiver::start(&[]).await;
    let a = node(&db, &hook, "1", &[]).await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send(&mut tutor, &format!("question {i}")).await);
    }
    let d = hook.next().await;
    assert!(d.signed, "a valid Standard Webhooks signature: {d:?}");
    assert!(d.id.starts_with("ntf_"), "{}", d.id);
    assert_eq!(d.body["id"], d.id.as_str());
    assert_eq!(d.body["eventid"], 101);
    assert_eq!(
        d.body["recipient"],
        serde_json::json!({"userid": 2, "role": "tutee"})
    );
    assert_eq!(d.body["sender"]["userid"], 1);
    assert_eq!(d.body["sender"]["role"], "tutor");
    assert_eq!(
        d.body["count"], 5,
        "one notification for the burst: {}",
        d.body
    );
    assert_eq!(d.body["first_message_id"], ids[0]);
    assert_eq!(d.body["last_message_id"], ids[4]);
    assert!(
        d.body.get("preview").is_none(),
        "content-free by default: {}",
        d.body
    );
    let age = chrono::Utc::now().timestamp() - d.timestamp.parse::<i64>().expect("seconds");
    assert!(
        (0..60).contains(&age),
        "webhook-timestamp is now: {}",
        d.timestamp
    );

    // The Standard Webhooks reference library agrees.
    let body_file = support::temp_dir("webhook").join("body.json");
    std::fs::write(&body_file, &d.raw).expect("write body");
    let checked = support::python(
        "verify_webhook.py",
        &[
            &hook.secret,
            &d.id,
            &d.timestamp,
            &d.signature,
            &body_file.to_string_lossy(),
        ],
    )
    .await;
    assert!(checked.contains("\"count\": 5"), "{checked}");

    // Nothing more for 101: a later message in 102 (tutee 4 absent) is told, and 101's burst was
    // told once.
    let mut other = member(a.addr(), 102, 3, "tutor").await;
    send(&mut other, "hello").await;
    let next = hook.next().await;
    assert_eq!(eventid(&next), 102, "{:?}", next.body);
    metric_reaches(
        a.addr(),
        "chatgate_notifications_sent_total{channel=\"webhook\"}",
        2.0,
    )
    .await;
    metric_reaches(a.addr(), "chatgate_notifications_pending", 0.0).await;
    assert!(hook.taken_now().is_empty());
}

#[tokio::test]
async fn nobody_is_told_what_they_saw_or_read_in_time() {
    let db = TestDb::create().await;
    let mut hook = Receiver::start(&[]).await;
    let a = node(&db, &hook, "2", &["--notify-preview", "on"]).await;
    // 101: the tutee is in the chat (present).
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    let _tutee = member(a.addr(), 101, 2, "tutee").await;
    send(&mut tutor, "you are here").await;
    // 103: the tutee (4) reads it in time, then leaves.
    let mut tutor3 = member(a.addr(), 103, 1, "tutor").await;
    let read = send(&mut tutor3, "read this").await;
    let mut tutee3 = member(a.addr(), 103, 4, "tutee").await;
    tutee3
        .send_text(&format!(r#"421["mark-read",{{"message_id":{read}}}]"#))
        .await;
    // The ack comes once the mark is stored.
    loop {
        let f = tutee3.recv_text().await.expect("frame");
        if let Some(ack) = f.strip_prefix("431") {
            assert!(ack.contains(&format!("\"last_read_id\":{read}")), "{ack}");
            break;
        }
    }
    drop(tutee3);
    // 102: nobody there: told (with a preview, asked for here), and the barrier for the rest.
    let mut tutor2 = member(a.addr(), 102, 3, "tutor").await;
    send(&mut tutor2, "a question about chapter 4").await;
    let d = hook.next().await;
    assert_eq!(eventid(&d), 102, "only 102 is told: {:?}", d.body);
    assert_eq!(d.body["preview"], "a question about chapter 4");
    assert!(hook.taken_now().is_empty());
    assert_eq!(
        metric(
            a.addr(),
            "chatgate_notifications_dropped_total{reason=\"present\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            a.addr(),
            "chatgate_notifications_dropped_total{reason=\"read\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn an_idle_tab_does_not_swallow_notifications_and_opting_out_does() {
    let db = TestDb::create().await;
    let mut hook = Receiver::start(&[]).await;
    // Present means active within the last second; notifications come after two.
    let a = node(&db, &hook, "2", &["--notify-idle-secs", "1"]).await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    let _idle_tab = member(a.addr(), 101, 2, "tutee").await;
    send(&mut tutor, "still there?").await;
    let d = hook.next().await;
    assert_eq!(eventid(&d), 101, "{:?}", d.body);
    assert_eq!(d.body["recipient"]["userid"], 2);

    // Tutee 4 opts out (and a bad setting is refused), then leaves; 103's message is not told,
    // 102's (after it) is.
    let mut tutee4 = member(a.addr(), 103, 4, "tutee").await;
    tutee4
        .send_text(r#"421["notify-settings",{"enabled":"no"}]"#)
        .await;
    let refused = tutee4.recv_text().await.expect("frame");
    assert_eq!(
        payload(&refused, "chat-error")["message"],
        "Invalid notify-settings: enabled must be true or false"
    );
    tutee4.recv_text().await.expect("the ack");
    tutee4
        .send_text(r#"422["notify-settings",{"enabled":false}]"#)
        .await;
    let set = tutee4.recv_text().await.expect("frame");
    assert_eq!(
        payload(&set, "notify-settings"),
        serde_json::json!({"enabled": false})
    );
    tutee4.recv_text().await.expect("the ack");
    drop(tutee4);
    let mut tutor3 = member(a.addr(), 103, 1, "tutor").await;
    send(&mut tutor3, "for 4, who opted out").await;
    let mut tutor2 = member(a.addr(), 102, 3, "tutor").await;
    send(&mut tutor2, "for 4 in 102 too").await;
    // 102's tutee is 4 as well: opted out everywhere. The barrier is 101 again.
    send(&mut tutor, "again").await;
    let d = hook.next().await;
    assert_eq!(eventid(&d), 101, "only 101 is told: {:?}", d.body);
    metric_reaches(
        a.addr(),
        "chatgate_notifications_dropped_total{reason=\"opted_out\"}",
        2.0,
    )
    .await;
    metric_reaches(a.addr(), "chatgate_notifications_pending", 0.0).await;
    assert!(hook.taken_now().is_empty());
}

#[tokio::test]
async fn a_failing_or_hanging_endpoint_is_retried_with_the_same_id_and_the_chat_goes_on() {
    let db = TestDb::create().await;
    let mut hook = Receiver::start(&[Reply::Status(500), Reply::Hang, Reply::Status(503)]).await;
    let a = node(&db, &hook, "1", &["--notify-webhook-timeout-ms", "500"]).await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    send(&mut tutor, "are you there?").await;
    let first = hook.next().await;
    assert!(matches!(first.answered, Reply::Status(500)));
    let second = hook.next().await;
    assert!(matches!(second.answered, Reply::Hang));
    // While the endpoint hangs, the chat is not held up.
    let mut tutee = member(a.addr(), 102, 4, "tutee").await;
    let mut tutor2 = member(a.addr(), 102, 3, "tutor").await;
    send(&mut tutor2, "live while the hook hangs").await;
    let live = loop {
        let f = tutee.recv_text().await.expect("frame");
        if f.starts_with(r#"42["receive-message""#) {
            break payload(&f, "receive-message");
        }
    };
    assert_eq!(live["message"], "live while the hook hangs");
    let third = hook.next().await;
    assert!(matches!(third.answered, Reply::Status(503)));
    let fourth = hook.next().await;
    assert!(matches!(fourth.answered, Reply::Status(200)));
    for d in [&first, &second, &third, &fourth] {
        assert_eq!(d.id, first.id, "one webhook-id across retries");
        assert_eq!(d.body, first.body, "the same notification");
        assert!(d.signed);
    }
    assert_eq!(
        metric(
            a.addr(),
            "chatgate_notifications_retried_total{channel=\"webhook\"}"
        )
        .await,
        3.0
    );
    assert_eq!(
        metric(
            a.addr(),
            "chatgate_notifications_sent_total{channel=\"webhook\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn two_nodes_share_the_work_and_presence_and_tell_each_once() {
    let db = TestDb::create().await;
    let redis = support::redis_server::RedisServer::start().await;
    let mut hook = Receiver::start(&[]).await;
    let url = redis.url();
    let a = node(&db, &hook, "1", &["--cluster", &url, "--node-id", "0"]).await;
    let b = node(&db, &hook, "1", &["--cluster", &url, "--node-id", "1"]).await;
    // 101's tutee is on node B while its tutor writes on node A: present, cluster-wide.
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    let _tutee = member(b.addr(), 101, 2, "tutee").await;
    send(&mut tutor, "seen on B").await;
    // Three chats with nobody to read them, written on both nodes.
    let mut t102 = member(a.addr(), 102, 3, "tutor").await;
    let mut t103 = member(b.addr(), 103, 1, "tutor").await;
    let mut t104 = member(b.addr(), 104, 5, "tutor").await;
    for i in 0..3 {
        send(&mut t102, &format!("102/{i}")).await;
        send(&mut t103, &format!("103/{i}")).await;
        send(&mut t104, &format!("104/{i}")).await;
    }
    let mut got: Vec<Delivery> = Vec::new();
    for _ in 0..3 {
        got.push(hook.next().await);
    }
    let mut chats: Vec<i64> = got.iter().map(eventid).collect();
    chats.sort_unstable();
    assert_eq!(chats, [102, 103, 104], "each chat once, 101 never");
    assert!(got.iter().all(|d| d.body["count"] == 3 && d.signed));
    // Both workers ran; between them they sent three, and nothing is left. A worker counts a
    // delivery once it has the answer and has recorded it, a moment after the receiver saw it.
    let sent = |n: &Running| {
        metric(
            n.addr(),
            "chatgate_notifications_sent_total{channel=\"webhook\"}",
        )
    };
    reaches("the sent counters of both nodes", 3.0, || async {
        sent(&a).await + sent(&b).await
    })
    .await;
    let present = |n: &Running| {
        metric(
            n.addr(),
            "chatgate_notifications_dropped_total{reason=\"present\"}",
        )
    };
    assert_eq!(present(&a).await + present(&b).await, 1.0);
    assert!(hook.taken_now().is_empty());
}

#[tokio::test]
async fn a_killed_node_loses_nothing_and_sends_nothing_twice_under_one_id() {
    let db = TestDb::create().await;
    // The first attempt hangs: the node is killed while it is in flight.
    let mut hook = Receiver::start(&[Reply::Hang]).await;
    let args = ["--notify-webhook-timeout-ms", "1000"];
    let mut a = node(&db, &hook, "1", &args).await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    send(&mut tutor, "before the crash").await;
    // 102's message follows at once: one of the two hangs in flight when the node dies.
    let mut tutor2 = member(a.addr(), 102, 3, "tutor").await;
    send(&mut tutor2, "pending at the crash").await;
    // Both are due a second after their message, a few milliseconds apart: the worker may claim
    // them in one look, and either may be the one in flight.
    let in_flight = hook.next().await;
    assert!([101, 102].contains(&eventid(&in_flight)), "{in_flight:?}");
    a.kill().await;

    // Another node, same database: takes what the dead one left, claimed (when the claim
    // expires) or pending. A notification the dead node had delivered but not yet recorded goes
    // again, under its id: at least once, and once for a receiver that drops repeated ids.
    let b = node(&db, &hook, "1", &args).await;
    let mut tutor3 = member(b.addr(), 103, 1, "tutor").await;
    send(&mut tutor3, "after").await;
    let mut got = vec![in_flight];
    let told = |got: &[Delivery], chat: i64| {
        got.iter()
            .any(|d| eventid(d) == chat && matches!(d.answered, Reply::Status(200)))
    };
    while !(told(&got, 101) && told(&got, 102) && told(&got, 103)) {
        got.push(hook.next().await);
    }
    // Everything in the outbox handled: what came is all that comes.
    metric_reaches(b.addr(), "chatgate_notifications_pending", 0.0).await;
    got.extend(hook.taken_now());
    for chat in [101, 102, 103] {
        let of: Vec<&Delivery> = got.iter().filter(|d| eventid(d) == chat).collect();
        assert!(!of.is_empty(), "chat {chat} was told");
        assert!(
            of.iter()
                .all(|d| d.id == of[0].id && d.body == of[0].body && d.signed),
            "chat {chat}: one notification, one id: {of:?}"
        );
    }
}

#[tokio::test]
async fn the_demo_logs_notifications_from_an_in_memory_outbox() {
    let mut demo = start(&["--notify-delay-secs", "1", "--notify-poll-ms", "100"]).await;
    let mut tutor = member(demo.addr(), 101, 1, "tutor").await;
    send(&mut tutor, "one").await;
    send(&mut tutor, "two").await;
    let line = demo.log_line("offline notification").await;
    assert!(line.contains(r#""eventid":101"#), "{line}");
    assert!(line.contains(r#""count":2"#), "{line}");
    assert!(
        line.contains(r#""recipient":{"userid":2,"role":"tutee"}"#),
        "{line}"
    );
    assert!(!line.contains("preview"), "{line}");
}

#[tokio::test]
async fn a_large_burst_stored_in_big_batches_is_one_notification() {
    let db = TestDb::create().await;
    let mut hook = Receiver::start(&[]).await;
    // The writer gathers for 100 ms: the burst is stored in batches large enough for COPY.
    let a = node(
        &db,
        &hook,
        "1",
        &["--history-linger-ms", "100", "--message-rate", "0"],
    )
    .await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    for i in 0..300 {
        tutor
            .send_text(&format!(r#"42["send-message",{{"message":"m{i}"}}]"#))
            .await;
    }
    let last = send(&mut tutor, "last").await;
    let d = hook.next().await;
    assert_eq!(d.body["count"], 301, "{}", d.body);
    assert_eq!(d.body["last_message_id"], last);
    metric_reaches(a.addr(), "chatgate_notifications_pending", 0.0).await;
    assert!(hook.taken_now().is_empty());
    let stored = support::raw::metric(a.addr(), "chatgate_history_stored_total").await;
    assert_eq!(stored, Some(301.0));
    // In at most four batches: at least one of 76 or more (what COPY would take without
    // notifications; with them one statement stores and files a batch of any size).
    let batches = metric(a.addr(), "chatgate_history_write_seconds_count").await;
    assert!(batches <= 4.0, "{batches} batches");
}
