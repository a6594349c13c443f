//! Who may enter which room: the membership of private rooms and direct messages, kept in
//! memory for the checks on every join, send and history load, and stored with the room.

use super::{AccessNews, AccountError, Accounts, Identity};
use crate::on_db;
use crate::protocol::{RoomId, UserName};
use crate::server::hub::now_ms;
use crate::server::store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};

/// Prefix of direct-message room ids (`dm-<lower user id>-<higher user id>`).
pub const DIRECT_PREFIX: &str = "dm-";

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

/// Names starting with `dm-` (any case) belong to direct messages.
pub fn is_reserved(room: &RoomId) -> bool {
    room.as_str()
        .get(..DIRECT_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(DIRECT_PREFIX))
}

impl Accounts {
    pub(super) async fn load_restricted(&self) -> Result<(), StoreError> {
        let rows: Vec<(String, String, i64, String)> = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT a.room, a.kind, u.id, u.name FROM room_access a \
                 JOIN room_members m ON m.room = a.room JOIN users u ON u.id = m.user_id",
            )
            .fetch_all(pool)
            .await?
        });
        let mut map = self.write_restricted();
        for (room, kind, id, name) in rows {
            let room = RoomId(room);
            let entry = map.entry(room).or_insert_with(|| Restricted {
                kind: if kind == "direct" {
                    RoomKind::Direct
                } else {
                    RoomKind::Private
                },
                members: BTreeMap::new(),
            });
            entry.members.insert(id, UserName(name));
        }
        Ok(())
    }

    pub(super) fn read_restricted(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<RoomId, Restricted>> {
        self.restricted.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write_restricted(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<RoomId, Restricted>> {
        self.restricted.write().unwrap_or_else(|p| p.into_inner())
    }

    // ---- rooms ----

    /// Whether `who` may see, join, read and post in `room`.
    /// Reads `room`'s rules from the database again, when nodes share it (PostgreSQL):
    /// another node may have made the room private, started it as a direct conversation, or
    /// invited someone since this node last looked. One query; nothing on a single node,
    /// whose memory is the truth. Rules only ever grow (no one is removed from a room), so
    /// what is read is merged in.
    pub async fn refresh_access(&self, room: &RoomId) -> Result<(), StoreError> {
        if !self.db.is_postgres() {
            return Ok(());
        }
        let rows: Vec<(String, i64, String)> = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT a.kind, u.id, u.name FROM room_access a \
                 JOIN room_members m ON m.room = a.room JOIN users u ON u.id = m.user_id \
                 WHERE a.room = $1",
            )
            .bind(room.as_str())
            .fetch_all(pool)
            .await?
        });
        let Some((kind, _, _)) = rows.first() else {
            return Ok(());
        };
        let kind = if kind == "direct" {
            RoomKind::Direct
        } else {
            RoomKind::Private
        };
        let mut map = self.write_restricted();
        let entry = map.entry(room.clone()).or_insert_with(|| Restricted {
            kind,
            members: BTreeMap::new(),
        });
        for (_, id, name) in rows {
            entry.members.insert(id, UserName(name));
        }
        Ok(())
    }

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
        match stored {
            Ok(true) => self.announce(AccessNews::Room(room.clone())),
            _ => {
                self.write_restricted().remove(room);
                // Another node's room of that name: learn its rules.
                self.refresh_access(room).await?;
            }
        }
        stored
    }

    /// Stores a new restricted room and its members; false when the room already existed.
    pub(super) async fn store_restricted(
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
        on_db!(&self.db, pool => {
        let mut tx = pool.begin().await?;
        if self.history_here {
            let created = sqlx::query(
                "INSERT INTO rooms (name, created_at, last_active) VALUES ($1, $2, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(room.as_str())
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
            "INSERT INTO room_access (room, kind, owner, created_at) VALUES ($1, $2, $3, $4) \
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
            sqlx::query("INSERT INTO room_members (room, user_id) VALUES ($1, $2)")
                .bind(room.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
        })
    }

    /// Adds the account called `name` to a private room `by` belongs to.
    pub async fn invite(
        &self,
        room: &RoomId,
        by: &Identity,
        name: &UserName,
    ) -> Result<UserName, AccountError> {
        self.refresh_access(room).await?;
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
        on_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO room_members (room, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(room.as_str())
            .bind(id)
            .execute(pool)
            .await?;
        });
        if let Some(r) = self.write_restricted().get_mut(room) {
            r.members.insert(id, invitee.clone());
        }
        self.announce(AccessNews::Room(room.clone()));
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
        self.refresh_access(&room).await?;
        let exists = self.read_restricted().contains_key(&room);
        Ok((room, exists))
    }

    pub(super) async fn direct_pair(
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
        self.refresh_access(&room).await?;
        if self.read_restricted().contains_key(&room) {
            return Ok(room);
        }
        // Not created means a request from the other person made it a moment ago.
        self.create_restricted(&room, RoomKind::Direct, me, &[other], store)
            .await?;
        Ok(room)
    }
}
