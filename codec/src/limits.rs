//! `Limits`: every bound the decoder enforces, in one struct passed in by the caller.
//!
//! Nothing here is global: a gateway builds one `Limits` from its configuration and hands it to each
//! decoder. The defaults suit a chat server; each field says what it protects against.

/// Bounds applied while decoding untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Engine.IO packet, WebSocket message or polling payload accepted, in bytes.
    /// Default 1,000,000, the `maxPayload` the reference server announces. Larger input is refused
    /// before any of it is parsed.
    pub max_payload: usize,
    /// Most binary attachments one Socket.IO packet may announce. Default 10. The announced count
    /// decides how many frames the decoder waits for, so an unbounded count would let one header
    /// pin memory; chat clients send none.
    pub max_attachments: usize,
    /// Deepest nesting of JSON arrays and objects accepted in a Socket.IO payload. Default 32.
    /// Deep nesting costs stack in every JSON consumer downstream; chat payloads are two deep.
    pub max_depth: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_payload: 1_000_000,
        max_attachments: 10,
        max_depth: 32,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
