//! Validation of everything a person types that becomes an identifier: room names, display
//! names, and message bodies. Shared by the server (which is the authority) and the browser
//! (which checks early so a person sees the problem before a round trip).
//!
//! Every error is a sentence that says what to fix.

use crate::protocol::{ClientId, RoomId, UserName, MAX_MESSAGE_CHARS};

/// Unicode NFC on the server, which is the authority. The browser skips it: its tables would
/// add about 100 KB to the WASM bundle for an early check the server repeats anyway.
#[cfg(feature = "ssr")]
fn nfc(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.nfc().collect()
}

#[cfg(not(feature = "ssr"))]
fn nfc(raw: &str) -> String {
    raw.to_string()
}

pub const ROOM_RULE: &str = "Room names are 1–32 letters, digits, - or _ (no spaces).";
pub const NAME_RULE: &str = "Display names are 1–32 characters, without control characters.";
pub const INVISIBLE_RULE: &str = "Display names cannot contain invisible formatting or \
     text-direction characters (such as zero-width spaces or right-to-left marks); type the \
     name without them.";

/// Room every server has; it cannot be missing from the room list.
pub const DEFAULT_ROOM: &str = "general";

/// Parses a room name: 1–32 ASCII letters, digits, `-`, `_`.
pub fn parse_room(raw: &str) -> Result<RoomId, String> {
    let name = raw.trim();
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(RoomId(name.to_string()))
    } else if name.is_empty() {
        Err(format!("Enter a room name. {ROOM_RULE}"))
    } else {
        Err(ROOM_RULE.to_string())
    }
}

/// Parses a display name: Unicode NFC (so "é" typed two ways is one name), trimmed, inner
/// whitespace runs collapsed to one space, 1–32 characters, no control characters.
pub fn parse_display_name(raw: &str) -> Result<UserName, String> {
    let name = nfc(raw);
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err(format!("Enter a display name. {NAME_RULE}"));
    }
    if name.chars().count() > 32 || name.chars().any(char::is_control) {
        return Err(NAME_RULE.to_string());
    }
    if name.chars().any(is_invisible) {
        return Err(INVISIBLE_RULE.to_string());
    }
    Ok(UserName(name))
}

/// Format characters (Unicode general category Cf, which holds every bidi control: marks,
/// embeddings, overrides, isolates): they draw nothing, or reorder what is drawn, so a name
/// holding one looks like a different name. Unicode 15.1; the list is short enough to keep
/// here rather than ship a category table to the browser.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Checks a message body and returns it in Unicode NFC, without control characters other
/// than newline and tab, and with trailing whitespace trimmed. Length is counted in
/// characters after that.
pub fn clean_message(raw: &str) -> Result<String, MessageProblem> {
    let text: String = nfc(raw)
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    let text = text.trim_end();
    if text.trim().is_empty() {
        return Err(MessageProblem::Empty);
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(MessageProblem::TooLong);
    }
    Ok(text.to_string())
}

/// Why a message body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageProblem {
    Empty,
    TooLong,
}

impl MessageProblem {
    pub fn sentence(self) -> String {
        match self {
            MessageProblem::Empty => "Type a message before sending.".to_string(),
            MessageProblem::TooLong => {
                format!("Messages can be at most {MAX_MESSAGE_CHARS} characters; shorten it or split it.")
            }
        }
    }
}

/// Client ids are opaque to the server but must be short printable ASCII.
pub fn valid_client_id(id: &ClientId) -> bool {
    (1..=64).contains(&id.0.len()) && id.0.bytes().all(|b| b.is_ascii_graphic())
}

/// The word that mentions everyone online in a room.
pub const HERE: &str = "here";

/// Whether `text` mentions `name`, both already in lower case ([`lower`]; a text checked
/// against many people is lowered once): `@` and the name, with the `@` not inside a word or
/// an address (`ada@example.org`) and the name not the start of a longer word (`@adam` is not
/// `ada`). Display names may hold spaces: `@ada lovelace` mentions "ada lovelace", and also
/// "ada".
pub fn mentions(text: &str, name: &str) -> bool {
    let mut before = None;
    for (at, c) in text.char_indices() {
        if c == '@' && !name.is_empty() && !before.is_some_and(|b| is_word(b) || b == '@') {
            if let Some(rest) = text[at + 1..].strip_prefix(name) {
                if !rest.chars().next().is_some_and(is_word) {
                    return true;
                }
            }
        }
        before = Some(c);
    }
    false
}

/// Whether `c` belongs to a word: ASCII letters, digits and `_`, and every character beyond
/// ASCII but spaces and the general and CJK punctuation blocks (so `@Ada’s` and `@Ada、`
/// mention Ada). Not `char::is_alphanumeric`: its tables would add kilobytes to the bundle.
pub fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '_'
        || (!c.is_ascii()
            && !c.is_whitespace()
            && !matches!(c, '\u{2000}'..='\u{206F}' | '\u{3000}'..='\u{303F}'))
}

/// `s` in lower case, for comparing names. The browser asks JavaScript: Rust's case tables
/// would add about 10 KB to the bundle, and both follow Unicode's default case mapping.
#[cfg(not(feature = "hydrate"))]
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(feature = "hydrate")]
pub fn lower(s: &str) -> String {
    js_sys::JsString::from(s).to_lower_case().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_whole_names_after_an_at_sign() {
        let mentions = |text: &str, name: &str| mentions(&lower(text), &lower(name));
        assert!(mentions("@Ada can you look?", "Ada"));
        assert!(mentions("thanks @ada.", "Ada"));
        assert!(mentions("cc @Ada Lovelace", "Ada Lovelace"));
        assert!(mentions("cc @ÉLOÏSE", "éloïse"));
        assert!(mentions("(@here) standup", HERE));
        assert!(!mentions("@Adam can you look?", "Ada"));
        assert!(!mentions("mail ada@example.org", "example"));
        assert!(!mentions("Ada, no at sign", "Ada"));
        assert!(!mentions("@@Ada", "Ada"));
        assert!(!mentions("@", "Ada"));
        assert!(!mentions("@Ad", "Ada"));
        assert!(mentions("@Ada’s turn", "Ada"));
        assert!(!mentions("@Adaé", "Ada"));
    }

    #[test]
    fn room_names_follow_the_rule() {
        assert_eq!(parse_room(" dev-ops_2 ").unwrap().0, "dev-ops_2");
        assert!(parse_room(&"a".repeat(32)).is_ok());
        for bad in [
            "",
            "   ",
            "has space",
            "dots.no",
            "ümlaut",
            &"a".repeat(33),
            "<b>",
        ] {
            assert!(parse_room(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn display_names_are_tidied_and_bounded() {
        assert_eq!(
            parse_display_name("  Ada   Lovelace ").unwrap().0,
            "Ada Lovelace"
        );
        assert_eq!(parse_display_name("Zoë").unwrap().0, "Zoë");
        assert!(parse_display_name(&"é".repeat(32)).is_ok());
        assert!(parse_display_name(&"é".repeat(33)).is_err());
        assert!(parse_display_name(" \t ").is_err());
        assert!(parse_display_name("bell\u{7}").is_err());
    }

    #[test]
    fn text_is_normalised_and_stripped_of_control_characters() {
        // "e" + combining acute becomes the single character "é".
        assert_eq!(parse_display_name("Rene\u{301}").unwrap().0, "René");
        assert_eq!(
            clean_message("a\u{0}b\u{1b}[31mc\nd").unwrap(),
            "ab[31mc\nd"
        );
        assert_eq!(clean_message("\u{7}\u{8}"), Err(MessageProblem::Empty));
    }

    #[test]
    fn messages_count_characters_not_bytes() {
        assert_eq!(clean_message("hi  \n").unwrap(), "hi");
        assert_eq!(clean_message(" \n\t"), Err(MessageProblem::Empty));
        assert!(clean_message(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert_eq!(
            clean_message(&"a".repeat(MAX_MESSAGE_CHARS + 1)),
            Err(MessageProblem::TooLong)
        );
    }

    #[test]
    fn names_with_invisible_or_direction_characters_are_refused() {
        for payload in [
            "Ada\u{200b}",
            "Ada\u{200d}",
            "\u{202e}adA",
            "Ada\u{2060}",
            "\u{2066}Ada\u{2069}",
            "A\u{200e}da",
            "\u{feff}Ada",
            "Ad\u{ad}a",
        ] {
            assert_eq!(
                parse_display_name(payload),
                Err(INVISIBLE_RULE.to_string()),
                "{payload:?}"
            );
        }
        // Visible letters of any script are still names of their own.
        for fine in [
            "Аня",
            "Zoë",
            "李雷",
            "O'Brien",
            "ada-99",
            "Ada \u{2764}\u{fe0f}",
        ] {
            assert!(parse_display_name(fine).is_ok(), "{fine:?}");
        }
    }
}
