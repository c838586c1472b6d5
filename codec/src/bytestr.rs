//! `ByteStr`: UTF-8 text that lives in a shared `Bytes` buffer.
//!
//! Decoded namespaces and JSON payloads are slices of the frame they came in, so a packet can be
//! routed and forwarded without copying its text. The invariant (valid UTF-8) is checked once, when a
//! `ByteStr` is made, and never again.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Immutable UTF-8 text backed by `Bytes`; cloning it is a reference-count increment.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

// Hashes as `str` does, so that maps keyed by `ByteStr` can be searched with a `&str` (`Borrow`).
impl std::hash::Hash for ByteStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::borrow::Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl ByteStr {
    /// An empty string.
    pub const fn new() -> Self {
        ByteStr(Bytes::new())
    }

    /// Text with `'static` lifetime, without allocation.
    pub const fn from_static(s: &'static str) -> Self {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }

    /// Checks that `bytes` is UTF-8; gives the bytes back unchanged when it is not.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, Bytes> {
        match std::str::from_utf8(&bytes) {
            Ok(_) => Ok(ByteStr(bytes)),
            Err(_) => Err(bytes),
        }
    }

    /// `self[range]` sharing the buffer; the range must fall on char boundaries.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> ByteStr {
        let _ = &self.as_str()[range.clone()]; // panics on a non-boundary: a bug in this crate
        ByteStr(self.0.slice(range))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either checks UTF-8 (`from_utf8`), takes a `str`/`String`, or
        // slices an existing `ByteStr` on char boundaries (`slice`, `slice_ref`).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying buffer.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        ByteStr(Bytes::from(s))
    }
}

impl From<&'static str> for ByteStr {
    fn from(s: &'static str) -> Self {
        ByteStr::from_static(s)
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}
