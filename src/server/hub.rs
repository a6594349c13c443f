//! The hub: every live connection and every room on this node.
//!
//! Rules the rest of the server relies on:
//! - **Ownership.** Each room is an actor task (`room.rs`) that alone owns the room's members,
//!   presence and order of events; the hub only keeps a handle per room and hands out
//!   connection handles. No lock is held across a fan-out or a store call.
//! - **Message flow.** decode → validate (socket) → room actor: append a batch to the store
//!   (group commit; the store assigns per-room sequence numbers and deduplicates on
//!   (author, client id)) → ack the sender → serialize once → the same bytes go to every
//!   member's queue → announce to the broker for other nodes.
//! - **Slow consumers.** Every connection has a bounded queue. A full queue never blocks the
//!   room: the frame is not queued, the connection is marked lagging, and once its writer has
//!   drained what was queued it sends `resync` for every room that lost frames. The client
//!   joins again with its last sequence number and the room replays the gap from the store.
//!   Nobody is silently dropped.
//! - **Presence** is per user as a set of connections (`presence.rs`), with a grace period
//!   before a person whose last tab closed is announced as gone.

use crate::protocol::{ChatMessage, ClientId, ErrorCode, RoomId, Seq, UserName};
use crate::server::broker::Broker;
use crate::server::presence::ConnId;
use crate::server::room::{self, RoomCmd, RoomHandle};
use crate::server::store::{Store, StoreError};
use axum::extract::ws::Utf8Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Tunables; the defaults are what `hearth` runs with unless told otherwise.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Frames a connection may have queued before it is marked lagging.
    pub queue_frames: usize,
    /// How long a person stays listed after their last connection closes.
    pub presence_grace: Duration,
    /// How often the server pings each connection; three silent intervals close it.
    pub heartbeat: Duration,
    /// Most messages a rejoin may replay; a bigger gap is answered with `recovered: false`.
    pub replay_limit: usize,
    /// Most messages stored in one group commit.
    pub batch_max: usize,
    /// Most rooms one connection may join.
    pub rooms_per_connection: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            queue_frames: 512,
            presence_grace: Duration::from_secs(3),
            heartbeat: Duration::from_secs(10),
            replay_limit: 2000,
            batch_max: 256,
            rooms_per_connection: 64,
        }
    }
}

/// What the writer of one connection sends, in order.
#[derive(Debug)]
pub enum Outbound {
    Frame(Utf8Bytes),
    /// Frames that must stay together (a join answer and its replay); counts as one slot so a
    /// long replay cannot itself overflow the queue.
    Batch(Vec<Utf8Bytes>),
}

/// The hub's side of one connection: cheap to clone, held by every room it joined.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: ConnId,
    pub user: UserName,
    tx: mpsc::Sender<Outbound>,
    lag: Arc<LagState>,
}

/// Tracks frames a connection missed because its queue was full.
#[derive(Default)]
pub struct LagState {
    /// Fast path: false means "not lagging", checked without the lock.
    lagging: AtomicBool,
    /// Rooms that lost frames; authoritative under the lock.
    rooms: Mutex<Vec<RoomId>>,
}

impl LagState {
    /// Takes the rooms to resync, if any, and clears the lagging mark.
    pub fn take(&self) -> Vec<RoomId> {
        if !self.lagging.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        self.lagging.store(false, Ordering::Release);
        std::mem::take(&mut *rooms)
    }

    fn mark(&self, room: &RoomId) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        self.lagging.store(true, Ordering::Release);
        if !rooms.contains(room) {
            rooms.push(room.clone());
        }
    }
}

impl ConnHandle {
    /// Queues a frame for this connection without ever waiting. A full queue marks the
    /// connection lagging for `room`; from then on its frames for any room are not queued
    /// until the writer has drained and sent `resync`, so the client never sees a gap it
    /// cannot detect.
    pub fn deliver(&self, room: &RoomId, item: Outbound) {
        if self.lag.lagging.load(Ordering::Acquire) {
            let mut rooms = self.lag.rooms.lock().unwrap_or_else(|p| p.into_inner());
            if self.lag.lagging.load(Ordering::Acquire) {
                if !rooms.contains(room) {
                    rooms.push(room.clone());
                }
                return;
            }
        }
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.lag.mark(room),
            // The connection is closing; its rooms hear about it from `disconnect`.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    pub fn lag_state(&self) -> Arc<LagState> {
        self.lag.clone()
    }
}

/// A room as the home page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSummary {
    pub room: RoomId,
    pub online: usize,
}

/// What a server-rendered room page starts from.
#[derive(Clone, Debug)]
pub struct RoomSnapshot {
    pub messages: Vec<ChatMessage>,
    pub online: Vec<UserName>,
    pub last_seq: Seq,
    pub epoch: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The store failed; shown to people as a retry-later sentence.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message was refused; the code says why.
    #[error("message refused: {1}")]
    Refused(ErrorCode, String),
    /// The room actor is gone (only during shutdown).
    #[error("the room is shutting down")]
    Closed,
}

pub struct Hub {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    config: HubConfig,
    rooms: Mutex<HashMap<RoomId, RoomHandle>>,
    next_conn: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>, broker: Arc<dyn Broker>, config: HubConfig) -> Arc<Hub> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Hub {
            store,
            broker,
            config,
            rooms: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            shutdown,
        })
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Registers a new connection and returns its handle and the receiving end of its queue.
    pub fn connect(&self, user: UserName) -> (ConnHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(self.config.queue_frames.max(1));
        let handle = ConnHandle {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            user,
            tx,
            lag: Arc::new(LagState::default()),
        };
        (handle, rx)
    }

    /// Resolves when the server starts shutting down; writers then close with 1001.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    fn room(&self, id: &RoomId) -> RoomHandle {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .entry(id.clone())
            .or_insert_with(|| {
                room::spawn(
                    id.clone(),
                    self.store.clone(),
                    self.broker.clone(),
                    self.config.clone(),
                )
            })
            .clone()
    }

    fn existing_room(&self, id: &RoomId) -> Option<RoomHandle> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(id).cloned()
    }

    /// Creates a room in the store; true when it is new.
    pub async fn create_room(&self, id: &RoomId) -> Result<bool, HubError> {
        Ok(self.store.create_room(id).await?)
    }

    /// Subscribes a connection to a room, creating the room if needed. The room answers with
    /// `joined` (and a replay from `since`) on the connection's queue.
    pub async fn join(
        &self,
        conn: &ConnHandle,
        room: &RoomId,
        since: Option<Seq>,
        epoch: Option<u64>,
    ) -> Result<(), HubError> {
        self.store.create_room(room).await?;
        self.room(room)
            .send(RoomCmd::Join {
                conn: conn.clone(),
                since,
                epoch,
            })
            .await
    }

    pub async fn leave(&self, conn: &ConnHandle, room: &RoomId) {
        if let Some(handle) = self.existing_room(room) {
            let _ = handle
                .send(RoomCmd::Leave {
                    conn: conn.clone(),
                    explicit: true,
                })
                .await;
        }
    }

    /// Posts a message from a joined connection; the ack or error arrives on its queue.
    pub async fn send(
        &self,
        conn: &ConnHandle,
        room: &RoomId,
        client_id: ClientId,
        text: String,
    ) -> Result<(), HubError> {
        self.room(room)
            .send(RoomCmd::Send {
                author: conn.user.clone(),
                client_id,
                text,
                origin: room::Origin::Conn(conn.clone()),
            })
            .await
    }

    /// Posts a message without a connection (a plain HTML form) and waits for its sequence
    /// number.
    pub async fn post(
        &self,
        author: UserName,
        room: &RoomId,
        client_id: ClientId,
        text: String,
    ) -> Result<Seq, HubError> {
        self.store.create_room(room).await?;
        let (reply, answer) = oneshot::channel();
        self.room(room)
            .send(RoomCmd::Send {
                author,
                client_id,
                text,
                origin: room::Origin::Reply(reply),
            })
            .await?;
        answer.await.map_err(|_| HubError::Closed)?
    }

    /// Removes a closed connection from the rooms it joined; presence keeps its grace period.
    pub async fn disconnect(&self, conn: &ConnHandle, rooms: impl IntoIterator<Item = RoomId>) {
        for room in rooms {
            if let Some(handle) = self.existing_room(&room) {
                let _ = handle
                    .send(RoomCmd::Leave {
                        conn: conn.clone(),
                        explicit: false,
                    })
                    .await;
            }
        }
    }

    /// Every room with how many people are online, `general` always included.
    pub async fn room_summaries(&self) -> Result<Vec<RoomSummary>, HubError> {
        let mut ids = self.store.list_rooms().await?;
        let general = RoomId(crate::names::DEFAULT_ROOM.to_string());
        if !ids.contains(&general) {
            ids.insert(0, general);
        }
        Ok(ids
            .into_iter()
            .map(|room| {
                let online = self.existing_room(&room).map_or(0, |h| h.online());
                RoomSummary { room, online }
            })
            .collect())
    }

    /// The latest `limit` messages plus who is online, for a server-rendered room page.
    pub async fn snapshot(&self, room: &RoomId, limit: usize) -> Result<RoomSnapshot, HubError> {
        let online = match self.existing_room(room) {
            Some(handle) => {
                let (reply, answer) = oneshot::channel();
                handle.send(RoomCmd::Online { reply }).await?;
                answer.await.map_err(|_| HubError::Closed)?
            }
            None => Vec::new(),
        };
        // Read the sequence number first: the page then carries a `last_seq` no newer than
        // its messages, so subscribing from it can repeat nothing and miss nothing.
        let last_seq = self.store.last_seq(room).await?;
        let mut messages = self.store.latest(room, None, limit).await?;
        messages.retain(|m| m.seq <= last_seq);
        Ok(RoomSnapshot {
            messages,
            online,
            last_seq,
            epoch: self.store.epoch(),
        })
    }

    /// Delivers a message stored by another node to this node's members of the room.
    pub async fn deliver_remote(&self, msg: ChatMessage) {
        if let Some(handle) = self.existing_room(&msg.room) {
            let _ = handle.send(RoomCmd::Remote(msg)).await;
        }
    }
}

/// Milliseconds since the Unix epoch, for message timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
