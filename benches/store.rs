//! Stored messages per second into one room: through the hub (connection → room actor →
//! group commit → ack and fan-out) and straight into `Store::append` at fixed batch sizes.
//!
//! Run with `cargo bench --features ssr --bench store`. Every case is bounded by
//! [`MAX_MESSAGES`] or [`MAX_TIME`], whichever comes first, and starts from an empty
//! database in a fresh temporary directory. The hub target is 20,000 stored messages per
//! second into one room.

use hearth::protocol::{AuthorKey, ClientId, RoomId, UserName};
use hearth::server::broker::SingleNode;
use hearth::server::conn::Outbound;
use hearth::server::hub::{Hub, HubConfig};
use hearth::server::store::{sql::SqlStore, MemoryStore, NewMessage, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_MESSAGES: usize = 100_000;
const MAX_TIME: Duration = Duration::from_secs(5);
const TEXT_BYTES: usize = 64;
const TARGET: f64 = 20_000.0;

struct Row {
    case: String,
    messages: usize,
    seconds: f64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
}

/// A 64-byte message body that differs per message.
fn text(i: usize) -> String {
    let mut text = format!("message {i:010} ");
    text.extend(std::iter::repeat_n('x', TEXT_BYTES - text.len()));
    text
}

fn room() -> RoomId {
    RoomId("bench".into())
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqlStore::open(dir.path(), 0).await.expect("open the store"))
}

/// Takes the next message number, or `None` once the case has sent or spent enough.
fn next(counter: &AtomicUsize, start: Instant) -> Option<usize> {
    if start.elapsed() >= MAX_TIME {
        return None;
    }
    let i = counter.fetch_add(1, Ordering::Relaxed);
    (i < MAX_MESSAGES).then_some(i)
}

/// `conns` joined connections send as fast as the room takes them (the socket path minus
/// the socket): each `send` only queues for the room actor, which commits whatever is
/// waiting as one batch. Timed until every message is acked.
async fn hub_send(store: Arc<dyn Store>, conns: usize) -> (usize, f64) {
    let hub = Hub::new(
        store,
        Arc::new(SingleNode),
        HubConfig {
            // Room for every ack and fanned-out frame: a lagging reader would lose acks.
            queue_frames: 4 * MAX_MESSAGES,
            ..HubConfig::default()
        },
    );
    let mut members = Vec::new();
    for c in 0..conns {
        let (conn, rx) = hub.connect(UserName(format!("sender{c}")));
        hub.join(&conn, &room(), None, None).await.expect("join");
        members.push((conn, rx));
    }
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = members
        .into_iter()
        .map(|(conn, mut rx)| {
            let (hub, counter) = (hub.clone(), counter.clone());
            tokio::spawn(async move {
                let sent = Arc::new(AtomicUsize::new(0));
                let done_sending = Arc::new(tokio::sync::Notify::new());
                let producer = {
                    let sent = sent.clone();
                    let done_sending = done_sending.clone();
                    async move {
                        while let Some(i) = next(&counter, start) {
                            hub.send(&conn, &room(), ClientId(format!("m{i}")), text(i))
                                .await
                                .expect("send");
                            sent.fetch_add(1, Ordering::Release);
                        }
                        done_sending.notify_one();
                    }
                };
                let consumer = async {
                    let mut acks = 0;
                    let mut finished = false;
                    loop {
                        if finished && acks >= sent.load(Ordering::Acquire) {
                            return acks;
                        }
                        tokio::select! {
                            item = rx.recv() => {
                                let frames = match item.expect("queue open") {
                                    Outbound::Frame(f) => vec![f],
                                    Outbound::Batch(fs) => fs,
                                    Outbound::Join(answer) => answer.frames,
                                };
                                acks += frames
                                    .iter()
                                    .filter(|f| f.as_str().starts_with(r#"{"type":"ack""#))
                                    .count();
                            }
                            _ = done_sending.notified(), if !finished => finished = true,
                        }
                    }
                };
                tokio::join!(producer, consumer).1
            })
        })
        .collect();
    let mut acked = 0;
    for task in tasks {
        acked += task.await.expect("sender task");
    }
    (acked, start.elapsed().as_secs_f64())
}

/// `waiters` tasks each post one message at a time and wait for its seq (the no-JS form
/// path), so at most `waiters` messages can share a commit.
async fn hub_post(store: Arc<dyn Store>, waiters: usize) -> (usize, f64) {
    let hub = Hub::new(store, Arc::new(SingleNode), HubConfig::default());
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..waiters)
        .map(|w| {
            let (hub, counter) = (hub.clone(), counter.clone());
            tokio::spawn(async move {
                let author = UserName(format!("poster{w}"));
                let mut stored = 0;
                while let Some(i) = next(&counter, start) {
                    hub.post(author.clone(), &room(), ClientId(format!("m{i}")), text(i))
                        .await
                        .expect("post");
                    stored += 1;
                }
                stored
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += task.await.expect("poster task");
    }
    (stored, start.elapsed().as_secs_f64())
}

/// Sequential `Store::append` calls of `batch` messages each.
async fn append(store: Arc<dyn Store>, batch: usize) -> (usize, f64) {
    let author = UserName("appender".into());
    let mut stored = 0;
    let start = Instant::now();
    while stored < MAX_MESSAGES && start.elapsed() < MAX_TIME {
        let n = batch.min(MAX_MESSAGES - stored);
        let list = (stored..stored + n)
            .map(|i| NewMessage {
                author: author.clone(),
                author_key: AuthorKey::account(1),
                client_id: ClientId(format!("m{i}")),
                text: text(i),
                ts: 1,
            })
            .collect();
        let out = store.append(&room(), list).await.expect("append");
        assert_eq!(out.len(), n);
        stored += n;
    }
    (stored, start.elapsed().as_secs_f64())
}

async fn check_stored(store: &Arc<dyn Store>, expected: usize) {
    let last = store.last_seq(&room()).await.expect("last_seq");
    assert_eq!(last.0 as usize, expected, "every counted message is stored");
}

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("hearth store bench: {cores} cores, {TEXT_BYTES}-byte messages, one room,");
    println!(
        "each case at most {MAX_MESSAGES} messages or {} s",
        MAX_TIME.as_secs()
    );
    let mut rows = Vec::new();

    for conns in [1, 8] {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let (n, s) = hub_send(store.clone(), conns).await;
        check_stored(&store, n).await;
        rows.push(Row {
            case: format!("sqlite: hub send, {conns} conn(s)"),
            messages: n,
            seconds: s,
        });
    }
    {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let (n, s) = hub_post(store.clone(), 64).await;
        check_stored(&store, n).await;
        rows.push(Row {
            case: "sqlite: hub post, 64 waiters".into(),
            messages: n,
            seconds: s,
        });
    }
    for batch in [1, 16, 256] {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let (n, s) = append(store.clone(), batch).await;
        check_stored(&store, n).await;
        rows.push(Row {
            case: format!("sqlite: append, batch {batch}"),
            messages: n,
            seconds: s,
        });
    }
    // The same hub path without SQLite: what the hub itself costs.
    {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1, MAX_MESSAGES));
        let (n, s) = hub_send(store.clone(), 8).await;
        check_stored(&store, n).await;
        rows.push(Row {
            case: "memory: hub send, 8 conns".into(),
            messages: n,
            seconds: s,
        });
    }

    println!();
    println!(
        "{:<32} {:>9} {:>9} {:>11}",
        "case", "messages", "seconds", "msgs/s"
    );
    for row in &rows {
        println!(
            "{:<32} {:>9} {:>9.3} {:>11.0}",
            row.case,
            row.messages,
            row.seconds,
            row.rate()
        );
    }
    let best_hub = rows
        .iter()
        .filter(|r| r.case.starts_with("sqlite: hub send"))
        .map(Row::rate)
        .fold(0.0, f64::max);
    println!();
    println!(
        "target: {TARGET:.0} stored msgs/s into one room through the hub (SQLite): {}",
        if best_hub >= TARGET { "met" } else { "NOT met" }
    );
}
