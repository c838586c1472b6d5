//! Reading client payloads: fields borrowed from the packet's JSON, ids checked against PostgreSQL's
//! `integer` range, extra fields ignored. Nothing here trusts the client.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields any chat event may carry, each kept raw until its handler decides what it must be.
#[derive(Deserialize, Default)]
pub struct Fields<'a> {
    #[serde(borrow, default)]
    pub eventid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub userid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub role: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub is_typing: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub before_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub after_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub limit: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub message_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub emoji: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub action: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub attachments: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub enabled: Option<&'a RawValue>,
}

/// The first argument of an event was present but not a JSON object (a string, a number, `null`,
/// an array, or an object with a field twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnObject;

/// The first argument of an event as an object's fields; no fields when there is no argument (an
/// event whose payload is optional, sent without one).
pub fn fields<'a>(args: &[&'a RawValue]) -> Result<Fields<'a>, NotAnObject> {
    let Some(first) = args.first() else {
        return Ok(Fields::default());
    };
    if !first.get().trim_start().starts_with('{') {
        return Err(NotAnObject);
    }
    serde_json::from_str(first.get()).map_err(|_| NotAnObject)
}

/// An id: a JSON integer (no fraction, no exponent, not a string) within `i32`. `null` counts as
/// absent.
pub fn id(raw: Option<&RawValue>) -> Option<i32> {
    let text = raw?.get().trim();
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    text.parse::<i64>().ok().and_then(|n| i32::try_from(n).ok())
}

/// A positive JSON integer (no fraction, exponent or quotes) up to 2^53, the largest a JavaScript
/// client can send exactly. `Ok(None)` when absent or `null`, `Err` when present and anything else.
pub fn positive(raw: Option<&RawValue>) -> Result<Option<i64>, NotPositive> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotPositive);
    }
    match text.parse::<i64>() {
        Ok(n) if n > 0 && n <= 1 << 53 => Ok(Some(n)),
        _ => Err(NotPositive),
    }
}

/// A field that should have been a positive integer was something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPositive;

/// Whether a field is present and not `null`.
pub fn present(raw: Option<&RawValue>) -> bool {
    raw.is_some_and(|r| r.get().trim() != "null")
}

/// A string field, borrowed from the packet when it has no escapes; `Err(NotAString)` when
/// present but not a string.
pub fn string<'a>(raw: Option<&'a RawValue>) -> Result<Option<Cow<'a, str>>, NotAString> {
    match raw {
        None => Ok(None),
        Some(r) if r.get().trim() == "null" => Ok(None),
        Some(r) => match serde_json::from_str::<&str>(r.get()) {
            Ok(borrowed) => Ok(Some(Cow::Borrowed(borrowed))),
            Err(_) => serde_json::from_str::<String>(r.get())
                .map(|owned| Some(Cow::Owned(owned)))
                .map_err(|_| NotAString),
        },
    }
}

/// A field that should have been a string was something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAString;

/// A boolean field.
pub fn boolean(raw: Option<&RawValue>) -> Option<bool> {
    match raw?.get().trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn ids_must_be_integers_in_range() {
        assert_eq!(id(Some(&raw("123"))), Some(123));
        assert_eq!(id(Some(&raw("-5"))), Some(-5));
        assert_eq!(id(Some(&raw("2147483647"))), Some(i32::MAX));
        assert_eq!(id(Some(&raw("2147483648"))), None);
        assert_eq!(id(Some(&raw("1.5"))), None);
        assert_eq!(id(Some(&raw("1.0"))), None);
        assert_eq!(id(Some(&raw("1e3"))), None);
        assert_eq!(id(Some(&raw("\"123\""))), None);
        assert_eq!(id(Some(&raw("null"))), None);
        assert_eq!(id(Some(&raw("true"))), None);
        assert_eq!(id(None), None);
    }

    #[test]
    fn fields_of_objects_only() {
        let args = [raw(r#"{"eventid":1,"extra":[1,2],"message":"hi"}"#)];
        let refs: Vec<&RawValue> = args.iter().map(|b| &**b).collect();
        let f = fields(&refs).unwrap();
        assert_eq!(id(f.eventid), Some(1));
        assert_eq!(string(f.message), Ok(Some(Cow::Borrowed("hi"))));
        let not_object = [raw("[1]")];
        let refs: Vec<&RawValue> = not_object.iter().map(|b| &**b).collect();
        assert_eq!(fields(&refs).err(), Some(NotAnObject));
        for text in [
            "null",
            "\"text\"",
            "5",
            "true",
            r#"{"eventid":1,"eventid":2}"#,
        ] {
            let bad = [raw(text)];
            let refs: Vec<&RawValue> = bad.iter().map(|b| &**b).collect();
            assert_eq!(fields(&refs).err(), Some(NotAnObject), "{text}");
        }
        // No argument at all: an optional payload left out, no fields.
        assert!(fields(&[]).is_ok_and(|f| f.eventid.is_none()));
    }

    #[test]
    fn positive_integers_only() {
        assert_eq!(positive(Some(&raw("7"))), Ok(Some(7)));
        assert_eq!(positive(Some(&raw("9007199254740992"))), Ok(Some(1 << 53)));
        assert_eq!(positive(Some(&raw("9007199254740993"))), Err(NotPositive));
        assert_eq!(
            positive(Some(&raw("99999999999999999999"))),
            Err(NotPositive)
        );
        assert_eq!(positive(Some(&raw("null"))), Ok(None));
        assert_eq!(positive(None), Ok(None));
        for bad in ["0", "-1", "1.5", "1e3", "\"5\"", "true", "[]"] {
            assert_eq!(positive(Some(&raw(bad))), Err(NotPositive), "{bad}");
        }
    }

    #[test]
    fn strings_and_booleans() {
        assert_eq!(
            string(Some(&raw(r#""a\"b""#))),
            Ok(Some(Cow::Owned("a\"b".to_owned())))
        );
        assert_eq!(string(Some(&raw("{}"))), Err(NotAString));
        assert_eq!(string(Some(&raw("null"))), Ok(None));
        assert_eq!(boolean(Some(&raw("true"))), Some(true));
        assert_eq!(boolean(Some(&raw("1"))), None);
    }
}
