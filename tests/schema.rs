//! chatgate's own tables at start (`--migrate auto|off`), as a new user and an operator meet them:
//! a database with only the host application's tables, several nodes starting at once, a role
//! without CREATE rights, a schema behind with `--migrate off`, a database that comes late.

mod support;

use std::time::Duration;

use support::binary::start;
use support::db::TestDb;
use tokio::process::Command;

/// The rows of one query's first column, as text.
async fn column(db: &TestDb, sql: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query(sql, &[])
        .await
        .expect("query")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn versions(db: &TestDb) -> Vec<String> {
    column(
        db,
        "SELECT version::text FROM chatgate_schema_migrations ORDER BY version",
    )
    .await
}

fn latest() -> Vec<String> {
    (1..=chatgate::migrate::LATEST)
        .map(|v| v.to_string())
        .collect()
}

/// The binary with `args` that must refuse to start: its exit code and stderr.
async fn refused_start(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_chatgate"))
            .args(["--listen", "127.0.0.1:0", "--auth", "trust"])
            .args(args)
            .output(),
    )
    .await
    .expect("exits instead of serving")
    .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_prepares_a_database_with_only_the_host_tables() {
    let db = TestDb::bare().await;
    let url = db.url();
    let mut running = start(&["--database-url", &url, "--auth", "trust"]).await;
    let out = support::node(
        "chat.mjs",
        &[&running.url, "first-chat", "hello, new schema"],
    )
    .await;
    assert!(out.contains("stored id"), "{out}");
    assert_eq!(versions(&db).await, latest());
    running.terminate().await;
    // The acknowledged message is in the table (stored before the ack).
    assert_eq!(
        column(&db, "SELECT message FROM chatgate_message").await,
        ["hello, new schema"]
    );
}

#[tokio::test]
async fn nodes_starting_at_once_migrate_once() {
    let db = TestDb::bare().await;
    let url = db.url();
    let args = ["--database-url", url.as_str(), "--auth", "trust"];
    let (a, b, c) = tokio::join!(start(&args), start(&args), start(&args));
    let migrated = [&a, &b, &c]
        .iter()
        .filter(|n| n.log.iter().any(|l| l.contains("schema migrated")))
        .count();
    assert_eq!(migrated, 1, "exactly one node applies the migrations");
    assert_eq!(versions(&db).await, latest());
    for node in [&a, &b, &c] {
        let ready = support::raw::http(node.addr(), "GET", "/ready", &[], b"").await;
        assert_eq!(
            ready.status,
            200,
            "{}",
            String::from_utf8_lossy(&ready.body)
        );
    }
}

#[tokio::test]
async fn migrate_off_refuses_a_schema_behind_and_names_the_command() {
    let db = TestDb::bare().await;
    let (code, stderr) = refused_start(&["--database-url", &db.url(), "--migrate", "off"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("schema is at version 0")
            && stderr.contains("chatgate migrate --database-url"),
        "{stderr}"
    );
    assert_eq!(
        column(
            &db,
            "SELECT coalesce(to_regclass('chatgate_message')::text, 'none')"
        )
        .await,
        ["none"],
        "--migrate off creates nothing"
    );
    // Once migrated, the same start succeeds.
    chatgate::migrate::migrate(&db.url())
        .await
        .expect("migrate");
    let url = db.url();
    let mut running = start(&[
        "--database-url",
        &url,
        "--auth",
        "trust",
        "--migrate",
        "off",
    ])
    .await;
    support::node("chat.mjs", &[&running.url, "first-chat", "after migrate"]).await;
    running.terminate().await;
}

#[tokio::test]
async fn a_role_without_create_rights_is_told_exactly_that() {
    let db = TestDb::bare().await;
    let role = format!("{}_reader", db.name);
    db.execute(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         GRANT SELECT ON users, requested_event TO {role};"
    ))
    .await;
    let url = format!("postgres://{role}@127.0.0.1:5432/{}", db.name);
    let (code, stderr) = refused_start(&["--database-url", &url]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("role \"{role}\" may not create chatgate's tables"))
            && stderr.contains("GRANT CREATE ON SCHEMA public")
            && stderr.contains("chatgate migrate"),
        "{stderr}"
    );
    // Migrated by the owner, the same role starts and serves (it only needs to read and write).
    chatgate::migrate::migrate(&db.url())
        .await
        .expect("migrate");
    db.execute(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
    ))
    .await;
    let mut running = start(&["--database-url", &url, "--auth", "trust"]).await;
    support::node("chat.mjs", &[&running.url, "first-chat", "as the reader"]).await;
    running.terminate().await;
    db.execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
}

#[tokio::test]
async fn until_the_schema_is_ready_joins_fail_cleanly_and_ready_says_503() {
    let db = TestDb::bare().await;
    let (proxy, url) = db.behind_a_down_proxy().await;
    let mut running = start(&[
        "--database-url",
        &url,
        "--auth",
        "trust",
        "--migrate",
        "off",
        "--db-connect-timeout-ms",
        "300",
    ])
    .await;
    let addr = running.addr();
    proxy.up();
    running.log_line("schema not usable").await;
    let ready = support::raw::http(addr, "GET", "/ready", &[], b"").await;
    assert_eq!(ready.status, 503);
    assert!(String::from_utf8_lossy(&ready.body).contains("schema"));
    let mut ws = support::raw::RawWs::socketio(addr).await;
    assert_eq!(
        ws.join_chat(101, 1, "tutor").await,
        r#"42["chat-error",{"message":"Failed to join chat"}]"#
    );
    // An operator runs `chatgate migrate`; the gateway notices by itself.
    chatgate::migrate::migrate(&db.url())
        .await
        .expect("migrate");
    running.log_line("schema ready").await;
    assert_eq!(
        support::raw::http(addr, "GET", "/ready", &[], b"")
            .await
            .status,
        200
    );
    support::node("chat.mjs", &[&running.url, "first-chat", "late but fine"]).await;
}
