//! History in SQL: one SQLite file under the data directory (the embedded default), or
//! PostgreSQL shared by several nodes (see [`crate::server::db`]).
//!
//! Created with migrations on first start. On SQLite, write-ahead logging with
//! `synchronous=NORMAL` keeps every committed batch across a process crash (SIGKILL); each
//! batch is one transaction, so group commit costs one fsync-free commit per batch rather
//! than per message.
//!
//! Sequence numbers are gapless per room under any number of writers: a batch starts by
//! locking its room's row (an upsert that returns `last_seq`), inserts its messages after
//! it, and moves `last_seq` in the same transaction. Writers to one room therefore commit
//! one after another, in sequence order, so a reader that sees seq N sees every lower one.
//! A change locks the row the same way (for `last_eseq`) before it reads its message, so
//! two nodes folding reactions into one message never lose either.

use super::{
    decide, Appended, BoxFuture, Changed, Counters, NewChange, NewMessage, Replay, Store,
    StoreError,
};
use crate::on_db;
use crate::protocol::{
    AuthorKey, Change, ChangeKind, ChatMessage, ClientId, RoomId, Seq, UserName,
};
use crate::server::db::Db;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;
use std::time::Duration;

pub struct SqlStore {
    db: Db,
    epoch: u64,
    /// Messages kept per room; 0 keeps everything.
    retain: u64,
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("migrating the database failed: {err}"))
    }
}

/// `SELECT`s a message row (see [`message_row`]), followed by the rest of the query.
macro_rules! select_messages {
    ($rest:literal) => {
        concat!(
            "SELECT seq, author, client_id, text, ts, author_key, edited, deleted, reactions \
             FROM messages ",
            $rest
        )
    };
}

impl SqlStore {
    /// Opens (creating if needed) `hearth.db` in `dir` and brings its schema up to date.
    /// `retain` bounds the messages kept per room (0 keeps everything); sequence numbers
    /// never go back when old messages are deleted.
    pub async fn open(dir: &Path, retain: u64) -> Result<SqlStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("hearth.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            // A checkpoint that resets the log also cuts its file back to this size, so one
            // burst of writes does not leave a large file behind for good.
            .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        SqlStore::with_db(Db::Sqlite(pool), retain).await
    }

    /// History in PostgreSQL at `url` (`postgres://…`), shared by every node using it.
    pub async fn connect(url: &str, retain: u64) -> Result<SqlStore, StoreError> {
        SqlStore::with_db(Db::connect_postgres(url).await?, retain).await
    }

    async fn with_db(db: Db, retain: u64) -> Result<SqlStore, StoreError> {
        // The epoch is born with the database: a new database means a new history. Every
        // node sharing one database reads the same one.
        let candidate = crate::server::hub::now_ms().to_string();
        let epoch: String = on_db!(&db, pool => {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&candidate)
            .execute(pool)
            .await?;
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'epoch'")
                .fetch_one(pool)
                .await?
        });
        let epoch = epoch
            .parse()
            .map_err(|_| StoreError::Unavailable(format!("corrupt epoch {epoch:?}")))?;
        Ok(SqlStore { db, epoch, retain })
    }

    /// Folds the write-ahead log into the database and truncates it every `interval`
    /// (nothing when it is zero, or on PostgreSQL), for as long as the pool is open.
    /// SQLite's automatic checkpoints never shrink the file, and cannot finish while
    /// readers keep reading.
    pub fn spawn_checkpoints(&self, interval: Duration) {
        let Db::Sqlite(pool) = &self.db else {
            return;
        };
        if interval.is_zero() {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            while !pool.is_closed() {
                ticks.tick().await;
                if let Err(err) = checkpoint(&pool).await {
                    tracing::warn!(%err, "checkpointing the write-ahead log failed");
                }
            }
        });
    }

    /// The database, shared with [`crate::server::accounts::Accounts`] so accounts and
    /// history live in one place.
    pub fn db(&self) -> &Db {
        &self.db
    }

    #[cfg(test)]
    pub fn sqlite_pool(&self) -> &SqlitePool {
        match &self.db {
            Db::Sqlite(pool) => pool,
            Db::Postgres(_) => unreachable!("a test store on PostgreSQL"),
        }
    }

    async fn append_batch(
        &self,
        room: &RoomId,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, StoreError> {
        let now = crate::server::hub::now_ms() as i64;
        let stored: Result<Vec<Appended>, i64> = on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // Locks the room's row until commit: the room's other writers wait here.
            let mut last: i64 = sqlx::query_scalar(
                "INSERT INTO rooms (name, created_at, last_active) VALUES ($1, $2, $2) \
                 ON CONFLICT (name) DO UPDATE SET last_seq = rooms.last_seq RETURNING last_seq",
            )
            .bind(room.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let mut out = Vec::with_capacity(batch.len());
            let mut collision = None;
            for new in batch {
                let seq = last + 1;
                // Only a resend (same author and client id) is ignored; a row already
                // holding this sequence number is a collision, which must not pass for a
                // duplicate.
                let inserted = sqlx::query(
                    "INSERT INTO messages (room, seq, author, author_key, client_id, text, ts) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (room, author_key, client_id) DO NOTHING",
                )
                .bind(room.as_str())
                .bind(seq)
                .bind(new.author.as_str())
                .bind(new.author_key.as_str())
                .bind(&new.client_id.0)
                .bind(&new.text)
                .bind(new.ts as i64)
                .execute(&mut *tx)
                .await;
                let inserted = match inserted {
                    Ok(done) => done.rows_affected(),
                    Err(err) if is_unique_violation(&err) => {
                        collision = Some(seq);
                        break;
                    }
                    Err(err) => return Err(err.into()),
                };
                if inserted == 1 {
                    last = seq;
                    out.push(Appended::Stored(new.stored(room, Seq(seq as u64))));
                } else {
                    let existing: i64 = sqlx::query_scalar(
                        "SELECT seq FROM messages \
                         WHERE room = $1 AND author_key = $2 AND client_id = $3",
                    )
                    .bind(room.as_str())
                    .bind(new.author_key.as_str())
                    .bind(&new.client_id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                    out.push(Appended::Duplicate(Seq(existing as u64)));
                }
            }
            match collision {
                Some(seq) => Err(seq),
                None => {
                    sqlx::query("UPDATE rooms SET last_seq = $1, last_active = $2 WHERE name = $3")
                        .bind(last)
                        .bind(now)
                        .bind(room.as_str())
                        .execute(&mut *tx)
                        .await?;
                    if self.retain > 0 && last as u64 > self.retain {
                        sqlx::query("DELETE FROM messages WHERE room = $1 AND seq <= $2")
                            .bind(room.as_str())
                            .bind(last - self.retain as i64)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(out)
                }
            }
        });
        match stored {
            Ok(out) => Ok(out),
            Err(seq) => Err(self.seq_collision(room, seq).await),
        }
    }

    /// Logs a (room, seq) collision and moves the room's counter past every stored
    /// message, so the room's next batch is stored instead of colliding again.
    async fn seq_collision(&self, room: &RoomId, seq: i64) -> StoreError {
        tracing::error!(
            room = room.as_str(),
            seq,
            "sequence number already taken: the room's counter was behind its messages"
        );
        let repaired = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE rooms SET last_seq = CASE WHEN m.top > last_seq THEN m.top \
                 ELSE last_seq END \
                 FROM (SELECT COALESCE(MAX(seq), 0) AS top FROM messages WHERE room = $1) AS m \
                 WHERE name = $1",
            )
            .bind(room.as_str())
            .execute(pool)
            .await
            .map(|_| ())
        });
        if let Err(err) = repaired {
            tracing::error!(room = room.as_str(), %err, "moving the room's counter failed");
        }
        StoreError::Unavailable(format!(
            "sequence number {seq} of room {room} already holds another message; nothing in \
             this batch was stored"
        ))
    }

    async fn messages(
        &self,
        room: &RoomId,
        after: Option<Seq>,
        before: Option<Seq>,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let sql = if newest_first {
            select_messages!("WHERE room = $1 AND seq > $2 AND seq < $3 ORDER BY seq DESC LIMIT $4")
        } else {
            select_messages!("WHERE room = $1 AND seq > $2 AND seq < $3 ORDER BY seq ASC LIMIT $4")
        };
        let mut list = on_db!(&self.db, pool => {
            let rows = sqlx::query(sql)
                .bind(room.as_str())
                .bind(after.map_or(0, |s| s.0 as i64))
                .bind(before.map_or(i64::MAX, |s| s.0 as i64))
                .bind(limit as i64)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| message_row(room, row))
                .collect::<Result<Vec<_>, _>>()?
        });
        if newest_first {
            list.reverse();
        }
        Ok(list)
    }

    async fn apply_change(&self, room: &RoomId, new: NewChange) -> Result<Changed, StoreError> {
        let delete_texts = self.db.sql(
            "UPDATE changes SET data = json_remove(data, '$.text', '$.rich') \
             WHERE room = $1 AND seq = $2",
            "UPDATE changes SET data = (data::jsonb - 'text' - 'rich')::text \
             WHERE room = $1 AND seq = $2",
        );
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // Locks the room's row first, so the message read next is the latest committed
            // by any node. Returning early rolls the number back: `eseq` stays gapless.
            let eseq: Option<i64> = sqlx::query_scalar(
                "UPDATE rooms SET last_eseq = last_eseq + 1 WHERE name = $1 RETURNING last_eseq",
            )
            .bind(room.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(eseq) = eseq else {
                return Ok(Changed::NotFound);
            };
            let row = sqlx::query(select_messages!("WHERE room = $1 AND seq = $2"))
                .bind(room.as_str())
                .bind(new.seq.0 as i64)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Changed::NotFound);
            };
            let mut msg = message_row(room, &row)?;
            let author = msg.key.clone();
            let mut out = decide(&mut msg, &author, &new);
            let Changed::Done(done) = &mut out else {
                return Ok(out);
            };
            done.eseq = Seq(eseq as u64);
            let reactions = if msg.reactions.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&msg.reactions)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?
            };
            sqlx::query(
                "UPDATE messages SET text = $1, edited = $2, deleted = $3, reactions = $4 \
                 WHERE room = $5 AND seq = $6",
            )
            .bind(&msg.text)
            .bind(msg.edited)
            .bind(msg.deleted)
            .bind(reactions)
            .bind(room.as_str())
            .bind(msg.seq.0 as i64)
            .execute(&mut *tx)
            .await?;
            if done.kind == ChangeKind::Delete {
                // The text leaves the store: the message's and every edit's.
                sqlx::query(delete_texts)
                    .bind(room.as_str())
                    .bind(msg.seq.0 as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            let data = serde_json::to_string(&*done)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            sqlx::query("INSERT INTO changes (room, eseq, seq, data) VALUES ($1, $2, $3, $4)")
                .bind(room.as_str())
                .bind(eseq)
                .bind(msg.seq.0 as i64)
                .bind(data)
                .execute(&mut *tx)
                .await?;
            if self.retain > 0 && eseq as u64 > self.retain {
                sqlx::query("DELETE FROM changes WHERE room = $1 AND eseq <= $2")
                    .bind(room.as_str())
                    .bind(eseq - self.retain as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    async fn room_changes_since(
        &self,
        room: &RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Option<Vec<Change>>, StoreError> {
        let last = self.room_last_eseq(room).await?;
        if after > last || (last.0 - after.0) as usize > limit {
            return Ok(None);
        }
        if after == last {
            return Ok(Some(Vec::new()));
        }
        let rows: Vec<String> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT data FROM changes WHERE room = $1 AND eseq > $2 ORDER BY eseq LIMIT $3",
            )
            .bind(room.as_str())
            .bind(after.0 as i64)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?
        });
        let mut list = Vec::with_capacity(rows.len());
        for data in rows {
            let change: Change =
                serde_json::from_str(&data).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            list.push(change);
        }
        // Retention may have deleted the start of the gap: then it cannot be filled.
        if list.first().map(|c| c.eseq) != Some(Seq(after.0 + 1)) {
            return Ok(None);
        }
        Ok(Some(list))
    }

    async fn room_counter(&self, room: &RoomId, sql: &'static str) -> Result<Seq, StoreError> {
        let last: Option<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar(sql)
                .bind(room.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(Seq(last.unwrap_or(0) as u64))
    }

    async fn room_last_eseq(&self, room: &RoomId) -> Result<Seq, StoreError> {
        self.room_counter(room, "SELECT last_eseq FROM rooms WHERE name = $1")
            .await
    }

    async fn room_last_seq(&self, room: &RoomId) -> Result<Seq, StoreError> {
        self.room_counter(room, "SELECT last_seq FROM rooms WHERE name = $1")
            .await
    }
}

/// A message as a row of `messages` holds it (the columns of `select_messages!`, in
/// order), from either database.
fn message_row<R>(room: &RoomId, row: &R) -> Result<ChatMessage, StoreError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text: String = row.try_get(3)?;
    let key: String = row.try_get(5)?;
    let reactions: String = row.try_get(8)?;
    Ok(ChatMessage {
        room: room.clone(),
        seq: Seq(row.try_get::<i64, _>(0)? as u64),
        author: UserName(row.try_get(1)?),
        client_id: ClientId(row.try_get(2)?),
        rich: crate::format::rich(&text),
        text,
        ts: row.try_get::<i64, _>(4)? as u64,
        guest: key.starts_with("g:"),
        key: AuthorKey(key),
        edited: row.try_get(6)?,
        deleted: row.try_get(7)?,
        reactions: if reactions.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&reactions).map_err(|e| StoreError::Unavailable(e.to_string()))?
        },
    })
}

/// Bytes of write-ahead log kept after a checkpoint resets it.
pub const JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Folds the whole write-ahead log into the database and truncates it to zero bytes.
async fn checkpoint(pool: &SqlitePool) -> Result<(), StoreError> {
    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await?;
    // (busy, log frames, checkpointed frames): busy means a reader or writer held it up;
    // the next tick tries again.
    let busy: i64 = row.try_get(0)?;
    if busy != 0 {
        tracing::debug!("write-ahead log checkpoint was held up by a reader; trying later");
    }
    Ok(())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

impl Store for SqlStore {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn retained_per_room(&self) -> Option<usize> {
        (self.retain > 0).then_some(self.retain as usize)
    }

    fn create_room<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let now = crate::server::hub::now_ms() as i64;
            let done = on_db!(&self.db, pool => {
                sqlx::query(
                    "INSERT INTO rooms (name, created_at, last_active) VALUES ($1, $2, $2) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(room.as_str())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
            });
            Ok(done == 1)
        })
    }

    fn rooms_by_activity(
        &self,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RoomId>, StoreError>> {
        Box::pin(async move {
            let names: Vec<String> = on_db!(&self.db, pool => {
                sqlx::query_scalar(
                    "SELECT name FROM rooms ORDER BY last_active DESC, name LIMIT $1 OFFSET $2",
                )
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(pool)
                .await?
            });
            Ok(names.into_iter().map(RoomId).collect())
        })
    }

    fn room_exists<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let found: Option<i64> = on_db!(&self.db, pool => {
                sqlx::query_scalar("SELECT last_seq FROM rooms WHERE name = $1")
                    .bind(room.as_str())
                    .fetch_optional(pool)
                    .await?
            });
            Ok(found.is_some())
        })
    }

    fn list_rooms(&self) -> BoxFuture<'_, Result<Vec<RoomId>, StoreError>> {
        Box::pin(async move {
            let names: Vec<String> = on_db!(&self.db, pool => {
                sqlx::query_scalar("SELECT name FROM rooms ORDER BY name")
                    .fetch_all(pool)
                    .await?
            });
            Ok(names.into_iter().map(RoomId).collect())
        })
    }

    fn append<'a>(
        &'a self,
        room: &'a RoomId,
        batch: Vec<NewMessage>,
    ) -> BoxFuture<'a, Result<Vec<Appended>, StoreError>> {
        Box::pin(self.append_batch(room, batch))
    }

    fn since<'a>(
        &'a self,
        room: &'a RoomId,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Replay, StoreError>> {
        Box::pin(async move {
            let last = self.room_last_seq(room).await?;
            if after > last {
                return Ok(Replay::Gap);
            }
            if after == last {
                return Ok(Replay::Complete(Vec::new()));
            }
            if (last.0 - after.0) as usize > limit {
                return Ok(Replay::Gap);
            }
            let list = self.messages(room, Some(after), None, limit, false).await?;
            // Retention may have deleted the start of the gap: then it cannot be filled.
            if list.first().map(|m| m.seq) != Some(Seq(after.0 + 1)) {
                return Ok(Replay::Gap);
            }
            Ok(Replay::Complete(list))
        })
    }

    fn latest<'a>(
        &'a self,
        room: &'a RoomId,
        before: Option<Seq>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ChatMessage>, StoreError>> {
        Box::pin(self.messages(room, None, before, limit, true))
    }

    fn last_seq<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Seq, StoreError>> {
        Box::pin(self.room_last_seq(room))
    }

    fn change<'a>(
        &'a self,
        room: &'a RoomId,
        change: NewChange,
    ) -> BoxFuture<'a, Result<Changed, StoreError>> {
        Box::pin(self.apply_change(room, change))
    }

    fn changes_since<'a>(
        &'a self,
        room: &'a RoomId,
        after: Seq,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Change>>, StoreError>> {
        Box::pin(self.room_changes_since(room, after, limit))
    }

    fn last_eseq<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<Seq, StoreError>> {
        Box::pin(self.room_last_eseq(room))
    }

    fn counters<'a>(
        &'a self,
        rooms: &'a [RoomId],
    ) -> BoxFuture<'a, Result<Vec<Counters>, StoreError>> {
        Box::pin(async move {
            let Db::Postgres(pool) = &self.db else {
                return super::counters_one_by_one(self, rooms).await;
            };
            let names: Vec<&str> = rooms.iter().map(RoomId::as_str).collect();
            let rows: Vec<(String, i64, i64)> =
                sqlx::query_as("SELECT name, last_seq, last_eseq FROM rooms WHERE name = ANY($1)")
                    .bind(&names)
                    .fetch_all(pool)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(name, seq, eseq)| (RoomId(name), Seq(seq as u64), Seq(eseq as u64)))
                .collect())
        })
    }

    fn read_marks<'a>(
        &'a self,
        reader: &'a AuthorKey,
    ) -> BoxFuture<'a, Result<Vec<(RoomId, Seq)>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, i64)> = on_db!(&self.db, pool => {
                sqlx::query_as("SELECT room, seq FROM read_marks WHERE reader = $1")
                    .bind(&reader.0)
                    .fetch_all(pool)
                    .await?
            });
            Ok(rows
                .into_iter()
                .map(|(room, seq)| (RoomId(room), Seq(seq.max(0) as u64)))
                .collect())
        })
    }

    fn save_read_marks<'a>(
        &'a self,
        marks: &'a [(AuthorKey, RoomId, Seq)],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            on_db!(&self.db, pool => {
                let mut tx = pool.begin().await?;
                for (reader, room, seq) in marks {
                    sqlx::query(
                        "INSERT INTO read_marks (reader, room, seq) VALUES ($1, $2, $3) \
                         ON CONFLICT (reader, room) DO UPDATE SET seq = CASE \
                         WHEN excluded.seq > read_marks.seq THEN excluded.seq \
                         ELSE read_marks.seq END",
                    )
                    .bind(&reader.0)
                    .bind(room.as_str())
                    .bind(seq.0 as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            });
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(author: &str, id: &str) -> NewMessage {
        NewMessage {
            author: UserName(author.into()),
            author_key: crate::protocol::AuthorKey(format!("a:{author}")),
            client_id: ClientId(id.into()),
            text: format!("text {id}"),
            ts: 1,
        }
    }

    #[tokio::test]
    async fn changes_fold_into_messages_and_a_deletion_leaves_no_text_behind() {
        let dir = tempfile::tempdir().unwrap();
        let room = RoomId("r".into());
        let person = |name: &str| crate::protocol::Person {
            name: UserName(name.into()),
            key: AuthorKey(format!("a:{name}")),
            guest: false,
        };
        let change = |seq: u64, by: &str, kind: ChangeKind, text: Option<&str>| NewChange {
            seq: Seq(seq),
            by: person(by),
            kind,
            text: text.map(str::to_string),
            emoji: (kind == ChangeKind::React).then(|| "🎉".to_string()),
            on: true,
            ts: 2,
        };
        {
            let store = SqlStore::open(dir.path(), 0).await.unwrap();
            store
                .append(&room, vec![msg("ada", "1"), msg("ada", "2")])
                .await
                .unwrap();
            let edit = change(1, "ada", ChangeKind::Edit, Some("a secret plan"));
            assert!(matches!(
                store.change(&room, edit).await.unwrap(),
                Changed::Done(c) if c.eseq == Seq(1)
            ));
            let not_hers = change(1, "bob", ChangeKind::Edit, Some("x"));
            assert_eq!(
                store.change(&room, not_hers).await.unwrap(),
                Changed::NotAuthor
            );
            let cheer = change(2, "bob", ChangeKind::React, None);
            assert!(matches!(
                store.change(&room, cheer.clone()).await.unwrap(),
                Changed::Done(_)
            ));
            assert_eq!(
                store.change(&room, cheer).await.unwrap(),
                Changed::Unchanged
            );
            let gone = change(1, "ada", ChangeKind::Delete, None);
            assert!(matches!(
                store.change(&room, gone).await.unwrap(),
                Changed::Done(_)
            ));
        }
        // Reopened: the messages hold their current state, the changes replay in order,
        // and the deleted text is nowhere in the database.
        let store = SqlStore::open(dir.path(), 0).await.unwrap();
        let list = store.latest(&room, None, 10).await.unwrap();
        assert!(list[0].deleted && list[0].text.is_empty(), "{:?}", list[0]);
        assert_eq!(list[1].reactions[0].people[0].name.0, "bob");
        assert_eq!(store.last_eseq(&room).await.unwrap(), Seq(3));
        let kinds: Vec<_> = store
            .changes_since(&room, Seq(0), 10)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|c| (c.eseq.0, c.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, ChangeKind::Edit),
                (2, ChangeKind::React),
                (3, ChangeKind::Delete)
            ]
        );
        assert_eq!(store.changes_since(&room, Seq(5), 10).await.unwrap(), None);
        let texts: Vec<String> =
            sqlx::query_scalar("SELECT text FROM messages UNION ALL SELECT data FROM changes")
                .fetch_all(store.sqlite_pool())
                .await
                .unwrap();
        assert!(
            texts
                .iter()
                .all(|t| !t.contains("secret") && !t.contains("text 1")),
            "{texts:?}"
        );
    }

    #[tokio::test]
    async fn read_marks_only_rise_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (ada, bob) = (AuthorKey::account(1), AuthorKey::guest(9));
        let (design, lobby) = (RoomId("design".into()), RoomId("lobby".into()));
        {
            let store = SqlStore::open(dir.path(), 0).await.unwrap();
            store
                .save_read_marks(&[
                    (ada.clone(), design.clone(), Seq(7)),
                    (ada.clone(), lobby.clone(), Seq(2)),
                    (bob.clone(), design.clone(), Seq(1)),
                ])
                .await
                .unwrap();
            store
                .save_read_marks(&[(ada.clone(), design.clone(), Seq(5))])
                .await
                .unwrap();
        }
        let store = SqlStore::open(dir.path(), 0).await.unwrap();
        let mut marks = store.read_marks(&ada).await.unwrap();
        marks.sort();
        assert_eq!(marks, vec![(design.clone(), Seq(7)), (lobby, Seq(2))]);
        assert_eq!(
            store.read_marks(&bob).await.unwrap(),
            vec![(design, Seq(1))]
        );
    }

    #[tokio::test]
    async fn history_survives_reopening_with_the_same_epoch() {
        let dir = std::env::temp_dir().join(format!("hearth-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let room = RoomId("general".into());
        let epoch = {
            let store = SqlStore::open(&dir, 0).await.unwrap();
            let out = store
                .append(
                    &room,
                    vec![msg("ada", "1"), msg("ada", "2"), msg("ada", "1")],
                )
                .await
                .unwrap();
            assert!(matches!(&out[1], Appended::Stored(m) if m.seq == Seq(2)));
            assert_eq!(
                out[2],
                Appended::Duplicate(Seq(1)),
                "dedup inside one batch"
            );
            store.epoch()
        };
        let store = SqlStore::open(&dir, 0).await.unwrap();
        assert_eq!(store.epoch(), epoch);
        assert_eq!(store.last_seq(&room).await.unwrap(), Seq(2));
        let out = store
            .append(&room, vec![msg("ada", "2"), msg("bob", "2")])
            .await
            .unwrap();
        assert_eq!(out[0], Appended::Duplicate(Seq(2)), "dedup across restarts");
        assert!(matches!(&out[1], Appended::Stored(m) if m.seq == Seq(3)));
        let Replay::Complete(tail) = store.since(&room, Seq(1), 100).await.unwrap() else {
            panic!("expected a replay");
        };
        assert_eq!(tail.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(store.since(&room, Seq(1), 1).await.unwrap(), Replay::Gap);
        assert_eq!(store.since(&room, Seq(9), 100).await.unwrap(), Replay::Gap);
        let page = store.latest(&room, Some(Seq(3)), 1).await.unwrap();
        assert_eq!(page.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![2]);
        assert_eq!(store.list_rooms().await.unwrap(), vec![room]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Waits until the millisecond clock moves on, so two events get different times.
    fn next_ms() {
        let now = crate::server::hub::now_ms();
        while crate::server::hub::now_ms() == now {
            std::hint::spin_loop();
        }
    }

    #[tokio::test]
    async fn rooms_are_listed_most_recently_active_first_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(dir.path(), 0).await.unwrap();
        let room = |n: &str| RoomId(n.to_string());
        for name in ["a", "b", "c"] {
            assert!(store.create_room(&room(name)).await.unwrap());
            next_ms();
        }
        store
            .append(&room("a"), vec![msg("ada", "1")])
            .await
            .unwrap();
        let names = |list: Vec<RoomId>| list.into_iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(
            names(store.rooms_by_activity(0, 10).await.unwrap()),
            ["a", "c", "b"]
        );
        assert_eq!(names(store.rooms_by_activity(1, 1).await.unwrap()), ["c"]);
        assert!(store.rooms_by_activity(3, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn retention_forgets_old_messages_but_never_reuses_seqs() {
        let dir = std::env::temp_dir().join(format!("hearth-retain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqlStore::open(&dir, 3).await.unwrap();
        let room = RoomId("r".into());
        let batch = (0..5).map(|i| msg("ada", &i.to_string())).collect();
        store.append(&room, batch).await.unwrap();
        let kept = store.latest(&room, None, 10).await.unwrap();
        assert_eq!(
            kept.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(store.since(&room, Seq(1), 100).await.unwrap(), Replay::Gap);
        assert!(
            matches!(store.since(&room, Seq(2), 100).await.unwrap(), Replay::Complete(l) if l.len() == 3)
        );
        let out = store.append(&room, vec![msg("ada", "new")]).await.unwrap();
        assert!(matches!(&out[0], Appended::Stored(m) if m.seq == Seq(6)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A row already holding the next sequence number (the room's counter behind its
    /// messages) is an error that names the collision, never a silent duplicate, and the
    /// counter moves past it so the room's next batch is stored.
    #[tokio::test]
    async fn a_seq_collision_is_an_error_and_the_room_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(dir.path(), 0).await.unwrap();
        let room = RoomId("general".into());
        store.append(&room, vec![msg("ada", "1")]).await.unwrap();
        // Another writer took seq 2 without moving the counter.
        sqlx::query(
            "INSERT INTO messages (room, seq, author, client_id, text, ts) \
             VALUES ('general', 2, 'eve', 'x', 'intruder', 1)",
        )
        .execute(store.sqlite_pool())
        .await
        .unwrap();
        let err = store
            .append(&room, vec![msg("bob", "1")])
            .await
            .expect_err("a collision is not a duplicate");
        assert!(err.to_string().contains("sequence number 2"), "{err}");
        let out = store.append(&room, vec![msg("bob", "1")]).await.unwrap();
        assert!(
            matches!(&out[0], Appended::Stored(m) if m.seq == Seq(3)),
            "{out:?}"
        );
        let page = store.latest(&room, None, 10).await.unwrap();
        assert_eq!(
            page.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    /// A burst of writes while a reader holds an old snapshot grows the write-ahead log
    /// (SQLite cannot reset it under the reader, and never shrinks it by itself); the
    /// periodic checkpoint truncates it once the reader is gone.
    #[tokio::test]
    async fn the_write_ahead_log_is_truncated_after_a_burst_of_writes() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(dir.path(), 0).await.unwrap();
        let room = RoomId("busy".into());
        store
            .append(&room, vec![msg("ada", "first")])
            .await
            .unwrap();
        let mut reader = sqlx::SqliteConnection::connect_with(
            &SqliteConnectOptions::new().filename(dir.path().join("hearth.db")),
        )
        .await
        .unwrap();
        let mut snapshot = reader.begin().await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&mut *snapshot)
            .await
            .unwrap();
        for b in 0..40 {
            let batch = (0..50)
                .map(|i| NewMessage {
                    text: "x".repeat(4000),
                    ..msg("ada", &format!("{b}-{i}"))
                })
                .collect();
            store.append(&room, batch).await.unwrap();
        }
        let wal = dir.path().join("hearth.db-wal");
        let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let grown = size();
        println!("write-ahead log after the burst: {grown} bytes");
        assert!(grown > 4 << 20, "the burst grew the log ({grown} bytes)");
        snapshot.rollback().await.unwrap();
        drop(reader);

        store.spawn_checkpoints(Duration::from_millis(20));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size() > 1 << 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log is still {} bytes",
                size()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The store keeps working, and what was written is all there.
        store
            .append(&room, vec![msg("ada", "after")])
            .await
            .unwrap();
        assert_eq!(store.last_seq(&room).await.unwrap(), Seq(2002));
    }

    /// A database from before author keys: on opening, each message gets the key of the
    /// account with its author's name, or else a guest key; de-duplication then goes by it.
    #[tokio::test]
    async fn older_messages_get_the_key_of_the_account_with_their_name_else_a_guest_key() {
        let dir = std::env::temp_dir().join(format!("hearth-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let options = SqliteConnectOptions::new()
                .filename(dir.join("hearth.db"))
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap();
            for schema in [
                include_str!("../../../migrations/0001_history.sql"),
                include_str!("../../../migrations/0002_accounts.sql"),
                include_str!("../../../migrations/0003_session_expiry.sql"),
                "INSERT INTO users (id, name, name_key, password_hash, created_at) \
                 VALUES (5, 'Ada', 'ada', 'x', 0);
                 INSERT INTO rooms (name, created_at, last_seq) VALUES ('r', 0, 2);
                 INSERT INTO messages (room, seq, author, client_id, text, ts) VALUES
                     ('r', 1, 'Ada', 'c1', 'from the account', 0),
                     ('r', 2, 'Gus', 'c1', 'from a guest', 0);",
            ] {
                sqlx::raw_sql(schema).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let store = SqlStore::open(&dir, 0).await.unwrap();
        let room = RoomId("r".into());
        let old = store.latest(&room, None, 10).await.unwrap();
        let marks: Vec<(&str, bool)> = old.iter().map(|m| (m.author.as_str(), m.guest)).collect();
        assert_eq!(marks, [("Ada", false), ("Gus", true)]);
        let key = |k: &str, id: &str| NewMessage {
            author_key: crate::protocol::AuthorKey(k.into()),
            ..msg("Ada", id)
        };
        let out = store
            .append(&room, vec![key("a:5", "c1"), key("g:9", "c1")])
            .await
            .unwrap();
        assert_eq!(out[0], Appended::Duplicate(Seq(1)), "the account's resend");
        assert!(
            matches!(&out[1], Appended::Stored(m) if m.seq == Seq(3) && m.guest),
            "a new guest is a new author: {out:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
