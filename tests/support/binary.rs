//! The real `chatgate` binary, started on an ephemeral port, its log read line by line.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Running {
    pub child: Child,
    pub url: String,
    pub log: Vec<String>,
    /// Log lines after the start-up ones.
    pub later: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Running {
    /// Waits for a log line containing `text`.
    pub async fn log_line(&mut self, text: &str) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.later.recv())
                .await
                .unwrap_or_else(|_| panic!("no log line with {text:?}"))
                .expect("the binary is still running");
            if line.contains(text) {
                return line;
            }
        }
    }
}

/// Starts `chatgate` on an ephemeral port and reads its log up to the line that names the URL.
pub async fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["--listen", "127.0.0.1:0"])
        .args(super::file_store_flag(args))
        .args(args)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the chatgate binary");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut log = Vec::new();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("log line within the deadline")
            .expect("read log")
            .expect("the binary is still running");
        log.push(line.clone());
        if let Some(rest) = line.split("demo page: ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("a URL")
                .trim_end_matches('/')
                .to_owned();
        }
        // With a database there is no demo page line: the listening line names the address.
        if args.contains(&"--database-url") {
            if let Some(rest) = line.split("chatgate listening listen=").nth(1) {
                break format!(
                    "http://{}",
                    rest.split_whitespace().next().expect("an address")
                );
            }
        }
    };
    let (tx, later) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    Running {
        child,
        url,
        log,
        later,
    }
}

impl Running {
    /// The address the binary listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("http://")
            .parse()
            .expect("an address")
    }

    /// Sends SIGTERM.
    pub async fn signal_term(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (at most `limit`) for the process to exit, and asserts it exited with 0.
    pub async fn clean_exit(&mut self, limit: Duration) {
        let exit = tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("exits within the grace period")
            .expect("exit status");
        assert!(exit.success(), "{exit}");
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    /// Sends SIGTERM and waits (at most 20 s) for a clean exit.
    pub async fn terminate(&mut self) {
        self.signal_term().await;
        self.clean_exit(Duration::from_secs(20)).await;
    }
}
