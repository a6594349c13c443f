//! Read marks and followed rooms over a real port: `read` raises the person's mark and tells
//! their other connections (never anyone else), marks are kept for the next visit, `watch`
//! follows rooms' latest sequence numbers without joining them (and which new messages
//! mention the person), and bad uses are refused.

mod common;

use common::{connect, connect_cookie, guest_cookie, quick_config, start, Client};
use hearth::protocol::{AuthorKey, ClientId, ClientMsg, ErrorCode, RoomId, Seq, ServerMsg};

fn room(name: &str) -> RoomId {
    RoomId(name.into())
}

fn read(name: &str, seq: u64) -> ClientMsg {
    ClientMsg::Read {
        room: room(name),
        seq: Seq(seq),
    }
}

fn watch(rooms: &[&str]) -> ClientMsg {
    ClientMsg::Watch {
        rooms: rooms.iter().map(|r| room(r)).collect(),
    }
}

async fn say(client: &mut Client, room_name: &str, id: &str) {
    say_text(client, room_name, id, &format!("text {id}")).await;
}

/// The key of the person a `joined` answer lists under `name`.
fn key_of(joined: &ServerMsg, name: &str) -> AuthorKey {
    match joined {
        ServerMsg::Joined { people, .. } => people
            .iter()
            .find(|p| p.name.0 == name)
            .map(|p| p.key.clone())
            .expect("listed"),
        other => panic!("expected joined, got {other:?}"),
    }
}

/// The next frame that is neither presence nor a message.
async fn next_other(client: &mut Client) -> ServerMsg {
    loop {
        match client.next_non_presence().await {
            ServerMsg::Message(_) => continue,
            other => return other,
        }
    }
}

/// Nothing but messages (and presence) is queued for `client`: a ping sent now is answered
/// after them, before anything else.
async fn only_messages_pending(client: &mut Client) {
    client.send(&ClientMsg::Ping).await;
    loop {
        match client.next_non_presence().await {
            ServerMsg::Message(_) => continue,
            ServerMsg::Pong => return,
            other => panic!("{}: expected only messages, got {other:?}", client.name),
        }
    }
}

#[tokio::test]
async fn a_read_mark_reaches_the_persons_other_connections_and_is_kept() {
    let server = start(quick_config()).await;
    let cookie = guest_cookie(server.addr, "Ada").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    let mut ada_joined_tab = connect_cookie(server.addr, &cookie).await;
    let mut ada_sidebar_tab = connect_cookie(server.addr, &cookie).await;
    let mut bob = connect(&server, "Bob").await;
    let joined = ada.join("design").await;
    let ada_key = key_of(&joined, "Ada");
    ada_joined_tab.join("design").await;
    bob.join("design").await;
    ada_sidebar_tab.send(&watch(&["design"])).await;
    assert!(matches!(
        next_other(&mut ada_sidebar_tab).await,
        ServerMsg::Activity {
            last_seq: Seq(0),
            ..
        }
    ));
    for i in 0..3 {
        say(&mut bob, "design", &format!("b{i}")).await;
    }

    ada.send(&read("design", 3)).await;
    for tab in [&mut ada_joined_tab, &mut ada_sidebar_tab] {
        loop {
            match next_other(tab).await {
                ServerMsg::Activity { .. } => continue,
                ServerMsg::Read { room: r, seq } => {
                    assert_eq!((r, seq), (room("design"), Seq(3)));
                    break;
                }
                other => panic!("expected read, got {other:?}"),
            }
        }
    }
    // Not the reader's own connection, and nobody else.
    only_messages_pending(&mut ada).await;
    only_messages_pending(&mut bob).await;

    // A mark that does not rise tells nobody; the kept mark is the highest.
    ada.send(&read("design", 2)).await;
    ada.expect_nothing_pending().await;
    ada_joined_tab.expect_nothing_pending().await;
    let marks = server.hub.reads().of(&ada_key).await.unwrap();
    assert_eq!(marks.get(&room("design")), Some(&Seq(3)));
}

#[tokio::test]
async fn a_followed_room_tells_each_new_sequence_number_until_unfollowed() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let mut bob = connect(&server, "Bob").await;
    bob.join("design").await;
    say(&mut bob, "design", "b0").await;

    ada.send(&watch(&["design", "design"])).await;
    match ada.next_non_presence().await {
        ServerMsg::Activity {
            room: r, last_seq, ..
        } => {
            assert_eq!((r, last_seq), (room("design"), Seq(1)))
        }
        other => panic!("expected activity, got {other:?}"),
    }
    say(&mut bob, "design", "b1").await;
    match ada.next_non_presence().await {
        ServerMsg::Activity { last_seq, .. } => assert_eq!(last_seq, Seq(2)),
        other => panic!("expected activity, got {other:?}"),
    }
    // Following is not joining: no messages, no presence for Ada in the room.
    ada.expect_nothing_pending().await;

    ada.send(&watch(&[])).await;
    ada.expect_nothing_pending().await;
    say(&mut bob, "design", "b2").await;
    ada.expect_nothing_pending().await;
}

#[tokio::test]
async fn reading_a_room_not_joined_and_following_too_many_are_refused() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    ada.send(&read("design", 1)).await;
    match ada.next_non_presence().await {
        ServerMsg::Error {
            code: ErrorCode::NotJoined,
            room: Some(r),
            ..
        } => assert_eq!(r, room("design")),
        other => panic!("expected not_joined, got {other:?}"),
    }
    let many: Vec<String> = (0..65).map(|i| format!("r{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    ada.send(&watch(&many)).await;
    match ada.next_non_presence().await {
        ServerMsg::Error {
            code: ErrorCode::BadFrame,
            message,
            ..
        } => assert!(message.contains("64"), "{message}"),
        other => panic!("expected bad_frame, got {other:?}"),
    }
    ada.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_tab_that_was_away_learns_the_marks_of_the_rooms_it_follows_again() {
    let server = start(quick_config()).await;
    let cookie = guest_cookie(server.addr, "Ada").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    let mut bob = connect(&server, "Bob").await;
    bob.join("design").await;
    bob.join("ops").await;
    for i in 0..4 {
        say(&mut bob, "design", &format!("b{i}")).await;
    }
    say(&mut bob, "ops", "o0").await;

    // The sidebar tab is away while another tab reads "design" up to 3.
    ada.join("design").await;
    ada.send(&read("design", 3)).await;
    only_messages_pending(&mut ada).await;
    let mut back = connect_cookie(server.addr, &cookie).await;
    back.send(&watch(&["design", "ops"])).await;
    let (mut activity, mut marks) = (Vec::new(), Vec::new());
    while activity.len() < 2 || marks.is_empty() {
        match next_other(&mut back).await {
            ServerMsg::Activity { room, last_seq, .. } => activity.push((room.0, last_seq.0)),
            ServerMsg::Read { room, seq } => marks.push((room.0, seq.0)),
            other => panic!("expected activity or read, got {other:?}"),
        }
    }
    activity.sort();
    assert_eq!(activity, [("design".into(), 4), ("ops".into(), 1)]);
    // Only the room with a mark has one; following it again tells nothing new.
    assert_eq!(marks, [("design".to_string(), 3)]);
    back.send(&watch(&["design", "ops"])).await;
    back.expect_nothing_pending().await;
}

async fn say_text(client: &mut Client, room_name: &str, id: &str, text: &str) -> Seq {
    client
        .send(&ClientMsg::Send {
            room: room(room_name),
            client_id: ClientId(id.into()),
            text: text.into(),
        })
        .await;
    Seq(client.acks(1).await[0].1)
}

/// The next `activity` for `client` (past the `read` that may come with one): its latest
/// sequence number and mentions.
async fn activity(client: &mut Client) -> (Seq, Vec<Seq>) {
    loop {
        match next_other(client).await {
            ServerMsg::Activity {
                last_seq,
                mentioned,
                ..
            } => return (last_seq, mentioned),
            ServerMsg::Read { .. } => continue,
            other => panic!("{}: expected activity, got {other:?}", client.name),
        }
    }
}

#[tokio::test]
async fn a_followed_room_says_which_new_messages_mention_the_follower() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let cy_cookie = guest_cookie(server.addr, "Cy").await;
    let mut cy = connect_cookie(server.addr, &cy_cookie).await;
    let mut bob = connect(&server, "Bob").await;
    bob.join("design").await;
    for follower in [&mut ada, &mut cy] {
        follower.send(&watch(&["design"])).await;
        assert_eq!(activity(follower).await, (Seq(0), vec![]));
    }

    let s1 = say_text(&mut bob, "design", "b1", "@ada can you look?").await;
    assert_eq!(activity(&mut ada).await, (s1, vec![s1]));
    assert_eq!(activity(&mut cy).await, (s1, vec![]));
    // Not a mention: inside an address, or a longer name.
    let s2 = say_text(&mut bob, "design", "b2", "mail bob@ada.org, or @Adam").await;
    assert_eq!(activity(&mut ada).await, (s2, vec![]));
    assert_eq!(activity(&mut cy).await, (s2, vec![]));

    // `@here` calls on those online in the room: Cy is, on another tab; Ada is not.
    let mut cy_in_room = connect_cookie(server.addr, &cy_cookie).await;
    cy_in_room.join("design").await;
    let s3 = say_text(&mut bob, "design", "b3", "standup in 5 @here").await;
    assert_eq!(activity(&mut ada).await, (s3, vec![]));
    assert_eq!(activity(&mut cy).await, (s3, vec![s3]));
}

#[tokio::test]
async fn following_again_and_the_room_page_count_the_unread_mentions() {
    let server = start(quick_config()).await;
    let cookie = guest_cookie(server.addr, "Ada").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    let mut bob = connect(&server, "Bob").await;
    ada.join("design").await;
    bob.join("design").await;
    let s1 = say_text(&mut bob, "design", "b1", "@Ada first").await;
    ada.send(&read("design", s1.0)).await;
    ada.send(&ClientMsg::Leave {
        room: room("design"),
    })
    .await;
    let s2 = say_text(&mut bob, "design", "b2", "@ADA second").await;
    say_text(&mut bob, "design", "b3", "nobody").await;
    let s4 = say_text(&mut bob, "design", "b4", "and @ada third").await;
    // Ada's own mention of herself is not one.
    let mut ada_tab = connect_cookie(server.addr, &cookie).await;
    ada_tab.join("design").await;
    say_text(&mut ada_tab, "design", "a1", "@Ada note to self").await;

    // A tab that starts following is told the ones after the read mark.
    let mut sidebar_tab = connect_cookie(server.addr, &cookie).await;
    sidebar_tab.send(&watch(&["design"])).await;
    assert_eq!(activity(&mut sidebar_tab).await, (Seq(5), vec![s2, s4]));

    // So is a page of another room, in its sidebar.
    let page = common::http(server.addr, "GET", "/r/lobby", None, &[("Cookie", &cookie)]).await;
    let data = common::page_data(&page.body).expect("the room loads");
    let design = data.sidebar.iter().find(|e| e.room == room("design"));
    let design = design.expect("design is in the sidebar");
    assert_eq!((design.unread(), design.unread_mentions()), (4, 2));
    assert!(page
        .body
        .contains(r#"aria-label="design, 4 unread, 2 mentions""#));
}
