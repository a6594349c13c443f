//! Who people are and where they may go: accounts, sessions (registered or guest), and the
//! membership of private rooms and direct messages.
//!
//! Everything is in SQLite: the history's own file by default, or a private in-memory
//! database with `--store memory`. This module holds accounts and names (registering, logging
//! in, choosing a guest name, look-alike names); the rest is split by concern:
//! - `passwords`: the password rule and argon2 hashing, on the blocking pool and at most one
//!   hash per core at a time (each takes about 19 MiB and a thread), so a burst of logins
//!   never stalls the runtime that serves live traffic; the rest wait briefly, then are told
//!   to try again.
//! - `sessions`: the cookie's session (a random token; only its SHA-256 is stored), its
//!   short-lived cache, logout and the sweep of expired sessions.
//! - `live`: the watch each session with open connections holds, so ending the session closes
//!   them.
//! - `access`: room access, read on every join, send and history load, so the membership of
//!   the (few) non-public rooms is also kept in memory. A room that is not in `room_access`
//!   is public; names starting with `dm-` are reserved for direct messages and are never
//!   public. A new restricted room's rules enter that memory before the room exists
//!   anywhere, and the room is stored together with them ([`Accounts::create_restricted`]),
//!   so no join can find the room without its rules. The rules for who may create and enter
//!   rooms are in `server::rooms`.

use crate::on_db;
use crate::protocol::{AuthorKey, Person, RoomId, UserName};
use crate::server::db::Db;
use crate::server::hub::now_ms;
use crate::server::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

mod access;
mod live;
mod passwords;
mod sessions;

pub use access::{is_reserved, Restricted, RoomKind, DIRECT_PREFIX};
use live::LiveSession;
pub use live::SessionEnd;
use passwords::{check_password, dummy_hash, hash_password, verify_password};
pub use passwords::{HASH_WAIT, PASSWORD_RULE};
use sessions::Cached;
pub use sessions::{NewSession, DEFAULT_GUEST_TTL};

/// What one node tells the others so their cached permissions follow (see
/// [`Accounts::set_announcer`]). Each node also reads a room's rules again before letting
/// anyone in, so a lost announcement delays an invitation at most, never opens a room.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AccessNews {
    /// A room's rules changed (created private or direct, or someone invited).
    Room(RoomId),
    /// A session ended (logout): its cookie stops working and its connections close.
    SessionEnded(i64),
    /// An account took this name skeleton: guests using it lose it.
    NameTaken(String),
}

/// How [`AccessNews`] leaves this node.
pub type Announce = Box<dyn Fn(&AccessNews) + Send + Sync>;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";

/// The person behind a request or connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: UserName,
    /// `None` for a guest.
    pub user_id: Option<i64>,
    /// The session this identity came from; logging out ends its connections.
    pub session_id: i64,
}

impl Identity {
    pub fn is_guest(&self) -> bool {
        self.user_id.is_none()
    }

    /// Who this is whatever the name: the account's id, or for a guest the session's (a
    /// guest who picks another name gets a new session, so a new key). Presence, the
    /// connection cap and message de-duplication go by it, never by the display name.
    pub fn author_key(&self) -> AuthorKey {
        match self.user_id {
            Some(id) => AuthorKey::account(id),
            None => AuthorKey::guest(self.session_id),
        }
    }

    /// This identity as presence lists it.
    pub fn person(&self) -> Person {
        Person {
            name: self.name.clone(),
            key: self.author_key(),
            guest: self.is_guest(),
        }
    }
}

/// Why an account operation was refused; every variant reads as a sentence that says what
/// to do next.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "That name belongs to a registered account, or looks the same as one; log in, or \
         choose another name."
    )]
    NameTaken,
    #[error("That user name and password do not match; check both and try again.")]
    BadCredentials,
    #[error("{0}")]
    NotAllowed(String),
    /// Every password hashing slot stayed busy while the request waited.
    #[error("The server is busy checking other passwords; try again in a few seconds.")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccountError {
    fn from(err: sqlx::Error) -> Self {
        AccountError::Store(err.into())
    }
}

pub struct Accounts {
    db: Db,
    session_ttl: Duration,
    /// How long a guest session lasts: guests cost a row each and need no password, so
    /// their rows go sooner.
    guest_ttl: Duration,
    restricted: RwLock<HashMap<RoomId, Restricted>>,
    /// One watch per session with live connections; ending the session (logout, or a
    /// guest's name being registered) sets the reason, which closes them.
    live: Mutex<HashMap<i64, LiveSession>>,
    /// True when the history's `rooms` table is in this database (SQLite), so a restricted
    /// room and its rules are stored in one transaction.
    history_here: bool,
    /// Sessions looked up in the last [`CACHE_MS`], by token hash: every page view and
    /// upgrade reads its session, usually seconds after the previous one did.
    cache: Mutex<HashMap<Vec<u8>, Cached>>,
    /// One permit per password hash that may run at once.
    hashing: Arc<Semaphore>,
    announce: std::sync::OnceLock<Announce>,
}

impl Accounts {
    /// Accounts in an existing, migrated database (the store's).
    pub async fn open(db: Db, session_ttl: Duration) -> Result<Accounts, StoreError> {
        Accounts::open_with(db, session_ttl, true).await
    }

    async fn open_with(
        db: Db,
        session_ttl: Duration,
        history_here: bool,
    ) -> Result<Accounts, StoreError> {
        let accounts = Accounts {
            db,
            history_here,
            session_ttl,
            guest_ttl: session_ttl.min(DEFAULT_GUEST_TTL),
            restricted: RwLock::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            announce: std::sync::OnceLock::new(),
            hashing: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        };
        // Made now, off the async threads, rather than by the first login of an unknown
        // name.
        tokio::task::spawn_blocking(dummy_hash)
            .await
            .map_err(|e| StoreError::Unavailable(format!("password hashing failed: {e}")))?;
        accounts.fill_skeletons().await?;
        accounts.load_restricted().await?;
        Ok(accounts)
    }

    /// Accounts in a private in-memory database, gone when the process exits.
    pub async fn in_memory(session_ttl: Duration) -> Result<Accounts, StoreError> {
        // An in-memory SQLite database lives as long as its one connection: keep it forever.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(SqliteConnectOptions::new().in_memory(true))
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Accounts::open_with(Db::Sqlite(pool), session_ttl, false).await
    }

    #[cfg(test)]
    fn sqlite_pool(&self) -> &sqlx::SqlitePool {
        match &self.db {
            Db::Sqlite(pool) => pool,
            Db::Postgres(_) => unreachable!("test accounts on PostgreSQL"),
        }
    }

    /// Sets how long guest sessions last (at most as long as logins).
    pub fn with_guest_ttl(mut self, ttl: Duration) -> Accounts {
        self.guest_ttl = ttl.min(self.session_ttl);
        self
    }

    // ---- accounts and sessions ----

    /// Creates an account and logs it in.
    pub async fn register(
        &self,
        name: &UserName,
        password: &str,
    ) -> Result<NewSession, AccountError> {
        check_password(password)?;
        let skeleton = name_skeleton(name);
        self.refuse_look_alike(name, &skeleton).await?;
        let hash = hash_password(&self.hashing, password.to_string()).await?;
        let inserted: Result<Option<i64>, sqlx::Error> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "INSERT INTO users (name, name_key, name_skeleton, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name_key) DO NOTHING RETURNING id",
            )
            .bind(name.as_str())
            .bind(name_key(name))
            .bind(&skeleton)
            .bind(&hash)
            .bind(now_ms() as i64)
            .fetch_optional(pool)
            .await
        });
        let inserted = match inserted {
            Err(err)
                if err
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation()) =>
            {
                // A look-alike was registered since the check above.
                self.refuse_look_alike(name, &skeleton).await?;
                return Err(err.into());
            }
            other => other?,
        };
        let Some(id) = inserted else {
            return Err(AccountError::Invalid(
                "That user name is taken; choose another.".to_string(),
            ));
        };
        // A guest who had this name, or one that looks like it, loses it now, on every node.
        self.end_guests_named(&skeleton);
        self.announce(AccessNews::NameTaken(skeleton));
        self.new_session(Some(id), name.clone())
            .await?
            .ok_or(AccountError::BadCredentials)
    }

    /// Guests whose name looks like `skeleton` lose it: open connections close, and the
    /// cached session goes.
    pub(super) fn end_guests_named(&self, skeleton: &str) {
        self.end_live(
            |_, l| l.guest_key.as_deref() == Some(skeleton),
            "Your guest name now belongs to a registered account; choose another.",
        );
        self.lock_cache()
            .retain(|_, c| !(c.identity.is_guest() && name_skeleton(&c.identity.name) == skeleton));
    }

    /// Passes what other nodes must act on to them (see [`AccessNews`]); nothing for a
    /// single node.
    pub fn set_announcer(&self, announce: Announce) {
        let _ = self.announce.set(announce);
    }

    fn announce(&self, news: AccessNews) {
        if let Some(announce) = self.announce.get() {
            announce(&news);
        }
    }

    /// What another node announced: this node's memory and connections follow.
    pub async fn apply(&self, news: AccessNews) {
        match news {
            AccessNews::Room(room) => {
                if let Err(err) = self.refresh_access(&room).await {
                    tracing::warn!(%room, %err, "reading a room's rules failed");
                }
            }
            AccessNews::SessionEnded(id) => {
                self.lock_cache().retain(|_, c| c.identity.session_id != id);
                self.end_live(|sid, _| sid == id, "Logged out.");
            }
            AccessNews::NameTaken(skeleton) => self.end_guests_named(&skeleton),
        }
    }

    /// Refuses a new account whose name looks like an existing account's (a different
    /// name with the same skeleton), naming the account it looks like.
    async fn refuse_look_alike(&self, name: &UserName, skeleton: &str) -> Result<(), AccountError> {
        let existing: Option<String> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT name FROM users WHERE name_skeleton = $1 AND name_key != $2 LIMIT 1",
            )
            .bind(skeleton)
            .bind(name_key(name))
            .fetch_optional(pool)
            .await?
        });
        match existing {
            Some(existing) => Err(AccountError::Invalid(format!(
                "That name looks the same as the registered account {existing:?}; choose a \
                 name that looks different."
            ))),
            None => Ok(()),
        }
    }

    /// Gives accounts made before names had skeletons theirs. Two old accounts that look
    /// alike keep the first one's; the other stays without (and is logged), as it was.
    async fn fill_skeletons(&self) -> Result<(), StoreError> {
        let rows: Vec<(i64, String)> = on_db!(&self.db, pool => {
            sqlx::query_as("SELECT id, name FROM users WHERE name_skeleton IS NULL ORDER BY id")
                .fetch_all(pool)
                .await?
        });
        for (id, name) in rows {
            let name = UserName(name);
            let done = on_db!(&self.db, pool => {
                sqlx::query("UPDATE users SET name_skeleton = $1 WHERE id = $2")
                    .bind(name_skeleton(&name))
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            });
            match done {
                Ok(_) => {}
                Err(err)
                    if err
                        .as_database_error()
                        .is_some_and(|e| e.is_unique_violation()) =>
                {
                    tracing::warn!(account = %name, "account name looks like an older account's");
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Checks a user name and password and starts a session.
    pub async fn login(&self, name: &UserName, password: &str) -> Result<NewSession, AccountError> {
        let row: Option<(i64, String, String)> = on_db!(&self.db, pool => {
            sqlx::query_as("SELECT id, name, password_hash FROM users WHERE name_key = $1")
                .bind(name_key(name))
                .fetch_optional(pool)
                .await?
        });
        // An unknown name costs the same hash as a wrong password, so timing does not tell
        // which names exist.
        let (id, stored_name, hash) = match row {
            Some((id, name, hash)) => (Some(id), name, hash),
            None => (None, String::new(), dummy_hash().to_string()),
        };
        let ok = verify_password(&self.hashing, password.to_string(), hash).await?;
        match (id, ok) {
            (Some(id), true) => self
                .new_session(Some(id), UserName(stored_name))
                .await?
                .ok_or(AccountError::BadCredentials),
            _ => Err(AccountError::BadCredentials),
        }
    }

    /// Starts a guest session under `name`, unless a registered account has that name.
    pub async fn guest(&self, name: &UserName) -> Result<NewSession, AccountError> {
        self.new_session(None, name.clone())
            .await?
            .ok_or(AccountError::NameTaken)
    }

    /// Whether an account has this name, or one that looks the same.
    async fn account_looking_like(&self, name: &UserName) -> Result<bool, StoreError> {
        let found: Option<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM users WHERE name_key = $1 OR name_skeleton = $2 LIMIT 1",
            )
            .bind(name_key(name))
            .bind(name_skeleton(name))
            .fetch_optional(pool)
            .await?
        });
        Ok(found.is_some())
    }

    async fn account_named(&self, name: &UserName) -> Result<Option<(i64, UserName)>, StoreError> {
        let row: Option<(i64, String)> = on_db!(&self.db, pool => {
            sqlx::query_as("SELECT id, name FROM users WHERE name_key = $1")
                .bind(name_key(name))
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(id, name)| (id, UserName(name))))
    }
}

fn name_key(name: &UserName) -> String {
    name.as_str().to_lowercase()
}

/// What a name looks like: the UTS #39 confusable skeleton of its NFKC form, taken before
/// and after case folding, so "Ada", "ADA", "Ａda" (fullwidth) and "Аda" (Cyrillic А) are
/// one name, as are "Alice" and "AIice" (capital i).
pub fn name_skeleton(name: &UserName) -> String {
    use unicode_normalization::UnicodeNormalization;
    let nfkc: String = name.as_str().nfkc().collect();
    let shape: String = unicode_security::skeleton(&nfkc).collect();
    unicode_security::skeleton(&shape.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::Store;

    fn name(s: &str) -> UserName {
        UserName(s.to_string())
    }

    async fn accounts() -> Accounts {
        Accounts::in_memory(Duration::from_secs(3600))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn register_login_logout() {
        let a = accounts().await;
        let s = a.register(&name("Ada"), "correct horse").await.unwrap();
        assert_eq!(a.session(&s.token).await.unwrap(), Some(s.identity.clone()));
        assert!(matches!(
            a.register(&name("ada"), "another one").await,
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            a.login(&name("ADA"), "wrong password").await,
            Err(AccountError::BadCredentials)
        ));
        assert!(matches!(
            a.login(&name("nobody"), "correct horse").await,
            Err(AccountError::BadCredentials)
        ));
        let again = a.login(&name("ada"), "correct horse").await.unwrap();
        assert_eq!(again.identity.name, name("Ada"));
        let watch = a.watch_session(&s.identity);
        a.logout(&s.token).await.unwrap();
        assert_eq!(watch.wait().await, "Logged out.");
        assert_eq!(a.session(&s.token).await.unwrap(), None);
        assert!(a.session(&again.token).await.unwrap().is_some());
        assert!(matches!(
            a.register(&name("Bo"), "short").await,
            Err(AccountError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn guests_never_hold_a_registered_name() {
        let a = accounts().await;
        let guest = a.guest(&name("Zoë")).await.unwrap();
        assert!(a.session(&guest.token).await.unwrap().unwrap().is_guest());
        let open_tab = a.watch_session(&guest.identity);
        a.register(&name("zoë"), "a long password").await.unwrap();
        assert!(open_tab.reason().is_some(), "the guest's tab is closed");
        // The guest loses the name as soon as it is registered, and cannot take it again.
        assert_eq!(a.session(&guest.token).await.unwrap(), None);
        assert!(matches!(
            a.guest(&name("ZOË")).await,
            Err(AccountError::NameTaken)
        ));
    }

    #[tokio::test]
    async fn private_rooms_and_direct_messages_admit_members_only() {
        let a = accounts().await;
        let ada = a
            .register(&name("ada"), "password one")
            .await
            .unwrap()
            .identity;
        let bob = a
            .register(&name("bob"), "password two")
            .await
            .unwrap()
            .identity;
        let eve = a
            .register(&name("eve"), "password six")
            .await
            .unwrap()
            .identity;
        let guest = a.guest(&name("gus")).await.unwrap().identity;
        let store = crate::server::store::MemoryStore::new(1, 100);
        macro_rules! private {
            ($room:expr, $who:expr) => {
                a.create_restricted($room, RoomKind::Private, $who, &[], &store)
            };
        }
        let room = RoomId("secret".into());
        assert!(private!(&room, &ada).await.unwrap());
        assert!(a.may_enter(&room, Some(&ada)));
        assert!(!a.may_enter(&room, Some(&bob)));
        assert!(!a.may_enter(&room, None));
        assert!(a.invite(&room, &bob, &name("bob")).await.is_err());
        a.invite(&room, &ada, &name("BOB")).await.unwrap();
        assert!(a.may_enter(&room, Some(&bob)));
        assert!(a.invite(&room, &ada, &name("gus")).await.is_err());
        assert!(!private!(&room, &eve).await.unwrap(), "the name is taken");
        assert!(private!(&RoomId("x".into()), &guest).await.is_err());
        // A room that exists (public) can never be made private.
        store.create_room(&RoomId("open".into())).await.unwrap();
        assert!(!private!(&RoomId("open".into()), &ada).await.unwrap());
        assert!(a.may_enter(&RoomId("open".into()), Some(&bob)));

        let dm = a.direct(&ada, &name("eve"), &store).await.unwrap();
        assert_eq!(a.direct(&eve, &name("ada"), &store).await.unwrap(), dm);
        assert!(a.may_enter(&dm, Some(&eve)) && a.may_enter(&dm, Some(&ada)));
        assert!(!a.may_enter(&dm, Some(&bob)) && !a.may_enter(&dm, Some(&guest)));
        assert!(a.invite(&dm, &ada, &name("bob")).await.is_err());
        // Reserved names are never public, even before the conversation exists.
        assert!(!a.may_enter(&RoomId("dm-1-9".into()), Some(&ada)));
        assert!(!a.may_enter(&RoomId("DM-x".into()), Some(&ada)));
        assert!(a.may_enter(&RoomId("general".into()), None));
        assert_eq!(a.rooms_of(&bob).len(), 1);
        assert_eq!(a.rooms_of(&ada).len(), 2);
    }

    #[tokio::test]
    async fn membership_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::server::store::sql::SqlStore::open(dir.path(), 0)
            .await
            .unwrap();
        let a = Accounts::open(store.db().clone(), Duration::from_secs(60))
            .await
            .unwrap();
        let ada = a.register(&name("ada"), "password one").await.unwrap();
        let bob = a.register(&name("bob"), "password two").await.unwrap();
        let dm = a.direct(&ada.identity, &name("bob"), &store).await.unwrap();
        drop(a);
        let b = Accounts::open(store.db().clone(), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(b.may_enter(&dm, Some(&bob.identity)));
        assert_eq!(b.session(&ada.token).await.unwrap(), Some(ada.identity));
    }

    /// Every look-alike of a registered "Ada" from the issue: refused as a guest name and as
    /// an account, with a sentence; a name that merely shares letters is fine.
    #[tokio::test]
    async fn look_alikes_of_an_account_are_refused_to_guests_and_registration() {
        let a = accounts().await;
        a.register(&name("Ada"), "password one").await.unwrap();
        for payload in [
            "Ada\u{200b}",
            "\u{410}da",
            "Ad\u{430}",
            "Ada\u{200d}",
            "\u{202e}adA",
            "\u{ff21}da",
            "Ada\u{2060}",
            "\u{2066}Ada\u{2069}",
            "ADA",
        ] {
            let n = name(payload);
            assert!(
                matches!(a.guest(&n).await, Err(AccountError::NameTaken)),
                "guest {payload:?}"
            );
            match a.register(&n, "password two").await {
                Err(AccountError::Invalid(sentence)) => assert!(
                    sentence.contains("looks the same") || sentence.contains("taken"),
                    "{payload:?}: {sentence}"
                ),
                other => panic!("register {payload:?}: {:?}", other.map(|s| s.identity)),
            }
        }
        assert!(a.guest(&name("Adam")).await.is_ok());
        assert!(a.register(&name("Ida"), "password three").await.is_ok());
    }

    #[tokio::test]
    async fn registering_a_name_ends_guest_sessions_that_look_like_it() {
        let a = accounts().await;
        let guest = a.guest(&name("\u{410}da")).await.unwrap();
        let tab = a.watch_session(&guest.identity);
        a.register(&name("Ada"), "password one").await.unwrap();
        assert!(
            tab.reason().is_some(),
            "the look-alike guest's tab is closed"
        );
        assert_eq!(a.session(&guest.token).await.unwrap(), None);
    }

    #[tokio::test]
    async fn accounts_made_before_skeletons_get_theirs_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::server::store::sql::SqlStore::open(dir.path(), 0)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users (name, name_key, password_hash, created_at) \
             VALUES ('Ada', 'ada', 'x', 0), ('\u{410}da', '\u{430}da', 'x', 1)",
        )
        .execute(store.sqlite_pool())
        .await
        .unwrap();
        let a = Accounts::open(store.db().clone(), Duration::from_secs(60))
            .await
            .unwrap();
        let skeletons: Vec<Option<String>> =
            sqlx::query_scalar("SELECT name_skeleton FROM users ORDER BY id")
                .fetch_all(store.sqlite_pool())
                .await
                .unwrap();
        assert_eq!(skeletons, vec![Some("ada".to_string()), None]);
        assert!(matches!(
            a.guest(&name("Ad\u{430}")).await,
            Err(AccountError::NameTaken)
        ));
    }

    /// Expired guest sessions are deleted by the timer, with nobody logging out.
    #[tokio::test]
    async fn expired_guest_sessions_are_swept_on_a_timer() {
        let a = Arc::new(
            Accounts::in_memory(Duration::from_secs(3600))
                .await
                .unwrap()
                .with_guest_ttl(Duration::from_millis(1)),
        );
        let ada = a.register(&name("ada"), "password one").await.unwrap();
        for i in 0..100 {
            a.guest(&name(&format!("g{i}"))).await.unwrap();
        }
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions")
                .fetch_one(a.sqlite_pool())
                .await
                .unwrap()
        };
        assert_eq!(count().await, 101);
        // One guest stays; every guest and the account have read something.
        sqlx::query("UPDATE sessions SET expires_at = 1 << 60 WHERE guest_name = 'g0'")
            .execute(a.sqlite_pool())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO read_marks (reader, room, seq) \
             SELECT CASE WHEN user_id IS NULL THEN 'g:' || id ELSE 'a:' || user_id END, \
             'design', 3 FROM sessions",
        )
        .execute(a.sqlite_pool())
        .await
        .unwrap();
        a.spawn_expiry_sweeps(Duration::from_millis(10));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count().await > 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} rows",
                count().await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            a.session(&ada.token).await.unwrap().is_some(),
            "logins stay"
        );
        // One more sweep, so the marks statement of the sweep that took the sessions has run.
        a.sweep_expired().await.unwrap();
        let readers: Vec<String> = sqlx::query_scalar("SELECT reader FROM read_marks")
            .fetch_all(a.sqlite_pool())
            .await
            .unwrap();
        let g0: i64 = sqlx::query_scalar("SELECT id FROM sessions WHERE guest_name = 'g0'")
            .fetch_one(a.sqlite_pool())
            .await
            .unwrap();
        assert_eq!(readers.len(), 2, "{readers:?}");
        assert!(readers.contains(&format!("g:{g0}")), "{readers:?}");
        assert!(readers.iter().any(|r| r.starts_with("a:")), "{readers:?}");
    }
}
