//! The hub: every live connection and every room on this node.
//!
//! Rules the rest of the server relies on:
//! - **Ownership.** Each room is an actor task (`room.rs`) that alone owns the room's members,
//!   presence and order of events; the hub only keeps a handle per room and hands out
//!   connection handles. No lock is held across a fan-out or a store call.
//! - **Message flow.** decode → validate (socket) → room actor: append a batch to the store
//!   (group commit; the store assigns per-room sequence numbers and deduplicates on
//!   (author key, client id)) → ack the sender → serialize once → the same bytes go to every
//!   member's queue → announce to the broker for other nodes.
//! - **Slow consumers.** Every connection has a queue bounded in frames and in bytes. A full
//!   queue never blocks the room: the frame is not queued, the connection is marked lagging,
//!   and once its writer has drained what was queued it sends `resync` for every room that
//!   lost frames. The client joins again with its last sequence number and the room replays
//!   the gap from the store. Nobody is silently dropped.
//! - **Replays** are not held whole: a join queues its answer and, for a long gap, a cursor;
//!   the writer reads the gap from the store one page at a time as the socket takes it. While
//!   a join's answer is still queued or being written, a re-join of that room by the same
//!   connection (still a member) is refused (`rate_limited`), so a client cannot stack
//!   replays.
//! - **Lifecycle.** A room's actor starts on the first command for it and ends once it has
//!   had no members and no activity for `room_idle`; the map then forgets it, and the next
//!   command starts a new actor from the store, with the same sequence numbers and epoch.
//!   The map never creates rooms in the store: who may create a room is decided in
//!   `server::rooms`.
//! - **Presence** is per person (account or guest session: [`AuthorKey`], never the display
//!   name) as a set of connections (`presence.rs`), with a grace period
//!   before a person whose last tab closed is announced as gone.

use super::queue;
use crate::model::Messages;
use crate::protocol::{
    AuthorKey, Change, ChatMessage, ClientId, ErrorCode, Person, RoomId, Seq, UserName,
};
use crate::server::broker::Broker;
use crate::server::conn::{ConnHandle, Outbound};
use crate::server::reads::ReadMarks;
use crate::server::room::{self, Admit, RoomCmd, RoomHandle};
use crate::server::store::{Changed, NewChange, Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tungstenite::Utf8Bytes;

/// Tunables; the defaults are what `hearth` runs with unless told otherwise.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Frames a connection may have queued before it is marked lagging.
    pub queue_frames: usize,
    /// Bytes of frames a connection may have queued before it is marked lagging.
    pub queue_bytes: usize,
    /// How long a person stays listed after their last connection closes.
    pub presence_grace: Duration,
    /// Presence diffs are sent at most this often per room (zero: at once).
    pub presence_batch: Duration,
    /// How often the server pings each connection; three silent intervals close it.
    pub heartbeat: Duration,
    /// Most messages a rejoin may replay; a bigger gap is answered with `recovered: false`.
    pub replay_limit: usize,
    /// Most messages stored in one group commit.
    pub batch_max: usize,
    /// Most rooms one connection may join.
    pub rooms_per_connection: usize,
    /// Rooms one person may create per hour (a burst of this many, refilled over the hour);
    /// 0 turns the limit off.
    pub rooms_per_hour: u32,
    /// Rooms one address may create per hour, whoever creates them; 0 turns the limit off.
    pub rooms_per_hour_per_address: u32,
    /// A room with nobody in it and nothing happening for this long leaves memory (its
    /// actor ends); it comes back from the store on demand. Zero keeps rooms forever.
    pub room_idle: Duration,
    /// How long a write to a connection may wait for the peer to take any bytes before the
    /// connection is closed (a peer that stopped reading).
    pub write_timeout: Duration,
    /// Rooms with more people online than this do not pass typing on: its fan-out grows with
    /// the room, and in a crowd it says little (Mattermost's default cut-off is the same).
    pub typing_room_limit: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            queue_frames: 512,
            queue_bytes: 1024 * 1024,
            presence_grace: Duration::from_secs(3),
            presence_batch: Duration::from_millis(50),
            heartbeat: Duration::from_secs(10),
            replay_limit: 10_000,
            batch_max: 256,
            rooms_per_connection: 64,
            rooms_per_hour: 20,
            rooms_per_hour_per_address: 60,
            room_idle: Duration::from_secs(600),
            write_timeout: Duration::from_secs(30),
            typing_room_limit: 1_000,
        }
    }
}

/// What a server-rendered room page starts from.
#[derive(Clone, Debug)]
pub struct RoomSnapshot {
    /// For a room in memory, shared with every other snapshot of it until its next message.
    pub messages: Messages,
    pub online: Vec<Person>,
    pub last_seq: Seq,
    /// The latest change folded into `messages` (at least: a later one may be too).
    pub last_eseq: Seq,
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
    /// Shared with each room's retire hook, which removes an idle room under this lock.
    rooms: Arc<Mutex<HashMap<RoomId, RoomHandle>>>,
    next_conn: AtomicU64,
    shutdown: watch::Sender<bool>,
    creations: crate::server::rooms::CreationBudget,
    reads: Arc<ReadMarks>,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>, broker: Arc<dyn Broker>, config: HubConfig) -> Arc<Hub> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Hub {
            reads: ReadMarks::new(store.clone()),
            store,
            broker,
            rooms: Arc::new(Mutex::new(HashMap::new())),
            next_conn: AtomicU64::new(1),
            shutdown,
            creations: crate::server::rooms::CreationBudget::new(
                config.rooms_per_hour,
                config.rooms_per_hour_per_address,
            ),
            config,
        })
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How many more rooms each person and address may create.
    pub fn creations(&self) -> &crate::server::rooms::CreationBudget {
        &self.creations
    }

    /// Whether `room` has an actor in memory now.
    pub fn in_memory(&self, room: &RoomId) -> bool {
        self.existing_room(room).is_some()
    }

    /// How many people are online in `room` (0 for a room not in memory).
    pub fn online(&self, room: &RoomId) -> usize {
        self.existing_room(room).map_or(0, |h| h.online())
    }

    /// Registers a connection with no session behind it (tools and tests), keyed by its name:
    /// see [`Hub::connect_as`] and [`named`].
    pub fn connect(&self, user: UserName) -> (ConnHandle, queue::Receiver<Outbound>) {
        self.connect_as(named(user))
    }

    /// Registers a new connection for `person` and returns its handle and the receiving end
    /// of its queue.
    pub fn connect_as(&self, person: Person) -> (ConnHandle, queue::Receiver<Outbound>) {
        let (tx, rx) = queue::channel(self.config.queue_frames.max(1), self.config.queue_bytes);
        let handle = ConnHandle::new(self.next_conn.fetch_add(1, Ordering::Relaxed), person, tx);
        (handle, rx)
    }

    /// Resolves when the server starts shutting down; writers then close with 1001.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits until every room has handled what it had accepted (stored and fanned out), or
    /// until `deadline`; true when all rooms finished.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let handles: Vec<RoomHandle> = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.values().cloned().collect()
        };
        let all = async {
            for handle in handles {
                let (done, finished) = oneshot::channel();
                if handle.send(RoomCmd::Drain { done }).await.is_ok() {
                    let _ = finished.await;
                }
            }
        };
        let drained = tokio::time::timeout(deadline, all).await.is_ok();
        if let Err(err) = self.reads.flush().await {
            tracing::error!(%err, "read marks not written at shutdown");
        }
        drained
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
                    self.retire_hook(id.clone()),
                )
            })
            .clone()
    }

    /// How an idle room leaves the map. Handles are only cloned out of the map under its
    /// lock, so when the map's handle is the last sender and nothing is queued, no command
    /// can reach the actor any more: removing it then loses nothing, and the next command
    /// for the room starts a new actor.
    fn retire_hook(&self, id: RoomId) -> room::Retire {
        let map = Arc::downgrade(&self.rooms);
        Box::new(move |rx, online| {
            let Some(map) = map.upgrade() else {
                return true;
            };
            let mut rooms = map.lock().unwrap_or_else(|p| p.into_inner());
            let ours = rooms
                .get(&id)
                .is_some_and(|h| h.is_for(online) && h.is_last_sender());
            if ours && rx.is_empty() {
                rooms.remove(&id);
                true
            } else {
                false
            }
        })
    }

    /// How many room actors are in memory now.
    pub fn rooms_in_memory(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn existing_room(&self, id: &RoomId) -> Option<RoomHandle> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(id).cloned()
    }

    /// Creates a room in the store; true when it is new.
    pub async fn create_room(&self, id: &RoomId) -> Result<bool, HubError> {
        Ok(self.store.create_room(id).await?)
    }

    /// Subscribes a connection to a room. The room answers with `joined` (and a replay from
    /// `since`) on the connection's queue. It does not create the room in the store: see
    /// `server::rooms::prepare_join`.
    pub async fn join(
        &self,
        conn: &ConnHandle,
        room: &RoomId,
        since: Option<Seq>,
        epoch: Option<u64>,
    ) -> Result<(), HubError> {
        self.join_if(conn, room, since, epoch, None, None).await
    }

    /// [`Hub::join`], with `admit` asked by the room actor when it handles the join; a
    /// refused connection gets a `forbidden` error instead of `joined`.
    pub async fn join_if(
        &self,
        conn: &ConnHandle,
        room: &RoomId,
        since: Option<Seq>,
        epoch: Option<u64>,
        changes_since: Option<Seq>,
        admit: Option<Admit>,
    ) -> Result<(), HubError> {
        self.room(room)
            .send(RoomCmd::Join {
                conn: conn.clone(),
                since,
                epoch,
                changes_since,
                admit,
            })
            .await
    }

    /// `conn`'s person edits, deletes or reacts to a message in `room` (a joined room); the
    /// outcome reaches the room as a `change`, or `conn` as an error naming the message.
    pub async fn change(
        &self,
        conn: &ConnHandle,
        room: &RoomId,
        change: NewChange,
    ) -> Result<(), HubError> {
        self.room(room)
            .send(RoomCmd::Change {
                origin: room::ChangeOrigin::Conn(conn.clone()),
                change,
            })
            .await
    }

    /// A change asked for by a plain form post: its outcome, once stored (or refused).
    pub async fn change_as(&self, room: &RoomId, change: NewChange) -> Result<Changed, HubError> {
        let (reply, answer) = oneshot::channel();
        self.room(room)
            .send(RoomCmd::Change {
                origin: room::ChangeOrigin::Reply(reply),
                change,
            })
            .await?;
        answer.await.map_err(|_| HubError::Closed)?
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
                author: (*conn.person).clone(),
                client_id,
                text,
                origin: room::Origin::Conn(conn.clone()),
            })
            .await
    }

    /// Raises `conn`'s person's read mark in `room`; their other connections there are told.
    pub async fn read(&self, conn: &ConnHandle, room: &RoomId, seq: Seq) -> Result<(), HubError> {
        if self.reads.mark(&conn.person.key, room, seq) {
            self.room(room)
                .send(RoomCmd::Read {
                    conn: conn.clone(),
                    seq,
                })
                .await?;
        }
        Ok(())
    }

    /// Starts telling `conn` each new sequence number of `room` (`activity`), whose person
    /// has read it up to `read`.
    pub async fn watch(&self, conn: &ConnHandle, room: &RoomId, read: Seq) -> Result<(), HubError> {
        self.room(room)
            .send(RoomCmd::Watch {
                conn: conn.clone(),
                read,
            })
            .await
    }

    /// Stops telling `conn` about `rooms`.
    pub async fn unwatch(&self, conn: &ConnHandle, rooms: impl IntoIterator<Item = RoomId>) {
        for room in rooms {
            if let Some(handle) = self.existing_room(&room) {
                let _ = handle.send(RoomCmd::Unwatch { conn: conn.clone() }).await;
            }
        }
    }

    /// Read marks (see [`ReadMarks`]).
    pub fn reads(&self) -> &Arc<ReadMarks> {
        &self.reads
    }

    /// Tells `room`'s other people that `conn`'s person is typing.
    pub async fn typing(&self, conn: &ConnHandle, room: &RoomId) -> Result<(), HubError> {
        self.room(room)
            .send(RoomCmd::Typing { conn: conn.clone() })
            .await
    }

    /// [`Hub::post_as`] for an author with no session behind it (tools and tests), keyed by
    /// the name (see [`named`]).
    pub async fn post(
        &self,
        author: UserName,
        room: &RoomId,
        client_id: ClientId,
        text: String,
    ) -> Result<Seq, HubError> {
        self.post_as(named(author), room, client_id, text).await
    }

    /// Posts a message without a connection (a plain HTML form) and waits for its sequence
    /// number.
    pub async fn post_as(
        &self,
        author: Person,
        room: &RoomId,
        client_id: ClientId,
        text: String,
    ) -> Result<Seq, HubError> {
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

    /// The latest `limit` messages plus who is online, for a server-rendered room page.
    /// Rooms with an actor answer from memory; others are read from the store.
    pub async fn snapshot(&self, room: &RoomId, limit: usize) -> Result<RoomSnapshot, HubError> {
        if let Some(handle) = self.existing_room(room) {
            let (reply, answer) = oneshot::channel();
            handle.send(RoomCmd::Snapshot { limit, reply }).await?;
            let view = answer.await.map_err(|_| HubError::Closed)??;
            return Ok(RoomSnapshot {
                messages: view.messages,
                online: view.online,
                last_seq: view.last_seq,
                last_eseq: view.last_eseq,
                epoch: self.store.epoch(),
            });
        }
        // Read the sequence number first: the page then carries a `last_seq` no newer than
        // its messages, so subscribing from it can repeat nothing and miss nothing.
        let last_seq = self.store.last_seq(room).await?;
        let last_eseq = self.store.last_eseq(room).await?;
        let mut messages = self.store.latest(room, None, limit).await?;
        messages.retain(|m| m.seq <= last_seq);
        Ok(RoomSnapshot {
            messages: messages.into(),
            online: Vec::new(),
            last_seq,
            last_eseq,
            epoch: self.store.epoch(),
        })
    }

    /// Delivers a message stored by another node to this node's members of the room, in
    /// order and once (a repeat or an old one is dropped, a gap is filled from the store).
    /// `frame` is the message's frame as the other node encoded it, sent on as it is.
    pub async fn deliver_remote(&self, msg: ChatMessage, frame: Option<Utf8Bytes>) {
        if let Some(handle) = self.existing_room(&msg.room) {
            let _ = handle.send(RoomCmd::Remote { msg, frame }).await;
        }
    }

    /// Delivers a change stored by another node, in `eseq` order and once.
    pub async fn deliver_remote_change(&self, change: Change) {
        if let Some(handle) = self.existing_room(&change.room) {
            let _ = handle.send(RoomCmd::RemoteChange(change)).await;
        }
    }

    /// Brings `room`'s members up to the store's latest message: the check that needs no
    /// broker message at all (after a broker outage, or a message it lost).
    pub async fn catch_up(&self, room: &RoomId) {
        if let Some(handle) = self.existing_room(room) {
            handle.catch_up();
        }
    }

    /// [`Hub::catch_up`] for every room in memory, with one store query per 1,000 rooms:
    /// only rooms that are behind then read anything more.
    pub async fn catch_up_all(&self) {
        let rooms: Vec<(RoomId, RoomHandle)> = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms
                .iter()
                .map(|(id, h)| (id.clone(), h.clone()))
                .collect()
        };
        for chunk in rooms.chunks(1000) {
            let names: Vec<RoomId> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let counters = match self.store.counters(&names).await {
                Ok(counters) => counters,
                Err(err) => return tracing::warn!(%err, "reading the rooms' latest numbers failed"),
            };
            let handles: HashMap<&RoomId, &RoomHandle> =
                chunk.iter().map(|(id, h)| (id, h)).collect();
            for (room, last_seq, last_eseq) in counters {
                if let Some(handle) = handles.get(&room) {
                    // A room whose queue is full is busy: the next check comes soon.
                    handle.try_send(RoomCmd::CatchUpTo {
                        last_seq,
                        last_eseq,
                    });
                }
            }
        }
    }

    /// Another node's list of who is in `room` (see [`crate::server::broker`]).
    pub async fn deliver_remote_presence(
        &self,
        room: &RoomId,
        node: u64,
        version: u64,
        people: Vec<Person>,
    ) {
        if let Some(handle) = self.existing_room(room) {
            let cmd = RoomCmd::RemotePresence {
                node,
                version,
                people,
            };
            let _ = handle.send(cmd).await;
        }
    }

    /// Publishes who this node lists in `room`, if the room is in memory here.
    pub async fn share_presence(&self, room: &RoomId) {
        if let Some(handle) = self.existing_room(room) {
            let _ = handle.send(RoomCmd::SharePresence).await;
        }
    }

    /// Publishes who this node lists in every room in memory (the periodic refresh that
    /// heals lost presence messages and tells nodes that started since).
    pub fn share_presence_all(&self) {
        self.tell_all(|| RoomCmd::SharePresence);
    }

    /// `node` is down: its people leave every room here.
    pub async fn node_down(&self, node: u64) {
        for handle in self.room_handles() {
            let _ = handle.send(RoomCmd::NodeDown { node }).await;
        }
    }

    fn room_handles(&self) -> Vec<RoomHandle> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.values().cloned().collect()
    }

    /// Sends a command to every room in memory without waiting on any: a room whose queue
    /// is full is busy, and gets the next one.
    fn tell_all(&self, cmd: impl Fn() -> RoomCmd) {
        for handle in self.room_handles() {
            handle.try_send(cmd());
        }
    }
}

/// A person known only by name (no session: tools, tests), keyed `n:<name>` so the key never
/// equals an account's (`a:`) or a guest's (`g:`).
pub fn named(name: UserName) -> Person {
    Person {
        key: AuthorKey(format!("n:{name}")),
        name,
        guest: false,
    }
}

/// Milliseconds since the Unix epoch, for message timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerMsg;
    use crate::server::broker::SingleNode;
    use crate::server::conn::{ReplayPages, REPLAY_PAGE};
    use crate::server::store::MemoryStore;
    use tungstenite::Utf8Bytes;

    /// Presence diffs at once, so tests can check exact frame order.
    fn unbatched() -> HubConfig {
        HubConfig {
            presence_batch: Duration::ZERO,
            ..HubConfig::default()
        }
    }

    fn hub(config: HubConfig) -> Arc<Hub> {
        Hub::new(
            Arc::new(MemoryStore::new(7, 10_000)),
            Arc::new(SingleNode),
            config,
        )
    }

    fn room(name: &str) -> RoomId {
        RoomId(name.to_string())
    }

    fn user(name: &str) -> UserName {
        UserName(name.to_string())
    }

    /// Everything queued for a connection once the room actors have caught up, decoded.
    ///
    /// The tests run on tokio's paused clock, where a sleep ends only once every other task
    /// is idle: when it returns, whatever the rooms were going to queue is queued, so an
    /// empty answer means nothing came (and the grace periods and presence windows the tests
    /// wait out are exact, not raced against a busy machine).
    async fn drain(rx: &mut queue::Receiver<Outbound>) -> Vec<ServerMsg> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut out = Vec::new();
        while let Some(item) = rx.try_recv() {
            let frames = match item {
                Outbound::Frame(f) => vec![f],
                Outbound::Batch(fs) => fs,
                // As the writer does: the frames, then the rest of the replay page by page.
                Outbound::Join(answer) => {
                    let mut frames = answer.frames;
                    if let Some(mut pages) = answer.pages {
                        while let Some(page) = pages.next_page().await.expect("replay") {
                            assert!(page.len() <= REPLAY_PAGE);
                            frames.extend(
                                page.into_iter()
                                    .map(|m| Utf8Bytes::from(ServerMsg::Message(m).encode())),
                            );
                        }
                    }
                    frames
                }
            };
            for f in frames {
                out.push(serde_json::from_str(f.as_str()).expect("server frames are valid JSON"));
            }
        }
        out
    }

    fn texts(frames: &[ServerMsg]) -> Vec<String> {
        frames
            .iter()
            .filter_map(|f| match f {
                ServerMsg::Message(m) => Some(m.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn fan_out_reaches_only_the_room() {
        let hub = hub(unbatched());
        let (ada, mut ada_rx) = hub.connect(user("ada"));
        let (bob, mut bob_rx) = hub.connect(user("bob"));
        let (cy, mut cy_rx) = hub.connect(user("cy"));
        hub.join(&ada, &room("x"), None, None).await.unwrap();
        hub.join(&bob, &room("x"), None, None).await.unwrap();
        hub.join(&cy, &room("y"), None, None).await.unwrap();
        drain(&mut ada_rx).await;
        drain(&mut bob_rx).await;
        drain(&mut cy_rx).await;

        hub.send(&ada, &room("x"), ClientId("c1".into()), "hello x".into())
            .await
            .unwrap();
        let ada_frames = drain(&mut ada_rx).await;
        assert!(
            matches!(&ada_frames[0], ServerMsg::Ack { seq: Seq(1), client_id, .. } if client_id.0 == "c1"),
            "the sender is acked first: {ada_frames:?}"
        );
        assert_eq!(texts(&ada_frames), vec!["hello x"]);
        assert_eq!(texts(&drain(&mut bob_rx).await), vec!["hello x"]);
        assert!(
            drain(&mut cy_rx).await.is_empty(),
            "room y must hear nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn presence_counts_people_not_tabs_and_waits_out_the_grace_period() {
        let hub = hub(HubConfig {
            presence_grace: Duration::from_millis(150),
            ..unbatched()
        });
        let (bob, mut bob_rx) = hub.connect(user("bob"));
        hub.join(&bob, &room("x"), None, None).await.unwrap();
        drain(&mut bob_rx).await;

        let (tab1, mut tab1_rx) = hub.connect(user("ada"));
        let (tab2, _tab2_rx) = hub.connect(user("ada"));
        hub.join(&tab1, &room("x"), None, None).await.unwrap();
        hub.join(&tab2, &room("x"), None, None).await.unwrap();
        let joined = drain(&mut tab1_rx).await;
        assert!(
            matches!(&joined[0], ServerMsg::Joined { online, .. } if *online == vec![user("ada"), user("bob")]),
            "a joining tab gets the full state: {joined:?}"
        );
        let diffs = drain(&mut bob_rx).await;
        assert_eq!(
            diffs,
            vec![ServerMsg::Presence {
                room: room("x"),
                joins: vec![user("ada")],
                leaves: vec![],
                arrived: vec![named(user("ada"))],
                departed: vec![],
            }],
            "two tabs announce one join"
        );

        hub.disconnect(&tab1, [room("x")]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            drain(&mut bob_rx).await.is_empty(),
            "one tab left: ada stays online"
        );
        assert_eq!(hub.online(&room("x")), 2, "ada (one tab left) and bob");

        hub.disconnect(&tab2, [room("x")]).await;
        assert!(
            drain(&mut bob_rx).await.is_empty(),
            "within the grace period nothing is announced"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            drain(&mut bob_rx).await,
            vec![ServerMsg::Presence {
                room: room("x"),
                joins: vec![],
                leaves: vec![user("ada")],
                arrived: vec![],
                departed: vec![named(user("ada"))],
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_consumer_is_resynced_while_others_keep_receiving() {
        let hub = hub(HubConfig {
            queue_frames: 4,
            ..unbatched()
        });
        let (ada, mut ada_rx) = hub.connect(user("ada"));
        let (slow, mut slow_rx) = hub.connect(user("slow"));
        let (fast, mut fast_rx) = hub.connect(user("fast"));
        for conn in [&ada, &slow, &fast] {
            hub.join(conn, &room("x"), None, None).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        drain(&mut slow_rx).await;
        drain(&mut fast_rx).await;

        // The slow connection stops reading while 20 messages go out.
        let mut fast_seen = Vec::new();
        for i in 0..20 {
            hub.send(&ada, &room("x"), ClientId(format!("m{i}")), format!("m{i}"))
                .await
                .unwrap();
            drain(&mut ada_rx).await;
            fast_seen.extend(texts(&drain(&mut fast_rx).await));
        }
        let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        assert_eq!(
            fast_seen, expected,
            "others are not held back by the slow one"
        );

        // What was queued before the queue filled, then a resync for the room.
        let queued = drain(&mut slow_rx).await;
        let seen = texts(&queued);
        assert!(seen.len() <= 4, "the queue is bounded: {seen:?}");
        assert_eq!(
            seen,
            expected[..seen.len()].to_vec(),
            "no gap inside what was queued"
        );
        assert_eq!(
            slow.lag_state().muted(),
            vec![room("x")],
            "the room is muted"
        );
        assert_eq!(
            slow.lag_state().take_resyncs(),
            vec![room("x")],
            "resync is due"
        );
        assert!(slow.lag_state().take_resyncs().is_empty(), "announced once");
        // Until the client rejoins, nothing more is queued for the room: the replay will
        // cover it, so nothing arrives twice.
        hub.send(&ada, &room("x"), ClientId("late".into()), "late".into())
            .await
            .unwrap();
        assert!(drain(&mut slow_rx).await.is_empty());

        // Rejoining from the last sequence number seen replays exactly the rest.
        hub.join(&slow, &room("x"), Some(Seq(seen.len() as u64)), Some(7))
            .await
            .unwrap();
        let replay = drain(&mut slow_rx).await;
        assert!(matches!(
            &replay[0],
            ServerMsg::Joined {
                recovered: true,
                ..
            }
        ));
        let mut all = seen.clone();
        all.extend(texts(&replay));
        let mut expected = expected;
        expected.push("late".into());
        assert_eq!(
            all, expected,
            "the slow consumer ends with every message, once"
        );
        assert!(
            slow.lag_state().muted().is_empty(),
            "rejoining unmutes the room"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_behind_by_bytes_is_resynced_and_recovers_gaplessly() {
        // 512 frames would hold all 300 messages; 16 KiB holds a few dozen of them.
        let hub = hub(HubConfig {
            queue_bytes: 16 * 1024,
            ..unbatched()
        });
        let (ada, mut ada_rx) = hub.connect(user("ada"));
        let (slow, mut slow_rx) = hub.connect(user("slow"));
        hub.join(&ada, &room("x"), None, None).await.unwrap();
        hub.join(&slow, &room("x"), None, None).await.unwrap();
        drain(&mut ada_rx).await;
        drain(&mut slow_rx).await;

        let expected: Vec<String> = (0..300)
            .map(|i| format!("{i:03} {}", "y".repeat(500)))
            .collect();
        for (i, text) in expected.iter().enumerate() {
            hub.send(&ada, &room("x"), ClientId(format!("m{i}")), text.clone())
                .await
                .unwrap();
        }
        drain(&mut ada_rx).await;
        let queued = texts(&drain(&mut slow_rx).await);
        assert!(
            !queued.is_empty() && queued.len() < 40,
            "the byte bound held the queue to a few frames: {}",
            queued.len()
        );
        assert_eq!(queued, expected[..queued.len()].to_vec(), "no gap inside");
        assert_eq!(
            slow.lag_state().take_resyncs(),
            vec![room("x")],
            "resync is due"
        );

        // The rejoin's replay (longer than the room's memory holds) is paged from the store.
        hub.join(&slow, &room("x"), Some(Seq(queued.len() as u64)), Some(7))
            .await
            .unwrap();
        hub.send(&ada, &room("x"), ClientId("late".into()), "late".into())
            .await
            .unwrap();
        let replay = drain(&mut slow_rx).await;
        assert!(
            matches!(
                &replay[0],
                ServerMsg::Joined {
                    recovered: true,
                    ..
                }
            ),
            "{:?}",
            replay[0]
        );
        let mut all = queued;
        all.extend(texts(&replay));
        let mut expected = expected;
        expected.push("late".into());
        assert_eq!(
            all, expected,
            "every message once, in order, live after replay"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejoin_while_its_answer_is_queued_is_refused_then_allowed() {
        let hub = hub(unbatched());
        let (ada, mut ada_rx) = hub.connect(user("ada"));
        hub.join(&ada, &room("x"), None, None).await.unwrap();
        for i in 0..300 {
            hub.send(&ada, &room("x"), ClientId(format!("m{i}")), format!("m{i}"))
                .await
                .unwrap();
        }
        drain(&mut ada_rx).await;
        let (late, mut late_rx) = hub.connect(user("late"));
        for _ in 0..3 {
            hub.join(&late, &room("x"), Some(Seq(0)), Some(7))
                .await
                .unwrap();
        }
        let frames = drain(&mut late_rx).await;
        let refusals = frames
            .iter()
            .filter(|f| {
                matches!(f, ServerMsg::Error { code: ErrorCode::RateLimited, room: Some(r), .. }
                    if *r == room("x"))
            })
            .count();
        assert_eq!(refusals, 2, "both early re-joins refused");
        assert_eq!(texts(&frames).len(), 300, "one replay, not three");
        assert!(!late.is_joining(&room("x")), "the answer is out");

        // Leaving and joining again is not a re-join: answered even while the first answer
        // is still queued, each answer in its place.
        hub.join(&late, &room("x"), Some(Seq(0)), Some(7))
            .await
            .unwrap();
        hub.leave(&late, &room("x")).await;
        hub.join(&late, &room("x"), Some(Seq(290)), Some(7))
            .await
            .unwrap();
        let frames = drain(&mut late_rx).await;
        let kinds: Vec<&str> = frames
            .iter()
            .filter_map(|f| match f {
                ServerMsg::Joined { .. } => Some("joined"),
                ServerMsg::Left { .. } => Some("left"),
                ServerMsg::Error { .. } => Some("error"),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, vec!["joined", "left", "joined"], "{frames:?}");
        assert_eq!(texts(&frames).len(), 300 + 10);
        assert!(!late.is_joining(&room("x")), "both answers are out");
        hub.join(&late, &room("x"), Some(Seq(300)), Some(7))
            .await
            .unwrap();
        let again = drain(&mut late_rx).await;
        assert!(
            matches!(
                &again[0],
                ServerMsg::Joined {
                    recovered: true,
                    ..
                }
            ),
            "{again:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_whose_start_retention_deleted_meanwhile_is_reported_broken() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(7, 300));
        let new = |i: usize| crate::server::store::NewMessage {
            author: user("ada"),
            author_key: AuthorKey("a:1".into()),
            client_id: ClientId(format!("m{i}")),
            text: format!("m{i}"),
            ts: 1,
        };
        store
            .append(&room("x"), (0..300).map(new).collect())
            .await
            .unwrap();
        let mut whole = ReplayPages::new(store.clone(), room("x"), Seq(0), Seq(300));
        let mut broken = ReplayPages::new(store.clone(), room("x"), Seq(0), Seq(300));
        let first = whole.next_page().await.unwrap().unwrap();
        assert_eq!(first.len(), REPLAY_PAGE);
        assert_eq!(first[0].seq, Seq(1));
        // Retention (300 a room) now deletes messages 1..=10 of the gap.
        store
            .append(&room("x"), (300..310).map(new).collect())
            .await
            .unwrap();
        assert!(
            broken.next_page().await.is_err(),
            "a hole is reported, never skipped"
        );
        let mut seqs: Vec<u64> = first.iter().map(|m| m.seq.0).collect();
        while let Some(page) = whole.next_page().await.unwrap() {
            seqs.extend(page.iter().map(|m| m.seq.0));
        }
        assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "ends at its `until`");
    }

    #[tokio::test(start_paused = true)]
    async fn resends_are_stored_once_and_acked_with_the_first_seq() {
        let hub = hub(unbatched());
        let (ada, mut ada_rx) = hub.connect(user("ada"));
        let (bob, mut bob_rx) = hub.connect(user("bob"));
        hub.join(&ada, &room("x"), None, None).await.unwrap();
        hub.join(&bob, &room("x"), None, None).await.unwrap();
        drain(&mut ada_rx).await;
        drain(&mut bob_rx).await;
        for _ in 0..2 {
            hub.send(&ada, &room("x"), ClientId("same".into()), "once".into())
                .await
                .unwrap();
        }
        let acks: Vec<_> = drain(&mut ada_rx)
            .await
            .into_iter()
            .filter_map(|f| match f {
                ServerMsg::Ack { seq, .. } => Some(seq),
                _ => None,
            })
            .collect();
        assert_eq!(acks, vec![Seq(1), Seq(1)]);
        assert_eq!(texts(&drain(&mut bob_rx).await), vec!["once"]);
    }

    #[tokio::test(start_paused = true)]
    async fn batched_presence_is_exact_for_old_members_and_mid_batch_joiners() {
        let hub = hub(HubConfig {
            presence_batch: Duration::from_millis(150),
            ..HubConfig::default()
        });
        let (bob, mut bob_rx) = hub.connect(user("bob"));
        hub.join(&bob, &room("x"), None, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        drain(&mut bob_rx).await;

        // Within one batch: ada joins, cy joins (her snapshot lists ada), ada leaves.
        let (ada, _ada_rx) = hub.connect(user("ada"));
        let (cy, mut cy_rx) = hub.connect(user("cy"));
        hub.join(&ada, &room("x"), None, None).await.unwrap();
        hub.join(&cy, &room("x"), None, None).await.unwrap();
        hub.leave(&ada, &room("x")).await;
        let cy_frames = drain(&mut cy_rx).await;
        assert!(
            matches!(&cy_frames[0], ServerMsg::Joined { online, .. }
                if *online == vec![user("ada"), user("bob"), user("cy")]),
            "{cy_frames:?}"
        );
        assert!(
            drain(&mut bob_rx).await.is_empty(),
            "nothing before the batch ends"
        );

        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            drain(&mut bob_rx).await,
            vec![ServerMsg::Presence {
                room: room("x"),
                joins: vec![user("cy")],
                leaves: vec![],
                arrived: vec![named(user("cy"))],
                departed: vec![],
            }],
            "bob never saw ada, so her visit nets out; one frame for the whole batch"
        );
        assert_eq!(
            drain(&mut cy_rx).await,
            vec![ServerMsg::Presence {
                room: room("x"),
                joins: vec![],
                leaves: vec![user("ada")],
                arrived: vec![],
                departed: vec![named(user("ada"))],
            }],
            "cy's snapshot listed ada, so cy is told she left"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_big_room_state_arrives_in_small_frames_and_adds_up() {
        let hub = hub(unbatched());
        let mut keep = Vec::new();
        for i in 0..250 {
            let (conn, rx) = hub.connect(user(&format!("u{i:03}")));
            hub.join(&conn, &room("big"), None, None).await.unwrap();
            keep.push((conn, rx));
        }
        let (me, mut rx) = hub.connect(user("zed"));
        hub.join(&me, &room("big"), None, None).await.unwrap();
        let frames = drain(&mut rx).await;
        let mut everyone = Vec::new();
        for frame in &frames {
            match frame {
                ServerMsg::Joined { online, .. } => {
                    assert!(online.len() <= 100);
                    everyone.extend(online.clone());
                }
                ServerMsg::Presence { joins, leaves, .. } => {
                    assert!(joins.len() <= 100 && leaves.is_empty());
                    everyone.extend(joins.clone());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            matches!(frames[0], ServerMsg::Joined { .. }),
            "state starts with joined"
        );
        everyone.sort();
        everyone.dedup();
        assert_eq!(
            everyone.len(),
            251,
            "every member once, the newcomer included"
        );
    }

    /// Applies a connection's presence frames to a list, as a client does; counts every join
    /// of someone already listed and every leave of someone absent (neither should happen).
    fn apply_presence(list: &mut Vec<UserName>, frames: &[ServerMsg]) -> usize {
        let mut repeats = 0;
        for frame in frames {
            match frame {
                ServerMsg::Joined { online, .. } => *list = online.clone(),
                ServerMsg::Presence { joins, leaves, .. } => {
                    for u in leaves {
                        match list.iter().position(|x| x == u) {
                            Some(i) => drop(list.remove(i)),
                            None => repeats += 1,
                        }
                    }
                    for u in joins {
                        if list.contains(u) {
                            repeats += 1;
                        } else {
                            list.push(u.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        repeats
    }

    #[tokio::test(start_paused = true)]
    async fn joiners_of_a_big_batched_room_get_the_exact_state_once() {
        // Big rooms hand joiners the state of the last flush plus the changes since; this
        // checks the sum against the truth while people come and go in one batch window.
        let hub = hub(HubConfig::default());
        let mut members = Vec::new();
        for i in 0..150 {
            let (conn, rx) = hub.connect(user(&format!("u{i:03}")));
            hub.join(&conn, &room("big"), None, None).await.unwrap();
            members.push((conn, rx));
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
        let (_stayer, mut stayer_rx) = members.pop().unwrap();
        let mut stayer_view = Vec::new();
        apply_presence(&mut stayer_view, &drain(&mut stayer_rx).await);

        // One batch window: a join (the first since the flush: it makes the snapshot), a
        // leave, a join that reuses the snapshot, another leave.
        let (zed, mut zed_rx) = hub.connect(user("zed"));
        hub.join(&zed, &room("big"), None, None).await.unwrap();
        let (first_leaver, _) = members.remove(0);
        hub.leave(&first_leaver, &room("big")).await;
        let (yan, mut yan_rx) = hub.connect(user("yan"));
        hub.join(&yan, &room("big"), None, None).await.unwrap();
        let (second_leaver, _) = members.remove(0);
        hub.leave(&second_leaver, &room("big")).await;
        tokio::time::sleep(Duration::from_millis(120)).await;

        let mut truth: Vec<UserName> = (2..150).map(|i| user(&format!("u{i:03}"))).collect();
        truth.extend([user("yan"), user("zed")]);
        truth.sort();
        for (who, rx, view) in [
            ("zed", &mut zed_rx, Vec::new()),
            ("yan", &mut yan_rx, Vec::new()),
            ("u149", &mut stayer_rx, stayer_view),
        ] {
            let mut view = view;
            let frames = drain(rx).await;
            let repeats = apply_presence(&mut view, &frames);
            view.sort();
            assert_eq!(view, truth, "{who}'s list adds up to who is online");
            assert_eq!(repeats, 0, "{who} heard no change twice: {frames:?}");
        }
    }

    /// Polls `done` until it holds, for at most 5 s.
    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never happened: {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_room_leaves_memory_and_comes_back_with_its_seq_and_epoch() {
        let hub = hub(HubConfig {
            room_idle: Duration::from_millis(100),
            ..unbatched()
        });
        let (ada, mut ada_rx) = hub.connect(user("ada"));
        hub.join(&ada, &room("quiet"), None, None).await.unwrap();
        for i in 0..3 {
            hub.send(&ada, &room("quiet"), ClientId(format!("m{i}")), "hi".into())
                .await
                .unwrap();
        }
        let before = drain(&mut ada_rx).await;
        let epoch = match &before[0] {
            ServerMsg::Joined { epoch, .. } => *epoch,
            other => panic!("{other:?}"),
        };
        // A member keeps the room in memory however quiet it is.
        hub.join(&ada, &room("busy"), None, None).await.unwrap();
        hub.leave(&ada, &room("quiet")).await;
        eventually("the quiet room leaves memory", || {
            hub.rooms_in_memory() == 1
        })
        .await;

        let (bob, mut bob_rx) = hub.connect(user("bob"));
        hub.join(&bob, &room("quiet"), None, None).await.unwrap();
        assert_eq!(hub.rooms_in_memory(), 2, "it comes back on demand");
        hub.send(&bob, &room("quiet"), ClientId("b".into()), "back".into())
            .await
            .unwrap();
        let after = drain(&mut bob_rx).await;
        assert!(
            matches!(&after[0], ServerMsg::Joined { last_seq: Seq(3), epoch: e, .. } if *e == epoch),
            "same sequence numbers and epoch: {after:?}"
        );
        assert!(
            after
                .iter()
                .any(|f| matches!(f, ServerMsg::Ack { seq: Seq(4), .. })),
            "the next message is last + 1: {after:?}"
        );
        assert_eq!(hub.rooms_in_memory(), 2, "busy has a member, quiet has bob");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_epoch_is_told_to_reload() {
        let hub = hub(unbatched());
        let (ada, mut ada_rx) = hub.connect(user("ada"));
        hub.join(&ada, &room("x"), Some(Seq(3)), Some(6))
            .await
            .unwrap();
        let frames = drain(&mut ada_rx).await;
        assert!(
            matches!(
                &frames[0],
                ServerMsg::Joined {
                    recovered: false,
                    epoch: 7,
                    ..
                }
            ),
            "{frames:?}"
        );
    }

    /// A broker that keeps what it is given, for a test to deliver as it likes.
    #[derive(Default)]
    struct Recorder {
        messages: std::sync::Mutex<Vec<ChatMessage>>,
        changes: std::sync::Mutex<Vec<Change>>,
    }

    impl Broker for Recorder {
        fn publish(&self, msg: &ChatMessage, _frame: &Utf8Bytes) {
            self.messages.lock().unwrap().push(msg.clone());
        }
        fn publish_change(&self, change: &Change) {
            self.changes.lock().unwrap().push(change.clone());
        }
    }

    /// What a broker that loses, repeats and reorders makes of `sent` in `round`: every
    /// third lost, every fourth twice, pairs swapped, and in odd rounds the last three lost
    /// with nothing after them to show it.
    fn mangled<T: Clone>(sent: Vec<T>, round: usize) -> Vec<T> {
        let mut out: Vec<T> = sent
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !(i + round).is_multiple_of(3))
            .flat_map(|(i, m)| vec![m; if i.is_multiple_of(4) { 2 } else { 1 }])
            .collect();
        for pair in out.chunks_mut(2) {
            pair.reverse();
        }
        if !round.is_multiple_of(2) {
            out.truncate(out.len().saturating_sub(3));
        }
        out
    }

    /// The sequence numbers of the messages among `frames`.
    fn seqs(frames: &[ServerMsg]) -> Vec<u64> {
        frames
            .iter()
            .filter_map(|f| match f {
                ServerMsg::Message(m) => Some(m.seq.0),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_shows_another_nodes_messages_once_and_in_order_whatever_the_broker_does() {
        // Two nodes on one store; node A's broker hands its messages to the test, which
        // brings them to node B dropped, repeated and out of order.
        let store = Arc::new(MemoryStore::new(7, 10_000));
        let broker = Arc::new(Recorder::default());
        let a = Hub::new(store.clone(), broker.clone(), unbatched());
        let b = Hub::new(store, Arc::new(SingleNode), unbatched());
        let (reader, mut reader_rx) = b.connect(user("reader"));
        b.join(&reader, &room("x"), None, None).await.unwrap();
        let (writer, _writer_rx) = a.connect(user("writer"));
        a.join(&writer, &room("x"), None, None).await.unwrap();
        drain(&mut reader_rx).await;

        let mut shown = Vec::new();
        let mut next = 1u64;
        for round in 0..6u64 {
            for i in 0..10 {
                let id = ClientId(format!("m{round}-{i}"));
                a.send(&writer, &room("x"), id, format!("{round}.{i}"))
                    .await
                    .unwrap();
            }
            drain(&mut reader_rx).await;
            let sent = std::mem::take(&mut *broker.messages.lock().unwrap());
            for msg in mangled(sent, round as usize) {
                b.deliver_remote(msg, None).await;
            }
            // The periodic check, which needs no broker message.
            b.catch_up(&room("x")).await;
            let got = seqs(&drain(&mut reader_rx).await);
            assert_eq!(got, (next..next + 10).collect::<Vec<_>>(), "round {round}");
            next += 10;
            shown.extend(got);
        }
        assert_eq!(shown, (1..=60).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_applies_another_nodes_changes_once_and_in_order_whatever_the_broker_does() {
        let store = Arc::new(MemoryStore::new(7, 10_000));
        let broker = Arc::new(Recorder::default());
        let a = Hub::new(store.clone(), broker.clone(), unbatched());
        let b = Hub::new(store, Arc::new(SingleNode), unbatched());
        let writer = named(user("writer"));
        for i in 1..=3 {
            a.post(
                user("writer"),
                &room("x"),
                ClientId(format!("m{i}")),
                format!("m{i}"),
            )
            .await
            .unwrap();
        }
        let (reader, mut reader_rx) = b.connect(user("reader"));
        b.join(&reader, &room("x"), None, None).await.unwrap();
        drain(&mut reader_rx).await;

        let mut shown = Vec::new();
        for round in 0..4usize {
            for i in 0..10u64 {
                let change = NewChange {
                    seq: Seq(1 + i % 3),
                    by: writer.clone(),
                    kind: crate::protocol::ChangeKind::Edit,
                    text: Some(format!("edit {round}.{i}")),
                    emoji: None,
                    on: false,
                    ts: 0,
                };
                let done = a.change_as(&room("x"), change).await.unwrap();
                assert!(matches!(done, crate::server::store::Changed::Done(_)));
            }
            let sent = std::mem::take(&mut *broker.changes.lock().unwrap());
            for change in mangled(sent, round) {
                b.deliver_remote_change(change).await;
            }
            b.catch_up(&room("x")).await;
            let got: Vec<u64> = drain(&mut reader_rx)
                .await
                .iter()
                .filter_map(|f| match f {
                    ServerMsg::Change(c) => Some(c.eseq.0),
                    _ => None,
                })
                .collect();
            let first = round as u64 * 10 + 1;
            assert_eq!(
                got,
                (first..first + 10).collect::<Vec<_>>(),
                "round {round}"
            );
            shown.extend(got);
        }
        assert_eq!(shown, (1..=40).collect::<Vec<_>>());
    }
}
