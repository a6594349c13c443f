//! Shared helpers for integration tests: a real Hearth server on a free port, and a protocol
//! client built on tokio-tungstenite.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use hearth::protocol::{ClientMsg, RoomId, ServerMsg};
use hearth::server::{
    broker::SingleNode, hub::Hub, hub::HubConfig, router, store::MemoryStore, AppState,
};
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
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

/// Connects as `name` (sent in the display-name cookie) and consumes the `welcome` frame.
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

    /// The next protocol frame, skipping heartbeats; fails after 5 s.
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection ended")
                .expect("transport error");
            match next {
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
        })
        .await;
        let joined = self.recv().await;
        assert!(matches!(joined, ServerMsg::Joined { .. }), "{joined:?}");
        joined
    }
}

/// Starts the full router like [`start`], over the given store (for instance a
/// `SqliteStore` in a temporary directory), with TCP_NODELAY on every connection as the
/// `hearth` binary sets it.
pub async fn start_with(
    store: Arc<dyn hearth::server::store::Store>,
    config: HubConfig,
) -> TestServer {
    let hub = Hub::new(store, Arc::new(SingleNode), config);
    let app = router(AppState {
        leptos_options: LeptosOptions::builder().output_name("hearth").build(),
        hub: hub.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestServer { addr, hub }
}

/// Connects as `name` to any Hearth at `addr` (for instance a child process) and consumes
/// the `welcome` frame. The socket sends without Nagle's delay, as browsers' sockets do.
/// With `recv_buffer`, the client's kernel receive buffer is pinned to that many bytes, so a
/// client that stops reading backs up onto the server quickly.
pub async fn connect_to(addr: SocketAddr, name: &str, recv_buffer: Option<u32>) -> Client {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&format!("hearth_name={}", name.replace(' ', "%20"))).unwrap(),
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    let stream = socket.connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    let mut client = Client {
        ws,
        name: name.to_string(),
    };
    match client.recv().await {
        ServerMsg::Welcome { user, .. } => assert_eq!(user.0, name),
        other => panic!("expected welcome, got {other:?}"),
    }
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
