//! A Redis server of the test's own (the machine's `redis-server` on a free port), so a test can
//! restart it without disturbing any other test.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        // A port another test took between our probe and the server's bind makes the server
        // exit: try another one.
        for _ in 0..20 {
            let port = super::free_port();
            if let Some(child) = spawn(port).await {
                return RedisServer { port, child };
            }
        }
        panic!("could not start a redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data is gone: it keeps nothing on disk).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts it again, empty, on the same port.
    pub async fn start_again(&mut self) {
        self.child = spawn(self.port)
            .await
            .expect("redis-server on its old port");
    }

    /// A connection for inspecting keys.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's Redis")
    }
}

/// Starts redis-server on `port`; `None` if it exits (the port was taken).
async fn spawn(port: u16) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start redis-server (scripts/test installs it if missing)");
    // Ready when it accepts connections, and it is ours only if it is still running then.
    for _ in 0..200 {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return match child.try_wait() {
                Ok(None) => Some(child),
                _ => None,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("redis-server did not start on port {port}");
}
