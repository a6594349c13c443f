//! People are told apart by who they are (account, or guest session), never by the name they
//! show: over a real port, two guests who both call themselves "Ada" get a connection cap
//! each, are two people in presence, and store messages with the same client id as two
//! authors; a guest's message stays marked as a guest's after someone registers the name.

mod common;

use common::{
    call, connect_cookie, guest_cookie, http, no_limits, page_data, quick_config, register,
    secured as server, start_secured, try_connect, Client, TestServer,
};
use hearth::protocol::{ClientId, ClientMsg, RoomId, ServerMsg};
use hearth::server::limits::SecurityConfig;
use hearth::server::store::sql::SqlStore;
use hearth::server::store::{MemoryStore, Store};
use std::sync::Arc;

/// Sends `text` to `room` with `client_id` and returns the sequence number its ack names.
async fn say(client: &mut Client, room: &str, client_id: &str, text: &str) -> u64 {
    client
        .send(&ClientMsg::Send {
            room: RoomId(room.into()),
            client_id: ClientId(client_id.into()),
            text: text.into(),
        })
        .await;
    client.acks(1).await[0].1
}

/// The server-rendered rows of `/r/{room}` (each `<li class="message…">…</li>`).
async fn page_rows(server: &TestServer, room: &str) -> Vec<String> {
    let page = http(server.addr, "GET", &format!("/r/{room}"), None, &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    page.body
        .split(r#"<li class="message"#)
        .skip(1)
        .map(|row| row.split("</li>").next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn two_guests_named_alike_each_get_their_own_connection_cap() {
    let server = server(SecurityConfig {
        connections_per_user: 1,
        ..no_limits()
    })
    .await;
    let first = guest_cookie(server.addr, "Ada").await;
    let second = guest_cookie(server.addr, "Ada").await;
    let _one = connect_cookie(server.addr, &first).await;
    let other = try_connect(server.addr, &[("cookie", &second)], None).await;
    assert!(
        other.is_ok(),
        "the second guest called Ada was refused as if she were the first: {:?}",
        other.err()
    );
    // Each one's cap is still hers: the first guest's second tab is over it.
    let again = try_connect(server.addr, &[("cookie", &first)], None).await;
    assert_eq!(again.err().map(|r| r.status), Some(429));
}

#[tokio::test]
async fn two_guests_named_alike_are_two_people_in_presence() {
    let server = server(no_limits()).await;
    let mut first = connect_cookie(server.addr, &guest_cookie(server.addr, "Ada").await).await;
    let mut second = connect_cookie(server.addr, &guest_cookie(server.addr, "Ada").await).await;
    let mut bob = connect_cookie(server.addr, &guest_cookie(server.addr, "Bob").await).await;
    first.join("lobby").await;
    second.join("lobby").await;
    let ServerMsg::Joined { online, people, .. } = bob.join("lobby").await else {
        unreachable!()
    };
    let names: Vec<&str> = online.iter().map(|u| u.0.as_str()).collect();
    assert_eq!(names, ["Ada", "Ada", "Bob"], "one entry per person");
    assert_eq!(people.len(), 3, "{people:?}");
    assert!(
        people.iter().all(|p| p.guest),
        "all three are guests: {people:?}"
    );
    assert_ne!(people[0].key, people[1].key, "{people:?}");

    // One Ada leaving takes only her away: the diff names her key.
    first
        .send(&ClientMsg::Leave {
            room: RoomId("lobby".into()),
        })
        .await;
    let departed = loop {
        match bob.recv().await {
            ServerMsg::Presence { departed, .. } if !departed.is_empty() => break departed,
            ServerMsg::Presence { .. } => {}
            other => panic!("expected a presence diff, got {other:?}"),
        }
    };
    assert_eq!(departed.len(), 1, "{departed:?}");
    assert!(departed[0].key == people[0].key || departed[0].key == people[1].key);
    // And a page rendered now lists the other Ada, marked as a guest.
    let page = http(server.addr, "GET", "/r/lobby", None, &[]).await;
    assert_eq!(
        page.body
            .matches(r#"<bdi>Ada</bdi><span class="guest"> (guest)</span>"#)
            .count(),
        1,
        "{}",
        page.body
    );
}

/// Two guests called Ada send a message each with the same client id to one room: two
/// authors, so both are stored (under the SQLite store and the in-memory one).
#[tokio::test]
async fn de_duplication_goes_by_author_so_two_guests_with_one_client_id_are_both_stored() {
    let dir = std::env::temp_dir().join(format!("hearth-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stores: [Arc<dyn Store>; 2] = [
        Arc::new(MemoryStore::new(7, 10_000)),
        Arc::new(SqlStore::open(&dir, 0).await.unwrap()),
    ];
    for store in stores {
        let server = start_secured(store, quick_config(), no_limits()).await;
        let mut first = connect_cookie(server.addr, &guest_cookie(server.addr, "Ada").await).await;
        let mut second = connect_cookie(server.addr, &guest_cookie(server.addr, "Ada").await).await;
        first.join("lobby").await;
        second.join("lobby").await;
        let one = say(&mut first, "lobby", "same-id", "from the first Ada").await;
        let two = say(&mut second, "lobby", "same-id", "from the second Ada").await;
        assert_ne!(
            one, two,
            "the second guest's message was taken for a resend of the first's"
        );
        // A resend by the same guest is still one message.
        assert_eq!(say(&mut second, "lobby", "same-id", "again").await, two);
        let rows = page_rows(&server, "lobby").await;
        assert_eq!(rows.len(), 2, "{rows:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A guest's message keeps its guest mark when someone registers the guest's name
/// afterwards: in the server-rendered page, its data, and a replay over the socket.
#[tokio::test]
async fn a_guests_message_stays_marked_guest_after_someone_registers_the_name() {
    let server = server(no_limits()).await;
    let mut guest = connect_cookie(server.addr, &guest_cookie(server.addr, "Ada").await).await;
    guest.join("lobby").await;
    say(&mut guest, "lobby", "g1", "said as a guest").await;
    let account = register(server.addr, "Ada", "correct horse battery").await;
    let mut ada = connect_cookie(server.addr, &account).await;
    ada.join("lobby").await;
    say(&mut ada, "lobby", "a1", "said with an account").await;

    let rows = page_rows(&server, "lobby").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].contains("said as a guest") && rows[0].contains("(guest)"),
        "the guest's message is not marked as a guest's: {}",
        rows[0]
    );
    assert!(
        rows[1].contains("said with an account") && !rows[1].contains("(guest)"),
        "the account's message is marked as a guest's: {}",
        rows[1]
    );

    // The history a page loads, and a replay over the socket, carry the mark too.
    let page = http(server.addr, "GET", "/r/lobby", None, &[]).await;
    let data = page_data(&page.body).expect("the room loads");
    let marks: Vec<_> = data
        .messages
        .iter()
        .map(|m| (m.text.as_str(), m.guest))
        .collect();
    assert_eq!(
        marks,
        [("said as a guest", true), ("said with an account", false)]
    );
    ada.send(&ClientMsg::Join {
        room: RoomId("lobby".into()),
        since: Some(hearth::protocol::Seq(0)),
        epoch: None,
        changes_since: None,
    })
    .await;
    // An older page of history, as the browser loads it when scrolling up.
    let older =
        call::<hearth::api::LoadHistory>(server.addr, &[("room", "lobby"), ("before", "3")], None)
            .await;
    assert_eq!(older.status, 200, "{older:?}");
    let older: Vec<hearth::protocol::ChatMessage> = serde_json::from_str(&older.body).unwrap();
    let marks: Vec<(&str, bool)> = older.iter().map(|m| (m.text.as_str(), m.guest)).collect();
    assert_eq!(
        marks,
        [("said as a guest", true), ("said with an account", false)]
    );

    // Her own live message came before the rejoin's answer; the replay follows `joined`.
    while !matches!(ada.recv().await, ServerMsg::Joined { .. }) {}
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        if let ServerMsg::Message(m) = ada.recv().await {
            replayed.push((m.text, m.guest));
        }
    }
    assert_eq!(
        replayed,
        [
            ("said as a guest".to_string(), true),
            ("said with an account".to_string(), false)
        ]
    );
}
