//! Who is online in one room, keyed by user with a set of connections each (Phoenix-style).
//!
//! Two tabs under one name are one person. When a person's last connection drops, they stay
//! listed for a grace period so a flapping network or a reload does not make them blink out
//! and back in; a generation number cancels the pending removal if they come back in time.
//! An explicit `leave` skips the grace period. This type is pure state: the room actor owns
//! the timers and the broadcasting.

use crate::protocol::UserName;
use std::collections::{BTreeMap, HashSet};

pub type ConnId = u64;

#[derive(Default)]
pub struct Presence {
    users: BTreeMap<UserName, Entry>,
    next_generation: u64,
}

#[derive(Default)]
struct Entry {
    conns: HashSet<ConnId>,
    /// Set while the user has no connections and a removal is pending.
    pending: Option<u64>,
}

/// What removing a connection means for everyone else in the room.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// The user still has other connections (or was not present): nothing to announce.
    StillOnline,
    /// The user is gone now: announce the leave.
    Left,
    /// The user's last connection closed; call [`Presence::expire`] with this generation after
    /// the grace period.
    Pending(u64),
}

impl Presence {
    /// Adds a connection; true when the user was not listed before (announce a join).
    pub fn add(&mut self, user: &UserName, conn: ConnId) -> bool {
        let newly_online = !self.users.contains_key(user);
        let entry = self.users.entry(user.clone()).or_default();
        entry.conns.insert(conn);
        entry.pending = None;
        newly_online
    }

    /// Removes a connection. With `grace`, a user whose last connection this was stays listed
    /// until [`Presence::expire`].
    pub fn remove(&mut self, user: &UserName, conn: ConnId, grace: bool) -> Removal {
        let Some(entry) = self.users.get_mut(user) else {
            return Removal::StillOnline;
        };
        entry.conns.remove(&conn);
        if !entry.conns.is_empty() {
            return Removal::StillOnline;
        }
        if grace {
            self.next_generation += 1;
            entry.pending = Some(self.next_generation);
            Removal::Pending(self.next_generation)
        } else {
            self.users.remove(user);
            Removal::Left
        }
    }

    /// Ends a grace period; true when the user is removed now (announce the leave).
    pub fn expire(&mut self, user: &UserName, generation: u64) -> bool {
        let expired = self
            .users
            .get(user)
            .is_some_and(|e| e.conns.is_empty() && e.pending == Some(generation));
        if expired {
            self.users.remove(user);
        }
        expired
    }

    /// Everyone listed, sorted by name.
    pub fn online(&self) -> Vec<UserName> {
        self.users.keys().cloned().collect()
    }

    pub fn contains(&self, user: &UserName) -> bool {
        self.users.contains_key(user)
    }

    pub fn count(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName(name.into())
    }

    #[test]
    fn two_tabs_are_one_person() {
        let mut p = Presence::default();
        assert!(p.add(&user("ada"), 1));
        assert!(!p.add(&user("ada"), 2));
        assert_eq!(p.online(), vec![user("ada")]);
        assert_eq!(p.remove(&user("ada"), 1, true), Removal::StillOnline);
        assert_eq!(p.count(), 1);
        assert_eq!(p.remove(&user("ada"), 2, false), Removal::Left);
        assert_eq!(p.count(), 0);
    }

    #[test]
    fn grace_period_survives_a_quick_reconnect() {
        let mut p = Presence::default();
        p.add(&user("ada"), 1);
        let Removal::Pending(generation) = p.remove(&user("ada"), 1, true) else {
            panic!("last connection should start a grace period");
        };
        assert_eq!(
            p.online(),
            vec![user("ada")],
            "still listed during the grace period"
        );
        assert!(!p.add(&user("ada"), 2), "coming back is not a new join");
        assert!(
            !p.expire(&user("ada"), generation),
            "stale timer must not remove her"
        );
        assert_eq!(p.count(), 1);
    }

    #[test]
    fn grace_period_expires_when_nobody_returns() {
        let mut p = Presence::default();
        p.add(&user("ada"), 1);
        p.add(&user("bob"), 2);
        let Removal::Pending(generation) = p.remove(&user("ada"), 1, true) else {
            panic!("expected a pending removal");
        };
        assert!(p.expire(&user("ada"), generation));
        assert_eq!(p.online(), vec![user("bob")]);
        assert!(
            !p.expire(&user("ada"), generation),
            "expiring twice is harmless"
        );
    }
}
