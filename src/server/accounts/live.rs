//! Live sessions: one watch per session with open connections, so that ending the session
//! (logout, or a guest's name being registered) closes them with the reason.

use super::{name_skeleton, Accounts, Identity};
use crate::server::db::Db;
use crate::server::store::StoreError;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

pub(super) struct LiveSession {
    pub(super) ended: Arc<SessionEnd>,
    /// For a guest session, the skeleton of the name it holds.
    pub(super) guest_key: Option<String>,
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

impl Accounts {
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

    /// With several nodes: ends the connections of sessions that ended on another node
    /// (logged out there) whose announcement this node missed, as a periodic check against
    /// the database. Nothing on a single node, which ends its sessions itself.
    pub async fn check_live_sessions(&self) -> Result<(), StoreError> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(());
        };
        let (live, guest_names): (Vec<i64>, Vec<String>) = {
            let live = self.lock_live();
            let names = live.values().filter_map(|l| l.guest_key.clone()).collect();
            (live.keys().copied().collect(), names)
        };
        if live.is_empty() {
            return Ok(());
        }
        // Guest names an account took on another node.
        let taken: Vec<String> =
            sqlx::query_scalar("SELECT name_skeleton FROM users WHERE name_skeleton = ANY($1)")
                .bind(&guest_names)
                .fetch_all(pool)
                .await?;
        for skeleton in taken {
            self.end_guests_named(&skeleton);
        }
        let kept: HashSet<i64> = sqlx::query_scalar("SELECT id FROM sessions WHERE id = ANY($1)")
            .bind(&live)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
        let ended: HashSet<i64> = live.into_iter().filter(|id| !kept.contains(id)).collect();
        if !ended.is_empty() {
            self.lock_cache()
                .retain(|_, c| !ended.contains(&c.identity.session_id));
            self.end_live(|sid, _| ended.contains(&sid), "Logged out.");
        }
        Ok(())
    }

    /// Closes the connections of every live session `matches` picks, saying `reason`.
    pub(super) fn end_live(
        &self,
        matches: impl Fn(i64, &LiveSession) -> bool,
        reason: &'static str,
    ) {
        self.lock_live().retain(|&id, l| {
            if matches(id, l) {
                l.ended.end(reason);
                false
            } else {
                true
            }
        });
    }

    pub(super) fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<i64, LiveSession>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}
