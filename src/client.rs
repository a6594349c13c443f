//! The browser's one WebSocket per tab, provided to components as the [`ChatSocket`] context.
//!
//! Components never open sockets: they call [`ChatSocket::open_room`] and read the reactive
//! [`LiveRoom`] it returns. On the server the same calls only seed signals from the rendered
//! page, so hydration sees identical state; the network code exists in the `hydrate` build
//! alone (`driver`).
//!
//! What the driver guarantees: it reconnects after any drop with capped exponential backoff
//! and full jitter; it pings and treats ~2.5 silent heartbeats as a dead link; the status
//! shows "Connected" only after the server's `welcome`; every message typed goes into an
//! outbox and stays there until the server acks it, so a message typed while disconnected is
//! sent after reconnecting and (thanks to its client id) stored once; a rejoin asks for
//! everything after the last sequence number seen, so the view has neither gaps nor repeats.

use crate::model::{Messages, RoomPage, SidebarRoom};
use crate::protocol::{AuthorKey, ChatMessage, ClientId, Person, RoomId, UserName};
use leptos::prelude::*;

/// The connection state the status indicator shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// No live connection and none being attempted (JavaScript off, or the browser is offline).
    Offline,
    /// First attempt since the page loaded.
    Connecting,
    Connected,
    /// The connection dropped; the next attempt is scheduled.
    Reconnecting,
    /// The session ended (logged out in another tab, or the guest name was registered);
    /// nothing is retried until the person logs in or picks a name again.
    SignedOut,
}

impl ConnState {
    pub fn label(self) -> &'static str {
        match self {
            ConnState::Offline => "Offline",
            ConnState::Connecting => "Connecting…",
            ConnState::Connected => "Connected",
            ConnState::Reconnecting => "Reconnecting…",
            ConnState::SignedOut => "Signed out — reload to log in or choose a name",
        }
    }
}

/// A message typed in this tab that the server has not confirmed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingMessage {
    pub client_id: ClientId,
    pub text: String,
    /// Set when the server refused it for good (too long, …); shown next to the message.
    pub failed: Option<String>,
}

/// One open room's reactive state.
#[derive(Clone, Copy)]
pub struct LiveRoom {
    pub room: StoredValue<RoomId>,
    /// Confirmed messages, in sequence order, without repeats.
    pub messages: RwSignal<Messages>,
    /// Who is online, by person (two guests with one name are two entries), in name order.
    pub online: RwSignal<Vec<Person>>,
    pub pending: RwSignal<Vec<PendingMessage>>,
    /// True when the server could not replay what this tab missed.
    pub gap: RwSignal<bool>,
    /// True while older messages may exist above the first one shown.
    pub has_older: RwSignal<bool>,
    /// The other people typing in the room now, in the order they started.
    pub typing: RwSignal<Vec<Typist>>,
    /// The first message this person had not read when the room opened ("New messages").
    pub first_unread: StoredValue<Option<crate::protocol::Seq>>,
    /// Why the person's last edit, deletion or reaction was refused, until the next one.
    pub notice: RwSignal<Option<String>>,
}

/// Someone typing in a room, until `until` (milliseconds since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Typist {
    pub key: AuthorKey,
    pub name: UserName,
    pub guest: bool,
    pub until: f64,
}

/// What the room says about who is typing: nothing, "Ada is typing…", "Ada and Bob are
/// typing…", or "Several people are typing…".
pub fn typing_sentence(typists: &[Typist]) -> String {
    match typists {
        [] => String::new(),
        [one] => format!("{} is typing…", one.name),
        [one, two] => format!("{} and {} are typing…", one.name, two.name),
        _ => "Several people are typing…".to_string(),
    }
}

impl LiveRoom {
    /// The room's signals, under the current reactive owner.
    fn new(page: &mut RoomPage) -> Self {
        // Before the messages move into their signal.
        let first_unread = page
            .read
            .and_then(|read| page.messages.iter().find(|m| m.seq > read).map(|m| m.seq));
        LiveRoom {
            room: StoredValue::new(page.room.clone()),
            messages: RwSignal::new(std::mem::take(&mut page.messages)),
            online: RwSignal::new(page.online.clone()),
            pending: RwSignal::new(Vec::new()),
            gap: RwSignal::new(false),
            has_older: RwSignal::new(page.has_older),
            typing: RwSignal::new(Vec::new()),
            first_unread: StoredValue::new(first_unread),
            notice: RwSignal::new(None),
        }
    }
}

#[derive(Clone, Copy)]
pub struct ChatSocket {
    pub status: RwSignal<ConnState>,
    /// The rooms of the sidebar with their unread counts, kept current while connected.
    pub sidebar: RwSignal<Vec<SidebarRoom>>,
    /// Who this tab's person is: their messages are the ones they may edit and delete.
    pub key: RwSignal<Option<crate::protocol::AuthorKey>>,
    /// And their name: messages that mention it are theirs to notice.
    pub name: RwSignal<Option<String>>,
}

/// Provides the tab's [`ChatSocket`]; call once, in the root component.
pub fn provide_chat_socket() {
    provide_context(ChatSocket {
        status: RwSignal::new(ConnState::Offline),
        sidebar: RwSignal::new(Vec::new()),
        key: RwSignal::new(None),
        name: RwSignal::new(None),
    });
    // The rooms' signals are created under this owner (see `ChatSocket::open_room`).
    #[cfg(feature = "hydrate")]
    driver::adopt_owner();
}

impl ChatSocket {
    /// Opens a room seeded from its server-rendered page and subscribes from the page's last
    /// sequence number. The room takes the page's messages rather than a copy of them: the
    /// server renders every room page through here, and a copy would cost every page.
    ///
    /// In the browser the room's signals belong to the socket, not to the calling component:
    /// the socket writes them whenever a frame arrives, so it keeps them from here until
    /// [`ChatSocket::close_room`] disposes of them. On the server they belong to the caller.
    pub fn open_room(&self, page: &mut RoomPage) -> LiveRoom {
        self.sidebar.set(std::mem::take(&mut page.sidebar));
        if page.my_key.is_some() {
            self.key.set(page.my_key.clone());
            self.name.set(page.me.clone().map(|n| n.0));
        }
        #[cfg(feature = "hydrate")]
        {
            driver::open_room(*self, page)
        }
        #[cfg(not(feature = "hydrate"))]
        {
            LiveRoom::new(page)
        }
    }

    /// Closes a room this tab no longer shows; its [`LiveRoom`] is disposed of.
    pub fn close_room(&self, room: &RoomId) {
        #[cfg(feature = "hydrate")]
        driver::close_room(room);
        #[cfg(not(feature = "hydrate"))]
        let _ = room;
    }

    /// Queues a message; it is sent now if connected, else after reconnecting.
    pub fn send(&self, room: &RoomId, text: String) {
        #[cfg(feature = "hydrate")]
        driver::send(room, text);
        #[cfg(not(feature = "hydrate"))]
        let _ = (room, text);
    }

    /// Sends an edit, deletion or reaction (a [`ClientMsg`] naming a joined room); false when
    /// the tab is not connected to that room now (a change is not queued: it may be stale
    /// by the time the connection is back).
    pub fn change(&self, msg: &crate::protocol::ClientMsg) -> bool {
        #[cfg(feature = "hydrate")]
        {
            driver::send_change(msg)
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = msg;
            false
        }
    }

    /// Says that this person is typing in `room`: sent at most once per
    /// [`crate::protocol::TYPING_INTERVAL_MS`], and only while connected (typing is not
    /// worth queueing).
    pub fn typing(&self, room: &RoomId) {
        #[cfg(feature = "hydrate")]
        driver::typing(room);
        #[cfg(not(feature = "hydrate"))]
        let _ = room;
    }

    /// Replaces the view with the newest window of history (after a gap), keeping any live
    /// message that is newer than that window.
    pub fn reload_history(&self, live: LiveRoom) {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let room = live.room.get_value();
            if let Ok(page) = crate::api::load_room(room.0, None).await {
                let newest = page.last_seq;
                let _ = live.messages.try_update(|list| {
                    let list = list.list_mut();
                    list.retain(|m| m.seq > newest);
                    merge_messages(list, page.messages.into_vec());
                });
                let _ = live.has_older.try_set(page.has_older);
                let _ = live.gap.try_set(false);
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = live;
    }

    /// Tries to connect at once instead of waiting for the next backoff step (after the
    /// visitor has chosen a name, for instance).
    pub fn reconnect_now(&self) {
        #[cfg(feature = "hydrate")]
        driver::reconnect_now();
    }
}

/// Inserts messages keeping sequence order and dropping repeats; returns true if anything
/// changed.
pub fn merge_messages(
    list: &mut Vec<ChatMessage>,
    incoming: impl IntoIterator<Item = ChatMessage>,
) -> bool {
    let mut changed = false;
    for msg in incoming {
        match list.binary_search_by_key(&msg.seq, |m| m.seq) {
            Ok(_) => {}
            Err(at) => {
                list.insert(at, msg);
                changed = true;
            }
        }
    }
    changed
}

#[cfg(feature = "hydrate")]
mod driver;
#[cfg(feature = "hydrate")]
pub mod notify;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Seq, UserName};

    fn msg(seq: u64) -> ChatMessage {
        ChatMessage {
            room: RoomId("r".into()),
            seq: Seq(seq),
            author: UserName("a".into()),
            text: seq.to_string(),
            client_id: ClientId(seq.to_string()),
            ts: 0,
            guest: false,
            rich: None,
            ..Default::default()
        }
    }

    #[test]
    fn typing_names_one_or_two_people_then_several() {
        let typist = |name: &str| Typist {
            key: AuthorKey(name.to_lowercase()),
            name: UserName(name.into()),
            guest: false,
            until: 0.0,
        };
        let sentences: Vec<_> = (0..4)
            .map(|n| typing_sentence(&[typist("Ada"), typist("Bob"), typist("Cy")][..n.min(3)]))
            .collect();
        assert_eq!(
            sentences,
            [
                "",
                "Ada is typing…",
                "Ada and Bob are typing…",
                "Several people are typing…"
            ]
        );
    }

    #[test]
    fn merge_keeps_order_and_drops_repeats() {
        let mut list = vec![msg(1), msg(3)];
        assert!(merge_messages(&mut list, vec![msg(4), msg(2), msg(3)]));
        assert!(!merge_messages(&mut list, vec![msg(1)]));
        assert_eq!(
            list.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }
}
