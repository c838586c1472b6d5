//! File sharing against a real PostgreSQL and real HTTP: uploads (multipart and raw), every
//! refusal, attachments in messages and history, downloads (ranges, ETag, the headers that keep a
//! file inert), thumbnails, quotas, deletion and expiry, a cross-node case on an S3-compatible
//! store (moto's server), and the official JavaScript client.

mod support;

use support::raw::member;

use std::time::Duration;

use serde_json::{json, Value};
use sha2::Digest;
use support::db::TestDb;
use support::raw::event_payload as payload;
use support::raw::{http, HttpReply, RawWs};

const TRUST: &[&str] = &["--auth", "trust"];

/// A valid PNG of `w` x `h` red pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let row: Vec<u8> = std::iter::once(0u8)
        .chain(std::iter::repeat_n([255u8, 0, 0, 255], w as usize).flatten())
        .collect();
    let raw: Vec<u8> = (0..h).flat_map(|_| row.iter().copied()).collect();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", b"");
    out
}

/// A PNG whose header announces `w` x `h` pixels but which holds no image data (a decompression
/// bomb's header: decoding would allocate w x h x 4 bytes).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&[0; 64]));
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// zlib with stored (uncompressed) blocks: no compressor needed.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i == blocks.len() - 1));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

const BOUNDARY: &str = "----chatgate-test-boundary";

fn multipart(name: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nignored\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(
    addr: std::net::SocketAddr,
    eventid: i32,
    userid: i32,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> HttpReply {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    http(
        addr,
        "POST",
        &format!("/files?eventid={eventid}&userid={userid}"),
        &[("Content-Type", &ct)],
        &multipart(name, content_type, bytes),
    )
    .await
}

fn json_of(reply: &HttpReply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or_else(|_| panic!("JSON body: {}", reply.text()))
}

/// An upload that must be refused with `status`; returns the error text.
async fn refused(reply: HttpReply, status: u16) -> String {
    assert_eq!(reply.status, status, "{}", reply.text());
    json_of(&reply)["error"].as_str().expect("error").to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The gateway (trust mode) with its files in a new temporary directory, and that directory.
async fn with_store(
    db: &TestDb,
    what: &str,
    flags: &[&str],
) -> (support::TestServer, std::path::PathBuf) {
    let dir = support::temp_dir(what);
    let store = format!("dir:{}", dir.display());
    let mut all = vec!["--auth", "trust", "--file-store", &store];
    all.extend_from_slice(flags);
    (support::chat_gateway(&db.url(), &all).await, dir)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The next frame that is not a join/leave announcement.
async fn next(ws: &mut RawWs) -> String {
    loop {
        let frame = ws.recv_text().await.expect("a frame");
        if !frame.starts_with(r#"42["user-"#) {
            return frame;
        }
    }
}

async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    http(addr, "GET", path, headers, b"").await
}

/// Polls `path` until it answers `status` (at most 20 s): for work the server does after
/// answering (thumbnails, deletions) that no client event announces.
async fn until_status(addr: std::net::SocketAddr, path: &str, status: u16) -> HttpReply {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = get(addr, path, &[]).await;
        if reply.status == status {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} stayed {} ({})",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_file_goes_up_into_a_message_and_down_again() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    let addr = server.addr;
    let mut tutor = member(addr, 101, 1, "tutor").await;
    let mut tutee = member(addr, 101, 2, "tutee").await;

    let image = png(640, 480);
    let reply = upload(
        addr,
        101,
        1,
        "../../homework/page 1.png",
        "image/png",
        &image,
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let file = json_of(&reply);
    let id = file["file_id"].as_str().expect("file_id").to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(file["name"], "page 1.png", "a name, never a path");
    assert_eq!(file["size"], image.len());
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["sha256"], sha256_hex(&image));
    let url = format!("/files/{id}");
    assert_eq!(file["url"], url);

    // A photo without a caption.
    tutor
        .send_text(&format!(r#"42["send-message",{{"attachments":["{id}"]}}]"#))
        .await;
    let live = next(&mut tutee).await;
    let got = payload(&live, "receive-message");
    assert_eq!(got["message"], "");
    assert_eq!(
        got["attachments"],
        json!([{"file_id": id, "name": "page 1.png", "size": image.len(),
                "content_type": "image/png", "url": url}])
    );
    let own = next(&mut tutor).await;
    assert_eq!(own, live, "the sender gets the same frame");

    // The other member downloads it: the same bytes, with the headers that keep it inert.
    let down = get(addr, &format!("{url}?userid=2"), &[]).await;
    assert_eq!(down.status, 200);
    assert!(down.body == image, "the same bytes");
    assert_eq!(down.header("content-type"), Some("image/png"));
    assert_eq!(down.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        down.header("content-security-policy"),
        Some("default-src 'none'; sandbox")
    );
    assert!(down
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("inline;")));
    let etag = format!("\"{}\"", sha256_hex(&image));
    assert_eq!(down.header("etag"), Some(etag.as_str()));
    let cached = get(
        addr,
        &format!("{url}?userid=2"),
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    let part = get(addr, &format!("{url}?userid=2"), &[("Range", "bytes=8-15")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, image[8..16]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 8-15/{}", image.len()).as_str())
    );
    let tail = get(addr, &format!("{url}?userid=2"), &[("Range", "bytes=-4")]).await;
    assert_eq!(tail.body, image[image.len() - 4..]);
    let beyond = format!("bytes={}-", image.len());
    let past = get(addr, &format!("{url}?userid=2"), &[("Range", &beyond)]).await;
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{}", image.len()).as_str())
    );

    // Not for others: a user of another chat, an unknown file, no user.
    assert_eq!(get(addr, &format!("{url}?userid=3"), &[]).await.status, 403);
    let unknown = format!("/files/{}?userid=1", "0".repeat(32));
    assert_eq!(get(addr, &unknown, &[]).await.status, 404);
    assert_eq!(
        get(addr, "/files/..%2F..%2Fetc%2Fpasswd?userid=1", &[])
            .await
            .status,
        404
    );
    assert_eq!(get(addr, &url, &[]).await.status, 400);

    // A late joiner's history carries it, byte for byte as delivered.
    let late = member(addr, 101, 2, "tutee").await;
    let history = payload(
        late.last_history.as_deref().expect("history"),
        "chat-history",
    );
    let live_body = live
        .strip_prefix(r#"42["receive-message","#)
        .expect("event");
    let stored = serde_json::to_string(&history["messages"][0]).expect("json");
    // The live frame ends with the offset argument (connection state recovery): `,"<id>"]`.
    let live_payload = &live_body[..live_body.rfind(",\"").expect("an offset")];
    assert_eq!(
        serde_json::from_str::<Value>(&stored).expect("json"),
        serde_json::from_str::<Value>(live_payload).expect("json")
    );
    assert!(late
        .last_history
        .as_deref()
        .is_some_and(|h| h.contains(live_payload)));

    // The thumbnail comes a moment after the upload.
    let thumb = until_status(addr, &format!("{url}/thumbnail?userid=2"), 200).await;
    assert_eq!(thumb.header("content-type"), Some("image/png"));
    assert_eq!(&thumb.body[12..16], b"IHDR");
    let width = u32::from_be_bytes(thumb.body[16..20].try_into().expect("width"));
    let height = u32::from_be_bytes(thumb.body[20..24].try_into().expect("height"));
    assert_eq!((width, height), (320, 240), "the longest side is 320");
}

#[tokio::test]
async fn every_bad_upload_gets_a_clear_error_and_leaves_nothing_behind() {
    let db = TestDb::create().await;
    let (server, dir) = with_store(
        &db,
        "refusals",
        &[
            "--max-file-bytes",
            "100000",
            "--max-image-pixels",
            "1000000",
        ],
    )
    .await;
    let addr = server.addr;
    let image = png(8, 8);

    let e = refused(
        upload(addr, 101, 3, "a.png", "image/png", &image).await,
        403,
    )
    .await;
    assert_eq!(e, "Unauthorized: You are not part of this event");
    let e = refused(
        upload(addr, 999, 1, "a.png", "image/png", &image).await,
        404,
    )
    .await;
    assert_eq!(e, "Event not found");
    let missing = http(addr, "POST", "/files?userid=1", &[], &image).await;
    assert!(refused(missing, 400).await.starts_with("Missing eventid"));
    let nobody = http(addr, "POST", "/files?eventid=101", &[], &image).await;
    assert!(refused(nobody, 400).await.starts_with("Missing userid"));

    // The bytes decide what a file is.
    let e = refused(
        upload(addr, 101, 1, "a.pdf", "application/pdf", &image).await,
        415,
    )
    .await;
    assert!(
        e.contains("content is image/png but it was sent as application/pdf"),
        "{e}"
    );
    let zip = [b"PK\x03\x04\x14\0\0\0\x08\0".as_slice(), &[0u8; 200]].concat();
    let e = refused(
        upload(addr, 101, 1, "bomb.png", "image/png", &zip).await,
        415,
    )
    .await;
    assert!(e.contains("application/zip is not accepted"), "{e}");
    let html = b"<!DOCTYPE html><script>alert(document.cookie)</script>";
    let e = refused(
        upload(addr, 101, 1, "notes.txt", "text/plain", html).await,
        415,
    )
    .await;
    assert!(e.contains("file type text/html is not accepted"), "{e}");
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>";
    refused(
        upload(addr, 101, 1, "a.svg", "image/svg+xml", svg).await,
        415,
    )
    .await;
    let exe = [
        b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff".as_slice(),
        &[0u8; 100],
    ]
    .concat();
    refused(
        upload(addr, 101, 1, "setup.exe", "application/octet-stream", &exe).await,
        415,
    )
    .await;
    let e = refused(
        upload(addr, 101, 1, "empty.txt", "text/plain", b"").await,
        400,
    )
    .await;
    assert!(e.starts_with("Empty file"), "{e}");

    // Too large: announced, or found out as the bytes arrive (no Content-Length to trust).
    let early = announce_only(addr, "/files?eventid=101&userid=1&name=big.txt", 500_000).await;
    assert!(early.starts_with("HTTP/1.1 413"), "{early}");
    assert!(
        early.contains("File too large: at most 100000 bytes"),
        "{early}"
    );
    let big = vec![b'a'; 150_000];
    let chunked = chunked_upload(
        addr,
        "/files?eventid=101&userid=1&name=big.txt",
        "text/plain",
        &big,
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    // A decompression bomb: a small file announcing a huge canvas, never decoded.
    let bomb = png_header_only(50_000, 50_000);
    let e = refused(
        upload(addr, 101, 1, "bomb.png", "image/png", &bomb).await,
        413,
    )
    .await;
    assert!(e.contains("50000x50000 pixels"), "{e}");

    // Malformed bodies.
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let mut truncated = multipart("a.txt", "text/plain", b"hello there");
    truncated.truncate(truncated.len() - 20);
    let reply = http(
        addr,
        "POST",
        "/files?eventid=101&userid=1",
        &[("Content-Type", &ct)],
        &truncated,
    )
    .await;
    assert!(refused(reply, 400).await.starts_with("Upload incomplete"));
    let no_file = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--{BOUNDARY}--\r\n"
    );
    let reply = http(
        addr,
        "POST",
        "/files?eventid=101&userid=1",
        &[("Content-Type", &ct)],
        no_file.as_bytes(),
    )
    .await;
    assert!(refused(reply, 400).await.starts_with("No file in the form"));

    // Nothing of any of these was kept; the server is up, and a good upload still works.
    assert_eq!(files_under(&dir), Vec::<std::path::PathBuf>::new());
    let ok = upload(addr, 101, 1, "notes.txt", "text/plain", "∫ x dx".as_bytes()).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(json_of(&ok)["content_type"], "text/plain");
    assert_eq!(files_under(&dir).len(), 1);
    let refused_count = support::raw::metric(addr, "chatgate_files_refused_total").await;
    assert_eq!(
        refused_count,
        Some(15.0),
        "each refusal above, counted once"
    );
}

/// Sends `body` with chunked transfer encoding (no Content-Length to trust), reading the answer
/// while still sending (the server answers as soon as the cap is passed); returns the answer.
async fn chunked_upload(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rx, mut tx) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let body = body.to_vec();
    let sender = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        for part in body.chunks(16 * 1024) {
            let piece = [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat();
            tx.write_all(&piece).await?;
        }
        tx.write_all(b"0\r\n\r\n").await
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the server closes (or resets) the connection.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(20), rx.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    // The server may close before all is sent: that is the point.
    let _ = sender.await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends only the headers of an upload announcing `length` bytes, and returns the answer.
async fn announce_only(addr: std::net::SocketAddr, path: &str, length: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn stalled_and_cut_off_uploads_end_with_an_error_and_leave_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::create().await;
    let (server, dir) = with_store(&db, "stalls", &["--upload-idle-timeout-ms", "300"]).await;
    let addr = server.addr;

    // Announces 10,000 bytes, sends 100, then nothing: cut off after the idle timeout.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(
            b"POST /files?eventid=101&userid=1&name=a.txt HTTP/1.1\r\nHost: x\r\n\
              Content-Type: text/plain\r\nContent-Length: 10000\r\n\r\n",
        )
        .await
        .expect("write");
    stalled.write_all(&[b'a'; 100]).await.expect("write");
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut answer))
        .await
        .expect("an answer, not a hang")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("Upload stalled: no data for 0 seconds") || text.contains("Upload stalled"),
        "{text}"
    );

    // A Content-Length that lies: the client sends less and closes its side.
    let mut liar = tokio::net::TcpStream::connect(addr).await.expect("connect");
    liar.write_all(
        b"POST /files?eventid=101&userid=1&name=a.txt HTTP/1.1\r\nHost: x\r\n\
          Content-Type: text/plain\r\nContent-Length: 5000\r\n\r\nonly this much",
    )
    .await
    .expect("write");
    liar.shutdown().await.expect("shutdown");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), liar.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("Upload incomplete"), "{text}");

    assert_eq!(
        files_under(&dir),
        Vec::<std::path::PathBuf>::new(),
        "nothing half-written"
    );
    assert_eq!(
        upload(addr, 101, 1, "ok.txt", "text/plain", b"fine")
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn the_daily_quota_holds_for_concurrent_uploads() {
    let db = TestDb::create().await;
    let flags = ["--auth", "trust", "--file-quota-bytes", "5000"];
    let server = support::chat_gateway(&db.url(), &flags).await;
    let addr = server.addr;
    let file = vec![b'q'; 2000];
    let uploads = (0..5).map(|_| upload(addr, 101, 1, "q.txt", "text/plain", &file));
    let replies = futures_util::future::join_all(uploads).await;
    let ok = replies.iter().filter(|r| r.status == 201).count();
    let over: Vec<&HttpReply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok, 2, "5,000 bytes hold two files of 2,000: {replies:?}");
    assert_eq!(over.len(), 3);
    let e = json_of(over[0])["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        e.starts_with("Upload quota exceeded: 5000 bytes per 24 hours"),
        "{e}"
    );
    // Another user's quota is their own.
    assert_eq!(
        upload(addr, 101, 2, "q.txt", "text/plain", &file)
            .await
            .status,
        201
    );
}

/// Sends `send-message` with `attachments` and returns the `chat-error` it gets.
async fn attach_refused(ws: &mut RawWs, attachments: &str) -> String {
    ws.send_text(&format!(
        r#"42["send-message",{{"message":"see attached","attachments":{attachments}}}]"#
    ))
    .await;
    let frame = next(ws).await;
    payload(&frame, "chat-error")["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[tokio::test]
async fn only_your_own_unattached_uploads_to_this_chat_can_be_attached() {
    let db = TestDb::create().await;
    let server =
        support::chat_gateway(&db.url(), &["--auth", "trust", "--max-attachments", "2"]).await;
    let addr = server.addr;
    let mut tutor = member(addr, 101, 1, "tutor").await;
    let mut tutee = member(addr, 101, 2, "tutee").await;
    let id_of = |r: HttpReply| json_of(&r)["file_id"].as_str().expect("id").to_owned();
    let mine = id_of(upload(addr, 101, 1, "a.txt", "text/plain", b"a").await);
    let theirs = id_of(upload(addr, 101, 2, "b.txt", "text/plain", b"b").await);
    let elsewhere = id_of(upload(addr, 103, 1, "c.txt", "text/plain", b"c").await);

    let e = attach_refused(&mut tutor, &format!(r#"["{theirs}"]"#)).await;
    assert_eq!(
        e,
        format!("Attachment refused: file {theirs} was not uploaded to this chat by you")
    );
    let e = attach_refused(&mut tutor, &format!(r#"["{elsewhere}"]"#)).await;
    assert_eq!(
        e,
        format!("Attachment refused: file {elsewhere} was not uploaded to this chat by you")
    );
    let unknown = "f".repeat(32);
    let e = attach_refused(&mut tutor, &format!(r#"["{unknown}"]"#)).await;
    assert_eq!(
        e,
        format!("Attachment refused: file {unknown} was not found")
    );
    let bad =
        "Invalid attachments: must be a list of at most 2 different file ids from POST /files";
    for attachments in [
        format!(r#""{mine}""#),
        format!(r#"["{mine}","{mine}"]"#),
        format!(r#"["{mine}","{theirs}","{elsewhere}"]"#),
        r#"["../../etc/passwd"]"#.to_owned(),
        "[1]".to_owned(),
        "{}".to_owned(),
    ] {
        assert_eq!(
            attach_refused(&mut tutor, &attachments).await,
            bad,
            "{attachments}"
        );
    }
    // A refused file is not taken: the same file goes with the next message.
    tutor
        .send_text(&format!(
            r#"42["send-message",{{"message":"ok","attachments":["{mine}"]}}]"#
        ))
        .await;
    let got = payload(&next(&mut tutee).await, "receive-message");
    assert_eq!(got["message"], "ok", "nothing refused reached the tutee");
    assert_eq!(got["attachments"][0]["file_id"], mine.as_str());
    next(&mut tutor).await;
    let e = attach_refused(&mut tutor, &format!(r#"["{mine}"]"#)).await;
    assert_eq!(
        e,
        format!("Attachment refused: file {mine} is already attached to a message")
    );
}

#[tokio::test]
async fn deleted_messages_take_their_files_and_unattached_files_expire() {
    let db = TestDb::create().await;
    let (server, dir) = with_store(&db, "expiry", &["--unattached-file-grace-secs", "1"]).await;
    let addr = server.addr;
    let mut tutor = member(addr, 101, 1, "tutor").await;
    let kept = json_of(&upload(addr, 101, 1, "kept.txt", "text/plain", b"kept").await)["file_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let forgotten = json_of(&upload(addr, 101, 1, "left.txt", "text/plain", b"left").await)
        ["file_id"]
        .as_str()
        .expect("id")
        .to_owned();
    tutor
        .send_text(&format!(
            r#"42["send-message",{{"attachments":["{kept}"]}}]"#
        ))
        .await;
    let sent = payload(&next(&mut tutor).await, "receive-message");
    // The file nobody attached is deleted after the grace period; the attached one stays.
    until_status(addr, &format!("/files/{forgotten}?userid=1"), 404).await;
    assert_eq!(
        get(addr, &format!("/files/{kept}?userid=1"), &[])
            .await
            .status,
        200
    );
    assert_eq!(files_under(&dir).len(), 1, "only the attached file's bytes");

    tutor
        .send_text(&format!(
            r#"42["delete-message",{{"message_id":{}}}]"#,
            sent["id"]
        ))
        .await;
    let deleted = payload(&next(&mut tutor).await, "message-deleted");
    assert_eq!(deleted["message_id"], sent["id"]);
    until_status(addr, &format!("/files/{kept}?userid=1"), 404).await;
    assert_eq!(files_under(&dir), Vec::<std::path::PathBuf>::new());
    // The tombstone in history carries no attachments.
    let late = member(addr, 101, 2, "tutee").await;
    let history = payload(
        late.last_history.as_deref().expect("history"),
        "chat-history",
    );
    assert!(
        history["messages"][0].get("attachments").is_none(),
        "{history}"
    );
}

fn token(secret: &str, sub: i32) -> String {
    support::token(secret, json!(sub), 300)
}

#[tokio::test]
async fn files_take_the_sockets_authentication() {
    let db = TestDb::create().await;
    let server =
        support::chat_gateway(&db.url(), &["--auth", "jwt", "--jwt-secret", "s3cret"]).await;
    let addr = server.addr;
    let body = b"shared notes";
    let post = |headers: Vec<(String, String)>| async move {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // A userid in the query means nothing with JWT: the token says who it is.
        http(
            addr,
            "POST",
            "/files?eventid=101&userid=1&name=n.txt",
            &headers,
            body,
        )
        .await
    };
    let plain = ("Content-Type".to_owned(), "text/plain".to_owned());
    let e = refused(post(vec![plain.clone()]).await, 401).await;
    assert_eq!(
        e,
        "Authentication required: send Authorization: Bearer <token>"
    );
    let forged = (
        "Authorization".to_owned(),
        format!("Bearer {}", token("wrong", 1)),
    );
    let e = refused(post(vec![plain.clone(), forged]).await, 401).await;
    assert_eq!(e, "Authentication failed: invalid token");
    let outsider = (
        "Authorization".to_owned(),
        format!("Bearer {}", token("s3cret", 3)),
    );
    refused(post(vec![plain.clone(), outsider.clone()]).await, 403).await;
    let tutor = (
        "Authorization".to_owned(),
        format!("Bearer {}", token("s3cret", 1)),
    );
    let ok = post(vec![plain, tutor]).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    let url = json_of(&ok)["url"].as_str().expect("url").to_owned();
    let tutee = format!("Bearer {}", token("s3cret", 2));
    let down = get(addr, &url, &[("Authorization", &tutee)]).await;
    assert_eq!(down.body, body);
    assert!(down
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment;")));
    let outsider = format!("Bearer {}", token("s3cret", 3));
    assert_eq!(
        get(addr, &url, &[("Authorization", &outsider)])
            .await
            .status,
        403
    );
    assert_eq!(get(addr, &url, &[]).await.status, 401);
}

#[tokio::test]
async fn the_official_client_shares_a_file() {
    let db = TestDb::create().await;
    let server = support::chat_gateway(&db.url(), TRUST).await;
    support::node("chat.mjs", &[&server.url(), "attachments"]).await;
}

#[tokio::test]
async fn files_cross_nodes_on_an_s3_compatible_store() {
    let s3 = support::s3_server::S3Server::start().await;
    let redis = support::redis_server::RedisServer::start().await;
    let db = TestDb::create().await;
    let db_url = db.url();
    let redis_url = redis.url();
    let store = format!("s3://{}", s3.bucket);
    let endpoint = s3.endpoint();
    let node = |id: &'static str| {
        let args: Vec<String> = [
            "--database-url",
            &db_url,
            "--auth",
            "trust",
            "--cluster",
            &redis_url,
            "--node-id",
            id,
            "--file-store",
            &store,
            "--s3-endpoint",
            &endpoint,
            "--s3-access-key-id",
            support::s3_server::KEY_ID,
            "--s3-secret-access-key",
            support::s3_server::SECRET,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::binary::start(&args).await
        }
    };
    let a = node("0").await;
    let b = node("1").await;
    let mut tutor = member(a.addr(), 101, 1, "tutor").await;
    let mut tutee = member(b.addr(), 101, 2, "tutee").await;

    // Larger than one S3 part (5 MiB), so the multipart upload has several parts.
    let pdf: Vec<u8> = [b"%PDF-1.7\n".as_slice(), &vec![b'x'; 6 * 1024 * 1024]].concat();
    let reply = upload(a.addr(), 101, 1, "worksheet.pdf", "application/pdf", &pdf).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = json_of(&reply)["file_id"].as_str().expect("id").to_owned();
    tutor
        .send_text(&format!(
            r#"42["send-message",{{"message":"worksheet","attachments":["{id}"]}}]"#
        ))
        .await;
    let got = loop {
        let frame = next(&mut tutee).await;
        if frame.starts_with(r#"42["receive-message""#) {
            break payload(&frame, "receive-message");
        }
    };
    assert_eq!(got["attachments"][0]["content_type"], "application/pdf");
    // Uploaded through node A, downloaded through node B.
    let down = get(b.addr(), &format!("/files/{id}?userid=2"), &[]).await;
    assert_eq!(down.status, 200);
    assert_eq!(down.body.len(), pdf.len());
    assert!(down.body == pdf, "the same bytes through the other node");
    assert!(down
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment;")));
    assert_eq!(s3.keys().await, vec![format!("files/{id}")]);

    // An upload cut off past the cap (25 MiB), after several parts went to the store, leaves no
    // object and no unfinished multipart upload in the bucket.
    let huge = [pdf.as_slice(), &pdf, &pdf, &pdf, &pdf].concat();
    let big = chunked_upload(
        a.addr(),
        "/files?eventid=101&userid=1&name=big.pdf",
        "application/pdf",
        &huge,
    )
    .await;
    assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    assert_eq!(s3.keys().await, vec![format!("files/{id}")]);
    assert_eq!(s3.unfinished_uploads().await, 0);

    // Deleted on node A: gone from the shared store, for node B too.
    let sent_id = got["id"].as_i64().expect("id");
    tutor
        .send_text(&format!(
            r#"42["delete-message",{{"message_id":{sent_id}}}]"#
        ))
        .await;
    until_status(b.addr(), &format!("/files/{id}?userid=1"), 404).await;
    assert!(s3.keys().await.is_empty(), "{:?}", s3.keys().await);
}

#[tokio::test]
async fn a_web_app_on_another_origin_uploads_with_cors() {
    let db = TestDb::create().await;
    let flags = ["--auth", "trust", "--cors-origin", "https://app.example"];
    let server = support::chat_gateway(&db.url(), &flags).await;
    let addr = server.addr;
    let preflight = http(
        addr,
        "OPTIONS",
        "/files?eventid=101&userid=1",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("authorization")
    );
    let up = http(
        addr,
        "POST",
        "/files?eventid=101&userid=1&name=a.txt",
        &[
            ("Origin", "https://app.example"),
            ("Content-Type", "text/plain"),
        ],
        b"from the web app",
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.text());
    assert_eq!(
        up.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let foreign = http(
        addr,
        "POST",
        "/files?eventid=101&userid=1&name=a.txt",
        &[
            ("Origin", "https://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        b"from elsewhere",
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    assert!(foreign.header("access-control-allow-origin").is_none());
}
