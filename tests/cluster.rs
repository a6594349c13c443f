//! Several nodes, one conversation: real `hearth` processes sharing a PostgreSQL database
//! (on the run's server) and a nats-server (each test's own), spoken to over real ports.
//!
//! Needs what ./scripts/test.sh starts; see `common::cluster`.

mod common;

use common::cluster::{database, node, Nats};
use common::process::Hearth;
use common::{connect_cookie, connect_to, guest_cookie, Client};
use hearth::protocol::{ClientId, ClientMsg, RoomId, ServerMsg};
use sqlx::Connection;
use std::time::Duration;

fn send(room: &str, id: &str, text: &str) -> ClientMsg {
    ClientMsg::Send {
        room: RoomId(room.into()),
        client_id: ClientId(id.into()),
        text: text.into(),
    }
}

/// Reads until `total` messages of `room` have arrived, skipping acks and presence;
/// returns their sequence numbers in arrival order. Fails after 30 s without one.
async fn read_messages(client: &mut Client, total: usize) -> Vec<u64> {
    let mut seen = Vec::with_capacity(total);
    while seen.len() < total {
        let frame = tokio::time::timeout(Duration::from_secs(30), client.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: stuck after {seen:?}", client.name));
        match frame {
            ServerMsg::Message(m) => seen.push(m.seq.0),
            ServerMsg::Ack { .. } | ServerMsg::Presence { .. } | ServerMsg::Typing { .. } => {}
            other => panic!("{}: unexpected {other:?}", client.name),
        }
    }
    seen
}

/// Sends one message per id in `ids` to `general` and waits for their acks.
async fn say(writer: &mut Client, ids: std::ops::RangeInclusive<u32>) {
    let n = ids.clone().count();
    for id in ids {
        writer
            .send(&send("general", &id.to_string(), "hello"))
            .await;
    }
    writer.acks(n).await;
}

/// The next ack or error, skipping the room's messages and presence. While the database is
/// away an answer takes the pool's 2 s wait; the margin is for a busy host.
async fn answer(client: &mut Client) -> ServerMsg {
    loop {
        match client.recv_within(Duration::from_secs(15)).await {
            ServerMsg::Message(_) | ServerMsg::Presence { .. } => {}
            other => return other,
        }
    }
}

/// `(count, min, max)` of a room's stored sequence numbers.
async fn stored_seqs(database: &str, room: &str) -> (i64, i64, i64) {
    let mut conn = sqlx::PgConnection::connect(database).await.unwrap();
    sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM messages \
         WHERE room = $1",
    )
    .bind(room)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Two writers on each of two nodes (with `extra` settings) send `EACH` messages each to one
/// room at once; every one of them must see 1..N once and in order, and the table must hold
/// exactly 1..N. Returns the nodes and the database.
async fn writers_on_two_nodes(extra: &[(&str, &str)]) -> (Hearth, Hearth, Nats, String, usize) {
    const EACH: usize = 40;
    let db = database().await;
    let nats = Nats::start().await;
    let a = node(&db, &nats, extra).await;
    let b = node(&db, &nats, extra).await;
    let mut clients = Vec::new();
    for (i, addr) in [a.addr, a.addr, b.addr, b.addr].into_iter().enumerate() {
        let mut client = connect_to(addr, &format!("Writer{i}"), None).await;
        client.join("general").await;
        clients.push(client);
    }
    let total = EACH * clients.len();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                for k in 0..EACH {
                    client
                        .send(&send(
                            "general",
                            &format!("{i}-{k}"),
                            &format!("{i} says {k}"),
                        ))
                        .await;
                }
                read_messages(&mut client, total).await
            })
        })
        .collect();
    let expected: Vec<u64> = (1..=total as u64).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), expected);
    }
    assert_eq!(
        stored_seqs(&db, "general").await,
        (total as i64, 1, total as i64)
    );
    (a, b, nats, db, total)
}

/// Writers on both nodes at once: every client sees 1..N once and in order, the table has
/// no gap, and a resend through the other node gets its original sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_nodes_see_one_room_once_and_in_order() {
    let (a, b, _nats, db, total) = writers_on_two_nodes(&[]).await;

    // One guest, a tab on each node: the resend through B is the message sent through A.
    let cookie = guest_cookie(a.addr, "Resender").await;
    let mut on_a = connect_cookie(a.addr, &cookie).await;
    let mut on_b = connect_cookie(b.addr, &cookie).await;
    on_a.join("general").await;
    on_b.join("general").await;
    on_a.send(&send("general", "once", "only once")).await;
    let first = on_a.acks(1).await;
    on_b.send(&send("general", "once", "only once")).await;
    let again = on_b.acks(1).await;
    assert_eq!(first, again, "the resend is answered with the original seq");
    assert_eq!(first[0].1, total as u64 + 1);
    assert_eq!(
        stored_seqs(&db, "general").await,
        (total as i64 + 1, 1, total as i64 + 1)
    );
}

/// With room for one payload at a time to and from NATS, most signals are dropped: every
/// delivery still completes, filled from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_broker_buffer_loses_no_delivery() {
    writers_on_two_nodes(&[("HEARTH_BROKER_BUFFER", "1")]).await;
}

/// NATS goes away under traffic and comes back: what was sent meanwhile arrives on the
/// other node in order (from the database), and so does what is sent after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_while_nats_is_down_and_after() {
    let db = database().await;
    let mut nats = Nats::start().await;
    let a = node(&db, &nats, &[]).await;
    let b = node(&db, &nats, &[]).await;
    let mut writer = connect_to(a.addr, "Writer", None).await;
    let mut reader = connect_to(b.addr, "Reader", None).await;
    writer.join("general").await;
    reader.join("general").await;
    say(&mut writer, 1..=10).await;
    assert_eq!(
        read_messages(&mut reader, 10).await,
        (1..=10).collect::<Vec<_>>()
    );

    nats.stop();
    let stopped = std::time::Instant::now();
    say(&mut writer, 11..=30).await;
    assert_eq!(
        read_messages(&mut reader, 20).await,
        (11..=30).collect::<Vec<_>>()
    );
    println!(
        "with NATS down, 20 messages reached the other node within {} ms (catch-up every 300 ms)",
        stopped.elapsed().as_millis()
    );

    nats.resume().await;
    say(&mut writer, 31..=50).await;
    assert_eq!(
        read_messages(&mut reader, 20).await,
        (31..=50).collect::<Vec<_>>()
    );
    assert_eq!(stored_seqs(&db, "general").await, (50, 1, 50));
}

/// Who `client` sees arrive and leave, in order, until `until` returns true for a frame
/// (which is included); other frames are skipped. Fails after 30 s.
async fn presence_until(
    client: &mut Client,
    until: impl Fn(&ServerMsg) -> bool,
) -> Vec<(bool, String)> {
    let mut seen = Vec::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), client.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no such frame; saw {seen:?}", client.name));
        if let ServerMsg::Presence { joins, leaves, .. } = &frame {
            seen.extend(joins.iter().map(|n| (true, n.0.clone())));
            seen.extend(leaves.iter().map(|n| (false, n.0.clone())));
        }
        if until(&frame) {
            return seen;
        }
    }
}

fn arrives(name: &str) -> impl Fn(&ServerMsg) -> bool + '_ {
    move |frame| matches!(frame, ServerMsg::Presence { joins, .. } if joins.iter().any(|n| n.0 == name))
}

fn leaves(name: &str) -> impl Fn(&ServerMsg) -> bool + '_ {
    move |frame| matches!(frame, ServerMsg::Presence { leaves, .. } if leaves.iter().any(|n| n.0 == name))
}

fn online(joined: &ServerMsg) -> Vec<String> {
    match joined {
        ServerMsg::Joined { online, .. } => online.iter().map(|n| n.0.clone()).collect(),
        other => panic!("expected joined, got {other:?}"),
    }
}

/// A room shows everyone on every node; a tab closed on one node and opened on the other
/// within the grace period never shows its person leaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_list_is_the_union_of_the_nodes_and_moving_node_never_blinks() {
    let db = database().await;
    let nats = Nats::start().await;
    // A grace period long enough that a busy host cannot stretch the move below past it.
    let grace = [("HEARTH_PRESENCE_GRACE_MS", "3000")];
    let a = node(&db, &nats, &grace).await;
    let b = node(&db, &nats, &grace).await;
    let mut ada = connect_to(a.addr, "Ada", None).await;
    ada.join("general").await;
    let mut bob = connect_to(b.addr, "Bob", None).await;
    let joined = bob.join("general").await;
    // Ada is listed when Bob joins, or arrives right after (B asks A when the room starts).
    if !online(&joined).contains(&"Ada".to_string()) {
        presence_until(&mut bob, arrives("Ada")).await;
    }
    presence_until(&mut ada, arrives("Bob")).await;

    // Cleo's tab leaves A first, then the marker's: when the marker's grace period ends on
    // A (and Bob sees it leave), Cleo's has ended too.
    let cleo_cookie = guest_cookie(a.addr, "Cleo").await;
    let mut cleo = connect_cookie(a.addr, &cleo_cookie).await;
    cleo.join("general").await;
    let mut marker = connect_to(a.addr, "Marker", None).await;
    marker.join("general").await;
    presence_until(&mut bob, arrives("Marker")).await;
    cleo.hang_up().await;
    marker.hang_up().await;
    // Part of the scenario, not a wait for something: the person's own pause before
    // reopening the tab, well within the 3 s grace period. (`hang_up` has already waited
    // for A to close its side, so A is counting the grace period.)
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut cleo = connect_cookie(b.addr, &cleo_cookie).await;
    cleo.join("general").await;
    let seen = presence_until(&mut bob, leaves("Marker")).await;
    assert!(
        !seen.contains(&(false, "Cleo".to_string())),
        "Cleo blinked out while moving from A to B: {seen:?}"
    );
    let seen = presence_until(&mut ada, leaves("Marker")).await;
    assert!(
        !seen.contains(&(false, "Cleo".to_string())),
        "Ada saw Cleo leave: {seen:?}"
    );
}

/// A node killed mid-traffic: its people leave the other node's list within the lease, its
/// tabs recover on the other node, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_people_leave_and_its_tabs_recover_on_the_other_node() {
    let db = database().await;
    let nats = Nats::start().await;
    let lease = [("HEARTH_NODE_LEASE_MS", "1500")];
    let mut a = node(&db, &nats, &lease).await;
    let b = node(&db, &nats, &lease).await;
    let cookie = guest_cookie(a.addr, "Ada").await;
    let mut ada = connect_cookie(a.addr, &cookie).await;
    let epoch = match ada.join("general").await {
        ServerMsg::Joined { epoch, .. } => epoch,
        _ => unreachable!(),
    };
    let mut bob = connect_to(b.addr, "Bob", None).await;
    let joined = bob.join("general").await;
    if !online(&joined).contains(&"Ada".to_string()) {
        presence_until(&mut bob, arrives("Ada")).await;
    }
    for id in 1..=20 {
        ada.send(&send("general", &format!("a{id}"), "before the crash"))
            .await;
    }
    let acked: Vec<u64> = ada.acks(20).await.into_iter().map(|(_, seq)| seq).collect();
    for id in 21..=30 {
        ada.send(&send("general", &format!("a{id}"), "during the crash"))
            .await;
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = std::time::Instant::now();

    presence_until(&mut bob, leaves("Ada")).await;
    println!(
        "a SIGKILLed node's people left the other node's list after {} ms (lease 1500 ms)",
        killed.elapsed().as_millis()
    );

    let mut ada = connect_cookie(b.addr, &cookie).await;
    ada.send(&ClientMsg::Join {
        room: RoomId("general".into()),
        since: Some(hearth::protocol::Seq(5)),
        epoch: Some(epoch),
        changes_since: None,
    })
    .await;
    let (last_seq, recovered) = match ada.next_non_presence().await {
        ServerMsg::Joined {
            last_seq,
            recovered,
            ..
        } => (last_seq.0, recovered),
        other => panic!("expected joined, got {other:?}"),
    };
    assert!(recovered, "the other node serves the same history");
    let replay = read_messages(&mut ada, (last_seq - 5) as usize).await;
    assert_eq!(replay, (6..=last_seq).collect::<Vec<_>>());
    for seq in acked {
        assert!(seq <= last_seq, "acknowledged seq {seq} was lost");
    }
    assert_eq!(
        stored_seqs(&db, "general").await,
        (last_seq as i64, 1, last_seq as i64)
    );
}

/// The answer to a `join` of `room`: `Ok` for `joined`, the error code otherwise.
async fn try_join(client: &mut Client, room: &str) -> Result<(), hearth::protocol::ErrorCode> {
    client
        .send(&ClientMsg::Join {
            room: RoomId(room.into()),
            since: None,
            epoch: None,
            changes_since: None,
        })
        .await;
    match client.next_non_presence().await {
        ServerMsg::Joined { .. } => Ok(()),
        ServerMsg::Error { code, .. } => Err(code),
        other => panic!("expected joined or an error, got {other:?}"),
    }
}

/// Permissions held in each node's memory follow what another node did: a private room
/// made on A is closed on B, an invitation on A opens it on B, and a logout on A ends the
/// session's connections on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_invitations_and_logouts_reach_every_node() {
    use common::{call, register};
    let db = database().await;
    let nats = Nats::start().await;
    let a = node(&db, &nats, &[]).await;
    let b = node(&db, &nats, &[]).await;
    let ada = register(a.addr, "Ada", "correct horse battery").await;
    let bob = register(b.addr, "Bob", "correct horse battery").await;
    let made = call::<hearth::api::CreateRoom>(
        a.addr,
        &[("name", "secret"), ("private", "on")],
        Some(&ada),
    )
    .await;
    assert_eq!(made.status, 200, "{made:?}");

    let mut eve = connect_to(b.addr, "Eve", None).await;
    assert_eq!(
        try_join(&mut eve, "secret").await,
        Err(hearth::protocol::ErrorCode::Forbidden)
    );
    let mut bob_on_b = connect_cookie(b.addr, &bob).await;
    assert_eq!(
        try_join(&mut bob_on_b, "secret").await,
        Err(hearth::protocol::ErrorCode::Forbidden)
    );
    let invited =
        call::<hearth::api::Invite>(a.addr, &[("room", "secret"), ("name", "Bob")], Some(&ada))
            .await;
    assert_eq!(invited.status, 200, "{invited:?}");
    assert_eq!(try_join(&mut bob_on_b, "secret").await, Ok(()));
    assert_eq!(
        try_join(&mut eve, "secret").await,
        Err(hearth::protocol::ErrorCode::Forbidden)
    );

    // Ada's tab on B closes when she logs out on A.
    let mut ada_on_b = connect_cookie(b.addr, &ada).await;
    ada_on_b.join("secret").await;
    let out = call::<hearth::api::Logout>(a.addr, &[], Some(&ada)).await;
    assert_eq!(out.status, 200, "{out:?}");
    ada_on_b.expect_close().await;
}

/// A single node's SQLite history moved with `hearth migrate`: the PostgreSQL nodes serve
/// the same page and sequence numbers, the cookie still works, a client that was connected
/// before recovers across the move, and a second migration into the now full database is
/// refused with a sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_sqlite_history_is_served_the_same_by_the_cluster() {
    use common::{http, page_data, register};
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let single = common::process::Hearth::start(&[
        ("HEARTH_STORE", "sqlite"),
        ("HEARTH_DATA_DIR", data_dir),
        ("HEARTH_MESSAGE_RATE", "0"),
    ])
    .await;
    let ada = register(single.addr, "Ada", "correct horse battery").await;
    let mut tab = connect_cookie(single.addr, &ada).await;
    let epoch = match tab.join("general").await {
        ServerMsg::Joined { epoch, .. } => epoch,
        _ => unreachable!(),
    };
    for id in 1..=12 {
        tab.send(&send(
            "general",
            &format!("m{id}"),
            &format!("message {id}"),
        ))
        .await;
    }
    tab.acks(12).await;
    let page = |addr| {
        let ada = ada.clone();
        async move {
            let page = http(addr, "GET", "/r/general", None, &[("Cookie", &ada)]).await;
            assert_eq!(page.status, 200);
            let data = page_data(&page.body).expect("the room loads");
            let shown: Vec<(u64, String)> = data
                .messages
                .iter()
                .map(|m| (m.seq.0, m.text.clone()))
                .collect();
            (shown, data.last_seq, data.epoch)
        }
    };
    let before = page(single.addr).await;
    drop(tab);
    drop(single);

    let db = database().await;
    let migrate = |db: String| {
        let from = data.path().join("hearth.db");
        std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("migrate")
            .arg("--from")
            .arg(from)
            .arg("--to")
            .arg(db)
            .env("RUST_LOG", "error")
            .output()
            .expect("run hearth migrate")
    };
    let done = migrate(db.clone());
    assert!(done.status.success(), "{done:?}");
    assert!(String::from_utf8_lossy(&done.stdout).contains("messages: 12 rows"));
    let again = migrate(db.clone());
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a history"),
        "{again:?}"
    );

    let nats = Nats::start().await;
    let a = node(&db, &nats, &[]).await;
    assert_eq!(page(a.addr).await, before, "the same page, seqs and epoch");
    let mut tab = connect_cookie(a.addr, &ada).await;
    tab.send(&ClientMsg::Join {
        room: RoomId("general".into()),
        since: Some(hearth::protocol::Seq(8)),
        epoch: Some(epoch),
        changes_since: None,
    })
    .await;
    match tab.next_non_presence().await {
        ServerMsg::Joined {
            recovered,
            last_seq,
            ..
        } => assert!(recovered && last_seq.0 == 12),
        other => panic!("expected joined, got {other:?}"),
    }
    assert_eq!(read_messages(&mut tab, 4).await, vec![9, 10, 11, 12]);
    tab.send(&send("general", "m13", "after the move")).await;
    assert_eq!(tab.acks(1).await[0].1, 13);
}

/// PostgreSQL restarted under traffic: a send meanwhile is answered `internal` (the client
/// retries it), then sends resume, and the room's sequence has no gap and no double.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_makes_sends_retry_and_leaves_no_gap() {
    let pg = common::cluster::PrivatePostgres::start().await;
    let nats = Nats::start().await;
    let a = node(&pg.url(), &nats, &[]).await;
    let b = node(&pg.url(), &nats, &[]).await;
    let mut writer = connect_to(a.addr, "Writer", None).await;
    let mut reader = connect_to(b.addr, "Reader", None).await;
    writer.join("general").await;
    reader.join("general").await;
    say(&mut writer, 1..=10).await;

    pg.stop();
    let stopped = std::time::Instant::now();
    writer
        .send(&send("general", "11", "while the database is away"))
        .await;
    match answer(&mut writer).await {
        ServerMsg::Error {
            code, client_id, ..
        } => {
            assert_eq!(code, hearth::protocol::ErrorCode::Internal);
            assert_eq!(client_id.unwrap().0, "11");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    println!(
        "with PostgreSQL down, a send was answered 'internal' after {} ms",
        stopped.elapsed().as_millis()
    );
    pg.resume().await;
    let resumed = std::time::Instant::now();
    // The client's retry, as the browser does it: the same client id until it is stored.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        writer
            .send(&send("general", "11", "while the database is away"))
            .await;
        match answer(&mut writer).await {
            ServerMsg::Ack { seq, .. } => {
                assert_eq!(seq.0, 11);
                println!(
                    "PostgreSQL back: the retried send was stored {} ms after it started",
                    resumed.elapsed().as_millis()
                );
                break;
            }
            ServerMsg::Error { code, .. } => {
                assert_eq!(code, hearth::protocol::ErrorCode::Internal);
                assert!(std::time::Instant::now() < deadline, "sends never resumed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("expected an ack or an error, got {other:?}"),
        }
    }
    say(&mut writer, 12..=20).await;
    assert_eq!(
        read_messages(&mut reader, 20).await,
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(stored_seqs(&pg.url(), "general").await, (20, 1, 20));
}
