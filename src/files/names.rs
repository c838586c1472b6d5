//! File names: a client's name for a file is shown to the other member and offered when they save
//! it, never used as a path. Storage keys are the file's random id.

/// Longest name kept, in bytes (cut on a character boundary).
const MAX_NAME_BYTES: usize = 200;

/// A display name from what the client sent: the last path component (so `../../etc/passwd` and
/// `C:\Users\x\cv.pdf` become `passwd` and `cv.pdf`), without control characters, quotes or
/// leading dots, at most [`MAX_NAME_BYTES`]; `file` if nothing is left.
pub fn clean(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut name: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\u{202e}' | '\u{202d}'))
        .collect();
    name = name.trim().trim_start_matches('.').trim().to_owned();
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    if name.is_empty() {
        "file".to_owned()
    } else {
        name
    }
}

/// A `Content-Disposition` value (RFC 6266): `inline` or `attachment`, with an ASCII `filename`
/// for old clients and the exact name as `filename*` (RFC 8187).
pub fn disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_paths() {
        assert_eq!(clean("../../etc/passwd"), "passwd");
        assert_eq!(clean("C:\\Users\\ada\\cv.pdf"), "cv.pdf");
        assert_eq!(clean("..."), "file");
        assert_eq!(clean(".htaccess"), "htaccess");
        assert_eq!(clean("a\u{0}b\r\nc\".txt"), "abc.txt");
        assert_eq!(clean("photo\u{202e}gpj.exe"), "photogpj.exe");
        assert_eq!(clean(""), "file");
        let long = "é".repeat(300);
        assert!(clean(&long).len() <= MAX_NAME_BYTES);
        assert!(clean(&long).chars().all(|c| c == 'é'));
    }

    #[test]
    fn dispositions_quote_nothing_a_header_cannot_hold() {
        assert_eq!(
            disposition(false, "Übung 1.pdf"),
            "attachment; filename=\"_bung 1.pdf\"; filename*=UTF-8''%C3%9Cbung%201.pdf"
        );
        assert_eq!(
            disposition(true, "a.png"),
            "inline; filename=\"a.png\"; filename*=UTF-8''a.png"
        );
    }
}
