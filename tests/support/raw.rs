//! Raw protocol clients for tests that must send what no real client would: hand-written HTTP
//! requests and a bare WebSocket.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(5);

/// A response read off the wire.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One sample of a server's `/metrics` as printed (`name` or `name{label="value"}`), if present.
pub async fn metric(addr: std::net::SocketAddr, sample: &str) -> Option<f64> {
    let page = http(addr, "GET", "/metrics", &[], b"").await.text();
    page.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole response.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream
        .write_all(req.as_bytes())
        .await
        .expect("write request");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response within the deadline")
        .expect("read response");
    parse(&raw)
}

fn parse(raw: &[u8]) -> HttpReply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// Opens a polling session; returns its sid.
pub async fn polling_handshake(addr: SocketAddr) -> String {
    let reply = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(reply.status, 200, "handshake: {}", reply.text());
    let text = reply.text();
    let open: serde_json::Value = serde_json::from_str(&text[1..]).expect("open packet JSON");
    open["sid"]
        .as_str()
        .expect("sid in the open packet")
        .to_owned()
}

/// A bare WebSocket to the Engine.IO endpoint.
pub struct RawWs {
    ws: WebSocketStream<TcpStream>,
    /// The `chat-history` frame read by the last successful `join_chat`.
    pub last_history: Option<String>,
    /// Frames read ahead by `join_chat`, returned first by `recv_text`.
    pending: std::collections::VecDeque<String>,
}

impl RawWs {
    /// Connects with `transport=websocket` and consumes the open packet.
    pub async fn open(addr: SocketAddr) -> RawWs {
        let mut ws = RawWs::connect(addr, "/socket.io/?EIO=4&transport=websocket")
            .await
            .expect("websocket handshake");
        let open = ws.recv_text().await.expect("open packet");
        assert!(open.starts_with("0{"), "open packet, got {open}");
        ws
    }

    pub async fn connect(addr: SocketAddr, path: &str) -> Result<RawWs, tungstenite::Error> {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the test server");
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), stream).await?;
        Ok(RawWs {
            ws,
            last_history: None,
            pending: Default::default(),
        })
    }

    /// Opens a session and connects the Socket.IO namespace `/`.
    pub async fn socketio(addr: SocketAddr) -> RawWs {
        let mut ws = RawWs::open(addr).await;
        ws.send_text("40").await;
        let reply = ws.recv_text().await.expect("CONNECT reply");
        assert!(
            reply.starts_with("40{\"sid\":"),
            "CONNECT reply, got {reply}"
        );
        ws
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send text frame");
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws
            .send(Message::binary(data))
            .await
            .expect("send binary frame");
    }

    /// The next text frame as sent, pings included; `None` once the connection closed.
    pub async fn recv_raw(&mut self) -> Option<String> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the deadline");
            match msg {
                Some(Ok(Message::Text(t))) => return Some(t.as_str().to_owned()),
                Some(Ok(Message::Binary(_))) => return Some("<binary>".to_owned()),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next text frame, skipping server pings (answered); `None` once the connection closed.
    pub async fn recv_text(&mut self) -> Option<String> {
        if let Some(frame) = self.pending.pop_front() {
            return Some(frame);
        }
        loop {
            let frame = self.recv_raw().await?;
            if frame != "2" {
                return Some(frame);
            }
            self.send_text("3").await;
        }
    }

    /// Sends `join-chat` and returns the first frame of the answer (`chat-joined` or `chat-error`).
    /// After `chat-joined`, also reads the `chat-history` that follows it and keeps it in
    /// `last_history`.
    pub async fn join_chat(&mut self, eventid: i32, userid: i32, role: &str) -> String {
        self.send_text(&format!(
            r#"42["join-chat",{{"eventid":{eventid},"userid":{userid},"role":"{role}"}}]"#
        ))
        .await;
        // Others' announcements and messages may come before the reply (in a cluster, a
        // member's announcement from another node can overtake it) and between the reply and the
        // history; they are kept for the next `recv_text`.
        let mut between = Vec::new();
        let reply = loop {
            let frame = self.recv_text().await.expect("a reply to join-chat");
            if frame.starts_with(r#"42["user-"#) || frame.starts_with(r#"42["receive-message""#) {
                between.push(frame);
            } else {
                break frame;
            }
        };
        if reply.starts_with(r#"42["chat-joined""#) {
            let history = loop {
                let frame = self
                    .recv_text()
                    .await
                    .expect("chat-history after chat-joined");
                if frame.starts_with(r#"42["chat-history""#) {
                    break frame;
                }
                assert!(
                    frame.starts_with(r#"42["user-"#)
                        || frame.starts_with(r#"42["receive-message""#),
                    "expected chat-history, got {frame}"
                );
                between.push(frame);
            };
            assert!(
                history.starts_with(&format!(r#"42["chat-history",{{"eventid":{eventid},"#)),
                "chat-history of another event: {history}"
            );
            self.last_history = Some(history);
        }
        self.pending.extend(between);
        reply
    }

    /// Asserts that the server closes the connection (reading anything it sends before that).
    pub async fn expect_closed(&mut self) {
        while let Some(frame) = self.recv_text().await {
            assert!(
                !frame.starts_with("42"),
                "expected a close, got event {frame}"
            );
        }
    }

    /// Sends an echo event and asserts the echo comes back: proof the connection still works.
    pub async fn assert_echo(&mut self, marker: &str) {
        self.send_text(&format!(r#"42["echo","{marker}"]"#)).await;
        assert_eq!(
            self.recv_text().await.as_deref(),
            Some(format!(r#"42["echo-back","{marker}"]"#).as_str())
        );
    }
}

/// A Socket.IO connection that joined `eventid` as `userid` in `role` (asserting it was let in).
pub async fn member(addr: SocketAddr, eventid: i32, userid: i32, role: &str) -> RawWs {
    let mut ws = RawWs::socketio(addr).await;
    let reply = ws.join_chat(eventid, userid, role).await;
    assert!(reply.starts_with(r#"42["chat-joined""#), "{reply}");
    ws
}

/// The payload of an event frame `42["name",{...}]`, asserting the event's name.
pub fn event_payload(frame: &str, event: &str) -> serde_json::Value {
    let body = frame
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("not an event: {frame}"));
    let v: serde_json::Value = serde_json::from_str(body).expect("event JSON");
    assert_eq!(v[0], event, "{frame}");
    v[1].clone()
}
