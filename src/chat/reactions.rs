//! `react-message` `{eventid, userid, message_id, emoji, action: "add"|"remove"}`: one reaction per
//! user, message and emoji. Everyone in the room, the sender included, gets `message-reaction`
//! `{eventid, message_id, userid, role, emoji, action, counts}`, `counts` holding every emoji's
//! total on the message. Adding twice, or removing what is not there, changes nothing and tells
//! nobody (an ack still answers the totals).

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use unicode_segmentation::UnicodeSegmentation;

use super::payload::Fields;
use super::Encoded;
use super::{about_message, answer, change_error, payload, refuse, Chat, ChatError};
use crate::engine::Dispatch;
use crate::history::annotations::Reaction;
use crate::socketio::Socket;

/// Emoji totals as a JSON object whose keys keep the order they were first used in (a map type
/// would sort them, and the client's row of reactions would jump around).
pub(crate) struct Counts<'a>(pub Vec<(&'a str, i64)>);

impl Serialize for Counts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (emoji, count) in &self.0 {
            map.serialize_entry(emoji, count)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct MessageReaction<'a> {
    eventid: i32,
    message_id: i64,
    userid: i32,
    role: &'static str,
    emoji: &'a str,
    action: &'static str,
    counts: Counts<'a>,
}

/// The emoji as stored: exactly one emoji, a single grapheme cluster that Unicode's emoji list
/// knows (skin tones and ZWJ sequences included), in its fully-qualified form, so that "❤" and
/// "❤️" count as the same reaction.
pub fn one_emoji(text: &str) -> Option<&'static str> {
    if text.graphemes(true).count() != 1 {
        return None;
    }
    emojis::get(text).map(|e| e.as_str())
}

pub fn react(chat: &Chat, socket: &Arc<Socket>, fields: Fields<'_>, ack: Option<u64>) -> Dispatch {
    let checked = about_message(socket, &fields).and_then(|(member, message_id)| {
        let emoji = payload::string(fields.emoji)
            .ok()
            .flatten()
            .and_then(|e| one_emoji(&e))
            .ok_or(ChatError::BadEmoji)?;
        let add = match payload::string(fields.action).ok().flatten().as_deref() {
            Some("add") => true,
            Some("remove") => false,
            _ => return Err(ChatError::BadReactionAction),
        };
        Ok((member, message_id, emoji, add))
    });
    let (member, message_id, emoji, add) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            refuse(socket, ack, e);
            return Dispatch::Done;
        }
    };
    let history = chat.history.clone();
    let socket = socket.clone();
    Dispatch::Pending(Box::pin(async move {
        let reaction = Reaction {
            eventid: member.eventid,
            message_id,
            userid: member.userid,
            emoji: emoji.to_owned(),
            add,
            at: super::message::now(),
        };
        // Held until the room is told: the room hears this chat's changes in the order they
        // were made.
        history.stored_so_far(member.eventid).await;
        let _order = history.lock_chat(member.eventid).await;
        match history.react(&reaction).await {
            Ok(reacted) => {
                let counts = reacted.counts.iter().map(|(e, n)| (e.as_str(), *n));
                let payload = Encoded::new(&MessageReaction {
                    eventid: member.eventid,
                    message_id,
                    userid: member.userid,
                    role: member.role.as_str(),
                    emoji,
                    action: if add { "add" } else { "remove" },
                    counts: Counts(counts.collect()),
                });
                if reacted.changed {
                    let event = "message-reaction";
                    super::told(&history, &socket, &member, event, &payload, true);
                }
                answer(&socket, ack, &payload);
            }
            Err(e) => refuse(&socket, ack, change_error(e, "reaction")),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::one_emoji;

    #[test]
    fn exactly_one_emoji() {
        for ok in ["👍", "❤️", "👍🏽", "👩‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🧑🏻‍🤝‍🧑🏿"]
        {
            assert!(one_emoji(ok).is_some(), "{ok} is one emoji");
        }
        assert_eq!(one_emoji("❤"), one_emoji("❤️"), "one reaction either way");
        for bad in [
            "", "a", "👍👍", "👍 ", ":+1:", "1", "#", "<b>", "👍a", "\u{200d}",
        ] {
            assert!(one_emoji(bad).is_none(), "{bad:?} is not one emoji");
        }
    }
}
