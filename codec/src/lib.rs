//! The Engine.IO v4 / Socket.IO v5 packet codec of chatgate.
//!
//! Pure: bytes in, packets out, and back. No I/O, no runtime, no clocks, no global state, so it can be
//! fuzzed, benchmarked and reused on its own. Every bound on untrusted input is a field of [`Limits`],
//! passed in by the caller. Malformed input of any kind is an error value, never a panic.
//!
//! Layout, lowest layer first:
//! - [`bytestr`]: `ByteStr`, UTF-8 text sharing a `Bytes` buffer, so decoded packets borrow their frame.
//! - [`base64`], [`json`]: the small pieces the two protocols need (binary in polling bodies; JSON
//!   validated without building values).
//! - [`engine`]: Engine.IO packets and WebSocket frames.
//! - [`payload`]: the long-polling body (packets joined by 0x1e).
//! - [`socket`]: Socket.IO packets, binary attachment reassembly ([`socket::Decoder`]) and the
//!   encode-once [`socket::EventWriter`] that broadcasts use.

// One `unsafe` block in the crate (`ByteStr::as_str`), with the invariant that makes it sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod base64;
pub mod bytestr;
pub mod engine;
pub mod json;
pub mod limits;
pub mod payload;
pub mod socket;

pub use bytestr::ByteStr;
pub use limits::Limits;
