//! Rooms a stranger can make, and the private-room race, over a real port: creating a room
//! needs a session and fits a per-person and per-address budget, the home page lists rooms a
//! page at a time however many exist, and a join racing the creation of a private room
//! never lets a non-member in.

mod common;

use common::{call, connect_cookie, guest_cookie, http, quick_config, register, start};
use hearth::api::CreateRoom;
use hearth::protocol::{ClientMsg, RoomId, ServerMsg};
use hearth::server::hub::HubConfig;
use std::time::Duration;

#[tokio::test]
async fn creating_a_room_without_a_session_is_refused() {
    let server = start(quick_config()).await;
    let r = call::<CreateRoom>(server.addr, &[("name", "nocookie")], None).await;
    assert_eq!(r.status, 401, "a post without a session: {r:?}");
    assert!(
        r.body.contains("choose a display name") || r.body.contains("Log in"),
        "the refusal says what to do: {}",
        r.body
    );
    assert!(
        !server
            .hub
            .store()
            .room_exists(&RoomId("nocookie".into()))
            .await
            .unwrap(),
        "nothing was created"
    );
}

#[tokio::test]
async fn a_room_creation_flood_gets_429_after_the_per_person_and_per_address_budgets() {
    let config = HubConfig {
        rooms_per_hour: 20,
        rooms_per_hour_per_address: 60,
        ..quick_config()
    };
    let server = start(config).await;
    // One person: 20 rooms, then 429 with a sentence and Retry-After.
    let ada = guest_cookie(server.addr, "ada").await;
    let mut created = 0;
    let mut refused = None;
    for i in 0..25 {
        let r = call::<CreateRoom>(server.addr, &[("name", &format!("ada{i}"))], Some(&ada)).await;
        if r.status < 400 {
            created += 1;
        } else {
            refused.get_or_insert(r);
        }
    }
    assert_eq!(created, 20, "one person creates at most 20 rooms an hour");
    let refused = refused.expect("a refusal");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(refused.body.contains("rooms"), "{}", refused.body);
    assert!(
        refused
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("retry-after")),
        "{refused:?}"
    );
    // The same room again is no creation: finding an existing public room is free.
    let r = call::<CreateRoom>(server.addr, &[("name", "ada0")], Some(&ada)).await;
    assert!(r.status < 400, "{r:?}");

    // New names from the same address share the address's budget of 60.
    let mut by_address = created;
    let mut first_refusal = None;
    'people: for who in ["bob", "cy", "dee", "eve"] {
        let cookie = guest_cookie(server.addr, who).await;
        for i in 0..20 {
            let r = call::<CreateRoom>(
                server.addr,
                &[("name", &format!("{who}{i}"))],
                Some(&cookie),
            )
            .await;
            if r.status >= 400 {
                first_refusal = Some(r);
                break 'people;
            }
            by_address += 1;
        }
    }
    assert_eq!(
        by_address, 60,
        "one address creates at most 60 rooms an hour"
    );
    assert_eq!(first_refusal.expect("a refusal").status, 429);
}

/// Reads frames until the answer to a join of `room`: true for `joined`, false for an error.
async fn admitted(client: &mut common::Client, room: &RoomId) -> bool {
    loop {
        match client.recv().await {
            ServerMsg::Joined { room: r, .. } if &r == room => return true,
            ServerMsg::Error { room: Some(r), .. } if &r == room => return false,
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_join_racing_a_private_room_creation_never_admits_a_non_member() {
    let config = HubConfig {
        // The non-member's joins of rooms that do not exist yet create them; give both
        // people room enough that no trial is decided by a budget.
        rooms_per_hour: 1_000,
        rooms_per_hour_per_address: 10_000,
        ..quick_config()
    };
    let server = start(config).await;
    let owner = register(server.addr, "owner", "password one").await;
    let eve = register(server.addr, "eve", "password two").await;
    let mut intruder = connect_cookie(server.addr, &eve).await;
    let (mut admissions, mut private) = (0, 0);
    for trial in 0..40u64 {
        let room = RoomId(format!("race{trial}"));
        let create = {
            let (addr, owner, name) = (server.addr, owner.clone(), room.0.clone());
            tokio::spawn(async move {
                call::<CreateRoom>(addr, &[("name", &name), ("private", "on")], Some(&owner)).await
            })
        };
        // Spread the join over the first milliseconds of the creation.
        tokio::time::sleep(Duration::from_micros(trial % 4 * 1000)).await;
        intruder
            .send(&ClientMsg::Join {
                room: room.clone(),
                since: None,
                epoch: None,
                changes_since: None,
            })
            .await;
        let created = create.await.unwrap();
        let joined = admitted(&mut intruder, &room).await;
        if created.status < 400 {
            private += 1;
            if joined {
                admissions += 1;
            }
        }
    }
    assert!(private > 0, "some trials made the room private");
    assert_eq!(
        admissions, 0,
        "a non-member was admitted to {admissions} of {private} private rooms"
    );
}

#[tokio::test]
async fn the_home_page_stays_small_with_thousands_of_rooms() {
    let server = start(quick_config()).await;
    for i in 0..3_000 {
        server
            .hub
            .store()
            .create_room(&RoomId(format!("flood-{i:05}")))
            .await
            .unwrap();
    }
    let guest = guest_cookie(server.addr, "ada").await;
    let home = http(server.addr, "GET", "/", None, &[("Cookie", &guest)]).await;
    assert_eq!(home.status, 200);
    let listed = home.body.matches("href=\"/r/flood-").count();
    assert!(
        home.body.len() < 64 * 1024,
        "home page is {} bytes with {listed} rooms listed",
        home.body.len()
    );
    assert!(listed <= 50, "{listed} rooms on one page");
    assert!(
        home.body.contains("href=\"/?page=1\""),
        "a link to more rooms that works without JavaScript"
    );
    let next = http(server.addr, "GET", "/?page=1", None, &[("Cookie", &guest)]).await;
    assert_eq!(next.status, 200);
    let first = home.body.split("href=\"/r/flood-").nth(1).unwrap()[..5].to_string();
    assert!(next.body.matches("href=\"/r/flood-").count() > 0);
    assert!(
        !next.body.contains(&format!("href=\"/r/flood-{first}\"")),
        "the next page lists other rooms"
    );
}

#[tokio::test]
async fn general_can_never_be_claimed_as_a_private_room() {
    let server = start(quick_config()).await;
    let ada = register(server.addr, "ada", "password one").await;
    let r = call::<CreateRoom>(
        server.addr,
        &[("name", "general"), ("private", "on")],
        Some(&ada),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("taken"), "{}", r.body);
    let mut gus = connect_cookie(server.addr, &guest_cookie(server.addr, "gus").await).await;
    gus.join("general").await;
}

#[tokio::test]
async fn a_join_of_a_room_that_does_not_exist_creates_it_only_within_the_budget() {
    let server = start(quick_config()).await;
    let cookie = guest_cookie(server.addr, "ada").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    let (mut joined, mut refusal) = (0, None);
    for i in 0..25 {
        let room = RoomId(format!("minted{i}"));
        ada.send(&ClientMsg::Join {
            room: room.clone(),
            since: None,
            epoch: None,
            changes_since: None,
        })
        .await;
        loop {
            match ada.recv().await {
                ServerMsg::Joined { room: r, .. } if r == room => {
                    joined += 1;
                    break;
                }
                ServerMsg::Error {
                    code,
                    message,
                    room: Some(r),
                    retry_after_ms,
                    ..
                } if r == room => {
                    refusal.get_or_insert((code, message, retry_after_ms));
                    break;
                }
                _ => {}
            }
        }
    }
    assert_eq!(joined, 20, "joins created {joined} rooms");
    let (code, message, retry_after_ms) = refusal.expect("a refusal");
    assert_eq!(code, hearth::protocol::ErrorCode::RateLimited);
    assert!(message.contains("rooms"), "{message}");
    assert!(retry_after_ms.is_some_and(|ms| ms > 0));
    // Rooms that exist are joined freely, by anyone.
    let mut bob = connect_cookie(server.addr, &guest_cookie(server.addr, "bob").await).await;
    bob.join("minted0").await;
    bob.join("general").await;
}
