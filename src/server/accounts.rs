//! Who people are and where they may go: accounts, sessions (registered or guest), and the
//! membership of private rooms and direct messages.
//!
//! Everything is in SQLite: the history's own file by default, or a private in-memory
//! database with `--store memory`. Passwords are hashed with argon2 on the blocking pool, so
//! a burst of logins never stalls the runtime that serves live traffic, and at most one hash
//! per core runs at a time (each takes about 19 MiB and a thread): the rest wait briefly,
//! then are told to try again. The cookie carries a random token; only its SHA-256 is
//! stored.
//!
//! Room access is read on every join, send and history load, so the membership of the
//! (few) non-public rooms is also kept in memory and checked without touching the database.
//! A room that is not in `room_access` is public; names starting with `dm-` are reserved for
//! direct messages and are never public. A new restricted room's rules enter that memory
//! before the room exists anywhere, and the room is stored together with them
//! ([`Accounts::create_restricted`]), so no join can find the room without its rules. The
//! rules for who may create and enter rooms are in `server::rooms`.

use crate::protocol::{AuthorKey, Person, RoomId, UserName};
use crate::server::hub::now_ms;
use crate::server::store::{Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";

pub const PASSWORD_RULE: &str = "Passwords are 8–128 characters.";

/// Prefix of direct-message room ids (`dm-<lower user id>-<higher user id>`).
pub const DIRECT_PREFIX: &str = "dm-";

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

/// What kind of room a room is, as far as access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomKind {
    Public,
    Private,
    Direct,
}

/// A non-public room's members, by user id, with their names for display.
#[derive(Clone, Debug)]
pub struct Restricted {
    pub kind: RoomKind,
    pub members: BTreeMap<i64, UserName>,
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
    pool: SqlitePool,
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
}

/// How long a login or registration waits for a hashing slot before it is refused.
pub const HASH_WAIT: Duration = Duration::from_secs(2);

/// How long a looked-up session is trusted without asking the database again. Logging out
/// and registering a guest's name evict at once, so this only bounds how long an expiry or
/// a change made by another process goes unnoticed.
const CACHE_MS: u64 = 60_000;

/// How long a guest session lasts unless [`Accounts::with_guest_ttl`] says otherwise.
pub const DEFAULT_GUEST_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

struct LiveSession {
    ended: Arc<SessionEnd>,
    /// For a guest session, the skeleton of the name it holds.
    guest_key: Option<String>,
}

/// Tells a session's open connections that it ended, and why (the close frame's reason).
///
/// Every connection holds one of these for its whole life, so it is kept small: a `OnceLock`
/// and a `Notify`, where a tokio `watch` channel costs about 250 bytes more per session.
#[derive(Default)]
pub struct SessionEnd {
    reason: OnceLock<&'static str>,
    notify: Notify,
}

impl SessionEnd {
    /// Resolves with the reason once the session has ended.
    pub async fn wait(&self) -> &'static str {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        loop {
            // Registered before the check, so an end between the two still wakes us.
            notified.as_mut().enable();
            if let Some(reason) = self.reason.get() {
                return reason;
            }
            notified.as_mut().await;
            notified.set(self.notify.notified());
        }
    }

    /// The reason, if the session has ended.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason.get().copied()
    }

    fn end(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.notify.notify_waiters();
    }
}

struct Cached {
    identity: Identity,
    until_ms: u64,
}

/// A new session: who it is, and the token to put in the cookie.
pub struct NewSession {
    pub identity: Identity,
    pub token: String,
}

impl Accounts {
    /// Accounts in an existing, migrated database (the SQLite store's pool).
    pub async fn open(pool: SqlitePool, session_ttl: Duration) -> Result<Accounts, StoreError> {
        Accounts::open_with(pool, session_ttl, true).await
    }

    async fn open_with(
        pool: SqlitePool,
        session_ttl: Duration,
        history_here: bool,
    ) -> Result<Accounts, StoreError> {
        let accounts = Accounts {
            pool,
            history_here,
            session_ttl,
            guest_ttl: session_ttl.min(DEFAULT_GUEST_TTL),
            restricted: RwLock::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
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
        Accounts::open_with(pool, session_ttl, false).await
    }

    /// Sets how long guest sessions last (at most as long as logins).
    pub fn with_guest_ttl(mut self, ttl: Duration) -> Accounts {
        self.guest_ttl = ttl.min(self.session_ttl);
        self
    }

    async fn load_restricted(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT a.room, a.kind, u.id, u.name FROM room_access a \
             JOIN room_members m ON m.room = a.room JOIN users u ON u.id = m.user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut map = self.write_restricted();
        for row in rows {
            let room = RoomId(row.get(0));
            let kind: String = row.get(1);
            let entry = map.entry(room).or_insert_with(|| Restricted {
                kind: if kind == "direct" {
                    RoomKind::Direct
                } else {
                    RoomKind::Private
                },
                members: BTreeMap::new(),
            });
            entry.members.insert(row.get(2), UserName(row.get(3)));
        }
        Ok(())
    }

    fn read_restricted(&self) -> std::sync::RwLockReadGuard<'_, HashMap<RoomId, Restricted>> {
        self.restricted.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_restricted(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<RoomId, Restricted>> {
        self.restricted.write().unwrap_or_else(|p| p.into_inner())
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
        let inserted = sqlx::query(
            "INSERT INTO users (name, name_key, name_skeleton, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (name_key) DO NOTHING RETURNING id",
        )
        .bind(name.as_str())
        .bind(name_key(name))
        .bind(&skeleton)
        .bind(hash)
        .bind(now_ms() as i64)
        .fetch_optional(&self.pool)
        .await;
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
        let Some(row) = inserted else {
            return Err(AccountError::Invalid(
                "That user name is taken; choose another.".to_string(),
            ));
        };
        // A guest who had this name, or one that looks like it, loses it now: open
        // connections close, and the cached session goes.
        self.end_live(
            |_, l| l.guest_key.as_deref() == Some(skeleton.as_str()),
            "Your guest name now belongs to a registered account; choose another.",
        );
        self.lock_cache()
            .retain(|_, c| !(c.identity.is_guest() && name_skeleton(&c.identity.name) == skeleton));
        self.new_session(Some(row.get(0)), name.clone())
            .await?
            .ok_or(AccountError::BadCredentials)
    }

    /// Refuses a new account whose name looks like an existing account's (a different
    /// name with the same skeleton), naming the account it looks like.
    async fn refuse_look_alike(&self, name: &UserName, skeleton: &str) -> Result<(), AccountError> {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT name FROM users WHERE name_skeleton = ? AND name_key != ? LIMIT 1",
        )
        .bind(skeleton)
        .bind(name_key(name))
        .fetch_optional(&self.pool)
        .await?;
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
        let rows =
            sqlx::query("SELECT id, name FROM users WHERE name_skeleton IS NULL ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        for row in rows {
            let id: i64 = row.get(0);
            let name = UserName(row.get(1));
            let done = sqlx::query("UPDATE users SET name_skeleton = ? WHERE id = ?")
                .bind(name_skeleton(&name))
                .bind(id)
                .execute(&self.pool)
                .await;
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
        let row = sqlx::query("SELECT id, name, password_hash FROM users WHERE name_key = ?")
            .bind(name_key(name))
            .fetch_optional(&self.pool)
            .await?;
        // An unknown name costs the same hash as a wrong password, so timing does not tell
        // which names exist.
        let (id, stored_name, hash) = match row {
            Some(row) => (
                Some(row.get::<i64, _>(0)),
                row.get::<String, _>(1),
                row.get(2),
            ),
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

    /// Stores a new session (for a guest, in the same statement that checks no account has
    /// the name: `None` if one does) and caches it, since its first use follows at once.
    async fn new_session(
        &self,
        user_id: Option<i64>,
        name: UserName,
    ) -> Result<Option<NewSession>, AccountError> {
        let token = new_token()?;
        let hash = token_hash(&token);
        let now = now_ms();
        let ttl = if user_id.is_some() {
            self.session_ttl
        } else {
            self.guest_ttl
        };
        let expires = now + ttl.as_millis() as u64;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO sessions (token_hash, user_id, guest_name, created_at, expires_at) \
             SELECT ?, ?, ?, ?, ? \
             WHERE ? IS NOT NULL OR NOT EXISTS \
             (SELECT 1 FROM users WHERE name_key = ? OR name_skeleton = ?) \
             RETURNING id",
        )
        .bind(&hash)
        .bind(user_id)
        .bind(user_id.is_none().then(|| name.as_str().to_string()))
        .bind(now as i64)
        .bind(expires as i64)
        .bind(user_id)
        .bind(name_key(&name))
        .bind(user_id.is_none().then(|| name_skeleton(&name)))
        .fetch_optional(&self.pool)
        .await?;
        let Some(id) = id else { return Ok(None) };
        let identity = Identity {
            name,
            user_id,
            session_id: id,
        };
        self.cache_put(hash, identity.clone(), expires.min(now + CACHE_MS), now);
        Ok(Some(NewSession { identity, token }))
    }

    /// The identity behind a session token, if the session is live. A guest session whose
    /// name has since been registered by someone else is no longer valid.
    pub async fn session(&self, token: &str) -> Result<Option<Identity>, StoreError> {
        if token.len() != 64 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let now = now_ms();
        if let Some(hit) = self.lock_cache().get(&hash) {
            if hit.until_ms > now {
                return Ok(Some(hit.identity.clone()));
            }
        }
        let row = sqlx::query(
            "SELECT s.id, s.user_id, u.name, s.guest_name, s.expires_at FROM sessions s \
             LEFT JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(&hash)
        .bind(now as i64)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at = row.get::<i64, _>(4).max(0) as u64;
        let session_id: i64 = row.get(0);
        let user_id: Option<i64> = row.get(1);
        let identity = match (
            user_id,
            row.get::<Option<String>, _>(2),
            row.get::<Option<String>, _>(3),
        ) {
            (Some(id), Some(name), _) => Identity {
                name: UserName(name),
                user_id: Some(id),
                session_id,
            },
            (None, _, Some(guest)) => {
                let name = UserName(guest);
                if self.account_looking_like(&name).await? {
                    return Ok(None);
                }
                Identity {
                    name,
                    user_id: None,
                    session_id,
                }
            }
            _ => return Ok(None),
        };
        self.cache_put(hash, identity.clone(), expires_at.min(now + CACHE_MS), now);
        Ok(Some(identity))
    }

    fn cache_put(&self, hash: Vec<u8>, identity: Identity, until_ms: u64, now: u64) {
        let mut cache = self.lock_cache();
        if cache.len() >= 10_000 {
            cache.retain(|_, c| c.until_ms > now);
        }
        cache.insert(hash, Cached { identity, until_ms });
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends a session: its cookie stops working and its open connections are closed.
    pub async fn logout(&self, token: &str) -> Result<(), StoreError> {
        self.lock_cache().remove(&token_hash(token));
        let id: Option<i64> =
            sqlx::query_scalar("DELETE FROM sessions WHERE token_hash = ? RETURNING id")
                .bind(token_hash(token))
                .fetch_optional(&self.pool)
                .await?;
        if let Some(id) = id {
            self.end_live(|sid, _| sid == id, "Logged out.");
        }
        // Logouts also sweep, besides the timer ([`Accounts::spawn_expiry_sweeps`]).
        self.sweep_expired().await?;
        Ok(())
    }

    /// Deletes expired sessions; returns how many.
    pub async fn sweep_expired(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now_ms() as i64)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes expired sessions every `interval` for as long as these accounts exist, so
    /// a burst of guest sessions leaves no rows behind once they expire, whether or not
    /// anyone logs out.
    pub fn spawn_expiry_sweeps(self: &Arc<Self>, interval: Duration) {
        let accounts = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(accounts) = accounts.upgrade() else {
                    return;
                };
                if let Err(err) = accounts.sweep_expired().await {
                    tracing::warn!(%err, "sweeping expired sessions failed");
                }
            }
        });
    }

    /// What tells a connection that its session ended, and why (for the close frame).
    pub fn watch_session(&self, who: &Identity) -> Arc<SessionEnd> {
        let mut live = self.lock_live();
        live.entry(who.session_id)
            .or_insert_with(|| LiveSession {
                ended: Arc::default(),
                guest_key: who.is_guest().then(|| name_skeleton(&who.name)),
            })
            .ended
            .clone()
    }

    /// Sessions with a connection watching them (or about to: one is counted from the
    /// upgrade request on).
    pub fn live_sessions(&self) -> usize {
        self.lock_live().len()
    }

    /// Forgets a session's watch once none of its connections is left.
    pub fn release_session(&self, session_id: i64) {
        let mut live = self.lock_live();
        if live
            .get(&session_id)
            .is_some_and(|l| Arc::strong_count(&l.ended) == 1)
        {
            live.remove(&session_id);
        }
    }

    /// Closes the connections of every live session `matches` picks, saying `reason`.
    fn end_live(&self, matches: impl Fn(i64, &LiveSession) -> bool, reason: &'static str) {
        self.lock_live().retain(|&id, l| {
            if matches(id, l) {
                l.ended.end(reason);
                false
            } else {
                true
            }
        });
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<i64, LiveSession>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an account has this name, or one that looks the same.
    async fn account_looking_like(&self, name: &UserName) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM users WHERE name_key = ? OR name_skeleton = ? LIMIT 1",
        )
        .bind(name_key(name))
        .bind(name_skeleton(name))
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn account_named(&self, name: &UserName) -> Result<Option<(i64, UserName)>, StoreError> {
        let row = sqlx::query("SELECT id, name FROM users WHERE name_key = ?")
            .bind(name_key(name))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get(0), UserName(r.get(1)))))
    }

    // ---- rooms ----

    /// Whether `who` may see, join, read and post in `room`.
    pub fn may_enter(&self, room: &RoomId, who: Option<&Identity>) -> bool {
        match self.read_restricted().get(room) {
            Some(r) => who
                .and_then(|w| w.user_id)
                .is_some_and(|id| r.members.contains_key(&id)),
            None => !is_reserved(room),
        }
    }

    /// The kind and (for non-public rooms) members of a room.
    pub fn room_access(&self, room: &RoomId) -> (RoomKind, Vec<UserName>) {
        match self.read_restricted().get(room) {
            Some(r) => (r.kind, r.members.values().cloned().collect()),
            None => (RoomKind::Public, Vec::new()),
        }
    }

    /// The non-public rooms `who` belongs to, with their kind and members.
    pub fn rooms_of(&self, who: &Identity) -> Vec<(RoomId, RoomKind, Vec<UserName>)> {
        let Some(id) = who.user_id else {
            return Vec::new();
        };
        let mut rooms: Vec<_> = self
            .read_restricted()
            .iter()
            .filter(|(_, r)| r.members.contains_key(&id))
            .map(|(room, r)| (room.clone(), r.kind, r.members.values().cloned().collect()))
            .collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        rooms
    }

    /// Makes a new room private (or a direct conversation) with `owner` and `others` as its
    /// members; false (and nothing changed) when the name is taken, by a room of any kind.
    ///
    /// The rules are claimed in memory first, so from that moment every join is checked
    /// against them; only then does the room come to exist, together with its rules (one
    /// transaction when history shares this database, as with SQLite). A room that already
    /// existed is never made private, so nobody admitted to it while public can stay.
    pub async fn create_restricted(
        &self,
        room: &RoomId,
        kind: RoomKind,
        owner: &Identity,
        others: &[(i64, UserName)],
        store: &dyn Store,
    ) -> Result<bool, AccountError> {
        let Some(owner_id) = owner.user_id else {
            return Err(AccountError::NotAllowed(
                "Register or log in to create a private room.".to_string(),
            ));
        };
        if kind == RoomKind::Private && is_reserved(room) {
            return Err(AccountError::Invalid(format!(
                "Room names starting with {DIRECT_PREFIX} are kept for direct messages; choose another."
            )));
        }
        let mut members = BTreeMap::from([(owner_id, owner.name.clone())]);
        members.extend(others.iter().cloned());
        {
            let mut map = self.write_restricted();
            if map.contains_key(room) {
                return Ok(false);
            }
            map.insert(
                room.clone(),
                Restricted {
                    kind,
                    members: members.clone(),
                },
            );
        }
        let stored = self
            .store_restricted(room, kind, owner_id, &members, store)
            .await;
        if !matches!(stored, Ok(true)) {
            self.write_restricted().remove(room);
        }
        stored
    }

    /// Stores a new restricted room and its members; false when the room already existed.
    async fn store_restricted(
        &self,
        room: &RoomId,
        kind: RoomKind,
        owner_id: i64,
        members: &BTreeMap<i64, UserName>,
        store: &dyn Store,
    ) -> Result<bool, AccountError> {
        let now = now_ms() as i64;
        if !self.history_here && !store.create_room(room).await? {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        if self.history_here {
            let created = sqlx::query(
                "INSERT INTO rooms (name, created_at, last_active) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(room.as_str())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !created {
                return Ok(false);
            }
        }
        let created = sqlx::query(
            "INSERT INTO room_access (room, kind, owner, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (room) DO NOTHING",
        )
        .bind(room.as_str())
        .bind(if kind == RoomKind::Direct {
            "direct"
        } else {
            "private"
        })
        .bind(owner_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !created {
            return Ok(false);
        }
        for id in members.keys() {
            sqlx::query("INSERT INTO room_members (room, user_id) VALUES (?, ?)")
                .bind(room.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Adds the account called `name` to a private room `by` belongs to.
    pub async fn invite(
        &self,
        room: &RoomId,
        by: &Identity,
        name: &UserName,
    ) -> Result<UserName, AccountError> {
        let kind = self.read_restricted().get(room).map(|r| r.kind);
        if !self.may_enter(room, Some(by)) {
            return Err(AccountError::NotAllowed(
                "Only members of a private room can invite people to it.".to_string(),
            ));
        }
        match kind {
            Some(RoomKind::Private) => {}
            Some(RoomKind::Direct) => {
                return Err(AccountError::Invalid(
                    "A direct conversation is always between two people; start a private room to talk with more."
                        .to_string(),
                ))
            }
            _ => {
                return Err(AccountError::Invalid(
                    "Everyone can already join a public room; share its link instead.".to_string(),
                ))
            }
        }
        let (id, invitee) = self.account_named(name).await?.ok_or_else(|| {
            AccountError::Invalid(format!(
                "There is no account called {name}; check the spelling (guests cannot be invited)."
            ))
        })?;
        sqlx::query("INSERT OR IGNORE INTO room_members (room, user_id) VALUES (?, ?)")
            .bind(room.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if let Some(r) = self.write_restricted().get_mut(room) {
            r.members.insert(id, invitee.clone());
        }
        Ok(invitee)
    }

    /// The direct-message room between `me` and the account called `other`, and whether it
    /// exists yet.
    pub async fn direct_room(
        &self,
        me: &Identity,
        other: &UserName,
    ) -> Result<(RoomId, bool), AccountError> {
        let (room, _) = self.direct_pair(me, other).await?;
        let exists = self.read_restricted().contains_key(&room);
        Ok((room, exists))
    }

    async fn direct_pair(
        &self,
        me: &Identity,
        other: &UserName,
    ) -> Result<(RoomId, (i64, UserName)), AccountError> {
        let Some(my_id) = me.user_id else {
            return Err(AccountError::NotAllowed(
                "Register or log in to send direct messages.".to_string(),
            ));
        };
        let (other_id, other_name) = self.account_named(other).await?.ok_or_else(|| {
            AccountError::Invalid(format!(
                "There is no account called {other}; check the spelling (guests cannot receive direct messages)."
            ))
        })?;
        if other_id == my_id {
            return Err(AccountError::Invalid(
                "That is you; enter someone else's user name.".to_string(),
            ));
        }
        let (lo, hi) = (my_id.min(other_id), my_id.max(other_id));
        let room = RoomId(format!("{DIRECT_PREFIX}{lo}-{hi}"));
        Ok((room, (other_id, other_name)))
    }

    /// The direct-message room between `me` and the account called `other`, created on first
    /// use.
    pub async fn direct(
        &self,
        me: &Identity,
        other: &UserName,
        store: &dyn Store,
    ) -> Result<RoomId, AccountError> {
        let (room, other) = self.direct_pair(me, other).await?;
        if self.read_restricted().contains_key(&room) {
            return Ok(room);
        }
        // Not created means a request from the other person made it a moment ago.
        self.create_restricted(&room, RoomKind::Direct, me, &[other], store)
            .await?;
        Ok(room)
    }
}

/// Names starting with `dm-` (any case) belong to direct messages.
pub fn is_reserved(room: &RoomId) -> bool {
    room.as_str()
        .get(..DIRECT_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(DIRECT_PREFIX))
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

fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if (8..=128).contains(&n) {
        Ok(())
    } else {
        Err(AccountError::Invalid(PASSWORD_RULE.to_string()))
    }
}

fn new_token() -> Result<String, AccountError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AccountError::Store(StoreError::Unavailable(format!("no randomness: {e}"))))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

async fn hash_password(hashing: &Semaphore, password: String) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| AccountError::Store(StoreError::Unavailable(format!("no randomness: {e}"))))?;
    blocking(hashing, move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
}

async fn verify_password(
    hashing: &Semaphore,
    password: String,
    hash: String,
) -> Result<bool, AccountError> {
    blocking(hashing, move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| e.to_string())?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

/// Runs argon2 on the blocking pool, once a hashing slot is free: it takes tens of
/// milliseconds of CPU and about 19 MiB by design, so unbounded it would take a thread and
/// that memory per concurrent login. Waits at most [`HASH_WAIT`] for the slot.
async fn blocking<T: Send + 'static>(
    hashing: &Semaphore,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, AccountError> {
    let _permit = match tokio::time::timeout(HASH_WAIT, hashing.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => return Err(AccountError::Busy),
    };
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| {
            AccountError::Store(StoreError::Unavailable(format!(
                "password hashing failed: {e}"
            )))
        })
}

/// A valid hash of a password nobody has, verified against for unknown names.
fn dummy_hash() -> &'static str {
    // Computed once, at start-up ([`Accounts::open`]).
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::encode_b64(b"hearth-no-user!!").expect("16-byte salt encodes");
        Argon2::default()
            .hash_password(b"no account has this password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let store = crate::server::store::sqlite::SqliteStore::open(dir.path(), 0)
            .await
            .unwrap();
        let a = Accounts::open(store.pool().clone(), Duration::from_secs(60))
            .await
            .unwrap();
        let ada = a.register(&name("ada"), "password one").await.unwrap();
        let bob = a.register(&name("bob"), "password two").await.unwrap();
        let dm = a.direct(&ada.identity, &name("bob"), &store).await.unwrap();
        drop(a);
        let b = Accounts::open(store.pool().clone(), Duration::from_secs(60))
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
        let store = crate::server::store::sqlite::SqliteStore::open(dir.path(), 0)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users (name, name_key, password_hash, created_at) \
             VALUES ('Ada', 'ada', 'x', 0), ('\u{410}da', '\u{430}da', 'x', 1)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let a = Accounts::open(store.pool().clone(), Duration::from_secs(60))
            .await
            .unwrap();
        let skeletons: Vec<Option<String>> =
            sqlx::query_scalar("SELECT name_skeleton FROM users ORDER BY id")
                .fetch_all(store.pool())
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
                .fetch_one(&a.pool)
                .await
                .unwrap()
        };
        assert_eq!(count().await, 101);
        a.spawn_expiry_sweeps(Duration::from_millis(10));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count().await > 1 {
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
    }
}
