//! A lean Socket.IO-over-WebSocket client: a hand-made HTTP upgrade, WebSocket framing (masked
//! writes, unmasked reads), and the few Engine.IO / Socket.IO packets the chat needs. Lean because
//! one core of load must be able to outrun one core of server.

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    /// Opens a WebSocket to `addr` at `path` (e.g. `/socket.io/?EIO=4&transport=websocket`), from
    /// `source` if given (to spread connections over several loopback addresses).
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>, path: &str) -> io::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let mut stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut rbuf = BytesMut::with_capacity(512);
        let end = loop {
            if let Some(i) = rbuf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if stream.read_buf(&mut rbuf).await? == 0 {
                return Err(bad("closed during the upgrade"));
            }
        };
        if !rbuf.starts_with(b"HTTP/1.1 101") {
            return Err(bad(String::from_utf8_lossy(&rbuf[..end]).into_owned()));
        }
        rbuf.advance(end);
        Ok(Conn {
            stream,
            rbuf,
            wbuf: Vec::new(),
        })
    }

    /// Queues a text frame (masked, as clients must); `flush` writes everything queued at once.
    /// The masking key is all zeros, which leaves the payload as it is: masking exists to keep
    /// browsers' traffic from poisoning proxy caches, there is no proxy on loopback, and XOR-ing
    /// every byte would cost the load tool the CPU it needs to outrun the server.
    pub fn queue_text(&mut self, payload: &[u8]) {
        let out = &mut self.wbuf;
        out.push(0x81);
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.queue_text(payload);
        self.flush().await
    }

    /// The next complete text frame's payload (read from the socket only when none is buffered).
    /// Answers Engine.IO pings (`2`) by itself.
    pub async fn next_text(&mut self) -> io::Result<BytesMut> {
        loop {
            if let Some(frame) = self.parse()? {
                if &frame[..] == b"2" {
                    self.send_text(b"3").await?;
                    continue;
                }
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
        }
    }

    /// Whether a whole frame is already buffered (no read needed).
    pub fn has_buffered_frame(&self) -> bool {
        frame_len(&self.rbuf).is_some_and(|(h, n)| self.rbuf.len() >= h + n)
    }

    fn parse(&mut self) -> io::Result<Option<BytesMut>> {
        let Some((header, len)) = frame_len(&self.rbuf) else {
            return Ok(None);
        };
        if self.rbuf.len() < header + len {
            self.rbuf.reserve(header + len - self.rbuf.len());
            return Ok(None);
        }
        let opcode = self.rbuf[0] & 0x0f;
        self.rbuf.advance(header);
        let payload = self.rbuf.split_to(len);
        match opcode {
            0x1 | 0x2 => Ok(Some(payload)),
            0x8 => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "close frame",
            )),
            _ => Ok(Some(BytesMut::new())), // ping/pong/continuation: not used by the servers here
        }
    }

    /// Completes the Engine.IO and Socket.IO handshakes on namespace `/`.
    pub async fn socketio_connect(&mut self) -> io::Result<()> {
        let open = self.next_text().await?;
        if !open.starts_with(b"0{") {
            return Err(bad("no open packet"));
        }
        self.send_text(b"40").await?;
        loop {
            let f = self.next_text().await?;
            if f.starts_with(b"40") {
                return Ok(());
            }
            if f.starts_with(b"44") {
                return Err(bad(String::from_utf8_lossy(&f).into_owned()));
            }
        }
    }

    /// Sends join-chat and waits for chat-joined (and then for chat-history, with `history`).
    pub async fn join(
        &mut self,
        eventid: u32,
        userid: u32,
        role: &str,
        history: bool,
    ) -> io::Result<()> {
        let msg =
            format!(r#"42["join-chat",{{"eventid":{eventid},"userid":{userid},"role":"{role}"}}]"#);
        self.send_text(msg.as_bytes()).await?;
        let mut joined = false;
        loop {
            let f = self.next_text().await?;
            if f.starts_with(br#"42["chat-joined""#) {
                joined = true;
            }
            if joined && (!history || f.starts_with(br#"42["chat-history""#)) {
                return Ok(());
            }
            if f.starts_with(br#"42["chat-error""#) {
                return Err(bad(String::from_utf8_lossy(&f).into_owned()));
            }
        }
    }

    pub async fn close(mut self) {
        // A close frame (masked, empty), then the socket goes.
        self.wbuf.extend_from_slice(&[0x88, 0x80, 0, 0, 0, 0]);
        let _ = self.flush().await;
    }
}

/// `(header length, payload length)` of the frame at the start of `buf`, if its header is complete.
fn frame_len(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let mask = if masked { 4 } else { 0 };
    match buf[1] & 0x7f {
        126 if buf.len() >= 4 => Some((4 + mask, u16::from_be_bytes([buf[2], buf[3]]) as usize)),
        127 if buf.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            Some((10 + mask, u64::from_be_bytes(n) as usize))
        }
        126 | 127 => None,
        n => Some((2 + mask, n as usize)),
    }
}

/// The send time embedded in a receive-message frame by `message_text`, if it is one of ours.
pub fn sent_at(frame: &[u8]) -> Option<(u32, u64)> {
    // Both servers measured here write `message` first; other layouts fall back to a scan.
    const PREFIX: &[u8] = b"42[\"receive-message\",{\"message\":\"t";
    const KEY: &[u8] = b"\"message\":\"t";
    let at = if frame.starts_with(PREFIX) {
        PREFIX.len()
    } else {
        frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len()
    };
    let mut nanos: u64 = 0;
    let mut i = at;
    while i < frame.len() && frame[i].is_ascii_digit() {
        nanos = nanos * 10 + u64::from(frame[i] - b'0');
        i += 1;
    }
    if frame.get(i) != Some(&b'-') {
        return None;
    }
    let mut sender: u32 = 0;
    i += 1;
    while i < frame.len() && frame[i].is_ascii_digit() {
        sender = sender * 10 + u32::from(frame[i] - b'0');
        i += 1;
    }
    Some((sender, nanos))
}

/// A send-message frame whose text carries the send time and the sender's client number, written
/// into `out` (cleared first) without formatting machinery.
pub fn message_text_into(out: &mut Vec<u8>, nanos: u64, sender: u32) {
    out.clear();
    out.extend_from_slice(br#"42["send-message",{"message":"t"#);
    decimal(out, nanos);
    out.push(b'-');
    decimal(out, u64::from(sender));
    out.extend_from_slice(br#" lorem ipsum dolor sit amet"}]"#);
}

/// The `id` of a receive-message frame (the last field both servers write; found from the end).
pub fn message_id(frame: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"id\":";
    // Both servers write `id` last (chatgate may add an offset argument after the payload:
    // connection state recovery); another key order falls back to a scan of the whole frame.
    let tail = &frame[frame.len().saturating_sub(64)..];
    let (text, at) = match tail.windows(KEY.len()).rposition(|w| w == KEY) {
        Some(at) => (tail, at),
        None => (frame, frame.windows(KEY.len()).rposition(|w| w == KEY)?),
    };
    let digits = text[at + KEY.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit());
    let mut id: u64 = 0;
    let mut any = false;
    for d in digits {
        id = id.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(id)
}

/// Appends `n` in decimal, without formatting machinery.
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A `mark-read` frame for message `id`, written into `out` (cleared first).
pub fn mark_read_into(out: &mut Vec<u8>, id: u64) {
    out.clear();
    out.extend_from_slice(br#"42["mark-read",{"message_id":"#);
    decimal(out, id);
    out.extend_from_slice(b"}]");
}

/// A `react-message` frame adding 👍 to message `id`, written into `out` (cleared first).
pub fn reaction_into(out: &mut Vec<u8>, id: u64) {
    out.clear();
    out.extend_from_slice(br#"42["react-message",{"message_id":"#);
    decimal(out, id);
    out.extend_from_slice(",\"emoji\":\"👍\",\"action\":\"add\"}]".as_bytes());
}

/// An `edit-message` frame for message `id` (the sender's own), written into `out` (cleared
/// first).
pub fn edit_into(out: &mut Vec<u8>, id: u64) {
    out.clear();
    out.extend_from_slice(br#"42["edit-message",{"message_id":"#);
    decimal(out, id);
    out.extend_from_slice(br#","message":"edited by the load tool"}]"#);
}

/// `message_text_into` as a new string.
pub fn message_text(nanos: u64, sender: u32) -> String {
    let mut out = Vec::new();
    message_text_into(&mut out, nanos, sender);
    String::from_utf8(out).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_a_delivery() {
        let sent = message_text(123456789, 42);
        let delivered = sent.replace("send-message", "receive-message");
        assert_eq!(sent_at(delivered.as_bytes()), Some((42, 123456789)));
        assert_eq!(
            sent_at(br#"42["receive-message",{"message":"hello"}]"#),
            None
        );
    }

    #[test]
    fn ids_and_extras() {
        let frame = br#"42["receive-message",{"message":"t1-2 x","userid":3,"eventid":4,"id":247522194292752}]"#;
        assert_eq!(message_id(frame), Some(247522194292752));
        assert_eq!(
            message_id(br#"42["receive-message",{"message":"x"}]"#),
            None
        );
        let mut out = Vec::new();
        mark_read_into(&mut out, 17);
        assert_eq!(out, br#"42["mark-read",{"message_id":17}]"#);
        reaction_into(&mut out, 17);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"42["react-message",{"message_id":17,"emoji":"👍","action":"add"}]"#
        );
    }

    #[test]
    fn frame_lengths() {
        assert_eq!(frame_len(&[0x81, 5]), Some((2, 5)));
        assert_eq!(frame_len(&[0x81, 126, 1, 0]), Some((4, 256)));
        assert_eq!(frame_len(&[0x81, 126, 1]), None);
        assert_eq!(frame_len(&[0x81]), None);
    }
}
