//! `hearth migrate --from <sqlite file> --to <postgres url>`: a single node's history and
//! accounts, copied into an empty PostgreSQL database so a team can grow to several nodes
//! without losing its past.
//!
//! Everything is kept as it was: sequence and change numbers, the epoch (so a client that
//! was connected before recovers across the move with `since`), accounts with their ids and
//! password hashes, sessions (cookies keep working), private rooms, read marks. The copy is
//! one PostgreSQL transaction: it lands whole or not at all. A database that already holds
//! rooms or accounts is refused, so nothing is ever merged into another history.

use crate::server::db::Db;
use crate::server::store::StoreError;
use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};
use std::path::Path;

/// How a column is read from SQLite and bound for PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    /// SQLite's 0/1, PostgreSQL's BOOLEAN.
    Bool,
    Bytes,
}

enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// The tables in an order that satisfies every foreign key, with their columns.
const TABLES: &[(&str, &[(&str, Kind)])] = {
    use Kind::*;
    &[
        ("meta", &[("key", Text), ("value", Text)]),
        (
            "users",
            &[
                ("id", Int),
                ("name", Text),
                ("name_key", Text),
                ("password_hash", Text),
                ("created_at", Int),
                ("name_skeleton", Text),
            ],
        ),
        (
            "rooms",
            &[
                ("name", Text),
                ("created_at", Int),
                ("last_seq", Int),
                ("last_active", Int),
                ("last_eseq", Int),
            ],
        ),
        (
            "messages",
            &[
                ("room", Text),
                ("seq", Int),
                ("author", Text),
                ("client_id", Text),
                ("text", Text),
                ("ts", Int),
                ("author_key", Text),
                ("edited", Bool),
                ("deleted", Bool),
                ("reactions", Text),
            ],
        ),
        (
            "changes",
            &[("room", Text), ("eseq", Int), ("seq", Int), ("data", Text)],
        ),
        (
            "sessions",
            &[
                ("id", Int),
                ("token_hash", Bytes),
                ("user_id", Int),
                ("guest_name", Text),
                ("created_at", Int),
                ("expires_at", Int),
            ],
        ),
        (
            "room_access",
            &[
                ("room", Text),
                ("kind", Text),
                ("owner", Int),
                ("created_at", Int),
            ],
        ),
        ("room_members", &[("room", Text), ("user_id", Int)]),
        (
            "read_marks",
            &[("reader", Text), ("room", Text), ("seq", Int)],
        ),
    ]
};

/// Rows per `INSERT` (PostgreSQL takes at most 65,535 parameters per statement).
const BATCH: usize = 500;

/// Copies the SQLite database at `from` into the empty PostgreSQL database at `to`;
/// returns each table's name and row count.
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<Vec<(String, u64)>, StoreError> {
    if !from.is_file() {
        return Err(StoreError::Unavailable(format!(
            "there is no SQLite database at {} (it is hearth.db in the data directory)",
            from.display()
        )));
    }
    let source = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(from))
        .await?;
    // An older file is brought up to date first, as opening it with `hearth` would.
    sqlx::migrate!("./migrations").run(&source).await?;
    let Db::Postgres(target) = Db::connect_postgres(to).await? else {
        unreachable!("connect_postgres gives PostgreSQL");
    };
    let held: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM rooms) + (SELECT COUNT(*) FROM users) \
         + (SELECT COUNT(*) FROM meta)",
    )
    .fetch_one(&target)
    .await?;
    if held > 0 {
        return Err(StoreError::Unavailable(
            "the PostgreSQL database already holds a history (rooms, accounts or an epoch); \
             migrate into an empty database"
                .to_string(),
        ));
    }

    let mut tx = target.begin().await?;
    let mut counts = Vec::with_capacity(TABLES.len());
    for (table, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let names = names.join(", ");
        let select = format!("SELECT {names} FROM {table}");
        let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(&source);
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(BATCH);
        let mut count = 0u64;
        while let Some(row) = rows.try_next().await? {
            let mut values = Vec::with_capacity(columns.len());
            for (i, (_, kind)) in columns.iter().enumerate() {
                values.push(match kind {
                    Kind::Text => Value::Text(row.try_get(i)?),
                    Kind::Int => Value::Int(row.try_get(i)?),
                    Kind::Bool => Value::Bool(row.try_get(i)?),
                    Kind::Bytes => Value::Bytes(row.try_get(i)?),
                });
            }
            batch.push(values);
            count += 1;
            if batch.len() == BATCH {
                insert(&mut tx, table, &names, std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            insert(&mut tx, table, &names, batch).await?;
        }
        counts.push((table.to_string(), count));
    }
    // New accounts and sessions are numbered after the copied ones.
    for table in ["users", "sessions"] {
        let reset = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        );
        sqlx::query(AssertSqlSafe(reset)).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    source.close().await;
    target.close().await;
    Ok(counts)
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    table: &str,
    columns: &str,
    rows: Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    let mut query: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("INSERT INTO {table} ({columns}) "));
    query.push_values(rows, |mut row, values| {
        for value in values {
            match value {
                Value::Text(v) => row.push_bind(v),
                Value::Int(v) => row.push_bind(v),
                Value::Bool(v) => row.push_bind(v),
                Value::Bytes(v) => row.push_bind(v),
            };
        }
    });
    query.build().execute(&mut **tx).await?;
    Ok(())
}
