//! Property tests (proptest) for everything that reads untrusted text: the protocol decoder
//! and the validation of room names, display names, message bodies, cookies and origins.
//! None may panic, and what they accept must obey the documented rules.
//!
//! `cargo test --features ssr --test fuzz` runs the default 256 cases per property;
//! `scripts/fuzz.sh` runs many more for a bounded time.

use axum::http::{HeaderMap, HeaderValue};
use hearth::names::{clean_message, parse_display_name, parse_room, valid_client_id};
use hearth::protocol::{ClientId, ClientMsg, MAX_MESSAGE_CHARS};
use hearth::server::identity::{origin_allowed, session_token};
use hearth::server::limits::SecurityConfig;
use proptest::prelude::*;
use unicode_normalization::is_nfc;

/// Text that looks like a client frame: a known or unknown type with fields of any JSON
/// type, so the decoder's typed paths get exercised, not just its JSON syntax errors.
fn frame_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("[]".to_string()),
        Just("{}".to_string()),
    ];
    let ty = prop_oneof![
        Just("join"),
        Just("leave"),
        Just("send"),
        Just("ping"),
        Just("pong"),
        Just("welcome"),
        Just(""),
        Just("SEND"),
    ];
    let field = prop_oneof![
        Just("room"),
        Just("since"),
        Just("epoch"),
        Just("client_id"),
        Just("text"),
        Just("type"),
        Just("x")
    ];
    (ty, proptest::collection::vec((field, value), 0..6)).prop_map(|(ty, fields)| {
        let mut out = format!("{{\"type\":\"{ty}\"");
        for (k, v) in fields {
            out.push_str(&format!(",\"{k}\":{v}"));
        }
        out.push('}');
        out
    })
}

proptest! {
    #[test]
    fn the_decoder_never_panics_on_any_text(text in any::<String>()) {
        let _ = ClientMsg::decode(&text);
    }

    #[test]
    fn decoded_frames_survive_a_round_trip(text in frame_like()) {
        if let Ok(msg) = ClientMsg::decode(&text) {
            let again = ClientMsg::decode(&serde_json::to_string(&msg).unwrap());
            prop_assert_eq!(again.ok(), Some(msg));
        }
    }

    #[test]
    fn accepted_room_names_follow_the_rule(raw in any::<String>()) {
        if let Ok(room) = parse_room(&raw) {
            let name = room.as_str();
            prop_assert!((1..=32).contains(&name.len()));
            prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert_eq!(parse_room(name).ok(), Some(room.clone()));
        }
    }

    #[test]
    fn accepted_display_names_are_tidy_and_stable(raw in any::<String>()) {
        if let Ok(name) = parse_display_name(&raw) {
            let s = name.as_str();
            prop_assert!((1..=32).contains(&s.chars().count()));
            prop_assert!(!s.chars().any(char::is_control));
            prop_assert!(is_nfc(s));
            prop_assert_eq!(s.trim(), s);
            prop_assert_eq!(parse_display_name(s).ok(), Some(name.clone()));
        }
    }

    #[test]
    fn accepted_messages_are_clean_and_bounded(raw in any::<String>()) {
        if let Ok(text) = clean_message(&raw) {
            prop_assert!(!text.trim().is_empty());
            prop_assert!(text.chars().count() <= MAX_MESSAGE_CHARS);
            prop_assert!(text.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
            prop_assert!(is_nfc(&text));
            prop_assert_eq!(clean_message(&text).ok(), Some(text.clone()));
        }
    }

    #[test]
    fn client_ids_are_short_printable_ascii(raw in any::<String>()) {
        let id = ClientId(raw.clone());
        if valid_client_id(&id) {
            prop_assert!((1..=64).contains(&raw.len()));
            prop_assert!(raw.bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn cookie_and_origin_parsing_never_panic(
        cookie in proptest::collection::vec(any::<u8>(), 0..200),
        origin in proptest::collection::vec(any::<u8>(), 0..100),
        host in "[a-z0-9.:]{0,30}",
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&cookie) {
            headers.insert("cookie", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&origin) {
            headers.insert("origin", v);
        }
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert("host", v);
        }
        if let Some(token) = session_token(&headers) {
            prop_assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let _ = origin_allowed(&SecurityConfig::default(), &headers);
    }
}
