//! Serving HTTP/1.1 on a listener with bounds on everything a client controls before the
//! app sees a request: how long its headers may take, how big and how slow its body may be,
//! and how many connections one address may hold open.
//!
//! Guarantees, with [`HttpLimits`]:
//! - a connection that has not sent a complete request head within `header_timeout` is
//!   closed; that includes a connection that sends nothing and one idle between keep-alive
//!   requests (hyper starts the clock whenever it waits for a request head);
//! - a request body is read in full before the app runs, at most `body_limit` bytes (more is
//!   answered 413) within `body_timeout` (slower is answered 408), so a handler never holds
//!   more than that for a client;
//! - one IP address holds at most `connections_per_address` open connections, WebSockets
//!   included (the count lives in the socket, which an upgrade keeps); more are answered 429
//!   and closed at once;
//! - every connection runs on a task owned by [`serve`]: at shutdown each is told to finish
//!   its request, given [`DRAIN`] to do so, then aborted. Upgraded WebSockets live on tasks
//!   of their own and are closed by the hub.
//!
//! `main.rs` and the integration tests both serve through here.

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tower::Service;

/// How long requests in flight may take to finish once shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(2);

/// The bounds [`serve`] applies to every connection.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Time allowed for a whole request head, from the moment the server waits for one.
    pub header_timeout: Duration,
    /// Time allowed for a whole request body.
    pub body_timeout: Duration,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Open connections per IP address; 0 turns the cap off.
    pub connections_per_address: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            body_limit: 64 * 1024,
            connections_per_address: 1024,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (at most [`DRAIN`]) and returns. Every connection gets `TCP_NODELAY` (chat frames
/// are small and latency-bound) and its peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve<F>(listener: TcpListener, app: Router, limits: HttpLimits, shutdown: F)
where
    F: Future<Output = ()> + Send,
{
    let app = app.layer(axum::middleware::from_fn_with_state(limits, read_body));
    let open = Arc::new(OpenConnections::default());
    let mut tasks = JoinSet::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections so the set holds only open ones.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: the listener stays usable, and
                    // retrying at once would spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = open.admit(peer.ip(), limits.connections_per_address) else {
            refuse(tcp);
            continue;
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "could not set TCP_NODELAY");
        }
        let io = TokioIo::new(Counted { tcp, _slot: slot });
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            app.call(request)
        });
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|stop| *stop) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "shutdown: closing HTTP requests still in flight"
        );
        tasks.shutdown().await;
    }
}

/// Answers a connection over its address's cap with 429 and closes it, without waiting for
/// anything: the client has usually not sent its request yet, and a blocked write is given up.
fn refuse(tcp: TcpStream) {
    const BODY: &str = "Too many open connections from your address; close some and try again.";
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tcp.try_write(response.as_bytes());
}

/// Open connections per IP address.
#[derive(Default)]
struct OpenConnections {
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl OpenConnections {
    /// A slot for one more connection from `ip`, or `None` at the cap (0: no cap).
    fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let count = by_ip.entry(ip).or_insert(0);
        if cap > 0 && *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

/// One open connection's place in its address's count, given back when it closes.
struct Slot {
    open: Arc<OpenConnections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_ip = self.open.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its address's [`Slot`] for as long as the socket lives, through
/// a WebSocket upgrade too.
struct Counted {
    tcp: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Reads a request's whole body, bounded in bytes and time, before the app sees it: over
/// the limit is 413, too slow 408, each with a sentence. Requests without a body pass as
/// they are.
async fn read_body(
    State(limits): State<HttpLimits>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let too_big = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            format!(
                "The request is too large: Hearth accepts at most {} KiB per form.",
                limits.body_limit / 1024
            ),
        )
            .into_response()
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body_limit as u64) {
        return too_big();
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(limits.body_timeout, async {
        let mut bytes = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| None)?;
            if bytes.len() + chunk.len() > limits.body_limit {
                return Err(Some(()));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    })
    .await;
    match read {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(Some(()))) => too_big(),
        Ok(Err(None)) => (
            StatusCode::BAD_REQUEST,
            [(header::CONNECTION, "close")],
            "The request body could not be read; send it again.",
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            format!(
                "The request body did not arrive within {} s; send it again.",
                limits.body_timeout.as_secs().max(1)
            ),
        )
            .into_response(),
    }
}
