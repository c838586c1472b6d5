//! Read receipts, reactions, edits and deletions against a real PostgreSQL (and, at the end, the
//! in-memory store of the demo directory): every event, every refusal, two tabs of one user, a late
//! joiner's history, and members changing one message at the same time.

mod support;

use support::raw::member;

use serde_json::{json, Value};
use support::db::TestDb;
use support::raw::event_payload as payload;
use support::raw::RawWs;

const TRUST: &[&str] = &["--auth", "trust"];

/// The next frame that is not a join/leave announcement or somebody's typing.
async fn next(ws: &mut RawWs) -> String {
    loop {
        let frame = ws.recv_text().await.expect("a frame");
        if !frame.starts_with(r#"42["user-"#) {
            return frame;
        }
    }
}

/// The payload of the next frame, which must be `event`.
async fn expect(ws: &mut RawWs, event: &str) -> Value {
    let frame = next(ws).await;
    payload(&frame, event)
}

/// Sends `event` with `body` asking for ack `ack_id`; returns the ack's argument. Broadcasts the
/// sender gets before the ack are returned too, in order.
async fn ask(ws: &mut RawWs, event: &str, body: &Value, ack_id: u32) -> (Value, Vec<String>) {
    ws.send_text(&format!(r#"42{ack_id}["{event}",{body}]"#))
        .await;
    let mut before = Vec::new();
    loop {
        let frame = next(ws).await;
        if let Some(rest) = frame.strip_prefix(&format!("43{ack_id}")) {
            let args: Value = serde_json::from_str(rest).expect("ack JSON");
            return (args[0].clone(), before);
        }
        before.push(frame);
    }
}

/// Sends `event` with `body` (no ack) and returns the `chat-error` message it gets.
async fn refused(ws: &mut RawWs, event: &str, body: Value) -> String {
    ws.send_text(&format!(r#"42["{event}",{body}]"#)).await;
    let p = expect(ws, "chat-error").await;
    p["message"].as_str().expect("message").to_owned()
}

/// Sends a message and returns its id (from the sender's own `receive-message`).
async fn send(ws: &mut RawWs, text: &str) -> i64 {
    ws.send_text(&format!(r#"42["send-message",{{"message":"{text}"}}]"#))
        .await;
    loop {
        let frame = next(ws).await;
        if frame.starts_with(r#"42["receive-message""#) {
            let p = payload(&frame, "receive-message");
            if p["message"] == text {
                return p["id"].as_i64().expect("id");
            }
        }
    }
}

/// Reads the `receive-message` of `text`: proof that nothing else came first.
async fn receive(ws: &mut RawWs, text: &str) {
    let p = expect(ws, "receive-message").await;
    assert_eq!(p["message"], text, "nothing else came before it");
}

fn history_of(ws: &RawWs) -> Value {
    payload(ws.last_history.as_deref().expect("history"), "chat-history")
}

#[tokio::test]
async fn the_official_javascript_client_marks_reacts_edits_and_deletes() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    support::node("chat.mjs", &[&server.url(), "changes"]).await;
}

#[tokio::test]
async fn read_marks_reach_the_others_and_late_joiners_and_never_move_back() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let mut tab = member(server.addr, 101, 2, "tutee").await;
    let first = send(&mut tutor, "one").await;
    let second = send(&mut tutor, "two").await;
    receive(&mut tutee, "one").await;
    receive(&mut tutee, "two").await;
    receive(&mut tab, "one").await;
    receive(&mut tab, "two").await;

    let (ack, _) = ask(
        &mut tutee,
        "mark-read",
        &json!({"eventid": 101, "userid": 2, "message_id": second}),
        1,
    )
    .await;
    assert_eq!(ack["last_read_id"], second);
    assert_eq!(ack["userid"], 2);
    assert_eq!(ack["role"], "tutee");
    let seen = expect(&mut tutor, "messages-read").await;
    assert_eq!(seen, ack, "the tutor sees what the tutee's ack says");
    assert_eq!(seen["eventid"], 101);
    assert_eq!(seen["timestamp"].as_str().map(str::len), Some(26));
    let other_tab = expect(&mut tab, "messages-read").await;
    assert_eq!(other_tab, ack, "the same user's other tab hears it too");

    // Backwards: answered with the current mark, told to nobody.
    let (ack, _) = ask(&mut tutee, "mark-read", &json!({"message_id": first}), 2).await;
    assert_eq!(ack["last_read_id"], second, "a mark never moves back");
    send(&mut tutee, "after").await;
    receive(&mut tutor, "after").await;

    let late = member(server.addr, 101, 1, "tutor").await;
    let receipts = &history_of(&late)["read_receipts"];
    assert_eq!(receipts.as_array().map(Vec::len), Some(1), "{receipts}");
    assert_eq!(receipts[0]["userid"], 2);
    assert_eq!(receipts[0]["role"], "tutee");
    assert_eq!(receipts[0]["last_read_id"], second);

    let client = db.client().await;
    let stored: i64 = client
        .query_one(
            "SELECT last_read_id FROM chatgate_read WHERE eventid = 101 AND userid = 2",
            &[],
        )
        .await
        .expect("a stored mark")
        .get(0);
    assert_eq!(stored, second);
}

#[tokio::test]
async fn a_burst_of_marks_is_one_write_and_the_newest_wins() {
    let db = TestDb::create().await;
    let client = db.client().await;
    // Count every row written to chatgate_read (the gateway migrates the database first).
    let server =
        support::chat_gateway(&db.url(), &["--auth", "trust", "--read-flush-ms", "1000"]).await;
    client
        .batch_execute(
            "CREATE TABLE read_writes (n integer);
             CREATE FUNCTION count_read_write() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN INSERT INTO read_writes VALUES (1); RETURN NEW; END $$;
             CREATE TRIGGER count_read_writes AFTER INSERT OR UPDATE ON chatgate_read
                 FOR EACH ROW EXECUTE FUNCTION count_read_write();",
        )
        .await
        .expect("trigger");
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(send(&mut tutor, &format!("m{i}")).await);
    }
    // Marks in a burst, in the order a client scrolls: the last is the newest.
    for id in &ids {
        tutee
            .send_text(&format!(r#"42["mark-read",{{"message_id":{id}}}]"#))
            .await;
    }
    let (ack, _) = ask(&mut tutee, "mark-read", &json!({"message_id": ids[9]}), 7).await;
    assert_eq!(ack["last_read_id"], ids[9]);
    let seen = expect(&mut tutor, "messages-read").await;
    assert_eq!(
        seen["last_read_id"], ids[9],
        "one announcement, of the newest"
    );
    send(&mut tutee, "after").await;
    receive(&mut tutor, "after").await;
    let writes: i64 = client
        .query_one("SELECT count(*) FROM read_writes", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(writes, 1, "eleven marks in one interval are one row write");
}

#[tokio::test]
async fn bad_read_marks_are_refused_and_change_nothing() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut outsider = RawWs::socketio(server.addr).await;
    assert_eq!(
        refused(&mut outsider, "mark-read", json!({"message_id": 1})).await,
        "Not in any chat room"
    );
    let mut other = member(server.addr, 102, 3, "tutor").await;
    let foreign = send(&mut other, "in another chat").await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let mine = send(&mut tutor, "hello").await;
    receive(&mut tutee, "hello").await;
    for (body, error) in [
        (
            json!({"message_id": foreign}),
            "Message not found in this chat",
        ),
        (
            json!({"message_id": mine + 16}),
            "Message not found in this chat",
        ),
        (
            json!({"message_id": "1"}),
            "Invalid message_id: must be a positive integer",
        ),
        (
            json!({"message_id": -4}),
            "Invalid message_id: must be a positive integer",
        ),
        (
            json!({"message_id": 1.5}),
            "Invalid message_id: must be a positive integer",
        ),
        (json!({}), "Invalid message_id: must be a positive integer"),
        (
            json!({"message_id": mine, "userid": 1}),
            "User ID mismatch: userid must be the user who joined this chat",
        ),
        (
            json!({"message_id": mine, "eventid": 102}),
            "Event ID mismatch",
        ),
    ] {
        assert_eq!(
            refused(&mut tutee, "mark-read", body.clone()).await,
            error,
            "{body}"
        );
    }
    tutee.send_text(r#"42["mark-read","not an object"]"#).await;
    assert_eq!(
        expect(&mut tutee, "chat-error").await["message"],
        "Invalid payload: must be an object"
    );
    // Nobody heard of any of it, and nothing was stored.
    send(&mut tutee, "still here").await;
    receive(&mut tutor, "still here").await;
    let late = member(server.addr, 101, 1, "tutor").await;
    assert_eq!(history_of(&late)["read_receipts"], json!([]));
}

#[tokio::test]
async fn reactions_count_per_emoji_and_reach_everyone() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let id = send(&mut tutor, "react to me").await;
    receive(&mut tutee, "react to me").await;

    let react = |emoji: &str, action: &str| json!({"eventid": 101, "userid": 2, "message_id": id, "emoji": emoji, "action": action});
    let (ack, before) = ask(&mut tutee, "react-message", &react("👍", "add"), 1).await;
    assert_eq!(
        before.len(),
        1,
        "the sender gets the broadcast too: {before:?}"
    );
    assert_eq!(payload(&before[0], "message-reaction"), ack);
    assert_eq!(ack["counts"], json!({"👍": 1}));
    assert_eq!(ack["message_id"], id);
    assert_eq!(ack["userid"], 2);
    assert_eq!(ack["role"], "tutee");
    assert_eq!(ack["action"], "add");
    assert_eq!(expect(&mut tutor, "message-reaction").await, ack);

    tutor
        .send_text(&format!(
            r#"42["react-message",{{"message_id":{id},"emoji":"👍","action":"add"}}]"#
        ))
        .await;
    let p = expect(&mut tutor, "message-reaction").await;
    assert_eq!(p["counts"], json!({"👍": 2}));
    assert_eq!(expect(&mut tutee, "message-reaction").await, p);

    // "❤" and "❤️" are one emoji; totals keep the order emojis were first used in.
    let (ack, before) = ask(&mut tutee, "react-message", &react("❤", "add"), 2).await;
    assert_eq!(ack["emoji"], "❤️");
    // (serde_json's Value sorts keys: look at the frame as sent.)
    assert!(
        before[0].contains(r#""counts":{"👍":2,"❤️":1}"#),
        "{before:?}"
    );
    expect(&mut tutor, "message-reaction").await;

    // Adding twice changes nothing and tells nobody.
    let (ack, before) = ask(&mut tutee, "react-message", &react("👍", "add"), 3).await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(ack["counts"]["👍"], 2);

    let (ack, _) = ask(&mut tutee, "react-message", &react("👍", "remove"), 4).await;
    assert_eq!(ack["counts"], json!({"👍": 1, "❤️": 1}));
    assert_eq!(
        expect(&mut tutor, "message-reaction").await["action"],
        "remove"
    );

    // Skin tones and ZWJ sequences are one emoji each.
    for emoji in ["👍🏽", "👩‍👩‍👧‍👦"] {
        let (ack, _) = ask(&mut tutee, "react-message", &react(emoji, "add"), 5).await;
        assert_eq!(ack["counts"][emoji], 1, "{emoji}");
        expect(&mut tutor, "message-reaction").await;
    }

    let late = member(server.addr, 101, 2, "tutee").await;
    let history = history_of(&late);
    let m = &history["messages"][0];
    assert_eq!(m["id"], id);
    assert!(
        late.last_history
            .as_deref()
            .unwrap()
            .contains(r#""reactions":{"👍":1,"❤️":1,"👍🏽":1,"👩‍👩‍👧‍👦":1}"#),
        "totals in the order first used: {m}"
    );
    assert_eq!(m["my_reactions"], json!(["❤️", "👍🏽", "👩‍👩‍👧‍👦"]));
}

#[tokio::test]
async fn bad_reactions_are_refused_and_change_nothing() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut other = member(server.addr, 102, 3, "tutor").await;
    let foreign = send(&mut other, "elsewhere").await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let id = send(&mut tutor, "hi").await;
    receive(&mut tutee, "hi").await;
    let emoji_error =
        "Invalid emoji: emoji must be exactly one emoji (skin tones and ZWJ sequences count as one)";
    let action_error = r#"Invalid reaction action: action must be "add" or "remove""#;
    for (body, error) in [
        (
            json!({"message_id": id, "emoji": "👍👍", "action": "add"}),
            emoji_error,
        ),
        (
            json!({"message_id": id, "emoji": "a", "action": "add"}),
            emoji_error,
        ),
        (
            json!({"message_id": id, "emoji": ":thumbsup:", "action": "add"}),
            emoji_error,
        ),
        (
            json!({"message_id": id, "emoji": "", "action": "add"}),
            emoji_error,
        ),
        (
            json!({"message_id": id, "emoji": 1, "action": "add"}),
            emoji_error,
        ),
        (json!({"message_id": id, "action": "add"}), emoji_error),
        (
            json!({"message_id": id, "emoji": "👍", "action": "toggle"}),
            action_error,
        ),
        (json!({"message_id": id, "emoji": "👍"}), action_error),
        (
            json!({"message_id": id, "emoji": "👍", "action": true}),
            action_error,
        ),
        (
            json!({"message_id": foreign, "emoji": "👍", "action": "add"}),
            "Message not found in this chat",
        ),
        (
            json!({"message_id": 12345, "emoji": "👍", "action": "add"}),
            "Message not found in this chat",
        ),
        (
            json!({"message_id": null, "emoji": "👍", "action": "add"}),
            "Invalid message_id: must be a positive integer",
        ),
    ] {
        assert_eq!(
            refused(&mut tutee, "react-message", body.clone()).await,
            error,
            "{body}"
        );
    }
    send(&mut tutee, "nothing changed").await;
    receive(&mut tutor, "nothing changed").await;
    let late = member(server.addr, 101, 1, "tutor").await;
    assert!(history_of(&late)["messages"][0].get("reactions").is_none());
}

#[tokio::test]
async fn a_reaction_storm_is_rate_limited() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let id = send(&mut tutor, "storm").await;
    receive(&mut tutee, "storm").await;
    // Sixty different emojis (😀 and on): every one that is let through changes something.
    for i in 0..60 {
        let emoji = char::from_u32(0x1F600 + i).expect("an emoji");
        tutee
            .send_text(&format!(
                r#"42["react-message",{{"message_id":{id},"emoji":"{emoji}","action":"add"}}]"#
            ))
            .await;
    }
    let (mut limited, mut reactions) = (0, 0);
    while limited + reactions < 60 {
        let frame = next(&mut tutee).await;
        if frame.starts_with(r#"42["chat-error""#) {
            assert_eq!(
                payload(&frame, "chat-error")["message"],
                "Rate limit exceeded"
            );
            limited += 1;
        } else {
            payload(&frame, "message-reaction");
            reactions += 1;
        }
    }
    assert!(limited >= 30, "{limited} of 60 refused");
    assert!(reactions >= 20, "the burst went through: {reactions}");
    // The tutor got exactly the reactions that went through, and the chat still works.
    for _ in 0..reactions {
        expect(&mut tutor, "message-reaction").await;
    }
    send(&mut tutee, "calm").await;
    receive(&mut tutor, "calm").await;
}

#[tokio::test]
async fn a_user_has_at_most_twenty_reactions_on_a_message() {
    let db = TestDb::create().await;
    let flags = ["--auth", "trust", "--reaction-rate", "0"];
    let server = support::chat_gateway(&db.url(), &flags).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let id = send(&mut tutor, "popular").await;
    receive(&mut tutee, "popular").await;
    let react = |n: u32, action: &str| {
        let emoji = char::from_u32(0x1F600 + n).expect("an emoji");
        json!({"message_id": id, "emoji": emoji.to_string(), "action": action})
    };
    for n in 0..20 {
        let (ack, _) = ask(&mut tutee, "react-message", &react(n, "add"), n).await;
        assert_eq!(
            ack["counts"].as_object().map(|c| c.len()),
            Some(n as usize + 1)
        );
    }
    let too_many = "Too many reactions: at most 20 per user on one message";
    let (ack, before) = ask(&mut tutee, "react-message", &react(20, "add"), 20).await;
    assert_eq!(ack["error"], too_many);
    assert_eq!(payload(&before[0], "chat-error")["message"], too_many);
    // Adding one it already has is still a no-op, not a refusal; after a removal there is room.
    let (ack, before) = ask(&mut tutee, "react-message", &react(3, "add"), 21).await;
    assert!(ack.get("error").is_none() && before.is_empty(), "{ack}");
    ask(&mut tutee, "react-message", &react(3, "remove"), 22).await;
    let (ack, _) = ask(&mut tutee, "react-message", &react(20, "add"), 23).await;
    assert_eq!(ack["counts"].as_object().map(|c| c.len()), Some(20));
    // The cap is per user: the tutor still reacts.
    let (ack, _) = ask(&mut tutor, "react-message", &react(0, "add"), 1).await;
    assert_eq!(
        ack["counts"][char::from_u32(0x1F600).unwrap().to_string()],
        2
    );
}

#[tokio::test]
async fn authors_edit_within_the_window_and_delete_leaving_a_tombstone() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), &["--auth", "trust", "--edit-audit", "on"]).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let id = send(&mut tutor, "teh answer").await;
    let keep = send(&mut tutor, "keep me").await;
    receive(&mut tutee, "teh answer").await;
    receive(&mut tutee, "keep me").await;

    let (ack, before) = ask(
        &mut tutor,
        "edit-message",
        &json!({"eventid": 101, "userid": 1, "message_id": id, "message": "the answer ✓"}),
        1,
    )
    .await;
    assert_eq!(payload(&before[0], "message-edited"), ack);
    assert_eq!(ack["message"], "the answer ✓");
    assert_eq!(ack["message_id"], id);
    assert_eq!(ack["eventid"], 101);
    assert_eq!(ack["edited_at"].as_str().map(str::len), Some(26));
    assert_eq!(expect(&mut tutee, "message-edited").await, ack);

    assert_eq!(
        refused(
            &mut tutee,
            "edit-message",
            json!({"message_id": id, "message": "mine now"})
        )
        .await,
        "Not your message: only its author can edit or delete it"
    );
    assert_eq!(
        refused(&mut tutee, "delete-message", json!({"message_id": id})).await,
        "Not your message: only its author can edit or delete it"
    );
    for (body, error) in [
        (json!({"message_id": id, "message": "   "}), "Empty message"),
        (
            json!({"message_id": id, "message": 5}),
            "Invalid message: must be a string",
        ),
        (
            json!({"message_id": id, "message": "x".repeat(5001)}),
            "Message too long: at most 5000 characters",
        ),
        (json!({"message_id": id}), "Empty message"),
        (
            json!({"message_id": 99, "message": "x"}),
            "Message not found in this chat",
        ),
    ] {
        assert_eq!(
            refused(&mut tutor, "edit-message", body.clone()).await,
            error,
            "{body}"
        );
    }

    // A reaction, then the deletion takes the text and the reactions with it.
    tutee
        .send_text(&format!(
            r#"42["react-message",{{"message_id":{id},"emoji":"👍","action":"add"}}]"#
        ))
        .await;
    expect(&mut tutee, "message-reaction").await;
    expect(&mut tutor, "message-reaction").await;
    let (ack, before) = ask(&mut tutor, "delete-message", &json!({"message_id": id}), 2).await;
    assert_eq!(payload(&before[0], "message-deleted"), ack);
    assert_eq!(ack["message_id"], id);
    assert_eq!(ack["deleted_at"].as_str().map(str::len), Some(26));
    assert_eq!(expect(&mut tutee, "message-deleted").await, ack);
    // Deleting again answers the first deletion and tells nobody.
    let (again, before) = ask(&mut tutor, "delete-message", &json!({"message_id": id}), 3).await;
    assert!(before.is_empty());
    assert_eq!(again, ack);
    assert_eq!(
        refused(
            &mut tutor,
            "edit-message",
            json!({"message_id": id, "message": "back"})
        )
        .await,
        "Message was deleted"
    );
    assert_eq!(
        refused(
            &mut tutee,
            "react-message",
            json!({"message_id": id, "emoji": "👍", "action": "add"})
        )
        .await,
        "Message was deleted"
    );
    send(&mut tutee, "done").await;
    receive(&mut tutor, "done").await;

    let late = member(server.addr, 101, 2, "tutee").await;
    let messages = history_of(&late)["messages"].clone();
    let tombstone = &messages[0];
    assert_eq!(tombstone["id"], id);
    assert_eq!(tombstone["deleted"], true);
    assert_eq!(tombstone["message"], "", "no text is kept");
    assert_eq!(tombstone["deleted_at"], ack["deleted_at"]);
    assert!(tombstone.get("reactions").is_none());
    assert_eq!(messages[1]["id"], keep);
    assert!(
        messages[1].get("edited_at").is_none(),
        "an untouched message is as sent"
    );

    let client = db.client().await;
    let audit: Vec<(String, String)> = client
        .query(
            "SELECT action, old_message FROM chatgate_message_audit WHERE message_id = $1 ORDER BY at",
            &[&id],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        audit,
        [
            ("edit".to_owned(), "teh answer".to_owned()),
            ("delete".to_owned(), "the answer ✓".to_owned())
        ],
        "--edit-audit on keeps the old texts"
    );
}

#[tokio::test]
async fn edits_after_the_window_are_refused_and_no_audit_by_default() {
    let db = TestDb::create().await;
    let server =
        support::chat_gateway(&db.url(), &["--auth", "trust", "--edit-window-secs", "0"]).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let id = send(&mut tutor, "too late").await;
    receive(&mut tutee, "too late").await;
    assert_eq!(
        refused(
            &mut tutor,
            "edit-message",
            json!({"message_id": id, "message": "fixed"})
        )
        .await,
        "Edit window passed: a message can be edited for 0 minutes after it is sent"
    );
    // Deleting has no window.
    tutor
        .send_text(&format!(r#"42["delete-message",{{"message_id":{id}}}]"#))
        .await;
    expect(&mut tutor, "message-deleted").await;
    expect(&mut tutee, "message-deleted").await;
    let client = db.client().await;
    let (text, audits): (String, i64) = {
        let row = client
            .query_one(
                "SELECT message, (SELECT count(*) FROM chatgate_message_audit) FROM chatgate_message WHERE id = $1",
                &[&id],
            )
            .await
            .expect("row");
        (row.get(0), row.get(1))
    };
    assert_eq!(text, "", "the old text is gone");
    assert_eq!(audits, 0, "no audit trail unless asked");
}

#[tokio::test]
async fn members_reacting_and_editing_at_once_end_in_agreement() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutor_tab = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let id = send(&mut tutor, "busy message").await;
    receive(&mut tutee, "busy message").await;
    receive(&mut tutor_tab, "busy message").await;
    let emojis = ["😀", "🎉", "🚀", "👀", "✅", "💯", "🙏", "🤔"];
    // Both members react with every emoji while both tutor tabs edit the message.
    for (i, emoji) in emojis.iter().enumerate() {
        let react = format!(
            r#"42["react-message",{{"message_id":{id},"emoji":"{emoji}","action":"add"}}]"#
        );
        tutor.send_text(&react).await;
        tutee.send_text(&react).await;
        let edit = |who: &str| {
            format!(r#"42["edit-message",{{"message_id":{id},"message":"{who} edit {i}"}}]"#)
        };
        tutor.send_text(&edit("tab1")).await;
        tutor_tab.send_text(&edit("tab2")).await;
    }
    // Everyone hears 16 reactions and 16 edits, in the same order.
    let mut heard = Vec::new();
    for ws in [&mut tutor, &mut tutor_tab, &mut tutee] {
        let mut frames = Vec::new();
        while frames.len() < 32 {
            let frame = next(ws).await;
            assert!(
                frame.starts_with(r#"42["message-reaction""#)
                    || frame.starts_with(r#"42["message-edited""#),
                "{frame}"
            );
            frames.push(frame);
        }
        heard.push(frames);
    }
    assert_eq!(heard[0], heard[1], "both tabs heard the same sequence");
    assert_eq!(heard[0], heard[2], "the tutee heard the same sequence");
    let last_reaction = heard[0]
        .iter()
        .rev()
        .find(|f| f.starts_with(r#"42["message-reaction""#))
        .map(|f| payload(f, "message-reaction"))
        .expect("a reaction");
    let expected: serde_json::Map<String, Value> =
        emojis.iter().map(|e| (e.to_string(), json!(2))).collect();
    assert_eq!(last_reaction["counts"], Value::Object(expected.clone()));
    let last_edit = heard[0]
        .iter()
        .rev()
        .find(|f| f.starts_with(r#"42["message-edited""#))
        .map(|f| payload(f, "message-edited"))
        .expect("an edit");
    let late = member(server.addr, 101, 2, "tutee").await;
    let m = history_of(&late)["messages"][0].clone();
    assert_eq!(
        m["message"], last_edit["message"],
        "history has the last edit heard"
    );
    assert_eq!(m["edited_at"], last_edit["edited_at"]);
    let mut counts = m["reactions"].as_object().expect("reactions").clone();
    counts.sort_keys();
    let mut expected = expected;
    expected.sort_keys();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn without_history_the_changes_are_refused() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), &["--auth", "trust", "--history", "off"]).await;
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let id = send(&mut tutor, "unkept").await;
    let off = "Message history is off on this server: messages cannot be marked, reacted to, edited or deleted";
    assert_eq!(
        refused(&mut tutor, "mark-read", json!({"message_id": id})).await,
        off
    );
    assert_eq!(
        refused(
            &mut tutor,
            "react-message",
            json!({"message_id": id, "emoji": "👍", "action": "add"})
        )
        .await,
        off
    );
    assert_eq!(
        refused(
            &mut tutor,
            "edit-message",
            json!({"message_id": id, "message": "x"})
        )
        .await,
        off
    );
    assert_eq!(
        refused(&mut tutor, "delete-message", json!({"message_id": id})).await,
        off
    );
}

#[tokio::test]
async fn the_demo_directory_supports_every_change_in_memory() {
    let running = support::binary::start(&[]).await;
    let mut tutor = member(running.addr(), 101, 1, "tutor").await;
    let mut tutee = member(running.addr(), 101, 2, "tutee").await;
    let id = send(&mut tutor, "demo").await;
    receive(&mut tutee, "demo").await;
    tutee
        .send_text(&format!(r#"42["mark-read",{{"message_id":{id}}}]"#))
        .await;
    assert_eq!(
        expect(&mut tutor, "messages-read").await["last_read_id"],
        id
    );
    tutee
        .send_text(&format!(
            r#"42["react-message",{{"message_id":{id},"emoji":"🎓","action":"add"}}]"#
        ))
        .await;
    assert_eq!(
        expect(&mut tutor, "message-reaction").await["counts"],
        json!({"🎓": 1})
    );
    expect(&mut tutee, "message-reaction").await;
    tutor
        .send_text(&format!(
            r#"42["edit-message",{{"message_id":{id},"message":"demo, edited"}}]"#
        ))
        .await;
    assert_eq!(
        expect(&mut tutee, "message-edited").await["message"],
        "demo, edited"
    );
    expect(&mut tutor, "message-edited").await;
    let second = send(&mut tutor, "bye").await;
    receive(&mut tutee, "bye").await;
    tutor
        .send_text(&format!(
            r#"42["delete-message",{{"message_id":{second}}}]"#
        ))
        .await;
    assert_eq!(
        expect(&mut tutee, "message-deleted").await["message_id"],
        second
    );
    let late = member(running.addr(), 101, 1, "tutor").await;
    let history = history_of(&late);
    assert_eq!(history["messages"][0]["message"], "demo, edited");
    assert_eq!(history["messages"][0]["reactions"], json!({"🎓": 1}));
    assert_eq!(history["messages"][1]["deleted"], true);
    assert_eq!(history["read_receipts"][0]["last_read_id"], id);
    assert_eq!(
        refused(
            &mut tutee,
            "edit-message",
            json!({"message_id": id, "message": "x"})
        )
        .await,
        "Not your message: only its author can edit or delete it"
    );
}

/// A burst of joins has its pages read together (one set of statements for the batch): each
/// joiner still gets exactly its own chat's messages, the reactions of those messages with its
/// own `my_reactions`, and its own chat's read marks; nothing of another chat.
#[tokio::test]
async fn pages_read_together_each_get_their_own_chat() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    // Chat 101: three messages, the first reacted to and read by the tutee. Chat 102: one
    // message, nothing else. Chats 103 and 104: nothing.
    let mut tutor = member(server.addr, 101, 1, "tutor").await;
    let mut tutee = member(server.addr, 101, 2, "tutee").await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        ids.push(send(&mut tutor, text).await);
        receive(&mut tutee, text).await;
    }
    let react = json!({"message_id": ids[0], "emoji": "👍", "action": "add"});
    let (ack, _) = ask(&mut tutee, "react-message", &react, 1).await;
    assert_eq!(ack["counts"]["👍"], 1);
    let (ack, _) = ask(&mut tutee, "mark-read", &json!({"message_id": ids[0]}), 2).await;
    assert_eq!(ack["last_read_id"], ids[0], "{ack}");
    let mut other = member(server.addr, 102, 3, "tutor").await;
    send(&mut other, "elsewhere").await;

    // Forty joins at once, ten of each chat, both roles of 101 among them.
    let seats = [
        (101, 1, "tutor"),
        (101, 2, "tutee"),
        (102, 4, "tutee"),
        (103, 1, "tutor"),
        (104, 5, "tutor"),
    ];
    let joins = (0..40).map(|i| {
        let (eventid, userid, role) = seats[i % seats.len()];
        async move {
            (
                eventid,
                userid,
                member(server.addr, eventid, userid, role).await,
            )
        }
    });
    for (eventid, userid, ws) in futures_util::future::join_all(joins).await {
        let history = history_of(&ws);
        assert_eq!(history["eventid"], eventid);
        let messages = history["messages"].as_array().expect("messages");
        let texts: Vec<&str> = messages
            .iter()
            .filter_map(|m| m["message"].as_str())
            .collect();
        let receipts = history["read_receipts"].as_array().expect("read_receipts");
        match eventid {
            101 => {
                assert_eq!(texts, ["one", "two", "three"], "{history}");
                assert_eq!(messages[0]["reactions"], json!({"👍": 1}), "{history}");
                let mine = (userid == 2).then(|| json!(["👍"]));
                assert_eq!(
                    messages[0].get("my_reactions"),
                    mine.as_ref(),
                    "user {userid}: {history}"
                );
                assert!(
                    messages[1].get("reactions").is_none_or(Value::is_null),
                    "{history}"
                );
                assert_eq!(receipts.len(), 1, "{history}");
                assert_eq!(receipts[0]["userid"], 2);
                assert_eq!(receipts[0]["last_read_id"], ids[0]);
            }
            102 => {
                assert_eq!(texts, ["elsewhere"], "{history}");
                assert!(receipts.is_empty(), "{history}");
            }
            _ => {
                assert!(messages.is_empty() && receipts.is_empty(), "{history}");
            }
        }
        assert_eq!(history["has_more"], false);
    }
    // Every join read its page from the database: 2 + 1 before the burst, 40 in it. How many
    // batches they took depends on timing; the figure shows in the log of a failed run.
    let count = |name: &'static str| async move {
        support::raw::metric(server.addr, name)
            .await
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    let pages = count("chatgate_history_pages_read_total").await;
    let batches = count("chatgate_history_page_batches_total").await;
    eprintln!("{pages} pages in {batches} batches");
    assert_eq!(pages, 43.0);
    assert!((1.0..=pages).contains(&batches));
}
