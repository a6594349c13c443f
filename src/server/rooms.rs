//! The rules for making and entering rooms, for every path that makes or enters one (the
//! forms' server functions, the WebSocket `join`).
//!
//! Guarantees:
//! - **Creating needs a session.** A room is created only for a person with a session (an
//!   account, or a guest name), and only within a budget per person and per address
//!   ([`CreationBudget`]): finding a public room that exists costs nothing, a new one costs
//!   one from each. A WebSocket `join` of a room that does not exist creates it under the
//!   same rule, so the page flow "open /r/name, join it" keeps working while a stranger
//!   cannot mint rooms by joining names.
//! - **A private room is private from its first moment.** Its access rules are claimed in
//!   memory before the room exists anywhere, then the room and its rules are stored together
//!   (one transaction when accounts and history share a database); a room that already
//!   exists can never become private. Room actors check membership when they handle a join,
//!   so a join racing the creation is either refused, or came first and made a public room
//!   the private creation then cannot take.
//! - **`general` is everyone's.** It always exists for joining and can never be claimed as
//!   a private room.
//! - **The room list is paged**, most recently active first, so no page lists more than
//!   [`ROOMS_PER_PAGE`] rooms however many exist.

use crate::names::DEFAULT_ROOM;
use crate::protocol::{RoomId, UserName};
use crate::server::accounts::{self, AccountError, Accounts, Identity, RoomKind};
use crate::server::hub::Hub;
use crate::server::limits::{address_group, Buckets};
use crate::server::room::Admit;
use crate::server::store::StoreError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// Public rooms listed per page of the home page.
pub const ROOMS_PER_PAGE: usize = 50;

/// Why a room could not be made or entered; each reads as a sentence saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// No session: log in or choose a name first (HTTP 401).
    #[error("{0}")]
    NeedSession(String),
    /// A rule was broken (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Not a member of a private room or direct conversation.
    #[error("{0}")]
    Forbidden(String),
    /// The creation budget is spent (HTTP 429, with how long to wait).
    #[error("{sentence}")]
    TooMany { wait: Duration, sentence: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccountError> for RoomError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Store(e) => RoomError::Store(e),
            AccountError::NotAllowed(s) => RoomError::Invalid(s),
            other => RoomError::Invalid(other.to_string()),
        }
    }
}

fn taken() -> RoomError {
    RoomError::Invalid("That room name is taken; choose another.".to_string())
}

fn forbidden(room: &RoomId) -> RoomError {
    RoomError::Forbidden(format!(
        "You cannot open #{room}: it is private. Ask one of its members to invite you."
    ))
}

/// Creates `room` for `who` (or finds the public room of that name), as the home page's
/// form asks; `private` makes it a members-only room with `who` as its first member.
pub async fn create(
    hub: &Hub,
    accounts: &Accounts,
    who: Option<&Identity>,
    address: IpAddr,
    room: &RoomId,
    private: bool,
) -> Result<(), RoomError> {
    let Some(who) = who else {
        return Err(RoomError::NeedSession(
            "Log in, or choose a display name on the home page, before creating a room."
                .to_string(),
        ));
    };
    if accounts::is_reserved(room) {
        return Err(RoomError::Invalid(format!(
            "Room names starting with {} are kept for direct messages; choose another.",
            accounts::DIRECT_PREFIX
        )));
    }
    if private {
        if who.is_guest() {
            return Err(RoomError::Invalid(
                "Log in or register to create a private room.".to_string(),
            ));
        }
        if room.as_str() == DEFAULT_ROOM || hub.store().room_exists(room).await? {
            return Err(taken());
        }
        hub.creations().take(who, address)?;
        if !accounts
            .create_restricted(room, RoomKind::Private, who, &[], hub.store().as_ref())
            .await?
        {
            return Err(taken());
        }
        return Ok(());
    }
    if !accounts.may_enter(room, Some(who)) {
        return Err(taken());
    }
    ensure_public(hub, accounts, who, address, room).await
}

/// Makes sure a public room exists, creating it within `who`'s budget.
async fn ensure_public(
    hub: &Hub,
    accounts: &Accounts,
    who: &Identity,
    address: IpAddr,
    room: &RoomId,
) -> Result<(), RoomError> {
    // A room with an actor exists: actors start only for rooms that passed this check.
    if hub.in_memory(room) {
        return Ok(());
    }
    if hub.store().room_exists(room).await? {
        // Another node may have just created it private: its rules were stored with it.
        accounts.refresh_access(room).await?;
        return match accounts.may_enter(room, Some(who)) {
            true => Ok(()),
            false => Err(taken()),
        };
    }
    if room.as_str() == DEFAULT_ROOM {
        hub.store().create_room(room).await?;
        return Ok(());
    }
    hub.creations().take(who, address)?;
    hub.store().create_room(room).await?;
    // A private creation may have claimed the name meanwhile; it then owns the room.
    if !accounts.may_enter(room, Some(who)) {
        return Err(taken());
    }
    Ok(())
}

/// What a WebSocket `join` of `room` needs before it goes to the room: `who` may enter it,
/// and it exists (a join of a room that does not exist creates it, within the budget).
/// The room actor checks membership again with [`admit`] when it handles the join.
pub async fn prepare_join(
    hub: &Hub,
    accounts: &Accounts,
    who: &Identity,
    address: IpAddr,
    room: &RoomId,
) -> Result<(), RoomError> {
    accounts.refresh_access(room).await?;
    if !accounts.may_enter(room, Some(who)) {
        return Err(forbidden(room));
    }
    ensure_public(hub, accounts, who, address, room)
        .await
        .map_err(|err| match err {
            RoomError::Invalid(_) => forbidden(room),
            other => other,
        })
}

/// The membership check a room actor makes for `who` when it handles a join.
pub fn admit(accounts: Arc<Accounts>, who: Identity) -> Admit {
    Arc::new(move |room| accounts.may_enter(room, Some(&who)))
}

/// Whether a room exists to post to (`general` always does).
pub async fn exists(hub: &Hub, room: &RoomId) -> Result<bool, RoomError> {
    Ok(room.as_str() == DEFAULT_ROOM || hub.store().room_exists(room).await?)
}

/// Adds the account called `name` to a private room `by` belongs to.
pub async fn invite(
    accounts: &Accounts,
    room: &RoomId,
    by: &Identity,
    name: &UserName,
) -> Result<UserName, RoomError> {
    if by.is_guest() {
        return Err(RoomError::Invalid(
            "Log in or register to invite people.".to_string(),
        ));
    }
    Ok(accounts.invite(room, by, name).await?)
}

/// The direct conversation between `me` and the account called `other`, created on first
/// use (which counts against `me`'s creation budget).
pub async fn open_direct(
    hub: &Hub,
    accounts: &Accounts,
    me: &Identity,
    address: IpAddr,
    other: &UserName,
) -> Result<RoomId, RoomError> {
    if me.is_guest() {
        return Err(RoomError::Invalid(
            "Log in or register to send direct messages.".to_string(),
        ));
    }
    let (room, exists) = accounts.direct_room(me, other).await?;
    if exists {
        return Ok(room);
    }
    hub.creations().take(me, address)?;
    accounts.direct(me, other, hub.store().as_ref()).await?;
    Ok(room)
}

/// A room as one page of the list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub room: RoomId,
    pub kind: RoomKind,
    pub members: Vec<UserName>,
    pub online: usize,
}

/// Page `page` (from 0) of the rooms `who` may see, and whether a next page may exist.
/// The first page starts with `general` and `who`'s private rooms and conversations; every
/// page then lists up to [`ROOMS_PER_PAGE`] public rooms, most recently active first.
pub async fn list(
    hub: &Hub,
    accounts: &Accounts,
    who: Option<&Identity>,
    page: usize,
) -> Result<(Vec<Listed>, bool), RoomError> {
    let general = RoomId(DEFAULT_ROOM.to_string());
    let mut out = Vec::new();
    if page == 0 {
        out.push(Listed {
            online: hub.online(&general),
            room: general.clone(),
            kind: RoomKind::Public,
            members: Vec::new(),
        });
        if let Some(who) = who {
            for (room, kind, members) in accounts.rooms_of(who) {
                out.push(Listed {
                    online: hub.online(&room),
                    room,
                    kind,
                    members,
                });
            }
        }
    }
    let offset = page.saturating_mul(ROOMS_PER_PAGE);
    let mut rows = hub
        .store()
        .rooms_by_activity(offset, ROOMS_PER_PAGE + 1)
        .await?;
    let more = rows.len() > ROOMS_PER_PAGE;
    rows.truncate(ROOMS_PER_PAGE);
    for room in rows {
        // Listed above, or not for everyone: non-public rooms appear only to their members,
        // on the first page.
        if room == general || accounts.room_access(&room).0 != RoomKind::Public {
            continue;
        }
        if accounts::is_reserved(&room) {
            continue;
        }
        out.push(Listed {
            online: hub.online(&room),
            room,
            kind: RoomKind::Public,
            members: Vec::new(),
        });
    }
    Ok((out, more))
}

/// How many rooms each person and each address may still create: a token bucket per key
/// that holds an hour's allowance and refills over the hour, kept in the bounded keyed
/// limiters of [`crate::server::limits`].
pub struct CreationBudget {
    per_person: Buckets<Person>,
    per_address: Buckets<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Person {
    Account(i64),
    /// A guest, by session: a guest has no other identity.
    Guest(i64),
}

impl CreationBudget {
    /// `per_person` and `per_address` rooms an hour; 0 turns that limit off.
    pub fn new(per_person: u32, per_address: u32) -> CreationBudget {
        CreationBudget {
            per_person: Buckets::new(hourly(per_person), per_person as f64),
            per_address: Buckets::new(hourly(per_address), per_address as f64),
        }
    }

    /// Takes one creation from `who`'s and `address`'s budgets, or neither; `Err` says how
    /// long until one is available again.
    pub fn take(&self, who: &Identity, address: IpAddr) -> Result<(), RoomError> {
        self.take_at(who, address, Instant::now())
    }

    fn take_at(&self, who: &Identity, address: IpAddr, now: Instant) -> Result<(), RoomError> {
        let person = match who.user_id {
            Some(id) => Person::Account(id),
            None => Person::Guest(who.session_id),
        };
        self.per_person
            .take_at(person.clone(), now)
            .and_then(|()| {
                self.per_address
                    .take_at(address_group(address), now)
                    .inspect_err(|_| self.per_person.give_back(&person))
            })
            .map_err(|wait| {
                let minutes = wait.as_secs().div_ceil(60).max(1);
                RoomError::TooMany {
                    wait,
                    sentence: format!(
                        "You have created too many rooms for now; wait {minutes} minute{} or \
                         use an existing room.",
                        if minutes == 1 { "" } else { "s" }
                    ),
                }
            })
    }
}

/// Tokens per second for an hourly allowance.
fn hourly(per_hour: u32) -> f64 {
    per_hour as f64 / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: i64) -> Identity {
        Identity {
            name: UserName(format!("p{id}")),
            user_id: Some(id),
            session_id: id,
        }
    }

    #[test]
    fn the_budget_refuses_past_the_hourly_allowance_and_refills_over_the_hour() {
        let budget = CreationBudget::new(3, 5);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let take = |who: i64, address: &str, secs: u64| {
            budget.take_at(&person(who), address.parse().unwrap(), at(secs))
        };
        let here = "10.0.0.1";
        for _ in 0..3 {
            take(1, here, 0).unwrap();
        }
        let Err(RoomError::TooMany { wait, .. }) = take(1, here, 0) else {
            panic!("the fourth room in an hour is refused");
        };
        assert!(
            (wait.as_secs_f64() - 1200.0).abs() < 1.0,
            "one room every 20 minutes comes back: {wait:?}"
        );
        // The address has two left, whoever asks.
        take(2, here, 0).unwrap();
        take(3, here, 0).unwrap();
        assert!(take(4, here, 0).is_err());
        // Addresses in one /64 share a budget.
        for _ in 0..3 {
            take(5, "2001:db8::1", 0).unwrap();
        }
        take(6, "2001:db8::ffff:1", 0).unwrap();
        take(6, "2001:db8::ffff:1", 0).unwrap();
        assert!(take(6, "2001:db8::ffff:1", 0).is_err());
        assert!(take(1, "10.0.0.2", 1199).is_err());
        take(1, "10.0.0.2", 1201).unwrap();
    }
}
