//! chatgate: a Socket.IO gateway for the live chat of booked tutoring sessions.
//!
//! The wire codec lives in its own crate, `chatgate-codec` (`codec/`), re-exported here as [`codec`].
pub use chatgate_codec as codec;
