//! A webhook receiver of the test's own: a real HTTP server on a free port that records every
//! delivery (headers, body, whether its Standard Webhooks signature is valid) and answers each with
//! the next reply of its script (then 200), so a test can make the endpoint fail, or hang.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How the receiver answers one delivery.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Reads the request and never answers (the sender's timeout must end it).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
    pub signed: bool,
    /// What the receiver answered.
    pub answered: Reply,
}

pub struct Receiver {
    pub port: u16,
    pub secret: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    got: mpsc::UnboundedReceiver<Delivery>,
}

/// Whether `signature` is the Standard Webhooks signature of `id.timestamp.body` under `secret`.
pub fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a whsec_ secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

impl Receiver {
    pub async fn start(script: &[Reply]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (tx, got) = mpsc::unbounded_channel();
        let (s, key) = (script.clone(), secret.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (s, key, tx) = (s.clone(), key.clone(), tx.clone());
                tokio::spawn(async move {
                    let Some((headers, body)) = read_request(&mut stream).await else {
                        return;
                    };
                    let header = |name: &str| {
                        headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let reply = s
                        .lock()
                        .expect("script")
                        .pop_front()
                        .unwrap_or(Reply::Status(200));
                    let (id, timestamp, signature) = (
                        header("webhook-id"),
                        header("webhook-timestamp"),
                        header("webhook-signature"),
                    );
                    let signed = verify(&key, &id, &timestamp, &body, &signature);
                    let _ = tx.send(Delivery {
                        id,
                        timestamp,
                        signature,
                        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                        raw: body,
                        signed,
                        answered: reply,
                    });
                    match reply {
                        Reply::Status(code) => {
                            let answer = format!(
                                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                        }
                        Reply::Hang => {
                            // Held open until the sender gives up.
                            let mut rest = [0u8; 64];
                            let _ = stream.read(&mut rest).await;
                        }
                    }
                });
            }
        });
        Receiver {
            port,
            secret,
            script,
            got,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/chat", self.port)
    }

    /// The next delivery (at most 30 s away).
    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(30), self.got.recv())
            .await
            .expect("a delivery within 30 s")
            .expect("the receiver runs")
    }

    /// Deliveries received so far and not yet taken.
    pub fn taken_now(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Ok(d) = self.got.try_recv() {
            out.push(d);
        }
        out
    }

    pub fn push_script(&self, reply: Reply) {
        self.script.lock().expect("script").push_back(reply);
    }
}

async fn read_request(
    stream: &mut tokio::net::TcpStream,
) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}
