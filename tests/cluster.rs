//! Cluster mode with real Redis and three chatgate processes: one chat spread over the nodes,
//! every message to every member exactly once and in order, cluster-wide member counts through
//! joins, leaves, disconnects and a SIGKILLed node, and Redis restarted mid-chat.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::binary::{start, Running};
use support::db::TestDb;
use support::raw::{event_payload as payload, RawWs};
use support::redis_server::RedisServer;

/// Waits until the node has subscribed to Redis (said in its log, maybe before the start-up
/// lines `start` read).
async fn subscribed(node: &mut Running) {
    if !node.log.iter().any(|l| l.contains("cluster: subscribed")) {
        node.log_line("cluster: subscribed").await;
    }
}

/// Starts node `n` of a cluster on `redis` and `db`; returns when it is subscribed.
async fn node(redis: &RedisServer, db: &TestDb, n: u8, extra: &[&str]) -> Running {
    let url = db.url();
    let redis_url = redis.url();
    let id = n.to_string();
    let mut args = vec![
        "--database-url",
        &url,
        "--auth",
        "trust",
        "--message-rate",
        "0",
        "--cluster",
        &redis_url,
        "--node-id",
        &id,
        "--cluster-liveness-ms",
        "1000",
        "--cluster-prefix",
        "chatgate-test",
    ];
    args.extend_from_slice(extra);
    let mut running = start(&args).await;
    subscribed(&mut running).await;
    running
}

/// The next frame that is not a message or typing: a join/leave announcement or a reply.
async fn next_event(ws: &mut RawWs, event: &str) -> Value {
    loop {
        let frame = ws.recv_text().await.expect("a frame");
        if frame.starts_with(&format!(r#"42["{event}""#)) {
            return payload(&frame, event);
        }
        assert!(
            frame.starts_with(r#"42["user-"#) || frame.starts_with(r#"42["chat-history""#),
            "waiting for {event}, got {frame}"
        );
    }
}

async fn join(addr: std::net::SocketAddr, eventid: i32, userid: i32, role: &str) -> (RawWs, u64) {
    let mut ws = RawWs::socketio(addr).await;
    let reply = ws.join_chat(eventid, userid, role).await;
    let count = payload(&reply, "chat-joined")["member_count"]
        .as_u64()
        .expect("member_count");
    (ws, count)
}

/// The `receive-message` texts `ws` gets, until it has `n` of them.
async fn messages(ws: &mut RawWs, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let frame = ws.recv_text().await.expect("a message");
        if frame.starts_with(r#"42["receive-message""#) {
            got.push(
                payload(&frame, "receive-message")["message"]
                    .as_str()
                    .expect("text")
                    .to_owned(),
            );
        }
    }
    got
}

/// The cluster line of `/ready` ("up" or "down"); asserts the node is ready either way.
async fn cluster_state(addr: std::net::SocketAddr) -> String {
    let r = support::raw::http(addr, "GET", "/ready", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("cluster: "))
        .expect("a cluster line")
        .to_owned()
}

#[tokio::test]
async fn one_chat_over_three_nodes() {
    let redis = RedisServer::start().await;
    let db = TestDb::create().await;
    let a = node(&redis, &db, 0, &[]).await;
    let b = node(&redis, &db, 1, &[]).await;
    let c = node(&redis, &db, 2, &[]).await;

    let (mut tutor, n) = join(a.addr(), 101, 1, "tutor").await;
    assert_eq!(n, 1);
    let (mut tutee, n) = join(b.addr(), 101, 2, "tutee").await;
    assert_eq!(n, 2, "counts are cluster-wide");
    let announced = next_event(&mut tutor, "user-joined-chat").await;
    assert_eq!(announced["member_count"], 2, "announced across nodes");
    let (mut tab, n) = join(c.addr(), 101, 2, "tutee").await;
    assert_eq!(n, 3);
    assert_eq!(
        next_event(&mut tutor, "user-joined-chat").await["member_count"],
        3
    );
    assert_eq!(
        next_event(&mut tutee, "user-joined-chat").await["member_count"],
        3
    );
    // Another chat on the same nodes hears nothing of this one.
    let (mut other, _) = join(b.addr(), 102, 3, "tutor").await;

    // Both members send at once; everyone gets every message once, in each sender's order.
    for i in 0..20 {
        tutor
            .send_text(&format!(r#"42["send-message",{{"message":"t{i}"}}]"#))
            .await;
        tutee
            .send_text(&format!(r#"42["send-message",{{"message":"s{i}"}}]"#))
            .await;
    }
    for (name, ws) in [
        ("tutor", &mut tutor),
        ("tutee", &mut tutee),
        ("tab", &mut tab),
    ] {
        let got = messages(ws, 40).await;
        let from = |p: char| {
            got.iter()
                .filter(|m| m.starts_with(p))
                .cloned()
                .collect::<Vec<_>>()
        };
        let expect = |p: char| (0..20).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        assert_eq!(from('t'), expect('t'), "{name}: the tutor's messages");
        assert_eq!(from('s'), expect('s'), "{name}: the tutee's messages");
    }
    // Nothing more arrives (no duplicates): a marker sent now is the next message everyone sees.
    tutor
        .send_text(r#"42["send-message",{"message":"marker"}]"#)
        .await;
    for ws in [&mut tutor, &mut tutee, &mut tab] {
        assert_eq!(messages(ws, 1).await, ["marker"], "exactly once");
    }
    other
        .send_text(r#"42["send-message",{"message":"in 102"}]"#)
        .await;
    assert_eq!(messages(&mut other, 1).await, ["in 102"]);

    // Leaving and disconnecting are counted across nodes too.
    tab.send_text(r#"42["leave-chat"]"#).await;
    assert_eq!(
        next_event(&mut tutor, "user-left-chat").await["member_count"],
        2
    );
    drop(tab);
    drop(tutee);
    assert_eq!(
        next_event(&mut tutor, "user-left-chat").await["member_count"],
        1
    );
    drop((a, b, c));
}

/// The `receive-message` payload of the next message `ws` gets.
async fn received(ws: &mut RawWs) -> Value {
    loop {
        let frame = ws.recv_text().await.expect("a message");
        if frame.starts_with(r#"42["receive-message""#) {
            return payload(&frame, "receive-message");
        }
    }
}

#[tokio::test]
async fn receipts_reactions_edits_and_deletions_across_nodes() {
    let redis = RedisServer::start().await;
    let db = TestDb::create().await;
    // Node A stores slowly: node B gets marks and reactions for A's messages before they are
    // in the database, and must wait for them rather than call them unknown.
    let a = node(&redis, &db, 0, &["--history-linger-ms", "400"]).await;
    let b = node(&redis, &db, 1, &[]).await;
    let (mut tutor, _) = join(a.addr(), 101, 1, "tutor").await;
    let (mut tutee, _) = join(b.addr(), 101, 2, "tutee").await;
    next_event(&mut tutor, "user-joined-chat").await;
    tutor
        .send_text(r#"42["send-message",{"message":"first"}]"#)
        .await;
    let first = received(&mut tutee).await["id"].as_i64().expect("id");
    tutee
        .send_text(&format!(
            r#"42["react-message",{{"message_id":{first},"emoji":"👍","action":"add"}}]"#
        ))
        .await;
    tutee
        .send_text(&format!(r#"42["mark-read",{{"message_id":{first}}}]"#))
        .await;
    received(&mut tutor).await; // its own message
    let reaction = next_event(&mut tutor, "message-reaction").await;
    assert_eq!(
        reaction["counts"],
        serde_json::json!({"👍": 1}),
        "across nodes"
    );
    assert_eq!(reaction["userid"], 2);
    assert_eq!(
        next_event(&mut tutee, "message-reaction").await,
        reaction,
        "the reacting node's own member hears it too"
    );
    let read = next_event(&mut tutor, "messages-read").await;
    assert_eq!(read["last_read_id"], first);

    tutor
        .send_text(&format!(
            r#"42["edit-message",{{"message_id":{first},"message":"first, edited"}}]"#
        ))
        .await;
    let edited = next_event(&mut tutee, "message-edited").await;
    assert_eq!(edited["message"], "first, edited");
    assert_eq!(next_event(&mut tutor, "message-edited").await, edited);
    tutor
        .send_text(r#"42["send-message",{"message":"second"}]"#)
        .await;
    let second = received(&mut tutee).await["id"].as_i64().expect("id");
    received(&mut tutor).await;
    tutor
        .send_text(&format!(
            r#"42["delete-message",{{"message_id":{second}}}]"#
        ))
        .await;
    let deleted = next_event(&mut tutee, "message-deleted").await;
    assert_eq!(deleted["message_id"], second);

    // A late joiner on node B sees all of it in the history.
    let mut late = RawWs::socketio(b.addr()).await;
    late.join_chat(101, 1, "tutor").await;
    let history = payload(
        late.last_history.as_deref().expect("history"),
        "chat-history",
    );
    let messages = history["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["message"], "first, edited");
    assert_eq!(messages[0]["reactions"], serde_json::json!({"👍": 1}));
    assert_eq!(messages[1]["deleted"], true);
    assert_eq!(history["read_receipts"][0]["last_read_id"], first);
    drop((a, b));
}

#[tokio::test]
async fn a_killed_node_leaves_the_counts_and_redis_can_restart() {
    let mut redis = RedisServer::start().await;
    let db = TestDb::create().await;
    let a = node(&redis, &db, 0, &[]).await;
    let mut b = node(&redis, &db, 1, &[]).await;
    let (mut tutor, _) = join(a.addr(), 101, 1, "tutor").await;
    let (_tutee, n) = join(b.addr(), 101, 2, "tutee").await;
    assert_eq!(n, 2);
    next_event(&mut tutor, "user-joined-chat").await;

    // SIGKILL: node b says nothing; its liveness key expires and its member leaves the count.
    b.kill().await;
    let mut conn = redis.connection().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("chatgate-test-node#*")
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        if keys.len() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b's liveness key never expired: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_tab, n) = join(a.addr(), 101, 2, "tutee").await;
    assert_eq!(
        n, 2,
        "the tutor and this tab; not the member of the dead node"
    );

    // Redis restarts empty mid-chat: local chat goes on, cross-node delivery and counts come back.
    let c = node(&redis, &db, 2, &[]).await;
    assert_eq!(cluster_state(c.addr()).await, "up");
    redis.stop().await;
    tutor
        .send_text(r#"42["send-message",{"message":"while redis is down"}]"#)
        .await;
    assert_eq!(
        messages(&mut tutor, 1).await,
        ["while redis is down"],
        "local delivery"
    );
    // /ready says so, and stays 200: local chats still work.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cluster_state(a.addr()).await != "down" {
        assert!(tokio::time::Instant::now() < deadline, "a never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.start_again().await;
    // Both nodes subscribe again and write their counts back (their liveness keys were gone).
    let mut conn = redis.connection().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ready_a = cluster_state(a.addr()).await;
        let ready_c = cluster_state(c.addr()).await;
        let fields: i64 = redis::cmd("HLEN")
            .arg("chatgate-test-count#/#chat_101")
            .query_async(&mut conn)
            .await
            .unwrap_or(0);
        if ready_a == "up" && ready_c == "up" && fields >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes did not come back to Redis: {ready_a}, {ready_c}, {fields} counts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut late, n) = join(c.addr(), 101, 2, "tutee").await;
    assert_eq!(n, 3, "a's two members were written back, plus this one");
    assert_eq!(
        next_event(&mut tutor, "user-joined-chat").await["member_count"],
        3
    );
    late.send_text(r#"42["send-message",{"message":"after the restart"}]"#)
        .await;
    assert_eq!(
        messages(&mut tutor, 1).await,
        ["after the restart"],
        "cross-node again"
    );
    drop((a, c));
}

#[tokio::test]
async fn a_mixed_cluster_with_node_socket_io() {
    let redis = RedisServer::start().await;
    let redis_url = redis.url();
    let mut chatgate = start(&["--cluster", &redis_url, "--cluster-prefix", "mixed"]).await;
    subscribed(&mut chatgate).await;
    let out = support::node_peer("mixed.mjs", &[&chatgate.url, &redis_url, "mixed"]).await;
    assert!(out.contains("ok"), "{out}");
}

/// nginx from `docs/deploy/nginx.conf` in front of `nodes`, on a free port; stopped when dropped.
struct Nginx {
    child: tokio::process::Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            for _ in 0..100 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

async fn nginx(nodes: [std::net::SocketAddr; 2]) -> Nginx {
    let port = support::free_port();
    let example = std::fs::read_to_string(support::repo_path("docs/deploy/nginx.conf"))
        .expect("the example configuration");
    let conf = example
        .replace("127.0.0.1:6969", &nodes[0].to_string())
        .replace("127.0.0.1:6970", &nodes[1].to_string())
        .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
    assert_ne!(
        conf, example,
        "the example names the addresses the test replaces"
    );
    let dir = std::env::temp_dir().join(format!("chatgate-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for nginx");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write the configuration");
    let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let global = format!(
        "daemon off; pid {}/nginx.pid; error_log stderr warn;",
        dir.display()
    );
    let child = tokio::process::Command::new(nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&path)
        .args(["-g", &global])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nginx (scripts/test installs it)");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Nginx {
                child,
                port,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nginx did not listen on {port}");
}

#[tokio::test]
async fn load_balancer_with_sticky_polling() {
    let redis = RedisServer::start().await;
    let redis_url = redis.url();
    let flags = ["--cluster", redis_url.as_str(), "--cluster-prefix", "lb"];
    let mut a = start(&flags).await;
    let mut b = start(&flags).await;
    for node in [&mut a, &mut b] {
        subscribed(node).await;
    }
    let lb = nginx([a.addr(), b.addr()]).await;
    let url = format!("http://127.0.0.1:{}", lb.port);
    // The official client through the balancer, over WebSocket and over long-polling only (the
    // second scenario does not check member counts, which the first one's leavers still change).
    support::node("chat.mjs", &[&url, "flow"]).await;
    support::node("chat.mjs", &[&url, "polling"]).await;

    // A polling request for a session that lives on the other node: the spec's error, no crash.
    let sid = support::raw::polling_handshake(a.addr()).await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let r = support::raw::http(b.addr(), "GET", &path, &[], b"").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), r#"{"code":1,"message":"Session ID unknown"}"#);
    assert_eq!(
        support::raw::http(b.addr(), "GET", "/health", &[], b"")
            .await
            .status,
        200
    );
}

/// One sample of a node's `/metrics` as printed (`name` or `name{label="value"}`); 0 if absent.
async fn metric(addr: std::net::SocketAddr, sample: &str) -> f64 {
    support::raw::metric(addr, sample).await.unwrap_or(0.0)
}

/// Polls a metric until `done` holds (at most 20 s): for a state inside the node that no event
/// tells the test about, such as a sender waiting for the publish queue.
async fn metric_until(addr: std::net::SocketAddr, sample: &str, done: impl Fn(f64) -> bool) {
    for _ in 0..400 {
        if done(metric(addr, sample).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{sample} never reached the expected value");
}

/// Every broadcast dropped by the node, all reasons.
async fn dropped(addr: std::net::SocketAddr) -> f64 {
    let mut total = 0.0;
    for reason in [
        "redis_down",
        "redis_stalled",
        "publish_queue_full",
        "receive_queue_full",
    ] {
        total += metric(
            addr,
            &format!("chatgate_cluster_dropped_total{{reason=\"{reason}\"}}"),
        )
        .await;
    }
    total
}

/// Sends `count` messages with acks (ids 1..) without waiting; returns their texts.
async fn send_burst(ws: &mut RawWs, prefix: &str, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for i in 0..count {
        let text = format!("{prefix} {i}");
        ws.send_text(&format!(
            r#"42{}["send-message",{{"eventid":101,"message":"{text}"}}]"#,
            i + 1
        ))
        .await;
        texts.push(text);
    }
    texts
}

/// Reads until `count` acks arrived; asserts none is an error.
async fn acks(ws: &mut RawWs, count: usize) {
    let mut got = 0;
    while got < count {
        let frame = ws.recv_text().await.expect("an ack");
        if frame.starts_with("43") {
            assert!(!frame.contains("\"error\""), "ack error: {frame}");
            got += 1;
        }
    }
}

async fn redis_command(redis: &RedisServer, args: &[&str]) {
    let mut conn = redis.connection().await;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async::<()>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

/// A Redis that stops taking writes (`CLIENT PAUSE ... WRITE`, which holds PUBLISH) while a
/// tutor on node A sends a burst to a tutee on node B: once A's small publish queue is full the
/// sender waits (flow control) instead of losing its broadcasts; when Redis takes writes again,
/// every message reaches B, in order, and A dropped nothing.
#[tokio::test]
async fn a_paused_redis_slows_the_sender_and_loses_nothing() {
    let redis = RedisServer::start().await;
    let db = TestDb::create().await;
    let queue = ["--cluster-publish-queue", "4"];
    let wait = ["--cluster-publish-wait-ms", "30000"];
    let a = node(&redis, &db, 0, &[&queue[..], &wait[..]].concat()).await;
    let b = node(&redis, &db, 1, &[]).await;
    let (mut tutor, _) = join(a.addr(), 101, 1, "tutor").await;
    let (mut tutee, _) = join(b.addr(), 101, 2, "tutee").await;
    next_event(&mut tutor, "user-joined-chat").await;

    redis_command(&redis, &["CLIENT", "PAUSE", "60000", "WRITE"]).await;
    let sent = send_burst(&mut tutor, "paused", 30).await;
    // The queue fills to what it may hold and the sender waits (the publisher may still take a
    // last broadcast into its held write, so both are awaited rather than read once).
    metric_until(a.addr(), "chatgate_cluster_publish_queue", |v| v == 4.0).await;
    metric_until(a.addr(), "chatgate_cluster_publish_waiting", |v| v >= 1.0).await;
    redis_command(&redis, &["CLIENT", "UNPAUSE"]).await;

    assert_eq!(
        messages(&mut tutee, 30).await,
        sent,
        "all of them, in order"
    );
    acks(&mut tutor, 30).await;
    assert_eq!(dropped(a.addr()).await, 0.0);
    assert_eq!(dropped(b.addr()).await, 0.0);
}

/// A Redis that stays paused past `--cluster-publish-wait-ms`: the node stops waiting (the local
/// chat goes on, every message acknowledged), what it cannot publish is bounded by the queue,
/// counted by reason and logged once; after Redis resumes, every message of the burst is either
/// delivered on B or counted as dropped on A, and the cluster carries messages again.
#[tokio::test]
async fn a_redis_stalled_past_the_wait_is_bounded_counted_and_logged_once() {
    let redis = RedisServer::start().await;
    let db = TestDb::create().await;
    let flags = [
        "--cluster-publish-queue",
        "4",
        "--cluster-publish-wait-ms",
        "300",
    ];
    let mut a = node(&redis, &db, 0, &flags).await;
    let b = node(&redis, &db, 1, &[]).await;
    let (mut tutor, _) = join(a.addr(), 101, 1, "tutor").await;
    let (mut tutee, _) = join(b.addr(), 101, 2, "tutee").await;
    next_event(&mut tutor, "user-joined-chat").await;

    redis_command(&redis, &["CLIENT", "PAUSE", "60000", "WRITE"]).await;
    let sent = send_burst(&mut tutor, "stalled", 30).await;
    acks(&mut tutor, 30).await;
    a.log_line("cluster: broadcasts dropped").await;
    let lost = dropped(a.addr()).await;
    assert!(lost >= 1.0, "something was dropped");
    assert!(
        metric(
            a.addr(),
            "chatgate_cluster_dropped_total{reason=\"redis_stalled\"}"
        )
        .await
            >= 1.0
    );
    assert!(metric(a.addr(), "chatgate_cluster_publish_queue").await <= 4.0);
    redis_command(&redis, &["CLIENT", "UNPAUSE"]).await;
    // The held write completes and the queue drains: the link carries messages again.
    metric_until(a.addr(), "chatgate_cluster_publish_queue", |v| v == 0.0).await;
    tutor
        .send_text(r#"42["send-message",{"eventid":101,"message":"after"}]"#)
        .await;
    let mut got = Vec::new();
    loop {
        let text = messages(&mut tutee, 1).await.remove(0);
        if text == "after" {
            break;
        }
        got.push(text);
    }
    let order: Vec<&String> = sent.iter().filter(|t| got.contains(t)).collect();
    assert_eq!(order.len(), got.len(), "only burst messages, each once");
    assert!(got.iter().zip(order).all(|(g, o)| g == o), "in order");
    assert_eq!(
        dropped(a.addr()).await,
        lost,
        "nothing dropped after Redis resumed"
    );
    assert_eq!(
        got.len() as f64 + lost,
        sent.len() as f64,
        "every message delivered on B or counted as dropped on A"
    );
    // One warning for the burst, not one per message.
    let mut more = 0;
    while let Ok(line) = a.later.try_recv() {
        more += usize::from(line.contains("cluster: broadcasts dropped"));
    }
    assert!(more <= 1, "{more} more warnings (one per reason at most)");
}

/// A node whose subscriber falls behind (here: one that reports a 5 s lag in the cluster's lag
/// hash, as a real node does every 100 ms) holds senders on the other nodes back until it catches
/// up; then every message arrives, in order, none dropped.
#[tokio::test]
async fn senders_wait_while_a_node_lags_behind() {
    let redis = RedisServer::start().await;
    let db = TestDb::create().await;
    let wait = ["--cluster-publish-wait-ms", "30000"];
    let a = node(&redis, &db, 0, &wait).await;
    let b = node(&redis, &db, 1, &[]).await;
    let (mut tutor, _) = join(a.addr(), 101, 1, "tutor").await;
    let (mut tutee, _) = join(b.addr(), 101, 2, "tutee").await;
    next_event(&mut tutor, "user-joined-chat").await;

    // Fresh for the next minute (the entry's time is ahead of now), 5 s behind.
    let at = chatgate::cluster::lag::wall_ms() + 60_000;
    redis_command(
        &redis,
        &[
            "HSET",
            "chatgate-test-lag",
            "a-slow-node",
            &format!("5000:{at}"),
        ],
    )
    .await;
    metric_until(a.addr(), "chatgate_cluster_lag_seconds", |v| v >= 5.0).await;
    let sent = send_burst(&mut tutor, "held", 5).await;
    metric_until(a.addr(), "chatgate_cluster_publish_waiting", |v| v >= 1.0).await;
    // The slow node caught up.
    redis_command(&redis, &["HDEL", "chatgate-test-lag", "a-slow-node"]).await;
    assert_eq!(messages(&mut tutee, 5).await, sent);
    acks(&mut tutor, 5).await;
    assert_eq!(dropped(a.addr()).await, 0.0);
}
