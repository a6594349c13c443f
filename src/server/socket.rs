//! One WebSocket connection: reads and checks client frames, writes the hub's queue.
//!
//! Frames come in through `wire`'s reader (any `Stream` of messages) and go out through its
//! `Writer`. The reader never waits on the writer: replies go through the connection's
//! bounded queue like everything else.
//!
//! Bad input is answered, never fatal to anyone else: malformed or unknown frames get an
//! `error` frame; binary frames close with 1003, invalid UTF-8 with 1007, frames over 16 KiB
//! with 1009, frames that break the WebSocket framing rules with 1002, and a connection that
//! keeps sending bad frames, floods past its rate limit (pings have a budget of their own),
//! or stops answering heartbeats, with 1008; and when its session ends (logout, or a guest's
//! name registered by someone) with 4001. The close frame and the errors before it reach a
//! client that is still sending (see [`serve`]).
//!
//! Every join and send is checked against the room's membership: the socket knows who it
//! speaks for (its session), and no frame can name anyone else.

use crate::names::{clean_message, parse_room, valid_client_id, MessageProblem};
use crate::protocol::{
    close, ChangeKind, ClientId, ClientMsg, ErrorCode, RoomId, Seq, ServerMsg, UserName,
    MAX_FRAME_BYTES, MAX_WATCHED, PROTOCOL_VERSION, REACTIONS,
};
use crate::server::accounts::{Accounts, Identity, SessionEnd};
use crate::server::conn::{ConnHandle, LagState, Outbound, ReplayPages};
use crate::server::hub::Hub;
use crate::server::limits::{ConnectionSlot, MessageLimit, RateVerdict};
use crate::server::queue;
use crate::server::rooms::RoomError;
use crate::server::store::NewChange;
use crate::server::wire::{self, ReadError};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};
use tungstenite::{Message, Utf8Bytes};

/// Bad frames tolerated within [`BAD_FRAME_WINDOW`] before the connection is closed.
const BAD_FRAME_BUDGET: u32 = 20;
const BAD_FRAME_WINDOW: Duration = Duration::from_secs(10);

/// The close code for input that breaks the WebSocket framing rules (RFC 6455 §7.4.1).
const PROTOCOL_ERROR: u16 = 1002;

/// The room of a refusal that concerns no room.
static NO_ROOM: RoomId = RoomId(String::new());

/// Most queue entries combined into one write by the writer.
const WRITE_BATCH: usize = 64;

/// Pending bytes at which the writer writes out without waiting for the batch to end.
const FLUSH_AT: usize = 64 * 1024;

/// Close code (1011, internal error) for a replay the store could not complete.
const REPLAY_FAILED: u16 = 1011;

/// Who a connection speaks for and the limits it lives under.
pub struct Session {
    pub identity: Identity,
    pub accounts: Arc<Accounts>,
    /// Gets a reason when the session ends (logout, or a guest's name registered).
    pub ended: SessionWatch,
    /// `None` when the message rate limit is off.
    pub rate: Option<MessageLimit>,
    /// The bucket for `ping` and `pong` frames, which do no work but are not free.
    pub pings: MessageLimit,
    /// The person's connection slot, given back when the connection ends.
    pub _slot: ConnectionSlot,
    /// Where the connection comes from (for the per-address room creation budget).
    pub address: std::net::IpAddr,
}

/// Pings and pongs per second per connection, and the burst allowed. A client's heartbeat
/// needs one every few seconds; a flood of them, cheap as each is, can take most of a core.
pub const PING_RATE: f64 = 10.0;
pub const PING_BURST: f64 = 30.0;

/// A connection's watch on its session (see [`Accounts::watch_session`]), taken before the
/// upgrade and given back when dropped: when the connection ends, and also when the upgrade
/// never completes and the connection never starts.
pub struct SessionWatch {
    ended: Arc<SessionEnd>,
    accounts: Arc<Accounts>,
    session_id: i64,
}

impl SessionWatch {
    pub fn new(accounts: &Arc<Accounts>, who: &Identity) -> Self {
        SessionWatch {
            ended: accounts.watch_session(who),
            accounts: accounts.clone(),
            session_id: who.session_id,
        }
    }

    /// Resolves with the reason once the session has ended.
    pub async fn wait(&self) -> &'static str {
        self.ended.wait().await
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        // The release counts the watchers left, so this one lets go of its handle first.
        drop(std::mem::take(&mut self.ended));
        self.accounts.release_session(self.session_id);
    }
}

/// Serves one connection until either side closes it.
///
/// When the server closes (a flood, bad frames, a protocol error, shutdown, a writer that
/// could not write), it keeps reading after its close frame, as RFC 6455 §7.1.1 asks, until
/// the client's close or end of stream, at most [`LINGER`] and [`LINGER_BYTES`]: a socket
/// closed with unread input is reset, and the reset throws away what the client had not read
/// yet, the close frame and the errors that explain it included. The writer task is joined,
/// or aborted once it has had its write timeout, never left running.
///
/// The connection's state is set up here, before the returned future, which borrows it in
/// place: an `async fn` keeps its arguments and the locals moved out of them side by side
/// for the connection's whole life, and every idle connection would pay for both.
pub fn serve<W, R>(
    hub: Arc<Hub>,
    session: Session,
    mut out: wire::Writer<W>,
    stream: wire::Reader<R>,
) -> impl Future<Output = ()> + Send
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send,
{
    let Session {
        identity,
        accounts,
        ended,
        rate,
        pings,
        _slot,
        address,
    } = session;
    let user: UserName = identity.name.clone();
    let (conn, queue) = hub.connect_as(identity.person());
    let heartbeat = hub.config().heartbeat;
    let write_timeout = hub.config().write_timeout;
    out.set_write_timeout(write_timeout);
    let (close_tx, close_rx) = oneshot::channel::<(u16, &'static str)>();
    let writer = tokio::spawn(write_loop(
        out,
        queue,
        conn.lag_state(),
        close_rx,
        hub.shutdown_signal(),
        heartbeat,
    ));

    conn.deliver(
        &RoomId(String::new()),
        Outbound::Frame(frame(&ServerMsg::Welcome {
            version: PROTOCOL_VERSION,
            user,
            heartbeat_ms: heartbeat.as_millis() as u64,
            key: conn.person.key.clone(),
        })),
    );

    let reader = Reader {
        hub,
        conn,
        joined: HashSet::new(),
        watched: Vec::new(),
        bad_frames: 0,
        window_start: Instant::now(),
        admit: crate::server::rooms::admit(accounts.clone(), identity.clone()),
        identity,
        accounts,
        rate,
        address,
        pings,
    };
    let mut connection = Connection {
        reader,
        stream,
        ended: Some(ended),
        writer,
        close_tx: Some(close_tx),
        write_timeout,
        // Three silent heartbeat intervals mean the link is dead.
        idle_limit: heartbeat * 3,
        _slot,
    };
    async move { connection.run().await }
}

/// One connection's state while it is served (see [`serve`]).
struct Connection<R> {
    reader: Reader,
    stream: wire::Reader<R>,
    /// Let go of once the connection has left its rooms.
    ended: Option<SessionWatch>,
    writer: tokio::task::JoinHandle<()>,
    /// Tells the writer how the server closes; dropped unused when the client went away.
    close_tx: Option<oneshot::Sender<(u16, &'static str)>>,
    write_timeout: Duration,
    idle_limit: Duration,
    /// The person's connection slot, given back when the connection ends.
    _slot: ConnectionSlot,
}

impl<R: AsyncRead + Unpin + Send> Connection<R> {
    async fn run(&mut self) {
        let ending = self.read_frames().await;
        let reader = &mut self.reader;
        Box::pin(reader.hub.disconnect(&reader.conn, reader.joined.drain())).await;
        Box::pin(reader.hub.unwatch(&reader.conn, reader.watched.drain(..))).await;
        self.ended = None;
        let close_tx = self.close_tx.take();
        match ending {
            Ending::Gone => drop(close_tx),
            Ending::Written => Box::pin(linger(&mut self.stream, true)).await,
            Ending::Close(code, reason, parsable) => {
                if let Some(close_tx) = close_tx {
                    let _ = close_tx.send((code, reason));
                }
                Box::pin(linger(&mut self.stream, parsable)).await;
            }
        }
        // The writer ends on the close signal once its last frames are out; each write is
        // bounded by the write timeout, after which it is stopped.
        if !matches!(ending, Ending::Written)
            && tokio::time::timeout(self.write_timeout, &mut self.writer)
                .await
                .is_err()
        {
            self.writer.abort();
        }
    }

    /// Reads and handles frames until the connection is to end, and says why.
    async fn read_frames(&mut self) -> Ending {
        let Connection {
            reader,
            stream,
            ended,
            writer,
            idle_limit,
            ..
        } = self;
        // Only `run` lets go of the watch, and only after this returns.
        let Some(ended) = ended.as_ref() else {
            return Ending::Gone;
        };
        loop {
            let next = tokio::select! {
                biased;
                reason = ended.wait() => {
                    return Ending::Close(close::SESSION_ENDED, reason, true);
                }
                // The writer stops on its own at shutdown (after its 1001) and when the client
                // stopped reading (its write timed out): the connection is over.
                _ = &mut *writer => return Ending::Written,
                next = tokio::time::timeout(*idle_limit, stream.next()) => next,
            };
            let item = match next {
                Err(_) => {
                    return Ending::Close(
                        close::POLICY_VIOLATION,
                        "No frames for three heartbeats.",
                        true,
                    )
                }
                Ok(None) => return Ending::Gone,
                Ok(Some(item)) => item,
            };
            let step = match item {
                // Boxed: handling a frame (a join replays history, a send waits for the store)
                // is a big future, and inline it would sit in every idle connection's task.
                Ok(Message::Text(text)) => Box::pin(reader.on_text(&text)).await,
                Ok(Message::Binary(_)) => Step::Close(
                    close::UNSUPPORTED_DATA,
                    "Hearth speaks JSON text frames only.",
                ),
                // Protocol-level pings are answered by the WebSocket library itself, under the
                // same budget as the protocol's own.
                Ok(Message::Ping(_)) => reader.control_frame(),
                Ok(Message::Pong(_)) => Step::Continue,
                Ok(Message::Close(_)) | Ok(Message::Frame(_)) => return Ending::Gone,
                Err(ReadError::TooBig) => {
                    return Ending::Close(close::TOO_BIG, "Frames are limited to 16 KiB.", false)
                }
                Err(ReadError::BadUtf8) => {
                    return Ending::Close(
                        close::INVALID_PAYLOAD,
                        "Text frames must be UTF-8.",
                        false,
                    )
                }
                Err(ReadError::Protocol) => {
                    return Ending::Close(
                        PROTOCOL_ERROR,
                        "Frames must follow RFC 6455: masked, no reserved bits, known opcodes.",
                        false,
                    )
                }
                Err(ReadError::Gone) => return Ending::Gone,
            };
            if let Step::Close(code, reason) = step {
                return Ending::Close(code, reason, true);
            }
        }
    }
}

/// How long, and how many bytes, the server keeps reading after its close frame.
pub const LINGER: Duration = Duration::from_secs(2);
pub const LINGER_BYTES: usize = 1024 * 1024;

/// Why the reader loop ended.
enum Ending {
    /// The client closed, or the transport failed: there is nobody left to tell.
    Gone,
    /// The writer ended on its own (it sent the shutdown close, or could not write).
    Written,
    /// The server closes with this code and reason; `true` when the input can still be
    /// parsed into frames (the client's close can be recognised).
    Close(u16, &'static str, bool),
}

/// Reads what the client still sends after the server's close, until its close frame or end
/// of stream, within [`LINGER`] and [`LINGER_BYTES`]. Input that can no longer be parsed is
/// read raw until the client ends its side.
async fn linger<R: AsyncRead + Unpin>(stream: &mut wire::Reader<R>, mut parsable: bool) {
    let _ = tokio::time::timeout(LINGER, async {
        let mut left = LINGER_BYTES;
        while parsable {
            match stream.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(ReadError::Gone)) => return,
                Some(Ok(message)) => {
                    left = left.saturating_sub(message.len().max(1));
                    if left == 0 {
                        return;
                    }
                }
                Some(Err(_)) => parsable = false,
            }
        }
        stream.discard(left).await;
    })
    .await;
}

enum Step {
    Continue,
    Close(u16, &'static str),
}

struct Reader {
    hub: Arc<Hub>,
    conn: ConnHandle,
    joined: HashSet<RoomId>,
    /// The rooms this connection follows for `activity` (at most `MAX_WATCHED`).
    watched: Vec<RoomId>,
    bad_frames: u32,
    window_start: Instant,
    identity: Identity,
    accounts: Arc<Accounts>,
    rate: Option<MessageLimit>,
    address: std::net::IpAddr,
    /// The membership check the room actor makes when it handles this connection's joins.
    admit: crate::server::room::Admit,
    pings: MessageLimit,
}

impl Reader {
    async fn on_text(&mut self, text: &str) -> Step {
        if text.len() > MAX_FRAME_BYTES {
            return Step::Close(close::TOO_BIG, "Frames are limited to 16 KiB.");
        }
        let msg = match ClientMsg::decode(text) {
            Ok(msg) => msg,
            Err((code, message)) => return self.refuse(code, message, None),
        };
        if let Some(step) = self.over_rate(&msg) {
            return step;
        }
        match msg {
            ClientMsg::Ping => {
                self.reply(ServerMsg::Pong);
                Step::Continue
            }
            ClientMsg::Pong => Step::Continue,
            ClientMsg::Join {
                room,
                since,
                epoch,
                changes_since,
            } => {
                let room = match parse_room(&room.0) {
                    Ok(room) => room,
                    Err(sentence) => return self.refuse(ErrorCode::InvalidRoom, sentence, None),
                };
                if !self.joined.contains(&room)
                    && self.joined.len() >= self.hub.config().rooms_per_connection
                {
                    let limit = self.hub.config().rooms_per_connection;
                    return self.refuse(
                        ErrorCode::BadFrame,
                        format!("A connection can join at most {limit} rooms; leave one first."),
                        Some(room),
                    );
                }
                let prepared = crate::server::rooms::prepare_join(
                    &self.hub,
                    &self.accounts,
                    &self.identity,
                    self.address,
                    &room,
                )
                .await;
                match prepared {
                    Ok(()) => {}
                    Err(RoomError::TooMany { wait, sentence }) => {
                        self.reply(ServerMsg::Error {
                            code: ErrorCode::RateLimited,
                            message: sentence,
                            room: Some(room),
                            client_id: None,
                            retry_after_ms: Some(wait.as_millis().max(1) as u64),
                            seq: None,
                        });
                        return Step::Continue;
                    }
                    Err(RoomError::Store(err)) => {
                        tracing::error!(%room, %err, "join: creating the room failed");
                        self.join_failed(room);
                        return Step::Continue;
                    }
                    Err(_) => return self.forbidden(room),
                }
                let admit = Some(self.admit.clone());
                match self
                    .hub
                    .join_if(&self.conn, &room, since, epoch, changes_since, admit)
                    .await
                {
                    Ok(()) => {
                        self.joined.insert(room);
                    }
                    Err(err) => {
                        tracing::error!(%room, %err, "join failed");
                        self.join_failed(room);
                    }
                }
                Step::Continue
            }
            ClientMsg::Leave { room } => {
                if !self.joined.remove(&room) {
                    return self.refuse(
                        ErrorCode::NotJoined,
                        "You are not in that room.".into(),
                        Some(room),
                    );
                }
                self.hub.leave(&self.conn, &room).await;
                Step::Continue
            }
            ClientMsg::Read { room, seq } => {
                if !self.joined.contains(&room) {
                    return self.refuse(
                        ErrorCode::NotJoined,
                        "Join the room before marking it read.".into(),
                        Some(room),
                    );
                }
                if let Err(err) = self.hub.read(&self.conn, &room, seq).await {
                    tracing::error!(%room, %err, "read failed");
                }
                Step::Continue
            }
            ClientMsg::Watch { rooms } => {
                if rooms.len() > MAX_WATCHED {
                    return self.refuse(
                        ErrorCode::BadFrame,
                        format!("Follow at most {MAX_WATCHED} rooms."),
                        None,
                    );
                }
                let mut wanted: Vec<RoomId> = rooms
                    .into_iter()
                    .filter(|r| self.accounts.may_enter(r, Some(&self.identity)))
                    .collect();
                wanted.sort();
                wanted.dedup();
                let gone: Vec<RoomId> = self
                    .watched
                    .iter()
                    .filter(|r| wanted.binary_search(r).is_err())
                    .cloned()
                    .collect();
                let new: Vec<RoomId> = wanted
                    .iter()
                    .filter(|r| !self.watched.contains(r))
                    .cloned()
                    .collect();
                self.hub.unwatch(&self.conn, gone).await;
                // A tab that was away missed the `read` frames of the person's other tabs:
                // it is told the marks of the rooms it starts following.
                let marks = if new.is_empty() {
                    Default::default()
                } else {
                    self.hub
                        .reads()
                        .of(&self.conn.person.key)
                        .await
                        .unwrap_or_else(|err| {
                            tracing::error!(%err, "read marks not loaded");
                            Default::default()
                        })
                };
                for room in &new {
                    let read = marks.get(room).copied().unwrap_or_default();
                    if let Err(err) = self.hub.watch(&self.conn, room, read).await {
                        tracing::error!(%room, %err, "watch failed");
                    }
                    if let Some(&seq) = marks.get(room).filter(|s| s.0 > 0) {
                        self.reply(ServerMsg::Read {
                            room: room.clone(),
                            seq,
                        });
                    }
                }
                self.watched = wanted;
                Step::Continue
            }
            ClientMsg::Typing { room } => {
                if let Some(refused) = self.in_room(&room, "typing in it").await {
                    return refused;
                }
                if let Err(err) = self.hub.typing(&self.conn, &room).await {
                    tracing::error!(%room, %err, "typing failed");
                }
                Step::Continue
            }
            ClientMsg::Edit { room, seq, text } => {
                let text = match clean_message(&text) {
                    Ok(text) => text,
                    Err(problem) => return self.refuse_text(problem, room, None, Some(seq)),
                };
                self.change(room, seq, ChangeKind::Edit, Some(text), None, false)
                    .await
            }
            ClientMsg::Delete { room, seq } => {
                self.change(room, seq, ChangeKind::Delete, None, None, false)
                    .await
            }
            ClientMsg::React {
                room,
                seq,
                emoji,
                on,
            } => {
                if !REACTIONS.contains(&emoji.as_str()) {
                    self.reply(ServerMsg::Error {
                        code: ErrorCode::InvalidReaction,
                        message: format!("Reactions are {}.", REACTIONS.join(" ")),
                        room: Some(room),
                        client_id: None,
                        retry_after_ms: None,
                        seq: Some(seq),
                    });
                    return Step::Continue;
                }
                self.change(room, seq, ChangeKind::React, None, Some(emoji), on)
                    .await
            }
            ClientMsg::Send {
                room,
                client_id,
                text,
            } => {
                if let Some(refused) = self.in_room(&room, "sending to it").await {
                    return refused;
                }
                if !valid_client_id(&client_id) {
                    return self.refuse(
                        ErrorCode::InvalidClientId,
                        "client_id must be 1–64 printable ASCII characters.".into(),
                        Some(room),
                    );
                }
                let text = match clean_message(&text) {
                    Ok(text) => text,
                    Err(problem) => return self.refuse_text(problem, room, Some(client_id), None),
                };
                if let Err(err) = self.hub.send(&self.conn, &room, client_id, text).await {
                    tracing::error!(%room, %err, "send failed");
                }
                Step::Continue
            }
        }
    }

    /// Refuses a message's text (a `send`'s, named by its client id, or an `edit`'s, named by
    /// its message). A refused text is a person's mistake, not a protocol abuse: it counts
    /// as no bad frame.
    fn refuse_text(
        &self,
        problem: MessageProblem,
        room: RoomId,
        client_id: Option<ClientId>,
        seq: Option<Seq>,
    ) -> Step {
        let code = match problem {
            MessageProblem::Empty => ErrorCode::EmptyMessage,
            MessageProblem::TooLong => ErrorCode::MessageTooLong,
        };
        self.reply(ServerMsg::Error {
            code,
            message: problem.sentence(),
            room: Some(room),
            client_id,
            retry_after_ms: None,
            seq,
        });
        Step::Continue
    }

    /// The refusal for a frame about `room` (`doing` says what it asked for), unless the
    /// connection has joined it and its person may still enter it. Membership can change
    /// while joined; the check is an in-memory lookup, and a person who lost it leaves.
    async fn in_room(&mut self, room: &RoomId, doing: &str) -> Option<Step> {
        if !self.joined.contains(room) {
            return Some(self.refuse(
                ErrorCode::NotJoined,
                format!("Join the room before {doing}."),
                Some(room.clone()),
            ));
        }
        if !self.accounts.may_enter(room, Some(&self.identity)) {
            self.joined.remove(room);
            self.hub.leave(&self.conn, room).await;
            return Some(self.forbidden(room.clone()));
        }
        None
    }

    /// Hands an edit, deletion or reaction to the room, after the checks every frame about
    /// a room's messages gets (joined, still allowed in).
    async fn change(
        &mut self,
        room: RoomId,
        seq: Seq,
        kind: ChangeKind,
        text: Option<String>,
        emoji: Option<String>,
        on: bool,
    ) -> Step {
        if let Some(refused) = self.in_room(&room, "changing its messages").await {
            return refused;
        }
        let change = NewChange {
            seq,
            by: (*self.conn.person).clone(),
            kind,
            text,
            emoji,
            on,
            ts: crate::server::hub::now_ms(),
        };
        if let Err(err) = self.hub.change(&self.conn, &room, change).await {
            tracing::error!(%room, %err, "change failed");
        }
        Step::Continue
    }

    /// Applies the message rate limit to frames that do work (send, join, leave), and a
    /// bucket of their own to pings and pongs. A refused
    /// `send` names its client id so the client can resend it after `retry_after_ms`.
    fn over_rate(&mut self, msg: &ClientMsg) -> Option<Step> {
        let (room, client_id) = match msg {
            ClientMsg::Send {
                room, client_id, ..
            } => (room, Some(client_id)),
            ClientMsg::Join { room, .. }
            | ClientMsg::Leave { room }
            | ClientMsg::Read { room, .. }
            | ClientMsg::Typing { room }
            | ClientMsg::Edit { room, .. }
            | ClientMsg::Delete { room, .. }
            | ClientMsg::React { room, .. } => (room, None),
            ClientMsg::Watch { .. } => (&NO_ROOM, None),
            ClientMsg::Ping | ClientMsg::Pong => (&NO_ROOM, None),
        };
        let bucket = match msg {
            ClientMsg::Ping | ClientMsg::Pong => &mut self.pings,
            _ => self.rate.as_mut()?,
        };
        match bucket.check() {
            RateVerdict::Allow => None,
            RateVerdict::Close => Some(Step::Close(
                close::POLICY_VIOLATION,
                "Too many messages; slow down.",
            )),
            RateVerdict::Refuse(wait) => {
                let retry_after_ms = wait.as_millis().max(1) as u64;
                self.reply(ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    message: format!(
                        "You are sending too fast; wait {:.1} s and try again.",
                        retry_after_ms as f64 / 1000.0
                    ),
                    room: (!room.0.is_empty()).then(|| room.clone()),
                    client_id: client_id.cloned(),
                    retry_after_ms: Some(retry_after_ms),
                    seq: None,
                });
                Some(Step::Continue)
            }
        }
    }

    /// A WebSocket ping: answered by the library, counted against the ping budget.
    fn control_frame(&mut self) -> Step {
        self.over_rate(&ClientMsg::Ping).unwrap_or(Step::Continue)
    }

    /// Tells the client a join failed on the server's side (the store), to be tried again.
    fn join_failed(&self, room: RoomId) {
        self.reply(ServerMsg::Error {
            code: ErrorCode::Internal,
            message: "Joining the room failed; try again shortly.".into(),
            room: Some(room),
            client_id: None,
            retry_after_ms: None,
            seq: None,
        });
    }

    fn forbidden(&mut self, room: RoomId) -> Step {
        self.reply(ServerMsg::Error {
            code: ErrorCode::Forbidden,
            message: format!(
                "You cannot open #{room}: it is private. Ask one of its members to invite you."
            ),
            room: Some(room),
            client_id: None,
            retry_after_ms: None,
            seq: None,
        });
        Step::Continue
    }

    /// Answers a bad frame with an error, and closes once the budget is spent.
    fn refuse(&mut self, code: ErrorCode, message: String, room: Option<RoomId>) -> Step {
        self.reply(ServerMsg::Error {
            code,
            message,
            room,
            client_id: None,
            retry_after_ms: None,
            seq: None,
        });
        if self.window_start.elapsed() > BAD_FRAME_WINDOW {
            self.window_start = Instant::now();
            self.bad_frames = 0;
        }
        self.bad_frames += 1;
        if self.bad_frames > BAD_FRAME_BUDGET {
            Step::Close(close::POLICY_VIOLATION, "Too many bad frames.")
        } else {
            Step::Continue
        }
    }

    fn reply(&self, msg: ServerMsg) {
        let room = match &msg {
            ServerMsg::Error { room: Some(r), .. } => r.clone(),
            _ => RoomId(String::new()),
        };
        self.conn.deliver(&room, Outbound::Frame(frame(&msg)));
    }
}

fn frame(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.encode())
}

/// Writes queued frames, combining whatever is ready into one write; pings on a timer; sends
/// `resync` after a lag; passes on tungstenite's pongs and close echoes; closes on request or
/// at shutdown.
///
/// Written as a function returning an `async` block rather than an `async fn`: the block
/// keeps its captured arguments once, where an `async fn` in this Rust keeps them twice (the
/// arguments and the locals they move to), in every connection's writer task.
#[allow(clippy::manual_async_fn)]
fn write_loop<W: AsyncWrite + Unpin>(
    mut out: wire::Writer<W>,
    mut queue: queue::Receiver<Outbound>,
    lag: Arc<LagState>,
    mut close_rx: oneshot::Receiver<(u16, &'static str)>,
    mut shutdown: watch::Receiver<bool>,
    heartbeat: Duration,
) -> impl Future<Output = ()> {
    async move {
        let ping = frame(&ServerMsg::Ping);
        let control = out.control();
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        // One wait for the whole connection: a fresh `changed()` per wake-up would take the
        // watch's lock twice (register, unregister) for every delivery.
        let going_away = shutdown.changed();
        tokio::pin!(going_away);
        loop {
            tokio::select! {
                biased;
                close = &mut close_rx => {
                    if let Ok((code, reason)) = close {
                        // Send what was already queued (the error frames that explain the close).
                        while let Some(item) = queue.try_recv() {
                            if push(&mut out, item).await.is_err() { return; }
                        }
                        out.close(code, reason);
                    }
                    let _ = out.shutdown().await;
                    return;
                }
                _ = &mut going_away => {
                    out.close(close::GOING_AWAY, "Server restarting; reconnect.");
                    let _ = out.shutdown().await;
                    return;
                }
                item = queue.recv() => {
                    let Some(item) = item else {
                        let _ = out.shutdown().await;
                        return;
                    };
                    if push(&mut out, item).await.is_err() { return; }
                    // Known empty once a `try_recv` comes back with nothing; only a full batch
                    // has to look again (one lock fewer per wake-up on the fan-out path).
                    let mut drained = false;
                    for _ in 1..WRITE_BATCH {
                        match queue.try_recv() {
                            Some(item) => if push(&mut out, item).await.is_err() { return; },
                            None => {
                                drained = true;
                                break;
                            }
                        }
                    }
                    if drained || queue.is_empty() {
                        for room in lag.take_resyncs() {
                            out.text(&ServerMsg::Resync { room }.encode());
                        }
                    }
                    if out.flush().await.is_err() { return; }
                }
                _ = control.ready() => {
                    if out.flush().await.is_err() { return; }
                }
                _ = ticker.tick() => {
                    out.text(&ping);
                    if out.flush().await.is_err() { return; }
                }
            }
        }
    }
}

/// Formats one queue entry into the writer, writing out early once [`FLUSH_AT`] bytes are
/// pending: a long replay goes out in pieces rather than copied whole into one buffer.
///
/// A join answer's replay beyond what it carries is read from the store here, one page at a
/// time and only once the previous page has been handed to the socket, so a connection never
/// holds more than one page of it. If the store cannot complete it (retention deleted part of
/// the gap meanwhile, or the store failed), the connection is closed with 1011: it cannot
/// stay open with a hole in the room, and reconnecting gets an honest `recovered: false`.
async fn push<W: AsyncWrite + Unpin>(
    out: &mut wire::Writer<W>,
    item: Outbound,
) -> std::io::Result<()> {
    let frames = match &item {
        Outbound::Frame(text) => std::slice::from_ref(text),
        Outbound::Batch(frames) => frames.as_slice(),
        Outbound::Join(answer) => answer.frames.as_slice(),
    };
    for text in frames {
        out.text(text);
        if out.pending() >= FLUSH_AT {
            out.flush().await?;
        }
    }
    let Outbound::Join(answer) = item else {
        return Ok(());
    };
    let Some(pages) = answer.pages else {
        return Ok(());
    };
    // Boxed: streaming a replay waits on the store, and inline that wait would sit in every
    // connection's writer task, idle or not.
    Box::pin(stream_pages(out, pages)).await
}

/// Writes a join answer's replay beyond what it carried, a page at a time (see [`push`]).
async fn stream_pages<W: AsyncWrite + Unpin>(
    out: &mut wire::Writer<W>,
    mut pages: ReplayPages,
) -> std::io::Result<()> {
    loop {
        match pages.next_page().await {
            Ok(Some(page)) => {
                for msg in page {
                    out.text(&ServerMsg::Message(msg).encode());
                    if out.pending() >= FLUSH_AT {
                        out.flush().await?;
                    }
                }
            }
            Ok(None) => return Ok(()),
            Err(broken) => {
                out.close(REPLAY_FAILED, "History could not be replayed; reconnect.");
                let _ = out.shutdown().await;
                return Err(std::io::Error::other(broken));
            }
        }
    }
}
