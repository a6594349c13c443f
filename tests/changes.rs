//! Edits, deletions and reactions over a real port: a change reaches everyone in the room as
//! a `change` frame with the room's next `eseq`, is folded into the stored message, is
//! replayed to a connection that was away (once, in order), and every bad use gets its
//! typed error naming the message.

mod common;

use common::{connect, quick_config, start, Client};
use hearth::protocol::{
    Change, ChangeKind, ChatMessage, ClientId, ClientMsg, ErrorCode, RoomId, Seq, ServerMsg,
};

fn room(name: &str) -> RoomId {
    RoomId(name.into())
}

async fn say(client: &mut Client, id: &str, text: &str) -> Seq {
    client
        .send(&ClientMsg::Send {
            room: room("design"),
            client_id: ClientId(id.into()),
            text: text.into(),
        })
        .await;
    let acks = client.acks(1).await;
    Seq(acks[0].1)
}

fn edit(seq: Seq, text: &str) -> ClientMsg {
    ClientMsg::Edit {
        room: room("design"),
        seq,
        text: text.into(),
    }
}

fn delete(seq: Seq) -> ClientMsg {
    ClientMsg::Delete {
        room: room("design"),
        seq,
    }
}

fn react(seq: Seq, emoji: &str, on: bool) -> ClientMsg {
    ClientMsg::React {
        room: room("design"),
        seq,
        emoji: emoji.into(),
        on,
    }
}

/// The next frame that is neither presence nor a message must be a change.
async fn next_change(client: &mut Client) -> Change {
    loop {
        match client.next_non_presence().await {
            ServerMsg::Message(_) => continue,
            ServerMsg::Change(change) => return change,
            other => panic!("{}: expected a change, got {other:?}", client.name),
        }
    }
}

/// The next frame other than presence and messages must be an error of `code` naming
/// message `seq`.
async fn expect_refused(client: &mut Client, code: ErrorCode, seq: Seq) {
    let mut next = client.next_non_presence().await;
    while let ServerMsg::Message(_) = next {
        next = client.next_non_presence().await;
    }
    match next {
        ServerMsg::Error {
            code: got,
            seq: Some(about),
            room: Some(r),
            ..
        } => {
            assert_eq!((got, about, r), (code, seq, room("design")));
        }
        other => panic!(
            "{}: expected {code:?} about {seq}, got {other:?}",
            client.name
        ),
    }
}

async fn stored(server: &common::TestServer, seq: Seq) -> ChatMessage {
    let list = server
        .hub
        .store()
        .latest(&room("design"), None, 50)
        .await
        .unwrap();
    list.into_iter().find(|m| m.seq == seq).expect("stored")
}

#[tokio::test]
async fn an_edit_and_a_deletion_reach_everyone_and_only_the_author_may_make_them() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let mut bob = connect(&server, "Bob").await;
    ada.join("design").await;
    bob.join("design").await;
    let first = say(&mut ada, "a1", "Mornin all").await;
    let second = say(&mut ada, "a2", "a secret").await;

    ada.send(&edit(first, "Morning all")).await;
    for client in [&mut ada, &mut bob] {
        let change = next_change(client).await;
        assert_eq!(
            (change.eseq, change.seq, change.kind, change.text.as_deref()),
            (Seq(1), first, ChangeKind::Edit, Some("Morning all"))
        );
    }
    let msg = stored(&server, first).await;
    assert!(msg.edited && msg.text == "Morning all", "{msg:?}");

    // Bob may neither edit nor delete Ada's message; nobody hears of his attempts.
    bob.send(&edit(first, "Bob was here")).await;
    expect_refused(&mut bob, ErrorCode::Forbidden, first).await;
    bob.send(&delete(first)).await;
    expect_refused(&mut bob, ErrorCode::Forbidden, first).await;
    ada.expect_nothing_pending().await;

    ada.send(&delete(second)).await;
    for client in [&mut ada, &mut bob] {
        let change = next_change(client).await;
        assert_eq!((change.eseq, change.kind), (Seq(2), ChangeKind::Delete));
    }
    let msg = stored(&server, second).await;
    assert!(msg.deleted && msg.text.is_empty(), "{msg:?}");
    // A deleted message cannot be changed any more.
    ada.send(&edit(second, "back")).await;
    expect_refused(&mut ada, ErrorCode::NotFound, second).await;
}

#[tokio::test]
async fn reactions_are_one_per_person_per_emoji_and_toggle() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let mut bob = connect(&server, "Bob").await;
    ada.join("design").await;
    bob.join("design").await;
    let seq = say(&mut ada, "a1", "ship it?").await;

    bob.send(&react(seq, "👍", true)).await;
    let change = next_change(&mut ada).await;
    assert_eq!(
        (
            change.emoji.as_deref(),
            change.on,
            change.by.map(|p| p.name.0)
        ),
        (Some("👍"), Some(true), Some("Bob".to_string()))
    );
    next_change(&mut bob).await;
    // The same reaction again changes nothing, and tells nobody.
    bob.send(&react(seq, "👍", true)).await;
    bob.expect_nothing_pending().await;
    ada.send(&react(seq, "👍", true)).await;
    next_change(&mut bob).await;
    next_change(&mut ada).await;
    let msg = stored(&server, seq).await;
    let names: Vec<&str> = msg.reactions[0]
        .people
        .iter()
        .map(|p| p.name.0.as_str())
        .collect();
    assert_eq!(
        (msg.reactions[0].emoji.as_str(), names),
        ("👍", vec!["Bob", "Ada"])
    );

    bob.send(&react(seq, "👍", false)).await;
    assert_eq!(next_change(&mut ada).await.on, Some(false));
    next_change(&mut bob).await;
    let msg = stored(&server, seq).await;
    assert_eq!(msg.reactions[0].people.len(), 1);

    bob.send(&react(seq, "🐍", true)).await;
    expect_refused(&mut bob, ErrorCode::InvalidReaction, seq).await;
}

#[tokio::test]
async fn bad_changes_get_typed_errors_naming_the_message() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    ada.send(&edit(Seq(1), "x")).await;
    match ada.next_non_presence().await {
        ServerMsg::Error {
            code: ErrorCode::NotJoined,
            ..
        } => {}
        other => panic!("expected not_joined, got {other:?}"),
    }
    ada.join("design").await;
    ada.send(&delete(Seq(9))).await;
    expect_refused(&mut ada, ErrorCode::NotFound, Seq(9)).await;
    let seq = say(&mut ada, "a1", "hello").await;
    ada.send(&edit(seq, "   ")).await;
    expect_refused(&mut ada, ErrorCode::EmptyMessage, seq).await;
    ada.send(&edit(seq, &"x".repeat(4001))).await;
    expect_refused(&mut ada, ErrorCode::MessageTooLong, seq).await;
    // Unchanged text is no change.
    ada.send(&edit(seq, "hello")).await;
    ada.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_connection_that_was_away_gets_the_changes_it_missed_once_and_in_order() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    ada.join("design").await;
    let first = say(&mut ada, "a1", "one").await;
    let second = say(&mut ada, "a2", "two").await;
    ada.send(&edit(first, "one, edited")).await;
    next_change(&mut ada).await;

    // Bob read the room up to here, then went away.
    let mut bob = connect(&server, "Bob").await;
    let (last_seq, last_eseq, epoch) = match bob.join("design").await {
        ServerMsg::Joined {
            last_seq,
            last_eseq,
            epoch,
            ..
        } => (last_seq, last_eseq, epoch),
        other => panic!("expected joined, got {other:?}"),
    };
    assert_eq!((last_seq, last_eseq), (second, Seq(1)));
    bob.hang_up().await;

    ada.send(&edit(first, "one, edited again")).await;
    ada.send(&react(second, "🎉", true)).await;
    ada.send(&delete(second)).await;
    for _ in 0..3 {
        next_change(&mut ada).await;
    }

    let mut bob = connect(&server, "Bob").await;
    bob.send(&ClientMsg::Join {
        room: room("design"),
        since: Some(last_seq),
        epoch: Some(epoch),
        changes_since: Some(last_eseq),
    })
    .await;
    match bob.next_non_presence().await {
        ServerMsg::Joined {
            recovered,
            last_eseq,
            ..
        } => assert!(recovered && last_eseq == Seq(4)),
        other => panic!("expected joined, got {other:?}"),
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let change = next_change(&mut bob).await;
        got.push((change.eseq.0, change.kind));
    }
    assert_eq!(
        got,
        [
            (2, ChangeKind::Edit),
            (3, ChangeKind::React),
            (4, ChangeKind::Delete)
        ]
    );
    bob.expect_nothing_pending().await;
}
