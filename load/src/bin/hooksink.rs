//! chatgate-hooksink: a webhook receiver for benchmarks. Answers every HTTP/1.1 request with
//! `204` (keeping the connection open, as a sender's pool expects), counts the requests, and
//! prints `received N` each time the count stops growing for a moment and once a second while it
//! grows. Loopback only.
//!
//!   chatgate-hooksink --listen 127.0.0.1:7190

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";

/// Serves one connection's requests, one after the other.
async fn serve(mut stream: TcpStream, count: Arc<AtomicU64>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        // One request: headers, then Content-Length bytes of body.
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..end + 4 + length);
        count.fetch_add(1, Ordering::Relaxed);
        stream.write_all(ANSWER).await?;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr,
        _ => "127.0.0.1:7190".to_owned(),
    };
    let addr: std::net::SocketAddr = listen.parse().expect("--listen ADDR:PORT");
    assert!(addr.ip().is_loopback(), "loopback only");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = c.load(Ordering::Relaxed);
                if now != last {
                    println!("received {now}");
                    last = now;
                }
            }
        });
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let _ = serve(stream, count).await;
            });
        }
    });
}
