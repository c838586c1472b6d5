//! Operator routes: `GET /health` (the process is up), `GET /ready` (it can serve joins: the
//! directory answers and the gateway is not shutting down), for load balancers and orchestrators;
//! and `GET /metrics`, Prometheus text.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use std::fmt::Write as _;

use crate::chat::metrics::METRICS;
use crate::cluster::{Cluster, DropReason};
use crate::directory::{Directory, LatencyHistogram, LATENCY_BUCKETS_MS};
use crate::engine::Engine;
use crate::history::History;
use crate::http;
use crate::server::{Endpoint, ResponseFuture};
use crate::socketio::SocketIo;

pub struct Admin {
    directory: Arc<dyn Directory>,
    history: Arc<History>,
    cluster: Option<Arc<Cluster>>,
    shutting_down: Arc<AtomicBool>,
    engine: Arc<Engine<SocketIo>>,
    files: Option<Arc<crate::files::Files>>,
    notify: Option<Arc<crate::notify::Notifier>>,
}

/// Writes one Prometheus histogram of durations.
fn histogram(out: &mut String, name: &str, help: &str, latency: &LatencyHistogram) {
    let (cumulative, sum) = latency.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(&cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", bound / 1000.0);
    }
    let total = cumulative.last().copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
}

impl Admin {
    pub fn new(
        directory: Arc<dyn Directory>,
        history: Arc<History>,
        cluster: Option<Arc<Cluster>>,
        shutting_down: Arc<AtomicBool>,
        engine: Arc<Engine<SocketIo>>,
        files: Option<Arc<crate::files::Files>>,
        notify: Option<Arc<crate::notify::Notifier>>,
    ) -> Admin {
        Admin {
            directory,
            history,
            cluster,
            shutting_down,
            engine,
            files,
            notify,
        }
    }

    /// The Prometheus text exposition of every gauge and counter.
    fn metrics(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let label = |k: &str, v: &str| {
            format!(
                "{{{k}=\"{}\"}}",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            )
        };
        let stats = self.engine.stats();
        family(
            "chatgate_connections",
            "gauge",
            "Open sessions by transport.",
            &[
                (label("transport", "polling"), stats.polling as f64),
                (label("transport", "websocket"), stats.websocket as f64),
            ],
        );
        let rooms = self.engine.handler().get("/").map_or(0, |n| n.rooms.len());
        family(
            "chatgate_rooms",
            "gauge",
            "Chat rooms with at least one member.",
            &[(String::new(), rooms as f64)],
        );
        family(
            "chatgate_outbound_queued",
            "gauge",
            "Frames waiting in all outbound queues.",
            &[(String::new(), stats.queued as f64)],
        );
        family(
            "chatgate_outbound_queued_max",
            "gauge",
            "Frames waiting in the longest outbound queue.",
            &[(String::new(), stats.queued_max as f64)],
        );
        let closed: Vec<_> = stats
            .closed
            .iter()
            .map(|(r, n)| (label("reason", r), *n as f64))
            .collect();
        family(
            "chatgate_sessions_closed_total",
            "counter",
            "Sessions ended, by reason (slow consumer drops included).",
            &closed,
        );
        family(
            "chatgate_handshakes_refused_total",
            "counter",
            "Handshakes refused by a connection limit.",
            &[(String::new(), stats.refused as f64)],
        );
        let [events_in, events_out, errors] = METRICS.snapshot();
        let to_samples = |key: &str, v: &[(&str, u64)]| {
            v.iter()
                .map(|(n, c)| (label(key, n), *c as f64))
                .collect::<Vec<_>>()
        };
        family(
            "chatgate_events_in_total",
            "counter",
            "Chat events received, by name.",
            &to_samples("event", &events_in),
        );
        family(
            "chatgate_events_out_total",
            "counter",
            "Chat events sent, by name, counted per recipient.",
            &to_samples("event", &events_out),
        );
        family(
            "chatgate_chat_errors_total",
            "counter",
            "chat-error replies, by message.",
            &to_samples("message", &errors),
        );
        let (recoveries, replayed) = METRICS.recoveries();
        family(
            "chatgate_recoveries_total",
            "counter",
            "Reconnections with a session id (connection state recovery): restored, or why not.",
            &to_samples("outcome", &recoveries),
        );
        family(
            "chatgate_recovery_replayed_total",
            "counter",
            "Messages and changes sent again to restored sockets.",
            &[(String::new(), replayed as f64)],
        );
        family(
            "chatgate_change_log_dropped_total",
            "counter",
            "Changes broadcast but not written to the change log (a recovery across them falls back).",
            &[(String::new(), self.history.changes_dropped() as f64)],
        );
        if let Some(writer) = self.history.writer_stats() {
            family(
                "chatgate_history_queued",
                "gauge",
                "Delivered messages waiting to be written to the database.",
                &[(String::new(), writer.queued as f64)],
            );
            family(
                "chatgate_history_stored_total",
                "counter",
                "Messages written to the database.",
                &[(String::new(), writer.stored as f64)],
            );
            family(
                "chatgate_history_dropped_total",
                "counter",
                "Messages delivered but not stored (queue full, or shutdown deadline).",
                &[(String::new(), writer.dropped as f64)],
            );
            family(
                "chatgate_history_failed_batches_total",
                "counter",
                "History batch inserts that failed and were retried.",
                &[(String::new(), writer.failed_batches as f64)],
            );
            family(
                "chatgate_history_pages_read_total",
                "counter",
                "History pages read from the database (after joins and load-history).",
                &[(String::new(), writer.pages_read as f64)],
            );
            family(
                "chatgate_history_page_batches_total",
                "counter",
                "Batches the history pages were read in: pages asked for at once share one.",
                &[(String::new(), writer.page_batches as f64)],
            );
        }
        if let Some(notify) = &self.notify {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &notify.stats;
            let channel = label("channel", notify.channel_name());
            family(
                "chatgate_notifications_pending",
                "gauge",
                "Notifications in the outbox not yet sent, dropped or given up.",
                &[(String::new(), s.pending.load(Relaxed) as f64)],
            );
            family(
                "chatgate_notifications_sent_total",
                "counter",
                "Notifications delivered, by channel.",
                &[(channel.clone(), s.sent.load(Relaxed) as f64)],
            );
            family(
                "chatgate_notifications_retried_total",
                "counter",
                "Failed deliveries scheduled again, by channel.",
                &[(channel.clone(), s.retried.load(Relaxed) as f64)],
            );
            family(
                "chatgate_notifications_dead_total",
                "counter",
                "Notifications given up after --notify-give-up-secs of failures, by channel.",
                &[(channel, s.dead.load(Relaxed) as f64)],
            );
            let dropped: Vec<(String, f64)> = crate::notify::DROP_REASONS
                .iter()
                .zip(&s.dropped)
                .map(|(reason, n)| (label("reason", reason), n.load(Relaxed) as f64))
                .collect();
            family(
                "chatgate_notifications_dropped_total",
                "counter",
                "Due notifications not sent, by reason (read, present, opted out, deleted, no recipient).",
                &dropped,
            );
        }
        if let Some(files) = &self.files {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &files.stats;
            for (name, help, value) in [
                (
                    "chatgate_files_uploaded_total",
                    "Files uploaded and stored.",
                    &s.uploads,
                ),
                (
                    "chatgate_files_uploaded_bytes_total",
                    "Bytes of the files uploaded.",
                    &s.uploaded_bytes,
                ),
                (
                    "chatgate_files_refused_total",
                    "File requests answered with an error.",
                    &s.refused,
                ),
                (
                    "chatgate_files_downloads_total",
                    "File and thumbnail downloads served.",
                    &s.downloads,
                ),
                (
                    "chatgate_files_downloaded_bytes_total",
                    "Bytes of files and thumbnails sent.",
                    &s.downloaded_bytes,
                ),
                (
                    "chatgate_files_deleted_total",
                    "Files deleted (with their message, or never attached).",
                    &s.deleted,
                ),
                (
                    "chatgate_files_thumbnails_total",
                    "Thumbnails made.",
                    &s.thumbnails,
                ),
            ] {
                family(
                    name,
                    "counter",
                    help,
                    &[(String::new(), value.load(Relaxed) as f64)],
                );
            }
        }
        if let Some(cluster) = &self.cluster {
            use std::sync::atomic::Ordering::Relaxed;
            let st = &cluster.stats;
            family(
                "chatgate_cluster_link_up",
                "gauge",
                "1 while both Redis connections (publisher, subscriber) are up.",
                &[(String::new(), f64::from(u8::from(cluster.link_up())))],
            );
            family(
                "chatgate_cluster_broadcasts_total",
                "counter",
                "Broadcasts over Redis: published, dropped (all reasons, see chatgate_cluster_dropped_total), received and delivered here, skipped (no member here), malformed.",
                &[
                    (label("outcome", "published"), st.published.load(Relaxed) as f64),
                    (
                        label("outcome", "dropped"),
                        DropReason::ALL
                            .iter()
                            .map(|r| st.dropped_total(*r))
                            .sum::<u64>() as f64,
                    ),
                    (label("outcome", "received"), st.received.load(Relaxed) as f64),
                    (label("outcome", "skipped"), st.skipped.load(Relaxed) as f64),
                    (label("outcome", "malformed"), st.malformed.load(Relaxed) as f64),
                ],
            );
            family(
                "chatgate_cluster_dropped_total",
                "counter",
                "Broadcasts lost between nodes, by reason: redis_down (Redis unreachable), redis_stalled (a write hung past --cluster-publish-wait-ms), publish_queue_full (this node publishes more than Redis takes), receive_queue_full (this node cannot deliver what others send).",
                &DropReason::ALL
                    .iter()
                    .map(|r| (label("reason", r.as_str()), st.dropped_total(*r) as f64))
                    .collect::<Vec<_>>(),
            );
            family(
                "chatgate_cluster_publish_queue",
                "gauge",
                "Broadcasts waiting for the publisher.",
                &[(String::new(), cluster.publish_queue_len() as f64)],
            );
            family(
                "chatgate_cluster_lag_seconds",
                "gauge",
                "How far the slowest node's subscriber is behind what the cluster publishes (senders wait beyond --cluster-max-lag-ms).",
                &[(String::new(), cluster.lag.cluster_ms() as f64 / 1000.0)],
            );
            family(
                "chatgate_cluster_publish_waiting",
                "gauge",
                "Senders waiting for room in the full publish queue (flow control).",
                &[(String::new(), st.waiting.load(Relaxed) as f64)],
            );
        }
        if let Some(latency) = self.directory.latency() {
            histogram(
                &mut out,
                "chatgate_db_query_seconds",
                "Time to authorize a join against the database.",
                latency,
            );
        }
        if let Some(latency) = self.history.write_latency() {
            histogram(
                &mut out,
                "chatgate_history_write_seconds",
                "Time to write one batch of messages.",
                latency,
            );
        }
        out
    }
}

impl Endpoint for Admin {
    fn serve(self: Arc<Self>, req: Request<Incoming>, _remote: SocketAddr) -> ResponseFuture {
        Box::pin(async move {
            match req.uri().path() {
                "/health" => http::response(StatusCode::OK, "text/plain", "ok\n"),
                "/metrics" => {
                    http::response(StatusCode::OK, "text/plain; version=0.0.4", self.metrics())
                }
                "/ready" => {
                    if self.shutting_down.load(Ordering::Acquire) {
                        http::response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            "shutting down\n",
                        )
                    } else if !self.history.schema_ready() {
                        http::response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            "schema not ready (see the log; `chatgate migrate` brings it up to date)\n",
                        )
                    } else if self.directory.ready().await {
                        // A lost cluster link does not take the node out of rotation (every node
                        // loses it together when Redis goes away; local chats still work), but
                        // it is said here and in /metrics.
                        let body = match &self.cluster {
                            Some(c) if c.link_up() => "ready\ncluster: up\n",
                            Some(_) => "ready\ncluster: down\n",
                            None => "ready\n",
                        };
                        http::response(StatusCode::OK, "text/plain", body)
                    } else {
                        http::response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            "directory unavailable\n",
                        )
                    }
                }
                _ => http::response(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
            }
        })
    }
}
