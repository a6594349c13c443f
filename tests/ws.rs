//! The chat protocol over a real port: live messages, presence, and every kind of bad input.

mod common;

use common::{connect, connect_cookie, guest_cookie, quick_config, start};
use hearth::protocol::{
    ClientId, ClientMsg, ErrorCode, RoomId, ServerMsg, UserName, MAX_MESSAGE_CHARS,
};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::Message;

fn send(room: &str, id: &str, text: &str) -> ClientMsg {
    ClientMsg::Send {
        room: RoomId(room.into()),
        client_id: ClientId(id.into()),
        text: text.into(),
    }
}

fn user(name: &str) -> UserName {
    UserName(name.into())
}

#[tokio::test]
async fn two_clients_chat_in_a_room() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let mut bob = connect(&server, "Bob").await;
    ada.join("general").await;
    bob.join("general").await;
    assert!(matches!(ada.recv().await, ServerMsg::Presence { .. }));

    ada.send(&send("general", "c-1", "hello, Bob")).await;
    match ada.recv().await {
        ServerMsg::Ack { client_id, seq, .. } => {
            assert_eq!(client_id.0, "c-1");
            assert_eq!(seq.0, 1);
        }
        other => panic!("expected ack, got {other:?}"),
    }
    for client in [&mut ada, &mut bob] {
        match client.recv().await {
            ServerMsg::Message(m) => {
                assert_eq!(m.author, user("Ada"));
                assert_eq!(m.text, "hello, Bob");
                assert_eq!(m.seq.0, 1);
            }
            other => panic!("expected the message, got {other:?}"),
        }
    }
    // The client's own ping is answered.
    bob.send(&ClientMsg::Ping).await;
    assert_eq!(bob.recv().await, ServerMsg::Pong);
}

#[tokio::test]
async fn presence_state_then_diffs() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    match ada.join("lobby").await {
        ServerMsg::Joined { online, .. } => assert_eq!(online, vec![user("Ada")]),
        _ => unreachable!(),
    }
    let bob = guest_cookie(server.addr, "Bob").await;
    let mut bob1 = connect_cookie(server.addr, &bob).await;
    match bob1.join("lobby").await {
        ServerMsg::Joined { online, .. } => assert_eq!(online, vec![user("Ada"), user("Bob")]),
        _ => unreachable!(),
    }
    match ada.recv().await {
        ServerMsg::Presence {
            room,
            joins,
            leaves,
            arrived,
            departed,
        } => {
            assert_eq!(room, RoomId("lobby".into()));
            assert_eq!((joins, leaves), (vec![user("Bob")], vec![]));
            assert_eq!(arrived.len(), 1);
            assert!(arrived[0].name == user("Bob") && arrived[0].guest);
            assert!(departed.is_empty());
        }
        other => panic!("expected presence, got {other:?}"),
    }
    // A second tab of Bob's (the same session) is not a second person.
    let mut bob2 = connect_cookie(server.addr, &bob).await;
    bob2.join("lobby").await;
    ada.expect_silence(Duration::from_millis(300)).await;

    // Closing one tab keeps Bob online; closing the last removes him after the grace period.
    bob1.ws.close(None).await.unwrap();
    ada.expect_silence(Duration::from_millis(500)).await;
    bob2.ws.close(None).await.unwrap();
    match ada.recv().await {
        ServerMsg::Presence {
            joins,
            leaves,
            departed,
            ..
        } => {
            assert_eq!((joins, leaves), (vec![], vec![user("Bob")]));
            assert!(departed.len() == 1 && departed[0].name == user("Bob"));
        }
        other => panic!("expected presence, got {other:?}"),
    }
}

async fn expect_error(client: &mut common::Client, code: ErrorCode) {
    match client.recv().await {
        ServerMsg::Error {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(message.len() > 10, "errors explain themselves: {message:?}");
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_frames_get_typed_errors_and_the_connection_survives() {
    let server = start(quick_config()).await;
    let mut eve = connect(&server, "Eve").await;
    eve.join("general").await;

    eve.send_raw(Message::text("{not json")).await;
    expect_error(&mut eve, ErrorCode::BadFrame).await;
    eve.send_raw(Message::text(r#"{"type":"teleport"}"#)).await;
    expect_error(&mut eve, ErrorCode::UnknownType).await;
    eve.send_raw(Message::text(r#"{"type":"send","room":"general"}"#))
        .await;
    expect_error(&mut eve, ErrorCode::BadFrame).await;
    eve.send(&send("general", "e-1", "   \n ")).await;
    expect_error(&mut eve, ErrorCode::EmptyMessage).await;
    eve.send(&send("general", "e-2", &"x".repeat(MAX_MESSAGE_CHARS + 1)))
        .await;
    expect_error(&mut eve, ErrorCode::MessageTooLong).await;
    eve.send(&ClientMsg::Join {
        room: RoomId("no spaces!".into()),
        since: None,
        epoch: None,
        changes_since: None,
    })
    .await;
    expect_error(&mut eve, ErrorCode::InvalidRoom).await;
    eve.send(&send("elsewhere", "e-3", "hi")).await;
    expect_error(&mut eve, ErrorCode::NotJoined).await;
    eve.send(&send("general", "", "hi")).await;
    expect_error(&mut eve, ErrorCode::InvalidClientId).await;

    // A message of exactly the limit, in multi-byte characters, is fine.
    eve.send(&send("general", "e-4", &"é".repeat(MAX_MESSAGE_CHARS)))
        .await;
    assert!(matches!(eve.recv().await, ServerMsg::Ack { .. }));
    // HTML is stored as the text it is.
    let payload = "<img src=x onerror=alert(1)>";
    eve.send(&send("general", "e-5", payload)).await;
    assert!(matches!(eve.recv().await, ServerMsg::Message(_)));
    assert!(matches!(eve.recv().await, ServerMsg::Ack { .. }));
    match eve.recv().await {
        ServerMsg::Message(m) => assert_eq!(m.text, payload),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fatal_inputs_close_with_the_fitting_code_and_others_keep_chatting() {
    let server = start(quick_config()).await;
    let mut bystander = connect(&server, "Bystander").await;
    bystander.join("general").await;

    let mut binary = connect(&server, "Bin").await;
    binary.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(binary.expect_close().await, CloseCode::Unsupported);

    let mut huge = connect(&server, "Huge").await;
    huge.send_raw(Message::text("x".repeat(17 * 1024))).await;
    assert_eq!(huge.expect_close().await, CloseCode::Size);

    let mut bad_utf8 = connect(&server, "Utf").await;
    let frame = Frame::from_payload(
        FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        },
        vec![0xff, 0xfe, 0xfd].into(),
    );
    bad_utf8.send_raw(Message::Frame(frame)).await;
    assert_eq!(bad_utf8.expect_close().await, CloseCode::Invalid);

    let mut spammer = connect(&server, "Spam").await;
    for _ in 0..30 {
        spammer.send_raw(Message::text("nope")).await;
    }
    assert_eq!(spammer.expect_close().await, CloseCode::Policy);

    // Everyone else is still served.
    let mut ada = connect(&server, "Ada").await;
    ada.join("general").await;
    ada.send(&send("general", "a-1", "still here?")).await;
    loop {
        if let ServerMsg::Message(m) = bystander.recv().await {
            assert_eq!(m.text, "still here?");
            break;
        }
    }
}

#[tokio::test]
async fn the_upgrade_needs_a_display_name() {
    let server = start(quick_config()).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .expect_err("an upgrade without a name must be refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other}"),
    }
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_going_away() {
    let server = start(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    ada.join("general").await;
    server.hub.begin_shutdown();
    assert_eq!(ada.expect_close().await, CloseCode::Away);
}

#[tokio::test]
async fn the_ws_address_refuses_plain_http_and_answers_protocol_pings() {
    let server = start(quick_config()).await;
    let plain = common::http(server.addr, "GET", "/ws", None, &[]).await;
    assert_eq!(plain.status, 400, "{}", plain.body);
    assert!(plain.body.contains("WebSocket only"), "{}", plain.body);

    let old_version = common::http(
        server.addr,
        "GET",
        "/ws",
        None,
        &[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_eq!(old_version.status, 426, "{}", old_version.body);
    assert!(old_version
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("sec-websocket-version") && v == "13"));

    // A protocol-level ping between chat frames gets its pong, and chat goes on around it.
    let mut ada = connect(&server, "Ada").await;
    ada.join("general").await;
    ada.send_raw(Message::Ping(b"are you there".to_vec().into()))
        .await;
    ada.send(&send("general", "after-ping", "still here")).await;
    let mut pong = false;
    let mut acked = false;
    while !(pong && acked) {
        match ada.next_raw().await {
            Message::Pong(data) => {
                assert_eq!(&data[..], b"are you there");
                pong = true;
            }
            Message::Text(t) => {
                if let ServerMsg::Ack { client_id, .. } = serde_json::from_str(t.as_str()).unwrap()
                {
                    assert_eq!(client_id, ClientId("after-ping".into()));
                    acked = true;
                }
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}
