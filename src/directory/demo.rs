//! The embedded demo directory: a few users and events in memory, used when no database is given so
//! that `cargo run --release` serves a working chat on a fresh machine.

use std::collections::HashMap;

use super::{decide, Directory, Role, SeatFuture};

/// `(userid, name)` of the demo users.
pub const USERS: [(i32, &str); 4] = [
    (1, "Ada Lovelace"),
    (2, "Alan Turing"),
    (3, "Grace Hopper"),
    (4, "Edsger Dijkstra"),
];

/// `(eventid, tutor, tutee)` of the demo events.
pub const EVENTS: [(i32, i32, i32); 3] = [(101, 1, 2), (102, 3, 4), (103, 1, 4)];

pub struct DemoDirectory {
    users: HashMap<i32, String>,
    events: HashMap<i32, (i32, i32)>,
}

impl Default for DemoDirectory {
    fn default() -> Self {
        DemoDirectory {
            users: USERS.iter().map(|(id, n)| (*id, (*n).to_owned())).collect(),
            events: EVENTS.iter().map(|(e, t, s)| (*e, (*t, *s))).collect(),
        }
    }
}

impl DemoDirectory {
    /// The lines the gateway logs at start, so a person can try the demo at once.
    pub fn describe() -> Vec<String> {
        let name = |id: i32| {
            USERS
                .iter()
                .find(|(u, _)| *u == id)
                .map_or("?", |(_, n)| *n)
        };
        let mut lines: Vec<String> = USERS
            .iter()
            .map(|(id, n)| format!("demo user {id}: {n}"))
            .collect();
        lines.extend(EVENTS.iter().map(|(e, t, s)| {
            format!(
                "demo event {e}: tutor {t} ({}), tutee {s} ({})",
                name(*t),
                name(*s)
            )
        }));
        lines
    }
}

impl Directory for DemoDirectory {
    fn seat(&self, eventid: i32, userid: i32, role: Role) -> SeatFuture<'_> {
        let slots = self.events.get(&eventid).map(|(t, s)| (Some(*t), Some(*s)));
        let name = self.users.get(&userid).cloned();
        Box::pin(std::future::ready(Ok(decide(slots, name, userid, role))))
    }

    fn members(&self, eventid: i32) -> super::MembersFuture<'_> {
        let slots = self.events.get(&eventid).map(|(t, s)| (Some(*t), Some(*s)));
        Box::pin(std::future::ready(Ok(slots)))
    }

    fn ready(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(std::future::ready(true))
    }
}
