//! Typing over a real port: a `typing` frame reaches the room's other people at once, never
//! the typist's own tabs; it is never stored or replayed; it needs a joined room; and a
//! typing flood is refused like a message flood.

mod common;

use common::{
    connect, connect_cookie, guest_cookie, no_limits, quick_config, secured, start, Client,
};
use hearth::protocol::{ClientId, ClientMsg, ErrorCode, RoomId, ServerMsg};
use hearth::server::hub::HubConfig;
use hearth::server::limits::SecurityConfig;
use hearth::server::room::TYPISTS_SHOWN;

fn typing(room: &str) -> ClientMsg {
    ClientMsg::Typing {
        room: RoomId(room.into()),
    }
}

/// The next frame other than presence must say that `name` is typing in `room`.
async fn expect_typing(client: &mut Client, room: &str, name: &str) {
    match client.next_non_presence().await {
        ServerMsg::Typing {
            room: r,
            user,
            guest,
            ..
        } => {
            assert_eq!((r.0.as_str(), user.0.as_str()), (room, name));
            assert!(guest, "guests are marked as guests");
        }
        other => panic!("{}: expected {name} typing, got {other:?}", client.name),
    }
}

#[tokio::test]
async fn typing_reaches_the_others_in_the_room_and_never_the_typist() {
    let server = start(quick_config()).await;
    let ada_cookie = guest_cookie(server.addr, "Ada").await;
    let mut ada = connect_cookie(server.addr, &ada_cookie).await;
    let mut ada_other_tab = connect_cookie(server.addr, &ada_cookie).await;
    let mut bob = connect(&server, "Bob").await;
    let mut cy = connect(&server, "Cy").await;
    for client in [&mut ada, &mut ada_other_tab, &mut bob] {
        client.join("design").await;
    }
    cy.join("elsewhere").await;

    ada.send(&typing("design")).await;
    expect_typing(&mut bob, "design", "Ada").await;
    // Neither of Ada's tabs hears about herself, and nobody outside the room hears at all.
    ada.expect_nothing_pending().await;
    ada_other_tab.expect_nothing_pending().await;
    cy.expect_nothing_pending().await;

    bob.send(&typing("design")).await;
    expect_typing(&mut ada, "design", "Bob").await;
    expect_typing(&mut ada_other_tab, "design", "Bob").await;
    bob.expect_nothing_pending().await;
}

#[tokio::test]
async fn typing_is_neither_stored_nor_replayed() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    ada.join("design").await;
    ada.send(&typing("design")).await;
    ada.send(&ClientMsg::Send {
        room: RoomId("design".into()),
        client_id: ClientId("m1".into()),
        text: "hello".into(),
    })
    .await;
    ada.acks(1).await;

    // A later joiner replaying from the start gets the message and nothing else.
    let mut bob = connect(&server, "Bob").await;
    bob.send(&ClientMsg::Join {
        room: RoomId("design".into()),
        since: Some(hearth::protocol::Seq(0)),
        epoch: None,
        changes_since: None,
    })
    .await;
    let joined = common::joined(bob.next_non_presence().await);
    assert_eq!(joined.last_seq, 1);
    assert_eq!(bob.next_message().await.text, "hello");
    bob.expect_nothing_pending().await;
    let stored = server
        .hub
        .store()
        .latest(&RoomId("design".into()), None, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
}

#[tokio::test]
async fn typing_outside_a_joined_room_is_refused() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    ada.send(&typing("design")).await;
    match ada.next_non_presence().await {
        ServerMsg::Error {
            code: ErrorCode::NotJoined,
            room: Some(room),
            ..
        } => assert_eq!(room.0, "design"),
        other => panic!("expected not_joined, got {other:?}"),
    }
    // A room name that cannot exist is a bad frame, as for every other frame naming a room.
    ada.send_raw(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"typing"}"#,
    ))
    .await;
    match ada.next_non_presence().await {
        ServerMsg::Error {
            code: ErrorCode::BadFrame,
            ..
        } => {}
        other => panic!("expected bad_frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_typing_flood_is_refused_like_a_message_flood() {
    let server = secured(SecurityConfig {
        message_rate: 2.0,
        message_burst: 5.0,
        flood_strikes: 10,
        ..no_limits()
    })
    .await;
    let mut bob = connect(&server, "Bob").await;
    bob.join("general").await;
    let mut eve = connect(&server, "Eve").await;
    eve.join("general").await; // one token
    for _ in 0..4 {
        eve.send(&typing("general")).await;
    }
    for _ in 0..4 {
        expect_typing(&mut bob, "general", "Eve").await;
    }
    eve.send(&typing("general")).await;
    match eve.next_non_presence().await {
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(ms),
            room: Some(room),
            ..
        } => {
            assert_eq!(room.0, "general");
            assert!((1..=1000).contains(&ms), "retry after {ms} ms");
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // The refused frame was not fanned out.
    bob.expect_nothing_pending().await;
}

/// Waits until everything `client` sent so far has been handled by its connection (and so
/// handed to the room, in order), skipping the typing frames it hears meanwhile.
async fn settle(client: &mut Client) {
    client.send(&ClientMsg::Ping).await;
    loop {
        match client.next_non_presence().await {
            ServerMsg::Pong => return,
            ServerMsg::Typing { .. } => continue,
            other => panic!("{}: expected pong, got {other:?}", client.name),
        }
    }
}

#[tokio::test]
async fn a_room_passes_on_only_a_few_typists_at_a_time() {
    let server = start(quick_config()).await;
    let mut reader = connect(&server, "Reader").await;
    reader.join("design").await;
    let mut typists = Vec::new();
    for i in 0..TYPISTS_SHOWN + 2 {
        let mut typist = connect(&server, &format!("T{i}")).await;
        typist.join("design").await;
        typists.push(typist);
    }
    // Everyone types, one after the other, then the first one again: all within one
    // 3-second window, so the last two newcomers are not passed on, and a typist already
    // shown still is.
    for typist in typists.iter_mut() {
        typist.send(&typing("design")).await;
        settle(typist).await;
    }
    typists[0].send(&typing("design")).await;
    settle(&mut typists[0]).await;
    for i in (0..TYPISTS_SHOWN).chain([0]) {
        match reader.next_non_presence().await {
            ServerMsg::Typing { user, .. } => assert_eq!(user.0, format!("T{i}")),
            other => panic!("expected T{i} typing, got {other:?}"),
        }
    }
    reader.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_room_with_more_people_online_than_the_limit_passes_no_typing_on() {
    let server = start(HubConfig {
        typing_room_limit: 2,
        ..quick_config()
    })
    .await;
    let mut ada = connect(&server, "Ada").await;
    let mut bob = connect(&server, "Bob").await;
    ada.join("design").await;
    bob.join("design").await;
    ada.send(&typing("design")).await;
    expect_typing(&mut bob, "design", "Ada").await;

    // A third person makes the room too big to show typing; Ada's next frame is handled
    // (no error) and reaches nobody, while messages still do.
    let mut cy = connect(&server, "Cy").await;
    cy.join("design").await;
    ada.send(&typing("design")).await;
    ada.send(&ClientMsg::Send {
        room: RoomId("design".into()),
        client_id: ClientId("after".into()),
        text: "after typing".into(),
    })
    .await;
    for reader in [&mut bob, &mut cy] {
        match reader.next_non_presence().await {
            ServerMsg::Message(m) => assert_eq!(m.text, "after typing"),
            other => panic!("{}: expected the message, got {other:?}", reader.name),
        }
    }
}
