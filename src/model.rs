//! The data the pages and server functions carry between server and browser: who is looking,
//! rooms as listed, a room page's content, and the errors a person can be shown. Plain data
//! both sides share; neither the server nor the browser adds rules here.

use crate::protocol::{ChatMessage, RoomId, Seq, UserName};
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// Messages a room page is rendered with.
pub const PAGE_MESSAGES: usize = 50;

/// What a person sees when a server function fails: always a sentence saying what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Input that breaks a rule (HTTP 400); the text says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// Not logged in, or wrong credentials (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// Too many attempts; the text says how long to wait (HTTP 429).
    #[error("{0}")]
    TooMany(String),
    /// The thing asked for does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Not this person's to do (HTTP 403): someone else's message.
    #[error("{0}")]
    Forbidden(String),
    /// The server could not do it right now (HTTP 500); details are in the server log.
    #[error("Something went wrong on our side; please try again in a moment.")]
    Unavailable,
    /// The request never reached the server function (network, decoding).
    #[error("Could not reach the server ({0}); check your connection and try again.")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

/// How resources carry server-rendered data into the browser: JSON with every `"` and `'`
/// swapped, read through [`crate::protocol::from_json`] so the bundle shares its decoders with
/// the server functions' answers.
///
/// Leptos embeds the encoded text in the page as a Debug-quoted string, and quoting JSON
/// escapes every `"` of every key and string one character at a time. With the quotes
/// swapped there is next to nothing to escape, so the page is smaller and cheaper to render.
/// The home page's resource uses it. The swap exchanges two ASCII bytes, so it keeps UTF-8
/// intact and undoes itself.
pub struct PageJson;

/// Exchanges `"` and `'` (the encoding of [`PageJson`], both ways).
fn swap_quotes(byte: u8) -> u8 {
    match byte {
        b'"' => b'\'',
        b'\'' => b'"',
        other => other,
    }
}

impl<T: Serialize> leptos::server::codee::Encoder<T> for PageJson {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(val: &T) -> Result<String, serde_json::Error> {
        let mut json = serde_json::to_vec(val)?;
        json.iter_mut().for_each(|b| *b = swap_quotes(*b));
        // Only ASCII bytes were exchanged for ASCII bytes, so this cannot fail.
        String::from_utf8(json).map_err(serde::ser::Error::custom)
    }
}

impl<T: serde::de::DeserializeOwned> leptos::server::codee::Decoder<T> for PageJson {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(val: &str) -> Result<T, serde_json::Error> {
        let mut json = val.as_bytes().to_vec();
        json.iter_mut().for_each(|b| *b = swap_quotes(*b));
        crate::protocol::from_json_bytes(&json)
    }
}

/// Who is looking at the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The name they chat under, if they are logged in or chose a guest name.
    pub name: Option<String>,
    /// True for a registered account (which can create private rooms and direct messages).
    pub registered: bool,
    /// Whether this server lets people chat without an account.
    pub guests_allowed: bool,
}

/// Who may enter a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Visibility {
    Public,
    Private,
    Direct,
}

/// A room as listed on the home page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEntry {
    pub name: String,
    /// What to show: `name` for rooms, the other person's name for a direct conversation.
    pub title: String,
    pub visibility: Visibility,
    pub online: usize,
}

/// A page's messages, oldest first, shared rather than copied.
///
/// A room keeps its latest page as one `Messages` until its next message (`server::room`),
/// and every room page rendered meanwhile shares it instead of copying the list. It
/// serializes as the list it holds; changing it copies it only if it is shared.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Messages(std::sync::Arc<Vec<ChatMessage>>);

impl Messages {
    /// The list to change (a copy if it is shared).
    pub fn list_mut(&mut self) -> &mut Vec<ChatMessage> {
        std::sync::Arc::make_mut(&mut self.0)
    }

    /// The list itself (a copy if it is shared).
    pub fn into_vec(self) -> Vec<ChatMessage> {
        std::sync::Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }
}

impl std::ops::Deref for Messages {
    type Target = [ChatMessage];

    fn deref(&self) -> &[ChatMessage] {
        &self.0
    }
}

impl From<Vec<ChatMessage>> for Messages {
    fn from(list: Vec<ChatMessage>) -> Self {
        Messages(std::sync::Arc::new(list))
    }
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Messages {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(Messages::from)
    }
}

/// One page of the room list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomList {
    pub rooms: Vec<RoomEntry>,
    /// This page's number (from 0).
    pub page: u32,
    /// The next page's number, when more rooms may follow.
    pub next_page: Option<u32>,
}

/// Everything a room page renders before the live connection takes over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    pub room: RoomId,
    /// The page heading: `# name`, or the other person's name in a direct conversation.
    pub title: String,
    pub visibility: Visibility,
    /// Members of a private room or direct conversation (empty for public rooms).
    pub members: Vec<UserName>,
    pub messages: Messages,
    pub online: Vec<crate::protocol::Person>,
    /// The newest sequence number included: the live connection subscribes from here.
    pub last_seq: Seq,
    /// The newest change folded into the messages: the live connection replays from here.
    #[serde(default)]
    pub last_eseq: Seq,
    pub epoch: u64,
    pub me: Option<UserName>,
    /// The viewer's key: their own messages (the ones they may edit and delete) carry it.
    #[serde(default)]
    pub my_key: Option<crate::protocol::AuthorKey>,
    /// True when the viewer has an account (guests see a sign-up prompt instead).
    pub registered: bool,
    pub guests_allowed: bool,
    /// True when messages older than the first one shown may exist.
    pub has_older: bool,
    /// Set when this is an older page (`?before=`), which is shown without live updates.
    pub before: Option<Seq>,
    /// How far the viewer had read this room before this visit (`None`: never opened it).
    pub read: Option<Seq>,
    /// The rooms in the viewer's sidebar, by name, this one included.
    pub sidebar: Vec<SidebarRoom>,
}

/// A room in the sidebar: one the viewer has opened before, or a private room or direct
/// conversation they belong to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidebarRoom {
    pub room: RoomId,
    /// The room's name, or the other person's name for a direct conversation.
    pub title: String,
    pub visibility: Visibility,
    pub last_seq: Seq,
    /// How far the viewer has read it.
    pub read: Seq,
    /// Messages that mention the viewer (see [`ChatMessage::mentions`]), newest
    /// [`MENTIONS_KEPT`] at most; those after `read` are unread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Seq>,
}

impl SidebarRoom {
    /// Messages after the viewer's read mark.
    pub fn unread(&self) -> u64 {
        self.last_seq.0.saturating_sub(self.read.0)
    }

    /// Unread messages that mention the viewer.
    pub fn unread_mentions(&self) -> usize {
        self.mentions.iter().filter(|s| **s > self.read).count()
    }

    /// Counts `seqs` as mentions of the viewer too.
    pub fn mentioned(&mut self, seqs: &[Seq]) {
        let read = self.read;
        self.mentions.retain(|s| *s > read);
        for &seq in seqs.iter().filter(|s| **s > read) {
            if let Err(at) = self.mentions.binary_search(&seq) {
                self.mentions.insert(at, seq);
            }
        }
        let over = self.mentions.len().saturating_sub(MENTIONS_KEPT);
        self.mentions.drain(..over);
    }
}

/// Most unread mentions a sidebar room counts (and the most unread messages the server looks
/// through for them).
pub const MENTIONS_KEPT: usize = 200;

/// Most rooms a sidebar lists.
pub const SIDEBAR_ROOMS: usize = 64;

#[cfg(test)]
mod tests {
    use super::PageJson;
    use crate::protocol::{ChatMessage, ClientId, RoomId, Seq, UserName};
    use leptos::server::codee::{Decoder, Encoder};

    fn message(text: &str) -> ChatMessage {
        ChatMessage {
            room: RoomId("general".into()),
            seq: Seq(7),
            author: UserName("ada".into()),
            text: text.into(),
            client_id: ClientId("c-1".into()),
            ts: 1,
            guest: false,
            rich: None,
            ..Default::default()
        }
    }

    #[test]
    fn page_json_round_trips_any_text() {
        for text in [
            "plain",
            r#"she said "hi" and it's fine"#,
            r#"back\slash \" \' \\"#,
            "</script><script>alert(1)</script>",
            "naïve café ☕ 日本語 \u{1F600}",
            "line\nbreak\ttab\u{0}nul",
            "'\"'\"",
        ] {
            let page = vec![message(text)];
            let encoded = <PageJson as Encoder<Vec<ChatMessage>>>::encode(&page).unwrap();
            let decoded: Vec<ChatMessage> = <PageJson as Decoder<_>>::decode(&encoded).unwrap();
            assert_eq!(decoded, page, "{text:?} came back different from {encoded}");
        }
    }

    /// A shared page encodes as its list does, and a change makes a private copy, leaving
    /// the shared one as it was.
    #[test]
    fn shared_messages_encode_as_a_list_and_copy_on_change() {
        use super::Messages;
        let list = vec![message("a </script> <b>"), message("c \"d\"")];
        let mut mine = Messages::from(list.clone());
        let shared = mine.clone();
        let json = |m: &Messages| serde_json::to_string(m).unwrap();
        assert_eq!(json(&mine), serde_json::to_string(&list).unwrap());
        mine.list_mut().pop();
        assert_eq!(json(&mine), serde_json::to_string(&list[..1]).unwrap());
        assert_eq!(json(&shared), serde_json::to_string(&list).unwrap());
        let decoded: Messages = serde_json::from_str(&json(&shared)).unwrap();
        assert_eq!(decoded, shared);
    }

    /// The point of the encoding: keys and plain strings carry no `"` for the page's quoting
    /// to escape.
    #[test]
    fn page_json_has_no_double_quotes_to_escape() {
        let encoded = <PageJson as Encoder<_>>::encode(&vec![message("hello")]).unwrap();
        assert!(!encoded.contains('"'), "{encoded}");
        assert!(
            encoded.starts_with("[{'room':'general','seq':7"),
            "{encoded}"
        );
    }
}
