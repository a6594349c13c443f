//! Crash safety of the real `hearth` binary over its default SQLite store: a SIGKILL in the
//! middle of steady traffic loses no acknowledged message and stores nothing twice, and the
//! tabs that were connected carry on after the restart without a reload. A SIGTERM under
//! the same traffic ends the process within 5 s with every acknowledged message stored.

mod common;

use common::{connect_cookie, guest_cookie, joined, Client};
use futures_util::{SinkExt, StreamExt};
use hearth::protocol::{ChatMessage, ClientId, ClientMsg, RoomId, Seq, ServerMsg};
use hearth::server::hub::HubConfig;
use hearth::server::store::{sql::SqlStore, Replay, Store};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

const ROOM: &str = "durable";
const WRITERS: usize = 4;
/// Sends one writer may have waiting for their ack at once.
const WINDOW: usize = 16;
/// Most sends per writer; far more than a second of traffic, so the crash lands mid-stream.
const CAP: usize = 50_000;

/// The `hearth` binary as a child process. Dropping it kills it (SIGKILL), so no test path
/// leaves a server behind.
struct Hearth {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Hearth {
    /// Starts the binary on `addr` with its history in `data_dir`; stderr goes to `log`.
    fn start(addr: SocketAddr, data_dir: &Path, log: &Path) -> Hearth {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
        // Settings of whoever runs the tests must not leak into the server under test.
        for (key, _) in std::env::vars() {
            if key.starts_with("HEARTH_") || key.starts_with("LEPTOS_") {
                command.env_remove(key);
            }
        }
        let child = command
            .env("HEARTH_ADDR", addr.to_string())
            .env("HEARTH_DATA_DIR", data_dir)
            .env("HEARTH_STORE", "sqlite")
            .env("HEARTH_RETAIN_MESSAGES", "0")
            // Pipelining writers are far over the default per-connection rate limit.
            .env("HEARTH_MESSAGE_RATE", "0")
            .env("LEPTOS_OUTPUT_NAME", "hearth")
            .env("RUST_LOG", "warn")
            .current_dir(log.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start the hearth binary");
        Hearth {
            child,
            addr,
            log: log.to_path_buf(),
        }
    }

    /// Waits (at most 60 s) until the server accepts TCP connections.
    async fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("hearth exited with {status}:\n{}", self.log_text());
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hearth did not accept connections within 60 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as a service manager sends it; returns how long the process took to exit
    /// and whether it exited successfully. Fails after 10 s.
    async fn terminate(&mut self) -> (Duration, bool) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return (started.elapsed(), exit.success());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "hearth still running 10 s after SIGTERM:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn text_for(client_id: &str) -> String {
    format!("durable message {client_id}")
}

fn send(client_id: &str) -> ClientMsg {
    ClientMsg::Send {
        room: RoomId(ROOM.into()),
        client_id: ClientId(client_id.into()),
        text: text_for(client_id),
    }
}

/// What one writer did and saw before the crash.
struct Traffic {
    name: String,
    /// Client ids in the order they were handed to the socket.
    sent: Vec<String>,
    /// Client id → seq, from `ack` frames.
    acked: HashMap<String, u64>,
    /// Every `message` frame, in arrival order, up to a `resync` if one came.
    seen: Vec<ChatMessage>,
    /// The server said this tab fell behind; it rejoins only after the restart.
    resynced: bool,
}

impl Traffic {
    /// The highest seq up to which this writer saw every message: where it rejoins from.
    fn last_seen(&self) -> u64 {
        let mut last = 0;
        for m in &self.seen {
            if m.seq.0 == last + 1 {
                last = m.seq.0;
            }
        }
        last
    }
}

/// Messages handed to the sockets and acks received, over all writers, as the crash nears.
#[derive(Default)]
struct Progress {
    sent: AtomicUsize,
    acked: AtomicUsize,
}

/// Sends continuously (at most [`WINDOW`] un-acked) until the connection dies, recording
/// every ack and message.
async fn chat_until_the_crash(client: Client, progress: Arc<Progress>) -> Traffic {
    let name = client.name.clone();
    let (mut tx, mut rx) = client.ws.split();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let window = Arc::new(Semaphore::new(WINDOW));
    let writer = tokio::spawn({
        let (name, sent, window) = (name.clone(), sent.clone(), window.clone());
        let progress = progress.clone();
        async move {
            for i in 0..CAP {
                let Ok(permit) = window.acquire().await else {
                    return;
                };
                permit.forget();
                let id = format!("{name}-{i}");
                sent.lock().unwrap().push(id.clone());
                progress.sent.fetch_add(1, Ordering::Relaxed);
                let frame = serde_json::to_string(&send(&id)).unwrap();
                if tx.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut traffic = Traffic {
        name,
        sent: Vec::new(),
        acked: HashMap::new(),
        seen: Vec::new(),
        resynced: false,
    };
    while let Some(Ok(frame)) = rx.next().await {
        let Message::Text(text) = frame else {
            continue;
        };
        match serde_json::from_str::<ServerMsg>(text.as_str()).unwrap() {
            ServerMsg::Ack { client_id, seq, .. } => {
                let before = traffic.acked.insert(client_id.0.clone(), seq.0);
                assert_eq!(before, None, "{}: {client_id} acked twice", traffic.name);
                progress.acked.fetch_add(1, Ordering::Relaxed);
                window.add_permits(1);
            }
            ServerMsg::Message(m) if !traffic.resynced => traffic.seen.push(m),
            ServerMsg::Resync { .. } => traffic.resynced = true,
            ServerMsg::Error { code, message, .. } => {
                panic!("{}: error {code:?} during traffic: {message}", traffic.name)
            }
            _ => {}
        }
    }
    writer.abort();
    let _ = writer.await;
    traffic.sent = std::mem::take(&mut *sent.lock().unwrap());
    traffic
}

/// The room's whole history, read from the database the server writes (while it runs), with
/// its seqs checked to be 1, 2, 3, … without a hole.
async fn history(data_dir: &Path, epoch: u64) -> Vec<ChatMessage> {
    let store = SqlStore::open(data_dir, 0).await.expect("open the history");
    assert_eq!(store.epoch(), epoch, "a restart keeps the history's epoch");
    let room = RoomId(ROOM.into());
    let Replay::Complete(list) = store.since(&room, Seq(0), 1_000_000).await.unwrap() else {
        panic!("the history has a hole at its start");
    };
    for (i, m) in list.iter().enumerate() {
        assert_eq!(m.seq.0, i as u64 + 1, "seqs are contiguous from 1");
    }
    assert_eq!(store.last_seq(&room).await.unwrap().0, list.len() as u64);
    list
}

/// Each (author, client id) at most once; returns where each one is.
fn index(history: &[ChatMessage]) -> HashMap<(String, String), u64> {
    let mut at = HashMap::new();
    for m in history {
        let key = (m.author.0.clone(), m.client_id.0.clone());
        if let Some(first) = at.insert(key, m.seq.0) {
            panic!(
                "{} / {} is stored twice: seq {first} and {}",
                m.author, m.client_id, m.seq
            );
        }
    }
    at
}

/// A running server on a fresh data directory with [`WRITERS`] tabs joined to [`ROOM`], each
/// chatting until its connection dies.
struct Scene {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
    server: Hearth,
    epoch: u64,
    progress: Arc<Progress>,
    tasks: Vec<tokio::task::JoinHandle<Traffic>>,
    /// Each writer's session cookie, by name: a tab that reconnects is the same person, so
    /// its resends are recognised as resends.
    cookies: HashMap<String, String>,
}

async fn start_chatting() -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("hearth.log");
    let addr = free_addr();
    let mut server = Hearth::start(addr, &data_dir, &log);
    server.wait_until_accepting().await;

    let mut clients = Vec::new();
    let mut cookies = HashMap::new();
    let mut epoch = None;
    for i in 0..WRITERS {
        let name = format!("writer{i}");
        let cookie = guest_cookie(addr, &name).await;
        let mut client = connect_cookie(addr, &cookie).await;
        cookies.insert(name, cookie);
        let answer = joined(client.join(ROOM).await);
        assert!(epoch.is_none_or(|e| e == answer.epoch));
        epoch = Some(answer.epoch);
        clients.push(client);
    }
    let progress = Arc::new(Progress::default());
    let tasks = clients
        .into_iter()
        .map(|c| tokio::spawn(chat_until_the_crash(c, progress.clone())))
        .collect();
    Scene {
        _dir: dir,
        data_dir,
        log,
        addr,
        server,
        epoch: epoch.unwrap(),
        progress,
        tasks,
        cookies,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_stream_loses_no_acknowledged_message_and_tabs_recover() {
    // Steady traffic from every writer; the server is killed after about a second of it,
    // once some messages are acknowledged and while others are still on their way.
    let Scene {
        _dir,
        data_dir,
        log,
        addr,
        mut server,
        epoch,
        progress,
        tasks,
        cookies,
    } = start_chatting().await;
    let started = Instant::now();
    loop {
        let acked = progress.acked.load(Ordering::Relaxed);
        let in_flight = progress.sent.load(Ordering::Relaxed) > acked;
        if started.elapsed() >= Duration::from_secs(1) && acked >= 40 && in_flight {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {acked} acks in 30 s:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let mut writers = Vec::new();
    for task in tasks {
        let traffic = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("a writer noticed the crash")
            .unwrap();
        writers.push(traffic);
    }
    let sent_total: usize = writers.iter().map(|w| w.sent.len()).sum();
    let acked_total: usize = writers.iter().map(|w| w.acked.len()).sum();
    eprintln!(
        "killed after {:?}: {sent_total} sent, {acked_total} acked",
        started.elapsed()
    );

    let mut server = Hearth::start(addr, &data_dir, &log);
    server.wait_until_accepting().await;

    // Every acknowledged message survived, once, at its seq, in each writer's send order.
    let stored = history(&data_dir, epoch).await;
    let at = index(&stored);
    for w in &writers {
        for (id, seq) in &w.acked {
            assert_eq!(
                at.get(&(w.name.clone(), id.clone())),
                Some(seq),
                "{}: {id} was acked as {seq}",
                w.name
            );
        }
        let order: Vec<u64> = w
            .sent
            .iter()
            .filter_map(|id| at.get(&(w.name.clone(), id.clone())).copied())
            .collect();
        assert!(
            order.windows(2).all(|p| p[0] < p[1]),
            "{}: stored out of send order: {order:?}",
            w.name
        );
        // What a tab showed before the crash is what the history says now.
        let mut last = 0;
        for m in &w.seen {
            assert!(m.seq.0 > last, "{}: saw seq {} after {last}", w.name, m.seq);
            last = m.seq.0;
            assert_eq!(
                Some(m),
                stored.get(m.seq.0 as usize - 1),
                "{}: saw a message the history does not have",
                w.name
            );
        }
    }
    for m in &stored {
        let writer = writers.iter().find(|w| w.name == m.author.0);
        assert!(
            writer.is_some_and(|w| w.sent.contains(&m.client_id.0)),
            "stored but never sent: {m:?}"
        );
        assert_eq!(m.text, text_for(&m.client_id.0));
    }
    let last_seq = stored.len() as u64;

    // Each tab reconnects and rejoins from the last seq it saw, in the same epoch: it is
    // recovered, and the replay is exactly what it had not seen. (A tab that fell more than
    // the replay limit behind is told to reload instead, as documented; at least one must
    // not have.)
    let mut tabs = Vec::new();
    let mut recovered = 0;
    for w in &writers {
        let mut tab = connect_cookie(addr, &cookies[&w.name]).await;
        let since = w.last_seen();
        tab.send(&ClientMsg::Join {
            room: RoomId(ROOM.into()),
            since: Some(Seq(since)),
            epoch: Some(epoch),
            changes_since: None,
        })
        .await;
        let answer = joined(tab.next_non_presence().await);
        assert_eq!(answer.last_seq, last_seq);
        if last_seq - since > HubConfig::default().replay_limit as u64 {
            assert!(!answer.recovered, "{}: a gap over the limit", w.name);
            tab.expect_nothing_pending().await;
            tabs.push(tab);
            continue;
        }
        assert!(
            answer.recovered,
            "{} rejoined from {since} without a reload",
            w.name
        );
        recovered += 1;
        for expected in &stored[since as usize..] {
            match tab.recv().await {
                ServerMsg::Message(m) => assert_eq!(&m, expected, "{}: replay", w.name),
                other => panic!("{}: expected the replay, got {other:?}", w.name),
            }
        }
        tab.expect_nothing_pending().await;
        tabs.push(tab);
    }
    assert!(recovered > 0, "no tab could rejoin without a reload");

    // Each tab resends what was never acknowledged, with the same client ids, and (as a tab
    // that crashed before forgetting it would) its last acknowledged message: what was
    // stored before the crash is acked with its old seq; the rest is stored now, once.
    let mut newly_stored = 0;
    for (w, tab) in writers.iter().zip(&mut tabs) {
        let last_acked = w.sent.iter().rfind(|id| w.acked.contains_key(*id));
        let resend: Vec<&String> = last_acked
            .into_iter()
            .chain(w.sent.iter().filter(|id| !w.acked.contains_key(*id)))
            .collect();
        for id in &resend {
            tab.send(&send(id)).await;
        }
        let acks = tab.acks(resend.len()).await;
        for (id, (acked_id, seq)) in resend.iter().zip(acks) {
            assert_eq!(*id, &acked_id, "acks come in send order");
            match at.get(&(w.name.clone(), acked_id.clone())) {
                Some(old) => assert_eq!(seq, *old, "{}: resent {acked_id}", w.name),
                None => {
                    newly_stored += 1;
                    assert_eq!(
                        seq,
                        last_seq + newly_stored,
                        "{}: {acked_id} stored after the restart",
                        w.name
                    );
                }
            }
        }
    }

    // Now every message ever sent is stored exactly once.
    let final_history = history(&data_dir, epoch).await;
    assert_eq!(final_history.len() as u64, last_seq + newly_stored);
    assert_eq!(
        final_history[..stored.len()],
        stored[..],
        "old history unchanged"
    );
    let at = index(&final_history);
    let every_sent: HashSet<(String, String)> = writers
        .iter()
        .flat_map(|w| w.sent.iter().map(|id| (w.name.clone(), id.clone())))
        .collect();
    assert_eq!(
        at.keys().cloned().collect::<HashSet<_>>(),
        every_sent,
        "each sent message is stored, once"
    );
    let resynced: Vec<&str> = writers
        .iter()
        .filter(|w| w.resynced)
        .map(|w| w.name.as_str())
        .collect();
    eprintln!(
        "{last_seq} stored before the crash, {newly_stored} stored by resends; \
         {recovered} of {WRITERS} tabs recovered; resynced during traffic: {resynced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_traffic_exits_within_5_s_and_stores_every_acknowledged_message() {
    let Scene {
        _dir,
        data_dir,
        mut server,
        epoch,
        progress,
        tasks,
        ..
    } = start_chatting().await;
    let started = Instant::now();
    while progress.acked.load(Ordering::Relaxed) < 200 || started.elapsed() < Duration::from_secs(1)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "too few acks in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (took, clean) = server.terminate().await;
    assert!(clean, "hearth exited with an error:\n{}", server.log_text());
    assert!(took <= Duration::from_secs(5), "SIGTERM took {took:?}");

    let mut acked = 0;
    let stored = history(&data_dir, epoch).await;
    let at = index(&stored);
    for task in tasks {
        let w = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("a writer noticed the shutdown")
            .unwrap();
        for (id, seq) in &w.acked {
            acked += 1;
            assert_eq!(
                at.get(&(w.name.clone(), id.clone())),
                Some(seq),
                "{}: {id}",
                w.name
            );
        }
    }
    eprintln!(
        "SIGTERM: exited in {took:?}; {acked} acked, {} stored",
        stored.len()
    );
}
