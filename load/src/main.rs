//! chatgate-load: drives a chat server (chatgate, or the Node reference in benches/node-ref) over
//! WebSocket with the chat protocol (docs/PROTOCOL.md), on loopback only, bounded in connections
//! and time.
//!
//! Scenarios:
//! - `fanout`: R rooms of a tutor and a tutee, both sending; either a fixed total rate of deliveries
//!   or saturation (each client keeps N of its own messages in flight). Reports deliveries/s, latency
//!   p50/p99/max from the send time in each message, lost messages, and the server's CPU per delivery.
//! - `idle`: N connections join rooms and stay; reports joins/s and server RSS per connection.
//! - `churn`: connect, join, send, receive, disconnect, in a loop; reports sessions/s.
//!
//! Rooms map to events `base + i`, with tutor `2*(base+i) - 1` and tutee `2*(base+i)`; the compare
//! script seeds the database that way. Each run prints a summary and one JSON line (`RESULT {...}`).

#![forbid(unsafe_code)]

mod files;
mod stats;
mod wire;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::time::Instant;
use wire::Conn;

#[derive(Parser, Debug)]
#[command(
    name = "chatgate-load",
    about = "Loopback load for chat servers speaking the tutoring chat protocol (docs/PROTOCOL.md)"
)]
struct Cli {
    /// Server address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:6969")]
    server: SocketAddr,
    /// The server's process id, to read its CPU time and memory from /proc (several, comma-separated,
    /// are summed: the nodes of a cluster).
    #[arg(long)]
    server_pid: Option<String>,
    /// Another node of the same cluster: tutees connect there, tutors to `--server`, so every
    /// message crosses between nodes. Must be a loopback address.
    #[arg(long)]
    peer: Option<SocketAddr>,
    /// WebSocket path and query.
    #[arg(long, default_value = "/socket.io/?EIO=4&transport=websocket")]
    path: String,
    /// Local addresses to connect from, round-robin (e.g. 127.0.0.1,127.0.0.2).
    #[arg(long, value_delimiter = ',')]
    source: Vec<IpAddr>,
    /// First event id.
    #[arg(long, default_value_t = 1)]
    eventid_base: u32,
    /// A join is done when `chat-history` has arrived too, not only `chat-joined` (for servers
    /// that send the history after a join: chatgate does, the yardsticks do not). A `chat-error`
    /// instead of the history (the page could not be read) fails the run.
    #[arg(long)]
    await_history: bool,
    /// Label for the JSON result (e.g. the server's name).
    #[arg(long, default_value = "server")]
    label: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug, Clone)]
enum Scenario {
    Fanout {
        #[arg(long, default_value_t = 1000)]
        rooms: u32,
        /// Total deliveries per second to aim for; 0 = as fast as the server allows.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// At saturation: messages each client keeps in flight.
        #[arg(long, default_value_t = 8)]
        inflight: u32,
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Read receipts: every N ms each client sends `mark-read` for the newest message it got
        /// from the other member (if it got a new one). 0: never.
        #[arg(long, default_value_t = 0)]
        mark_read_ms: u64,
        /// Reactions: every N ms each client reacts (`react-message`, add 👍) to the newest message
        /// it got from the other member (if it got a new one). 0: never.
        #[arg(long, default_value_t = 0)]
        react_ms: u64,
        /// Edits: every N ms each client edits (`edit-message`) the newest message it sent (if it
        /// sent a new one). 0: never.
        #[arg(long, default_value_t = 0)]
        edit_ms: u64,
    },
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: u32,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 256)]
        concurrency: u32,
        /// Seconds to hold the connections before reading the server's memory.
        #[arg(long, default_value_t = 3.0)]
        hold: f64,
    },
    Churn {
        #[arg(long, default_value_t = 64)]
        concurrency: u32,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Parallel uploads to `POST /files` (trust mode), then parallel downloads of them, with the
    /// server's peak memory.
    Files {
        /// Bytes per file.
        #[arg(long, default_value_t = 4 * 1024 * 1024)]
        size: usize,
        /// Files uploaded (and downloaded).
        #[arg(long, default_value_t = 64)]
        count: usize,
        /// Transfers in progress at once.
        #[arg(long, default_value_t = 16)]
        parallel: usize,
        /// The uploader (a member of the event `--eventid-base`).
        #[arg(long, default_value_t = 1)]
        userid: u32,
    },
}

/// How many connections one process may open, and how long anything may take beyond the scenario's
/// own length: the tool stops by itself whatever the server does.
const MAX_CONNECTIONS: u32 = 19_900;
const MARGIN_SECONDS: f64 = 300.0;
/// The longest scenario accepted (a soak of two hours).
const MAX_SCENARIO_SECONDS: f64 = 7200.0;

struct Target {
    server: SocketAddr,
    peer: Option<SocketAddr>,
    path: String,
    sources: Vec<IpAddr>,
    /// Next source address to use: connections rotate over all of them, so a churn that leaves
    /// thousands of ports in TIME_WAIT spreads them over several addresses.
    next_source: Cell<usize>,
    base: u32,
    await_history: bool,
}

impl Target {
    /// Connects client `n` (odd clients, the tutees, to the peer node if there is one).
    async fn connect(&self, n: u32) -> std::io::Result<Conn> {
        let source = (!self.sources.is_empty()).then(|| {
            let i = self.next_source.get();
            self.next_source.set(i.wrapping_add(1));
            self.sources[i % self.sources.len()]
        });
        let server = match self.peer {
            Some(peer) if !n.is_multiple_of(2) => peer,
            _ => self.server,
        };
        let mut conn = Conn::connect(server, source, &self.path).await?;
        conn.socketio_connect().await?;
        Ok(conn)
    }

    /// Client `n` joins room `n / 2`: even clients as tutor, odd as tutee.
    async fn join(&self, conn: &mut Conn, n: u32) -> std::io::Result<()> {
        let eventid = self.base + n / 2;
        let (userid, role) = if n.is_multiple_of(2) {
            (2 * eventid - 1, "tutor")
        } else {
            (2 * eventid, "tutee")
        };
        conn.join(eventid, userid, role, self.await_history).await
    }
}

fn main() {
    let cli = Cli::parse();
    if !cli.server.ip().is_loopback()
        || cli.peer.is_some_and(|p| !p.ip().is_loopback())
        || cli.source.iter().any(|s| !s.is_loopback())
    {
        eprintln!("chatgate-load sends load to loopback addresses only");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    let length = match &cli.scenario {
        Scenario::Fanout {
            warmup, duration, ..
        } => warmup + duration,
        Scenario::Idle { hold, .. } => *hold,
        Scenario::Churn { duration, .. } => *duration,
        Scenario::Files { .. } => 0.0,
    };
    if !(0.0..=MAX_SCENARIO_SECONDS).contains(&length) {
        eprintln!("chatgate-load: scenarios last at most {MAX_SCENARIO_SECONDS} s");
        std::process::exit(2);
    }
    let result = local.block_on(&rt, async move {
        let limit = Duration::from_secs_f64(length + MARGIN_SECONDS);
        match tokio::time::timeout(limit, run(cli)).await {
            Ok(r) => r,
            Err(_) => Err("the run exceeded its time limit".into()),
        }
    });
    if let Err(e) = result {
        eprintln!("chatgate-load: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let target = Rc::new(Target {
        server: cli.server,
        peer: cli.peer,
        path: cli.path.clone(),
        sources: cli.source.clone(),
        next_source: Cell::new(0),
        base: cli.eventid_base,
        await_history: cli.await_history,
    });
    let pid = cli.server_pid.as_deref();
    let result = match cli.scenario.clone() {
        Scenario::Fanout {
            rooms,
            rate,
            inflight,
            warmup,
            duration,
            mark_read_ms,
            react_ms,
            edit_ms,
        } => {
            let every = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
            let extras = Extras {
                mark_read: every(mark_read_ms),
                react: every(react_ms),
                edit: every(edit_ms),
            };
            fanout(target, pid, rooms, rate, inflight, warmup, duration, extras).await?
        }
        Scenario::Idle {
            connections,
            concurrency,
            hold,
        } => idle(target, pid, connections, concurrency, hold).await?,
        Scenario::Churn {
            concurrency,
            duration,
        } => churn(target, pid, concurrency, duration).await?,
        Scenario::Files {
            size,
            count,
            parallel,
            userid,
        } => {
            files::run(
                cli.server,
                pid,
                cli.eventid_base,
                userid,
                size,
                count,
                parallel,
            )
            .await?
        }
    };
    let mut result = result;
    result["label"] = json!(cli.label);
    println!("RESULT {result}");
    Ok(())
}

/// Connects and joins clients `0..n`, at most `concurrency` handshakes at a time.
async fn connect_all(target: &Rc<Target>, n: u32, concurrency: u32) -> Result<Vec<Conn>, String> {
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    let mut next = 0u32;
    let mut running = tokio::task::JoinSet::new();
    while next < n || !running.is_empty() {
        while next < n && (running.len() as u32) < concurrency {
            let (t, i) = (target.clone(), next);
            running.spawn_local(async move {
                let mut c = t.connect(i).await?;
                t.join(&mut c, i).await?;
                Ok::<_, std::io::Error>((i, c))
            });
            next += 1;
        }
        match running.join_next().await {
            Some(Ok(Ok((i, c)))) => conns[i as usize] = Some(c),
            Some(Ok(Err(e))) => return Err(format!("connect/join failed: {e}")),
            Some(Err(e)) => return Err(format!("task failed: {e}")),
            None => {}
        }
    }
    Ok(conns.into_iter().flatten().collect())
}

#[derive(Default)]
struct Shared {
    /// Window bounds in nanoseconds since `epoch`; messages sent inside count.
    window_start: Cell<u64>,
    window_end: Cell<u64>,
    sending: Cell<bool>,
    sent_in_window: Cell<u64>,
    delivered_in_window: Cell<u64>,
    /// Deliveries of messages sent inside the window (for loss), whenever they arrive.
    delivered_of_window: Cell<u64>,
    latency: RefCell<Option<Histogram<u64>>>,
    /// `mark-read`s, `react-message`s and `edit-message`s sent.
    marks: Cell<u64>,
    reactions: Cell<u64>,
    edits: Cell<u64>,
    /// Every message sent, in the window or not (what the server's history must hold).
    sent_total: Cell<u64>,
}

/// What fan-out clients do besides chatting: mark what they read, react to some messages, edit
/// some of their own.
#[derive(Debug, Clone, Copy, Default)]
struct Extras {
    mark_read: Option<Duration>,
    react: Option<Duration>,
    edit: Option<Duration>,
}

#[allow(clippy::too_many_arguments)]
async fn fanout(
    target: Rc<Target>,
    pid: Option<&str>,
    rooms: u32,
    rate: u64,
    inflight: u32,
    warmup: f64,
    duration: f64,
    extras: Extras,
) -> Result<serde_json::Value, String> {
    let clients = rooms * 2;
    if clients > MAX_CONNECTIONS {
        return Err(format!("at most {MAX_CONNECTIONS} connections per process"));
    }
    let conns = connect_all(&target, clients, 256).await?;
    let epoch = Instant::now();
    let shared = Rc::new(Shared {
        latency: RefCell::new(Some(
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        )),
        sending: Cell::new(true),
        window_start: Cell::new(u64::MAX),
        window_end: Cell::new(u64::MAX),
        ..Shared::default()
    });
    // Fixed rate: every client sends one message per `period`; each message is delivered twice.
    let period =
        (rate > 0).then(|| Duration::from_secs_f64(2.0 * f64::from(clients) / rate as f64));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, conn) in conns.into_iter().enumerate() {
        let shared = shared.clone();
        let phase = period.map(|p| p.mul_f64((n as f64 * 0.618_034) % 1.0));
        tasks.spawn_local(client_loop(
            conn, n as u32, shared, epoch, period, phase, inflight, extras,
        ));
    }
    let since = |d: f64| epoch + Duration::from_secs_f64(d);
    tokio::time::sleep_until(since(warmup)).await;
    shared.window_start.set(epoch.elapsed().as_nanos() as u64);
    let server_cpu = stats::CpuWindow::start(pid);
    let own_cpu = stats::CpuWindow::start(Some("self"));
    let started = Instant::now();
    tokio::time::sleep_until(since(warmup + duration)).await;
    let elapsed = started.elapsed().as_secs_f64();
    shared.window_end.set(epoch.elapsed().as_nanos() as u64);
    let delivered = shared.delivered_in_window.get();
    let server_cpu = server_cpu.elapsed();
    let own_cpu = own_cpu.elapsed();
    // Stop sending; give in-flight messages time to arrive before counting losses.
    shared.sending.set(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tasks.abort_all();
    let sent = shared.sent_in_window.get();
    let lost = (sent * 2).saturating_sub(shared.delivered_of_window.get());
    let hist = shared.latency.borrow_mut().take().expect("histogram");
    let per_sec = delivered as f64 / elapsed;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let cpu_us = server_cpu.map(|c| c.as_secs_f64() * 1e6 / delivered.max(1) as f64);
    let server_core = server_cpu.map(|c| c.as_secs_f64() / elapsed);
    let tool_core = own_cpu.map(|c| c.as_secs_f64() / elapsed);
    eprintln!(
        "fanout: {rooms} rooms, {} deliveries/s, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs, lost {lost} of {}, server {} µs/delivery ({} of a core), load tool {} of a core",
        per_sec.round(),
        us(0.5),
        us(0.99),
        hist.max() as f64 / 1000.0,
        sent * 2,
        cpu_us.map_or("?".into(), |v| format!("{v:.2}")),
        server_core.map_or("?".into(), |v| format!("{:.0}%", v * 100.0)),
        tool_core.map_or("?".into(), |v| format!("{:.0}%", v * 100.0)),
    );
    Ok(json!({
        "scenario": "fanout", "rooms": rooms, "rate": rate, "inflight": inflight,
        "deliveries_per_sec": per_sec, "p50_us": us(0.5), "p99_us": us(0.99), "max_us": hist.max() as f64 / 1000.0,
        "sent": sent, "lost": lost, "server_cpu_us_per_delivery": cpu_us,
        "server_core_share": server_core, "tool_core_share": tool_core,
        "mark_read_ms": extras.mark_read.map(|d| d.as_millis() as u64),
        "react_ms": extras.react.map(|d| d.as_millis() as u64),
        "marks_sent": shared.marks.get(), "reactions_sent": shared.reactions.get(),
        "edit_ms": extras.edit.map(|d| d.as_millis() as u64), "edits_sent": shared.edits.get(),
        "sent_total": shared.sent_total.get(),
    }))
}

#[allow(clippy::too_many_arguments)]
async fn client_loop(
    mut conn: Conn,
    me: u32,
    shared: Rc<Shared>,
    epoch: Instant,
    period: Option<Duration>,
    phase: Option<Duration>,
    inflight: u32,
    extras: Extras,
) {
    // The newest id got from the other member, and the last ones marked read and reacted to; the
    // newest of this client's own messages, and the last one edited.
    let (mut newest, mut marked, mut reacted) = (0u64, 0u64, 0u64);
    let (mut mine, mut edited) = (0u64, 0u64);
    let mut extra = Vec::with_capacity(96);
    let every = |p: Duration| {
        let start = Instant::now() + p.mul_f64((f64::from(me) * 0.618_034) % 1.0);
        let mut i = tokio::time::interval_at(start, p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    };
    let mut marker = extras.mark_read.map(every);
    let mut reactor = extras.react.map(every);
    let mut editor = extras.edit.map(every);
    let now_ns = || epoch.elapsed().as_nanos() as u64;
    let mut text = Vec::with_capacity(96);
    let mut send = |conn: &mut Conn, shared: &Shared| {
        if !shared.sending.get() {
            return;
        }
        let t = now_ns();
        shared.sent_total.set(shared.sent_total.get() + 1);
        if t >= shared.window_start.get() && t < shared.window_end.get() {
            shared.sent_in_window.set(shared.sent_in_window.get() + 1);
        }
        wire::message_text_into(&mut text, t, me);
        conn.queue_text(&text);
    };
    let mut ticker = period.map(|p| {
        let mut i = tokio::time::interval_at(Instant::now() + phase.unwrap_or_default(), p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    if ticker.is_none() {
        for _ in 0..inflight {
            send(&mut conn, &shared);
        }
        if conn.flush().await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            frame = conn.next_text() => {
                let Ok(frame) = frame else { return };
                if let Some((sender, sent)) = wire::sent_at(&frame) {
                    let now = now_ns();
                    let (start, end) = (shared.window_start.get(), shared.window_end.get());
                    if now >= start && now < end {
                        shared.delivered_in_window.set(shared.delivered_in_window.get() + 1);
                    }
                    if sent >= start && sent < end {
                        shared.delivered_of_window.set(shared.delivered_of_window.get() + 1);
                        if let Some(h) = shared.latency.borrow_mut().as_mut() {
                            let _ = h.record((now - sent).max(1));
                        }
                    }
                    if ticker.is_none() && sender == me {
                        send(&mut conn, &shared);
                    }
                    if sender != me && (marker.is_some() || reactor.is_some()) {
                        if let Some(id) = wire::message_id(&frame) {
                            newest = newest.max(id);
                        }
                    }
                    if sender == me && editor.is_some() {
                        if let Some(id) = wire::message_id(&frame) {
                            mine = mine.max(id);
                        }
                    }
                }
                // Write once per batch of frames that arrived together.
                if !conn.has_buffered_frame() && conn.flush().await.is_err() {
                    return;
                }
            }
            _ = async { marker.as_mut().expect("guarded").tick().await }, if marker.is_some() => {
                if newest > marked && shared.sending.get() {
                    marked = newest;
                    wire::mark_read_into(&mut extra, newest);
                    if !send_extra(&mut conn, &extra, &shared.marks).await {
                        return;
                    }
                }
            }
            _ = async { reactor.as_mut().expect("guarded").tick().await }, if reactor.is_some() => {
                if newest > reacted && shared.sending.get() {
                    reacted = newest;
                    wire::reaction_into(&mut extra, newest);
                    if !send_extra(&mut conn, &extra, &shared.reactions).await {
                        return;
                    }
                }
            }
            _ = async { editor.as_mut().expect("guarded").tick().await }, if editor.is_some() => {
                if mine > edited && shared.sending.get() {
                    edited = mine;
                    wire::edit_into(&mut extra, mine);
                    if !send_extra(&mut conn, &extra, &shared.edits).await {
                        return;
                    }
                }
            }
            _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => {
                send(&mut conn, &shared);
                if conn.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends one frame besides the chat (a mark or a reaction), counting it; false once the connection
/// is gone.
async fn send_extra(conn: &mut Conn, frame: &[u8], count: &Cell<u64>) -> bool {
    conn.queue_text(frame);
    count.set(count.get() + 1);
    conn.flush().await.is_ok()
}

async fn idle(
    target: Rc<Target>,
    pid: Option<&str>,
    connections: u32,
    concurrency: u32,
    hold: f64,
) -> Result<serde_json::Value, String> {
    if connections > MAX_CONNECTIONS {
        return Err(format!("at most {MAX_CONNECTIONS} connections per process"));
    }
    let before = pid.and_then(stats::rss_kib);
    let started = Instant::now();
    let conns = connect_all(&target, connections, concurrency).await?;
    let join_secs = started.elapsed().as_secs_f64();
    // Keep every connection answering pings while we wait.
    let mut holders = tokio::task::JoinSet::new();
    for mut c in conns {
        holders.spawn_local(async move { while c.next_text().await.is_ok() {} });
    }
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    let after = pid.and_then(stats::rss_kib);
    holders.abort_all();
    let per_conn = match (before, after) {
        (Some(b), Some(a)) => Some((a.saturating_sub(b)) as f64 / f64::from(connections)),
        _ => None,
    };
    let joins_per_sec = f64::from(connections) / join_secs;
    eprintln!(
        "idle: {connections} joined in {join_secs:.2} s ({:.0} joins/s); server RSS {} -> {} KiB, {} KiB per connection",
        joins_per_sec,
        before.map_or("?".into(), |v| v.to_string()),
        after.map_or("?".into(), |v| v.to_string()),
        per_conn.map_or("?".into(), |v| format!("{v:.2}")),
    );
    Ok(json!({
        "scenario": "idle", "connections": connections, "joins_per_sec": joins_per_sec,
        "rss_before_kib": before, "rss_after_kib": after, "rss_per_connection_kib": per_conn,
    }))
}

async fn churn(
    target: Rc<Target>,
    pid: Option<&str>,
    concurrency: u32,
    duration: f64,
) -> Result<serde_json::Value, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(duration);
    let done = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let cpu = stats::CpuWindow::start(pid);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (target, done, failed) = (target.clone(), done.clone(), failed.clone());
        workers.spawn_local(async move {
            // Worker w uses room w (as tutor), so sessions of different workers never share a room.
            let n = 2 * w;
            while Instant::now() < deadline {
                let session = async {
                    let mut c = target.connect(n).await?;
                    target.join(&mut c, n).await?;
                    c.send_text(wire::message_text(0, n).as_bytes()).await?;
                    loop {
                        let f = c.next_text().await?;
                        if wire::sent_at(&f).is_some_and(|(s, _)| s == n) {
                            break;
                        }
                    }
                    c.close().await;
                    Ok::<_, std::io::Error>(())
                };
                match session.await {
                    Ok(()) => done.set(done.get() + 1),
                    Err(_) => failed.set(failed.get() + 1),
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    let rate = done.get() as f64 / secs;
    let cpu_ms = cpu
        .elapsed()
        .map(|c| c.as_secs_f64() * 1e3 / done.get().max(1) as f64);
    eprintln!(
        "churn: {} sessions in {secs:.1} s ({rate:.0}/s), {} failed, server {} ms CPU per session",
        done.get(),
        failed.get(),
        cpu_ms.map_or("?".into(), |v| format!("{v:.3}"))
    );
    Ok(json!({
        "scenario": "churn", "concurrency": concurrency, "sessions_per_sec": rate,
        "failed": failed.get(), "server_cpu_ms_per_session": cpu_ms,
    }))
}
