//! Message and room persistence behind one small trait, so the embedded default and a
//! distributed database plug into the hub the same way.
//!
//! The store owns sequence numbers: `append` assigns each room's next `Seq` and deduplicates
//! on (author key, client id) — the person, not the display name — so a resend after a reconnect is stored once and answered with the
//! original sequence number. Room actors call it with batches (group commit).
//!
//! [`sql::SqlStore`] keeps history in SQL: the embedded default is one SQLite file under the
//! data directory; several nodes share one PostgreSQL database.
//! [`MemoryStore`] keeps a bounded window per room in process memory. Its epoch is chosen at
//! start-up, so clients that survive a restart learn that their `since` is from another
//! history and reload instead of trusting a gap.

pub mod sql;

use crate::protocol::{
    AuthorKey, Change, ChangeKind, ChatMessage, ClientId, Person, RoomId, Seq, UserName,
};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing database failed; the hub answers `internal` and keeps serving.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A message accepted by the hub, before it has a sequence number.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The name shown with the message, kept as it was when it was written.
    pub author: UserName,
    /// Who wrote it ([`AuthorKey`]): what de-duplication goes by, and (`g:`) whether the
    /// message shows as a guest's.
    pub author_key: AuthorKey,
    pub client_id: ClientId,
    pub text: String,
    pub ts: u64,
}

impl NewMessage {
    /// The message as stored in `room` under `seq`.
    pub fn stored(self, room: &RoomId, seq: Seq) -> ChatMessage {
        ChatMessage {
            room: room.clone(),
            seq,
            author: self.author,
            rich: crate::format::rich(&self.text),
            text: self.text,
            client_id: self.client_id,
            ts: self.ts,
            guest: self.author_key.is_guest(),
            key: self.author_key,
            ..Default::default()
        }
    }
}

/// A change someone asks for (an edit, deletion or reaction), before it has an `eseq`.
#[derive(Clone, Debug)]
pub struct NewChange {
    /// The message it changes.
    pub seq: Seq,
    pub by: Person,
    pub kind: ChangeKind,
    /// Edit: the new text (already checked like a message's).
    pub text: Option<String>,
    /// React: the emoji (one of [`crate::protocol::REACTIONS`]) and whether it is now on.
    pub emoji: Option<String>,
    pub on: bool,
    pub ts: u64,
}

/// The outcome of a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Stored now under the next `eseq`, and folded into the message; fan it out.
    Done(Change),
    /// The message already shows it (the same text, a reaction already on or off).
    Unchanged,
    /// No such message (or deleted): nothing to change.
    NotFound,
    /// Only a message's author may edit or delete it.
    NotAuthor,
}

/// What a change does to `msg` (whose author has `author`), as the store's transaction
/// decides it: the change to store, or why none is. Both stores fold changes through this.
pub fn decide(msg: &mut ChatMessage, author: &AuthorKey, new: &NewChange) -> Changed {
    if msg.deleted {
        return Changed::NotFound;
    }
    let own = *author == new.by.key;
    let (room, seq) = (msg.room.clone(), msg.seq);
    let change = |text: Option<String>, emoji: Option<String>, by: Option<Person>| Change {
        room: room.clone(),
        eseq: Seq(0),
        seq,
        kind: new.kind,
        rich: text.as_deref().and_then(crate::format::rich),
        text,
        emoji,
        on: by.as_ref().map(|_| new.on),
        by,
        ts: new.ts,
    };
    let done = match new.kind {
        ChangeKind::Edit | ChangeKind::Delete if !own => return Changed::NotAuthor,
        ChangeKind::Edit => match &new.text {
            Some(text) if *text != msg.text => change(Some(text.clone()), None, None),
            _ => return Changed::Unchanged,
        },
        ChangeKind::Delete => change(None, None, None),
        ChangeKind::React => {
            let Some(emoji) = &new.emoji else {
                return Changed::Unchanged;
            };
            if !msg.react(emoji, &new.by, new.on) {
                return Changed::Unchanged;
            }
            change(None, Some(emoji.clone()), Some(new.by.clone()))
        }
    };
    msg.apply(&done);
    Changed::Done(done)
}

/// The outcome of appending one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored now; fan it out.
    Stored(ChatMessage),
    /// The same (author key, client id) was stored earlier under this sequence number.
    Duplicate(Seq),
}

/// What `since` could serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Every message after the asked-for sequence number, in order.
    Complete(Vec<ChatMessage>),
    /// The gap cannot be filled (older than retention, or another epoch).
    Gap,
}

/// A room's latest sequence number and latest change number (`last_seq`, `last_eseq`).
pub type Counters = (RoomId, Seq, Seq);

pub trait Store: Send + Sync + 'static {
    /// Identifies this history; changes when the history is reset.
    fn epoch(&self) -> u64;
    /// Most messages kept per room, if retention deletes older ones. Caches in front of the
    /// store must not keep more, or they would replay what the store has deleted.
    fn retained_per_room(&self) -> Option<usize> {
        None
    }
    /// Creates a room if it does not exist; true when it was created now.
    fn create_room<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn room_exists<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn list_rooms(&self) -> BoxFuture<'_, Result<Vec<RoomId>, StoreError>>;
    /// Up to `limit` rooms, most recently active (a message, or its creation) first, after
    /// skipping `offset`: what one page of the room list shows.
    fn rooms_by_activity(
        &self,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RoomId>, StoreError>> {
        Box::pin(async move {
            let all = self.list_rooms().await?;
            Ok(all.into_iter().skip(offset).take(limit).collect())
        })
    }
    /// Stores a batch for one room atomically, in order, creating the room if needed.
    fn append<'a>(
        &'a self,
        room: &'a RoomId,
        batch: Vec<NewMessage>,
    ) -> BoxFuture<'a, Result<Vec<Appended>, StoreError>>;
    /// Messages after `after`, at most `limit` (more than that is a [`Replay::Gap`]).
    fn since<'a>(
        &'a self,
        room: &'a RoomId,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, StoreError>>;
    /// The newest `limit` messages before `before` (or the newest overall), oldest first.
    fn latest<'a>(
        &'a self,
        room: &'a RoomId,
        before: Option<Seq>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>>;
    fn last_seq<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Seq, StoreError>>;
    /// How far `reader` has read, per room it has read in.
    fn read_marks<'a>(
        &'a self,
        reader: &'a AuthorKey,
    ) -> BoxFuture<'a, Result<Vec<(RoomId, Seq)>, StoreError>>;
    /// Raises read marks (a mark is never lowered), in one transaction.
    fn save_read_marks<'a>(
        &'a self,
        marks: &'a [(AuthorKey, RoomId, Seq)],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Stores a change under the room's next `eseq` and folds it into its message, in one
    /// transaction (see [`decide`]).
    fn change<'a>(
        &'a self,
        room: &'a RoomId,
        change: NewChange,
    ) -> BoxFuture<'a, Result<Changed, StoreError>>;
    /// The room's changes after `after`, at most `limit`; `None` when they cannot all be
    /// served (more than `limit`, or deleted by retention).
    fn changes_since<'a>(
        &'a self,
        room: &'a RoomId,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Change>>, StoreError>>;
    /// The room's latest change number (0: none yet).
    fn last_eseq<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Seq, StoreError>>;
    /// `last_seq` and `last_eseq` of each of `rooms` that exists, read together where the
    /// store can (the periodic check of every room in memory on a node of several).
    fn counters<'a>(
        &'a self,
        rooms: &'a [RoomId],
    ) -> BoxFuture<'a, Result<Vec<Counters>, StoreError>> {
        Box::pin(counters_one_by_one(self, rooms))
    }
}

/// [`Store::counters`] for a store that reads them room by room.
async fn counters_one_by_one<S: Store + ?Sized>(
    store: &S,
    rooms: &[RoomId],
) -> Result<Vec<Counters>, StoreError> {
    let mut out = Vec::with_capacity(rooms.len());
    for room in rooms {
        out.push((
            room.clone(),
            store.last_seq(room).await?,
            store.last_eseq(room).await?,
        ));
    }
    Ok(out)
}

/// Most readers whose marks [`MemoryStore`] keeps.
pub const MEMORY_READERS: usize = 100_000;

/// In-process store: a bounded window of recent messages per room, and the read marks of
/// at most [`MEMORY_READERS`] readers.
pub struct MemoryStore {
    epoch: u64,
    retain: usize,
    rooms: Mutex<HashMap<RoomId, MemRoom>>,
    read_marks: Mutex<HashMap<AuthorKey, HashMap<RoomId, Seq>>>,
}

#[derive(Default)]
struct MemRoom {
    /// When it last had a message or was created (ms since the Unix epoch).
    last_active: u64,
    last_seq: Seq,
    messages: VecDeque<ChatMessage>,
    /// The author key of each message in `messages`, in step with it.
    authors: VecDeque<AuthorKey>,
    by_client: HashMap<(AuthorKey, ClientId), Seq>,
    last_eseq: Seq,
    /// The latest changes, at most as many as messages are retained.
    changes: VecDeque<Change>,
}

impl MemoryStore {
    /// `retain` bounds the messages kept per room; older ones are forgotten.
    pub fn new(epoch: u64, retain: usize) -> Self {
        MemoryStore {
            epoch,
            retain: retain.max(1),
            rooms: Mutex::new(HashMap::new()),
            read_marks: Mutex::new(HashMap::new()),
        }
    }

    fn with_rooms<T>(&self, f: impl FnOnce(&mut HashMap<RoomId, MemRoom>) -> T) -> T {
        // A panic while holding this lock cannot leave a room half-updated in a way that
        // matters more than losing the process, so recover the guard instead of cascading.
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rooms)
    }
}

impl Store for MemoryStore {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn retained_per_room(&self) -> Option<usize> {
        Some(self.retain)
    }

    fn create_room<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<bool, StoreError>> {
        let created = self.with_rooms(|rooms| {
            if rooms.contains_key(room) {
                false
            } else {
                rooms.insert(
                    room.clone(),
                    MemRoom {
                        last_active: crate::server::hub::now_ms(),
                        ..MemRoom::default()
                    },
                );
                true
            }
        });
        Box::pin(async move { Ok(created) })
    }

    fn room_exists<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<bool, StoreError>> {
        let exists = self.with_rooms(|rooms| rooms.contains_key(room));
        Box::pin(async move { Ok(exists) })
    }

    fn list_rooms(&self) -> BoxFuture<'_, Result<Vec<RoomId>, StoreError>> {
        let mut list: Vec<RoomId> = self.with_rooms(|rooms| rooms.keys().cloned().collect());
        list.sort();
        Box::pin(async move { Ok(list) })
    }

    fn rooms_by_activity(
        &self,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RoomId>, StoreError>> {
        let mut all: Vec<(u64, RoomId)> = self.with_rooms(|rooms| {
            rooms
                .iter()
                .map(|(id, r)| (r.last_active, id.clone()))
                .collect()
        });
        all.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let page = all
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(_, id)| id)
            .collect();
        Box::pin(async move { Ok(page) })
    }

    fn append<'a>(
        &'a self,
        room: &'a RoomId,
        batch: Vec<NewMessage>,
    ) -> BoxFuture<'a, Result<Vec<Appended>, StoreError>> {
        let retain = self.retain;
        let out = self.with_rooms(|rooms| {
            let state = rooms.entry(room.clone()).or_default();
            state.last_active = crate::server::hub::now_ms();
            let mut out = Vec::with_capacity(batch.len());
            for new in batch {
                let key = (new.author_key.clone(), new.client_id.clone());
                if let Some(seq) = state.by_client.get(&key) {
                    out.push(Appended::Duplicate(*seq));
                    continue;
                }
                state.last_seq = Seq(state.last_seq.0 + 1);
                let author = new.author_key.clone();
                let msg = new.stored(room, state.last_seq);
                state.by_client.insert(key, msg.seq);
                state.messages.push_back(msg.clone());
                state.authors.push_back(author);
                while state.messages.len() > retain {
                    if let (Some(old), Some(author)) =
                        (state.messages.pop_front(), state.authors.pop_front())
                    {
                        state.by_client.remove(&(author, old.client_id));
                    }
                }
                out.push(Appended::Stored(msg));
            }
            out
        });
        Box::pin(async move { Ok(out) })
    }

    fn since<'a>(
        &'a self,
        room: &'a RoomId,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, StoreError>> {
        let replay = self.with_rooms(|rooms| {
            let Some(state) = rooms.get(room) else {
                return if after.0 == 0 {
                    Replay::Complete(Vec::new())
                } else {
                    Replay::Gap
                };
            };
            if after > state.last_seq {
                return Replay::Gap;
            }
            let missing = (state.last_seq.0 - after.0) as usize;
            let oldest_kept = state
                .messages
                .front()
                .map_or(state.last_seq.0 + 1, |m| m.seq.0);
            if missing > limit || (missing > 0 && after.0 + 1 < oldest_kept) {
                return Replay::Gap;
            }
            Replay::Complete(
                state
                    .messages
                    .iter()
                    .filter(|m| m.seq > after)
                    .cloned()
                    .collect(),
            )
        });
        Box::pin(async move { Ok(replay) })
    }

    fn latest<'a>(
        &'a self,
        room: &'a RoomId,
        before: Option<Seq>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>> {
        let list = self.with_rooms(|rooms| {
            let Some(state) = rooms.get(room) else {
                return Vec::new();
            };
            let older: Vec<&ChatMessage> = state
                .messages
                .iter()
                .filter(|m| before.is_none_or(|b| m.seq < b))
                .collect();
            let skip = older.len().saturating_sub(limit);
            older.into_iter().skip(skip).cloned().collect()
        });
        Box::pin(async move { Ok(list) })
    }

    fn last_seq<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Seq, StoreError>> {
        let seq = self.with_rooms(|rooms| rooms.get(room).map_or(Seq(0), |r| r.last_seq));
        Box::pin(async move { Ok(seq) })
    }

    fn read_marks<'a>(
        &'a self,
        reader: &'a AuthorKey,
    ) -> BoxFuture<'a, Result<Vec<(RoomId, Seq)>, StoreError>> {
        let marks = self.read_marks.lock().unwrap_or_else(|p| p.into_inner());
        let list = marks
            .get(reader)
            .map(|rooms| rooms.iter().map(|(r, s)| (r.clone(), *s)).collect())
            .unwrap_or_default();
        Box::pin(async move { Ok(list) })
    }

    fn save_read_marks<'a>(
        &'a self,
        marks: &'a [(AuthorKey, RoomId, Seq)],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut all = self.read_marks.lock().unwrap_or_else(|p| p.into_inner());
        for (reader, room, seq) in marks {
            if all.len() >= MEMORY_READERS && !all.contains_key(reader) {
                // Memory forgets everything at a restart anyway; a forgotten reader's rooms
                // only show as unread again.
                if let Some(gone) = all.keys().next().cloned() {
                    all.remove(&gone);
                }
            }
            let mark = all
                .entry(reader.clone())
                .or_default()
                .entry(room.clone())
                .or_default();
            *mark = (*mark).max(*seq);
        }
        Box::pin(async { Ok(()) })
    }

    fn change<'a>(
        &'a self,
        room: &'a RoomId,
        change: NewChange,
    ) -> BoxFuture<'a, Result<Changed, StoreError>> {
        let retain = self.retain;
        let out = self.with_rooms(|rooms| {
            let Some(state) = rooms.get_mut(room) else {
                return Changed::NotFound;
            };
            let Some(first) = state.messages.front().map(|m| m.seq.0) else {
                return Changed::NotFound;
            };
            let Some(at) = change.seq.0.checked_sub(first).map(|i| i as usize) else {
                return Changed::NotFound;
            };
            let (Some(msg), Some(author)) = (state.messages.get_mut(at), state.authors.get(at))
            else {
                return Changed::NotFound;
            };
            let mut out = decide(msg, author, &change);
            if let Changed::Done(done) = &mut out {
                state.last_eseq = Seq(state.last_eseq.0 + 1);
                done.eseq = state.last_eseq;
                if done.kind == ChangeKind::Delete {
                    for old in state.changes.iter_mut().filter(|c| c.seq == done.seq) {
                        old.text = None;
                        old.rich = None;
                    }
                }
                state.changes.push_back(done.clone());
                while state.changes.len() > retain {
                    state.changes.pop_front();
                }
            }
            out
        });
        Box::pin(async move { Ok(out) })
    }

    fn changes_since<'a>(
        &'a self,
        room: &'a RoomId,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Change>>, StoreError>> {
        let out = self.with_rooms(|rooms| {
            let Some(state) = rooms.get(room) else {
                return (after.0 == 0).then(Vec::new);
            };
            let missing = state.last_eseq.0.checked_sub(after.0)? as usize;
            let oldest = state
                .changes
                .front()
                .map_or(state.last_eseq.0 + 1, |c| c.eseq.0);
            if missing > limit || (missing > 0 && after.0 + 1 < oldest) {
                return None;
            }
            Some(
                state
                    .changes
                    .iter()
                    .filter(|c| c.eseq > after)
                    .cloned()
                    .collect(),
            )
        });
        Box::pin(async move { Ok(out) })
    }

    fn last_eseq<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Seq, StoreError>> {
        let seq = self.with_rooms(|rooms| rooms.get(room).map_or(Seq(0), |r| r.last_eseq));
        Box::pin(async move { Ok(seq) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_msg(author: &str, id: &str) -> NewMessage {
        NewMessage {
            author: UserName(author.into()),
            author_key: AuthorKey(format!("a:{author}")),
            client_id: ClientId(id.into()),
            text: format!("text {id}"),
            ts: 1,
        }
    }

    fn block<T>(f: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn sequences_are_per_room_and_duplicates_keep_their_seq() {
        let store = MemoryStore::new(1, 100);
        let a = RoomId("a".into());
        let b = RoomId("b".into());
        let out = block(store.append(&a, vec![new_msg("ada", "1"), new_msg("ada", "2")])).unwrap();
        assert!(matches!(&out[1], Appended::Stored(m) if m.seq == Seq(2)));
        let out = block(store.append(&b, vec![new_msg("ada", "1")])).unwrap();
        assert!(matches!(&out[0], Appended::Stored(m) if m.seq == Seq(1)));
        let out = block(store.append(&a, vec![new_msg("ada", "1"), new_msg("bob", "1")])).unwrap();
        assert_eq!(out[0], Appended::Duplicate(Seq(1)));
        assert!(matches!(&out[1], Appended::Stored(m) if m.seq == Seq(3)));
    }

    #[test]
    fn rooms_are_listed_most_recently_active_first_a_page_at_a_time() {
        let store = MemoryStore::new(1, 100);
        let room = |n: &str| RoomId(n.to_string());
        for name in ["a", "b", "c"] {
            block(store.create_room(&room(name))).unwrap();
            let now = crate::server::hub::now_ms();
            while crate::server::hub::now_ms() == now {
                std::hint::spin_loop();
            }
        }
        block(store.append(&room("a"), vec![new_msg("ada", "1")])).unwrap();
        let names = |list: Vec<RoomId>| list.into_iter().map(|r| r.0).collect::<Vec<_>>();
        let page = |offset, limit| names(block(store.rooms_by_activity(offset, limit)).unwrap());
        assert_eq!(page(0, 10), ["a", "c", "b"]);
        assert_eq!(page(1, 1), ["c"]);
        assert!(page(3, 10).is_empty());
    }

    #[test]
    fn memory_keeps_a_bounded_number_of_readers_marks() {
        let store = MemoryStore::new(1, 5);
        let room = RoomId("r".into());
        let marks: Vec<_> = (0..MEMORY_READERS + 10)
            .map(|i| (AuthorKey(format!("g:{i}")), room.clone(), Seq(3)))
            .collect();
        block(store.save_read_marks(&marks)).unwrap();
        let kept = store.read_marks.lock().unwrap().len();
        assert_eq!(kept, MEMORY_READERS);
        let newest = AuthorKey(format!("g:{}", MEMORY_READERS + 9));
        assert_eq!(block(store.read_marks(&newest)).unwrap(), [(room, Seq(3))]);
    }

    #[test]
    fn since_replays_in_order_or_reports_a_gap() {
        let store = MemoryStore::new(1, 5);
        let room = RoomId("r".into());
        let batch = (0..8).map(|i| new_msg("ada", &i.to_string())).collect();
        block(store.append(&room, batch)).unwrap();
        // Messages 4..=8 are retained.
        let Replay::Complete(tail) = block(store.since(&room, Seq(5), 100)).unwrap() else {
            panic!("expected a replay");
        };
        assert_eq!(
            tail.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
        assert_eq!(block(store.since(&room, Seq(1), 100)).unwrap(), Replay::Gap);
        assert_eq!(block(store.since(&room, Seq(9), 100)).unwrap(), Replay::Gap);
        assert_eq!(block(store.since(&room, Seq(5), 2)).unwrap(), Replay::Gap);
        assert_eq!(
            block(store.since(&room, Seq(8), 100)).unwrap(),
            Replay::Complete(vec![])
        );
        let page = block(store.latest(&room, Some(Seq(7)), 2)).unwrap();
        assert_eq!(page.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![5, 6]);
    }
}
