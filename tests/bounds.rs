//! What a stranger can hold on the server, over real ports: how long an unfinished request
//! keeps its connection, how big a body may be, how many connections one address may open,
//! how long a client that stops reading keeps its socket, what a foreign Host gets, what a
//! ping flood gets, and that a close reaches a client that is still sending.
//!
//! The memory and socket measurements run the real `hearth` binary, so they read the
//! server's own `/proc/<pid>` figures.

mod common;

use common::process::Hearth;
use common::{connect_to, guest_cookie, no_limits, start_secured, try_connect};
use hearth::protocol::{ClientId, ClientMsg, ErrorCode, RoomId, ServerMsg};
use hearth::server::hub::HubConfig;
use hearth::server::limits::SecurityConfig;
use hearth::server::store::MemoryStore;
use leptos::server_fn::ServerFn;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Polls `done` every 20 ms until it holds; fails with `what` after `limit`.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the server ends the connection (EOF or reset); fails after `limit`. Returns
/// what was read.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {limit:?}")),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A plain GET over a fresh connection from `from`; the status code.
async fn get_status(addr: SocketAddr, from: IpAddr, path: &str) -> u16 {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let reply = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {reply:?}"))
}

/// Request heads that never end, and a connection that sends nothing, are closed by the
/// server once the header timeout has passed, while pages still load.
#[tokio::test]
async fn unfinished_request_heads_and_silent_connections_are_closed_after_the_header_timeout() {
    let hearth = Hearth::start(&[("HEARTH_HEADER_TIMEOUT_MS", "1000")]).await;
    let addr = hearth.addr;
    let mut slow = Vec::new();
    for i in 0..50 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET /?{i} HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
            .await
            .unwrap();
        slow.push(stream);
    }
    let silent = TcpStream::connect(addr).await.unwrap();
    // The slowloris keeps adding header lines; the server must close it regardless.
    let closers: Vec<_> = slow
        .into_iter()
        .chain([silent])
        .enumerate()
        .map(|(i, mut stream)| {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let drip = async {
                    if i < 50 {
                        loop {
                            if write.write_all(b"X-Slow: 1\r\n").await.is_err() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                    std::future::pending::<()>().await
                };
                let mut buf = [0u8; 1024];
                let closed = async {
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                };
                let started = Instant::now();
                tokio::select! {
                    _ = closed => {}
                    _ = drip => {}
                }
                started.elapsed()
            })
        })
        .collect();
    let mut open = 0;
    for closer in closers {
        match tokio::time::timeout(Duration::from_secs(8), closer).await {
            Ok(took) => assert!(took.unwrap() >= Duration::from_millis(500)),
            Err(_) => open += 1,
        }
    }
    assert_eq!(
        open, 0,
        "{open} of 51 unfinished connections still open after 8 s"
    );
    assert_eq!(
        get_status(addr, IpAddr::V4(Ipv4Addr::LOCALHOST), "/").await,
        200
    );
}

/// A form over the body limit is answered 413 with a sentence, whether it declares its
/// length or not, and the limit leaves ordinary forms alone.
#[tokio::test]
async fn an_oversize_form_gets_413_with_a_sentence() {
    let server = start_secured(
        Arc::new(MemoryStore::new(1, 100)),
        HubConfig::default(),
        no_limits(),
    )
    .await;
    let field = format!("name={}", "a".repeat(100 * 1024));
    let declared = common::http(
        server.addr,
        "POST",
        hearth::api::SetName::PATH,
        Some(&field),
        &[("Accept", "application/json")],
    )
    .await;
    assert_eq!(declared.status, 413, "{declared:?}");
    assert!(declared.body.contains("at most 64 KiB"), "{declared:?}");

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        hearth::api::SetName::PATH,
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{field}\r\n", field.len());
    let _ = stream.write_all(chunk.as_bytes()).await;
    let reply = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("at most 64 KiB"), "{reply}");

    guest_cookie(server.addr, "Ordinary").await;
}

/// A body that stops arriving is answered 408 with a sentence once the body timeout has
/// passed, and the connection is closed.
#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_after_the_body_timeout() {
    let hearth = Hearth::start(&[("HEARTH_BODY_TIMEOUT_MS", "1000")]).await;
    let addr = hearth.addr;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\nname=Sl",
        hearth::api::SetName::PATH
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let reply = read_until_closed(&mut stream, Duration::from_secs(8))
        .await
        .expect("the server answers and closes");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert!(reply.contains("did not arrive within 1 s"), "{reply:?}");
}

/// Hundreds of connections each sending most of a 2 MB form and never the rest: the server
/// holds at most the body limit for each, and pages still load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_bodies_from_many_connections_keep_memory_bounded() {
    let hearth = Hearth::start(&[("HEARTH_CONNECTIONS_PER_ADDRESS", "0")]).await;
    let addr = hearth.addr;
    assert_eq!(
        get_status(addr, IpAddr::V4(Ipv4Addr::LOCALHOST), "/").await,
        200
    );
    let before = hearth.rss_mib();
    let piece = vec![b'a'; 64 * 1024];
    let mut held = Vec::new();
    for i in 0..300 {
        let piece = piece.clone();
        held.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let framing = if i % 2 == 0 {
                "Content-Length: 2000000\r\n"
            } else {
                "Transfer-Encoding: chunked\r\n"
            };
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
                 application/x-www-form-urlencoded\r\n{framing}\r\n",
                hearth::api::SetName::PATH
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            if i % 2 == 1 {
                let _ = stream.write_all(b"1e8480\r\nname=").await;
            }
            // Three quarters of the body, as far as the server takes it.
            for _ in 0..24 {
                if stream.write_all(&piece).await.is_err() {
                    break;
                }
            }
            stream
        }));
    }
    let mut streams = Vec::new();
    for task in held {
        streams.push(task.await.unwrap());
    }
    // Measured once the server has read everything it was sent (or closed the connection).
    until(
        Duration::from_secs(30),
        "the server did not read what it was sent within 30 s",
        || hearth.unread_bytes() == 0,
    )
    .await;
    let after = hearth.rss_mib();
    let growth = after.saturating_sub(before);
    eprintln!("RSS {before} MiB -> {after} MiB with 300 unfinished 2 MB forms");
    assert!(
        growth < 64,
        "RSS grew {growth} MiB ({before} -> {after}) for 300 unfinished forms"
    );
    assert_eq!(
        get_status(addr, IpAddr::V4(Ipv4Addr::LOCALHOST), "/").await,
        200
    );
    drop(streams);
}

/// One address may hold only so many connections; the next is answered 429 and closed,
/// another address is served meanwhile, and a closed connection gives its place back.
#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused_while_others_work() {
    let hearth = Hearth::start(&[("HEARTH_CONNECTIONS_PER_ADDRESS", "8")]).await;
    let addr = hearth.addr;
    // From an address of its own: the start-up probe's connection (from 127.0.0.1) may
    // still count on a busy host, and must not take one of these places.
    let mine = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let connect = || async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(mine, 0)).unwrap();
        socket.connect(addr).await.unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect().await);
    }
    let mut over = connect().await;
    let reply = read_until_closed(&mut over, Duration::from_secs(5))
        .await
        .expect("the ninth connection is closed");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply:?}");
    assert!(reply.contains("Too many open connections"), "{reply:?}");

    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(get_status(addr, other, "/").await, 200);

    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = connect().await;
        let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let reply = read_until_closed(&mut stream, Duration::from_secs(10))
            .await
            .unwrap();
        if reply.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection's place was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Clients that join a busy room and never read (a zero TCP window) are disconnected once a
/// write has waited the write timeout, their sockets closed; a reader in the same room gets
/// every message in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_closed_after_the_write_timeout() {
    let hearth = Hearth::start(&[
        ("HEARTH_WRITE_TIMEOUT_MS", "1000"),
        // The heartbeat notices the silent stuck readers after 15 s, which left their writer
        // tasks running and their sockets open; the watcher, silent during the flood, must not
        // be closed by it.
        ("HEARTH_HEARTBEAT_MS", "5000"),
        ("HEARTH_MESSAGE_RATE", "0"),
        ("HEARTH_UPGRADES_PER_MINUTE", "0"),
    ])
    .await;
    let addr = hearth.addr;
    let mut watcher = connect_to(addr, "Watcher", None).await;
    watcher.join("busy").await;
    let mut sender = connect_to(addr, "Sender", None).await;
    sender.join("busy").await;
    let baseline = hearth.open_fds();
    let mut stuck = Vec::new();
    for i in 0..20 {
        let mut client = connect_to(addr, &format!("Stuck{i}"), Some(2048)).await;
        client.join("busy").await;
        stuck.push(client);
    }
    assert!(hearth.open_fds() >= baseline + 20);

    let text = "x".repeat(3000);
    const MESSAGES: usize = 1000;
    let reading = tokio::spawn(async move {
        let mut last = 0;
        for _ in 0..MESSAGES {
            let message = watcher.next_message().await;
            assert!(message.seq.0 > last, "out of order");
            last = message.seq.0;
        }
        watcher
    });
    for window in 0..MESSAGES / 50 {
        for i in 0..50 {
            sender
                .send(&ClientMsg::Send {
                    room: RoomId("busy".into()),
                    client_id: ClientId(format!("m{window}-{i}")),
                    text: text.clone(),
                })
                .await;
        }
        sender.acks(50).await;
    }
    let started = Instant::now();
    let limit = Duration::from_secs(15);
    let deadline = Instant::now() + limit;
    while hearth.open_fds() > baseline {
        assert!(
            Instant::now() < deadline,
            "{} of 20 stuck readers' sockets still open {limit:?} after the flood",
            hearth.open_fds() - baseline
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "stuck readers' sockets closed {:?} after the flood",
        started.elapsed()
    );
    let mut watcher = reading.await.unwrap();
    watcher.expect_nothing_pending().await;
    drop(stuck);
}

/// An upgrade request whose connection is gone before the upgrade completes leaves no live
/// session behind.
#[tokio::test]
async fn an_upgrade_that_never_completes_releases_its_live_session() {
    let server = start_secured(
        Arc::new(MemoryStore::new(1, 100)),
        HubConfig::default(),
        no_limits(),
    )
    .await;
    let cookie = guest_cookie(server.addr, "Leaky").await;
    for _ in 0..100 {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Cookie: {cookie}\r\n\r\n",
            server.addr
        );
        let mut stream = stream;
        stream.write_all(request.as_bytes()).await.unwrap();
        // Gone at once, with a reset: the 101 has nowhere to go. (A zero linger never
        // blocks the drop, which is what the deprecation warns about.)
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream);
    }
    let accounts = server.accounts.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while accounts.live_sessions() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} live sessions left behind by upgrades that never completed",
            accounts.live_sessions()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The session itself still works.
    let client = common::connect_cookie(server.addr, &cookie).await;
    assert_eq!(server.accounts.live_sessions(), 1);
    client.hang_up().await;
}

/// `{"type":"ping"}` has a budget of its own: over it, a typed `rate_limited` error; kept
/// up, the flood close (1008). Someone else keeps chatting meanwhile.
#[tokio::test]
async fn a_ping_flood_is_rate_limited_then_closed() {
    let server = start_secured(
        Arc::new(MemoryStore::new(1, 100)),
        HubConfig::default(),
        no_limits(),
    )
    .await;
    let mut other = connect_to(server.addr, "Calm", None).await;
    other.join("lobby").await;
    let mut flood = connect_to(server.addr, "Pinger", None).await;
    for _ in 0..300 {
        flood.send(&ClientMsg::Ping).await;
    }
    let (mut pongs, mut refused) = (0, 0);
    let code = loop {
        let next = futures_util::StreamExt::next(&mut flood.ws);
        let Ok(next) = tokio::time::timeout(Duration::from_secs(5), next).await else {
            // Nothing more is coming: the flood was answered in full and not closed.
            break None;
        };
        match next {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                match serde_json::from_str::<ServerMsg>(t.as_str()).unwrap() {
                    ServerMsg::Pong => pongs += 1,
                    ServerMsg::Error {
                        code: ErrorCode::RateLimited,
                        retry_after_ms: Some(_),
                        ..
                    } => refused += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
                break Some(frame.code)
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    let got = format!("300 pings: {pongs} pongs, {refused} refused, close {code:?}");
    eprintln!("{got}");
    assert!(pongs <= 40, "{got}");
    assert!(refused > 0, "{got}");
    assert_eq!(code, Some(CloseCode::Policy), "{got}");
    other
        .send(&ClientMsg::Send {
            room: RoomId("lobby".into()),
            client_id: ClientId("c1".into()),
            text: "still here".into(),
        })
        .await;
    assert_eq!(other.acks(1).await.len(), 1);
}

/// A request for a host name the server does not answer to gets 421 and nothing else: no
/// page, no guest session, no WebSocket, even with a matching Origin (DNS rebinding).
#[tokio::test]
async fn a_foreign_host_gets_421_and_no_session_or_websocket() {
    let server = start_secured(
        Arc::new(MemoryStore::new(1, 100)),
        HubConfig::default(),
        no_limits(),
    )
    .await;
    let addr = server.addr;
    let raw = |request: String| async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let reply = read_until_closed(&mut stream, Duration::from_secs(10))
            .await
            .unwrap();
        String::from_utf8_lossy(&reply).to_string()
    };
    let evil = "rebind.evil.example:3000";
    let page = raw(format!(
        "GET / HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(page.starts_with("HTTP/1.1 421"), "{page}");
    assert!(page.contains("HEARTH_PUBLIC_HOSTS"), "{page}");
    let body = "name=Mallory";
    let post = raw(format!(
        "POST {} HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        hearth::api::SetName::PATH,
        body.len()
    ))
    .await;
    assert!(post.starts_with("HTTP/1.1 421"), "{post}");
    assert!(!post.to_ascii_lowercase().contains("set-cookie"), "{post}");

    let cookie = guest_cookie(addr, "Visitor").await;
    let origin = format!("http://{evil}");
    let refused = try_connect(
        addr,
        &[("host", evil), ("origin", &origin), ("cookie", &cookie)],
        None,
    )
    .await
    .err()
    .expect("the upgrade is refused");
    assert_eq!(refused.status, 421);
    // The loopback address this test reaches the server by still works.
    common::connect_cookie(addr, &cookie).await.hang_up().await;
}

/// A raw WebSocket client: masked frames out, the server's frames in, no library between.
struct RawClient<S> {
    stream: S,
    buf: Vec<u8>,
}

impl RawClient<TcpStream> {
    async fn connect(addr: SocketAddr, cookie: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Cookie: {cookie}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(i) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = client.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed during the handshake");
            client.buf.extend_from_slice(&chunk[..n]);
        };
        assert!(client.buf.starts_with(b"HTTP/1.1 101"));
        client.buf.drain(..end);
        client
    }
}

impl<S: tokio::io::AsyncRead + Unpin> RawClient<S> {
    /// The next server frame (opcode, payload), or the read error that ended the stream.
    async fn next(&mut self) -> Result<(u8, Vec<u8>), String> {
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                let (len, head) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= head + len {
                    let payload = self.buf[head..head + len].to_vec();
                    self.buf.drain(..head + len);
                    return Ok((opcode, payload));
                }
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk)).await
            {
                Err(_) => return Err("no frame within 10 s".into()),
                Ok(Ok(0)) => return Err("end of stream".into()),
                Ok(Err(e)) => return Err(format!("{e}")),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until the close frame; its code and the text frames before it. Fails on
    /// a reset or end of stream before the close.
    async fn until_close(&mut self) -> (u16, Vec<ServerMsg>) {
        let mut texts = Vec::new();
        loop {
            match self.next().await {
                Ok((0x1, payload)) => texts.push(serde_json::from_slice(&payload).unwrap()),
                Ok((0x8, payload)) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (code, texts);
                }
                Ok(_) => {}
                Err(e) => panic!(
                    "the connection ended without a close frame ({e}) after {} frames: {:?}",
                    texts.len(),
                    texts.last()
                ),
            }
        }
    }
}

/// A client frame: FIN, `opcode`, masked unless `unmasked`, with `first` OR-ed into the
/// first byte (reserved bits).
fn client_frame(opcode: u8, payload: &[u8], unmasked: bool, first: u8) -> Vec<u8> {
    let mut out = vec![0x80 | first | opcode];
    let mask_bit = if unmasked { 0 } else { 0x80 };
    if payload.len() < 126 {
        out.push(mask_bit | payload.len() as u8);
    } else {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if unmasked {
        out.extend_from_slice(payload);
    } else {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    }
    out
}

/// Writes `frame` over and over on `write` until told to stop or the socket fails: a client
/// that keeps sending while the server closes.
fn keep_writing(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    burst: Vec<u8>,
    trickle: Vec<u8>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<tokio::net::tcp::OwnedWriteHalf>,
) {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if write.write_all(&burst).await.is_ok() {
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    written = write.write_all(&trickle) => if written.is_err() { break },
                }
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        }
        write
    });
    (stop_tx, task)
}

/// The server closes connections that flood or send bad frames while the client is still
/// writing; the client receives the error frames and the close frame with its code, not a
/// reset. A frame that breaks the framing rules (unmasked, a reserved bit) gets 1002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_receives_the_errors_and_the_close_frame() {
    let server = start_secured(
        Arc::new(MemoryStore::new(1, 100)),
        HubConfig::default(),
        SecurityConfig {
            upgrades_per_minute: 0,
            connections_per_user: 0,
            ..SecurityConfig::default()
        },
    )
    .await;
    let cookie = guest_cookie(server.addr, "Busy").await;

    // A burst of 400 sends on a fresh connection (no join: each is refused for rate or
    // membership), then more as fast as the server reads them.
    for (what, frame, want) in [
        (
            "sends",
            br#"{"type":"send","room":"general","client_id":"a","text":"hi"}"#.to_vec(),
            1008,
        ),
        ("malformed frames", b"{not json".to_vec(), 1008),
    ] {
        let client = RawClient::connect(server.addr, &cookie).await;
        let RawClient { stream, buf } = client;
        let (read, write) = stream.into_split();
        let one = client_frame(0x1, &frame, false, 0);
        let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 400).collect();
        let (stop, writer) = keep_writing(write, burst, one);
        let mut client = RawClient { stream: read, buf };
        let (code, texts) = client.until_close().await;
        let _ = stop.send(());
        let _ = writer.await;
        assert_eq!(code, want, "{what}");
        assert!(
            matches!(texts.first(), Some(ServerMsg::Welcome { .. })),
            "{what}"
        );
        assert!(
            texts.iter().any(|t| matches!(t, ServerMsg::Error { .. })),
            "{what}: the errors explaining the close arrive before it"
        );
    }

    for (what, frame) in [
        (
            "an unmasked frame",
            client_frame(0x1, br#"{"type":"ping"}"#, true, 0),
        ),
        (
            "a reserved bit",
            client_frame(0x1, br#"{"type":"ping"}"#, false, 0x40),
        ),
    ] {
        let mut client = RawClient::connect(server.addr, &cookie).await;
        let mut bytes = frame;
        // Followed by more than the server will parse.
        for _ in 0..200 {
            bytes.extend(client_frame(0x1, br#"{"type":"ping"}"#, false, 0));
        }
        client.stream.write_all(&bytes).await.unwrap();
        let (code, _) = client.until_close().await;
        assert_eq!(code, 1002, "{what}");
    }
}
