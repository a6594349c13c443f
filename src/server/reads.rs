//! How far each person has read in each room: read marks, written coalesced.
//!
//! A mark only rises. Marks arrive as fast as people read (a `read` frame per burst of
//! messages, from every tab), so they are kept in memory and the changed ones are written to
//! the store in one transaction per [`FLUSH_EVERY`]; a reader's marks are the store's raised
//! by what memory knows; once a reader's stored marks were read in, memory answers alone (a
//! room page asks on every load). Memory keeps at most [`KNOWN`] readers: past that, what is
//! written is forgotten and read in again when asked (a forgotten mark only means that a
//! repeated `read` is passed on once more).
//! A shutdown writes what changed ([`ReadMarks::flush`] from `Hub::drain`).

use crate::protocol::{AuthorKey, RoomId, Seq};
use crate::server::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often changed marks are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Most readers whose marks are kept in memory.
pub const KNOWN: usize = 20_000;

/// A mark as memory knows it: its value, and whether the store has it yet.
#[derive(Clone, Copy, Default)]
struct Mark {
    seq: Seq,
    changed: bool,
}

/// One reader's marks in memory.
#[derive(Default)]
struct Reader {
    /// True once the store's marks were read in: memory then has them all.
    loaded: bool,
    rooms: HashMap<RoomId, Mark>,
}

pub struct ReadMarks {
    store: Arc<dyn Store>,
    known: Mutex<HashMap<AuthorKey, Reader>>,
    flusher: AtomicBool,
}

impl ReadMarks {
    pub fn new(store: Arc<dyn Store>) -> Arc<ReadMarks> {
        Arc::new(ReadMarks {
            store,
            known: Mutex::new(HashMap::new()),
            flusher: AtomicBool::new(false),
        })
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<AuthorKey, Reader>> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= KNOWN {
            // Forget what the store already has; what it does not, stays until written.
            known.retain(|_, reader| {
                reader.rooms.retain(|_, mark| mark.changed);
                reader.loaded = false;
                !reader.rooms.is_empty()
            });
        }
        known
    }

    /// Raises `reader`'s mark in `room` to `seq`; false if the mark was already higher (as
    /// far as this node knows), so there is nothing to tell. Starts the flusher on first use.
    pub fn mark(self: &Arc<Self>, reader: &AuthorKey, room: &RoomId, seq: Seq) -> bool {
        let rose = {
            let mut known = self.known();
            let mark = known
                .entry(reader.clone())
                .or_default()
                .rooms
                .entry(room.clone())
                .or_default();
            let rose = seq >= mark.seq;
            if seq > mark.seq {
                *mark = Mark { seq, changed: true };
            }
            rose
        };
        if !self.flusher.swap(true, Ordering::AcqRel) {
            let marks = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(FLUSH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(marks) = marks.upgrade() else { return };
                    if let Err(err) = marks.flush().await {
                        tracing::error!(%err, "read marks not written; retrying");
                    }
                }
            });
        }
        rose
    }

    /// `reader`'s marks, per room: from memory once the store's were read in.
    pub async fn of(&self, reader: &AuthorKey) -> Result<HashMap<RoomId, Seq>, StoreError> {
        let from_memory = |known: &HashMap<AuthorKey, Reader>| {
            known.get(reader).map(|r| {
                r.rooms
                    .iter()
                    .map(|(room, mark)| (room.clone(), mark.seq))
                    .collect::<HashMap<_, _>>()
            })
        };
        if self.known().get(reader).is_some_and(|r| r.loaded) {
            return Ok(from_memory(&self.known()).unwrap_or_default());
        }
        let stored = self.store.read_marks(reader).await?;
        let mut known = self.known();
        let entry = known.entry(reader.clone()).or_default();
        for (room, seq) in stored {
            let mark = entry.rooms.entry(room).or_default();
            if seq > mark.seq {
                *mark = Mark {
                    seq,
                    changed: false,
                };
            }
        }
        entry.loaded = true;
        Ok(from_memory(&known).unwrap_or_default())
    }

    /// Writes every changed mark. On failure they stay changed for the next flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let batch: Vec<(AuthorKey, RoomId, Seq)> = {
            let mut known = self.known();
            let mut batch = Vec::new();
            for (reader, marks) in known.iter_mut() {
                for (room, mark) in marks.rooms.iter_mut().filter(|(_, m)| m.changed) {
                    mark.changed = false;
                    batch.push((reader.clone(), room.clone(), mark.seq));
                }
            }
            batch
        };
        if batch.is_empty() {
            return Ok(());
        }
        let written = self.store.save_read_marks(&batch).await;
        if written.is_err() {
            let mut known = self.known();
            for (reader, room, seq) in batch {
                let mark = known
                    .entry(reader)
                    .or_default()
                    .rooms
                    .entry(room)
                    .or_default();
                if mark.seq <= seq {
                    mark.seq = seq;
                    mark.changed = true;
                }
            }
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn marks_rise_and_reach_the_store_coalesced() {
        let store = Arc::new(MemoryStore::new(1, 100));
        let marks = ReadMarks::new(store.clone());
        let (ada, room) = (AuthorKey::account(1), RoomId("design".into()));
        assert!(marks.mark(&ada, &room, Seq(3)));
        assert!(marks.mark(&ada, &room, Seq(5)));
        assert!(!marks.mark(&ada, &room, Seq(4)), "a mark never falls");
        assert!(
            marks.mark(&ada, &room, Seq(5)),
            "the same mark again is passed on"
        );
        // Seen at once, before anything is written.
        assert_eq!(marks.of(&ada).await.unwrap()[&room], Seq(5));
        assert!(store.read_marks(&ada).await.unwrap().is_empty());
        // Within a flush interval or two (on the paused clock): written once, at the highest
        // mark.
        for _ in 0..8 {
            if !store.read_marks(&ada).await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(FLUSH_EVERY / 4).await;
        }
        assert_eq!(
            store.read_marks(&ada).await.unwrap(),
            vec![(room.clone(), Seq(5))]
        );
        // Still known after the write: a lower mark is not passed on.
        assert!(!marks.mark(&ada, &room, Seq(2)));
        assert_eq!(marks.of(&AuthorKey::account(2)).await.unwrap().len(), 0);
    }
}
