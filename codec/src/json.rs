//! Checks on raw JSON text that keep payloads as borrowed slices.
//!
//! The codec validates JSON without building a value tree: a cheap nesting-depth scan first (so that
//! hostile input is refused before the parser recurses), then `serde_json`'s `RawValue`, which checks
//! syntax and borrows.

use serde_json::value::RawValue;

/// Why a JSON payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Arrays/objects nested deeper than the limit.
    TooDeep { max: usize },
    /// Not well-formed JSON; the parser's own description.
    Syntax(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::TooDeep { max } => write!(f, "JSON nested deeper than {max} levels"),
            JsonError::Syntax(e) => write!(f, "invalid JSON: {e}"),
        }
    }
}

/// Fails if brackets outside string literals nest deeper than `max`. Linear, allocation-free; it
/// does not validate syntax (the parser does that next).
pub fn check_depth(text: &str, max: usize) -> Result<(), JsonError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(JsonError::TooDeep { max });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Validates `text` as one JSON value within the depth limit, borrowing it.
pub fn parse_raw(text: &str, max_depth: usize) -> Result<&RawValue, JsonError> {
    check_depth(text, max_depth)?;
    serde_json::from_str::<&RawValue>(text).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Parses `text` as a JSON array and returns its elements, borrowed; validates the whole text
/// (elements, brackets, nothing trailing) in the same pass. Check the depth first.
pub fn elements(text: &str) -> Result<Vec<&RawValue>, JsonError> {
    serde_json::from_str::<Vec<&RawValue>>(text).map_err(|e| JsonError::Syntax(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_only_structural_brackets() {
        assert!(check_depth(r#"["[[[[[[","{{{{{"]"#, 1).is_ok());
        assert!(check_depth(r#"[["a"]]"#, 2).is_ok());
        assert_eq!(
            check_depth(r#"[[["a"]]]"#, 2),
            Err(JsonError::TooDeep { max: 2 })
        );
        assert!(check_depth(r#"["\"[[["]"#, 1).is_ok());
    }

    #[test]
    fn deep_input_is_refused_before_parsing() {
        let deep = "[".repeat(100_000);
        assert_eq!(
            parse_raw(&deep, 32).err(),
            Some(JsonError::TooDeep { max: 32 })
        );
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(parse_raw("[1,", 32), Err(JsonError::Syntax(_))));
        assert!(matches!(parse_raw("[1] x", 32), Err(JsonError::Syntax(_))));
        assert!(parse_raw(" [1, {\"a\": null}] ", 32).is_ok());
    }
}
