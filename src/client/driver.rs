//! The browser-only half of [`super::ChatSocket`]: owns the `WebSocket`, its timers and the
//! per-room bookkeeping. WASM in the browser is single-threaded, so the state lives in a
//! thread-local; signal writes happen after the borrow is released so no effect can observe
//! the driver mid-update.
//!
//! Each open room's signals ([`LiveRoom`]) are created under a reactive owner of the room's
//! own (a child of the socket's), kept in its slot: closing the room drops the slot and so
//! disposes of them. A write
//! that can land after the room closed (a frame callback, a history load still in flight)
//! uses `try_*`, which does nothing once they are gone.

use super::{merge_messages, ChatSocket, ConnState, LiveRoom, PendingMessage, Typist};
use crate::model::{Messages, RoomPage, SidebarRoom};
use crate::protocol::{
    ChatMessage, ClientId, ClientMsg, Person, RoomId, Seq, ServerMsg, UserName, TYPING_INTERVAL_MS,
    TYPING_LAPSE_MS,
};
use gloo_timers::callback::{Interval, Timeout};
use leptos::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// First retry waits up to this long; each failure doubles it up to [`BACKOFF_CAP_MS`].
const BACKOFF_BASE_MS: f64 = 500.0;
const BACKOFF_CAP_MS: f64 = 15_000.0;
/// Used until the server's `welcome` says otherwise.
const DEFAULT_HEARTBEAT_MS: u32 = 10_000;

thread_local! {
    static DRIVER: RefCell<Driver> = RefCell::new(Driver::default());
}

#[derive(Default)]
struct Driver {
    status: Option<RwSignal<ConnState>>,
    socket: Option<Live>,
    /// Bumped for every socket, so events from an abandoned socket are ignored.
    generation: u64,
    attempt: u32,
    connected_once: bool,
    retry: Option<Timeout>,
    rooms: HashMap<RoomId, Slot>,
    /// The unsent messages of rooms this tab closed, kept until the room is opened again
    /// (they are in localStorage too); an ack that still arrives for one removes it.
    parked: HashMap<RoomId, Vec<(ClientId, String)>>,
    me: Option<UserName>,
    listeners_installed: bool,
    /// The reactive owner the socket was provided under: each room's owner is its child.
    owner: Option<Owner>,
    /// Messages from others that arrived while the tab was hidden (shown in the title).
    unseen: u32,
    sidebar: Option<RwSignal<Vec<SidebarRoom>>>,
    /// The tab's person ([`ChatSocket::key`]), told by `welcome`.
    key: Option<RwSignal<Option<crate::protocol::AuthorKey>>>,
}

struct Live {
    ws: WebSocket,
    welcomed: bool,
    last_heard: f64,
    heartbeat_ms: u32,
    _heartbeat: Option<Interval>,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

struct Slot {
    live: LiveRoom,
    /// Owns `live`'s signals; dropped with the slot.
    _owner: Owner,
    /// Highest sequence number up to which this tab has every message (no gap below it):
    /// a rejoin asks for everything after it.
    last_seq: Seq,
    /// Sequence numbers received above a gap, waiting for the gap to fill.
    ahead: std::collections::BTreeSet<Seq>,
    /// Highest change (`eseq`) applied: a rejoin asks for the changes after it.
    last_eseq: Seq,
    epoch: Option<u64>,
    joined: bool,
    outbox: Vec<(ClientId, String)>,
    /// When this tab last said that its person is typing here (0: not since the last send).
    typing_sent: f64,
    /// A direct conversation: its messages raise notifications while the tab is hidden.
    direct: bool,
    /// A `read` frame is on its way (coalesced: at most one per [`READ_EVERY_MS`]).
    read_due: bool,
}

/// Read marks are sent at most this often per room.
const READ_EVERY_MS: u32 = 1_000;

/// Applies `change` to `room`'s sidebar entry, after the driver's borrow is released.
fn sidebar_update(
    d: &Driver,
    room: &RoomId,
    change: impl FnOnce(&mut SidebarRoom) + 'static,
) -> Option<Deferred> {
    let sidebar = d.sidebar?;
    let room = room.clone();
    Some(Box::new(move || {
        let _ = sidebar.try_update(|list| {
            if let Some(entry) = list.iter_mut().find(|e| e.room == room) {
                change(entry);
            }
        });
    }))
}

/// Whether `msg`, in a room this tab is in, mentions its person.
fn mentions_me(d: &Driver, msg: &ChatMessage) -> bool {
    let key = d.key.and_then(|k| k.get_untracked()).unwrap_or_default();
    d.me.as_ref()
        .is_some_and(|me| msg.mentions(&me.0, &key, true))
}

/// Follows the sidebar's rooms that are not open (open ones hear their messages).
fn send_watch(d: &Driver) {
    let (Some(live), Some(sidebar)) = (d.socket.as_ref().filter(|s| s.welcomed), d.sidebar) else {
        return;
    };
    let rooms = sidebar
        .try_with_untracked(|list| {
            list.iter()
                .map(|e| e.room.clone())
                .filter(|r| !d.rooms.contains_key(r))
                .collect()
        })
        .unwrap_or_default();
    send_frame(&live.ws, &ClientMsg::Watch { rooms });
}

/// Marks `room` read up to what this tab has, now in the sidebar and, coalesced, on the
/// server (and so in the person's other tabs).
fn read_now(d: &mut Driver, room: &RoomId, updates: &mut Vec<Deferred>) {
    let Some(slot) = d.rooms.get_mut(room) else {
        return;
    };
    let seq = slot.last_seq;
    let due = !std::mem::replace(&mut slot.read_due, true);
    updates.extend(sidebar_update(d, room, move |e| e.read = e.read.max(seq)));
    if due {
        let room = room.clone();
        Timeout::new(READ_EVERY_MS, move || {
            with(|d| {
                let Some(slot) = d.rooms.get_mut(&room) else {
                    return;
                };
                slot.read_due = false;
                if let (true, Some(live)) = (slot.joined, d.socket.as_ref().filter(|s| s.welcomed))
                {
                    send_frame(
                        &live.ws,
                        &ClientMsg::Read {
                            room: room.clone(),
                            seq: slot.last_seq,
                        },
                    );
                }
            })
        })
        .forget();
    }
}

/// localStorage key prefix for a room's unsent messages; they survive a reload.
const OUTBOX_KEY: &str = "hearth.outbox.";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn load_outbox(room: &RoomId) -> Vec<(ClientId, String)> {
    storage()
        .and_then(|s| s.get_item(&format!("{OUTBOX_KEY}{room}")).ok().flatten())
        .and_then(|json| crate::protocol::from_json(&json).ok())
        .unwrap_or_default()
}

fn save_outbox(room: &RoomId, outbox: &[(ClientId, String)]) {
    let Some(storage) = storage() else { return };
    let key = format!("{OUTBOX_KEY}{room}");
    if outbox.is_empty() {
        let _ = storage.remove_item(&key);
    } else if let Ok(json) = serde_json::to_string(outbox) {
        let _ = storage.set_item(&key, &json);
    }
}

/// A signal write deferred until the driver's borrow is released.
type Deferred = Box<dyn FnOnce()>;

fn with<R>(f: impl FnOnce(&mut Driver) -> R) -> R {
    DRIVER.with(|d| f(&mut d.borrow_mut()))
}

fn run(updates: Vec<Deferred>) {
    for update in updates {
        update();
    }
}

fn set_status(d: &Driver, state: ConnState, updates: &mut Vec<Deferred>) {
    if let Some(status) = d.status {
        updates.push(Box::new(move || {
            let _ = status.try_set(state);
        }));
    }
}

/// Takes the current reactive owner as the parent of every room's signals.
pub fn adopt_owner() {
    with(|d| d.owner = Owner::current());
}

pub fn open_room(socket: ChatSocket, page: &mut RoomPage) -> LiveRoom {
    let status = socket.status;
    let owner = with(|d| d.owner.as_ref().map(Owner::child)).unwrap_or_default();
    let live = owner.with(|| LiveRoom::new(page));
    // Without a display name the upgrade is refused; connect once one is chosen
    // (`reconnect_now`).
    let may_connect = page.me.is_some() || with(|d| d.me.is_some());
    let room = page.room.clone();
    let updates = with(|d| {
        d.status = Some(status);
        d.sidebar = Some(socket.sidebar);
        d.key = Some(socket.key);
        // A room reopened keeps the messages still waiting in its outbox, from this tab or
        // from before a reload.
        let mut outbox = d
            .rooms
            .remove(&room)
            .map(|s| s.outbox)
            .or_else(|| d.parked.remove(&room))
            .unwrap_or_default();
        for entry in load_outbox(&room) {
            if !outbox.iter().any(|(id, _)| *id == entry.0) {
                outbox.push(entry);
            }
        }
        let pending: Vec<PendingMessage> = outbox
            .iter()
            .map(|(id, text)| PendingMessage {
                client_id: id.clone(),
                text: text.clone(),
                failed: None,
            })
            .collect();
        d.rooms.insert(
            room.clone(),
            Slot {
                live,
                _owner: owner,
                last_seq: page.last_seq,
                ahead: Default::default(),
                last_eseq: page.last_eseq,
                epoch: Some(page.epoch),
                joined: false,
                outbox,
                typing_sent: 0.0,
                direct: page.visibility == crate::model::Visibility::Direct,
                read_due: false,
            },
        );
        let mut updates: Vec<Deferred> = Vec::new();
        if !pending.is_empty() {
            // The server rendered no pending entries; adding them while the page hydrates
            // would make the DOM disagree with it. Show them on the next frame instead.
            updates.push(Box::new(move || {
                let room = live.room.get_value();
                request_animation_frame(move || {
                    // Only what is still unsent by then.
                    let waiting: Vec<PendingMessage> = with(|d| {
                        let Some(slot) = d.rooms.get(&room) else {
                            return Vec::new();
                        };
                        pending
                            .into_iter()
                            .filter(|p| slot.outbox.iter().any(|(id, _)| *id == p.client_id))
                            .collect()
                    });
                    let _ = live.pending.try_update(|list| {
                        for p in waiting {
                            if !list.iter().any(|q| q.client_id == p.client_id) {
                                list.push(p);
                            }
                        }
                    });
                });
            }));
        }
        if d.socket.as_ref().is_some_and(|s| s.welcomed) {
            send_join(d, &room);
            send_watch(d);
        }
        updates
    });
    run(updates);
    install_listeners();
    if may_connect {
        ensure_connecting();
    }
    live
}

/// Leaves a room this tab no longer shows, at once: whoever else is in it stops seeing this
/// tab there, whether or not it has unsent messages.
pub fn close_room(room: &RoomId) {
    with(|d| {
        let Some(slot) = d.rooms.remove(room) else {
            return;
        };
        // Unsent messages are kept (here and in localStorage) and go out when the room is
        // opened again. Those already sent on this socket are stored before the `leave`
        // (the server handles a connection's frames in order); their resend after
        // reopening is answered as a duplicate, so none is stored twice.
        if !slot.outbox.is_empty() {
            d.parked.insert(room.clone(), slot.outbox);
        }
        if let Some(live) = d.socket.as_ref().filter(|s| s.welcomed) {
            send_frame(&live.ws, &ClientMsg::Leave { room: room.clone() });
        }
    });
}

pub fn send(room: &RoomId, text: String) {
    let client_id = new_client_id();
    let updates = with(|d| {
        let mut updates: Vec<Deferred> = Vec::new();
        let Some(slot) = d.rooms.get_mut(room) else {
            return updates;
        };
        slot.outbox.push((client_id.clone(), text.clone()));
        save_outbox(room, &slot.outbox);
        let live = slot.live;
        let joined = slot.joined;
        let pending = PendingMessage {
            client_id: client_id.clone(),
            text: text.clone(),
            failed: None,
        };
        updates.push(Box::new(move || {
            let _ = live.pending.try_update(|p| p.push(pending));
        }));
        if joined {
            if let Some(s) = d.socket.as_ref().filter(|s| s.welcomed) {
                send_frame(
                    &s.ws,
                    &ClientMsg::Send {
                        room: room.clone(),
                        client_id,
                        text,
                    },
                );
            }
        }
        updates
    });
    run(updates);
}

pub fn typing(room: &RoomId) {
    with(|d| {
        let (Some(live), Some(slot)) = (
            d.socket.as_ref().filter(|s| s.welcomed),
            d.rooms.get_mut(room),
        ) else {
            return;
        };
        let now = js_sys::Date::now();
        if slot.joined && now - slot.typing_sent >= TYPING_INTERVAL_MS as f64 {
            slot.typing_sent = now;
            send_frame(&live.ws, &ClientMsg::Typing { room: room.clone() });
        }
    });
}

/// Sends a change frame if its room is joined on a connected socket.
pub fn send_change(msg: &ClientMsg) -> bool {
    let (ClientMsg::Edit { room, .. }
    | ClientMsg::Delete { room, .. }
    | ClientMsg::React { room, .. }) = msg
    else {
        return false;
    };
    with(|d| {
        let (Some(live), Some(slot)) =
            (d.socket.as_ref().filter(|s| s.welcomed), d.rooms.get(room))
        else {
            return false;
        };
        if slot.joined {
            send_frame(&live.ws, msg);
        }
        slot.joined
    })
}

/// Drops the typists of `room` whose time is up.
fn lapse_typists(room: &RoomId) {
    let live = with(|d| d.rooms.get(room).map(|s| s.live));
    if let Some(live) = live {
        let now = js_sys::Date::now();
        let _ = live
            .typing
            .try_update(|list| list.retain(|t| t.until > now));
    }
}

pub fn reconnect_now() {
    with(|d| {
        if d.socket.as_ref().is_some_and(|s| s.welcomed) {
            return;
        }
        d.retry = None;
        d.attempt = 0;
    });
    abandon_socket();
    connect();
}

fn ensure_connecting() {
    let idle = with(|d| d.socket.is_none() && d.retry.is_none());
    if idle {
        connect();
    }
}

fn browser_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

fn connect() {
    if !browser_online() {
        let updates = with(|d| {
            let mut u = Vec::new();
            set_status(d, ConnState::Offline, &mut u);
            u
        });
        run(updates);
        return;
    }
    let Some(url) = socket_url() else { return };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            schedule_retry();
            return;
        }
    };
    let generation = with(|d| {
        d.generation += 1;
        d.generation
    });

    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let Ok(ev) = ev.dyn_into::<MessageEvent>() else {
            return;
        };
        if let Some(text) = ev.data().as_string() {
            on_frame(generation, &text);
        }
    });
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let code = ev.dyn_into::<CloseEvent>().map_or(0, |ev| ev.code());
        if code == crate::protocol::close::SESSION_ENDED {
            on_session_ended(generation);
        } else {
            on_dropped(generation);
        }
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));

    let updates = with(|d| {
        let mut updates = Vec::new();
        let state = if d.connected_once {
            ConnState::Reconnecting
        } else {
            ConnState::Connecting
        };
        set_status(d, state, &mut updates);
        d.retry = None;
        d.socket = Some(Live {
            ws,
            welcomed: false,
            last_heard: js_sys::Date::now(),
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            _heartbeat: None,
            _handlers: vec![on_message, on_close],
        });
        updates
    });
    run(updates);
}

fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", location.host().ok()?))
}

/// Drops the current socket without waiting for the browser's close handshake, which can
/// take minutes on a dead link.
fn abandon_socket() {
    let old = with(|d| {
        d.generation += 1;
        d.rooms.values_mut().for_each(|s| s.joined = false);
        d.socket.take()
    });
    if let Some(old) = old {
        old.ws.set_onmessage(None);
        old.ws.set_onclose(None);
        let _ = old.ws.close();
    }
}

/// The server ended this session (logged out elsewhere, or the guest name was registered):
/// the cookie will not work again, so stop retrying and say so.
fn on_session_ended(generation: u64) {
    if !with(|d| d.generation == generation) {
        return;
    }
    abandon_socket();
    let updates = with(|d| {
        let mut u = Vec::new();
        d.retry = None;
        set_status(d, ConnState::SignedOut, &mut u);
        u
    });
    run(updates);
}

fn on_dropped(generation: u64) {
    let current = with(|d| d.generation == generation);
    if !current {
        return;
    }
    abandon_socket();
    schedule_retry();
}

fn schedule_retry() {
    let updates = with(|d| {
        let mut updates = Vec::new();
        let offline = !browser_online();
        set_status(
            d,
            if offline {
                ConnState::Offline
            } else {
                ConnState::Reconnecting
            },
            &mut updates,
        );
        if offline {
            // The `online` event reconnects; retrying now would only fail.
            d.retry = None;
            return updates;
        }
        // Full jitter: a uniformly random wait up to the capped exponential step, so a
        // restarted server is not hit by every tab at the same instant.
        let ceiling = (BACKOFF_BASE_MS * 2f64.powi(d.attempt.min(16) as i32)).min(BACKOFF_CAP_MS);
        let delay = (js_sys::Math::random() * ceiling).max(50.0) as u32;
        d.attempt = d.attempt.saturating_add(1);
        d.retry = Some(Timeout::new(delay, connect));
        updates
    });
    run(updates);
}

fn install_listeners() {
    let first = with(|d| !std::mem::replace(&mut d.listeners_installed, true));
    if !first {
        return;
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let on_offline = Closure::<dyn FnMut(JsValue)>::new(|_| {
        abandon_socket();
        let updates = with(|d| {
            d.retry = None;
            let mut u = Vec::new();
            set_status(d, ConnState::Offline, &mut u);
            u
        });
        run(updates);
    });
    let on_online = Closure::<dyn FnMut(JsValue)>::new(|_| reconnect_now());
    let on_visible = Closure::<dyn FnMut(JsValue)>::new(|_| {
        if !super::notify::hidden() {
            // Shown again: what arrived meanwhile is read now.
            let updates = with(|d| {
                d.unseen = 0;
                let mut updates = Vec::new();
                let rooms: Vec<RoomId> = d.rooms.keys().cloned().collect();
                for room in rooms {
                    read_now(d, &room, &mut updates);
                }
                updates
            });
            super::notify::set_unseen(0);
            run(updates);
        }
    });
    if let Some(document) = window.document() {
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            on_visible.as_ref().unchecked_ref(),
        );
    }
    on_visible.forget();
    let _ = window.add_event_listener_with_callback("offline", on_offline.as_ref().unchecked_ref());
    let _ = window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
    // These listeners live as long as the tab.
    on_offline.forget();
    on_online.forget();
}

fn send_frame(ws: &WebSocket, msg: &ClientMsg) {
    if let Ok(text) = serde_json::to_string(msg) {
        let _ = ws.send_with_str(&text);
    }
}

fn send_join(d: &mut Driver, room: &RoomId) {
    let (Some(live), Some(slot)) = (d.socket.as_ref(), d.rooms.get(room)) else {
        return;
    };
    send_frame(
        &live.ws,
        &ClientMsg::Join {
            room: room.clone(),
            since: Some(slot.last_seq),
            epoch: slot.epoch,
            changes_since: Some(slot.last_eseq),
        },
    );
}

fn start_heartbeat(generation: u64, every_ms: u32) -> Interval {
    Interval::new(every_ms, move || {
        let dead = with(|d| {
            if d.generation != generation {
                return false;
            }
            let Some(live) = d.socket.as_ref() else {
                return false;
            };
            let silent = js_sys::Date::now() - live.last_heard;
            if silent > f64::from(live.heartbeat_ms) * 2.5 {
                return true;
            }
            send_frame(&live.ws, &ClientMsg::Ping);
            false
        });
        if dead {
            on_dropped(generation);
        }
    })
}

fn on_frame(generation: u64, text: &str) {
    let Ok(msg) = crate::protocol::from_json::<ServerMsg>(text) else {
        web_sys::console::warn_1(&format!("hearth: ignoring an unreadable frame: {text}").into());
        return;
    };
    let updates = with(|d| {
        if d.generation != generation {
            return Vec::new();
        }
        if let Some(live) = d.socket.as_mut() {
            live.last_heard = js_sys::Date::now();
        }
        handle(d, generation, msg)
    });
    run(updates);
}

fn handle(d: &mut Driver, generation: u64, msg: ServerMsg) -> Vec<Deferred> {
    let mut updates: Vec<Deferred> = Vec::new();
    match msg {
        ServerMsg::Welcome {
            user,
            heartbeat_ms,
            key,
            ..
        } => {
            d.me = Some(user);
            if let Some(me) = d.key {
                updates.push(Box::new(move || {
                    let _ = me.try_set((!key.is_empty()).then_some(key));
                }));
            }
            d.attempt = 0;
            d.connected_once = true;
            if let Some(live) = d.socket.as_mut() {
                live.welcomed = true;
                live.heartbeat_ms = heartbeat_ms.clamp(1_000, 60_000) as u32;
                live._heartbeat = Some(start_heartbeat(generation, live.heartbeat_ms));
            }
            set_status(d, ConnState::Connected, &mut updates);
            let rooms: Vec<RoomId> = d.rooms.keys().cloned().collect();
            for room in rooms {
                send_join(d, &room);
            }
            send_watch(d);
        }
        ServerMsg::Activity {
            room,
            last_seq,
            mentioned,
        } => {
            updates.extend(sidebar_update(d, &room, move |e| {
                e.last_seq = e.last_seq.max(last_seq);
                e.mentioned(&mentioned);
            }));
        }
        ServerMsg::Read { room, seq } => {
            updates.extend(sidebar_update(d, &room, move |e| {
                e.read = e.read.max(seq);
                e.mentioned(&[]);
            }));
        }
        ServerMsg::Joined {
            room,
            online,
            last_seq,
            epoch,
            recovered,
            people,
            last_eseq,
        } => {
            let online = if people.is_empty() && !online.is_empty() {
                // A server from before people had keys: names are all there is.
                online.into_iter().map(unkeyed).collect()
            } else {
                people
            };
            let ws = d.socket.as_ref().map(|s| s.ws.clone());
            let Some(slot) = d.rooms.get_mut(&room) else {
                return updates;
            };
            slot.joined = true;
            let live = slot.live;
            updates.push(Box::new(move || {
                let _ = live.online.try_set(online);
            }));
            if !recovered {
                // The gap cannot be replayed (another epoch, or too far behind). Clear the
                // view now, before any live frame for this room is applied, then merge the
                // newest window in: a live message arriving meanwhile is kept, not
                // overwritten by the older snapshot.
                slot.last_seq = last_seq;
                slot.last_eseq = last_eseq;
                slot.ahead.clear();
                slot.epoch = Some(epoch);
                let room = room.clone();
                updates.push(Box::new(move || {
                    let _ = live.gap.try_set(true);
                    let _ = live.messages.try_set(Messages::default());
                    leptos::task::spawn_local(async move {
                        if let Ok(page) = crate::api::load_room(room.0.clone(), None).await {
                            let _ = live.messages.try_update(|list| {
                                merge_messages(list.list_mut(), page.messages.into_vec());
                            });
                            let _ = live.has_older.try_set(page.has_older);
                        }
                    });
                }));
            } else {
                slot.epoch = Some(epoch);
            }
            // Everything still in the outbox goes out again; the server stores each once.
            if let Some(ws) = ws {
                for (client_id, text) in &slot.outbox {
                    send_frame(
                        &ws,
                        &ClientMsg::Send {
                            room: room.clone(),
                            client_id: client_id.clone(),
                            text: text.clone(),
                        },
                    );
                }
            }
            // Open and shown: read, which the person's other tabs hear about.
            if !super::notify::hidden() {
                read_now(d, &room, &mut updates);
            }
        }
        ServerMsg::Message(msg) => {
            let called = mentions_me(d, &msg);
            let Some(slot) = d.rooms.get_mut(&msg.room) else {
                return updates;
            };
            let new = msg.seq > slot.last_seq && !slot.ahead.contains(&msg.seq);
            if msg.seq == Seq(slot.last_seq.0 + 1) {
                slot.last_seq = msg.seq;
                while slot.ahead.remove(&Seq(slot.last_seq.0 + 1)) {
                    slot.last_seq = Seq(slot.last_seq.0 + 1);
                }
            } else if msg.seq > slot.last_seq {
                slot.ahead.insert(msg.seq);
            }
            let mine = d.me.as_ref() == Some(&msg.author);
            let unseen = new && !mine && super::notify::hidden();
            if unseen && (slot.direct || called) {
                super::notify::show(&msg.author.0, &msg.text);
            }
            if mine {
                // The next keystroke starts a new message: say so at once.
                slot.typing_sent = 0.0;
            }
            if mine && slot.outbox.iter().any(|(id, _)| *id == msg.client_id) {
                slot.outbox.retain(|(id, _)| *id != msg.client_id);
                save_outbox(&msg.room, &slot.outbox);
            }
            let live = slot.live;
            if unseen {
                d.unseen += 1;
                super::notify::set_unseen(d.unseen);
            }
            if new {
                let (room, seq) = (msg.room.clone(), msg.seq);
                updates.extend(sidebar_update(d, &room, move |e| {
                    e.last_seq = e.last_seq.max(seq)
                }));
                if !super::notify::hidden() {
                    read_now(d, &room, &mut updates);
                }
            }
            updates.push(Box::new(move || {
                if mine {
                    let _ = live
                        .pending
                        .try_update(|p| p.retain(|m| m.client_id != msg.client_id));
                }
                // A message from someone typing ends their "is typing".
                let (author, guest) = (msg.author.clone(), msg.guest);
                let typed = live.typing.with_untracked(|list| {
                    list.iter().any(|t| t.name == author && t.guest == guest)
                });
                if typed {
                    let _ = live
                        .typing
                        .try_update(|list| list.retain(|t| t.name != author || t.guest != guest));
                }
                let _ = live.messages.try_update(|list| {
                    merge_messages(list.list_mut(), [msg]);
                });
            }));
        }
        ServerMsg::Change(change) => {
            let Some(slot) = d.rooms.get_mut(&change.room) else {
                return updates;
            };
            // Changes come in order, after the messages they name; one already applied
            // (or folded into a message that arrived later) is dropped.
            if change.eseq <= slot.last_eseq {
                return updates;
            }
            slot.last_eseq = change.eseq;
            let live = slot.live;
            updates.push(Box::new(move || {
                let _ = live.messages.try_update(|list| {
                    if let Some(msg) = list.list_mut().iter_mut().find(|m| m.seq == change.seq) {
                        msg.apply(&change);
                    }
                });
            }));
        }
        ServerMsg::Typing {
            room,
            user,
            key,
            guest,
        } => {
            let Some(slot) = d.rooms.get(&room) else {
                return updates;
            };
            let live = slot.live;
            let until = js_sys::Date::now() + TYPING_LAPSE_MS as f64;
            updates.push(Box::new(move || {
                let _ =
                    live.typing
                        .try_update(|list| match list.iter_mut().find(|t| t.key == key) {
                            Some(known) => known.until = until,
                            None => list.push(Typist {
                                key,
                                name: user,
                                guest,
                                until,
                            }),
                        });
                Timeout::new(TYPING_LAPSE_MS as u32 + 50, move || lapse_typists(&room)).forget();
            }));
        }
        ServerMsg::Ack {
            room, client_id, ..
        } => {
            if let Some(outbox) = d.parked.get_mut(&room) {
                // Stored after its room was closed: nothing left to send for it.
                outbox.retain(|(id, _)| *id != client_id);
                save_outbox(&room, outbox);
                if outbox.is_empty() {
                    d.parked.remove(&room);
                }
            }
            if let Some(slot) = d.rooms.get_mut(&room) {
                slot.outbox.retain(|(id, _)| *id != client_id);
                save_outbox(&room, &slot.outbox);
                // The pending entry stays until its `message` frame arrives (right behind
                // the ack), unless this was a resend of a message already shown.
                let live = slot.live;
                updates.push(Box::new(move || {
                    let shown = live
                        .messages
                        .with_untracked(|list| list.iter().any(|m| m.client_id == client_id));
                    if shown {
                        let _ = live
                            .pending
                            .try_update(|p| p.retain(|m| m.client_id != client_id));
                    }
                }));
            }
        }
        ServerMsg::Presence {
            room,
            joins,
            leaves,
            mut arrived,
            mut departed,
        } => {
            if arrived.is_empty() && departed.is_empty() {
                // A server from before people had keys: names are all there is.
                arrived = joins.into_iter().map(unkeyed).collect();
                departed = leaves.into_iter().map(unkeyed).collect();
            }
            if let Some(slot) = d.rooms.get(&room) {
                let live = slot.live;
                updates.push(Box::new(move || {
                    let _ = live.online.try_update(|list| {
                        list.retain(|p| !departed.iter().any(|d| d.key == p.key));
                        for person in arrived {
                            if let Err(at) = list.binary_search_by(|p| p.order(&person)) {
                                list.insert(at, person);
                            }
                        }
                    });
                }));
            }
        }
        ServerMsg::Resync { room } => {
            if let Some(slot) = d.rooms.get_mut(&room) {
                slot.joined = false;
            }
            send_join(d, &room);
        }
        ServerMsg::Error {
            code,
            message,
            room,
            client_id,
            retry_after_ms,
            seq,
        } => {
            if code == crate::protocol::ErrorCode::RateLimited {
                // Not a refusal of the message: it stays pending and goes again once the
                // server's bucket has room.
                if let (Some(room), Some(client_id)) = (room, client_id) {
                    let wait = retry_after_ms.unwrap_or(1000).clamp(50, 60_000) as u32;
                    Timeout::new(wait, move || resend(generation, &room, &client_id)).forget();
                }
            } else if let (Some(room), Some(_)) = (room.as_ref(), seq) {
                // An edit, deletion or reaction was refused: say why, in the room.
                if let Some(slot) = d.rooms.get(room) {
                    let live = slot.live;
                    updates.push(Box::new(move || {
                        let _ = live.notice.try_set(Some(message));
                    }));
                }
            } else if code == crate::protocol::ErrorCode::Internal {
                // The server could not store it now; it stays in the outbox and is sent
                // again after the next reconnect.
                web_sys::console::warn_1(&format!("hearth: {message}").into());
            } else if let (Some(room), Some(client_id)) = (room, client_id) {
                if let Some(slot) = d.rooms.get_mut(&room) {
                    // A refusal is final for this message: keep it visible, stop resending.
                    slot.outbox.retain(|(id, _)| *id != client_id);
                    save_outbox(&room, &slot.outbox);
                    let live = slot.live;
                    updates.push(Box::new(move || {
                        let _ = live.pending.try_update(|p| {
                            if let Some(m) = p.iter_mut().find(|m| m.client_id == client_id) {
                                m.failed = Some(message);
                            }
                        });
                    }));
                }
            } else {
                web_sys::console::warn_1(&format!("hearth: server error: {message}").into());
            }
        }
        ServerMsg::Ping => {
            if let Some(live) = d.socket.as_ref() {
                send_frame(&live.ws, &ClientMsg::Pong);
            }
        }
        ServerMsg::Pong | ServerMsg::Left { .. } => {}
    }
    updates
}

/// A person known only by name (from a server that sends no keys): keyed by the name.
fn unkeyed(name: UserName) -> Person {
    Person {
        key: crate::protocol::AuthorKey(name.0.clone()),
        name,
        guest: false,
    }
}

/// Sends an outbox entry again (after `rate_limited`), if it is still unsent and the socket
/// that refused it is still the current one; otherwise the rejoin resends it anyway.
fn resend(generation: u64, room: &RoomId, client_id: &ClientId) {
    with(|d| {
        if d.generation != generation {
            return;
        }
        let (Some(live), Some(slot)) = (d.socket.as_ref(), d.rooms.get(room)) else {
            return;
        };
        if !slot.joined {
            return;
        }
        if let Some((_, text)) = slot.outbox.iter().find(|(id, _)| id == client_id) {
            send_frame(
                &live.ws,
                &ClientMsg::Send {
                    room: room.clone(),
                    client_id: client_id.clone(),
                    text: text.clone(),
                },
            );
        }
    });
}

/// A UUIDv7: 48 bits of milliseconds, then random bits, so ids sort by creation time.
fn new_client_id() -> ClientId {
    let ms = js_sys::Date::now() as u64;
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .and_then(|c| c.get_random_values_with_u8_array(&mut bytes[6..]).ok())
        .is_some();
    if !filled {
        for b in &mut bytes[6..] {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    ClientId(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}
