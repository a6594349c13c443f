//! Hearth's JSON protocol as the generator speaks it, in the app's own types
//! (`hearth::protocol`): the generator sends and reads exactly the frames a browser does, and a
//! change to a frame that it would mis-read fails to compile or fails this module's tests.
//!
//! Client frames are [`ClientMsg`] values, serialized. A server frame is read in two steps: every
//! frame as a [`Frame`], which holds only its kind and a `message` frame's `seq` and `text`
//! (borrowed from the frame's bytes unless the text has escapes), and the few kinds whose other
//! fields matter (`welcome`, `joined`, `error`) again in full, as a [`ServerMsg`]. `message`
//! frames are nearly all the generator reads, and it runs at the benchmark's ceiling, so they
//! get no allocation.

use hearth::protocol::{ClientMsg, RoomId, Seq, ServerMsg};
use serde::Deserialize;
use std::borrow::Cow;

/// A client frame as sent on the wire.
pub fn encode(msg: &ClientMsg) -> String {
    // These frames hold strings and integers only, which always serialize.
    serde_json::to_string(msg).expect("a client frame serializes")
}

/// A `join` frame for `room`; with `since`, the sequence number and epoch to replay after.
pub fn join(room: &RoomId, since: Option<(Seq, u64)>) -> String {
    encode(&ClientMsg::Join {
        room: room.clone(),
        since: since.map(|(seq, _)| seq),
        epoch: since.map(|(_, epoch)| epoch),
        changes_since: None,
    })
}

/// The kind of a server frame: [`ServerMsg`]'s `type` tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Welcome,
    Joined,
    Left,
    Presence,
    Message,
    Ack,
    Resync,
    Error,
    Ping,
    Pong,
    /// A kind this generator does not know; it is ignored.
    #[serde(other)]
    Other,
}

/// A server frame as every arrival is read: its kind, and for a `message` frame its sequence
/// number and text. Every other field is skipped unread.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(default)]
    pub seq: Option<Seq>,
    /// Empty when absent. Not an `Option`: serde borrows a `Cow` only as a field's own type.
    #[serde(default, borrow)]
    pub text: Cow<'a, str>,
}

/// The kind of `frame` and what a `message` frame carries, or `None` if it is not a frame.
pub fn read(frame: &str) -> Option<Frame<'_>> {
    serde_json::from_str(frame).ok()
}

/// The whole of `frame`, or `None` if it is not a valid server frame.
pub fn decode(frame: &str) -> Option<ServerMsg> {
    serde_json::from_str(frame).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth::protocol::{ChatMessage, ClientId, ErrorCode, UserName};

    fn message(author: &str, text: &str) -> ServerMsg {
        ServerMsg::Message(ChatMessage {
            room: RoomId("bench-0".into()),
            seq: Seq(43),
            author: UserName(author.into()),
            text: text.into(),
            client_id: ClientId("c".into()),
            ts: 1,
            guest: true,
            rich: None,
            ..Default::default()
        })
    }

    #[test]
    fn message_frames_give_seq_and_text_borrowed() {
        // An author whose name looks like the fields the generator reads.
        let f = message(r#"a","text":"x","seq":9"#, "ab1s0:1:2:xx").encode();
        let frame = read(&f).unwrap();
        assert_eq!(frame.kind, Kind::Message);
        assert_eq!(frame.seq, Some(Seq(43)));
        assert!(matches!(frame.text, Cow::Borrowed("ab1s0:1:2:xx")));
    }

    #[test]
    fn texts_with_escapes_are_read_whole() {
        let f = message("Ada", "say \"hi\"\n").encode();
        assert_eq!(read(&f).unwrap().text, "say \"hi\"\n");
    }

    #[test]
    fn every_server_frame_kind_is_known() {
        let room = || RoomId("bench-0".into());
        let frames = [
            (
                ServerMsg::Welcome {
                    version: 1,
                    user: UserName("Ada".into()),
                    heartbeat_ms: 20_000,
                    key: Default::default(),
                },
                Kind::Welcome,
            ),
            (
                ServerMsg::Joined {
                    room: room(),
                    online: vec![UserName("Ada".into())],
                    last_seq: Seq(9),
                    epoch: 2,
                    recovered: true,
                    people: vec![],
                    last_eseq: Default::default(),
                },
                Kind::Joined,
            ),
            (ServerMsg::Left { room: room() }, Kind::Left),
            (
                ServerMsg::Presence {
                    room: room(),
                    joins: vec![UserName("Bo".into())],
                    leaves: vec![],
                    arrived: vec![],
                    departed: vec![],
                },
                Kind::Presence,
            ),
            (message("Ada", "hi"), Kind::Message),
            (
                ServerMsg::Ack {
                    room: room(),
                    client_id: ClientId("c".into()),
                    seq: Seq(3),
                },
                Kind::Ack,
            ),
            (ServerMsg::Resync { room: room() }, Kind::Resync),
            (
                ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    message: "Slow down.".into(),
                    room: Some(room()),
                    client_id: None,
                    retry_after_ms: Some(250),
                    seq: None,
                },
                Kind::Error,
            ),
            (ServerMsg::Ping, Kind::Ping),
            (ServerMsg::Pong, Kind::Pong),
        ];
        for (msg, kind) in frames {
            let f = msg.encode();
            assert_eq!(read(&f).map(|f| f.kind), Some(kind), "{f}");
            assert_eq!(decode(&f), Some(msg));
        }
        assert_eq!(read(r#"{"type":"shout"}"#).unwrap().kind, Kind::Other);
        assert!(read("{nope").is_none());
    }

    #[test]
    fn joins_ask_for_a_replay_only_with_since() {
        let room = RoomId("bench-0".into());
        assert_eq!(join(&room, None), r#"{"type":"join","room":"bench-0"}"#);
        let rejoin = join(&room, Some((Seq(7), 3)));
        assert_eq!(
            ClientMsg::decode(&rejoin).unwrap(),
            ClientMsg::Join {
                room,
                since: Some(Seq(7)),
                epoch: Some(3),
                changes_since: None
            }
        );
    }
}
