//! `hearth-bare`: a WebSocket server with no chat logic at all, run beside Hearth by
//! `bench/run.sh` as a reference for how much of a latency figure is this machine (kernel,
//! loopback, the generator) rather than the chat server.
//!
//! Two jobs:
//! - the "bare Rust fan-out", speaking the generator's `raw` protocol: every text frame
//!   a client sends goes, as the same shared bytes, to every open connection (the sender
//!   included). tokio-tungstenite, one task per connection, queued frames combined into one
//!   write, TCP_NODELAY, small buffers. No rooms, presence, history or limits;
//! - with `--page FILE`, plain HTTP/1.1 keep-alive that answers every request with that file's
//!   bytes (the bench hands it a copy of Hearth's rendered room page), read and framed by hand.
//!
//! One thread, like the servers it is compared with on their one core. Loopback only.

use futures_util::{SinkExt, StreamExt};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Every open connection's queue, by connection number.
type Clients = Rc<RefCell<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut port: u16 = 3190;
    let mut page: Option<String> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--page" => page = Some(args.next().unwrap_or_else(|| fail("--page needs a file"))),
            "-h" | "--help" => {
                println!("usage: hearth-bare [PORT] [--page FILE]");
                return;
            }
            other => match other.parse() {
                Ok(p) => port = p,
                Err(_) => fail(&format!("not a port or flag: {other}")),
            },
        }
    }
    let page = page.map(|path| match std::fs::read(&path) {
        Ok(body) => Rc::new(http_response(&body)),
        Err(e) => fail(&format!("cannot read {path}: {e}")),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the runtime: {e}")));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}")));
        println!("hearth-bare listening on 127.0.0.1:{port}");
        serve(listener, page).await
    });
}

/// Accepts forever; each connection is one local task.
async fn serve(listener: TcpListener, page: Option<Rc<Vec<u8>>>) {
    let clients: Clients = Rc::default();
    let mut next_id = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        match &page {
            Some(page) => {
                tokio::task::spawn_local(serve_page(stream, page.clone()));
            }
            None => {
                tokio::task::spawn_local(fan_out(stream, next_id, clients.clone()));
            }
        }
    }
}

fn fail(why: &str) -> ! {
    eprintln!("hearth-bare: {why}");
    std::process::exit(2);
}

/// One WebSocket connection: its frames go to everyone; everyone's frames come to it, as many
/// as are queued per write.
async fn fan_out(stream: TcpStream, id: u64, clients: Clients) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        // Frames wait in the buffer until `flush`, so a batch goes out in one write.
        .write_buffer_size(16 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    clients.borrow_mut().insert(id, tx);
    let writer = tokio::task::spawn_local(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(frame)) = source.next().await {
        match frame {
            Message::Text(text) => {
                for tx in clients.borrow().values() {
                    let _ = tx.send(Message::Text(text.clone()));
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    clients.borrow_mut().remove(&id);
    writer.abort();
}

/// Status line, headers and body, built once and written whole for every request.
fn http_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// HTTP/1.1 keep-alive: every complete request head gets the page. Requests carry no body
/// here (GET), so a request ends at its blank line.
async fn serve_page(mut stream: TcpStream, page: Rc<Vec<u8>>) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            if stream.write_all(&page).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    /// Runs `check` against a bare server on a free loopback port.
    fn with_bare<F: std::future::Future<Output = ()>>(
        page: Option<&[u8]>,
        check: impl FnOnce(SocketAddr) -> F,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let page = page.map(|body| Rc::new(http_response(body)));
            tokio::task::spawn_local(serve(listener, page));
            timeout(Duration::from_secs(10), check(addr))
                .await
                .expect("the server answered in time");
        });
    }

    #[test]
    fn every_frame_reaches_every_connection_once() {
        with_bare(None, |addr| async move {
            let url = format!("ws://{addr}/");
            let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            // Both are registered once b's handshake is done and a's echo of a probe arrives.
            a.send(Message::text("probe")).await.unwrap();
            assert_eq!(a.next().await.unwrap().unwrap(), Message::text("probe"));
            assert_eq!(b.next().await.unwrap().unwrap(), Message::text("probe"));
            for text in ["one", "two", "three"] {
                b.send(Message::text(text)).await.unwrap();
            }
            for ws in [&mut a, &mut b] {
                for text in ["one", "two", "three"] {
                    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
                }
            }
        });
    }

    #[test]
    fn every_request_on_a_connection_gets_the_page() {
        with_bare(Some(b"<p>page</p>"), |addr| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let request = "GET /r/bench HTTP/1.1\r\nhost: x\r\n\r\n";
            stream
                .write_all(format!("{request}{request}").as_bytes())
                .await
                .unwrap();
            let one = http_response(b"<p>page</p>");
            let mut got = vec![0u8; one.len() * 2];
            stream.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [one.clone(), one].concat());
        });
    }
}
