//! The directory: who the users are and which events (booked sessions) they hold a seat in.
//!
//! Two implementations: PostgreSQL (`postgres.rs`, the host application's own tables, read only) and
//! the embedded demo directory (`demo.rs`, in memory, so the gateway runs on a fresh machine with no
//! set-up). The chat asks one question per join: may this user take this seat in this event, and
//! what is their name?

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

pub trait Directory: Send + Sync + 'static {
    /// Whether `userid` holds the `role` seat of `eventid`, and their name if so.
    fn seat(&self, eventid: i32, userid: i32, role: Role) -> SeatFuture<'_>;

    /// Whether the directory can answer right now (for readiness checks).
    fn ready(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
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
