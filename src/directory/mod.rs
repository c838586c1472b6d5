//! The directory: who the users are and which events (booked sessions) they hold a seat in.
//!
//! Two implementations: PostgreSQL (`postgres.rs`, the host application's own tables, read only) and
//! the embedded demo directory (`demo.rs`, in memory, so the gateway runs on a fresh machine with no
//! set-up). The chat asks one question per join: may this user take this seat in this event, and
//! what is their name?

mod batched;
pub mod demo;
pub mod postgres;

use std::future::Future;
use std::pin::Pin;

/// A seat in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Tutor,
    Tutee,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "tutor" => Some(Role::Tutor),
            "tutee" => Some(Role::Tutee),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tutor => "tutor",
            Role::Tutee => "tutee",
        }
    }

    /// The other seat of an event: whom a message from this one is for.
    pub fn other(self) -> Role {
        match self {
            Role::Tutor => Role::Tutee,
            Role::Tutee => Role::Tutor,
        }
    }
}

/// The answer to a join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seat {
    /// The user holds the seat; their display name.
    Granted { name: String },
    /// No such event.
    EventNotFound,
    /// The event exists but this user does not hold the named seat.
    NotMember,
}

/// The directory could not answer (database down, timeout, query error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryError(pub String);

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "directory unavailable: {}", self.0)
    }
}

impl std::error::Error for DirectoryError {}

pub type SeatFuture<'a> = Pin<Box<dyn Future<Output = Result<Seat, DirectoryError>> + Send + 'a>>;

/// The user holding each seat of an event: `None` for an unknown event, a `None` seat for an empty
/// one.
pub type MembersFuture<'a> = Pin<
    Box<
        dyn Future<Output = Result<Option<(Option<i32>, Option<i32>)>, DirectoryError>> + Send + 'a,
    >,
>;

/// Upper bounds (milliseconds) of the query latency histogram's buckets; a last one counts the rest.
pub const LATENCY_BUCKETS_MS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

/// How long authorizations took, as Prometheus histograms count them.
#[derive(Default)]
pub struct LatencyHistogram {
    buckets: [std::sync::atomic::AtomicU64; 13],
    sum_micros: std::sync::atomic::AtomicU64,
}

impl LatencyHistogram {
    pub fn record(&self, elapsed: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let ms = elapsed.as_secs_f64() * 1000.0;
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    /// Cumulative counts per bucket bound (the last is +Inf, the total), and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect();
        (cumulative, self.sum_micros.load(Relaxed) as f64 / 1e6)
    }
}

pub trait Directory: Send + Sync + 'static {
    /// Whether `userid` holds the `role` seat of `eventid`, and their name if so.
    fn seat(&self, eventid: i32, userid: i32, role: Role) -> SeatFuture<'_>;

    /// Who holds the tutor's and the tutee's seat of `eventid` (the offline notifications ask,
    /// to know whom a message is for).
    fn members(&self, eventid: i32) -> MembersFuture<'_>;

    /// Whether the directory can answer right now (for readiness checks).
    fn ready(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;

    /// Latency of its queries, if it has any worth measuring.
    fn latency(&self) -> Option<&LatencyHistogram> {
        None
    }
}

/// Decides a seat from an event's two slots and the user's name, the same way for every directory.
pub fn decide(
    slots: Option<(Option<i32>, Option<i32>)>,
    name: Option<String>,
    userid: i32,
    role: Role,
) -> Seat {
    let Some((tutor, tutee)) = slots else {
        return Seat::EventNotFound;
    };
    let holder = match role {
        Role::Tutor => tutor,
        Role::Tutee => tutee,
    };
    match (holder == Some(userid), name) {
        (true, Some(name)) => Seat::Granted { name },
        // A seat held by a user id with no users row cannot produce a sender name: refuse.
        _ => Seat::NotMember,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_seats() {
        let slots = Some((Some(1), Some(2)));
        let name = || Some("Ann".to_owned());
        assert_eq!(decide(None, name(), 1, Role::Tutor), Seat::EventNotFound);
        assert_eq!(
            decide(slots, name(), 1, Role::Tutor),
            Seat::Granted { name: "Ann".into() }
        );
        assert_eq!(decide(slots, name(), 1, Role::Tutee), Seat::NotMember);
        assert_eq!(decide(slots, name(), 3, Role::Tutee), Seat::NotMember);
        assert_eq!(decide(slots, None, 1, Role::Tutor), Seat::NotMember);
        assert_eq!(
            decide(Some((None, Some(2))), name(), 2, Role::Tutee),
            Seat::Granted { name: "Ann".into() }
        );
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("tutor"), Some(Role::Tutor));
        assert_eq!(Role::parse("Tutor"), None);
        assert_eq!(Role::Tutee.as_str(), "tutee");
    }
}
