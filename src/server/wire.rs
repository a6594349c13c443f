//! The WebSocket wire of one connection: the HTTP upgrade, reading the client's frames and
//! writing the server's.
//!
//! Reading is tungstenite's: masking, fragments, control frames, UTF-8 and size limits.
//! Writing is ours. Server frames are unmasked and take a few lines to format, and owning the
//! write path lets a connection's writer format every frame it has queued into one buffer,
//! send that with one write, and free the buffer once the queue is empty. tungstenite keeps
//! its write buffer at its largest size for the life of a connection, so after a presence
//! burst in a big room every idle connection would keep kilobytes it does not need
//! (docs/benchmarks.md).
//!
//! tungstenite still answers pings and echoes the client's close, and it does so by writing to
//! the stream it reads from. That stream's write side is a [`Control`] mailbox: the bytes are
//! whole frames, and the writer sends them between its own frames.

use axum::body::Body;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::Message;

/// The raw connection after the upgrade.
pub type Io = TokioIo<Upgraded>;

/// Read side limits for every connection.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// Bytes read from the socket at a time; a bigger frame grows the buffer as it needs.
    pub read_buffer: usize,
    /// Largest frame and message accepted; bigger ones end the connection with 1009.
    pub max_frame: usize,
}

/// Why reading the next frame failed, as far as the close code is concerned.
#[derive(Debug)]
pub enum ReadError {
    /// The frame exceeded the size limit.
    TooBig,
    /// A text frame was not valid UTF-8.
    BadUtf8,
    /// The bytes broke the WebSocket framing rules (an unmasked frame, a reserved bit set,
    /// a bad opcode...): the stream cannot be parsed any further.
    Protocol,
    /// The transport failed; nothing more can be sent.
    Gone,
}

/// A checked upgrade request, ready to be accepted.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request to the WebSocket address could not be upgraded.
#[derive(Debug, PartialEq, Eq)]
pub struct NotWebSocket {
    status: StatusCode,
    why: &'static str,
}

impl IntoResponse for NotWebSocket {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.why).into_response();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Checks that a request asks for a WebSocket (HTTP/1.1, version 13) and takes its upgrade
/// handle. The refusal says what was wrong.
pub fn upgrade_request(parts: &mut Parts) -> Result<Upgrade, NotWebSocket> {
    let refuse = |status: StatusCode, why: &'static str| Err(NotWebSocket { status, why });
    if parts.method != Method::GET {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "WebSocket upgrades use GET.",
        );
    }
    if !header_has_token(&parts.headers, header::CONNECTION, "upgrade")
        || !header_has_token(&parts.headers, header::UPGRADE, "websocket")
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "This address speaks WebSocket only (Connection: upgrade, Upgrade: websocket).",
        );
    }
    if parts
        .headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "Hearth speaks WebSocket version 13.",
        );
    }
    let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing.");
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "This connection cannot be upgraded to a WebSocket.",
        );
    };
    Ok(Upgrade { key, on_upgrade })
}

/// True when a comma-separated header lists `token` (any case).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

impl Upgrade {
    /// Answers 101 and, once hyper hands over the connection, runs `serve` on a task of its
    /// own with the connection's reader and writer.
    pub fn accept<F, Fut>(self, limits: ReadLimits, serve: F) -> Response
    where
        F: FnOnce(Reader<ReadHalf<Io>>, Writer<WriteHalf<Io>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept_key = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let (reader, writer) = split(TokioIo::new(upgraded), limits).await;
            // A task of its own rather than awaited here: this future would then hold the
            // upgrade and the connection's whole life inline, more than twice the size.
            tokio::spawn(serve(reader, writer));
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&accept_key) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        response
    }
}

/// Splits an upgraded connection into the frame reader and the frame writer.
pub async fn split<S>(io: S, limits: ReadLimits) -> (Reader<ReadHalf<S>>, Writer<WriteHalf<S>>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let control = Arc::new(Control::default());
    let config = WebSocketConfig::default()
        .read_buffer_size(limits.read_buffer)
        // Pongs and close echoes go to the mailbox at once rather than wait in a buffer.
        .write_buffer_size(0)
        .max_message_size(Some(limits.max_frame))
        .max_frame_size(Some(limits.max_frame));
    let side = ReadSide {
        read,
        control: control.clone(),
    };
    let ws = WebSocketStream::from_raw_socket(side, Role::Server, Some(config)).await;
    (
        Reader { ws },
        Writer {
            io: write,
            control,
            buf: Vec::new(),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        },
    )
}

/// Frames tungstenite wrote while reading (pongs, the close echo), waiting for the writer.
#[derive(Default)]
pub struct Control {
    bytes: Mutex<Vec<u8>>,
    /// Set once `bytes` has something in it, so the writer's flush (run for every write on
    /// the fan-out path) skips the lock when there is nothing, which is nearly always.
    filled: AtomicBool,
    /// The writer's waker, registered before each look at `filled`.
    ready: AtomicWaker,
}

impl Control {
    /// Pings are answered with a pong of the same size, and tungstenite keeps only the newest
    /// pong, so this bound is only reached by a peer that stopped reading.
    const MAX_BYTES: usize = 64 * 1024;

    /// Resolves when tungstenite has a control frame (a pong, a close echo) for us to send;
    /// the next flush takes it. Cheap to call once per wake-up of the writer: a waker
    /// registration and one atomic load.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            self.ready.register(cx.waker());
            if self.filled.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn take_into(&self, buf: &mut Vec<u8>) {
        // Bytes added after this swap set the flag again and are taken by the next flush.
        if !self.filled.swap(false, Ordering::Acquire) {
            return;
        }
        let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if !bytes.is_empty() {
            buf.extend_from_slice(&bytes);
            *bytes = Vec::new();
        }
    }
}

/// The stream tungstenite reads frames from: reads come from the socket, writes go to the
/// [`Control`] mailbox.
pub struct ReadSide<R> {
    read: R,
    control: Arc<Control>,
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadSide<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for ReadSide<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut bytes = self.control.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if bytes.len() + data.len() > Control::MAX_BYTES {
            return Poll::Ready(Err(io::Error::other("control frames are not being read")));
        }
        bytes.extend_from_slice(data);
        drop(bytes);
        self.control.filled.store(true, Ordering::Release);
        self.control.ready.wake();
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The client's frames, as a stream of messages.
pub struct Reader<R> {
    ws: WebSocketStream<ReadSide<R>>,
}

impl<R: AsyncRead + Unpin> Stream for Reader<R> {
    type Item = Result<Message, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.ws).poll_next(cx));
        if let Some(Ok(Message::Close(_))) = &item {
            // tungstenite queues its echo of the client's close and writes it on the next read
            // or flush. Nobody reads after a close, so flush now: into the control mailbox,
            // which never blocks.
            let _ = Pin::new(&mut self.ws).poll_flush(cx);
        }
        Poll::Ready(item.map(|result| {
            result.map_err(|err| match err {
                tungstenite::Error::Capacity(_) => ReadError::TooBig,
                tungstenite::Error::Utf8(_) => ReadError::BadUtf8,
                tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ) => ReadError::Gone,
                tungstenite::Error::Protocol(_) => ReadError::Protocol,
                _ => ReadError::Gone,
            })
        }))
    }
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads and throws away the client's bytes without parsing them, until the client ends
    /// its side, the transport fails, or `max` bytes have gone by: what is left to do once
    /// the stream cannot be parsed and the server is closing.
    pub async fn discard(&mut self, max: usize) {
        use tokio::io::AsyncReadExt;
        let read = &mut self.ws.get_mut().read;
        let mut buf = vec![0; 4096];
        let mut left = max;
        while left > 0 {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }
}

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;

/// Formats server frames into one buffer and writes them with as few syscalls as the socket
/// allows. The buffer is freed after every write that leaves nothing behind.
pub struct Writer<W> {
    io: W,
    control: Arc<Control>,
    buf: Vec<u8>,
    write_timeout: std::time::Duration,
}

/// How long a flush waits for the peer to take any bytes unless
/// [`Writer::set_write_timeout`] says otherwise.
pub const DEFAULT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Adds a text frame to the pending write.
    pub fn text(&mut self, payload: &str) {
        self.frame(OP_TEXT, &[payload.as_bytes()]);
    }

    /// Adds a close frame with its code and reason (cut to the 123 bytes a close frame allows,
    /// at a character boundary).
    pub fn close(&mut self, code: u16, reason: &str) {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.frame(OP_CLOSE, &[&code.to_be_bytes(), &reason.as_bytes()[..end]]);
    }

    /// Bytes waiting for [`Writer::flush`].
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The mailbox of tungstenite's control frames, to wait on beside the queue.
    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// Sets how long [`Writer::flush`] waits for the peer to take any bytes.
    pub fn set_write_timeout(&mut self, timeout: std::time::Duration) {
        self.write_timeout = timeout;
    }

    /// Writes everything pending, control frames included, then lets the buffer go. When the
    /// peer takes no byte for the whole write timeout (it stopped reading: a zero TCP
    /// window), the flush fails with `TimedOut` and the connection is unusable. A peer that
    /// reads slowly but keeps reading is not cut off.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.control.take_into(&mut self.buf);
        if self.buf.is_empty() {
            return Ok(());
        }
        // The timer is armed only once the socket stops taking bytes, and boxed: a flush that
        // goes out at once (nearly all of them) makes no timer, and the writer task of every
        // idle connection does not carry one inline.
        let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut written = 0;
        let (io, buf, timeout) = (&mut self.io, &self.buf, self.write_timeout);
        let result = std::future::poll_fn(|cx| loop {
            if written == buf.len() {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut *io).poll_write(cx, &buf[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    written += n;
                    deadline = None;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    let timer =
                        deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the peer took nothing for the whole write timeout",
                        )));
                    }
                    return Poll::Pending;
                }
            }
        })
        .await;
        self.buf = Vec::new();
        result
    }

    /// Flushes, then ends the TCP stream's sending side.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.flush().await?;
        tokio::time::timeout(self.write_timeout, self.io.shutdown())
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }

    fn frame(&mut self, opcode: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.buf.reserve(len + 10);
        // FIN set, no extensions, unmasked (a server never masks).
        self.buf.push(0x80 | opcode);
        if len < 126 {
            self.buf.push(len as u8);
        } else if let Ok(short) = u16::try_from(len) {
            self.buf.push(126);
            self.buf.extend_from_slice(&short.to_be_bytes());
        } else {
            self.buf.push(127);
            self.buf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        for part in parts {
            self.buf.extend_from_slice(part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tungstenite::protocol::frame::coding::CloseCode;

    const LIMITS: ReadLimits = ReadLimits {
        read_buffer: 1024,
        max_frame: 16 * 1024,
    };

    /// A server wire on one end of an in-memory pipe, a tungstenite client on the other.
    async fn pair() -> (
        Reader<ReadHalf<tokio::io::DuplexStream>>,
        Writer<WriteHalf<tokio::io::DuplexStream>>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (server, client) = tokio::io::duplex(256 * 1024);
        let (reader, writer) = split(server, LIMITS).await;
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (reader, writer, client)
    }

    #[tokio::test]
    async fn a_flush_to_a_peer_that_never_reads_fails_after_the_write_timeout() {
        let (server, _client) = tokio::io::duplex(1024);
        let (_reader, mut writer) = split(server, LIMITS).await;
        writer.set_write_timeout(std::time::Duration::from_millis(50));
        writer.text(&"x".repeat(8 * 1024));
        let started = std::time::Instant::now();
        let err = writer.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        assert_eq!(writer.buf.capacity(), 0, "the buffer is let go");
    }

    #[tokio::test]
    async fn frames_of_every_length_class_arrive_whole_and_in_order() {
        let (_reader, mut writer, mut client) = pair().await;
        let texts = [
            "",
            "hi",
            &"a".repeat(125),
            &"b".repeat(126),
            &"c".repeat(65_535),
            &"d".repeat(70_000),
            "é✓",
        ];
        for text in texts {
            writer.text(text);
        }
        writer.flush().await.unwrap();
        assert_eq!(
            writer.buf.capacity(),
            0,
            "the buffer is freed after a write"
        );
        for text in texts {
            let got = client.next().await.unwrap().unwrap();
            assert_eq!(got, Message::text(text));
        }
    }

    #[tokio::test]
    async fn close_carries_code_and_a_reason_cut_at_a_char_boundary() {
        let (_reader, mut writer, mut client) = pair().await;
        let long = "é".repeat(100); // 200 bytes
        writer.close(4001, &long);
        writer.shutdown().await.unwrap();
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, CloseCode::from(4001));
                assert!(frame.reason.len() <= 123);
                assert!(frame.reason.chars().all(|c| c == 'é'));
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pings_are_answered_through_the_writer() {
        let (mut reader, mut writer, mut client) = pair().await;
        client
            .send(Message::Ping(vec![1, 2, 3].into()))
            .await
            .unwrap();
        client.send(Message::text("after the ping")).await.unwrap();
        // The reader sees the ping (tungstenite queues its pong in the mailbox)...
        assert!(matches!(reader.next().await, Some(Ok(Message::Ping(_)))));
        assert_eq!(
            reader.next().await.unwrap().unwrap(),
            Message::text("after the ping")
        );
        // ...and the writer sends it.
        tokio::time::timeout(std::time::Duration::from_secs(1), writer.control().ready())
            .await
            .expect("a pong is waiting");
        writer.flush().await.unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::Pong(vec![1, 2, 3].into())
        );
    }

    #[tokio::test]
    async fn a_client_close_is_echoed_when_the_writer_shuts_down() {
        let (mut reader, mut writer, mut client) = pair().await;
        client
            .close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await
            .unwrap();
        assert!(matches!(reader.next().await, Some(Ok(Message::Close(_)))));
        writer.shutdown().await.unwrap();
        match client.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
            other => panic!("expected the close echo, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_and_non_utf8_frames_are_classified() {
        let (mut reader, _writer, mut client) = pair().await;
        client
            .send(Message::text("x".repeat(16 * 1024 + 1)))
            .await
            .unwrap();
        assert!(matches!(reader.next().await, Some(Err(ReadError::TooBig))));

        let (mut reader, _writer, client) = pair().await;
        // A masked text frame holding 0xFF, written by hand (tungstenite's client will not).
        let mut raw = client.into_inner();
        raw.write_all(&[0x81, 0x81, 0, 0, 0, 0, 0xFF])
            .await
            .unwrap();
        assert!(matches!(reader.next().await, Some(Err(ReadError::BadUtf8))));
    }

    #[test]
    fn upgrade_headers_are_matched_as_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(header_has_token(&headers, header::CONNECTION, "upgrade"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrades"));
        assert!(!header_has_token(&headers, header::CONNECTION, "upgrade"));
    }
}
