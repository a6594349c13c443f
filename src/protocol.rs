//! The wire contract between a browser tab and the hub: every frame that crosses `/ws`.
//!
//! This module is shared by the server and the browser, so it depends on serde only (no
//! Leptos, no tokio). Frames are JSON objects tagged by `"type"`; `docs/protocol.md`
//! documents each one with an example and changes in the same commit as this file.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bumped on any incompatible change to a frame; sent in `welcome` so a stale tab can reload.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text frame the server reads; bigger frames are closed with 1009.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Longest message body, counted in characters (not bytes).
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// The reactions a message can have, in the order the picker offers them.
pub const REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "😮", "🙏"];

/// Most changes a rejoin may replay; more is answered with `recovered: false`.
pub const MAX_CHANGE_REPLAY: usize = 10_000;

/// Most rooms one connection follows with `watch`.
pub const MAX_WATCHED: usize = 64;

/// A client sends `typing` at most once per this interval while someone types.
pub const TYPING_INTERVAL_MS: u64 = 3_000;

/// "… is typing" lapses this long after the last `typing` frame; longer than
/// [`TYPING_INTERVAL_MS`], so a steady typist never blinks out.
pub const TYPING_LAPSE_MS: u64 = 6_000;

/// A room's name, validated by [`crate::names::parse_room`] before it reaches the hub.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub String);

/// A person's display name, validated by [`crate::names::parse_display_name`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserName(pub String);

/// Who a person is, whatever their display name: `a:<account id>` for an account,
/// `g:<guest session id>` for a guest. Two guests may share a name; they never share a key.
/// Presence, the connection cap and message de-duplication go by it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthorKey(pub String);

impl AuthorKey {
    /// The key of the account with this id.
    pub fn account(id: i64) -> AuthorKey {
        AuthorKey(format!("a:{id}"))
    }

    /// The key of the guest session with this id.
    pub fn guest(session_id: i64) -> AuthorKey {
        AuthorKey(format!("g:{session_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_guest(&self) -> bool {
        self.0.starts_with("g:")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A person as presence lists them: the name to show, whether they are a guest (shown as
/// such), and the key that tells two people with the same name apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Person {
    pub name: UserName,
    pub key: AuthorKey,
    #[serde(default, skip_serializing_if = "is_false")]
    pub guest: bool,
}

impl Person {
    /// Sorted as the Online list shows people: by name, then by key.
    pub fn order(&self, other: &Person) -> std::cmp::Ordering {
        (&self.name, &self.key).cmp(&(&other.name, &other.key))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Per-room sequence number: the first message in a room is 1; 0 means "nothing yet".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

/// A sender-chosen id (a UUIDv7 string) that makes resending the same message harmless.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display_inner!(RoomId, UserName, Seq, ClientId);

impl RoomId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl UserName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One stored chat message as every client sees it, in its current state (edits,
/// deletion and reactions folded in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub room: RoomId,
    pub seq: Seq,
    pub author: UserName,
    pub text: String,
    pub client_id: ClientId,
    /// Server time the message was accepted, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// True when a guest wrote it (shown marked as a guest's, also after someone registers
    /// the same name). Absent means false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub guest: bool,
    /// The text's formatting ([`crate::format`]), made by the server; absent for plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rich: Option<Vec<crate::format::Node>>,
    /// Who wrote it: only they may edit or delete it.
    #[serde(default, skip_serializing_if = "AuthorKey::is_empty")]
    pub key: AuthorKey,
    /// The author changed the text after sending it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub edited: bool,
    /// The author deleted it: the text is gone (empty), from the store too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Who reacted with what, by emoji in the order first used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

/// A message that may mention people ([`ChatMessage::mentioning`]).
pub struct Mentioning<'a> {
    msg: &'a ChatMessage,
    /// The text in lower case.
    text: String,
    /// It says `@here`.
    here: bool,
}

impl Mentioning<'_> {
    pub fn seq(&self) -> Seq {
        self.msg.seq
    }

    /// See [`ChatMessage::mentions`].
    pub fn calls(&self, name: &str, key: &AuthorKey, online: bool) -> bool {
        self.msg.key != *key
            && ((online && self.here)
                || crate::names::mentions(&self.text, &crate::names::lower(name)))
    }
}

/// One emoji on a message and the people who chose it (never empty).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub people: Vec<Person>,
}

/// What a change does to the message it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    #[default]
    Edit,
    Delete,
    React,
}

/// A change to a stored message, numbered per room by `eseq` (see docs/protocol.md).
/// Applying one is idempotent: an edit sets the text, a deletion sets `deleted`, a reaction
/// sets one person's emoji on or off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub room: RoomId,
    pub eseq: Seq,
    /// The message it changes.
    pub seq: Seq,
    pub kind: ChangeKind,
    /// Edit: the new text, and its formatting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rich: Option<Vec<crate::format::Node>>,
    /// React: which emoji, whether it is now on, and whose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Person>,
    pub ts: u64,
}

impl ChatMessage {
    /// Whether this message calls on the person named `name` with `key` (`@name`, or `@here`
    /// while they are `online` in the room); never their own message, never a deleted one.
    pub fn mentions(&self, name: &str, key: &AuthorKey, online: bool) -> bool {
        self.mentioning()
            .is_some_and(|m| m.calls(name, key, online))
    }

    /// This message as mentions are looked for in it, its text lowered once for however
    /// many people are checked; `None` when it can mention nobody (no `@`, or deleted).
    pub fn mentioning(&self) -> Option<Mentioning<'_>> {
        if self.deleted || !self.text.contains('@') {
            return None;
        }
        let text = crate::names::lower(&self.text);
        let here = crate::names::mentions(&text, crate::names::HERE);
        Some(Mentioning {
            msg: self,
            text,
            here,
        })
    }

    /// Applies `change` (which names this message); idempotent.
    pub fn apply(&mut self, change: &Change) {
        match change.kind {
            ChangeKind::Edit if !self.deleted => {
                if let Some(text) = &change.text {
                    self.text.clone_from(text);
                    self.rich.clone_from(&change.rich);
                    self.edited = true;
                }
            }
            ChangeKind::Edit => {}
            ChangeKind::Delete => {
                self.deleted = true;
                self.text.clear();
                self.rich = None;
                self.reactions.clear();
            }
            ChangeKind::React => {
                if let (Some(emoji), Some(on), Some(by), false) =
                    (&change.emoji, change.on, &change.by, self.deleted)
                {
                    self.react(emoji, by, on);
                }
            }
        }
    }

    /// Sets `by`'s `emoji` on or off; false if that changed nothing.
    pub fn react(&mut self, emoji: &str, by: &Person, on: bool) -> bool {
        let at = self.reactions.iter().position(|r| r.emoji == emoji);
        match (at, on) {
            (Some(i), true) => {
                let people = &mut self.reactions[i].people;
                if people.iter().any(|p| p.key == by.key) {
                    return false;
                }
                people.push(by.clone());
            }
            (None, true) => self.reactions.push(Reaction {
                emoji: emoji.to_string(),
                people: vec![by.clone()],
            }),
            (Some(i), false) => {
                let people = &mut self.reactions[i].people;
                let before = people.len();
                people.retain(|p| p.key != by.key);
                if people.len() == before {
                    return false;
                }
                if people.is_empty() {
                    self.reactions.remove(i);
                }
            }
            (None, false) => return false,
        }
        true
    }
}

/// Frames a browser sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Subscribe to a room. With `since`, the server first replays every message after it.
    Join {
        room: RoomId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Seq>,
        /// The epoch `since` was read under; a different epoch means the history was reset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        /// With `since`: the highest change (`eseq`) the client has applied; the server
        /// replays the changes after it too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        changes_since: Option<Seq>,
    },
    /// Unsubscribe; presence for this tab ends at once (no grace period).
    Leave { room: RoomId },
    /// Post a message to a joined room.
    Send {
        room: RoomId,
        client_id: ClientId,
        text: String,
    },
    /// This person has read a joined room up to `seq` (their other tabs and devices are told,
    /// and the mark is kept for their next visit).
    Read { room: RoomId, seq: Seq },
    /// Replaces the rooms this connection follows for `activity` (the sidebar), at most
    /// [`MAX_WATCHED`]; rooms this person may not enter are left out.
    Watch { rooms: Vec<RoomId> },
    /// The sender is typing in a joined room. Clients send it at most every few seconds
    /// while keys are pressed; it is fanned out to the room's other people and never stored.
    Typing { room: RoomId },
    /// Replace the text of one's own message.
    Edit {
        room: RoomId,
        seq: Seq,
        text: String,
    },
    /// Delete one's own message (its text leaves the store).
    Delete { room: RoomId, seq: Seq },
    /// Set one's reaction `emoji` (one of [`REACTIONS`]) on a message on or off.
    React {
        room: RoomId,
        seq: Seq,
        emoji: String,
        on: bool,
    },
    /// Heartbeat; answered with `pong`.
    Ping,
    /// Answer to the server's `ping`.
    Pong,
}

/// Frames the server sends.
///
/// Decoding goes through [`ServerFrame`], a flat struct: serde's own decoder for an
/// internally tagged enum buffers every frame into a generic tree first, and that machinery
/// would be about 3 % of the browser bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "ServerFrame")]
pub enum ServerMsg {
    /// First frame on every connection.
    Welcome {
        version: u32,
        user: UserName,
        /// How often the server pings; a client that hears nothing for ~2.5× this may reconnect.
        heartbeat_ms: u64,
        /// The connection's person: their messages are the ones they may edit and delete.
        #[serde(default, skip_serializing_if = "AuthorKey::is_empty")]
        key: AuthorKey,
    },
    /// The answer to `join`: the full presence state, then any replayed `message` frames.
    Joined {
        room: RoomId,
        online: Vec<UserName>,
        /// The room's latest sequence number at the moment of joining.
        last_seq: Seq,
        epoch: u64,
        /// False when `since` could not be served (too old, or another epoch): the client must
        /// reload the latest history window and mark the gap.
        recovered: bool,
        /// The same people as `online`, each with their key and guest mark (`online` lists
        /// only names, so two guests called "Ada" are two equal entries there).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        people: Vec<Person>,
        /// The room's latest change number (`eseq`) at the moment of joining.
        #[serde(default)]
        last_eseq: Seq,
    },
    /// The answer to `leave`.
    Left { room: RoomId },
    /// Presence diff for a joined room.
    Presence {
        room: RoomId,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        joins: Vec<UserName>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        leaves: Vec<UserName>,
        /// The people behind `joins`, with their keys and guest marks.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        arrived: Vec<Person>,
        /// The people behind `leaves`: remove exactly these keys.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        departed: Vec<Person>,
    },
    /// A chat message, live or replayed.
    Message(ChatMessage),
    /// A change to a message (edit, deletion, reaction), live or replayed.
    Change(Change),
    /// A followed room's latest sequence number: sent on `watch` and after every new message.
    /// `mentioned` lists the messages since (on `watch`: after the person's read mark) that
    /// mention the person (see [`ChatMessage::mentions`]); absent when none do.
    Activity {
        room: RoomId,
        last_seq: Seq,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentioned: Vec<Seq>,
    },
    /// This person read `room` up to `seq` on another connection.
    Read { room: RoomId, seq: Seq },
    /// Someone else in the room is typing (sent for each of their `typing` frames; it lapses
    /// after [`TYPING_LAPSE_MS`] without another, or when their next message arrives).
    Typing {
        room: RoomId,
        user: UserName,
        key: AuthorKey,
        #[serde(default, skip_serializing_if = "is_false")]
        guest: bool,
    },
    /// The sender's own message was stored under `seq` (also sent for a duplicate resend).
    Ack {
        room: RoomId,
        client_id: ClientId,
        seq: Seq,
    },
    /// This connection fell behind and frames for `room` were not queued; join again with
    /// `since` to recover.
    Resync { room: RoomId },
    /// A request could not be served; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
        /// With `rate_limited`: how long to wait before sending again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// The message an `edit`, `delete` or `react` named, when that is what was refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
    },
    /// Heartbeat; answer with `pong`.
    Ping,
    /// Answer to the client's `ping`.
    Pong,
}

/// Every field any server frame has, as read off the wire; [`ServerMsg`]'s decoder checks
/// that the fields its `type` needs are there.
#[derive(Deserialize)]
struct ServerFrame {
    #[serde(rename = "type")]
    kind: String,
    room: Option<RoomId>,
    version: Option<u32>,
    user: Option<UserName>,
    heartbeat_ms: Option<u64>,
    online: Option<Vec<UserName>>,
    last_seq: Option<Seq>,
    epoch: Option<u64>,
    recovered: Option<bool>,
    #[serde(default)]
    joins: Vec<UserName>,
    #[serde(default)]
    leaves: Vec<UserName>,
    #[serde(default)]
    people: Vec<Person>,
    #[serde(default)]
    arrived: Vec<Person>,
    #[serde(default)]
    departed: Vec<Person>,
    #[serde(default)]
    guest: bool,
    seq: Option<Seq>,
    author: Option<UserName>,
    text: Option<String>,
    client_id: Option<ClientId>,
    ts: Option<u64>,
    rich: Option<Vec<crate::format::Node>>,
    key: Option<AuthorKey>,
    #[serde(default)]
    edited: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    reactions: Vec<Reaction>,
    #[serde(default)]
    mentioned: Vec<Seq>,
    last_eseq: Option<Seq>,
    eseq: Option<Seq>,
    #[serde(rename = "kind")]
    change: Option<ChangeKind>,
    emoji: Option<String>,
    on: Option<bool>,
    by: Option<Person>,
    code: Option<ErrorCode>,
    message: Option<String>,
    retry_after_ms: Option<u64>,
}

impl TryFrom<ServerFrame> for ServerMsg {
    type Error = String;

    fn try_from(f: ServerFrame) -> Result<Self, String> {
        let kind: &str = &f.kind;
        // A missing field is noted and the frame refused at the end: one way out rather than
        // one per field keeps this decoder a third of its size in the bundle.
        let missing = std::cell::Cell::new(None);
        let msg = match kind {
            "welcome" => ServerMsg::Welcome {
                version: needed(f.version, "version", &missing),
                user: needed(f.user, "user", &missing),
                heartbeat_ms: needed(f.heartbeat_ms, "heartbeat_ms", &missing),
                key: f.key.unwrap_or_default(),
            },
            "joined" => ServerMsg::Joined {
                room: needed(f.room, "room", &missing),
                online: needed(f.online, "online", &missing),
                last_seq: needed(f.last_seq, "last_seq", &missing),
                epoch: needed(f.epoch, "epoch", &missing),
                recovered: needed(f.recovered, "recovered", &missing),
                people: f.people,
                last_eseq: f.last_eseq.unwrap_or_default(),
            },
            "left" => ServerMsg::Left {
                room: needed(f.room, "room", &missing),
            },
            "presence" => ServerMsg::Presence {
                room: needed(f.room, "room", &missing),
                joins: f.joins,
                leaves: f.leaves,
                arrived: f.arrived,
                departed: f.departed,
            },
            "message" => ServerMsg::Message(ChatMessage {
                room: needed(f.room, "room", &missing),
                seq: needed(f.seq, "seq", &missing),
                author: needed(f.author, "author", &missing),
                text: needed(f.text, "text", &missing),
                client_id: needed(f.client_id, "client_id", &missing),
                ts: needed(f.ts, "ts", &missing),
                guest: f.guest,
                rich: f.rich,
                key: f.key.unwrap_or_default(),
                edited: f.edited,
                deleted: f.deleted,
                reactions: f.reactions,
            }),
            "change" => ServerMsg::Change(Change {
                room: needed(f.room, "room", &missing),
                eseq: needed(f.eseq, "eseq", &missing),
                seq: needed(f.seq, "seq", &missing),
                kind: needed(f.change, "kind", &missing),
                text: f.text,
                rich: f.rich,
                emoji: f.emoji,
                on: f.on,
                by: f.by,
                ts: needed(f.ts, "ts", &missing),
            }),
            "activity" => ServerMsg::Activity {
                room: needed(f.room, "room", &missing),
                last_seq: needed(f.last_seq, "last_seq", &missing),
                mentioned: f.mentioned,
            },
            "read" => ServerMsg::Read {
                room: needed(f.room, "room", &missing),
                seq: needed(f.seq, "seq", &missing),
            },
            "typing" => ServerMsg::Typing {
                room: needed(f.room, "room", &missing),
                user: needed(f.user, "user", &missing),
                key: needed(f.key, "key", &missing),
                guest: f.guest,
            },
            "ack" => ServerMsg::Ack {
                room: needed(f.room, "room", &missing),
                client_id: needed(f.client_id, "client_id", &missing),
                seq: needed(f.seq, "seq", &missing),
            },
            "resync" => ServerMsg::Resync {
                room: needed(f.room, "room", &missing),
            },
            "error" => ServerMsg::Error {
                code: needed(f.code, "code", &missing),
                message: needed(f.message, "message", &missing),
                room: f.room,
                client_id: f.client_id,
                retry_after_ms: f.retry_after_ms,
                seq: f.seq,
            },
            "ping" => ServerMsg::Ping,
            "pong" => ServerMsg::Pong,
            _ => return Err(format!("unknown frame type {kind:?}")),
        };
        match missing.get() {
            Some(field) => Err(format!("missing field `{field}` in a {kind:?} frame")),
            None => Ok(msg),
        }
    }
}

/// `value`, or (noting `field` in `missing`) a stand-in that is never used.
fn needed<T: Default>(
    value: Option<T>,
    field: &'static str,
    missing: &std::cell::Cell<Option<&'static str>>,
) -> T {
    value.unwrap_or_else(|| {
        missing.set(Some(field));
        T::default()
    })
}

/// Machine-readable error kinds carried by `error` frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON, or a known frame had missing or wrongly typed fields.
    #[default]
    BadFrame,
    /// The frame's `type` is not one this server knows.
    UnknownType,
    /// The room name is not 1–32 letters, digits, `-` or `_`.
    InvalidRoom,
    /// `send` or `leave` for a room this connection has not joined.
    NotJoined,
    /// A message with no visible text.
    EmptyMessage,
    /// A message over [`MAX_MESSAGE_CHARS`] characters.
    MessageTooLong,
    /// The client id is not 1–64 printable ASCII characters.
    InvalidClientId,
    /// The server could not complete the request (for instance the store failed); retry later.
    Internal,
    /// Over the message rate limit; resend after `retry_after_ms`. A sustained flood is
    /// closed with 1008.
    RateLimited,
    /// The room is private (or a direct conversation) and this user is not a member; or,
    /// with `seq`, the message is someone else's to edit or delete.
    Forbidden,
    /// With `seq`: no such message in the room, or it was deleted (nothing to change).
    NotFound,
    /// With `seq`: a reaction that is not one of [`REACTIONS`].
    InvalidReaction,
}

/// WebSocket close codes the server uses, so both sides name them the same way.
pub mod close {
    /// The server is going away (shutdown or restart); reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// A binary frame: this protocol is text only.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that was not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Too many bad frames in a row, or a missed heartbeat.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame larger than [`super::MAX_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// The session ended (logged out, or a guest's name was registered by someone): do not
    /// reconnect with the same cookie; log in or choose a name again.
    pub const SESSION_ENDED: u16 = 4001;
}

impl ClientMsg {
    /// Decodes one text frame, telling unknown frame types apart from malformed ones.
    pub fn decode(text: &str) -> Result<ClientMsg, (ErrorCode, String)> {
        match serde_json::from_str::<ClientMsg>(text) {
            Ok(msg) => Ok(msg),
            Err(err) => {
                let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                    (
                        ErrorCode::BadFrame,
                        format!("The frame is not valid JSON: {e}."),
                    )
                })?;
                match value.get("type").and_then(|t| t.as_str()) {
                    Some(t) if !KNOWN_CLIENT_TYPES.contains(&t) => Err((
                        ErrorCode::UnknownType,
                        format!("Unknown frame type {t:?}; see docs/protocol.md."),
                    )),
                    Some(_) => Err((ErrorCode::BadFrame, format!("Malformed frame: {err}."))),
                    None => Err((
                        ErrorCode::BadFrame,
                        "Every frame needs a string \"type\" field.".to_string(),
                    )),
                }
            }
        }
    }
}

const KNOWN_CLIENT_TYPES: [&str; 8] = [
    "join", "leave", "send", "read", "watch", "typing", "ping", "pong",
];

/// Decodes JSON the way all of the browser bundle does: from bytes. serde_json's string and
/// byte readers are separate instantiations of every decoder, and server functions' answers
/// arrive as bytes, so reading everything else as bytes too keeps one copy of each decoder.
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    from_json_bytes(text.as_bytes())
}

/// [`from_json`] for text already in bytes.
pub fn from_json_bytes<T: serde::de::DeserializeOwned>(json: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(json)
}

impl ServerMsg {
    /// Serializes a frame. Serializing these types cannot fail (no maps with non-string keys).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"ping\"}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_round_trip_with_snake_case_tags() {
        let join = ClientMsg::Join {
            room: RoomId("general".into()),
            since: Some(Seq(7)),
            epoch: Some(3),
            changes_since: None,
        };
        let text = serde_json::to_string(&join).unwrap();
        assert_eq!(
            text,
            r#"{"type":"join","room":"general","since":7,"epoch":3}"#
        );
        assert_eq!(ClientMsg::decode(&text).unwrap(), join);
        assert_eq!(
            ClientMsg::decode(r#"{"type":"join","room":"general"}"#).unwrap(),
            ClientMsg::Join {
                room: RoomId("general".into()),
                since: None,
                epoch: None,
                changes_since: None
            }
        );
    }

    #[test]
    fn typing_is_a_room_and_nothing_else() {
        let typing = ClientMsg::Typing {
            room: RoomId("general".into()),
        };
        let text = serde_json::to_string(&typing).unwrap();
        assert_eq!(text, r#"{"type":"typing","room":"general"}"#);
        assert_eq!(ClientMsg::decode(&text).unwrap(), typing);
        assert_eq!(
            ClientMsg::decode(r#"{"type":"typing","room":"general","text":"x"}"#)
                .unwrap_err()
                .0,
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn decode_tells_unknown_types_from_malformed_frames() {
        assert_eq!(
            ClientMsg::decode("{nope").unwrap_err().0,
            ErrorCode::BadFrame
        );
        assert_eq!(
            ClientMsg::decode(r#"{"type":"shout"}"#).unwrap_err().0,
            ErrorCode::UnknownType
        );
        assert_eq!(
            ClientMsg::decode(r#"{"type":"send","room":"general"}"#)
                .unwrap_err()
                .0,
            ErrorCode::BadFrame
        );
        assert_eq!(
            ClientMsg::decode("[1,2]").unwrap_err().0,
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn every_server_frame_decodes_to_what_was_encoded() {
        let room = || RoomId("general".into());
        let frames = [
            ServerMsg::Welcome {
                version: PROTOCOL_VERSION,
                user: UserName("Ada".into()),
                heartbeat_ms: 20_000,
                key: Default::default(),
            },
            ServerMsg::Joined {
                room: room(),
                online: vec![UserName("Ada".into()), UserName("Bo".into())],
                last_seq: Seq(9),
                epoch: 2,
                recovered: false,
                people: vec![
                    Person {
                        name: UserName("Ada".into()),
                        key: AuthorKey::account(1),
                        guest: false,
                    },
                    Person {
                        name: UserName("Bo".into()),
                        key: AuthorKey::guest(7),
                        guest: true,
                    },
                ],
                last_eseq: Default::default(),
            },
            ServerMsg::Left { room: room() },
            ServerMsg::Presence {
                room: room(),
                joins: vec![UserName("Cy".into())],
                leaves: vec![],
                arrived: vec![Person {
                    name: UserName("Cy".into()),
                    key: AuthorKey::guest(3),
                    guest: true,
                }],
                departed: vec![],
            },
            ServerMsg::Presence {
                room: room(),
                joins: vec![],
                leaves: vec![UserName("Bo".into())],
                arrived: vec![],
                departed: vec![Person {
                    name: UserName("Bo".into()),
                    key: AuthorKey::guest(7),
                    guest: true,
                }],
            },
            ServerMsg::Ack {
                room: room(),
                client_id: ClientId("c1".into()),
                seq: Seq(3),
            },
            ServerMsg::Resync { room: room() },
            ServerMsg::Activity {
                room: room(),
                last_seq: Seq(12),
                mentioned: vec![],
            },
            ServerMsg::Activity {
                room: room(),
                last_seq: Seq(14),
                mentioned: vec![Seq(13), Seq(14)],
            },
            ServerMsg::Read {
                room: room(),
                seq: Seq(11),
            },
            ServerMsg::Typing {
                room: room(),
                user: UserName("Cy".into()),
                key: AuthorKey::guest(3),
                guest: true,
            },
            ServerMsg::Typing {
                room: room(),
                user: UserName("Ada".into()),
                key: AuthorKey::account(1),
                guest: false,
            },
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                message: "Slow down.".into(),
                room: Some(room()),
                client_id: Some(ClientId("c2".into())),
                retry_after_ms: Some(250),
                seq: None,
            },
            ServerMsg::Error {
                code: ErrorCode::BadFrame,
                message: "Malformed.".into(),
                room: None,
                client_id: None,
                retry_after_ms: None,
                seq: None,
            },
            ServerMsg::Ping,
            ServerMsg::Pong,
        ];
        for frame in frames {
            let text = frame.encode();
            assert_eq!(
                serde_json::from_str::<ServerMsg>(&text).unwrap(),
                frame,
                "{text}"
            );
        }
    }

    #[test]
    fn a_server_frame_without_a_field_its_type_needs_is_refused_by_name() {
        let err = serde_json::from_str::<ServerMsg>(r#"{"type":"ack","room":"general","seq":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_id") && err.contains("ack"), "{err}");
        let err = serde_json::from_str::<ServerMsg>(r#"{"type":"shout"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shout"), "{err}");
        assert!(serde_json::from_str::<ServerMsg>(r#"{"room":"general"}"#).is_err());
        assert!(serde_json::from_str::<ServerMsg>(r#"{"type":"left","room":7}"#).is_err());
    }

    #[test]
    fn message_frames_flatten_the_message() {
        let msg = ServerMsg::Message(ChatMessage {
            room: RoomId("general".into()),
            seq: Seq(1),
            author: UserName("Ada".into()),
            text: "hi".into(),
            client_id: ClientId("c1".into()),
            ts: 5,
            guest: false,
            rich: None,
            ..Default::default()
        });
        let text = msg.encode();
        assert!(
            text.starts_with(r#"{"type":"message","room":"general","seq":1"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ServerMsg>(&text).unwrap(), msg);
    }

    /// Frames from before guests were marked still parse (a guest mark defaults to false,
    /// people lists to empty), and a registered author's message is byte for byte as before.
    #[test]
    fn frames_without_the_guest_fields_still_parse() {
        let old = r#"{"type":"message","room":"general","seq":1,"author":"Ada","text":"hi","client_id":"c1","ts":5}"#;
        let ServerMsg::Message(m) = serde_json::from_str::<ServerMsg>(old).unwrap() else {
            panic!("a message frame");
        };
        assert!(!m.guest);
        assert_eq!(ServerMsg::Message(m.clone()).encode(), old);
        let guest = ServerMsg::Message(ChatMessage { guest: true, ..m }).encode();
        assert!(guest.ends_with(r#","guest":true}"#), "{guest}");
        let joined = r#"{"type":"joined","room":"general","online":["Ada"],"last_seq":0,"epoch":1,"recovered":true}"#;
        assert!(matches!(
            serde_json::from_str::<ServerMsg>(joined).unwrap(),
            ServerMsg::Joined { people, .. } if people.is_empty()
        ));
    }
}
