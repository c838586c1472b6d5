//! Shared test fixtures: an in-process server on an ephemeral port, the test application the
//! engine-level tests talk to, and runners for the real JavaScript and Python clients.
#![allow(dead_code)] // each test binary uses a different part

pub mod binary;
pub mod db;
pub mod echo_app;
pub mod proxy;
pub mod raw;
pub mod redis_server;
pub mod s3_server;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use chatgate::server::{self, Router, ServerConfig};
use tokio::sync::oneshot;

/// A server running on a tokio task; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start(router: Router) -> TestServer {
    start_with(
        router,
        chatgate::app::server_config(&chatgate::config::ServeArgs::defaults()),
    )
    .await
}

pub async fn start_with(router: Router, config: ServerConfig) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port on loopback");
    let addr = listener.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, config, async move {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        stop: Some(stop),
    }
}

/// An HS256 token for `sub`, expiring `exp_offset` seconds from now (negative: expired).
pub fn token(secret: &str, sub: serde_json::Value, exp_offset: i64) -> String {
    let claims =
        serde_json::json!({ "sub": sub, "exp": chrono::Utc::now().timestamp() + exp_offset });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode a test token")
}

/// A TCP port nothing listens on right now (for a process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on loopback")
        .port()
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A new empty directory under the system's temporary directory.
pub fn temp_dir(what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("chatgate-test-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// `--file-store dir:<a new temporary directory>` unless `flags` name a store: tests never write
/// into the checkout.
pub fn file_store_flag(flags: &[&str]) -> Vec<String> {
    if flags.contains(&"--file-store") {
        return Vec::new();
    }
    let dir = temp_dir("files");
    vec!["--file-store".into(), format!("dir:{}", dir.display())]
}

/// The chat gateway on a database, assembled in-process from command-line flags.
pub async fn chat_gateway(db_url: &str, flags: &[&str]) -> TestServer {
    use clap::Parser;
    let store = file_store_flag(flags);
    let mut argv = vec!["chatgate", "--database-url", db_url];
    argv.extend(store.iter().map(String::as_str));
    argv.extend_from_slice(flags);
    let args = chatgate::config::Cli::parse_from(argv).serve;
    let directory = chatgate::app::directory(&args).expect("directory");
    let gateway = chatgate::app::assemble(&args, directory).expect("gateway");
    chatgate::app::prepare_schema(&args, gateway.history.clone())
        .await
        .expect("schema");
    start(gateway.router).await
}

/// Runs a client script to completion (bounded by `limit`) and returns its output. The scripts
/// assert on their own and exit non-zero with a message on failure.
pub async fn run_client(program: &str, script: &str, args: &[&str], limit: Duration) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(repo_path(script)).args(args).kill_on_drop(true);
    match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            panic!("cannot run {program} {script}: {e} (did scripts/test install the clients?)")
        }
        Err(_) => panic!("{program} {script} did not finish within {limit:?}"),
    }
}

/// Runs a Node.js client script from `tests/clients/` and asserts it succeeded.
pub async fn node(script: &str, args: &[&str]) -> String {
    let out = run_client(
        "node",
        &format!("tests/clients/{script}"),
        args,
        Duration::from_secs(60),
    )
    .await;
    check(script, out)
}

/// Runs a script of the Node.js cluster peer (`tests/cluster-node/`) and asserts it succeeded.
pub async fn node_peer(script: &str, args: &[&str]) -> String {
    let out = run_client(
        "node",
        &format!("tests/cluster-node/{script}"),
        args,
        Duration::from_secs(60),
    )
    .await;
    check(script, out)
}

/// The Python of the test virtualenv (made by scripts/test), or `python3` if there is none.
pub fn python_program() -> String {
    let venv = repo_path("target/pyenv/bin/python");
    if venv.exists() {
        venv.to_string_lossy().into_owned()
    } else {
        "python3".to_owned()
    }
}

/// Runs a Python client script from `tests/clients/` and asserts it succeeded.
pub async fn python(script: &str, args: &[&str]) -> String {
    let program = python_program();
    let out = run_client(
        &program,
        &format!("tests/clients/{script}"),
        args,
        Duration::from_secs(60),
    )
    .await;
    check(script, out)
}

fn check(script: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}
