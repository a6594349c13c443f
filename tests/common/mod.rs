//! Shared helpers for integration tests: a real Hearth server on a free port, and a protocol
//! client built on tokio-tungstenite.
#![allow(dead_code)]

pub mod cluster;
pub mod process;

use futures_util::{SinkExt, StreamExt};
use hearth::model::{AppError, PageJson, RoomPage};
use hearth::protocol::{ClientMsg, RoomId, ServerMsg};
use hearth::server::{
    accounts::Accounts, broker::SingleNode, http::HttpLimits, hub::Hub, hub::HubConfig,
    limits::Limits, limits::SecurityConfig, router, store::MemoryStore, AppState,
};
use leptos::config::LeptosOptions;
use leptos::server::codee::Decoder;
use leptos::server_fn::ServerFn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub accounts: Arc<Accounts>,
}

/// Security settings with every rate limit off, for tests about other things.
pub fn no_limits() -> SecurityConfig {
    SecurityConfig {
        message_rate: 0.0,
        upgrades_per_minute: 0,
        connections_per_user: 0,
        login_attempts: 0,
        login_attempts_per_address: 0,
        login_attempts_per_name: 0,
        registrations_per_hour: 0,
        form_posts_per_minute: 0,
        ..SecurityConfig::default()
    }
}

/// Starts the full router (pages, server functions, `/ws`) on 127.0.0.1:0, with the
/// in-memory store.
pub async fn start(config: HubConfig) -> TestServer {
    start_with(Arc::new(MemoryStore::new(42, 10_000)), config).await
}

pub fn quick_config() -> HubConfig {
    HubConfig {
        presence_grace: Duration::from_millis(200),
        ..HubConfig::default()
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub name: String,
}

/// Connects as guest `name` (a session made through the real `set_name` endpoint) and
/// consumes the `welcome` frame.
pub async fn connect(server: &TestServer, name: &str) -> Client {
    connect_to(server.addr, name, None).await
}

impl Client {
    pub async fn send(&mut self, msg: &ClientMsg) {
        let text = serde_json::to_string(msg).unwrap();
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.unwrap();
    }

    /// The next WebSocket message of any kind (pings and pongs included); fails after 5 s.
    pub async fn next_raw(&mut self) -> Message {
        self.next_raw_within(Duration::from_secs(5)).await
    }

    /// [`Client::next_raw`], failing after `wait`.
    pub async fn next_raw_within(&mut self, wait: Duration) -> Message {
        tokio::time::timeout(wait, self.ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("connection ended")
            .expect("transport error")
    }

    /// The next protocol frame, skipping heartbeats; fails after 5 s.
    pub async fn recv(&mut self) -> ServerMsg {
        self.recv_within(Duration::from_secs(5)).await
    }

    /// [`Client::recv`], failing after `wait` without a frame.
    pub async fn recv_within(&mut self, wait: Duration) -> ServerMsg {
        loop {
            match self.next_raw_within(wait).await {
                Message::Text(t) => {
                    let msg: ServerMsg = serde_json::from_str(t.as_str()).unwrap();
                    if msg != ServerMsg::Ping {
                        return msg;
                    }
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Nothing but heartbeats arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let msg: ServerMsg = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(msg, ServerMsg::Ping, "expected silence");
                }
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the server closes, returning the close code.
    pub async fn expect_close(&mut self) -> CloseCode {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("timed out waiting for close");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code,
                Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("transport error before close: {e}"),
            }
        }
    }

    /// Joins a room and returns the `joined` frame.
    pub async fn join(&mut self, room: &str) -> ServerMsg {
        self.send(&ClientMsg::Join {
            room: RoomId(room.into()),
            since: None,
            epoch: None,
            changes_since: None,
        })
        .await;
        let joined = self.recv().await;
        assert!(matches!(joined, ServerMsg::Joined { .. }), "{joined:?}");
        joined
    }
}

/// Starts the full router like [`start`], over the given store (for instance a
/// `SqlStore` in a temporary directory), with TCP_NODELAY on every connection as the
/// `hearth` binary sets it, and no rate limits.
pub async fn start_with(
    store: Arc<dyn hearth::server::store::Store>,
    config: HubConfig,
) -> TestServer {
    start_secured(store, config, no_limits()).await
}

/// Starts the full router with the given security settings and in-memory accounts, served
/// with the peer address (as the binary does) so per-IP limits apply.
/// The full router with the in-memory store, the quick hub settings and `security`.
pub async fn secured(security: SecurityConfig) -> TestServer {
    start_secured(
        Arc::new(MemoryStore::new(7, 10_000)),
        quick_config(),
        security,
    )
    .await
}

pub async fn start_secured(
    store: Arc<dyn hearth::server::store::Store>,
    config: HubConfig,
    security: SecurityConfig,
) -> TestServer {
    start_served(store, config, security, HttpLimits::default()).await
}

/// Starts the full router like [`start_secured`], served with the given HTTP limits.
pub async fn start_served(
    store: Arc<dyn hearth::server::store::Store>,
    config: HubConfig,
    security: SecurityConfig,
    http: HttpLimits,
) -> TestServer {
    let hub = Hub::new(store, Arc::new(SingleNode), config);
    let accounts = Arc::new(
        Accounts::in_memory(security.session_ttl)
            .await
            .expect("in-memory accounts"),
    );
    let app = router(AppState {
        leptos_options: LeptosOptions::builder().output_name("hearth").build(),
        hub: hub.clone(),
        accounts: accounts.clone(),
        limits: Arc::new(Limits::new(security)),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hearth::server::http::serve(
        listener,
        app,
        http,
        std::future::pending(),
    ));
    TestServer {
        addr,
        hub,
        accounts,
    }
}

/// An HTTP response, as far as tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The `name=value` part of the session cookie this response sets, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .find(|pair| pair.starts_with("hearth_session=") && pair.len() > 16)
            .map(str::to_string)
    }
}

/// A minimal HTTP/1.1 request over a fresh connection (`Connection: close`), so tests need
/// no HTTP client crate. `body` is sent as a urlencoded form.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    try_http(addr, method, path, body, headers)
        .await
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"))
}

/// [`http`], for tests where the server may refuse the connection itself (a reset).
pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("no HTTP response to {method} {path:.80} within 30 s"))?;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Form-encodes `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// [`call`], for tests where the server may refuse the connection itself (a reset).
pub async fn try_call<S: ServerFn>(
    addr: SocketAddr,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
) -> std::io::Result<Reply> {
    let mut headers = vec![("Accept", "application/json")];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    try_http(addr, "POST", S::PATH, Some(&form(fields)), &headers).await
}

/// Calls server function `S` with form fields (as the hydrated app does, not as a no-JS
/// form: errors come back as status codes).
pub async fn call<S: ServerFn>(
    addr: SocketAddr,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
) -> Reply {
    let mut headers = vec![("Accept", "application/json")];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    http(addr, "POST", S::PATH, Some(&form(fields)), &headers).await
}

/// A guest session cookie for `name`, made through the real `set_name` endpoint.
pub async fn guest_cookie(addr: SocketAddr, name: &str) -> String {
    let reply = call::<hearth::api::SetName>(addr, &[("name", name)], None).await;
    assert_eq!(reply.status, 200, "set_name {name}: {reply:?}");
    reply
        .session_cookie()
        .expect("set_name sets the session cookie")
}

/// Registers `name` and returns its session cookie.
pub async fn register(addr: SocketAddr, name: &str, password: &str) -> String {
    let reply =
        call::<hearth::api::Register>(addr, &[("name", name), ("password", password)], None).await;
    reply
        .session_cookie()
        .unwrap_or_else(|| panic!("register {name}: {reply:?}"))
}

/// A refused WebSocket handshake.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

/// Opens a WebSocket to `addr` with `headers` and returns the handshake's refusal, or the
/// client after its `welcome`.
pub async fn try_connect(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    recv_buffer: Option<u32>,
) -> Result<Client, Refused> {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    let stream = socket.connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let ws = match tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            return Err(Refused {
                status: resp.status().as_u16(),
                retry_after: resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
            })
        }
        Err(e) => panic!("upgrade failed: {e}"),
    };
    let mut client = Client {
        ws,
        name: String::new(),
    };
    match client.recv().await {
        ServerMsg::Welcome { user, .. } => client.name = user.0,
        other => panic!("expected welcome, got {other:?}"),
    }
    Ok(client)
}

/// Connects with a session cookie and consumes the `welcome` frame.
pub async fn connect_cookie(addr: SocketAddr, cookie: &str) -> Client {
    try_connect(addr, &[("cookie", cookie)], None)
        .await
        .unwrap_or_else(|refused| panic!("upgrade refused: {refused:?}"))
}

/// Connects as guest `name` to any Hearth at `addr` (for instance a child process) and
/// consumes the `welcome` frame. The socket sends without Nagle's delay, as browsers'
/// sockets do. With `recv_buffer`, the client's kernel receive buffer is pinned to that many
/// bytes, so a client that stops reading backs up onto the server quickly.
pub async fn connect_to(addr: SocketAddr, name: &str, recv_buffer: Option<u32>) -> Client {
    let cookie = guest_cookie(addr, name).await;
    let client = try_connect(addr, &[("cookie", &cookie)], recv_buffer)
        .await
        .unwrap_or_else(|refused| panic!("upgrade refused: {refused:?}"));
    assert_eq!(client.name, name);
    client
}

/// What a `joined` frame says, for tests about recovery.
#[derive(Debug)]
pub struct Joined {
    pub last_seq: u64,
    pub epoch: u64,
    pub recovered: bool,
}

/// Reads a `joined` frame's fields; any other frame fails the test.
pub fn joined(msg: ServerMsg) -> Joined {
    match msg {
        ServerMsg::Joined {
            last_seq,
            epoch,
            recovered,
            ..
        } => Joined {
            last_seq: last_seq.0,
            epoch,
            recovered,
        },
        other => panic!("expected joined, got {other:?}"),
    }
}

impl Client {
    /// The next frame that is not a presence diff.
    pub async fn next_non_presence(&mut self) -> ServerMsg {
        loop {
            match self.recv().await {
                ServerMsg::Presence { .. } => continue,
                other => return other,
            }
        }
    }

    /// The next chat message; anything but presence diffs before it fails the test.
    pub async fn next_message(&mut self) -> hearth::protocol::ChatMessage {
        match self.next_non_presence().await {
            ServerMsg::Message(m) => m,
            other => panic!("{}: expected a message, got {other:?}", self.name),
        }
    }

    /// Reads until `n` acks have arrived, skipping the room's messages and presence diffs;
    /// returns (client id, seq) in arrival order.
    pub async fn acks(&mut self, n: usize) -> Vec<(String, u64)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.recv().await {
                ServerMsg::Ack { client_id, seq, .. } => out.push((client_id.0, seq.0)),
                ServerMsg::Message(_) | ServerMsg::Presence { .. } => {}
                other => panic!("{}: expected an ack, got {other:?}", self.name),
            }
        }
        out
    }

    /// Nothing but presence diffs is queued for this client: a ping sent now is answered
    /// before any other frame.
    pub async fn expect_nothing_pending(&mut self) {
        self.send(&ClientMsg::Ping).await;
        match self.next_non_presence().await {
            ServerMsg::Pong => {}
            other => panic!("{}: expected nothing before pong, got {other:?}", self.name),
        }
    }

    /// Closes the connection and waits (at most 5 s) until the server has closed its side.
    pub async fn hang_up(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// The data a room page carries for the browser to hydrate from: the room's resource, the
/// page's only one, as Leptos writes it (a JavaScript string literal holding the encoded
/// data, with every `<` escaped so that no message can end the script early).
pub fn page_data(html: &str) -> Result<RoomPage, AppError> {
    const OPEN: &str = "__RESOLVED_RESOURCES[";
    assert_eq!(html.matches(OPEN).count(), 1, "one resource: {html}");
    let literal = html.split(OPEN).nth(1).unwrap();
    let literal = &literal[..literal.find("</script>").expect("the script ends")];
    assert!(
        !literal.contains('<'),
        "markup in the data is escaped: {literal}"
    );
    let literal = literal.split_once("] = ").expect("an assignment").1;
    let literal = literal.strip_suffix(';').expect("one statement");
    let encoded = js_string(literal);
    <PageJson as Decoder<_>>::decode(&encoded).expect("the page data decodes")
}

/// The value of a double-quoted JavaScript string literal, for the escapes Leptos writes.
fn js_string(literal: &str) -> String {
    let inner = literal
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .expect("a double-quoted string");
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().expect("an escape") {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            'u' => {
                let rest = chars.as_str();
                let (hex, len) = match rest.strip_prefix('{') {
                    Some(braced) => {
                        let end = braced.find('}').expect("a closing brace");
                        (&braced[..end], end + 2)
                    }
                    None => (&rest[..4], 4),
                };
                let code = u32::from_str_radix(hex, 16).expect("hexadecimal");
                out.push(char::from_u32(code).expect("a character"));
                chars = rest[len..].chars();
            }
            other => out.push(other),
        }
    }
    out
}
