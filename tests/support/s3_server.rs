//! An S3-compatible object store of the test's own: moto's standalone server (`moto_server`, from
//! PyPI, installed into the test virtualenv by scripts/test) on a free port, with one bucket. It
//! speaks the S3 REST API over HTTP, multipart uploads included, like any S3-compatible service.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct S3Server {
    pub port: u16,
    pub bucket: String,
    _child: Child,
}

/// Credentials for the server (it accepts any; the client must still sign).
pub const KEY_ID: &str = "chatgate-test";
pub const SECRET: &str = "chatgate-test-secret";

impl S3Server {
    pub async fn start() -> S3Server {
        let program = super::repo_path("target/pyenv/bin/moto_server");
        for _ in 0..10 {
            let port = super::free_port();
            let child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {}: {e} (scripts/test installs it)",
                        program.display()
                    )
                });
            let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            // Up within 20 s, or the port was taken: try another.
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    let server = S3Server {
                        port,
                        bucket: "chat-files".into(),
                        _child: child,
                    };
                    let created = super::raw::http(addr, "PUT", "/chat-files", &[], b"").await;
                    assert_eq!(created.status, 200, "create bucket: {}", created.text());
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("moto_server did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().expect("addr")
    }

    /// The keys stored in the bucket (ListObjectsV2), to see that nothing is left behind.
    pub async fn keys(&self) -> Vec<String> {
        let reply = super::raw::http(
            self.addr(),
            "GET",
            &format!("/{}?list-type=2", self.bucket),
            &[],
            b"",
        )
        .await;
        let text = reply.text();
        text.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub async fn unfinished_uploads(&self) -> usize {
        let reply = super::raw::http(
            self.addr(),
            "GET",
            &format!("/{}?uploads", self.bucket),
            &[],
            b"",
        )
        .await;
        reply.text().matches("<UploadId>").count()
    }
}
