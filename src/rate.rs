//! Token buckets: a client may burst up to `burst` events, then `per_second` on average. Used for
//! handshakes per IP address (engine) and for `send-message` and `typing` per socket (chat).

use tokio::time::Instant;

/// A rate: `per_second` on average, `burst` at once. `per_second == 0` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    pub const UNLIMITED: RateLimit = RateLimit {
        per_second: 0.0,
        burst: 0.0,
    };

    /// One warning per 10 s for a condition that can repeat per message (a full queue, a
    /// dropped broadcast): a flood of log lines is the last thing an overloaded server needs.
    pub const WARNINGS: RateLimit = RateLimit {
        per_second: 0.1,
        burst: 1.0,
    };
}

/// The tokens one socket has left for one kind of event.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            tokens: f64::INFINITY,
            last: None,
        }
    }
}

impl Bucket {
    /// Whether the bucket has refilled completely by `now` (it can be forgotten).
    pub fn is_full(&self, limit: RateLimit, now: Instant) -> bool {
        self.last.is_none_or(|last| {
            self.tokens + now.duration_since(last).as_secs_f64() * limit.per_second >= limit.burst
        })
    }

    /// Takes a token if one is there; refills by the time passed since the last call.
    pub fn allow(&mut self, limit: RateLimit, now: Instant) -> bool {
        if limit.per_second <= 0.0 {
            return true;
        }
        let refill = self.last.map_or(limit.burst, |last| {
            now.duration_since(last).as_secs_f64() * limit.per_second
        });
        self.tokens = (self.tokens.min(limit.burst) + refill).min(limit.burst.max(1.0));
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_refills() {
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3.0,
        };
        let mut b = Bucket::default();
        let t0 = Instant::now();
        assert!(b.allow(limit, t0));
        assert!(b.allow(limit, t0));
        assert!(b.allow(limit, t0));
        assert!(!b.allow(limit, t0), "burst spent");
        assert!(
            !b.allow(limit, t0 + Duration::from_millis(400)),
            "0.8 tokens is not one"
        );
        assert!(b.allow(limit, t0 + Duration::from_millis(500)));
        assert!(!b.allow(limit, t0 + Duration::from_millis(500)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.allow(limit, later));
        }
        assert!(!b.allow(limit, later));
    }

    #[test]
    fn unlimited_always_allows() {
        let mut b = Bucket::default();
        let now = Instant::now();
        assert!((0..10_000).all(|_| b.allow(RateLimit::UNLIMITED, now)));
    }
}
