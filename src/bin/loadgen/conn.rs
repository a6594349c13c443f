//! One connection's life: connect, the protocol handshake (and for Hearth the join), then
//! one task that sends on its schedule, reads and answers frames, and follows the run's
//! phases until the run ends. Every wait has a time limit.

use crate::args::Protocol;
use crate::hearth_wire;
use crate::payload::make_payload;
use crate::receiver::{Receiver, Reply};
use crate::seen::Seen;
use crate::shared::{Phase, Shared};
use futures_util::{SinkExt, StreamExt};
use hearth::protocol::{ClientId, ClientMsg, ServerMsg};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Limit for writing one frame.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<TcpStream>;

#[derive(Default)]
pub struct Outcome {
    pub established: bool,
    /// Established and still open when the run ended.
    pub survived: bool,
    pub slow: bool,
    pub slow_complete: bool,
    pub slow_dups: u64,
}

/// A connection that completed its handshake and joined, or why it did not.
type Setup = Result<(Ws, Receiver), String>;

pub async fn connect(sh: &Shared, idx: usize, slow: bool) -> Result<Ws, String> {
    let (url, addr) = match &sh.also {
        Some((url, addr)) if idx % 2 == 1 => (url, *addr),
        _ => (&sh.url, sh.addr),
    };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if slow {
        let _ = socket.set_recv_buffer_size(SLOW_RCVBUF);
    }
    let tcp = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut request = url
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
        room_id: sh.room_id(room),
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
                let Some(ServerMsg::Welcome { heartbeat_ms, .. }) = hearth_wire::decode(&welcome)
                else {
                    return Err(format!("expected welcome, got {welcome:?}"));
                };
                rx.heartbeat = Duration::from_millis(heartbeat_ms.max(100));
                write(&mut ws, hearth_wire::join(&rx.room_id, None)).await?;
                loop {
                    let t = next_text(&mut ws).await?;
                    match hearth_wire::decode(&t) {
                        Some(ServerMsg::Joined {
                            last_seq, epoch, ..
                        }) => {
                            rx.seq_base = last_seq.0;
                            rx.epoch = epoch;
                            return Ok(());
                        }
                        Some(ServerMsg::Ping) => {
                            write(&mut ws, hearth_wire::encode(&ClientMsg::Pong)).await?
                        }
                        Some(ServerMsg::Error { .. }) => return Err(format!("join refused: {t}")),
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

/// The next phase the run enters, or `None` when the run is gone; hands the receiver back.
async fn next_phase(mut rx: watch::Receiver<Phase>) -> (watch::Receiver<Phase>, Option<Phase>) {
    let phase = match rx.changed().await {
        Ok(()) => Some(*rx.borrow_and_update()),
        Err(_) => None,
    };
    (rx, phase)
}

pub async fn run_conn(sh: Arc<Shared>, idx: usize) -> Outcome {
    let slow = idx >= sh.connections - sh.slow;
    let sender = (idx < sh.senders).then_some(idx);
    let typist = (sh.senders..sh.senders + sh.typists).contains(&idx);
    let mut typing: Option<Interval> = None;
    let mut typing_end = Instant::now();
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
                        if typist {
                            // Spread over the interval, so frames flow evenly.
                            let offset = sh.typing_every.mul_f64(
                                (idx - sh.senders) as f64 / sh.typists as f64,
                            );
                            let mut t = tokio::time::interval_at(
                                tokio::time::Instant::from_std(start + offset),
                                sh.typing_every,
                            );
                            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                            typing = Some(t);
                            typing_end = end;
                        }
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
                        hearth_wire::encode(&ClientMsg::Send {
                            room: rx.room_id.clone(),
                            client_id: ClientId(format!("{}-{s}-{counter}", sh.tag)),
                            text: payload,
                        })
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
            _ = tick_opt(&mut typing) => {
                if Instant::now() >= typing_end {
                    typing = None;
                    continue;
                }
                let frame = hearth_wire::encode(&ClientMsg::Typing { room: rx.room_id.clone() });
                if write(&mut ws, frame).await.is_err() {
                    break true;
                }
                sh.typing_sent.fetch_add(1, Ordering::Relaxed);
            }
            _ = tick_opt(&mut keepalive) => {
                if write(&mut ws, hearth_wire::encode(&ClientMsg::Ping)).await.is_err() {
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
