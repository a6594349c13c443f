//! The SQL database behind history and accounts: an SQLite file (one node, the default) or
//! PostgreSQL (several nodes sharing one database).
//!
//! Both speak the same SQL wherever the two dialects agree: `$N` parameters (sqlx's SQLite
//! driver reads them by number), `ON CONFLICT`, `RETURNING`, 64-bit integers, and text
//! compared byte by byte (PostgreSQL's columns are declared `COLLATE "C"`). Each query is
//! written once and compiled for both drivers through [`on_db!`], so neither pays for the
//! other at run time; the few statements that differ pick their text with [`Db::sql`].
//! Each backend has its own migrations (`migrations/` and `migrations-pg/`), applied on
//! start.

use crate::server::store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the database's pool, whichever driver it is: the
/// body is compiled once per driver.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::server::db::Db::Sqlite($pool) => $body,
            $crate::server::db::Db::Postgres($pool) => $body,
        }
    };
}

impl Db {
    /// Connects to PostgreSQL at `url` and brings its schema up to date.
    pub async fn connect_postgres(url: &str) -> Result<Db, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Unavailable(format!("HEARTH_DATABASE_URL is not a PostgreSQL URL: {e}"))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // A database that went away answers the next request with an error soon, not
            // after the default 30 s: sends are retried by the client.
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await?;
        // Several nodes may start at once: PostgreSQL's migrator takes an advisory lock.
        sqlx::migrate!("./migrations-pg").run(&pool).await?;
        Ok(Db::Postgres(pool))
    }

    /// `sqlite` or `postgres`, whichever this database speaks.
    pub fn sql(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Db::Sqlite(_) => sqlite,
            Db::Postgres(_) => postgres,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}
