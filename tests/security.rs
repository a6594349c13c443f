//! Hostile input and access control over a real port: who may upgrade, who may enter which
//! room, what happens after logout, floods, and a seeded stream of malformed frames.

mod common;

use common::{
    call, connect_cookie, guest_cookie, http, no_limits, quick_config, register, secured as server,
    try_connect, Client,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use hearth::api::{CreateRoom, Invite, Login, Logout, OpenDirect, SetName};
use hearth::protocol::{ClientId, ClientMsg, ErrorCode, RoomId, ServerMsg};
use hearth::server::limits::SecurityConfig;
use hearth::server::store::MemoryStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

fn send(room: &str, id: &str, text: &str) -> ClientMsg {
    ClientMsg::Send {
        room: RoomId(room.into()),
        client_id: ClientId(id.into()),
        text: text.into(),
    }
}

fn join(room: &str) -> ClientMsg {
    ClientMsg::Join {
        room: RoomId(room.into()),
        since: None,
        epoch: None,
        changes_since: None,
    }
}

/// The next error frame's code and retry hint, skipping presence.
async fn next_error(client: &mut Client) -> (ErrorCode, Option<u64>) {
    match client.next_non_presence().await {
        ServerMsg::Error {
            code,
            retry_after_ms,
            ..
        } => (code, retry_after_ms),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cross_origin_upgrade_is_refused_and_listed_origins_are_not() {
    let server = server(SecurityConfig {
        allowed_origins: vec!["https://chat.example.com".into()],
        ..no_limits()
    })
    .await;
    let cookie = guest_cookie(server.addr, "Ada").await;
    let evil = try_connect(
        server.addr,
        &[("cookie", &cookie), ("origin", "https://evil.example")],
        None,
    )
    .await;
    assert_eq!(evil.err().map(|r| r.status), Some(403));
    let own = format!("http://{}", server.addr);
    for origin in [own.as_str(), "https://chat.example.com"] {
        let ok = try_connect(
            server.addr,
            &[("cookie", &cookie), ("origin", origin)],
            None,
        )
        .await;
        assert!(ok.is_ok(), "{origin} must be allowed");
    }
    // Forms on a foreign page cannot post either (login CSRF, spam with a visitor's cookie).
    let path = <SetName as leptos::server_fn::ServerFn>::PATH;
    let foreign = http(
        server.addr,
        "POST",
        path,
        Some("name=Mallory"),
        &[("Origin", "https://evil.example"), ("Cookie", &cookie)],
    )
    .await;
    assert_eq!(foreign.status, 403);
    assert!(foreign.session_cookie().is_none());
    let own_form = http(
        server.addr,
        "POST",
        path,
        Some("name=Ada2"),
        &[("Origin", &own), ("Accept", "application/json")],
    )
    .await;
    assert_eq!(own_form.status, 200, "{own_form:?}");
}

#[tokio::test]
async fn after_logout_frames_are_refused_and_the_cookie_is_dead() {
    let server = server(no_limits()).await;
    let cookie = register(server.addr, "ada", "correct horse battery").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    ada.join("general").await;
    ada.send(&send("general", "before", "still logged in"))
        .await;
    assert!(matches!(
        ada.next_non_presence().await,
        ServerMsg::Ack { .. }
    ));
    let _ = ada.next_message().await;

    let out = call::<Logout>(server.addr, &[], Some(&cookie)).await;
    assert!(out.status < 400, "logout: {out:?}");
    // The session's socket is closed by the server; a frame sent now is not stored.
    let _ = ada
        .ws
        .send(Message::text(
            serde_json::to_string(&send("general", "after", "logged out")).unwrap(),
        ))
        .await;
    assert_eq!(ada.expect_close().await, CloseCode::Library(4001));
    let stored = server
        .hub
        .store()
        .latest(&RoomId("general".into()), None, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "only the message sent before logout");
    assert_eq!(
        try_connect(server.addr, &[("cookie", &cookie)], None)
            .await
            .err()
            .map(|r| r.status),
        Some(401)
    );
}

#[tokio::test]
async fn registering_a_guests_name_ends_the_guests_open_connections() {
    let server = server(no_limits()).await;
    let mut watcher = common::connect(&server, "Watcher").await;
    watcher.join("general").await;
    let mut guest = common::connect(&server, "Zed").await;
    guest.join("general").await;
    register(server.addr, "zed", "a long password").await;
    // The guest's socket is closed at once; it can no longer speak as "Zed".
    let _ = guest
        .ws
        .send(Message::text(
            serde_json::to_string(&send("general", "g1", "I am Zed")).unwrap(),
        ))
        .await;
    assert_eq!(guest.expect_close().await, CloseCode::Library(4001));
    // The watcher sees presence changes, never a message from the old guest.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout_at(deadline, watcher.ws.next()).await
    {
        let frame: ServerMsg = serde_json::from_str(t.as_str()).unwrap();
        assert!(!matches!(frame, ServerMsg::Message(_)), "{frame:?}");
    }
    let stored = server
        .hub
        .store()
        .latest(&RoomId("general".into()), None, 10)
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_while_others_keep_chatting() {
    let server = server(SecurityConfig {
        message_rate: 2.0,
        message_burst: 5.0,
        flood_strikes: 10,
        ..no_limits()
    })
    .await;
    let mut bob = common::connect(&server, "Bob").await;
    bob.join("general").await;
    let mut eve = common::connect(&server, "Eve").await;
    eve.join("general").await; // one token
    for i in 0..4 {
        eve.send(&send("general", &format!("ok{i}"), "hello")).await;
    }
    for _ in 0..4 {
        assert!(matches!(
            eve.next_non_presence().await,
            ServerMsg::Ack { .. }
        ));
        let _ = eve.next_message().await;
    }
    // The bucket is empty: the next send is refused with a retry hint, naming its id so the
    // client can resend it.
    eve.send(&send("general", "x0", "too fast")).await;
    match eve.next_non_presence().await {
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            client_id: Some(id),
            retry_after_ms: Some(ms),
            ..
        } => {
            assert_eq!(id.0, "x0");
            assert!((1..=1000).contains(&ms), "retry after {ms} ms");
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // Keep flooding: after ten refusals the connection is closed with 1008.
    for i in 1..40 {
        if eve
            .ws
            .send(Message::text(
                serde_json::to_string(&send("general", &format!("x{i}"), "flood")).unwrap(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(eve.expect_close().await, CloseCode::Policy);
    // Bob saw Eve's four messages and nothing of the flood, and still chats.
    for _ in 0..4 {
        assert_eq!(bob.next_message().await.text, "hello");
    }
    bob.send(&send("general", "b1", "still here")).await;
    assert!(matches!(
        bob.next_non_presence().await,
        ServerMsg::Ack { .. }
    ));
    assert_eq!(bob.next_message().await.text, "still here");
}

#[tokio::test]
async fn upgrades_per_ip_and_connections_per_person_are_limited() {
    let server = server(SecurityConfig {
        upgrades_per_minute: 3,
        connections_per_user: 2,
        ..no_limits()
    })
    .await;
    let ada = guest_cookie(server.addr, "Ada").await;
    let _one = connect_cookie(server.addr, &ada).await;
    let _two = connect_cookie(server.addr, &ada).await;
    let third = try_connect(server.addr, &[("cookie", &ada)], None).await;
    assert_eq!(
        third.err().map(|r| r.status),
        Some(429),
        "a third tab is over the per-person limit"
    );
    // That was the third upgrade from this address in the minute; the fourth is refused
    // before the session is even looked at.
    let bob = guest_cookie(server.addr, "Bob").await;
    let fourth = try_connect(server.addr, &[("cookie", &bob)], None).await;
    let refused = fourth.err().expect("the fourth upgrade is refused");
    assert_eq!(refused.status, 429);
    assert!(refused.retry_after.is_some_and(|s| s >= 1), "{refused:?}");
}

#[tokio::test]
async fn login_attempts_are_throttled_and_errors_say_what_to_do() {
    let server = server(SecurityConfig {
        login_attempts: 3,
        ..no_limits()
    })
    .await;
    register(server.addr, "ada", "correct horse battery").await;
    for _ in 0..2 {
        let r = call::<Login>(
            server.addr,
            &[("name", "ada"), ("password", "wrong guess")],
            None,
        )
        .await;
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r.body.contains("do not match"), "{}", r.body);
    }
    // Registration counted as the first attempt for this name and address; this is the
    // fourth, even with the right password.
    let r = call::<Login>(
        server.addr,
        &[("name", "ADA"), ("password", "correct horse battery")],
        None,
    )
    .await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("Too many attempts"), "{}", r.body);
}

#[tokio::test]
async fn guests_cannot_take_registered_names_and_can_be_switched_off() {
    let server = server(no_limits()).await;
    register(server.addr, "Zoë", "a long password").await;
    let r = call::<SetName>(server.addr, &[("name", "zoë")], None).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("registered account"), "{}", r.body);
    let cookie = register(server.addr, "ada", "correct horse battery").await;
    assert!(cookie.starts_with("hearth_session="));
    let r = http(
        server.addr,
        "POST",
        <Login as leptos::server_fn::ServerFn>::PATH,
        Some("name=ada&password=correct%20horse%20battery"),
        &[("Accept", "application/json")],
    )
    .await;
    let set_cookie = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .expect("login sets a cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    assert!(!set_cookie.contains("Secure"), "plain http: no Secure flag");

    let members_only = common::start_secured(
        Arc::new(MemoryStore::new(1, 100)),
        quick_config(),
        SecurityConfig {
            allow_guests: false,
            ..no_limits()
        },
    )
    .await;
    let r = call::<SetName>(members_only.addr, &[("name", "Gus")], None).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("does not allow guests"), "{}", r.body);
}

#[tokio::test]
async fn private_rooms_and_direct_messages_are_for_members_only() {
    let server = server(no_limits()).await;
    let ada = register(server.addr, "ada", "password one").await;
    let bob = register(server.addr, "bob", "password two").await;
    let eve = register(server.addr, "eve", "password six").await;
    let gus = guest_cookie(server.addr, "gus").await;

    let r = call::<CreateRoom>(
        server.addr,
        &[("name", "plans"), ("private", "on")],
        Some(&ada),
    )
    .await;
    assert!(r.status < 400, "{r:?}");
    let r = call::<CreateRoom>(
        server.addr,
        &[("name", "plans2"), ("private", "on")],
        Some(&gus),
    )
    .await;
    assert_eq!(r.status, 400, "guests cannot create private rooms");

    let mut a = connect_cookie(server.addr, &ada).await;
    a.join("plans").await;
    a.send(&send("plans", "s1", "the secret")).await;
    assert!(matches!(a.next_non_presence().await, ServerMsg::Ack { .. }));

    // A non-member can neither join over the socket nor read the history over HTTP.
    let mut e = connect_cookie(server.addr, &eve).await;
    e.send(&join("plans")).await;
    assert_eq!(next_error(&mut e).await.0, ErrorCode::Forbidden);
    e.send(&send("plans", "e1", "let me in")).await;
    assert_eq!(next_error(&mut e).await.0, ErrorCode::NotJoined);
    let page = http(server.addr, "GET", "/r/plans", None, &[("Cookie", &eve)]).await;
    assert_eq!(page.status, 404);
    assert!(!page.body.contains("the secret"));
    let history = call::<hearth::api::LoadHistory>(
        server.addr,
        &[("room", "plans"), ("before", "100")],
        Some(&eve),
    )
    .await;
    assert_eq!(history.status, 404);
    assert!(!history.body.contains("the secret"));
    let list = call::<hearth::api::ListRooms>(server.addr, &[], Some(&eve)).await;
    assert!(!list.body.contains("plans"), "{}", list.body);

    // Invited, Bob gets in and reads it.
    let r = call::<Invite>(
        server.addr,
        &[("room", "plans"), ("name", "BOB")],
        Some(&ada),
    )
    .await;
    assert!(r.status < 400, "{r:?}");
    let page = http(server.addr, "GET", "/r/plans", None, &[("Cookie", &bob)]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("the secret"));

    // A direct conversation: its two members only.
    let r = call::<OpenDirect>(server.addr, &[("name", "bob")], Some(&ada)).await;
    assert!(r.status < 400, "{r:?}");
    let dm: String = serde_json::from_str(&r.body).expect("the room id");
    assert!(dm.starts_with("dm-"));
    let mut b = connect_cookie(server.addr, &bob).await;
    b.join(&dm).await;
    e.send(&join(&dm)).await;
    assert_eq!(next_error(&mut e).await.0, ErrorCode::Forbidden);
    let mut g = connect_cookie(server.addr, &gus).await;
    g.send(&join(&dm)).await;
    assert_eq!(next_error(&mut g).await.0, ErrorCode::Forbidden);
    // Nobody can squat a direct-message name as a public room.
    g.send(&join("dm-9-10")).await;
    assert_eq!(next_error(&mut g).await.0, ErrorCode::Forbidden);
    let r = call::<CreateRoom>(server.addr, &[("name", "dm-1-99")], Some(&gus)).await;
    assert_eq!(r.status, 400);
}

/// A small deterministic generator, so a failure replays exactly (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// One malformed (or hostile but well-formed) frame.
fn malformed(rng: &mut Rng) -> Message {
    let valid = [
        r#"{"type":"join","room":"general"}"#,
        r#"{"type":"send","room":"general","client_id":"c1","text":"hi"}"#,
        r#"{"type":"leave","room":"general"}"#,
        r#"{"type":"ping"}"#,
    ];
    let junk = [
        "",
        "null",
        "[]",
        "{}",
        "1e999",
        "\"type\"",
        "{\"type\":null}",
        "{\"type\":7}",
        "{\"type\":\"send\"}",
        "{\"type\":\"join\",\"room\":[\"a\"]}",
        "{\"type\":\"join\",\"room\":\"a b\"}",
        "{\"type\":\"join\",\"room\":\"\u{202e}x\"}",
        "{\"type\":\"join\",\"room\":\"general\",\"since\":-1}",
        "{\"type\":\"join\",\"room\":\"general\",\"since\":1e30}",
        "{\"type\":\"send\",\"room\":\"general\",\"client_id\":\"\",\"text\":\"x\"}",
        "{\"type\":\"send\",\"room\":\"general\",\"client_id\":\"c\",\"text\":\"\\u0000\"}",
        "{\"type\":\"send\",\"room\":\"nowhere\",\"client_id\":\"c\",\"text\":\"x\"}",
        "{\"type\":\"welcome\",\"version\":1}",
        "{\"type\":\"ack\"}",
        "{\"type\":\"ping\",\"x\":{}}",
        "{\"type\":\"leave\",\"room\":\"never-joined\"}",
        "\u{feff}{\"type\":\"ping\"}",
    ];
    match rng.below(8) {
        // A valid frame cut short.
        0 => {
            let v = rng.pick(&valid);
            let cut = rng.below(v.len());
            Message::text(v[..cut].to_string())
        }
        // A valid frame with one byte replaced by a random printable character.
        1 => {
            let v = rng.pick(&valid);
            let mut bytes = v.as_bytes().to_vec();
            let at = rng.below(bytes.len());
            bytes[at] = 0x20 + rng.below(0x5f) as u8;
            Message::text(String::from_utf8_lossy(&bytes).to_string())
        }
        // Random Unicode.
        2 => {
            let len = rng.below(200);
            let text: String = (0..len)
                .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'))
                .collect();
            Message::text(text)
        }
        // Deep nesting.
        3 => {
            let depth = 1 + rng.below(2000);
            Message::text(format!("{}{}", "[".repeat(depth), "]".repeat(depth)))
        }
        // A huge text in an otherwise valid send (over the character limit, under 16 KiB).
        4 => Message::text(format!(
            r#"{{"type":"send","room":"general","client_id":"big","text":"{}"}}"#,
            "é".repeat(4001 + rng.below(2000))
        )),
        // Known junk.
        5 | 6 => Message::text(rng.pick(&junk).to_string()),
        // Transport-level abuse: binary, oversize, invalid UTF-8 (each closes the socket).
        _ => match rng.below(3) {
            0 => Message::binary(vec![0u8; rng.below(64)]),
            1 => Message::text("x".repeat(17 * 1024)),
            _ => Message::binary(vec![0xff, 0xfe, 0xfd]),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_malformed_frames_crash_nothing_and_others_keep_receiving() {
    let server = server(no_limits()).await;
    let mut alice = common::connect(&server, "Alice").await;
    alice.join("general").await;
    let mut bob = common::connect(&server, "Bob").await;
    bob.join("general").await;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let cookie = guest_cookie(server.addr, "Mallory").await;
    let mut mallory = connect_cookie(server.addr, &cookie).await;
    let mut reconnects = 0;
    for i in 0..1000 {
        let frame = malformed(&mut rng);
        let mut closed = mallory.ws.send(frame).await.is_err();
        // Read whatever answers are ready, noticing a close.
        while !closed {
            match mallory.ws.next().now_or_never() {
                None => break,
                Some(Some(Ok(Message::Close(_)))) | Some(None) | Some(Some(Err(_))) => {
                    closed = true
                }
                Some(Some(Ok(_))) => {}
            }
        }
        if closed {
            // Closed for abuse (1003/1007/1008/1009): come back and keep going.
            reconnects += 1;
            mallory = connect_cookie(server.addr, &cookie).await;
        }
        if i % 100 == 99 {
            let id = format!("b{i}");
            bob.send(&send("general", &id, &format!("still fine at {i}")))
                .await;
            loop {
                match bob.recv().await {
                    ServerMsg::Ack { client_id, .. } if client_id.0 == id => break,
                    _ => continue,
                }
            }
            loop {
                match alice.recv().await {
                    ServerMsg::Message(m) if m.author.0 == "Bob" => {
                        assert_eq!(m.text, format!("still fine at {i}"));
                        break;
                    }
                    _ => continue,
                }
            }
        }
    }
    assert!(
        reconnects > 0,
        "the generator should have tripped some closes"
    );
    // The server still accepts and serves new people.
    let mut late = common::connect(&server, "Late").await;
    late.join("general").await;
    eprintln!("1000 malformed frames, {reconnects} forced reconnects");
}
