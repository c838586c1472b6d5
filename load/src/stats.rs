//! Readings of the server process (CPU time, resident memory) from /proc, and of our own CPU time.

use std::time::Duration;

/// Clock ticks per second of /proc/*/stat times; 100 on every Linux build this tool runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU time of a process so far.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are space-separated.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / TICKS_PER_SEC))
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of one or more processes (`pid` may be a comma-separated list, summed) between two
/// readings, if both were taken.
pub struct CpuWindow {
    pids: Vec<String>,
    start: Option<Duration>,
}

fn total(pids: &[String]) -> Option<Duration> {
    pids.iter().map(|p| cpu_time(p)).sum()
}

impl CpuWindow {
    pub fn start(pid: Option<&str>) -> CpuWindow {
        let pids: Vec<String> = pid
            .map(|p| p.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        CpuWindow {
            start: (!pids.is_empty()).then(|| total(&pids)).flatten(),
            pids,
        }
    }

    pub fn elapsed(&self) -> Option<Duration> {
        if self.pids.is_empty() {
            return None;
        }
        Some(total(&self.pids)?.saturating_sub(self.start?))
    }
}
