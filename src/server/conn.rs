//! One connection as the rooms see it: the handle every room it joined holds, what its
//! writer is given to send ([`Outbound`]), and which rooms it lags in ([`LagState`]).
//!
//! Delivering never waits: a frame goes into the connection's bounded queue (`queue.rs`) or,
//! when the queue is full, the room is muted for the connection until it joins again, and
//! its writer sends `resync` once it has drained what was queued. A join's answer carries
//! the replay a page at a time ([`ReplayPages`]), read by the writer as the socket takes it,
//! and marks the room as joining for as long as it is alive.

use crate::protocol::{ChatMessage, Person, RoomId, Seq};
use crate::server::presence::ConnId;
use crate::server::queue::{self, Weigh};
use crate::server::store::{Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tungstenite::Utf8Bytes;

/// What the writer of one connection sends, in order.
#[derive(Debug)]
pub enum Outbound {
    Frame(Utf8Bytes),
    /// Frames that must stay together (a presence diff in several frames).
    Batch(Vec<Utf8Bytes>),
    /// A join's answer: `joined`, the presence state, the replay. Boxed: it is rare, and
    /// inline it would size every queued frame (and every writer's state) at its size.
    Join(Box<JoinAnswer>),
}

impl Weigh for Outbound {
    fn weight(&self) -> usize {
        match self {
            Outbound::Frame(frame) => frame.len(),
            Outbound::Batch(frames) => frames.iter().map(|f| f.len()).sum(),
            Outbound::Join(answer) => answer.frames.iter().map(|f| f.len()).sum::<usize>() + 1,
        }
    }
}

/// Messages a replay reads from the store at a time, and the most a join answer carries
/// inline from the room's in-memory tail.
pub const REPLAY_PAGE: usize = 128;

/// A join's answer as queued: frames ready to write, then, for a gap longer than
/// [`REPLAY_PAGE`], a cursor the writer reads the rest through.
///
/// While it exists the connection's next join of the room is refused: it marks the room as
/// joining in the connection's [`LagState`] and clears the mark when dropped (written, or
/// thrown away with a full or closed queue).
#[derive(Debug)]
pub struct JoinAnswer {
    /// `joined`, presence frames and any messages replayed from memory, in order.
    pub frames: Vec<Utf8Bytes>,
    /// The rest of the replay, to be read from the store by the writer.
    pub pages: Option<ReplayPages>,
    _pending: PendingJoin,
}

/// Messages `after < seq <= until` of one room, read from the store a page at a time.
pub struct ReplayPages {
    store: Arc<dyn Store>,
    room: RoomId,
    after: Seq,
    until: Seq,
}

impl std::fmt::Debug for ReplayPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayPages")
            .field("room", &self.room)
            .field("after", &self.after)
            .field("until", &self.until)
            .finish()
    }
}

/// The store no longer holds part of a replay it held at the join (retention deleted it
/// meanwhile), or failed: the replay cannot be completed on this connection.
#[derive(Debug, thiserror::Error)]
#[error("the replay of #{0} could not be completed")]
pub struct ReplayBroken(pub RoomId);

impl ReplayPages {
    pub(crate) fn new(store: Arc<dyn Store>, room: RoomId, after: Seq, until: Seq) -> Self {
        ReplayPages {
            store,
            room,
            after,
            until,
        }
    }

    /// The next page (at most [`REPLAY_PAGE`] messages, in order, with no gap), or `None`
    /// once the replay is complete.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ChatMessage>>, ReplayBroken> {
        if self.after >= self.until {
            return Ok(None);
        }
        let want = ((self.until.0 - self.after.0) as usize).min(REPLAY_PAGE);
        let mut page = read_page(&*self.store, &self.room, self.after, want)
            .await
            .map_err(|err| {
                tracing::error!(room = %self.room, %err, "replay: reading a page failed");
                ReplayBroken(self.room.clone())
            })?;
        page.truncate(want);
        if page.len() != want || page.first().map(|m| m.seq) != Some(Seq(self.after.0 + 1)) {
            return Err(ReplayBroken(self.room.clone()));
        }
        self.after = Seq(self.after.0 + want as u64);
        Ok(Some(page))
    }
}

/// Up to `limit` messages right after `after`, oldest first. Sequence numbers are dense
/// per room, so the newest `limit` before `after + limit + 1` are exactly those that exist
/// of `after + 1 ..= after + limit`.
pub(crate) async fn read_page(
    store: &dyn Store,
    room: &RoomId,
    after: Seq,
    limit: usize,
) -> Result<Vec<ChatMessage>, StoreError> {
    let before = Seq(after.0.saturating_add(limit as u64).saturating_add(1));
    let mut page = store.latest(room, Some(before), limit).await?;
    page.retain(|m| m.seq > after);
    Ok(page)
}

/// Marks a room as joining on a connection for as long as its join answer is alive.
struct PendingJoin {
    lag: Arc<LagState>,
    room: RoomId,
}

impl std::fmt::Debug for PendingJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PendingJoin").field(&self.room).finish()
    }
}

impl Drop for PendingJoin {
    fn drop(&mut self) {
        let mut rooms = self.lag.lock();
        if let Some(at) = rooms.joining.iter().position(|r| *r == self.room) {
            rooms.joining.swap_remove(at);
        }
    }
}

/// The hub's side of one connection: cheap to clone, held by every room it joined.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: ConnId,
    /// Who is connected: presence and the messages they send go by its key. Shared with
    /// the presence of every room the connection joined.
    pub person: Arc<Person>,
    tx: queue::Sender<Outbound>,
    lag: Arc<LagState>,
}

/// Tracks rooms whose frames a connection missed because its queue was full.
///
/// A lagged room stays *muted* for the connection (nothing more is queued for it) until the
/// connection joins it again: the join's replay then covers everything from the client's
/// last sequence number, so replay and live frames never overlap and nothing repeats.
#[derive(Default)]
pub struct LagState {
    /// Fast path: false means no room is muted, checked without the lock.
    any: AtomicBool,
    inner: Mutex<LagRooms>,
}

#[derive(Default)]
struct LagRooms {
    /// Rooms whose frames are being dropped until the connection rejoins.
    muted: Vec<RoomId>,
    /// Muted rooms the client has not been told about yet.
    unannounced: Vec<RoomId>,
    /// Rooms whose join answer is queued or being written, once per answer.
    joining: Vec<RoomId>,
}

impl LagState {
    fn lock(&self) -> std::sync::MutexGuard<'_, LagRooms> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rooms to send `resync` for now; they stay muted until rejoined.
    pub fn take_resyncs(&self) -> Vec<RoomId> {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut self.lock().unannounced)
    }

    /// Rooms currently muted, for tests and diagnostics.
    pub fn muted(&self) -> Vec<RoomId> {
        self.lock().muted.clone()
    }

    /// The connection is joining `room` again: queue its frames from now on.
    pub fn unmute(&self, room: &RoomId) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut rooms = self.lock();
        rooms.muted.retain(|r| r != room);
        rooms.unannounced.retain(|r| r != room);
        self.any.store(!rooms.muted.is_empty(), Ordering::Release);
    }

    fn mute(&self, room: &RoomId) {
        let mut rooms = self.lock();
        if !rooms.muted.contains(room) {
            rooms.muted.push(room.clone());
            rooms.unannounced.push(room.clone());
        }
        self.any.store(true, Ordering::Release);
    }

    fn is_muted(&self, room: &RoomId) -> bool {
        self.any.load(Ordering::Acquire) && self.lock().muted.contains(room)
    }
}

impl ConnHandle {
    pub(crate) fn new(id: ConnId, person: Person, tx: queue::Sender<Outbound>) -> Self {
        ConnHandle {
            id,
            person: Arc::new(person),
            tx,
            lag: Arc::new(LagState::default()),
        }
    }
    /// Queues a frame for this connection without ever waiting. A full queue mutes `room`
    /// for this connection (see [`LagState`]); the writer sends `resync` once it has drained
    /// what was queued, and the client's rejoin replays the gap.
    pub fn deliver(&self, room: &RoomId, item: Outbound) {
        if self.lag.is_muted(room) {
            return;
        }
        match self.tx.try_send(item) {
            Ok(()) => {}
            // Frames that belong to no room (pongs, connection errors) are not worth a
            // resync; they are simply not sent.
            Err(queue::TrySendError::Full) if room.0.is_empty() => {}
            Err(queue::TrySendError::Full) => self.lag.mute(room),
            // The connection is closing; its rooms hear about it from `disconnect`.
            Err(queue::TrySendError::Closed) => {}
        }
    }

    /// Queues a frame that is only worth sending now (someone is typing): skipped for a room
    /// this connection is behind in, and dropped rather than resynced when the queue is full.
    pub fn deliver_ephemeral(&self, room: &RoomId, frame: Utf8Bytes) {
        if !self.lag.is_muted(room) {
            let _ = self.tx.try_send(Outbound::Frame(frame));
        }
    }

    pub fn lag_state(&self) -> Arc<LagState> {
        self.lag.clone()
    }

    /// Queues a join's answer, marking the room as joining until the answer has been written
    /// or thrown away. A full queue mutes the room as for any frame, so the client gets
    /// `resync` and joins again.
    pub fn deliver_join(&self, room: &RoomId, frames: Vec<Utf8Bytes>, pages: Option<ReplayPages>) {
        self.lag.lock().joining.push(room.clone());
        let answer = JoinAnswer {
            frames,
            pages,
            _pending: PendingJoin {
                lag: self.lag.clone(),
                room: room.clone(),
            },
        };
        self.deliver(room, Outbound::Join(Box::new(answer)));
    }

    /// Whether a join answer for `room` is still queued or being written.
    pub fn is_joining(&self, room: &RoomId) -> bool {
        self.lag.lock().joining.contains(room)
    }
}
