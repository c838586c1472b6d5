//! What a file is, from its bytes: the declared type (a multipart part's or the request's
//! `Content-Type`) is a claim, the magic numbers at the start of the file are the fact. Only the
//! types of [`ALLOWED`] are accepted; a file whose bytes say one thing and whose declaration another
//! is refused, so that nothing uploaded as "a photo" is ever served as something else.
//!
//! Never accepted, whatever they claim: HTML, SVG, XML, scripts and executables (a browser may run
//! them), archives (a zip bomb posing as a document is a zip), and anything unrecognised.

/// How many bytes of the start of a file [`sniff`] looks at: enough for every magic number here and
/// for an office document's first zip entries.
pub const WINDOW: usize = 64 * 1024;

/// One accepted kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub content_type: &'static str,
    /// A browser may show it inline (`Content-Disposition: inline`) and chatgate makes thumbnails.
    pub image: bool,
}

const fn kind(content_type: &'static str, image: bool) -> Kind {
    Kind {
        content_type,
        image,
    }
}

/// Every type accepted, by content type.
pub const ALLOWED: &[Kind] = &[
    kind("image/jpeg", true),
    kind("image/png", true),
    kind("image/gif", true),
    kind("image/webp", true),
    kind("application/pdf", false),
    kind("text/plain", false),
    kind("application/msword", false),
    kind("application/vnd.ms-excel", false),
    kind("application/vnd.ms-powerpoint", false),
    kind(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        false,
    ),
    kind(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        false,
    ),
    kind(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        false,
    ),
    kind("application/vnd.oasis.opendocument.text", false),
    kind("application/vnd.oasis.opendocument.spreadsheet", false),
    kind("application/vnd.oasis.opendocument.presentation", false),
];

/// The human list of what is accepted, for error messages.
pub const ALLOWED_TEXT: &str =
    "images (JPEG, PNG, GIF, WebP), PDF, plain text (UTF-8) and office documents (Word, Excel, PowerPoint, OpenDocument)";

/// Why a file's type was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniffError {
    /// The bytes are of a known type that is not accepted.
    NotAllowed { found: String },
    /// The bytes match no accepted type (and are not UTF-8 text).
    Unrecognised,
    /// The bytes are an accepted type, but the upload declared another.
    Mismatch {
        found: &'static str,
        declared: String,
    },
}

impl std::fmt::Display for SniffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SniffError::NotAllowed { found } => write!(
                f,
                "file type {found} is not accepted: accepted are {ALLOWED_TEXT}"
            ),
            SniffError::Unrecognised => write!(
                f,
                "the file's type could not be recognised from its content: accepted are {ALLOWED_TEXT}"
            ),
            SniffError::Mismatch { found, declared } => write!(
                f,
                "the file's content is {found} but it was sent as {declared}: send it with its real type"
            ),
        }
    }
}

/// The accepted kind of a file starting with `head` (at most [`WINDOW`] bytes; `complete` when it
/// is the whole file), checked against the `declared` content type (parameters ignored; none,
/// `application/octet-stream` or an empty one declare nothing).
pub fn sniff(head: &[u8], complete: bool, declared: Option<&str>) -> Result<Kind, SniffError> {
    let found = match infer::get(head) {
        Some(t) => {
            let mime = t.mime_type();
            ALLOWED
                .iter()
                .find(|k| k.content_type == mime)
                .copied()
                .ok_or_else(|| SniffError::NotAllowed {
                    found: mime.to_owned(),
                })?
        }
        None if looks_like_text(head, complete) => kind("text/plain", false),
        None => return Err(SniffError::Unrecognised),
    };
    let declared = declared
        .map(|d| {
            d.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty() && d != "application/octet-stream");
    match declared {
        Some(d) if d != found.content_type => Err(SniffError::Mismatch {
            found: found.content_type,
            declared: d,
        }),
        _ => Ok(found),
    }
}

/// Plain text: UTF-8 (a character cut at the end of the window aside), no NUL and no other control
/// characters but tab, newline, carriage return and form feed, and nothing that opens like markup a
/// browser would render (HTML, SVG, XML).
fn looks_like_text(head: &[u8], complete: bool) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Only a character cut by the window's end, never one cut at the end of the file.
        Err(e) => !complete && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    };
    if !valid || head.is_empty() {
        return false;
    }
    if head
        .iter()
        .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
    {
        return false;
    }
    let start: Vec<u8> = head
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == 0xef || **b == 0xbb || **b == 0xbf)
        .take(64)
        .map(u8::to_ascii_lowercase)
        .collect();
    ![
        "<!doctype",
        "<html",
        "<?xml",
        "<svg",
        "<script",
        "<head",
        "<body",
        "<iframe",
    ]
    .iter()
    .any(|tag| start.starts_with(tag.as_bytes()))
}

/// Checks that the rest of a text file stays text: UTF-8 across chunk boundaries, no NUL. Carries
/// an incomplete character from one chunk to the next.
#[derive(Default)]
pub struct TextCheck {
    carry: Vec<u8>,
}

impl TextCheck {
    /// Whether `chunk` (the next bytes of the file) keeps it text.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if chunk.contains(&0) {
            return false;
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(chunk);
        match std::str::from_utf8(&joined) {
            Ok(_) => true,
            Err(e) if e.error_len().is_none() => {
                self.carry = joined[e.valid_up_to()..].to_vec();
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the file ended on a whole character.
    pub fn finish(&self) -> bool {
        self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn the_bytes_decide_and_the_declaration_must_agree() {
        assert_eq!(
            sniff(PNG, true, Some("image/png")).unwrap().content_type,
            "image/png"
        );
        assert_eq!(sniff(PNG, true, None).unwrap().content_type, "image/png");
        assert_eq!(
            sniff(PNG, true, Some("application/octet-stream"))
                .unwrap()
                .content_type,
            "image/png"
        );
        assert!(matches!(
            sniff(PNG, true, Some("application/pdf")),
            Err(SniffError::Mismatch {
                found: "image/png",
                ..
            })
        ));
        assert_eq!(
            sniff(
                b"%PDF-1.7\n...",
                true,
                Some("application/pdf; charset=binary")
            )
            .unwrap()
            .content_type,
            "application/pdf"
        );
    }

    #[test]
    fn markup_archives_and_executables_are_refused() {
        for markup in [
            &b"<!DOCTYPE html><html><script>alert(1)</script>"[..],
            b"  <svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
            b"<?xml version='1.0'?><svg/>",
            b"\xef\xbb\xbf<html>",
        ] {
            assert!(
                sniff(markup, true, Some("text/plain")).is_err(),
                "{markup:?}"
            );
        }
        // A zip posing as an image: the bytes say zip, and zip is not accepted.
        let zip = b"PK\x03\x04\x14\0\0\0\x08\0";
        assert!(matches!(
            sniff(zip, true, Some("image/png")),
            Err(SniffError::NotAllowed { .. })
        ));
        assert!(matches!(
            sniff(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff", true, None),
            Err(SniffError::NotAllowed { .. })
        ));
        assert_eq!(
            sniff(b"\0\x01\x02binary", true, None),
            Err(SniffError::Unrecognised)
        );
    }

    #[test]
    fn text_is_utf8_without_control_bytes() {
        assert_eq!(
            sniff(
                "Homework: ∫ x dx = x²/2\r\n".as_bytes(),
                true,
                Some("text/plain; charset=utf-8")
            )
            .unwrap()
            .content_type,
            "text/plain"
        );
        // A character cut by the window is fine, one cut at the end of the file is not.
        let cut = &"é".as_bytes()[..1];
        let head = [b"notes ".as_slice(), cut].concat();
        assert!(sniff(&head, false, None).is_ok());
        assert!(sniff(&head, true, None).is_err());
        let mut check = TextCheck::default();
        assert!(check.push(&"ab€".as_bytes()[..3]));
        assert!(!check.finish());
        assert!(check.push(&"€".as_bytes()[1..]));
        assert!(check.finish());
        assert!(!check.push(b"a\0b"));
        assert!(!TextCheck::default().push(b"\xff\xfe"));
    }
}
