//! `GET /metrics`: Prometheus text whose numbers follow what clients did. (One test in this binary:
//! the chat's counters are process-wide.)

mod support;

use support::db::TestDb;
use support::raw::{http, RawWs};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn metrics_follow_the_traffic() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), &["--auth", "trust"]).await;
    let mut tutor = RawWs::socketio(server.addr).await;
    let mut tutee = RawWs::socketio(server.addr).await;
    assert!(tutor
        .join_chat(101, 1, "tutor")
        .await
        .starts_with(r#"42["chat-joined""#));
    assert!(tutee
        .join_chat(101, 2, "tutee")
        .await
        .starts_with(r#"42["chat-joined""#));
    assert!(tutor
        .recv_text()
        .await
        .unwrap()
        .starts_with(r#"42["user-joined-chat""#));
    tutor
        .send_text(r#"42["send-message",{"message":"hi"}]"#)
        .await;
    assert!(tutor
        .recv_text()
        .await
        .unwrap()
        .starts_with(r#"42["receive-message""#));
    assert!(tutee
        .recv_text()
        .await
        .unwrap()
        .starts_with(r#"42["receive-message""#));
    tutee
        .send_text(r#"42["send-message",{"message":""}]"#)
        .await;
    assert_eq!(
        tutee.recv_text().await.unwrap(),
        r#"42["chat-error",{"message":"Empty message"}]"#
    );

    let reply = http(server.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    assert_eq!(
        value(&text, r#"chatgate_connections{transport="websocket"}"#),
        2.0
    );
    assert_eq!(
        value(&text, r#"chatgate_connections{transport="polling"}"#),
        0.0
    );
    assert_eq!(value(&text, "chatgate_rooms"), 1.0);
    assert_eq!(
        value(&text, r#"chatgate_events_in_total{event="join-chat"}"#),
        2.0
    );
    assert_eq!(
        value(&text, r#"chatgate_events_in_total{event="send-message"}"#),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"chatgate_events_out_total{event="receive-message"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"chatgate_events_out_total{event="user-joined-chat"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"chatgate_chat_errors_total{message="Empty message"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "chatgate_db_query_seconds_count"), 2.0);
    assert_eq!(
        value(&text, r#"chatgate_db_query_seconds_bucket{le="+Inf"}"#),
        2.0
    );
    assert!(text.contains("# TYPE chatgate_db_query_seconds histogram"));
    assert_eq!(
        value(
            &text,
            r#"chatgate_sessions_closed_total{reason="slow consumer"}"#
        ),
        0.0
    );

    drop(tutee);
    // The close reaches the server asynchronously: poll the scrape (no sleeps) until it shows.
    loop {
        let text = http(server.addr, "GET", "/metrics", &[], b"").await.text();
        if value(
            &text,
            r#"chatgate_sessions_closed_total{reason="transport close"}"#,
        ) == 1.0
        {
            assert_eq!(
                value(&text, r#"chatgate_connections{transport="websocket"}"#),
                1.0
            );
            assert_eq!(
                value(
                    &text,
                    r#"chatgate_events_out_total{event="user-left-chat"}"#
                ),
                1.0
            );
            break;
        }
    }
}
