//! The `files` scenario: parallel uploads, then parallel downloads of what was uploaded, over plain
//! HTTP/1.1 (one connection per request), with the server's resident memory sampled throughout:
//! a server that streams holds a part or two per transfer, one that buffers holds the files.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats;

/// The body of one upload: a text file of `size` bytes (an accepted type that needs no encoder),
/// different for each upload so nothing can be deduplicated.
fn body(size: usize, n: usize) -> Vec<u8> {
    let line = format!("upload {n}: the quick brown fox jumps over the lazy dog\n");
    line.bytes().cycle().take(size).collect()
}

/// One request on a fresh connection; returns the status and the body's length (the body itself
/// is read and dropped as it arrives).
async fn request(server: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<(u16, u64)> {
    let mut stream = TcpStream::connect(server).await?;
    stream.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(64 * 1024) {
        stream.write_all(chunk).await?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut header = Vec::new();
    let mut got = 0u64;
    let mut status = 0u16;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if status == 0 {
            header.extend_from_slice(&buf[..n]);
            if let Some(end) = header.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&header[..end]);
                status = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                got += (header.len() - end - 4) as u64;
            }
        } else {
            got += n as u64;
        }
    }
    Ok((status, got))
}

/// The `file_id` in an upload's answer.
async fn upload(
    server: SocketAddr,
    eventid: u32,
    userid: u32,
    data: &[u8],
) -> Result<String, String> {
    let head = format!(
        "POST /files?eventid={eventid}&userid={userid}&name=load.txt HTTP/1.1\r\nHost: {server}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    );
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    for chunk in data.chunks(64 * 1024) {
        stream.write_all(chunk).await.map_err(|e| e.to_string())?;
    }
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    if !text.starts_with("HTTP/1.1 201") {
        return Err(format!(
            "upload refused: {}",
            text.lines().next().unwrap_or("")
        ));
    }
    let id = text
        .split("\"file_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("no file_id in the answer")?;
    Ok(id.to_owned())
}

/// Runs `count` transfers, `parallel` at a time, sampling the server's RSS every 20 ms; returns
/// the wall time and the highest RSS seen.
async fn in_parallel<F, Fut, T>(
    pid: Option<&str>,
    count: usize,
    parallel: usize,
    task: F,
) -> Result<(Vec<T>, Duration, Option<u64>), String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + 'static,
    T: 'static,
{
    let started = Instant::now();
    let mut peak = pid.and_then(stats::rss_kib);
    let mut running = tokio::task::JoinSet::new();
    let mut results = Vec::with_capacity(count);
    let mut next = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while next < count || !running.is_empty() {
        while next < count && running.len() < parallel {
            running.spawn_local(task(next));
            next += 1;
        }
        tokio::select! {
            done = running.join_next() => {
                if let Some(done) = done {
                    results.push(done.map_err(|e| e.to_string())??);
                }
            }
            _ = tick.tick() => {
                let now = pid.and_then(stats::rss_kib);
                peak = peak.max(now);
            }
        }
    }
    Ok((results, started.elapsed(), peak))
}

pub async fn run(
    server: SocketAddr,
    pid: Option<&str>,
    eventid: u32,
    userid: u32,
    size: usize,
    count: usize,
    parallel: usize,
) -> Result<serde_json::Value, String> {
    let before = pid.and_then(stats::rss_kib);
    let cpu = stats::CpuWindow::start(pid);
    let (ids, up_time, up_peak) = in_parallel(pid, count, parallel, |n| {
        let data = body(size, n);
        async move { upload(server, eventid, userid, &data).await }
    })
    .await?;
    let up_cpu = cpu.elapsed();
    let cpu = stats::CpuWindow::start(pid);
    let ids = std::rc::Rc::new(ids);
    let (sizes, down_time, down_peak) = in_parallel(pid, count, parallel, |n| {
        let ids = ids.clone();
        async move {
            let head = format!(
                "GET /files/{}?userid={userid} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n",
                ids[n]
            );
            match request(server, &head, b"").await {
                Ok((200, got)) => Ok(got),
                Ok((status, _)) => Err(format!("download answered {status}")),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await?;
    let down_cpu = cpu.elapsed();
    if sizes.iter().any(|&s| s != size as u64) {
        return Err("a download was not the size uploaded".into());
    }
    let mib = (size * count) as f64 / (1024.0 * 1024.0);
    let per_mib = |cpu: Option<Duration>| cpu.map(|c| c.as_secs_f64() * 1000.0 / mib);
    let over = |peak: Option<u64>| match (before, peak) {
        (Some(b), Some(p)) => Some(p.saturating_sub(b)),
        _ => None,
    };
    eprintln!(
        "files: {count} x {size} bytes, {parallel} at a time: upload {:.1} MiB/s, download {:.1} MiB/s; \
         server RSS {} KiB before, peak +{} KiB uploading, +{} KiB downloading",
        mib / up_time.as_secs_f64(),
        mib / down_time.as_secs_f64(),
        before.unwrap_or(0),
        over(up_peak).unwrap_or(0),
        over(down_peak).unwrap_or(0),
    );
    Ok(json!({
        "scenario": "files", "size": size, "count": count, "parallel": parallel,
        "upload_mib_per_sec": mib / up_time.as_secs_f64(),
        "download_mib_per_sec": mib / down_time.as_secs_f64(),
        "rss_before_kib": before,
        "upload_rss_peak_over_kib": over(up_peak),
        "download_rss_peak_over_kib": over(down_peak),
        "upload_server_cpu_ms_per_mib": per_mib(up_cpu),
        "download_server_cpu_ms_per_mib": per_mib(down_cpu),
    }))
}
