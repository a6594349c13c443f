//! `hearth-loadgen`: a WebSocket load generator for Hearth and the peer servers it is compared
//! with. The command line and the JSON it prints are specified in `bench/LOADGEN_CONTRACT.md`.
//!
//! Every connection is one task on a (by default single-threaded) tokio runtime. Senders post
//! on a fixed schedule; each message carries a compact token (`<run>s<sender>:<counter>`) and
//! its send time in microseconds since a shared base, so every receiver can measure latency
//! and detect loss and duplicates on its own. Latencies go into one histogram per worker
//! thread (a per-connection histogram would cost hundreds of KiB per connection).
//!
//! Phases: connect (bounded ramp) → send (`--duration`) → drain (`--drain`, or until every
//! expected delivery arrived) → slow connections resume reading (and resync, for Hearth) →
//! done. Every phase has a time limit, so the tool always terminates.

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Receive buffer of a `--slow` connection's socket, so backpressure builds after a few
/// frames instead of after megabytes of kernel buffering.
const SLOW_RCVBUF: u32 = 4096;
/// Read buffer of each connection (bytes).
const READ_BUFFER: usize = 1024;
/// Limit for connecting and completing the protocol handshake of one connection.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Limit for writing one frame.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long slow connections get to catch up once they read again.
const SLOW_PHASE_LIMIT: Duration = Duration::from_secs(30);
/// Latencies above this (µs) are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// A counter this far ahead of everything seen is not ours (or absurd); ignore it.
const MAX_COUNTER_GAP: u64 = 1 << 26;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "hearth-loadgen",
    version,
    about = "WebSocket load generator for Hearth and its peer servers (loopback only).",
    long_about = "WebSocket load generator for Hearth and its peer servers (loopback only).\n\
                  Contract: bench/LOADGEN_CONTRACT.md."
)]
struct Args {
    /// WebSocket URL of the server under test (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    url: String,
    /// Wire protocol the server speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Hearth)]
    protocol: Protocol,
    /// Number of connections.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Connections opened per second.
    #[arg(long, default_value_t = 1000.0)]
    ramp: f64,
    /// Rooms the connections are spread over, round-robin (hearth only).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// How many of the connections send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second in total, spread over the senders.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of sending (after all connections are up); with --idle, seconds to hold.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Bytes per message body (token + send time + padding).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Non-sending connections that stop reading after joining and catch up at the end.
    #[arg(long, default_value_t = 0)]
    slow: usize,
    /// Seconds to wait for in-flight deliveries after sending stops.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// PID whose resident memory (VmRSS) is sampled before connecting and at the end.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Open the connections, hold them for --duration seconds, measure memory, send nothing.
    #[arg(long)]
    idle: bool,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// Hearth's JSON protocol (docs/protocol.md).
    Hearth,
    /// Every text frame is broadcast to every connection, the sender included.
    Raw,
    /// Socket.IO v4 over Engine.IO v4 (WebSocket transport), event "chat".
    Socketio,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Hearth => "hearth",
            Protocol::Raw => "raw",
            Protocol::Socketio => "socketio",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Setup,
    Send { start: Instant, end: Instant },
    Idle,
    Drain,
    Slow,
    Done,
}

type Ws = WebSocketStream<TcpStream>;

/// State every connection task shares.
struct Shared {
    /// One guest session cookie (`hearth_session=…`) per connection (hearth protocol only).
    sessions: Vec<String>,
    protocol: Protocol,
    url: String,
    addr: SocketAddr,
    rooms: usize,
    senders: usize,
    sender_period: Duration,
    size: usize,
    connections: usize,
    slow: usize,
    /// Distinguishes this run's tokens and client ids from earlier runs against the same server.
    tag: String,
    base: Instant,
    phase: watch::Sender<Phase>,
    ready: AtomicUsize,
    failed: AtomicUsize,
    /// Fast (not `--slow`) connections established per room.
    members: Vec<AtomicU64>,
    slow_ok: AtomicUsize,
    slow_done: AtomicUsize,
    sent_by_sender: Vec<AtomicU64>,
    /// Messages each sender sends in total (`--rate` × `--duration`, split evenly).
    quota: Vec<u64>,
    /// Senders that are connected, and senders that have stopped sending.
    senders_active: AtomicUsize,
    senders_done: AtomicUsize,
    resyncs: AtomicU64,
    unrecovered: AtomicU64,
    server_errors: AtomicU64,
    early_closes: AtomicU64,
    send_failures: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn room_name(&self, room: usize) -> String {
        format!("bench-{room}")
    }

    fn room_of(&self, idx: usize) -> usize {
        idx % self.rooms
    }

    /// Messages sent so far by the senders of `room`.
    fn sent_in_room(&self, room: usize) -> u64 {
        (room..self.senders)
            .step_by(self.rooms)
            .map(|s| self.sent_by_sender[s].load(Ordering::Relaxed))
            .sum()
    }

    fn expected(&self) -> u64 {
        (0..self.rooms)
            .map(|r| self.sent_in_room(r) * self.members[r].load(Ordering::Relaxed))
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Per-thread delivery statistics (fast connections only).

struct ThreadStats {
    hist: Histogram<u64>,
    unique: u64,
    dups: u64,
    last_us: u64,
}

impl ThreadStats {
    fn new() -> ThreadStats {
        ThreadStats {
            hist: new_histogram(),
            unique: 0,
            dups: 0,
            last_us: 0,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

static REGISTRY: Mutex<Vec<Arc<Mutex<ThreadStats>>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Arc<Mutex<ThreadStats>> = {
        let stats = Arc::new(Mutex::new(ThreadStats::new()));
        lock(&REGISTRY).push(stats.clone());
        stats
    };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_stats<R>(f: impl FnOnce(&mut ThreadStats) -> R) -> R {
    LOCAL.with(|s| f(&mut lock(s)))
}

fn merged_stats() -> ThreadStats {
    let mut total = ThreadStats::new();
    for s in lock(&REGISTRY).iter() {
        let s = lock(s);
        let _ = total.hist.add(&s.hist);
        total.unique += s.unique;
        total.dups += s.dups;
        total.last_us = total.last_us.max(s.last_us);
    }
    total
}

fn unique_so_far() -> u64 {
    lock(&REGISTRY).iter().map(|s| lock(s).unique).sum()
}

// ---------------------------------------------------------------------------------------------
// Dedupe: which counters of one sender a receiver has seen.

/// Counters below `base` were all seen; `words` is a bitset from `base` on. Messages mostly
/// arrive in order, so this stays a word or two per sender.
#[derive(Default)]
struct Seen {
    base: u64,
    words: VecDeque<u64>,
}

enum Insert {
    New,
    Dup,
    Bogus,
}

impl Seen {
    fn insert(&mut self, counter: u64) -> Insert {
        if counter < self.base {
            return Insert::Dup;
        }
        let offset = counter - self.base;
        if offset > MAX_COUNTER_GAP {
            return Insert::Bogus;
        }
        let word = (offset / 64) as usize;
        let bit = 1u64 << (offset % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        if self.words[word] & bit != 0 {
            return Insert::Dup;
        }
        self.words[word] |= bit;
        while self.words.front() == Some(&u64::MAX) {
            self.words.pop_front();
            self.base += 64;
        }
        Insert::New
    }

    /// How many counters from 0 on were all seen.
    fn gapless(&self) -> u64 {
        self.base
            + self
                .words
                .front()
                .map_or(0, |w| u64::from(w.trailing_ones()))
    }

    fn count(&self) -> u64 {
        self.base
            + self
                .words
                .iter()
                .map(|w| w.count_ones() as u64)
                .sum::<u64>()
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads.

fn make_payload(tag: &str, sender: usize, counter: u64, sent_us: u64, size: usize) -> String {
    let mut p = String::with_capacity(size.max(32));
    let _ = write!(p, "{tag}s{sender}:{counter}:{sent_us}:");
    if p.len() < size {
        p.extend(std::iter::repeat_n('x', size - p.len()));
    }
    p
}

/// `(sender, counter, sent_us)` from a payload of this run, or `None`.
fn parse_payload(p: &str, tag: &str) -> Option<(usize, u64, u64)> {
    let rest = p.strip_prefix(tag)?.strip_prefix('s')?;
    let mut parts = rest.splitn(4, ':');
    let sender = parts.next()?.parse().ok()?;
    let counter = parts.next()?.parse().ok()?;
    let sent_us = parts.next()?.parse().ok()?;
    Some((sender, counter, sent_us))
}

/// The `"type"` of a Hearth server frame (serde puts the tag first).
fn frame_type(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix("{\"type\":\"")?;
    Some(&rest[..rest.find('"')?])
}

/// `(seq, text)` of a Hearth `message` frame. Inside JSON strings every `"` is escaped, so the
/// first unescaped `,"seq":` / `,"text":"` is the field itself. A text with escapes is cut
/// short, which only matters for texts that are not ours.
fn hearth_message(frame: &str) -> Option<(u64, &str)> {
    let at = frame.find(",\"seq\":")? + 7;
    let rest = &frame[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let seq = rest[..end].parse().ok()?;
    let at = frame.find(",\"text\":\"")? + 9;
    let rest = &frame[at..];
    Some((seq, &rest[..rest.find('"')?]))
}

#[derive(serde::Deserialize)]
struct ControlFrame {
    #[serde(default)]
    last_seq: Option<u64>,
    #[serde(default)]
    epoch: Option<u64>,
    #[serde(default)]
    recovered: Option<bool>,
    #[serde(default)]
    heartbeat_ms: Option<u64>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn control(frame: &str) -> Option<ControlFrame> {
    serde_json::from_str(frame).ok()
}

fn hearth_send(room: &str, client_id: &str, text: &str) -> String {
    // Room, id and text are ASCII without quotes or backslashes: no escaping needed.
    format!("{{\"type\":\"send\",\"room\":\"{room}\",\"client_id\":\"{client_id}\",\"text\":\"{text}\"}}")
}

fn hearth_join(room: &str, since: Option<(u64, u64)>) -> String {
    match since {
        Some((seq, epoch)) => {
            format!("{{\"type\":\"join\",\"room\":\"{room}\",\"since\":{seq},\"epoch\":{epoch}}}")
        }
        None => format!("{{\"type\":\"join\",\"room\":\"{room}\"}}"),
    }
}

// ---------------------------------------------------------------------------------------------
// URL handling.

/// Checks the URL is `ws://` on a loopback host and returns the URL to request (adjusted to
/// Engine.IO's path for `socketio`) and the address to connect to.
fn resolve_url(raw: &str, protocol: Protocol) -> Result<(String, SocketAddr), String> {
    let rest = raw.strip_prefix("ws://").ok_or_else(|| {
        if raw.starts_with("wss://") {
            format!("{raw}: wss:// is not supported; the load generator only targets loopback servers over ws://")
        } else {
            format!("{raw}: the URL must start with ws://")
        }
    })?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| format!("{raw}: unterminated [IPv6] host"))?;
        let port = v6[close + 1..].strip_prefix(':');
        (&v6[..close], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{raw}: {p:?} is not a port number"))?,
        None => 80,
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        match host.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => ip,
            _ => {
                return Err(format!(
                    "refusing {raw}: host {host:?} is not loopback; hearth-loadgen only targets \
                     servers on this machine (127.0.0.1, ::1 or localhost)"
                ))
            }
        }
    };
    let path = if path.is_empty() { "/" } else { path };
    let path = match protocol {
        Protocol::Socketio if !path.starts_with("/socket.io") => {
            "/socket.io/?EIO=4&transport=websocket".to_string()
        }
        Protocol::Socketio if !path.contains("EIO=") => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}EIO=4&transport=websocket")
        }
        _ => path.to_string(),
    };
    Ok((format!("ws://{authority}{path}"), SocketAddr::new(ip, port)))
}

// ---------------------------------------------------------------------------------------------
// Connections.

#[derive(Default)]
struct Outcome {
    established: bool,
    /// Established and still open when the run ended.
    survived: bool,
    slow: bool,
    slow_complete: bool,
    slow_dups: u64,
}

/// What one connection knows about its room and its peers' messages.
struct Receiver {
    slow: bool,
    room: usize,
    room_name: String,
    /// Indexed by the sender's position within the room (`sender / rooms`).
    seen: Vec<Seen>,
    /// Hearth: the room's `last_seq` when this connection joined (or gave up on a gap).
    seq_base: u64,
    /// Hearth: sequence numbers seen after `seq_base` (offset by `seq_base + 1`). A rejoin
    /// asks for everything after the highest *gapless* one, so a second `resync` that comes
    /// before the first replay cannot skip the gap.
    seqs: Seen,
    epoch: u64,
    heartbeat: Duration,
    unique: u64,
    dups: u64,
    /// Set once a rejoin answered `recovered: false`: the gap cannot be filled.
    unrecoverable: bool,
}

/// A connection that completed its handshake and joined, or why it did not.
type Setup = Result<(Ws, Receiver), String>;

async fn connect(sh: &Shared, idx: usize, slow: bool) -> Result<Ws, String> {
    let socket = match sh.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if slow {
        let _ = socket.set_recv_buffer_size(SLOW_RCVBUF);
    }
    let tcp = socket
        .connect(sh.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut request = sh
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    if sh.protocol == Protocol::Hearth {
        let session = sh
            .sessions
            .get(idx)
            .ok_or("no session for this connection")?;
        let cookie = HeaderValue::from_str(session).map_err(|e| format!("cookie: {e}"))?;
        request.headers_mut().insert(header::COOKIE, cookie);
    }
    // tungstenite zeroes its whole read buffer before every read (and allocates a new one
    // when the last frame still holds the old), so at fan-out rates the zeroing of its
    // 128 KiB default would be most of the generator's CPU time. Frames here are a few
    // hundred bytes; a bigger one just takes more reads.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    Ok(ws)
}

/// `n` guest sessions, made as a browser makes one (`POST /api/set_name`), 32 at a time.
async fn guest_sessions(addr: SocketAddr, n: usize, tag: &str) -> Result<Vec<String>, String> {
    let mut out = vec![String::new(); n];
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut done = 0;
    while done < n {
        while next < n && tasks.len() < 32 {
            let name = format!("lg-{tag}-{next}");
            let idx = next;
            tasks.spawn(async move { (idx, guest_session(addr, &name).await) });
            next += 1;
        }
        match tasks.join_next().await {
            Some(Ok((idx, Ok(cookie)))) => {
                out[idx] = cookie;
                done += 1;
            }
            Some(Ok((idx, Err(e)))) => return Err(format!("session {idx}: {e}")),
            Some(Err(e)) => return Err(format!("session task: {e}")),
            None => break,
        }
    }
    Ok(out)
}

/// A guest session named `name`. Returns the `hearth_session=…` cookie pair.
async fn guest_session(addr: SocketAddr, name: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!("name={name}");
    let request = format!(
        "POST /api/set_name HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("session connect: {e}"))?;
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("session write: {e}"))?;
    let mut reply = Vec::new();
    tokio::time::timeout(SETUP_TIMEOUT, tcp.read_to_end(&mut reply))
        .await
        .map_err(|_| "session: no answer".to_string())?
        .map_err(|e| format!("session read: {e}"))?;
    let reply = String::from_utf8_lossy(&reply);
    reply
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().split(';').next())
        .find(|pair| pair.starts_with("hearth_session="))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "set_name gave no session: {}",
                reply.lines().next().unwrap_or("no reply")
            )
        })
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(c))) => return Err(format!("closed during setup: {c:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("closed during setup".into()),
        }
    }
}

async fn write(ws: &mut Ws, text: String) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write timed out".into()),
    }
}

async fn setup(sh: &Shared, idx: usize, slow: bool) -> Setup {
    let mut ws = connect(sh, idx, slow).await?;
    let room = sh.room_of(idx);
    let room_senders = (room..sh.senders).step_by(sh.rooms).count();
    let mut rx = Receiver {
        slow,
        room,
        room_name: sh.room_name(room),
        seen: (0..room_senders).map(|_| Seen::default()).collect(),
        seq_base: 0,
        seqs: Seen::default(),
        epoch: 0,
        heartbeat: Duration::from_secs(10),
        unique: 0,
        dups: 0,
        unrecoverable: false,
    };
    let result: Result<(), String> = async {
        match sh.protocol {
            Protocol::Raw => Ok(()),
            Protocol::Socketio => {
                let open = next_text(&mut ws).await?;
                if !open.starts_with('0') {
                    return Err(format!("expected an Engine.IO open packet, got {open:?}"));
                }
                write(&mut ws, "40".into()).await?;
                loop {
                    let t = next_text(&mut ws).await?;
                    if t.starts_with("40") {
                        return Ok(());
                    } else if t == "2" {
                        write(&mut ws, "3".into()).await?;
                    } else if t.starts_with("44") {
                        return Err(format!("Socket.IO refused the connection: {t}"));
                    }
                }
            }
            Protocol::Hearth => {
                let welcome = next_text(&mut ws).await?;
                if frame_type(&welcome) != Some("welcome") {
                    return Err(format!("expected welcome, got {welcome:?}"));
                }
                if let Some(ms) = control(&welcome).and_then(|c| c.heartbeat_ms) {
                    rx.heartbeat = Duration::from_millis(ms.max(100));
                }
                write(&mut ws, hearth_join(&rx.room_name, None)).await?;
                loop {
                    let t = next_text(&mut ws).await?;
                    match frame_type(&t) {
                        Some("joined") => {
                            let c = control(&t).ok_or("unreadable joined frame")?;
                            rx.seq_base = c.last_seq.unwrap_or(0);
                            rx.epoch = c.epoch.unwrap_or(0);
                            return Ok(());
                        }
                        Some("ping") => write(&mut ws, "{\"type\":\"pong\"}".into()).await?,
                        Some("error") => return Err(format!("join refused: {t}")),
                        _ => {}
                    }
                }
            }
        }
    }
    .await;
    result.map(|()| (ws, rx))
}

async fn tick_opt(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What to do after reading a frame.
enum Reply {
    None,
    Send(String),
    Close,
}

impl Receiver {
    /// Counts one delivery of a payload: new or duplicate, with its latency.
    fn deliver(&mut self, sh: &Shared, payload: &str, now_us: u64) {
        let Some((sender, counter, sent_us)) = parse_payload(payload, &sh.tag) else {
            return;
        };
        if sender >= sh.senders || sender % sh.rooms != self.room {
            return;
        }
        let Some(seen) = self.seen.get_mut(sender / sh.rooms) else {
            return;
        };
        let new = match seen.insert(counter) {
            Insert::New => true,
            Insert::Dup => false,
            Insert::Bogus => return,
        };
        if self.slow {
            if new {
                self.unique += 1;
            } else {
                self.dups += 1;
            }
            return;
        }
        with_stats(|s| {
            if new {
                s.unique += 1;
                s.hist
                    .saturating_record(now_us.saturating_sub(sent_us).max(1));
                s.last_us = s.last_us.max(now_us);
            } else {
                s.dups += 1;
            }
        });
    }

    fn on_frame(&mut self, sh: &Shared, text: &str) -> Reply {
        let now_us = sh.now_us();
        match sh.protocol {
            Protocol::Raw => {
                self.deliver(sh, text, now_us);
                Reply::None
            }
            Protocol::Socketio => {
                if let Some(rest) = text.strip_prefix("42[\"chat\",\"") {
                    if let Some(payload) = rest.strip_suffix("\"]") {
                        self.deliver(sh, payload, now_us);
                    }
                    Reply::None
                } else if text == "2" {
                    Reply::Send("3".into())
                } else if text == "1" || text.starts_with("41") {
                    Reply::Close
                } else {
                    Reply::None
                }
            }
            Protocol::Hearth => match frame_type(text) {
                Some("message") => {
                    if let Some((seq, body)) = hearth_message(text) {
                        if seq > self.seq_base {
                            let _ = self.seqs.insert(seq - self.seq_base - 1);
                        }
                        self.deliver(sh, body, now_us);
                    }
                    Reply::None
                }
                Some("ack") | Some("presence") | Some("pong") | Some("welcome") => Reply::None,
                Some("ping") => Reply::Send("{\"type\":\"pong\"}".into()),
                Some("resync") => {
                    sh.resyncs.fetch_add(1, Ordering::Relaxed);
                    let since = self.seq_base + self.seqs.gapless();
                    Reply::Send(hearth_join(&self.room_name, Some((since, self.epoch))))
                }
                Some("joined") => {
                    if let Some(c) = control(text) {
                        if c.recovered == Some(false) {
                            sh.unrecovered.fetch_add(1, Ordering::Relaxed);
                            self.unrecoverable = true;
                            // A real client reloads the newest window here; continue from
                            // the room's head so later replays are not refused as well.
                            self.seq_base = c.last_seq.unwrap_or(0).max(self.seq_base);
                            self.seqs = Seen::default();
                        }
                        if let Some(epoch) = c.epoch {
                            self.epoch = epoch;
                        }
                    }
                    Reply::None
                }
                Some("error") => {
                    let n = sh.server_errors.fetch_add(1, Ordering::Relaxed);
                    if n < 5 {
                        let c = control(text);
                        eprintln!(
                            "hearth-loadgen: server error {}: {}",
                            c.as_ref().and_then(|c| c.code.as_deref()).unwrap_or("?"),
                            c.as_ref()
                                .and_then(|c| c.message.as_deref())
                                .unwrap_or(text)
                        );
                    }
                    Reply::None
                }
                _ => Reply::None,
            },
        }
    }

    /// True when this connection has every message sent to its room (after sending ended).
    fn complete(&self, sh: &Shared) -> bool {
        self.seen.iter().enumerate().all(|(k, seen)| {
            let sender = k * sh.rooms + self.room;
            seen.count() >= sh.sent_by_sender[sender].load(Ordering::Relaxed)
        })
    }
}

/// The next phase the run enters, or `None` when the run is gone; hands the receiver back.
async fn next_phase(mut rx: watch::Receiver<Phase>) -> (watch::Receiver<Phase>, Option<Phase>) {
    let phase = match rx.changed().await {
        Ok(()) => Some(*rx.borrow_and_update()),
        Err(_) => None,
    };
    (rx, phase)
}

async fn run_conn(sh: Arc<Shared>, idx: usize) -> Outcome {
    let slow = idx >= sh.connections - sh.slow;
    let sender = (idx < sh.senders).then_some(idx);
    let mut outcome = Outcome {
        slow,
        ..Outcome::default()
    };
    let setup = match tokio::time::timeout(SETUP_TIMEOUT, setup(&sh, idx, slow)).await {
        Ok(s) => s,
        Err(_) => Err("setup timed out".into()),
    };
    let mut phase_rx = sh.phase.subscribe();
    let (mut ws, mut rx) = match setup {
        Ok((ws, rx)) if *phase_rx.borrow_and_update() == Phase::Setup => (ws, rx),
        Ok(_) => {
            // Too late: the run started without this connection.
            sh.failed.fetch_add(1, Ordering::Relaxed);
            return outcome;
        }
        Err(e) => {
            if sh.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("hearth-loadgen: connection {idx} failed: {e}");
            }
            return outcome;
        }
    };
    outcome.established = true;
    if slow {
        sh.slow_ok.fetch_add(1, Ordering::Relaxed);
    } else {
        sh.members[rx.room].fetch_add(1, Ordering::Relaxed);
    }
    sh.ready.fetch_add(1, Ordering::Release);

    let mut reading = !slow;
    let mut ticker: Option<Interval> = None;
    let mut send_end = Instant::now();
    let quota = sender.map_or(0, |s| sh.quota[s]);
    let mut sending = sender.is_some();
    if sending {
        sh.senders_active.fetch_add(1, Ordering::Relaxed);
    }
    let mut counter: u64 = 0;
    let client_room = rx.room_name.clone();
    // Slow Hearth connections still send a frame now and then so the server does not close
    // them as dead while they are not reading.
    let mut keepalive: Option<Interval> = (slow && sh.protocol == Protocol::Hearth).then(|| {
        let mut t = tokio::time::interval_at(
            tokio::time::Instant::now() + rx.heartbeat / 2,
            rx.heartbeat / 2,
        );
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    let mut check: Option<Interval> = None;
    let mut signalled = false;
    // Kept across loop turns: a fresh `changed()` per turn registered and dropped a waiter
    // for every frame read, a visible share of the generator's CPU.
    let mut phase_change = Box::pin(next_phase(phase_rx));

    let closed_early = loop {
        tokio::select! {
            biased;
            (back, phase) = &mut phase_change => {
                phase_change = Box::pin(next_phase(back));
                let Some(phase) = phase else { break false };
                match phase {
                    Phase::Send { start, end } => {
                        if let (Some(s), true) = (sender, quota > 0) {
                            let offset = sh.sender_period.mul_f64(s as f64 / sh.senders as f64);
                            let mut t = tokio::time::interval_at(
                                tokio::time::Instant::from_std(start + offset),
                                sh.sender_period,
                            );
                            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                            ticker = Some(t);
                            // A sender behind schedule stops a little after the end anyway.
                            send_end = end + Duration::from_secs(1);
                        } else if sending {
                            sending = false;
                            sh.senders_done.fetch_add(1, Ordering::Release);
                        }
                    }
                    Phase::Slow if slow => {
                        reading = true;
                        keepalive = None;
                        let mut t = tokio::time::interval(Duration::from_millis(50));
                        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                        check = Some(t);
                    }
                    Phase::Done => break false,
                    _ => {}
                }
            }
            _ = tick_opt(&mut ticker) => {
                let Some(s) = sender else { continue };
                if counter >= quota || Instant::now() >= send_end {
                    ticker = None;
                    sending = false;
                    sh.senders_done.fetch_add(1, Ordering::Release);
                    continue;
                }
                let sent_us = sh.now_us();
                let payload = make_payload(&sh.tag, s, counter, sent_us, sh.size);
                let frame = match sh.protocol {
                    Protocol::Raw => payload,
                    Protocol::Socketio => format!("42[\"chat\",\"{payload}\"]"),
                    Protocol::Hearth => {
                        let client_id = format!("{}-{s}-{counter}", sh.tag);
                        hearth_send(&client_room, &client_id, &payload)
                    }
                };
                match write(&mut ws, frame).await {
                    Ok(()) => {
                        counter += 1;
                        sh.sent_by_sender[s].fetch_add(1, Ordering::Relaxed);
                        if counter >= quota {
                            ticker = None;
                            sending = false;
                            sh.senders_done.fetch_add(1, Ordering::Release);
                        }
                    }
                    Err(e) => {
                        if sh.send_failures.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("hearth-loadgen: sender {s} stopped: {e}");
                        }
                        ticker = None;
                        sending = false;
                        sh.senders_done.fetch_add(1, Ordering::Release);
                    }
                }
            }
            _ = tick_opt(&mut keepalive) => {
                if write(&mut ws, "{\"type\":\"ping\"}".into()).await.is_err() {
                    break true;
                }
            }
            _ = tick_opt(&mut check) => {
                if !signalled && (rx.unrecoverable || rx.complete(&sh)) {
                    signalled = true;
                    sh.slow_done.fetch_add(1, Ordering::Release);
                }
            }
            msg = ws.next(), if reading => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break true,
                    Some(Ok(_)) => continue,
                };
                match rx.on_frame(&sh, text.as_str()) {
                    Reply::None => {}
                    Reply::Send(reply) => {
                        if write(&mut ws, reply).await.is_err() {
                            break true;
                        }
                    }
                    Reply::Close => break true,
                }
            }
        }
    };
    if closed_early {
        sh.early_closes.fetch_add(1, Ordering::Relaxed);
    }
    if sending {
        sh.senders_done.fetch_add(1, Ordering::Release);
    }
    if slow {
        outcome.slow_complete = !closed_early && !rx.unrecoverable && rx.complete(&sh);
        outcome.slow_dups = rx.dups;
        if !signalled {
            sh.slow_done.fetch_add(1, Ordering::Release);
        }
    }
    outcome.survived = !closed_early;
    // Close politely, but never wait long for it.
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
    outcome
}

// ---------------------------------------------------------------------------------------------
// Measurements of processes.

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of this process, in seconds (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    // Fields after the command name start at field 3 (state); utime is 14, stime 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// `(steal, total)` clock ticks of the whole machine so far, from `/proc/stat`'s `cpu` line.
/// Steal is time a virtual CPU was ready to run but the hypervisor ran someone else: on a
/// shared host it, not the server, can set the latency tail, so every report shows it.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((*ticks.get(7)?, ticks.iter().sum()))
}

/// Percent of the machine's CPU time stolen between two `machine_ticks` readings.
fn steal_pct(start: Option<(u64, u64)>, end: Option<(u64, u64)>) -> Option<f64> {
    let ((s0, t0), (s1, t1)) = (start?, end?);
    (t1 > t0).then(|| 100.0 * s1.saturating_sub(s0) as f64 / (t1 - t0) as f64)
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Report {
    protocol: Protocol,
    connections_ok: usize,
    connections_failed: usize,
    sent: u64,
    expected: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    deliveries_per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    loadgen_cpu_pct: f64,
    steal_pct: Option<f64>,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    rss_per_conn: Option<f64>,
    slow_complete: bool,
    resyncs: u64,
    unrecovered: u64,
    server_errors: u64,
    duration_s: f64,
}

fn json_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

impl Report {
    fn json(&self) -> String {
        format!(
            "{{\"protocol\":\"{}\",\"connections_ok\":{},\"connections_failed\":{},\"sent\":{},\
             \"expected\":{},\"received\":{},\"lost\":{},\"duplicates\":{},\
             \"deliveries_per_sec\":{:.1},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"max_ms\":{},\
             \"loadgen_cpu_pct\":{:.1},\"server_rss_kib_before\":{},\"server_rss_kib_after\":{},\
             \"rss_per_conn_kib\":{},\"slow_complete\":{},\"resyncs\":{},\"duration_s\":{:.1},\
             \"unrecovered\":{},\"server_errors\":{},\"steal_pct\":{}}}",
            self.protocol.name(),
            self.connections_ok,
            self.connections_failed,
            self.sent,
            self.expected,
            self.received,
            self.lost,
            self.duplicates,
            self.deliveries_per_sec,
            round(self.p50_ms, 3),
            round(self.p90_ms, 3),
            round(self.p99_ms, 3),
            round(self.max_ms, 3),
            self.loadgen_cpu_pct,
            json_opt(self.rss_before),
            json_opt(self.rss_after),
            json_opt(self.rss_per_conn.map(|v| round(v, 2))),
            self.slow_complete,
            self.resyncs,
            self.duration_s,
            self.unrecovered,
            self.server_errors,
            json_opt(self.steal_pct.map(|v| round(v, 1))),
        )
    }

    fn table(&self) -> String {
        let kib = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} KiB"));
        let rows: Vec<(&str, String)> = vec![
            ("protocol", self.protocol.name().to_string()),
            (
                "connections",
                format!(
                    "{} ok, {} failed",
                    self.connections_ok, self.connections_failed
                ),
            ),
            ("sent", self.sent.to_string()),
            ("expected deliveries", self.expected.to_string()),
            ("received (unique)", self.received.to_string()),
            ("lost", self.lost.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("deliveries/s", format!("{:.0}", self.deliveries_per_sec)),
            (
                "latency p50/p90/p99/max",
                format!(
                    "{:.3} / {:.3} / {:.3} / {:.3} ms",
                    self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
                ),
            ),
            ("loadgen cpu", format!("{:.1} %", self.loadgen_cpu_pct)),
            (
                "machine steal",
                self.steal_pct
                    .map_or("-".to_string(), |v| format!("{v:.1} %")),
            ),
            (
                "server rss before/after",
                format!("{} / {}", kib(self.rss_before), kib(self.rss_after)),
            ),
            (
                "rss per connection",
                self.rss_per_conn
                    .map_or("-".to_string(), |v| format!("{v:.2} KiB")),
            ),
            ("slow complete", self.slow_complete.to_string()),
            ("resyncs", self.resyncs.to_string()),
            ("unrecovered rejoins", self.unrecovered.to_string()),
            ("server errors", self.server_errors.to_string()),
            ("duration", format!("{:.1} s", self.duration_s)),
        ];
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<26}{v}");
        }
        out
    }
}

async fn run(args: Args, url: String, addr: SocketAddr) -> Report {
    let rooms = if args.protocol == Protocol::Hearth {
        args.rooms.max(1)
    } else {
        1
    };
    let (phase, _) = watch::channel(Phase::Setup);
    let senders = args.senders;
    let sender_period = if senders == 0 || args.rate <= 0.0 {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs_f64((senders as f64 / args.rate).max(1e-6))
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let total = if args.idle {
        0
    } else {
        (args.rate * args.duration).round() as u64
    };
    let quota = (0..senders as u64)
        .map(|s| total / senders as u64 + u64::from(s < total % senders as u64))
        .collect();
    let tag = to_base36((nanos ^ ((std::process::id() as u64) << 40)) % 36u64.pow(4));
    // Taken before the sessions exist, so what they cost the server counts per connection.
    let rss_before = args.server_pid.and_then(rss_kib);
    // People have their sessions before they open the app: they are made first, and the
    // ramp below measures connecting, not signing up.
    let sessions = if args.protocol == Protocol::Hearth {
        match guest_sessions(addr, args.connections, &tag).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hearth-loadgen: could not create guest sessions: {e}");
                std::process::exit(1);
            }
        }
    } else {
        Vec::new()
    };
    let sh = Arc::new(Shared {
        sessions,
        protocol: args.protocol,
        url,
        addr,
        rooms,
        senders,
        sender_period,
        size: args.size,
        connections: args.connections,
        slow: if args.idle { 0 } else { args.slow },
        tag,
        base: Instant::now(),
        phase,
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        members: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
        slow_ok: AtomicUsize::new(0),
        slow_done: AtomicUsize::new(0),
        sent_by_sender: (0..senders).map(|_| AtomicU64::new(0)).collect(),
        quota,
        senders_active: AtomicUsize::new(0),
        senders_done: AtomicUsize::new(0),
        resyncs: AtomicU64::new(0),
        unrecovered: AtomicU64::new(0),
        server_errors: AtomicU64::new(0),
        early_closes: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
    });

    // Connect, at most `--ramp` per second.
    let n = args.connections;
    let ramp_time = Duration::from_secs_f64(n as f64 / args.ramp);
    let spawner = {
        let sh = sh.clone();
        let gap = Duration::from_secs_f64(1.0 / args.ramp);
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(n);
            let mut t = tokio::time::interval(gap);
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            for idx in 0..n {
                t.tick().await;
                handles.push(tokio::spawn(run_conn(sh.clone(), idx)));
            }
            handles
        })
    };
    let setup_deadline = Instant::now() + ramp_time + SETUP_TIMEOUT + Duration::from_secs(5);
    while sh.ready.load(Ordering::Acquire) + sh.failed.load(Ordering::Relaxed) < n
        && Instant::now() < setup_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let presence announcements of the last joins drain before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let duration = Duration::from_secs_f64(args.duration);
    let (cpu_start, wall_start) = (cpu_seconds(), Instant::now());
    let ticks_start = machine_ticks();
    let send_start;
    let rss_after;
    if args.idle {
        send_start = Instant::now();
        sh.phase.send_replace(Phase::Idle);
        tokio::time::sleep(duration).await;
        rss_after = args.server_pid.and_then(rss_kib);
    } else {
        send_start = Instant::now() + Duration::from_millis(20);
        let end = send_start + duration;
        sh.phase.send_replace(Phase::Send {
            start: send_start,
            end,
        });
        tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
        // Senders behind schedule get up to a second more to send their last messages.
        let late = end + Duration::from_secs(1);
        while sh.senders_done.load(Ordering::Acquire) < sh.senders_active.load(Ordering::Relaxed)
            && Instant::now() < late
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sh.phase.send_replace(Phase::Drain);
        // Wait for deliveries, at most `--drain`.
        let drain_end = Instant::now() + Duration::from_secs_f64(args.drain);
        while Instant::now() < drain_end && unique_so_far() < sh.expected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rss_after = args.server_pid.and_then(rss_kib);
    }
    let cpu_pct =
        100.0 * (cpu_seconds() - cpu_start) / wall_start.elapsed().as_secs_f64().max(1e-3);
    let steal_pct = steal_pct(ticks_start, machine_ticks());

    if sh.slow > 0 && !args.idle {
        sh.phase.send_replace(Phase::Slow);
        let limit = Instant::now() + SLOW_PHASE_LIMIT;
        while Instant::now() < limit
            && sh.slow_done.load(Ordering::Acquire) < sh.slow_ok.load(Ordering::Relaxed)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sh.phase.send_replace(Phase::Done);

    // Collect the connections' outcomes; a task that does not end in time counts as failed.
    let mut outcomes = Vec::with_capacity(n);
    let collect_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    if let Ok(Ok(handles)) = tokio::time::timeout_at(collect_deadline, spawner).await {
        for h in handles {
            let abort = h.abort_handle();
            match tokio::time::timeout_at(collect_deadline, h).await {
                Ok(Ok(o)) => outcomes.push(o),
                Ok(Err(_)) => {}
                Err(_) => abort.abort(),
            }
        }
    }

    let stats = merged_stats();
    let sent: u64 = sh
        .sent_by_sender
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .sum();
    let expected = sh.expected();
    let connections_ok = outcomes.iter().filter(|o| o.survived).count();
    let slow: Vec<&Outcome> = outcomes.iter().filter(|o| o.slow).collect();
    let slow_complete = slow.len() == sh.slow
        && slow
            .iter()
            .all(|o| o.established && o.slow_complete && o.slow_dups == 0);
    let window_us = if args.idle {
        duration.as_micros() as u64
    } else {
        let start_us = send_start.duration_since(sh.base).as_micros() as u64;
        stats
            .last_us
            .saturating_sub(start_us)
            .max(duration.as_micros() as u64)
    };
    let ms = |q: f64| {
        if stats.hist.is_empty() {
            0.0
        } else {
            stats.hist.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let rss_per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connections_ok > 0 => {
            Some((a as f64 - b as f64) / connections_ok as f64)
        }
        _ => None,
    };
    let target = if args.idle {
        0.0
    } else {
        args.rate * args.duration
    };
    if sh.senders_active.load(Ordering::Relaxed) > 0 && (sent as f64) < 0.95 * target {
        eprintln!(
            "hearth-loadgen: sent {sent} of {target:.0} scheduled messages; the generator or \
             the server's backpressure could not keep up"
        );
    }
    if cpu_pct > 90.0 * args.threads as f64 {
        eprintln!(
            "hearth-loadgen: the generator used {cpu_pct:.0}% CPU with {} worker thread(s); \
             it may be the bottleneck",
            args.threads
        );
    }
    Report {
        protocol: args.protocol,
        connections_ok,
        connections_failed: n - connections_ok,
        sent,
        expected,
        received: stats.unique,
        lost: expected.saturating_sub(stats.unique),
        duplicates: stats.dups + slow.iter().map(|o| o.slow_dups).sum::<u64>(),
        deliveries_per_sec: stats.unique as f64 / (window_us as f64 / 1e6),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: if stats.hist.is_empty() {
            0.0
        } else {
            stats.hist.max() as f64 / 1000.0
        },
        loadgen_cpu_pct: cpu_pct,
        steal_pct,
        rss_before,
        rss_after,
        rss_per_conn,
        slow_complete,
        resyncs: sh.resyncs.load(Ordering::Relaxed),
        unrecovered: sh.unrecovered.load(Ordering::Relaxed),
        server_errors: sh.server_errors.load(Ordering::Relaxed),
        duration_s: args.duration,
    }
}

fn to_base36(mut v: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn check_args(args: &Args) -> Result<(), String> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(format!("--{name} must be a positive number"))
        }
    };
    positive("ramp", args.ramp)?;
    if !(args.duration.is_finite() && args.duration >= 0.0) {
        return Err("--duration must be zero or more seconds".into());
    }
    if !(args.drain.is_finite() && args.drain >= 0.0) {
        return Err("--drain must be zero or more seconds".into());
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err("--rate must be zero or more messages per second".into());
    }
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if args.senders + args.slow > args.connections {
        return Err(format!(
            "--senders ({}) + --slow ({}) cannot exceed --connections ({}): slow connections never send",
            args.senders, args.slow, args.connections
        ));
    }
    if args.protocol == Protocol::Hearth && args.size > 4000 {
        return Err("--size is limited to 4000 bytes for hearth (its message limit)".into());
    }
    if args.protocol != Protocol::Hearth && args.rooms > 1 {
        eprintln!("hearth-loadgen: --rooms applies to hearth only; using one room");
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = check_args(&args) {
        eprintln!("hearth-loadgen: {e}");
        std::process::exit(2);
    }
    let (url, addr) = match resolve_url(&args.url, args.protocol) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hearth-loadgen: {e}");
            std::process::exit(2);
        }
    };
    // Last resort: whatever happens, the process ends.
    let cap = args.duration
        + args.drain
        + 60.0
        + args.connections as f64 / args.ramp
        + SETUP_TIMEOUT.as_secs_f64();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(cap));
        eprintln!("hearth-loadgen: gave up after {cap:.0} s");
        std::process::exit(3);
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearth-loadgen: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    if !args.json {
        eprintln!(
            "hearth-loadgen: {} connections to {url} ({}), {} senders at {} msg/s for {} s",
            args.connections,
            args.protocol.name(),
            args.senders,
            args.rate,
            args.duration
        );
    }
    let json = args.json;
    let report = runtime.block_on(run(args, url, addr));
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    runtime.shutdown_timeout(Duration::from_millis(500));
    if report.connections_ok == 0 {
        eprintln!("hearth-loadgen: no connection succeeded");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_pads() {
        let p = make_payload("ab1", 12, 345, 6789, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(parse_payload(&p, "ab1"), Some((12, 345, 6789)));
        assert_eq!(parse_payload(&p, "zz9"), None);
        let short = make_payload("ab1", 1, 2, 3, 4);
        assert_eq!(parse_payload(&short, "ab1"), Some((1, 2, 3)));
    }

    #[test]
    fn hearth_message_fields() {
        let f = r#"{"type":"message","room":"bench-0","seq":43,"author":"a\",\"text\":\"x","text":"ab1s0:1:2:xx","client_id":"c","ts":1}"#;
        assert_eq!(frame_type(f), Some("message"));
        assert_eq!(hearth_message(f), Some((43, "ab1s0:1:2:xx")));
    }

    #[test]
    fn seen_dedupes_in_and_out_of_order() {
        let mut s = Seen::default();
        for c in (0..200).rev() {
            assert!(matches!(s.insert(c), Insert::New));
        }
        assert!(matches!(s.insert(5), Insert::Dup));
        assert!(matches!(s.insert(199), Insert::Dup));
        assert_eq!(s.count(), 200);
        assert_eq!(s.words.len(), 1);
        assert!(matches!(s.insert(1 << 40), Insert::Bogus));
    }

    #[test]
    fn gapless_stops_at_the_first_hole() {
        let mut s = Seen::default();
        assert_eq!(s.gapless(), 0);
        for c in (0..70).chain(72..80) {
            let _ = s.insert(c);
        }
        assert_eq!(s.gapless(), 70);
        assert_eq!(s.count(), 78);
        let _ = s.insert(70);
        let _ = s.insert(71);
        assert_eq!(s.gapless(), 80);
    }

    #[test]
    fn steal_is_the_stolen_share_of_the_ticks_between_readings() {
        assert_eq!(steal_pct(Some((10, 1000)), Some((60, 1500))), Some(10.0));
        assert_eq!(steal_pct(Some((10, 1000)), Some((10, 1400))), Some(0.0));
        // No time passed, or /proc/stat unreadable: no figure rather than a made-up one.
        assert_eq!(steal_pct(Some((10, 1000)), Some((10, 1000))), None);
        assert_eq!(steal_pct(None, Some((10, 1000))), None);
        let (steal, total) = machine_ticks().expect("/proc/stat has a cpu line");
        assert!(steal <= total && total > 0);
    }

    #[test]
    fn urls_must_be_loopback() {
        let (url, addr) = resolve_url("ws://127.0.0.1:3300/ws", Protocol::Hearth).unwrap();
        assert_eq!(url, "ws://127.0.0.1:3300/ws");
        assert_eq!(addr.port(), 3300);
        assert!(resolve_url("ws://[::1]:80/ws", Protocol::Raw).is_ok());
        assert!(resolve_url("ws://localhost:1/", Protocol::Raw).is_ok());
        assert!(resolve_url("ws://10.0.0.1:3000/ws", Protocol::Hearth).is_err());
        assert!(resolve_url("ws://example.com/ws", Protocol::Hearth).is_err());
        assert!(resolve_url("wss://127.0.0.1/ws", Protocol::Hearth).is_err());
        let (url, _) = resolve_url("ws://127.0.0.1:3102", Protocol::Socketio).unwrap();
        assert_eq!(
            url,
            "ws://127.0.0.1:3102/socket.io/?EIO=4&transport=websocket"
        );
    }
}
