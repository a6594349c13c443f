//! One room as an actor task: it alone owns the room's members and presence and decides the
//! order of everything that happens in the room.
//!
//! Because joins and sends go through the same queue, a join's replay and the live messages
//! after it can neither overlap nor leave a gap. Sends that arrive together are stored as one
//! batch (group commit) and then fanned out, each serialized once.
//!
//! Presence changes are batched too: instead of one diff per join to every member (O(n²)
//! frames when n people arrive at once), the room logs changes and flushes one diff per
//! `presence_batch`. A tab that joined mid-batch got a snapshot at its join; since every
//! logged event toggles one person's membership (by key: two guests named alike are two
//! people), its own diff is "the people with an odd number of events after my snapshot", so
//! every tab's view ends up exact.
//!
//! Lifecycle: a room with no members and no activity for `room_idle` takes itself out of the
//! hub's map and ends, so rooms nobody uses cost no memory; the next command for it starts a
//! fresh actor that reloads its tail (and so its sequence numbers) from the store. Who may
//! join is decided here too, when the join is handled: checked in the actor's order, a
//! room's access rules cannot change between the check and the admission.

use crate::model::{Messages, MENTIONS_KEPT};
use crate::names::{clean_message, valid_client_id};
use crate::protocol::{
    AuthorKey, Change, ChatMessage, ClientId, ErrorCode, Mentioning, Person, RoomId, Seq,
    ServerMsg, MAX_CHANGE_REPLAY, TYPING_INTERVAL_MS,
};
use crate::server::broker::Broker;
use crate::server::conn::{read_page, ConnHandle, Outbound, ReplayPages, REPLAY_PAGE};
use crate::server::hub::{now_ms, HubConfig, HubError};
use crate::server::presence::{remote_conn, ConnId, Presence, Removal};
use crate::server::store::{Appended, Changed, NewChange, NewMessage, Replay, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tungstenite::Utf8Bytes;

/// Where the outcome of a send goes.
pub enum Origin {
    /// A WebSocket connection: an `ack` or `error` frame on its queue.
    Conn(ConnHandle),
    /// A plain HTTP form post waiting for the sequence number.
    Reply(oneshot::Sender<Result<Seq, HubError>>),
}

/// Where the outcome of a change goes.
pub enum ChangeOrigin {
    /// A joined WebSocket connection: a refusal is an `error` frame on its queue (the
    /// change itself reaches it with everyone else's).
    Conn(ConnHandle),
    /// A plain HTTP form post waiting for the outcome.
    Reply(oneshot::Sender<Result<Changed, HubError>>),
}

/// Whether a joining connection may enter the room, asked by the actor when it handles the
/// join (so after every access change that was made before the join reached the room).
pub type Admit = Arc<dyn Fn(&RoomId) -> bool + Send + Sync>;

/// Takes an idle room out of the hub's map if nothing else can reach it; true when it did
/// (the actor then ends). Given the actor's receiver and its `online` counter (which tells
/// the hub's handle for this actor from a newer one).
pub type Retire = Box<dyn Fn(&mpsc::Receiver<RoomCmd>, &Arc<AtomicUsize>) -> bool + Send + Sync>;

pub enum RoomCmd {
    Join {
        conn: ConnHandle,
        since: Option<Seq>,
        epoch: Option<u64>,
        /// With `since`: the changes after this `eseq` are replayed too.
        changes_since: Option<Seq>,
        /// `None` admits everyone (tests, and callers that checked already).
        admit: Option<Admit>,
    },
    Leave {
        conn: ConnHandle,
        /// An explicit `leave` skips the presence grace period; a dropped connection does not.
        explicit: bool,
    },
    Send {
        author: Person,
        client_id: ClientId,
        text: String,
        origin: Origin,
    },
    /// A grace period ended.
    Expire {
        user: AuthorKey,
        generation: u64,
    },
    /// Time to send the batched presence diff.
    FlushPresence,
    /// Answered once every command queued before it has been handled (shutdown).
    Drain {
        done: oneshot::Sender<()>,
    },
    /// A message another node stored, with its frame as that node encoded it (if it came
    /// with one).
    Remote {
        msg: ChatMessage,
        frame: Option<Utf8Bytes>,
    },
    /// A change stored by another node.
    RemoteChange(Change),
    /// Everyone another node lists in this room now (see [`crate::server::broker`]).
    RemotePresence {
        node: u64,
        version: u64,
        people: Vec<Person>,
    },
    /// A node stopped renewing its lease: its people leave.
    NodeDown {
        node: u64,
    },
    /// Publish who this node lists here, changed or not (asked by another node, or the
    /// periodic refresh).
    SharePresence,
    /// Check the store for messages and changes the members have not been sent (see
    /// `Room::deliver`).
    CatchUp,
    /// The store's latest numbers for this room, read for every room in memory at once:
    /// fill in whatever the members have not been sent.
    CatchUpTo {
        last_seq: Seq,
        last_eseq: Seq,
    },
    /// `conn`'s person is typing: tell the room's other people, now or never.
    Typing {
        conn: ConnHandle,
    },
    /// Someone edits, deletes or reacts to a message.
    Change {
        origin: ChangeOrigin,
        change: NewChange,
    },
    /// `conn`'s person has read up to `seq`: tell their other connections here.
    Read {
        conn: ConnHandle,
        seq: Seq,
    },
    /// `conn` follows the room's latest sequence number (its sidebar) without joining it.
    /// `read` is how far its person has read here.
    Watch {
        conn: ConnHandle,
        read: Seq,
    },
    Unwatch {
        conn: ConnHandle,
    },
    /// The newest `limit` messages, who is online, and the latest sequence number, for a
    /// server-rendered page (served from memory once the room is warm).
    Snapshot {
        limit: usize,
        reply: oneshot::Sender<Result<RoomView, HubError>>,
    },
}

/// What a page render needs from a room.
pub struct RoomView {
    pub messages: Messages,
    pub online: Vec<Person>,
    pub last_seq: Seq,
    pub last_eseq: Seq,
}

/// Most names in one presence frame (the rest of a big room's state follows in more frames).
const PRESENCE_CHUNK: usize = 100;

/// What a refused early join suggests waiting before trying again.
const EARLY_JOIN_RETRY_MS: u64 = 1000;

/// Messages each room keeps in memory: enough for a page render and for most reconnects.
const RECENT: usize = 256;

/// The tail of a room's history, mirrored from the store after every commit.
struct Recent {
    last_seq: Seq,
    last_eseq: Seq,
    messages: std::collections::VecDeque<ChatMessage>,
    /// Never more than the store retains.
    capacity: usize,
    /// The latest page (the last `limit` messages), made at the first page asked for since
    /// the last message and shared by every page until the next, with what the pages make
    /// of it (`api::Messages`): a busy room page is read more often than its room gets a
    /// message, and copying, rendering and encoding the 50 messages for every page would be
    /// about a quarter of what a page costs the server.
    /// While kept it holds about three times the 50 messages' size (a copy, rows, JSON).
    page: Option<(usize, Messages)>,
}

impl Recent {
    /// Messages after `after` if the window still holds all of them.
    fn since(&self, after: Seq) -> Option<Vec<ChatMessage>> {
        if after > self.last_seq {
            return None;
        }
        if after == self.last_seq {
            return Some(Vec::new());
        }
        let first = self.messages.front()?.seq;
        (after.0 + 1 >= first.0).then(|| {
            self.messages
                .iter()
                .filter(|m| m.seq > after)
                .cloned()
                .collect()
        })
    }

    /// The last `limit` messages.
    fn page(&mut self, limit: usize) -> Messages {
        match &self.page {
            Some((made_for, page)) if *made_for == limit => page.clone(),
            _ => {
                let skip = self.messages.len().saturating_sub(limit);
                let page =
                    Messages::from(self.messages.iter().skip(skip).cloned().collect::<Vec<_>>());
                self.page = Some((limit, page.clone()));
                page
            }
        }
    }

    /// Folds a stored change into the message it names, if the window holds it.
    fn apply(&mut self, change: &Change) {
        self.last_eseq = self.last_eseq.max(change.eseq);
        let Some(first) = self.messages.front().map(|m| m.seq.0) else {
            return;
        };
        if let Some(msg) = change
            .seq
            .0
            .checked_sub(first)
            .and_then(|i| self.messages.get_mut(i as usize))
        {
            msg.apply(change);
            self.page = None;
        }
    }

    fn push(&mut self, msg: ChatMessage) {
        self.page = None;
        self.last_seq = msg.seq;
        self.messages.push_back(msg);
        while self.messages.len() > self.capacity {
            self.messages.pop_front();
        }
    }
}

/// A chat message's frame.
fn message_frame(msg: &ChatMessage) -> Utf8Bytes {
    Utf8Bytes::from(ServerMsg::Message(msg.clone()).encode())
}

/// The hub's handle on a room actor.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomCmd>,
    online: Arc<AtomicUsize>,
    /// A [`RoomCmd::CatchUp`] is queued: checks asked for meanwhile are the same check. When
    /// the store is away, each takes a while; they must not pile up ahead of sends.
    catch_up_queued: Arc<AtomicBool>,
}

impl RoomHandle {
    /// Whether this handle belongs to the actor that counts people in `online`.
    pub fn is_for(&self, online: &Arc<AtomicUsize>) -> bool {
        Arc::ptr_eq(&self.online, online)
    }

    /// Whether this handle is the only way left to reach its actor.
    pub fn is_last_sender(&self) -> bool {
        self.tx.strong_count() == 1
    }

    pub async fn send(&self, cmd: RoomCmd) -> Result<(), HubError> {
        self.tx.send(cmd).await.map_err(|_| HubError::Closed)
    }

    /// Sends without waiting; false when the actor's queue is full or it is gone.
    pub fn try_send(&self, cmd: RoomCmd) -> bool {
        self.tx.try_send(cmd).is_ok()
    }

    /// Queues a [`RoomCmd::CatchUp`] unless one is queued already.
    pub fn catch_up(&self) {
        if !self.catch_up_queued.swap(true, Ordering::AcqRel) && !self.try_send(RoomCmd::CatchUp) {
            self.catch_up_queued.store(false, Ordering::Release);
        }
    }

    pub fn online(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }
}

pub fn spawn(
    id: RoomId,
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    config: HubConfig,
    retire: Retire,
) -> RoomHandle {
    // Bounded so a flood of sends pushes back on the sockets reading them, not on memory.
    let (tx, rx) = mpsc::channel(1024);
    let online = Arc::new(AtomicUsize::new(0));
    let catch_up_queued = Arc::new(AtomicBool::new(false));
    let actor = RoomActor {
        catch_up_queued: catch_up_queued.clone(),
        id,
        store,
        broker,
        config,
        members: HashMap::new(),
        watchers: HashMap::new(),
        typists: (tokio::time::Instant::now(), Vec::new()),
        presence: Presence::default(),
        presence_log: Vec::new(),
        fresh: Vec::new(),
        snapshot: None,
        recent: None,
        flush_scheduled: false,
        online: online.clone(),
        self_tx: tx.downgrade(),
        retire,
        last_active: tokio::time::Instant::now(),
        remote: HashMap::new(),
        shared: None,
        share_due: false,
    };
    actor.broker.ask_presence(&actor.id);
    tokio::spawn(actor.run(rx));
    RoomHandle {
        tx,
        online,
        catch_up_queued,
    }
}

/// Most people whose typing a room passes on per [`TYPING_INTERVAL_MS`]: enough for the
/// browser's "Several people are typing…", which starts at three.
pub const TYPISTS_SHOWN: usize = 4;

struct RoomActor {
    catch_up_queued: Arc<AtomicBool>,
    id: RoomId,
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    config: HubConfig,
    members: HashMap<ConnId, ConnHandle>,
    /// Connections told of every new message's sequence number (`activity`) without being
    /// members: the room stays in memory for them.
    watchers: HashMap<ConnId, ConnHandle>,
    /// The people whose `typing` is passed on in the current window and when it started
    /// (at most [`TYPISTS_SHOWN`] per [`TYPING_INTERVAL_MS`]).
    typists: (tokio::time::Instant, Vec<AuthorKey>),
    presence: Presence,
    /// People whose membership flipped since the last flush, in order.
    presence_log: Vec<Person>,
    /// Connections that joined since the last flush, with the log length at their snapshot.
    fresh: Vec<(ConnId, usize)>,
    /// Who was online at the last flush, encoded once for every join until the next flush
    /// with changes; `None` until a join needs it.
    snapshot: Option<Snapshot>,
    flush_scheduled: bool,
    /// Loaded from the store on first use, then kept in step with every commit.
    recent: Option<Recent>,
    online: Arc<AtomicUsize>,
    /// Weak, so the actor ends once the hub drops its handle (timers hold no strong sender).
    self_tx: mpsc::WeakSender<RoomCmd>,
    retire: Retire,
    /// When the room last had a join, send, page view or remote message.
    last_active: tokio::time::Instant,
    /// Per other node: the latest version of its list here, and who is on it.
    remote: HashMap<u64, (u64, Vec<Person>)>,
    /// What this node last published as its list here: the version and the people's keys.
    shared: Option<(u64, Vec<AuthorKey>)>,
    /// This node's list changed since it was last published.
    share_due: bool,
}

/// The presence state at a flush, split as a `joined` frame carries it: the first
/// [`PRESENCE_CHUNK`] names, then the rest as ready-made `presence` frames.
struct Snapshot {
    first: Vec<Person>,
    rest: Vec<Utf8Bytes>,
}

struct PendingSend {
    author: Person,
    client_id: ClientId,
    text: String,
    origin: Origin,
}

impl RoomActor {
    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        let mut held: Option<RoomCmd> = None;
        loop {
            let cmd = match held.take() {
                Some(cmd) => cmd,
                None => match self.next(&mut rx).await {
                    Some(cmd) => cmd,
                    None => return,
                },
            };
            if !matches!(
                cmd,
                RoomCmd::Expire { .. }
                    | RoomCmd::FlushPresence
                    | RoomCmd::RemotePresence { .. }
                    | RoomCmd::NodeDown { .. }
                    | RoomCmd::SharePresence
            ) {
                self.last_active = tokio::time::Instant::now();
            }
            match cmd {
                RoomCmd::Send {
                    author,
                    client_id,
                    text,
                    origin,
                } => {
                    let mut batch = vec![PendingSend {
                        author,
                        client_id,
                        text,
                        origin,
                    }];
                    // Group commit: take every send already waiting, up to the batch limit;
                    // keep the first other command for after the batch so order is preserved.
                    while batch.len() < self.config.batch_max {
                        match rx.try_recv() {
                            Ok(RoomCmd::Send {
                                author,
                                client_id,
                                text,
                                origin,
                            }) => batch.push(PendingSend {
                                author,
                                client_id,
                                text,
                                origin,
                            }),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.store_and_fan_out(batch).await;
                }
                RoomCmd::Join {
                    conn,
                    since,
                    epoch,
                    changes_since,
                    admit,
                } => {
                    if admit.is_some_and(|admit| !admit(&self.id)) {
                        conn.deliver(
                            &self.id,
                            error_frame(ErrorCode::Forbidden, &self.id, None).with_message(
                                format!(
                                    "You cannot open #{}: it is private. Ask one of its \
                                     members to invite you.",
                                    self.id
                                ),
                            ),
                        );
                    } else {
                        self.join(conn, since, epoch, changes_since).await
                    }
                }
                RoomCmd::Leave { conn, explicit } => self.leave(&conn, explicit),
                RoomCmd::Expire { user, generation } => {
                    let who = self.presence.online_person(&user);
                    if self.presence.expire(&user, generation) {
                        self.local_changed();
                        if let Some(who) = who {
                            self.log_presence(who);
                        }
                    }
                }
                RoomCmd::Drain { done } => {
                    let _ = done.send(());
                }
                RoomCmd::FlushPresence => {
                    self.flush_scheduled = false;
                    self.flush_presence();
                    if self.share_due {
                        self.share_presence(false);
                    }
                }
                RoomCmd::RemotePresence {
                    node,
                    version,
                    people,
                } => self.remote_presence(node, version, people),
                RoomCmd::NodeDown { node } => {
                    self.remote_presence(node, u64::MAX, Vec::new());
                    self.remote.remove(&node);
                }
                RoomCmd::SharePresence => self.share_presence(true),
                RoomCmd::Snapshot { limit, reply } => {
                    let view = match self.recent().await {
                        Ok(recent) => Ok(RoomView {
                            messages: recent.page(limit),
                            online: Vec::new(),
                            last_seq: recent.last_seq,
                            last_eseq: recent.last_eseq,
                        }),
                        Err(err) => Err(err),
                    };
                    let _ = reply.send(view.map(|mut v| {
                        v.online = self.presence.online();
                        v
                    }));
                }
                RoomCmd::Remote { msg, frame } => {
                    let seq = msg.seq;
                    let calling = if msg.text.contains('@') {
                        vec![msg.clone()]
                    } else {
                        Vec::new()
                    };
                    self.deliver(msg, frame).await;
                    self.tell_watchers(seq, &calling);
                }
                RoomCmd::RemoteChange(change) => self.changed(change).await,
                RoomCmd::CatchUp => {
                    self.catch_up_queued.store(false, Ordering::Release);
                    self.catch_up().await
                }
                RoomCmd::CatchUpTo {
                    last_seq,
                    last_eseq,
                } => self.catch_up_to(last_seq, last_eseq).await,
                RoomCmd::Typing { conn } => self.typing(&conn),
                RoomCmd::Change { origin, change } => self.change(origin, change).await,
                RoomCmd::Read { conn, seq } => self.read(&conn, seq),
                RoomCmd::Watch { conn, read } => match self.watched(&conn.person, read).await {
                    Ok(activity) => {
                        conn.deliver(&RoomId(String::new()), Outbound::Frame(activity));
                        self.watchers.insert(conn.id, conn);
                    }
                    Err(err) => tracing::error!(room = %self.id, %err, "watch failed"),
                },
                RoomCmd::Unwatch { conn } => {
                    self.watchers.remove(&conn.id);
                }
            }
            self.online.store(self.presence.count(), Ordering::Relaxed);
        }
    }

    /// The next command; `None` when the actor should end (the hub dropped it, or it was
    /// idle long enough to leave memory).
    async fn next(&mut self, rx: &mut mpsc::Receiver<RoomCmd>) -> Option<RoomCmd> {
        loop {
            let idle = self.config.room_idle;
            if idle.is_zero() || !self.members.is_empty() || !self.watchers.is_empty() {
                return rx.recv().await;
            }
            match tokio::time::timeout_at(self.last_active + idle, rx.recv()).await {
                Ok(cmd) => return cmd,
                // People within their presence grace period still count as here.
                // Other nodes' people do not keep it here: asked again, they say who they list.
                Err(_) if !self.presence.has_local() && (self.retire)(rx, &self.online) => {
                    return None
                }
                // Something still holds the room (a command on its way): look again later.
                Err(_) => self.last_active = tokio::time::Instant::now(),
            }
        }
    }

    async fn join(
        &mut self,
        conn: ConnHandle,
        since: Option<Seq>,
        epoch: Option<u64>,
        changes_since: Option<Seq>,
    ) {
        // A member joining again before its last answer was written (a replay, or a big
        // room's presence state) would stack answers, each pinning its share of memory; a
        // join after a `leave` is a new subscription and is answered.
        if self.members.contains_key(&conn.id) && conn.is_joining(&self.id) {
            self.refuse_early_join(&conn);
            return;
        }
        let store_epoch = self.store.epoch();
        let (last_seq, last_eseq, cached) = match self.recent().await {
            Ok(recent) => (
                recent.last_seq,
                recent.last_eseq,
                since.and_then(|s| recent.since(s)),
            ),
            Err(err) => {
                tracing::error!(room = %self.id, %err, "join: loading the room failed");
                conn.deliver(
                    &self.id,
                    error_frame(ErrorCode::Internal, &self.id, None).into(),
                );
                return;
            }
        };
        let mut recovered = true;
        // A short replay the in-memory tail covers goes out with the answer; a longer one is
        // read from the store by the connection's writer, a page at a time as its socket
        // takes them. Either way it ends at `last_seq`, and live frames queued after the
        // answer start right after it, so nothing overlaps and nothing is missing.
        let mut replay = Vec::new();
        let mut pages = None;
        if let Some(since) = since {
            if epoch.is_some_and(|e| e != store_epoch) {
                recovered = false;
            } else if let Some(messages) = cached.filter(|m| m.len() <= REPLAY_PAGE) {
                replay = messages;
            } else if since > last_seq || (last_seq.0 - since.0) as usize > self.config.replay_limit
            {
                recovered = false;
            } else {
                // The gap must start right after the client's last message: retention may
                // have deleted its beginning.
                match read_page(&*self.store, &self.id, since, 1).await {
                    Ok(first) if first.first().map(|m| m.seq) == Some(Seq(since.0 + 1)) => {
                        pages = Some(ReplayPages::new(
                            self.store.clone(),
                            self.id.clone(),
                            since,
                            last_seq,
                        ));
                    }
                    Ok(_) => recovered = false,
                    Err(err) => {
                        tracing::error!(room = %self.id, %err, "join: replay failed");
                        recovered = false;
                    }
                }
            }
        }
        // The changes the client missed go with the messages: each is idempotent, so one
        // already folded into a replayed message does no harm (docs/protocol.md).
        let mut changes = Vec::new();
        if let (true, Some(after)) = (recovered && since.is_some(), changes_since) {
            match self
                .store
                .changes_since(&self.id, after, MAX_CHANGE_REPLAY)
                .await
            {
                Ok(Some(list)) => changes = list,
                Ok(None) => recovered = false,
                Err(err) => {
                    tracing::error!(room = %self.id, %err, "join: change replay failed");
                    recovered = false;
                }
            }
        }
        if !recovered {
            replay.clear();
            pages = None;
            changes.clear();
        }

        // In a big room, building the presence state costs O(online) per join, and a join
        // storm makes that O(n²): 10,000 people joining one room would clone and encode some
        // 50 million names. So a big room encodes the state once per flush and gives each joiner that
        // snapshot plus the changes logged since, as `presence` frames (the sum is the current
        // state, as the protocol promises). Small rooms, and rooms that flush at every change,
        // build the current state directly: it is cheap there, and `online` then already
        // holds everyone, the joiner included.
        if self.snapshot.is_none()
            && self.presence_log.is_empty()
            && self.presence.count() > PRESENCE_CHUNK
            && !self.config.presence_batch.is_zero()
        {
            // Nothing changed since the last flush: the state now is the state then.
            self.snapshot = Some(self.encode_snapshot());
        }
        let newly_online = self.presence.add(&conn.person, conn.id);
        self.local_changed();
        let mut frames = Vec::with_capacity(2 + replay.len());
        let joined = |people: Vec<Person>| {
            Utf8Bytes::from(
                ServerMsg::Joined {
                    room: self.id.clone(),
                    online: people.iter().map(|p| p.name.clone()).collect(),
                    last_seq,
                    epoch: store_epoch,
                    recovered,
                    people,
                    last_eseq,
                }
                .encode(),
            )
        };
        let from_snapshot = self.snapshot.is_some();
        if let Some(snapshot) = &self.snapshot {
            frames.push(joined(snapshot.first.clone()));
            frames.extend(snapshot.rest.iter().cloned());
        } else {
            let now = self.encode_snapshot();
            frames.push(joined(now.first));
            frames.extend(now.rest);
        }
        if newly_online && from_snapshot {
            // Logged before the diff below, so the joiner sees itself arrive.
            self.log_presence((*conn.person).clone());
        }
        if from_snapshot {
            let (joins, leaves) = self.net_diff(0);
            frames.extend(self.presence_frames(joins, leaves));
        }
        frames.extend(
            replay
                .into_iter()
                .map(|m| Utf8Bytes::from(ServerMsg::Message(m).encode())),
        );
        frames.extend(
            changes
                .into_iter()
                .map(|c| Utf8Bytes::from(ServerMsg::Change(c).encode())),
        );
        // A rejoin after `resync` ends the mute: the replay above starts where the client's
        // view stops, and live frames follow it.
        conn.lag_state().unmute(&self.id);
        conn.deliver_join(&self.id, frames, pages);
        // A rejoin (after `resync`) replaces its own snapshot; it must not keep an old one.
        self.fresh.retain(|(id, _)| *id != conn.id);
        self.members.insert(conn.id, conn.clone());
        if newly_online && !from_snapshot {
            self.log_presence((*conn.person).clone());
        }
        // Its view already includes every change logged so far.
        self.fresh.push((conn.id, self.presence_log.len()));
    }

    /// Refuses a re-join that came while the connection's last join answer for this room is
    /// still queued or being written; the client may join again once it has that answer.
    fn refuse_early_join(&self, conn: &ConnHandle) {
        let refusal = ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message: format!(
                "You joined #{} a moment ago and its history is still on its way; \
                 wait for it before joining again.",
                self.id
            ),
            room: Some(self.id.clone()),
            client_id: None,
            retry_after_ms: Some(EARLY_JOIN_RETRY_MS),
            seq: None,
        };
        // Queued as a frame of no room: if the queue is full it is not worth a resync.
        conn.deliver(
            &RoomId(String::new()),
            Outbound::Frame(Utf8Bytes::from(refusal.encode())),
        );
    }

    /// The presence state now, as a [`Snapshot`]. In chunks, so no frame carries a big room's
    /// whole list: each connection's writer formats a frame into its buffer whole, and small
    /// frames let it write out and free that buffer as it goes.
    fn encode_snapshot(&self) -> Snapshot {
        let mut first = self.presence.online();
        let rest = if first.len() > PRESENCE_CHUNK {
            first.split_off(PRESENCE_CHUNK)
        } else {
            Vec::new()
        };
        let rest = rest
            .chunks(PRESENCE_CHUNK)
            .map(|chunk| self.presence_frame(chunk.to_vec(), Vec::new()))
            .collect();
        Snapshot { first, rest }
    }

    /// The in-memory tail of the room, loading it from the store the first time.
    async fn recent(&mut self) -> Result<&mut Recent, HubError> {
        if self.recent.is_none() {
            let capacity = self
                .store
                .retained_per_room()
                .map_or(RECENT, |r| r.min(RECENT));
            let last_seq = self.store.last_seq(&self.id).await?;
            let last_eseq = self.store.last_eseq(&self.id).await?;
            let messages = self.store.latest(&self.id, None, capacity).await?;
            self.recent = Some(Recent {
                last_seq,
                last_eseq,
                messages: messages.into(),
                capacity,
                page: None,
            });
        }
        Ok(self.recent.get_or_insert_with(|| Recent {
            last_seq: Seq(0),
            last_eseq: Seq(0),
            messages: Default::default(),
            capacity: RECENT,
            page: None,
        }))
    }

    /// Stores a change to a message, folds it into the tail, and tells the room; a refusal
    /// goes to the one who asked alone, naming the message.
    async fn change(&mut self, origin: ChangeOrigin, change: NewChange) {
        let conn = match origin {
            ChangeOrigin::Conn(conn) if self.members.contains_key(&conn.id) => conn,
            ChangeOrigin::Conn(_) => return,
            ChangeOrigin::Reply(reply) => {
                let outcome = self.store.change(&self.id, change).await;
                if let Ok(Changed::Done(done)) = &outcome {
                    self.broker.publish_change(done);
                    self.changed(done.clone()).await;
                }
                let _ = reply.send(outcome.map_err(HubError::from));
                return;
            }
        };
        self.last_active = tokio::time::Instant::now();
        let seq = change.seq;
        let refuse = |code: ErrorCode, message: String| {
            conn.deliver(
                &self.id,
                error_frame(ErrorCode::Internal, &self.id, None)
                    .with_code(code)
                    .about(seq)
                    .with_message(message),
            );
        };
        match self.store.change(&self.id, change).await {
            Ok(Changed::Done(done)) => {
                self.broker.publish_change(&done);
                self.changed(done).await;
            }
            Ok(Changed::Unchanged) => {}
            Ok(Changed::NotFound) => refuse(
                ErrorCode::NotFound,
                format!("Message {seq} is not in #{}, or was deleted.", self.id),
            ),
            Ok(Changed::NotAuthor) => refuse(
                ErrorCode::Forbidden,
                "Only the person who wrote a message can edit or delete it.".to_string(),
            ),
            Err(err) => {
                tracing::error!(room = %self.id, %err, "change not stored");
                refuse(
                    ErrorCode::Internal,
                    "The server could not store that change; try again.".to_string(),
                );
            }
        }
    }

    /// A stored change (made here, or by another node and brought by the broker): into the
    /// tail and to everyone in the room, each once and in `eseq` order. As [`Room::deliver`]
    /// does for messages, with the tail's `last_eseq` as the cursor: at or below it is
    /// dropped, the next is applied, and one further ahead first brings what the store holds
    /// in between.
    async fn changed(&mut self, done: Change) {
        self.last_active = tokio::time::Instant::now();
        let Some(last) = self.recent.as_ref().map(|r| r.last_eseq) else {
            if !self.members.is_empty() {
                self.broadcast(&Utf8Bytes::from(ServerMsg::Change(done).encode()));
            }
            return;
        };
        if done.eseq <= last {
            return;
        }
        if done.eseq.0 == last.0 + 1 {
            return self.apply_change(done);
        }
        self.fill_changes(last).await;
    }

    /// Applies the next change to the tail and sends it to the members.
    fn apply_change(&mut self, done: Change) {
        if let Some(recent) = self.recent.as_mut() {
            recent.apply(&done);
        }
        self.broadcast(&Utf8Bytes::from(ServerMsg::Change(done).encode()));
    }

    /// Sends the changes the store holds after `last` (the change cursor), in order; a gap
    /// it cannot fill is handled as for messages ([`Room::resync_all`]).
    async fn fill_changes(&mut self, last: Seq) {
        match self
            .store
            .changes_since(&self.id, last, MAX_CHANGE_REPLAY)
            .await
        {
            Ok(Some(missing)) => {
                for change in missing {
                    self.apply_change(change);
                }
            }
            Ok(None) => self.resync_all().await,
            Err(err) => {
                tracing::error!(room = %self.id, %err, "filling a gap in changes failed");
                self.resync_all().await;
            }
        }
    }

    fn leave(&mut self, conn: &ConnHandle, explicit: bool) {
        if self.members.remove(&conn.id).is_none() {
            return;
        }
        if explicit {
            conn.deliver(
                &self.id,
                Outbound::Frame(Utf8Bytes::from(
                    ServerMsg::Left {
                        room: self.id.clone(),
                    }
                    .encode(),
                )),
            );
        }
        let removal = self.presence.remove(&conn.person.key, conn.id, !explicit);
        if !matches!(removal, Removal::Pending(_)) {
            self.local_changed();
        }
        match removal {
            Removal::StillOnline => {}
            Removal::Left => self.log_presence((*conn.person).clone()),
            Removal::Pending(generation) => {
                let Some(tx) = self.self_tx.upgrade() else {
                    return;
                };
                let user = conn.person.key.clone();
                let grace = self.config.presence_grace;
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    let _ = tx.send(RoomCmd::Expire { user, generation }).await;
                });
            }
        }
    }

    async fn store_and_fan_out(&mut self, batch: Vec<PendingSend>) {
        // Refuse bad input before it reaches the store; the socket checks too, but a plain
        // form post only passes through here.
        let mut accepted = Vec::with_capacity(batch.len());
        for send in batch {
            let problem = if !valid_client_id(&send.client_id) {
                Err((
                    ErrorCode::InvalidClientId,
                    "client_id must be 1–64 printable ASCII characters.".to_string(),
                ))
            } else {
                clean_message(&send.text).map_err(|p| {
                    let code = match p {
                        crate::names::MessageProblem::Empty => ErrorCode::EmptyMessage,
                        crate::names::MessageProblem::TooLong => ErrorCode::MessageTooLong,
                    };
                    (code, p.sentence())
                })
            };
            match problem {
                Ok(text) => accepted.push(PendingSend { text, ..send }),
                Err((code, message)) => {
                    self.answer_refusal(send.origin, code, message, &send.client_id)
                }
            }
        }
        if accepted.is_empty() {
            return;
        }

        let ts = now_ms();
        let new: Vec<NewMessage> = accepted
            .iter()
            .map(|s| NewMessage {
                author: s.author.name.clone(),
                author_key: s.author.key.clone(),
                client_id: s.client_id.clone(),
                text: s.text.clone(),
                ts,
            })
            .collect();
        let results = match self.store.append(&self.id, new).await {
            Ok(results) => results,
            Err(err) => {
                tracing::error!(room = %self.id, %err, "storing a batch failed");
                for send in accepted {
                    self.answer_refusal(
                        send.origin,
                        ErrorCode::Internal,
                        "The message could not be saved; it will be retried.".to_string(),
                        &send.client_id,
                    );
                }
                return;
            }
        };

        let mut newest = None;
        // Messages that may mention someone, for the watchers' `activity`.
        let mut calling = Vec::new();
        for (send, result) in accepted.into_iter().zip(results) {
            let (seq, stored) = match result {
                Appended::Stored(msg) => (msg.seq, Some(msg)),
                Appended::Duplicate(seq) => (seq, None),
            };
            match send.origin {
                Origin::Conn(conn) => {
                    let ack = ServerMsg::Ack {
                        room: self.id.clone(),
                        client_id: send.client_id,
                        seq,
                    };
                    conn.deliver(&self.id, Outbound::Frame(Utf8Bytes::from(ack.encode())));
                }
                Origin::Reply(reply) => {
                    let _ = reply.send(Ok(seq));
                }
            }
            if let Some(msg) = stored {
                // Encoded once, for this node's members and for the others'.
                let frame = message_frame(&msg);
                self.broker.publish(&msg, &frame);
                newest = Some(msg.seq);
                if msg.text.contains('@') {
                    calling.push(msg.clone());
                }
                self.deliver(msg, Some(frame)).await;
            }
        }
        if let Some(last_seq) = newest {
            self.tell_watchers(last_seq, &calling);
        }
    }

    /// Tells the watchers the room's latest sequence number, each with which of `calling`
    /// (new messages) mention them.
    fn tell_watchers(&self, last_seq: Seq, calling: &[ChatMessage]) {
        if self.watchers.is_empty() {
            return;
        }
        let activity = self.activity(last_seq, Vec::new());
        let calling: Vec<Mentioning> = calling.iter().filter_map(ChatMessage::mentioning).collect();
        for watcher in self.watchers.values() {
            let mentioned = self.mentioned(&calling, &watcher.person);
            let frame = if mentioned.is_empty() {
                activity.clone()
            } else {
                self.activity(last_seq, mentioned)
            };
            watcher.deliver(&RoomId(String::new()), Outbound::Frame(frame));
        }
    }

    /// Hands a stored message (stored here, or by another node and brought by the broker) to
    /// the members, each message once and in sequence order. The tail's last sequence number
    /// is the cursor: a message at or below it went out already and is dropped; the next one
    /// is appended and sent; one further ahead means others came first (another node's
    /// writes, or a broker message that was lost), so what the store holds after the cursor
    /// goes out first. Correctness never rests on the broker: a lost message is filled in by
    /// the next one, or by [`RoomCmd::CatchUp`].
    /// `frame` is the message's encoded frame when the caller has it.
    async fn deliver(&mut self, msg: ChatMessage, frame: Option<Utf8Bytes>) {
        let Some(last) = self.recent.as_ref().map(|r| r.last_seq) else {
            // No tail is kept until someone joins (a join loads it): nobody to keep in order.
            if !self.members.is_empty() {
                self.broadcast(&frame.unwrap_or_else(|| message_frame(&msg)));
            }
            return;
        };
        if msg.seq <= last {
            return;
        }
        if msg.seq.0 == last.0 + 1 {
            return self.append(msg, frame);
        }
        self.fill(last).await;
    }

    /// Sends what the store holds after `last` (the cursor), in order. A gap the store can no
    /// longer fill (beyond its retention, or more than a tail's worth) reloads the tail and
    /// tells every member to `resync`: each joins again from what it has.
    async fn fill(&mut self, last: Seq) {
        match self.store.since(&self.id, last, RECENT).await {
            Ok(Replay::Complete(missing)) => {
                for msg in missing {
                    self.append(msg, None);
                }
            }
            outcome => {
                if let Err(err) = outcome {
                    tracing::error!(room = %self.id, %err, "filling a gap failed; members resync");
                }
                self.resync_all().await;
            }
        }
    }

    /// What cannot be sent in order is not sent at all: the tail is loaded again from the
    /// store and every member is told to `resync`, so each joins again from what it has.
    async fn resync_all(&mut self) {
        self.recent = None;
        if let Err(err) = self.recent().await {
            tracing::error!(room = %self.id, %err, "reloading the tail failed");
        }
        let resync = Utf8Bytes::from(
            ServerMsg::Resync {
                room: self.id.clone(),
            }
            .encode(),
        );
        self.broadcast(&resync);
    }

    /// Appends the next message to the tail and sends it to the members.
    fn append(&mut self, msg: ChatMessage, frame: Option<Utf8Bytes>) {
        let frame = frame.unwrap_or_else(|| message_frame(&msg));
        if let Some(recent) = self.recent.as_mut() {
            recent.push(msg);
        }
        self.broadcast(&frame);
    }

    /// Brings the members up to the store's latest message, if they are behind it (a broker
    /// message lost and no later one to reveal the gap).
    async fn catch_up(&mut self) {
        if self.recent.is_none() {
            return;
        }
        let counters = match self.store.last_seq(&self.id).await {
            Ok(latest) => self
                .store
                .last_eseq(&self.id)
                .await
                .map(|eseq| (latest, eseq)),
            Err(err) => Err(err),
        };
        match counters {
            Ok((latest, latest_eseq)) => self.catch_up_to(latest, latest_eseq).await,
            // The store is away: the next check tries again.
            Err(err) => tracing::error!(room = %self.id, %err, "catching up failed"),
        }
    }

    /// Sends the members what the store holds beyond what they were sent, given the store's
    /// latest numbers for the room.
    async fn catch_up_to(&mut self, latest: Seq, latest_eseq: Seq) {
        let Some((last, last_eseq)) = self.recent.as_ref().map(|r| (r.last_seq, r.last_eseq))
        else {
            return;
        };
        if latest > last {
            self.fill(last).await;
            self.tell_watchers(latest, &[]);
        }
        if latest_eseq > last_eseq {
            self.fill_changes(last_eseq).await;
        }
    }

    /// The `activity` frame for the room's latest sequence number. Queued as a frame of no
    /// room: a connection too far behind to take it gets the next one.
    fn activity(&self, last_seq: Seq, mentioned: Vec<Seq>) -> Utf8Bytes {
        Utf8Bytes::from(
            ServerMsg::Activity {
                room: self.id.clone(),
                last_seq,
                mentioned,
            }
            .encode(),
        )
    }

    /// Which of `messages` mention `person` (`@here` while they are online here).
    fn mentioned(&self, messages: &[Mentioning], person: &Person) -> Vec<Seq> {
        let online = !messages.is_empty() && self.presence.contains(&person.key);
        messages
            .iter()
            .filter(|m| m.calls(&person.name.0, &person.key, online))
            .map(Mentioning::seq)
            .collect()
    }

    /// What a new watcher who read up to `read` is told: the latest sequence number and the
    /// unread messages that mention them (the newest [`MENTIONS_KEPT`] unread at most).
    async fn watched(&self, person: &Person, read: Seq) -> Result<Utf8Bytes, StoreError> {
        let last_seq = match self.recent.as_ref() {
            Some(recent) => recent.last_seq,
            None => self.store.last_seq(&self.id).await?,
        };
        let unread = (last_seq.0.saturating_sub(read.0) as usize).min(MENTIONS_KEPT);
        let stored;
        let mentioning: Vec<Mentioning> =
            match self.recent.as_ref().filter(|r| r.messages.len() >= unread) {
                Some(recent) => {
                    let first = recent.messages.len() - unread;
                    let unread = recent.messages.range(first..);
                    unread.filter_map(ChatMessage::mentioning).collect()
                }
                None => {
                    stored = match unread {
                        0 => Vec::new(),
                        n => self.store.latest(&self.id, None, n).await?,
                    };
                    stored.iter().filter_map(ChatMessage::mentioning).collect()
                }
            };
        Ok(self.activity(last_seq, self.mentioned(&mentioning, person)))
    }

    /// Tells `conn`'s person's other connections here (members and watchers) that they have
    /// read up to `seq`.
    fn read(&self, conn: &ConnHandle, seq: Seq) {
        let frame = Utf8Bytes::from(
            ServerMsg::Read {
                room: self.id.clone(),
                seq,
            }
            .encode(),
        );
        let mut told = std::collections::HashSet::new();
        for other in self.members.values().chain(self.watchers.values()) {
            if other.id != conn.id && other.person.key == conn.person.key && told.insert(other.id) {
                other.deliver(&RoomId(String::new()), Outbound::Frame(frame.clone()));
            }
        }
    }

    fn answer_refusal(&self, origin: Origin, code: ErrorCode, message: String, id: &ClientId) {
        match origin {
            Origin::Conn(conn) => conn.deliver(
                &self.id,
                error_frame(code, &self.id, Some(id.clone())).with_message(message),
            ),
            Origin::Reply(reply) => {
                let _ = reply.send(Err(HubError::Refused(code, message)));
            }
        }
    }

    /// Fans a `typing` frame out to every member but the typist's own connections (their
    /// other tabs included). Nothing is stored, replayed or counted in the sequence.
    fn typing(&mut self, conn: &ConnHandle) {
        if !self.members.contains_key(&conn.id)
            || self.presence.count() > self.config.typing_room_limit
        {
            return;
        }
        let person = &conn.person;
        // Past a few typists a reader sees "Several people are typing…" whoever they are,
        // so more frames would only multiply the fan-out by the room's size.
        let (start, shown) = &mut self.typists;
        let now = tokio::time::Instant::now();
        if now.duration_since(*start) >= Duration::from_millis(TYPING_INTERVAL_MS) {
            *start = now;
            shown.clear();
        }
        if !shown.contains(&person.key) {
            if shown.len() >= TYPISTS_SHOWN {
                return;
            }
            shown.push(person.key.clone());
        }
        let frame = Utf8Bytes::from(
            ServerMsg::Typing {
                room: self.id.clone(),
                user: person.name.clone(),
                key: person.key.clone(),
                guest: person.guest,
            }
            .encode(),
        );
        for member in self.members.values() {
            if member.person.key != person.key {
                member.deliver_ephemeral(&self.id, frame.clone());
            }
        }
    }

    fn broadcast(&self, frame: &Utf8Bytes) {
        for member in self.members.values() {
            member.deliver(&self.id, Outbound::Frame(frame.clone()));
        }
    }

    /// Records that `who`'s membership flipped and makes sure a flush is coming.
    fn log_presence(&mut self, who: Person) {
        self.presence_log.push(who);
        if self.config.presence_batch.is_zero() {
            self.flush_presence();
            return;
        }
        self.schedule_flush(self.config.presence_batch);
    }

    /// A [`RoomCmd::FlushPresence`] after `wait`, unless one is due already.
    fn schedule_flush(&mut self, wait: Duration) {
        if self.flush_scheduled {
            return;
        }
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        self.flush_scheduled = true;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = tx.send(RoomCmd::FlushPresence).await;
        });
    }

    /// This node's list here may have changed: publish it with the next presence flush
    /// (batched, like the diffs members get). Nothing for a single node.
    fn local_changed(&mut self) {
        if self.broker.node() == 0 {
            return;
        }
        self.share_due = true;
        self.schedule_flush(self.config.presence_batch.max(Duration::from_millis(10)));
    }

    /// Publishes who this node lists here, when it changed since the last time (or always,
    /// with `always`: another node asked, or the periodic refresh).
    fn share_presence(&mut self, always: bool) {
        self.share_due = false;
        if self.broker.node() == 0 {
            return;
        }
        let people = self.presence.local();
        let keys: Vec<AuthorKey> = people.iter().map(|p| p.key.clone()).collect();
        if !always
            && self
                .shared
                .as_ref()
                .is_some_and(|(_, shared)| *shared == keys)
        {
            return;
        }
        // Above every earlier version, also those of an earlier actor of this room here.
        let version = self.shared.as_ref().map_or(0, |(v, _)| v + 1).max(now_ms());
        self.broker.publish_presence(&self.id, version, &people);
        self.shared = Some((version, keys));
    }

    /// Another node's list here: its people are listed through one connection standing for
    /// that node, so anyone also here, or on a third node, does not blink.
    fn remote_presence(&mut self, node: u64, version: u64, people: Vec<Person>) {
        if node == self.broker.node() {
            return;
        }
        if self
            .remote
            .get(&node)
            .is_some_and(|(known, _)| version <= *known)
        {
            return;
        }
        let conn = remote_conn(node);
        let before = self
            .remote
            .remove(&node)
            .map(|(_, p)| p)
            .unwrap_or_default();
        let now: HashSet<&AuthorKey> = people.iter().map(|p| &p.key).collect();
        for gone in before.iter().filter(|p| !now.contains(&p.key)) {
            if self.presence.remove(&gone.key, conn, false) == Removal::Left {
                self.log_presence(gone.clone());
            }
        }
        let then: HashSet<&AuthorKey> = before.iter().map(|p| &p.key).collect();
        for came in people.iter().filter(|p| !then.contains(&p.key)) {
            if self.presence.add(&Arc::new(came.clone()), conn) {
                self.log_presence(came.clone());
            }
        }
        self.remote.insert(node, (version, people));
    }

    /// The net change of the users logged from `from` on: an odd number of flips means the
    /// user's state differs from the snapshot taken at `from`.
    fn net_diff(&self, from: usize) -> (Vec<Person>, Vec<Person>) {
        let mut flips: HashMap<&AuthorKey, (&Person, usize)> = HashMap::new();
        for who in &self.presence_log[from.min(self.presence_log.len())..] {
            flips.entry(&who.key).or_insert((who, 0)).1 += 1;
        }
        let (mut joins, mut leaves) = (Vec::new(), Vec::new());
        for (key, (who, count)) in flips {
            if count % 2 == 1 {
                if self.presence.contains(key) {
                    joins.push(who.clone());
                } else {
                    leaves.push(who.clone());
                }
            }
        }
        joins.sort_by(Person::order);
        leaves.sort_by(Person::order);
        (joins, leaves)
    }

    fn flush_presence(&mut self) {
        if self.presence_log.is_empty() {
            self.fresh.clear();
            return;
        }
        // The state changed: the next join in a big room encodes it afresh.
        self.snapshot = None;
        let fresh = std::mem::take(&mut self.fresh);
        let fresh_ids: std::collections::HashSet<ConnId> =
            fresh.iter().map(|(id, _)| *id).collect();
        let (joins, leaves) = self.net_diff(0);
        let shared = self.presence_frames(joins, leaves);
        if !shared.is_empty() {
            for member in self.members.values() {
                if !fresh_ids.contains(&member.id) {
                    member.deliver(&self.id, outbound(&shared));
                }
            }
        }
        for (id, from) in fresh {
            let Some(member) = self.members.get(&id) else {
                continue;
            };
            let (joins, leaves) = self.net_diff(from);
            let own = self.presence_frames(joins, leaves);
            if !own.is_empty() {
                member.deliver(&self.id, outbound(&own));
            }
        }
        self.presence_log.clear();
    }

    /// A diff as frames of at most [`PRESENCE_CHUNK`] names each.
    fn presence_frames(&self, joins: Vec<Person>, leaves: Vec<Person>) -> Vec<Utf8Bytes> {
        let joins = joins
            .chunks(PRESENCE_CHUNK)
            .map(|c| self.presence_frame(c.to_vec(), vec![]));
        let leaves = leaves
            .chunks(PRESENCE_CHUNK)
            .map(|c| self.presence_frame(vec![], c.to_vec()));
        joins.chain(leaves).collect()
    }

    /// One presence frame: the names (as before) and the people behind them.
    fn presence_frame(&self, arrived: Vec<Person>, departed: Vec<Person>) -> Utf8Bytes {
        Utf8Bytes::from(
            ServerMsg::Presence {
                room: self.id.clone(),
                joins: arrived.iter().map(|p| p.name.clone()).collect(),
                leaves: departed.iter().map(|p| p.name.clone()).collect(),
                arrived,
                departed,
            }
            .encode(),
        )
    }
}

/// One queue item for a list of frames (the common single frame without a Vec).
fn outbound(frames: &[Utf8Bytes]) -> Outbound {
    match frames {
        [one] => Outbound::Frame(one.clone()),
        many => Outbound::Batch(many.to_vec()),
    }
}

fn error_frame(code: ErrorCode, room: &RoomId, client_id: Option<ClientId>) -> ErrorFrame {
    ErrorFrame {
        code,
        room: room.clone(),
        client_id,
        seq: None,
    }
}

/// An error frame under construction; turns into an [`Outbound`] once it has its sentence.
struct ErrorFrame {
    code: ErrorCode,
    room: RoomId,
    client_id: Option<ClientId>,
    seq: Option<Seq>,
}

impl ErrorFrame {
    fn with_code(self, code: ErrorCode) -> ErrorFrame {
        ErrorFrame { code, ..self }
    }

    /// The message an `edit`, `delete` or `react` named.
    fn about(self, seq: Seq) -> ErrorFrame {
        ErrorFrame {
            seq: Some(seq),
            ..self
        }
    }

    fn with_message(self, message: String) -> Outbound {
        Outbound::Frame(Utf8Bytes::from(
            ServerMsg::Error {
                code: self.code,
                message,
                room: Some(self.room),
                client_id: self.client_id,
                retry_after_ms: None,
                seq: self.seq,
            }
            .encode(),
        ))
    }
}

impl From<ErrorFrame> for Outbound {
    fn from(frame: ErrorFrame) -> Outbound {
        frame.with_message("The server could not complete that; try again.".to_string())
    }
}
