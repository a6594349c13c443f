//! Recovery over a real port: a room page carries exactly its messages and the position to
//! subscribe from, a rejoin with `since` replays exactly the gap before any live message, a
//! resend is stored once, a position from another history is told to reload, and a slow
//! consumer is resynced instead of being dropped or holding the room back. Pages keep
//! answering while other routers are built beside them.

mod common;

use common::{
    connect, connect_cookie, connect_to, guest_cookie, http, joined, page_data, quick_config,
    start_with, Client, TestServer,
};
use hearth::model::AppError;
use hearth::protocol::{ClientId, ClientMsg, RoomId, Seq, ServerMsg};
use hearth::server::hub::HubConfig;
use hearth::server::store::{sql::SqlStore, MemoryStore, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn room(name: &str) -> RoomId {
    RoomId(name.into())
}

fn send(room_name: &str, id: &str, text: &str) -> ClientMsg {
    ClientMsg::Send {
        room: room(room_name),
        client_id: ClientId(id.into()),
        text: text.into(),
    }
}

fn join_since(room_name: &str, since: u64, epoch: u64) -> ClientMsg {
    ClientMsg::Join {
        room: room(room_name),
        since: Some(Seq(since)),
        epoch: Some(epoch),
        changes_since: None,
    }
}

/// A server over the SQLite store (the default), in a directory removed with the guard.
async fn sqlite_server(config: HubConfig) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(dir.path(), 0).await.expect("open the store");
    (start_with(Arc::new(store), config).await, dir)
}

#[tokio::test]
async fn a_room_page_carries_exactly_its_messages_and_position() {
    let (server, _dir) = sqlite_server(quick_config()).await;
    let cookie = guest_cookie(server.addr, "Ada").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    ada.join("pages").await;
    // Text that would end the data's script element or open a comment if it were not
    // escaped, and characters JSON and HTML treat differently.
    let texts = [
        "</script><script>window.__xss=1</script>",
        "<!-- a comment? -->",
        "quotes \" ' and \\ backslash, line\u{2028}separator, café",
        "plain",
    ];
    for (i, text) in texts.iter().enumerate() {
        ada.send(&send("pages", &format!("p{i}"), text)).await;
    }
    ada.acks(texts.len()).await;

    let page = http(server.addr, "GET", "/r/pages", None, &[("Cookie", &cookie)]).await;
    assert_eq!(page.status, 200);
    let data = page_data(&page.body).expect("the room loads");
    let shown: Vec<_> = data
        .messages
        .iter()
        .map(|m| (m.seq.0, m.text.as_str()))
        .collect();
    assert_eq!(
        shown,
        texts
            .iter()
            .copied()
            .zip(1..)
            .map(|(t, s)| (s, t))
            .collect::<Vec<_>>()
    );
    assert_eq!((data.last_seq.0, data.before), (4, None));
    assert_eq!(data.me.map(|m| m.0).as_deref(), Some("Ada"));
    assert!(!page.body.contains("<script>window.__xss"), "{}", page.body);

    // An older page carries the messages before its `before`, and says which page it is.
    let older = http(
        server.addr,
        "GET",
        "/r/pages?before=3",
        None,
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(older.status, 200);
    let data = page_data(&older.body).expect("the older page loads");
    let seqs: Vec<_> = data.messages.iter().map(|m| m.seq.0).collect();
    assert_eq!((seqs, data.before.map(|b| b.0)), (vec![1, 2], Some(3)));

    // A room that cannot exist gets the page saying so, with its status and the same error
    // in the data.
    let bad = format!("/r/{}", "x".repeat(300));
    let missing = http(server.addr, "GET", &bad, None, &[("Cookie", &cookie)]).await;
    assert_eq!(missing.status, 404);
    assert!(matches!(
        page_data(&missing.body),
        Err(AppError::NotFound(_))
    ));
    assert!(missing.body.contains("Room not found"));
}

/// A room shares its latest page between page loads until its next message; the next
/// message must then show on the very next page, in the rows and in the data.
#[tokio::test]
async fn a_room_page_after_a_new_message_shows_it() {
    let (server, _dir) = sqlite_server(quick_config()).await;
    let cookie = guest_cookie(server.addr, "Ada").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    ada.join("fresh").await;
    let headers = [("Cookie", cookie.as_str())];
    let load = || http(server.addr, "GET", "/r/fresh", None, &headers);
    let rows = |body: &str| body.matches(r#"<li class="message"#).count();

    ada.send(&send("fresh", "f0", "first")).await;
    ada.acks(1).await;
    for _ in 0..2 {
        let page = load().await;
        let data = page_data(&page.body).expect("the room loads");
        assert_eq!(
            (rows(&page.body), data.messages.len(), data.last_seq.0),
            (1, 1, 1)
        );
    }

    ada.send(&send("fresh", "f1", "second <b>&</b>")).await;
    ada.acks(1).await;
    let page = load().await;
    let data = page_data(&page.body).expect("the room loads");
    let texts: Vec<_> = data.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["first", "second <b>&</b>"]);
    assert_eq!((rows(&page.body), data.last_seq.0), (2, 2));
    assert!(
        page.body
            .contains(r#"<bdi class="text">second &lt;b&gt;&amp;&lt;/b&gt;</bdi>"#),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_rejoin_replays_exactly_the_missed_messages_before_live_ones() {
    let (server, _dir) = sqlite_server(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let epoch = joined(ada.join("catchup").await).epoch;
    let mut bob = connect(&server, "Bob").await;
    bob.join("catchup").await;

    for i in 0..3 {
        bob.send(&send(
            "catchup",
            &format!("before-{i}"),
            &format!("before {i}"),
        ))
        .await;
    }
    bob.acks(3).await;
    let mut last_seen = 0;
    for expected in 1..=3 {
        let m = ada.next_message().await;
        assert_eq!(m.seq.0, expected);
        last_seen = m.seq.0;
    }
    ada.hang_up().await;

    // While Ada is away, Bob sends 200 messages and sees every one stored.
    for i in 0..200 {
        bob.send(&send(
            "catchup",
            &format!("missed-{i}"),
            &format!("missed {i}"),
        ))
        .await;
    }
    let stored: Vec<u64> = bob.acks(200).await.into_iter().map(|a| a.1).collect();
    assert_eq!(stored, (4..=203).collect::<Vec<_>>(), "acks in send order");

    let mut ada = connect(&server, "Ada").await;
    ada.send(&join_since("catchup", last_seen, epoch)).await;
    let answer = joined(ada.recv().await);
    assert!(answer.recovered, "a gap of 200 is within the replay limit");
    assert_eq!((answer.last_seq, answer.epoch), (203, epoch));
    // The replay is exactly the 200 she missed, in order, with nothing in between.
    for i in 0..200u64 {
        match ada.recv().await {
            ServerMsg::Message(m) => {
                assert_eq!(m.seq.0, last_seen + 1 + i, "replay is contiguous");
                assert_eq!(m.text, format!("missed {i}"));
                assert_eq!(m.author.0, "Bob");
            }
            other => panic!("replay frame {i}: expected a message, got {other:?}"),
        }
    }

    // A live message comes after the replay, once.
    bob.send(&send("catchup", "live-0", "live after the replay"))
        .await;
    let m = ada.next_message().await;
    assert_eq!((m.seq.0, m.text.as_str()), (204, "live after the replay"));
    ada.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_rejoin_during_live_traffic_neither_repeats_nor_skips() {
    let (server, _dir) = sqlite_server(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let epoch = joined(ada.join("busy").await).epoch;
    let mut bob = connect(&server, "Bob").await;
    bob.join("busy").await;
    for i in 0..20 {
        bob.send(&send("busy", &format!("early-{i}"), "early"))
            .await;
    }
    bob.acks(20).await;
    for _ in 0..10 {
        ada.next_message().await;
    }
    ada.hang_up().await;

    // Bob keeps sending while Ada rejoins from seq 10: wherever her join lands among his
    // messages, she must see 11, 12, … up to the last one, each once.
    let sender = tokio::spawn(async move {
        for i in 0..150 {
            bob.send(&send("busy", &format!("live-{i}"), "live")).await;
            if i % 10 == 9 {
                bob.acks(10).await;
            }
        }
        bob
    });
    let mut ada = connect(&server, "Ada").await;
    ada.send(&join_since("busy", 10, epoch)).await;
    let answer = joined(ada.recv().await);
    assert!(answer.recovered);
    assert!(
        answer.last_seq >= 20,
        "the join sees at least what was acked"
    );
    let mut seqs = Vec::new();
    while seqs.len() < 160 {
        seqs.push(ada.next_message().await.seq.0);
    }
    assert_eq!(seqs, (11..=170).collect::<Vec<_>>());
    let _bob = sender.await.unwrap();
    ada.expect_nothing_pending().await;
}

/// A resend (same author, same client id), on the same connection or after a reconnect, is
/// stored once and acked with the first sequence number.
async fn resends_are_stored_once(server: TestServer) {
    // A tab reconnects with its session's cookie: the same person (author key) as before.
    let cookie = guest_cookie(server.addr, "Ada").await;
    let mut ada = connect_cookie(server.addr, &cookie).await;
    let epoch = joined(ada.join("dedup").await).epoch;
    let mut bob = connect(&server, "Bob").await;
    bob.join("dedup").await;

    ada.send(&send("dedup", "same-1", "only once")).await;
    ada.send(&send("dedup", "same-1", "only once")).await;
    let first = ada.acks(2).await;
    assert_eq!(
        first,
        vec![("same-1".to_string(), 1), ("same-1".to_string(), 1)],
        "both acks carry the first seq"
    );
    ada.hang_up().await;

    // The tab reconnects without knowing whether its message made it, and resends.
    let mut ada = connect_cookie(server.addr, &cookie).await;
    ada.send(&join_since("dedup", 0, epoch)).await;
    let answer = joined(ada.recv().await);
    assert_eq!(
        answer.last_seq, 1,
        "two sends of one message advance the room by one"
    );
    assert!(answer.recovered);
    let replayed = ada.next_message().await;
    assert_eq!((replayed.seq.0, replayed.text.as_str()), (1, "only once"));
    ada.send(&send("dedup", "same-1", "only once")).await;
    assert_eq!(ada.acks(1).await, vec![("same-1".to_string(), 1)]);
    // The next new message takes the very next number.
    ada.send(&send("dedup", "next-1", "a new one")).await;
    assert_eq!(ada.acks(1).await, vec![("next-1".to_string(), 2)]);
    // Bob, in the room the whole time, saw Ada's message once, then her next one.
    let live: Vec<u64> = [
        bob.next_message().await.seq.0,
        bob.next_message().await.seq.0,
    ]
    .into();
    assert_eq!(live, vec![1, 2]);
    // The key is (author key, client id): Bob's message with the same id is his own.
    bob.send(&send("dedup", "same-1", "Bob's, not a resend"))
        .await;
    assert_eq!(bob.acks(1).await, vec![("same-1".to_string(), 3)]);
    assert_eq!(bob.next_message().await.seq.0, 3);
    bob.expect_nothing_pending().await;

    // The stored history, as a newcomer loads it: one copy of Ada's message, then the rest.
    let mut history = Vec::new();
    let mut fresh = connect(&server, "Cy").await;
    fresh.send(&join_since("dedup", 0, epoch)).await;
    let answer = joined(fresh.recv().await);
    assert_eq!(answer.last_seq, 3);
    for _ in 0..3 {
        let m = fresh.next_message().await;
        history.push((m.seq.0, m.author.0, m.text));
    }
    assert_eq!(
        history,
        vec![
            (1, "Ada".to_string(), "only once".to_string()),
            (2, "Ada".to_string(), "a new one".to_string()),
            (3, "Bob".to_string(), "Bob's, not a resend".to_string()),
        ],
        "the stored history has each message once"
    );
    fresh.expect_nothing_pending().await;
}

#[tokio::test]
async fn resends_are_stored_once_in_sqlite() {
    let (server, _dir) = sqlite_server(quick_config()).await;
    resends_are_stored_once(server).await;
}

#[tokio::test]
async fn resends_are_stored_once_in_memory() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(42, 10_000));
    resends_are_stored_once(start_with(store, quick_config()).await).await;
}

#[tokio::test]
async fn a_position_from_another_history_or_the_future_is_told_to_reload() {
    let (server, _dir) = sqlite_server(quick_config()).await;
    let mut ada = connect(&server, "Ada").await;
    let epoch = joined(ada.join("epochs").await).epoch;
    for i in 0..3 {
        ada.send(&send("epochs", &format!("e-{i}"), &format!("text {i}")))
            .await;
    }
    ada.acks(3).await;

    let mut cy = connect(&server, "Cy").await;
    // Another epoch: its sequence numbers mean nothing here, so nothing is replayed.
    cy.send(&join_since("epochs", 1, epoch - 1)).await;
    let answer = joined(cy.recv().await);
    assert!(!answer.recovered, "another epoch must not be recovered");
    assert_eq!((answer.last_seq, answer.epoch), (3, epoch));
    cy.expect_nothing_pending().await;

    // A position past the end of this history cannot be served either.
    cy.send(&join_since("epochs", 10, epoch)).await;
    let answer = joined(cy.next_non_presence().await);
    assert!(
        !answer.recovered,
        "since beyond last_seq must not be recovered"
    );
    assert_eq!(answer.last_seq, 3);
    cy.expect_nothing_pending().await;

    // The same position in this epoch is recovered, which is what makes the two above mean
    // something.
    cy.send(&join_since("epochs", 1, epoch)).await;
    let answer = joined(cy.next_non_presence().await);
    assert!(answer.recovered);
    let replay: Vec<u64> = [cy.next_message().await.seq.0, cy.next_message().await.seq.0].into();
    assert_eq!(replay, vec![2, 3]);
    cy.expect_nothing_pending().await;
}

const FLOOD_CHARS: usize = 3000;
const FLOOD_SENDERS: [&str; 3] = ["Ada", "Bob", "Cy"];
/// The slow client's kernel receive buffer.
const SLOW_RCVBUF: usize = 16 * 1024;

/// Messages each sender floods with: enough to overflow every buffer between the room and a
/// client that stops reading, with half as much again to spare. The kernel may grow the
/// server's socket send buffer up to the third `tcp_wmem` figure; tungstenite buffers up to
/// 1 MiB; the client's receive buffer is pinned small (the kernel doubles it).
fn flood_per_sender() -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    let buffered = wmem_max + (1 << 20) + 2 * SLOW_RCVBUF;
    (buffered * 3 / 2)
        .div_ceil(FLOOD_CHARS * FLOOD_SENDERS.len())
        .clamp(500, 3000)
}

/// Sends `count` messages one after another, each once the previous was acked, and returns
/// (client id, seq) for each.
async fn flood(mut client: Client, count: usize) -> (Client, Vec<(String, u64)>) {
    let mut stored = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("{}-{i}", client.name);
        let mut text = format!("{id} ");
        text.extend(std::iter::repeat_n('x', FLOOD_CHARS - text.len()));
        client.send(&send("flood", &id, &text)).await;
        loop {
            match client.recv().await {
                ServerMsg::Ack { client_id, seq, .. } => {
                    assert_eq!(client_id.0, id);
                    stored.push((id, seq.0));
                    break;
                }
                // A sender's own reading is not under test; it may lag like anyone else.
                ServerMsg::Message(_) | ServerMsg::Presence { .. } | ServerMsg::Resync { .. } => {}
                other => panic!("{}: expected an ack, got {other:?}", client.name),
            }
        }
    }
    (client, stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_resynced_and_ends_with_every_message_once() {
    let config = HubConfig {
        queue_frames: 16,
        replay_limit: 10_000,
        // The stalled client sends nothing for a while; it must not be closed as dead.
        heartbeat: Duration::from_secs(60),
        ..quick_config()
    };
    let (server, _dir) = sqlite_server(config).await;
    let mut senders = Vec::new();
    for name in FLOOD_SENDERS {
        let mut sender = connect_to(server.addr, name, None).await;
        sender.join("flood").await;
        senders.push(sender);
    }
    let mut fast = connect(&server, "Fast").await;
    fast.join("flood").await;
    // The slow client joins last, so nothing but the flood is queued for it, and pins its
    // receive buffer small so that not reading backs up onto the server sooner.
    let mut slow = connect_to(server.addr, "Slow", Some(SLOW_RCVBUF as u32)).await;
    let epoch = joined(slow.join("flood").await).epoch;

    // The slow client stops reading now, for at least 10 s. The others flood the room, one
    // message per sender at a time, so a client that does read never has more than a few
    // frames queued.
    let stalled_at = tokio::time::Instant::now();
    let per_sender = flood_per_sender();
    let total = per_sender * FLOOD_SENDERS.len();
    let fast_reader = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(total);
        while seen.len() < total {
            match fast.recv().await {
                ServerMsg::Message(m) => seen.push((m.seq.0, m.client_id.0)),
                ServerMsg::Presence { .. } => {}
                other => panic!("the fast client must not be held back or resynced: {other:?}"),
            }
        }
        (fast, seen)
    });
    let floods: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(flood(sender, per_sender)))
        .collect();
    let mut by_seq: HashMap<u64, String> = HashMap::new();
    let mut idle_senders = Vec::new();
    for task in floods {
        let (sender, stored) = task.await.unwrap();
        for (id, seq) in stored {
            assert!(by_seq.insert(seq, id).is_none(), "seq {seq} acked twice");
        }
        idle_senders.push(sender);
    }
    let (mut fast, fast_seen) = fast_reader.await.unwrap();
    let mut expected: Vec<(u64, String)> = (1..=total as u64)
        .map(|seq| (seq, by_seq.remove(&seq).expect("every seq acked once")))
        .collect();
    assert_eq!(
        fast_seen, expected,
        "the fast client got every message in order"
    );

    tokio::time::sleep_until(stalled_at + Duration::from_secs(10)).await;
    // The slow client reads again: what was queued, with no gap, then `resync`.
    let mut slow_seen: Vec<(u64, String)> = Vec::new();
    loop {
        match slow.recv().await {
            ServerMsg::Message(m) => slow_seen.push((m.seq.0, m.client_id.0)),
            ServerMsg::Resync { room: r } => {
                assert_eq!(r, room("flood"));
                break;
            }
            ServerMsg::Presence { .. } => {}
            other => panic!("expected queued messages then resync, got {other:?}"),
        }
    }
    let queued = slow_seen.len();
    eprintln!("the slow client got {queued} of {total} messages before its resync");
    assert!(
        queued < total,
        "a resync means some frames were not queued, yet all {total} arrived"
    );
    assert_eq!(
        slow_seen,
        expected[..queued].to_vec(),
        "what was queued has no gap"
    );

    // The room stays muted for it until it rejoins, even while the room goes on: live
    // frames now would overlap the replay it is about to ask for.
    for i in 0..5 {
        fast.send(&send("flood", &format!("after-{i}"), "after the resync"))
            .await;
    }
    for (id, seq) in fast.acks(5).await {
        expected.push((seq, id));
    }
    slow.expect_nothing_pending().await;

    // It rejoins from the highest seq it has; the replay fills the rest, and live frames
    // follow without repeating any of it.
    slow.send(&join_since("flood", queued as u64, epoch)).await;
    let answer = joined(slow.next_non_presence().await);
    assert!(answer.recovered, "the gap is within the replay limit");
    assert_eq!(answer.last_seq, total as u64 + 5);
    while slow_seen.len() < total + 5 {
        let m = slow.next_message().await;
        slow_seen.push((m.seq.0, m.client_id.0));
    }
    fast.send(&send("flood", "live", "live after the rejoin"))
        .await;
    let (id, seq) = fast.acks(1).await.remove(0);
    expected.push((seq, id));
    let m = slow.next_message().await;
    slow_seen.push((m.seq.0, m.client_id.0));
    assert_eq!(slow_seen, expected, "every message exactly once, in order");
    slow.expect_nothing_pending().await;
}

/// Building a router lists the app's routes, which suppresses resource loading process-wide
/// while it runs; a page whose resource first polled inside that window never finished. So
/// routers are built here over and over on another thread while pages are fetched, each of
/// which must answer (the helper fails a request unanswered within 30 s).
#[tokio::test]
async fn pages_answer_while_other_routers_are_built() {
    let server = common::start(quick_config()).await;
    let cookie = guest_cookie(server.addr, "Ada").await;
    let building = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let builder = std::thread::spawn({
        let building = building.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            while building.load(std::sync::atomic::Ordering::Relaxed) {
                runtime.block_on(common::start(quick_config()));
            }
        }
    });
    for _ in 0..200 {
        let page = http(server.addr, "GET", "/r/lobby", None, &[("Cookie", &cookie)]).await;
        assert_eq!(page.status, 200);
    }
    building.store(false, std::sync::atomic::Ordering::Relaxed);
    builder.join().unwrap();
}
