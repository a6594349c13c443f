//! What one connection can make the server hold for it: a replay is streamed from the store
//! as the connection takes it, a re-join while a join answer is still on its way is refused,
//! and a client that stops reading and re-joins a big room as fast as it can leaves the
//! server's memory bounded while everyone else's messages keep arriving in order.

mod common;

use common::process::Hearth;
use common::{connect_to, joined, start, start_with, Client, TestServer};
use futures_util::SinkExt;
use hearth::protocol::{ClientId, ClientMsg, ErrorCode, RoomId, Seq, ServerMsg};
use hearth::server::hub::HubConfig;
use hearth::server::store::sql::SqlStore;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn room(name: &str) -> RoomId {
    RoomId(name.to_string())
}

fn send(room_name: &str, id: &str, text: &str) -> ClientMsg {
    ClientMsg::Send {
        room: room(room_name),
        client_id: ClientId(id.into()),
        text: text.into(),
    }
}

fn join_since(room_name: &str, since: u64) -> ClientMsg {
    ClientMsg::Join {
        room: room(room_name),
        since: Some(Seq(since)),
        epoch: None,
        changes_since: None,
    }
}

/// Fills `room_name` with `count` messages of about `len` characters from `senders`
/// connections at once, each pipelining its share a window at a time. The window keeps what
/// the server queues for a filler (its peers' messages, while it is busy sending) far below
/// the per-connection byte bound, so a filler is never answered `resync`.
async fn fill(addr: SocketAddr, room_name: &str, count: usize, len: usize, senders: usize) {
    let mut tasks = Vec::new();
    for s in 0..senders {
        let room_name = room_name.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = connect_to(addr, &format!("Filler{s}"), None).await;
            client.join(&room_name).await;
            let mine: Vec<usize> = (0..count).filter(|i| i % senders == s).collect();
            for window in mine.chunks(8) {
                for i in window {
                    let text = format!("{i:05} {}", "x".repeat(len));
                    client
                        .send(&send(&room_name, &format!("f{i}"), &text))
                        .await;
                }
                client.acks(window.len()).await;
            }
            client.hang_up().await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn unbatched() -> HubConfig {
    HubConfig {
        presence_batch: Duration::ZERO,
        ..HubConfig::default()
    }
}

#[tokio::test]
async fn a_rejoin_while_the_replay_is_queued_is_refused_and_the_replay_is_whole_and_once() {
    early_rejoin_refused_and_replay_whole(start(unbatched()).await).await;
}

#[tokio::test]
async fn a_paged_replay_from_sqlite_is_whole_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(dir.path(), 0).await.expect("open the store");
    early_rejoin_refused_and_replay_whole(start_with(Arc::new(store), unbatched()).await).await;
}

async fn early_rejoin_refused_and_replay_whole(server: TestServer) {
    // More than the room keeps in memory (256), so the replay is read from the store in
    // pages, and far more than the sockets' buffers hold (about 1.2 MB), so it is still on
    // its way when the second join arrives.
    fill(server.addr, "big", 400, 3000, 2).await;

    let mut live = connect_to(server.addr, "Live", None).await;
    live.join("big").await;
    let mut late = connect_to(server.addr, "Late", Some(4096)).await;
    late.send(&join_since("big", 0)).await;
    // At once, before reading anything: the first answer is still queued.
    late.send(&join_since("big", 0)).await;
    // Live traffic while the replay is on its way.
    for i in 0..5 {
        live.send(&send("big", &format!("live{i}"), &format!("live {i}")))
            .await;
    }
    live.acks(5).await;

    let first = joined(late.next_non_presence().await);
    assert!(first.recovered, "{first:?}");
    let mut seqs = Vec::new();
    let mut refusals = 0;
    // The refusal follows the answer, before or after the live messages (they race the
    // second join to the room).
    while seqs.len() < 405 || refusals == 0 {
        match late.next_non_presence().await {
            ServerMsg::Message(m) => seqs.push(m.seq.0),
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                room: Some(r),
                retry_after_ms: Some(_),
                ..
            } if r == room("big") => refusals += 1,
            other => panic!("expected the replay, live messages and one refusal, got {other:?}"),
        }
    }
    assert_eq!(
        seqs,
        (1..=405).collect::<Vec<u64>>(),
        "the replay and the live messages, in order, each once"
    );
    assert_eq!(refusals, 1, "the second join was refused, not answered");
    late.expect_nothing_pending().await;

    // Once the answer is out, joining again is allowed (that is how `resync` recovers).
    late.send(&join_since("big", 405)).await;
    let again = joined(late.next_non_presence().await);
    assert!(again.recovered && again.last_seq == 405, "{again:?}");
    late.expect_nothing_pending().await;
}

const MIB: u64 = 1024 * 1024;
/// The most the attack may add to the server's memory.
const BOUND: u64 = 64 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_rejoin_flood_keeps_memory_bounded() {
    let server = Hearth::start(&[
        // Filling the room and re-joining as fast as the server allows.
        ("HEARTH_MESSAGE_RATE", "0"),
        ("HEARTH_UPGRADES_PER_MINUTE", "0"),
    ])
    .await;
    // 1,000 messages of about 4 KB: a whole replay is about 4 MB.
    fill(server.addr, "big", 1000, 3990, 4).await;

    let mut watcher = connect_to(server.addr, "Watcher", None).await;
    watcher.join("big").await;
    let mut talker = connect_to(server.addr, "Talker", None).await;
    talker.join("big").await;
    // A client that never reads, with a small receive buffer so the server backs up at once.
    let mut attacker: Client = connect_to(server.addr, "Mallory", Some(4096)).await;
    let before = server.rss();

    let stop = Arc::new(AtomicBool::new(false));
    let joins = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, joins) = (stop.clone(), joins.clone());
        tokio::spawn(async move {
            let frame = serde_json::to_string(&join_since("big", 0)).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if attacker
                    .ws
                    .send(Message::text(frame.clone()))
                    .await
                    .is_err()
                {
                    break;
                }
                joins.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The attack runs at most 10 s, and stops early once the bound is passed (so a server
    // that does not hold it is not driven into swap); meanwhile one person keeps talking and
    // another must hear every word in order.
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let monitor = {
        let (stop, peak) = (stop.clone(), peak.clone());
        let pid = server.child.id();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = common::process::status_field(pid, "VmRSS:") * 1024;
                peak.fetch_max(rss, Ordering::Relaxed);
                if rss - before.min(rss) >= BOUND {
                    stop.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut sent = 0u64;
    let mut heard = Vec::new();
    let mut starved = false;
    while started.elapsed() < Duration::from_secs(10) && !stop.load(Ordering::Relaxed) {
        let round = async {
            talker
                .send(&send("big", &format!("t{sent}"), &format!("talk {sent}")))
                .await;
            talker.acks(1).await;
            watcher.next_message().await
        };
        // An ack or a delivery that takes seconds means the attack starved everyone else.
        match tokio::time::timeout(Duration::from_secs(4), round).await {
            Ok(msg) => heard.push(msg.text),
            Err(_) => {
                starved = true;
                break;
            }
        }
        sent += 1;
    }
    stop.store(true, Ordering::Relaxed);
    monitor.await.unwrap();
    // A server that stopped reading the flood leaves its last send pending: end it here.
    flood.abort();
    let _ = flood.await;
    let peak = peak.load(Ordering::Relaxed).max(server.rss());
    let growth = peak - before;
    eprintln!(
        "{} joins in {:.1} s; RSS {} MiB -> peak {} MiB (growth {:.1} MiB); {sent} live \
         messages heard{}",
        joins.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        before / MIB,
        peak / MIB,
        growth as f64 / MIB as f64,
        if starved {
            "; then a round took over 4 s"
        } else {
            ""
        },
    );
    assert!(
        growth < BOUND,
        "a client re-joining with since 0 grew the server by {} MiB (bound 64 MiB)",
        growth / MIB
    );
    assert!(
        !starved,
        "another client's message took over 4 s to go round"
    );
    assert!(sent >= 10, "the talker got through: {sent} messages");
    let expected: Vec<String> = (0..sent).map(|i| format!("talk {i}")).collect();
    assert_eq!(heard, expected, "the watcher heard everything, in order");
}
