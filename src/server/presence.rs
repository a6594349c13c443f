//! Who is online in one room, keyed by person (account or guest session, never the display
//! name) with a set of connections each (Phoenix-style).
//!
//! Two tabs of one session (or one account) are one person; two guests who chose the same
//! name are two. When a person's last connection drops, they stay listed for a grace period
//! so a flapping network or a reload does not make them blink out and back in; a generation
//! number cancels the pending removal if they come back in time.
//! An explicit `leave` skips the grace period. This type is pure state: the room actor owns
//! the timers and the broadcasting.

use crate::protocol::{AuthorKey, Person};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

pub type ConnId = u64;

/// People keyed by who they are ([`AuthorKey`]), not by name: two guests who both call
/// themselves "Ada" are two entries. Kept in display order (name, then key).
///
/// Each person is one shared [`Person`], the one their connection handles hold: a big room
/// keeps no copy of anyone's name or key.
#[derive(Default)]
pub struct Presence {
    users: BTreeMap<Listed, Entry>,
    /// The listed people again, found by key.
    by_key: HashSet<ByKey>,
    next_generation: u64,
}

/// A listed person, ordered as the Online list shows people.
#[derive(Clone)]
struct Listed(Arc<Person>);

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Listed {}

impl PartialOrd for Listed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Listed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.order(&other.0)
    }
}

/// A listed person, hashed and compared by key alone (so the set looks up by key).
struct ByKey(Arc<Person>);

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for ByKey {}

impl std::hash::Hash for ByKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.key.hash(state)
    }
}

impl Borrow<AuthorKey> for ByKey {
    fn borrow(&self) -> &AuthorKey {
        &self.0.key
    }
}

#[derive(Default)]
struct Entry {
    /// A person has one connection per tab or device: a few at most, so a list.
    conns: Vec<ConnId>,
    /// Set while the user has no connections and a removal is pending.
    pending: Option<u64>,
}

/// The connection that stands for everyone another node lists in a room: its people are
/// listed here through it, so a person on two nodes is one entry, and leaves only when
/// neither lists them. Local connection ids count up from 1 and never reach these.
pub fn remote_conn(node: u64) -> ConnId {
    (1 << 63) | node
}

fn is_local(entry: &Entry) -> bool {
    entry.conns.is_empty() || entry.conns.iter().any(|c| c >> 63 == 0)
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
    fn slot(&self, key: &AuthorKey) -> Option<Listed> {
        self.by_key.get(key).map(|listed| Listed(listed.0.clone()))
    }

    /// Adds a connection; true when the person was not listed before (announce a join).
    pub fn add(&mut self, who: &Arc<Person>, conn: ConnId) -> bool {
        let (slot, newly_online) = match self.slot(&who.key) {
            Some(slot) => (slot, false),
            None => {
                self.by_key.insert(ByKey(who.clone()));
                (Listed(who.clone()), true)
            }
        };
        let entry = self.users.entry(slot).or_default();
        if !entry.conns.contains(&conn) {
            entry.conns.push(conn);
        }
        entry.pending = None;
        newly_online
    }

    /// Removes a connection. With `grace`, a person whose last connection this was stays
    /// listed until [`Presence::expire`].
    pub fn remove(&mut self, key: &AuthorKey, conn: ConnId, grace: bool) -> Removal {
        let Some(slot) = self.slot(key) else {
            return Removal::StillOnline;
        };
        let Some(entry) = self.users.get_mut(&slot) else {
            return Removal::StillOnline;
        };
        entry.conns.retain(|c| *c != conn);
        if !entry.conns.is_empty() {
            return Removal::StillOnline;
        }
        if grace {
            self.next_generation += 1;
            entry.pending = Some(self.next_generation);
            Removal::Pending(self.next_generation)
        } else {
            self.users.remove(&slot);
            self.by_key.remove(key);
            Removal::Left
        }
    }

    /// Ends a grace period; true when the person is removed now (announce the leave).
    pub fn expire(&mut self, key: &AuthorKey, generation: u64) -> bool {
        let Some(slot) = self.slot(key) else {
            return false;
        };
        let expired = self
            .users
            .get(&slot)
            .is_some_and(|e| e.conns.is_empty() && e.pending == Some(generation));
        if expired {
            self.users.remove(&slot);
            self.by_key.remove(key);
        }
        expired
    }

    /// Everyone listed, sorted by name (then key).
    pub fn online(&self) -> Vec<Person> {
        self.users
            .keys()
            .map(|listed| (*listed.0).clone())
            .collect()
    }

    /// The listed person with this key, if any.
    pub fn online_person(&self, key: &AuthorKey) -> Option<Person> {
        self.by_key.get(key).map(|listed| (*listed.0).clone())
    }

    /// The people this node lists itself: with a connection here (not one standing for
    /// another node, see [`remote_conn`]), or within their grace period here. What this node
    /// tells other nodes.
    pub fn local(&self) -> Vec<Person> {
        self.users
            .iter()
            .filter(|(_, e)| is_local(e))
            .map(|(listed, _)| (*listed.0).clone())
            .collect()
    }

    /// Whether anyone is listed because of this node (see [`Presence::local`]).
    pub fn has_local(&self) -> bool {
        self.users.values().any(is_local)
    }

    pub fn contains(&self, key: &AuthorKey) -> bool {
        self.by_key.contains(key)
    }

    pub fn count(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::UserName;

    fn account(name: &str, id: i64) -> Arc<Person> {
        Arc::new(Person {
            name: UserName(name.into()),
            key: AuthorKey::account(id),
            guest: false,
        })
    }

    fn guest(name: &str, session: i64) -> Arc<Person> {
        Arc::new(Person {
            name: UserName(name.into()),
            key: AuthorKey::guest(session),
            guest: true,
        })
    }

    #[test]
    fn two_tabs_are_one_person() {
        let mut p = Presence::default();
        let ada = account("ada", 1);
        assert!(p.add(&ada, 1));
        assert!(!p.add(&ada, 2));
        assert_eq!(p.online(), vec![(*ada).clone()]);
        assert_eq!(p.remove(&ada.key, 1, true), Removal::StillOnline);
        assert_eq!(p.count(), 1);
        assert_eq!(p.remove(&ada.key, 2, false), Removal::Left);
        assert_eq!(p.count(), 0);
    }

    #[test]
    fn two_guests_with_one_name_are_two_people() {
        let mut p = Presence::default();
        let (first, second) = (guest("Ada", 10), guest("Ada", 11));
        assert!(p.add(&first, 1));
        assert!(p.add(&second, 2), "another guest named Ada is a new join");
        assert_eq!(p.online(), vec![(*first).clone(), (*second).clone()]);
        assert_eq!(p.remove(&first.key, 1, false), Removal::Left);
        assert_eq!(
            p.online(),
            vec![(*second).clone()],
            "the other Ada is still here"
        );
    }

    #[test]
    fn grace_period_survives_a_quick_reconnect() {
        let mut p = Presence::default();
        let ada = account("ada", 1);
        p.add(&ada, 1);
        let Removal::Pending(generation) = p.remove(&ada.key, 1, true) else {
            panic!("last connection should start a grace period");
        };
        assert_eq!(
            p.online(),
            vec![(*ada).clone()],
            "still listed during the grace period"
        );
        assert!(!p.add(&ada, 2), "coming back is not a new join");
        assert!(
            !p.expire(&ada.key, generation),
            "stale timer must not remove her"
        );
        assert_eq!(p.count(), 1);
    }

    #[test]
    fn grace_period_expires_when_nobody_returns() {
        let mut p = Presence::default();
        let (ada, bob) = (account("ada", 1), guest("bob", 2));
        p.add(&ada, 1);
        p.add(&bob, 2);
        let Removal::Pending(generation) = p.remove(&ada.key, 1, true) else {
            panic!("expected a pending removal");
        };
        assert!(p.expire(&ada.key, generation));
        assert_eq!(p.online(), vec![(*bob).clone()]);
        assert!(
            !p.expire(&ada.key, generation),
            "expiring twice is harmless"
        );
    }
}
