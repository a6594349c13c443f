//! Sessions: creating them, finding the person behind a cookie (with a short cache), ending
//! them, and sweeping expired ones. The cookie carries a random token; only its SHA-256 is
//! stored.

use super::{name_key, name_skeleton, AccessNews, AccountError, Accounts, Identity};
use crate::on_db;
use crate::protocol::UserName;
use crate::server::hub::now_ms;
use crate::server::store::StoreError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a looked-up session is trusted without asking the database again. Logging out
/// and registering a guest's name evict at once, so this only bounds how long an expiry or
/// a change made by another process goes unnoticed.
pub(super) const CACHE_MS: u64 = 60_000;

/// How long a guest session lasts unless [`Accounts::with_guest_ttl`] says otherwise.
pub const DEFAULT_GUEST_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub(super) struct Cached {
    pub(super) identity: Identity,
    pub(super) until_ms: u64,
}

/// A new session: who it is, and the token to put in the cookie.
pub struct NewSession {
    pub identity: Identity,
    pub token: String,
}

pub(super) fn new_token() -> Result<String, AccountError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AccountError::Store(StoreError::Unavailable(format!("no randomness: {e}"))))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(super) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Accounts {
    /// Stores a new session (for a guest, in the same statement that checks no account has
    /// the name: `None` if one does) and caches it, since its first use follows at once.
    pub(super) async fn new_session(
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
        let id: Option<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "INSERT INTO sessions (token_hash, user_id, guest_name, created_at, expires_at) \
                 SELECT $1, $2, $3, $4, $5 \
                 WHERE $2 IS NOT NULL OR NOT EXISTS \
                 (SELECT 1 FROM users WHERE name_key = $6 OR name_skeleton = $7) \
                 RETURNING id",
            )
            .bind(&hash)
            .bind(user_id)
            .bind(user_id.is_none().then(|| name.as_str().to_string()))
            .bind(now as i64)
            .bind(expires as i64)
            .bind(name_key(&name))
            .bind(user_id.is_none().then(|| name_skeleton(&name)))
            .fetch_optional(pool)
            .await?
        });
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
        type SessionRow = (i64, Option<i64>, Option<String>, Option<String>, i64);
        let row: Option<SessionRow> = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT s.id, s.user_id, u.name, s.guest_name, s.expires_at FROM sessions s \
                 LEFT JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
            )
            .bind(&hash)
            .bind(now as i64)
            .fetch_optional(pool)
            .await?
        });
        let Some((session_id, user_id, account_name, guest_name, expires_at)) = row else {
            return Ok(None);
        };
        let expires_at = expires_at.max(0) as u64;
        let identity = match (user_id, account_name, guest_name) {
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

    pub(super) fn cache_put(&self, hash: Vec<u8>, identity: Identity, until_ms: u64, now: u64) {
        let mut cache = self.lock_cache();
        if cache.len() >= 10_000 {
            cache.retain(|_, c| c.until_ms > now);
        }
        cache.insert(hash, Cached { identity, until_ms });
    }

    pub(super) fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends a session: its cookie stops working and its open connections are closed.
    pub async fn logout(&self, token: &str) -> Result<(), StoreError> {
        self.lock_cache().remove(&token_hash(token));
        let id: Option<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar("DELETE FROM sessions WHERE token_hash = $1 RETURNING id")
                .bind(token_hash(token))
                .fetch_optional(pool)
                .await?
        });
        if let Some(id) = id {
            self.end_live(|sid, _| sid == id, "Logged out.");
            self.announce(AccessNews::SessionEnded(id));
        }
        // Logouts also sweep, besides the timer ([`Accounts::spawn_expiry_sweeps`]).
        self.sweep_expired().await?;
        Ok(())
    }

    /// Deletes expired sessions, and the read marks of guests whose session is gone (a
    /// guest's marks belong to the session); returns how many sessions.
    pub async fn sweep_expired(&self) -> Result<u64, StoreError> {
        on_db!(&self.db, pool => {
            let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now_ms() as i64)
                .execute(pool)
                .await?;
            // A range on the key rather than LIKE, so only guests' rows are visited.
            sqlx::query(
                "DELETE FROM read_marks WHERE reader >= 'g:' AND reader < 'g;' AND NOT EXISTS \
                 (SELECT 1 FROM sessions s WHERE 'g:' || s.id = read_marks.reader)",
            )
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
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
}
