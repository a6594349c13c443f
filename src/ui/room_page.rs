//! `/r/{room}`: the room's messages, the composer, who is online, and the connection state.

use super::form_error::FormError;
use super::markdown;
use super::name_form::NameForm;
use super::post_form::{PostForm, Posted};
use super::time::{self, Placement, Zone};
use crate::api::{load_room, DeleteMessage, EditMessage, Invite, PostMessage, React, SetName};
use crate::client::{typing_sentence, ChatSocket, ConnState, LiveRoom};
use crate::model::{AppError, PageJson, RoomPage as RoomData, SidebarRoom, Visibility};
use crate::protocol::{AuthorKey, ChatMessage, RoomId, Seq, UserName, REACTIONS};
use leptos::either::{Either, EitherOf3, EitherOf4};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    // The room and `before` the address names; when the address moves off rooms, the last
    // one (this page is about to go, and must not load anything on the way out).
    let key = Memo::new(move |last: Option<&(String, Option<u64>)>| {
        let before = query.with(|q| q.get_str("before").and_then(|b| b.parse().ok()));
        params
            .with(|p| p.get("room"))
            .map(|room| (room, before))
            .or_else(|| last.cloned())
            .unwrap_or_default()
    });
    let page = Resource::<_, PageJson>::new_with_options(
        move || key.get(),
        |(room, before)| load_room(room, before),
        false,
    );
    // While another room loads, the placeholder stands in: the room before it goes at once,
    // so nothing on screen reaches its disposed state.
    view! {
        <Suspense fallback=|| view! { <p>"Loading the room…"</p> }>
            {move || Suspend::new(async move { loaded(page.await) })}
        </Suspense>
    }
}

/// What a loaded room page shows: the room, an older page of it, or why it cannot be shown.
fn loaded(page: Result<RoomData, AppError>) -> impl IntoView {
    match page {
        Ok(data) if data.before.is_some() => EitherOf3::A(view! { <Archive data /> }),
        Ok(data) => EitherOf3::B(view! { <Room data /> }),
        Err(e) => EitherOf3::C(view! {
            <h1>"Room not found"</h1>
            <p role="alert">{e.to_string()}</p>
            <p><a href="/">"Back to the rooms"</a></p>
        }),
    }
}

#[component]
fn Room(mut data: RoomData) -> impl IntoView {
    let socket = expect_context::<ChatSocket>();
    let live = socket.open_room(&mut data);
    let room = data.room.clone();
    on_cleanup({
        let room = room.clone();
        move || socket.close_room(&room)
    });

    let named = RwSignal::new(data.me.is_some());
    let set_name = Posted::new(SetName::PATH).on_done(move |name| {
        named.set(true);
        socket.name.set(Some(name));
        socket.reconnect_now();
    });
    let me = data.me.clone().map(|n| n.0);
    let guests_allowed = data.guests_allowed;
    let heading = heading(&data);
    let members = (data.visibility != Visibility::Public).then(|| {
        view! {
            <Members
                room=room.0.clone()
                members=data.members.clone()
                can_invite=data.visibility == Visibility::Private
            />
        }
    });

    let (rooms_open, people_open) = (RwSignal::new(false), RwSignal::new(false));
    view! {
        <div class="room">
            <header class="room-header">
                <p class="back">
                    <a href="/">"← Rooms"</a>
                </p>
                <h1>{heading}</h1>
                <Menus rooms=rooms_open people=people_open />
                <EnableNotifications />
                <ConnectionStatus status=socket.status />
            </header>
            <div
                class="room-body"
                class:rooms-open=move || rooms_open.get()
                class:people-open=move || people_open.get()
            >
                <RoomsNav current=room.clone() />
                <section class="conversation">
                    <GapNotice live />
                    <MessageList live />
                    <TypingNote live />
                    {move || {
                        if named.get() {
                            EitherOf3::A(view! { <Composer live /> })
                        } else if guests_allowed {
                            EitherOf3::B(view! { <NameForm posted=set_name current=me.clone() /> })
                        } else {
                            EitherOf3::C(view! {
                                <p class="sign-in">
                                    <a href="/login">"Log in"</a> " or "
                                    <a href="/register">"create an account"</a> " to chat."
                                </p>
                            })
                        }
                    }}
                </section>
                <div class="side" id="people-menu">
                    <PresenceList live />
                    {members}
                </div>
            </div>
        </div>
    }
}

/// The sidebar: a link per room the person has opened or belongs to, named with its unread
/// count ("design, 3 unread"), the current one marked.
#[component]
fn RoomsNav(current: RoomId) -> impl IntoView {
    let socket = expect_context::<ChatSocket>();
    view! {
        <nav class="sidebar" id="rooms-menu" aria-label="Rooms">
            <ul>
                // At most 64 links, drawn again whole when a count changes (a keyed list's
                // machinery is not worth its bundle bytes here).
                {move || {
                    socket
                        .sidebar
                        .get()
                        .into_iter()
                        .map(|entry| room_link(entry, &current))
                        .collect_view()
                }}
            </ul>
        </nav>
    }
}

fn room_link(entry: SidebarRoom, current: &RoomId) -> impl IntoView {
    let unread = entry.unread();
    let mentions = entry.unread_mentions();
    let mut name = entry.title.clone();
    if unread > 0 {
        name.push_str(&format!(", {unread} unread"));
    }
    match mentions {
        0 => {}
        1 => name.push_str(", 1 mention"),
        n => name.push_str(&format!(", {n} mentions")),
    }
    let mark = if entry.visibility == Visibility::Direct {
        "@ "
    } else {
        "# "
    };
    let here = (entry.room == *current).then_some("page");
    let class = match (unread > 0, mentions > 0) {
        (_, true) => "unread mentioned",
        (true, false) => "unread",
        _ => "",
    };
    view! {
        <li>
            <a href=format!("/r/{}", entry.room) aria-label=name aria-current=here class=class>
                {mark}
                <bdi>{entry.title}</bdi>
                {(unread > 0).then(|| view! { <span class="count">{unread}</span> })}
            </a>
        </li>
    }
}

/// `# room`, or `@ person` for a direct conversation (the name bidi-isolated), with a note
/// for private rooms.
fn heading(data: &RoomData) -> impl IntoView {
    match data.visibility {
        Visibility::Public => Either::Left(format!("# {}", data.room)),
        Visibility::Private => Either::Left(format!("# {} (private)", data.room)),
        Visibility::Direct => {
            let name = data.title.clone();
            Either::Right(view! { "@ " <bdi>{name}</bdi> })
        }
    }
}

/// Who belongs to a private room or direct conversation, and (private rooms) inviting more.
#[component]
fn Members(room: String, members: Vec<UserName>, can_invite: bool) -> impl IntoView {
    let members = RwSignal::new(members);
    let invite = Posted::new(Invite::PATH).on_done(move |name| {
        members.update(|m| {
            if !m.iter().any(|u| u.0 == name) {
                m.push(UserName(name));
                m.sort();
            }
        });
    });
    let done = move || {
        invite
            .done
            .get()
            .map(|name| view! { <bdi>{name}</bdi> " can now open this room." })
    };
    view! {
        <aside class="members" aria-labelledby="members-heading">
            <h2 id="members-heading">"Members"</h2>
            <NameList names=members labelledby="members-heading" />
            {can_invite
                .then(|| {
                    view! {
                        <PostForm posted=invite>
                            <input type="hidden" name="room" value=room.clone() />
                            <label for="invite-name">"Invite by user name"</label>
                            <input id="invite-name" name="name" type="text" autocomplete="off" />
                            <button type="submit">"Invite"</button>
                        </PostForm>
                        <p class="note" aria-live="polite">
                            {done}
                        </p>
                        <FormError message=invite.error.into() />
                    }
                })}
        </aside>
    }
}

/// On a phone, once hydrated: the buttons "Rooms" and "People" that show the sidebar and
/// the people, which are folded away until asked for. Without JavaScript nothing folds
/// (the page stacks them); on a wide window the buttons are not shown at all.
#[component]
fn Menus(rooms: RwSignal<bool>, people: RwSignal<bool>) -> impl IntoView {
    let hydrated = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| hydrated.set(true));
    let toggle = move |menu: RwSignal<bool>, other: RwSignal<bool>| {
        move |_| {
            other.set(false);
            menu.update(|open| *open = !*open);
        }
    };
    move || {
        hydrated.get().then(|| {
            view! {
            <span class="menus">
                <button
                    type="button"
                    aria-controls="rooms-menu"
                    aria-expanded=move || rooms.get().to_string()
                    on:click=toggle(rooms, people)
                >
                    "Rooms"
                </button>
                <button
                    type="button"
                    aria-controls="people-menu"
                    aria-expanded=move || people.get().to_string()
                    on:click=toggle(people, rooms)
                >
                    "People"
                </button>
            </span>
            }
        })
    }
}

/// "Enable notifications", while the browser has not been asked yet (so never without
/// JavaScript): a direct message, or one that mentions the person, arriving while the tab is
/// hidden then raises one.
#[component]
fn EnableNotifications() -> impl IntoView {
    // Known only in the browser, after hydrating: the server renders no button.
    let askable = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| askable.set(crate::client::notify::can_ask()));
    let ask = move |_| {
        #[cfg(feature = "hydrate")]
        crate::client::notify::ask(move |_| askable.set(false));
    };
    move || {
        askable.get().then(|| {
            view! {
                <button type="button" class="notify" on:click=ask>
                    "Enable notifications"
                </button>
            }
        })
    }
}

#[component]
fn ConnectionStatus(status: RwSignal<ConnState>) -> impl IntoView {
    let class = move || match status.get() {
        ConnState::Connected => "status connected",
        ConnState::Offline => "status offline",
        _ => "status waiting",
    };
    view! {
        <p role="status" class=class>
            {move || status.get().label()}
        </p>
    }
}

/// Who else is typing, under the log ("Ada is typing…"); empty when nobody is.
#[component]
fn TypingNote(live: LiveRoom) -> impl IntoView {
    view! {
        <p class="typing" aria-live="polite">
            {move || live.typing.with(|t| typing_sentence(t))}
        </p>
    }
}

#[component]
fn GapNotice(live: LiveRoom) -> impl IntoView {
    let socket = expect_context::<ChatSocket>();
    move || {
        live.gap.get().then(|| {
            view! {
                <p class="gap" role="alert">
                    "Some messages may be missing — "
                    <button type="button" on:click=move |_| socket.reload_history(live)>
                        "Reload history"
                    </button>
                </p>
            }
        })
    }
}

#[component]
fn MessageList(live: LiveRoom) -> impl IntoView {
    let acts = Acts::new(live);
    let scroller = NodeRef::<leptos::html::Div>::new();
    let loading = RwSignal::new(false);
    let room = live.room.get_value();
    let first_seq = move || live.messages.with(|m| m.first().map_or(0, |m| m.seq.0));
    let zone = RwSignal::new(Zone::Utc);
    // Rendered in UTC, as the server did, then in the reader's zone once hydrated.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| zone.set(Zone::Local));

    // Loads the page before the first message shown and keeps the entry that was at the top
    // where it was, by growing scrollTop by exactly the height added above it.
    let load_older = move || {
        if loading.get_untracked() || !live.has_older.get_untracked() {
            return;
        }
        loading.set(true);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let before = live
                .messages
                .with_untracked(|m| m.first().map_or(0, |m| m.seq.0));
            let height_before = scroller.get_untracked().map_or(0, |el| el.scroll_height());
            match crate::api::load_history(live.room.get_value().0, before).await {
                Ok(older) => {
                    let complete = older.len() < crate::model::PAGE_MESSAGES
                        || older.first().is_some_and(|m| m.seq.0 <= 1);
                    live.messages.update(|list| {
                        crate::client::merge_messages(list.list_mut(), older);
                    });
                    live.has_older.set(!complete);
                    request_animation_frame(move || {
                        if let Some(el) = scroller.get_untracked() {
                            let grown = el.scroll_height() - height_before;
                            el.set_scroll_top(el.scroll_top() + grown);
                        }
                        loading.set(false);
                    });
                }
                Err(_) => loading.set(false),
            }
        });
    };

    // New messages keep the view at the bottom if the reader was already there.
    #[cfg(feature = "hydrate")]
    {
        let last_seq = move || live.messages.with(|m| m.last().map_or(0, |m| m.seq.0));
        let pending_count = move || live.pending.with(Vec::len);
        Effect::new(move |prev: Option<(u64, usize)>| {
            let now = (last_seq(), pending_count());
            let Some(el) = scroller.get() else { return now };
            let near_bottom = el.scroll_height() - el.scroll_top() - el.client_height() < 200;
            if prev.is_none() {
                // Opening the room: at the first unread message if there is one, else at the end.
                request_animation_frame(move || {
                    let Some(el) = scroller.get_untracked() else {
                        return;
                    };
                    use wasm_bindgen::JsCast;
                    let divider = el
                        .query_selector(".new-divider")
                        .ok()
                        .flatten()
                        .and_then(|d| d.dyn_into::<web_sys::HtmlElement>().ok());
                    match divider {
                        Some(divider) => el.set_scroll_top(divider.offset_top() - 8),
                        None => el.set_scroll_top(el.scroll_height()),
                    }
                });
            } else if prev != Some(now) && near_bottom {
                request_animation_frame(move || {
                    if let Some(el) = scroller.get_untracked() {
                        el.set_scroll_top(el.scroll_height());
                    }
                });
            }
            now
        });
    }

    view! {
        <div
            class="log-scroll"
            node_ref=scroller
            on:scroll=move |_| {
                if let Some(el) = scroller.get_untracked() {
                    if el.scroll_top() < 40 {
                        load_older();
                    }
                }
            }
        >
            <div class="history-top">
                {move || {
                    if live.has_older.get() {
                        // A GET form: with JavaScript off it opens the older page.
                        Either::Left(view! {
                            <form
                                method="get"
                                action=format!("/r/{}", room.0)
                                on:submit=move |ev| {
                                    ev.prevent_default();
                                    load_older();
                                }
                            >
                                <input type="hidden" name="before" value=first_seq />
                                <button type="submit" disabled=move || loading.get()>
                                    "Load older messages"
                                </button>
                            </form>
                        })
                    } else {
                        Either::Right(view! {
                            <p class="history-start">
                                {format!("This is the beginning of #{}.", room.0)}
                            </p>
                        })
                    }
                }}
            </div>
            <p class="notice" role="alert">
                {move || live.notice.get()}
            </p>
            <ol
                class="messages"
                role="log"
                aria-label="Messages"
                aria-live="polite"
                on:submit=move |ev| {
                    #[cfg(feature = "hydrate")]
                    act_on_submit(ev, acts);
                    #[cfg(not(feature = "hydrate"))]
                    let _ = ev;
                }
                on:keydown=move |ev| {
                    #[cfg(feature = "hydrate")]
                    act_on_key(ev, acts);
                    #[cfg(not(feature = "hydrate"))]
                    let _ = ev;
                }
            >
                {message_rows(live, zone.into(), acts)}
                // Rarely more than a message or two: drawn again whole when they change (a
                // keyed list's machinery is not worth its bundle bytes here).
                {move || {
                    live.pending
                        .get()
                        .into_iter()
                        .map(|pending| {
                            view! {
                                <li class="message pending">
                                    <span class="author">"You"</span>
                                    <bdi class="text">{pending.text}</bdi>
                                    <span class="state">
                                        {match pending.failed {
                                            Some(why) => format!("Not sent: {why}"),
                                            None => "Sending…".to_string(),
                                        }}
                                    </span>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
        </div>
    }
}

/// The messages of the list, oldest first, each under its day's divider when it is the first
/// of its day, and grouped under the name of the message before it when it continues it.
///
/// In the browser a keyed `For`, so new and older messages insert rows in place (a row whose
/// placement changes is rendered again). On the server the list cannot change while the page
/// renders, so the rows are rendered as a plain list of the same views, which writes the HTML
/// the browser's `For` hydrates: a `For` there would give each row a reactive owner only to
/// drop it, and the rows are most of a page.
fn message_rows(live: LiveRoom, zone: Signal<Zone>, acts: Acts) -> impl IntoView {
    #[cfg(not(feature = "ssr"))]
    {
        let rows = move || {
            let zone = zone.get();
            live.messages.with(|list| {
                let placed = time::place(list, time::now(), zone, live.first_unread.get_value());
                list.iter().cloned().zip(placed).collect::<Vec<_>>()
            })
        };
        view! {
            <For
                each=rows
                key=|(m, placed)| {
                    (m.seq, placed.clone(), m.deleted, m.text.clone(), m.reactions.clone())
                }
                children=move |(m, placed)| message_row(&m, placed, zone, Some(acts))
            />
        }
    }
    #[cfg(feature = "ssr")]
    {
        let zone = zone.get_untracked();
        live.messages.with_untracked(|list| {
            placed_rows(list, zone, live.first_unread.get_value(), Some(acts))
        })
    }
}

/// The zone a row's time is shown in. The server's page cannot change, so there it is a
/// plain value, read once per page rather than once per row; in the browser it follows the
/// reader's zone (UTC while hydrating, then theirs).
#[cfg(feature = "ssr")]
type RowZone = Zone;
#[cfg(not(feature = "ssr"))]
type RowZone = Signal<Zone>;

/// `zone` as rows take it, for a page whose times never change zone.
fn fixed_zone(zone: Zone) -> RowZone {
    #[cfg(feature = "ssr")]
    {
        zone
    }
    #[cfg(not(feature = "ssr"))]
    {
        Signal::stored(zone)
    }
}

/// Every message of `list` as rows, placed as of now (a list that does not change).
fn placed_rows(
    list: &[ChatMessage],
    zone: RowZone,
    first_unread: Option<Seq>,
    acts: Option<Acts>,
) -> impl IntoView {
    #[cfg(feature = "ssr")]
    let placed = time::place(list, time::now(), zone, first_unread);
    #[cfg(not(feature = "ssr"))]
    let placed = time::place(list, time::now(), zone.get_untracked(), first_unread);
    list.iter()
        .zip(placed)
        .map(|(m, placed)| message_row(m, placed, zone, acts))
        .collect_view()
}

/// When a message was sent, as the row shows it.
fn clock(ts: u64, zone: RowZone) -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        time::clock(ts, zone)
    }
    #[cfg(not(feature = "ssr"))]
    {
        move || time::clock(ts, zone.get())
    }
}

/// One message: who wrote it (marked when a guest did), when, and what they wrote, the name
/// and text each bidi-isolated (`<bdi>`) so that right-to-left text or a direction override
/// in one cannot reorder what follows it. Above it, its day's divider if it is the first of
/// the day; a message continuing its author's group keeps its name for screen readers but
/// shows it only once (`continued`).
fn message_row(
    m: &ChatMessage,
    placed: Placement,
    zone: RowZone,
    acts: Option<Acts>,
) -> impl IntoView {
    let ts = m.ts;
    let unread = placed.first_unread.then(|| {
        view! {
            <li role="separator" aria-label="New messages" class="new-divider">
                <span>"New messages"</span>
            </li>
        }
    });
    // One optional part for both separators, so most rows carry one hydration marker.
    let separators = (placed.divider.is_some() || unread.is_some()).then(|| {
        let divider = placed.divider.map(|label| {
            let name = label.clone();
            view! {
                <li role="separator" aria-label=name class="day-divider">
                    <span>{label}</span>
                </li>
            }
        });
        (divider, unread)
    });
    let class = match (placed.continues, acts.is_some_and(|acts| acts.calls_on(m))) {
        (false, false) => "message",
        (true, false) => "message continued",
        (false, true) => "message mention",
        (true, true) => "message continued mention",
    };
    view! {
        {separators}
        <li class=class>
            <bdi class="author">{m.author.0.clone()}</bdi>
            {m.guest.then(guest_badge)}
            <time datetime=time::iso(ts)>{clock(ts, zone)}</time>
            {if m.deleted {
                Either::Left(view! { <i class="text deleted">"This message was deleted."</i> })
            } else {
                Either::Right(markdown::message_text(m.text.clone(), m.rich.clone()))
            }}
            {(m.edited && !m.deleted).then(|| view! { <span class="edited">" (edited)"</span> })}
            {(!m.reactions.is_empty())
                .then(|| {
                    // An older page (no actions) shows them as toggles too: without
                    // JavaScript each adds the viewer's reaction.
                    let me = acts.and_then(|acts| acts.me.get_untracked());
                    reaction_toggles(m, me.as_ref())
                })}
            {acts.filter(|_| !m.deleted).map(|acts| message_actions(m, acts))}
        </li>
    }
}

/// Which action on a message is open: its edit box, its delete confirmation, or its
/// reaction picker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Edit,
    Delete,
    React,
}

/// What a row needs to offer actions on its message: the room, who is looking (their own
/// messages get Edit and Delete), which message's action is open, and where a refusal is
/// told.
#[derive(Clone, Copy)]
struct Acts {
    room: StoredValue<RoomId>,
    me: RwSignal<Option<AuthorKey>>,
    name: RwSignal<Option<String>>,
    open: RwSignal<Option<(Seq, Act)>>,
    /// True once hydrated: "Add reaction" needs JavaScript, so the server's page (read by
    /// every visitor) carries no such button on every row.
    #[cfg(not(feature = "ssr"))]
    hydrated: RwSignal<bool>,
    #[cfg(feature = "hydrate")]
    notice: RwSignal<Option<String>>,
}

impl Acts {
    /// Opened from the address (`?edit=43`, `?delete=43`, `?react=43`: what the buttons ask
    /// for without JavaScript), else closed.
    fn new(live: LiveRoom) -> Acts {
        let query = use_query_map();
        let open = query.with_untracked(|q| {
            [
                ("edit", Act::Edit),
                ("delete", Act::Delete),
                ("react", Act::React),
            ]
            .into_iter()
            .find_map(|(name, act)| Some((Seq(q.get(name)?.parse().ok()?), act)))
        });
        // A JavaScript-off change that was refused comes back with its reason in the URL.
        let refused = [EditMessage::PATH, DeleteMessage::PATH, React::PATH]
            .into_iter()
            .find_map(|path| Posted::new(path).error.get_untracked());
        if refused.is_some() {
            live.notice.set(refused);
        }
        #[cfg(not(feature = "ssr"))]
        let hydrated = RwSignal::new(false);
        #[cfg(feature = "hydrate")]
        Effect::new(move |_| hydrated.set(true));
        let socket = expect_context::<ChatSocket>();
        Acts {
            room: live.room,
            me: socket.key,
            name: socket.name,
            open: RwSignal::new(open),
            #[cfg(not(feature = "ssr"))]
            hydrated,
            #[cfg(feature = "hydrate")]
            notice: live.notice,
        }
    }

    /// Whether `m` mentions the viewer, who is here (so `@here` does too): it is highlighted.
    fn calls_on(self, m: &ChatMessage) -> bool {
        let key = self.me.get_untracked().unwrap_or_default();
        self.name
            .with_untracked(|name| name.as_ref().is_some_and(|n| m.mentions(n, &key, true)))
    }

    /// Sends `msg` over the live connection and closes the open action; with no
    /// connection, says so.
    #[cfg(feature = "hydrate")]
    fn send(self, msg: crate::protocol::ClientMsg) {
        if expect_context::<ChatSocket>().change(&msg) {
            self.notice.set(None);
            self.open.set(None);
        } else {
            self.notice.set(Some(
                "Not connected right now; try again in a moment.".into(),
            ));
        }
    }
}

/// A form naming a message: its room and sequence number as hidden fields.
fn message_fields(room: &RoomId, seq: Seq) -> impl IntoView {
    view! {
        <input type="hidden" name="room" value=room.0.clone() />
        <input type="hidden" name="seq" value=seq.0 />
    }
}

/// The buttons under a message: "Edit message" and "Delete message" for its author, "Add
/// reaction" for everyone once hydrated, and below them the action that is open. Each is a
/// plain form: the buttons are GET forms that open the action on the page (`?edit=43`),
/// the actions POST to their server function. With JavaScript the log handles every one of
/// them in place ([`act_on_submit`]).
fn message_actions(m: &ChatMessage, acts: Acts) -> impl IntoView {
    let seq = m.seq;
    // Static per row: a row is made again whenever its message changes, and a person's key
    // only ever appears after they have no messages yet (a guest naming themselves).
    let own = !m.key.is_empty() && acts.me.with_untracked(|me| me.as_ref() == Some(&m.key));
    // One GET form; the button pressed names the action (`?edit=43`).
    let opener = move |name: &'static str, label: &'static str| {
        view! {
            <button type="submit" name=name value=seq.0>
                {label}
            </button>
        }
    };
    let text = m.text.clone();
    let open = move || {
        let room = || acts.room.get_value();
        let back = || format!("/r/{}", acts.room.get_value());
        match acts.open.get() {
            Some((s, Act::React)) if s == seq => EitherOf4::A(view! {
                <div class="picker" role="group" aria-label="Reactions">
                    {REACTIONS
                        .iter()
                        .map(|emoji| reaction_form(&room(), seq, emoji, true, emoji.to_string(), None))
                        .collect_view()}
                </div>
            }),
            Some((s, Act::Edit)) if s == seq && own => EitherOf4::B(view! {
                <form class="edit" method="post" action=EditMessage::PATH>
                    {message_fields(&room(), seq)}
                    <textarea name="text" aria-label="Edit message" autofocus>
                        {text.clone()}
                    </textarea>
                    <button type="submit">"Save"</button>
                    <button type="submit" name="cancel" formmethod="get" formaction=back()>
                        "Cancel"
                    </button>
                </form>
            }),
            Some((s, Act::Delete)) if s == seq && own => EitherOf4::C(view! {
                <div class="confirm" role="dialog" aria-label="Delete message?">
                    <p>"Delete this message for everyone? This cannot be undone."</p>
                    <form method="post" action=DeleteMessage::PATH>
                        {message_fields(&room(), seq)}
                        <button type="submit" autofocus>"Delete"</button>
                        <button type="submit" name="cancel" formmethod="get" formaction=back()>
                            "Cancel"
                        </button>
                    </form>
                </div>
            }),
            _ => EitherOf4::D(()),
        }
    };
    // The server's page cannot change: it writes the open action (if any) once, and no
    // "Add reaction"; in the browser both follow their signals.
    #[cfg(feature = "ssr")]
    let (open, add_reaction) = (open(), None::<()>);
    #[cfg(not(feature = "ssr"))]
    let add_reaction = move || acts.hydrated.get().then(|| opener("react", "Add reaction"));
    view! {
        <form class="actions" method="get">
            {add_reaction}
            {own.then(|| view! {
                {opener("edit", "Edit message")}
                {opener("delete", "Delete message")}
            })}
        </form>
        {open}
    }
}

/// Handles a submit from any form in the log once hydrated: an action opened, saved or
/// cancelled in place, a change sent over the live connection. The same forms work as
/// plain HTML without JavaScript; one listener on the log serves every row.
#[cfg(feature = "hydrate")]
fn act_on_submit(ev: leptos::ev::SubmitEvent, acts: Acts) {
    use crate::protocol::ClientMsg;
    use wasm_bindgen::JsCast;
    let Some(form) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
    else {
        return;
    };
    let Ok(fields) = web_sys::FormData::new_with_form(&form) else {
        return;
    };
    let field = |name: &str| fields.get(name).as_string();
    ev.prevent_default();
    // The button pressed: "cancel", or the action it opens with the message's number.
    let pressed = |attr: &str| ev.submitter().and_then(|b| b.get_attribute(attr));
    if pressed("name").as_deref() == Some("cancel") {
        acts.open.set(None);
        return;
    }
    let opened = [
        ("edit", Act::Edit),
        ("delete", Act::Delete),
        ("react", Act::React),
    ]
    .into_iter()
    .find(|(name, _)| pressed("name").as_deref() == Some(*name))
    .and_then(|(_, act)| Some((Seq(pressed("value")?.parse().ok()?), act)));
    if let Some(opened) = opened {
        acts.open.set(Some(opened));
        // Into the box or onto the button the action opened with.
        let row = form.closest("li").ok().flatten();
        request_animation_frame(move || {
            let target = row.and_then(|row| row.query_selector("[autofocus]").ok().flatten());
            if let Some(el) = target.and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok()) {
                let _ = el.focus();
            }
        });
        return;
    }
    let (Some(seq), room) = (
        field("seq").and_then(|s| s.parse().ok()).map(Seq),
        acts.room.get_value(),
    ) else {
        return;
    };
    let path = form.get_attribute("action").unwrap_or_default();
    let msg = if path == EditMessage::PATH {
        match crate::names::clean_message(&field("text").unwrap_or_default()) {
            Ok(text) => ClientMsg::Edit { room, seq, text },
            Err(problem) => return acts.notice.set(Some(problem.sentence())),
        }
    } else if path == DeleteMessage::PATH {
        ClientMsg::Delete { room, seq }
    } else if path == React::PATH {
        ClientMsg::React {
            room,
            seq,
            emoji: field("emoji").unwrap_or_default(),
            on: field("on").as_deref() == Some("true"),
        }
    } else {
        return;
    };
    acts.send(msg);
}

/// In the log, once hydrated: Enter saves an edit (Shift+Enter starts a new line) and
/// Escape closes the open action.
#[cfg(feature = "hydrate")]
fn act_on_key(ev: leptos::ev::KeyboardEvent, acts: Acts) {
    use wasm_bindgen::JsCast;
    if ev.key() == "Escape" && acts.open.get_untracked().is_some() {
        acts.open.set(None);
    } else if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
        let form = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
            .and_then(|area| area.form());
        if let Some(form) = form {
            ev.prevent_default();
            let _ = form.request_submit();
        }
    }
}

/// One reaction button as a form: it sets this person's `emoji` to `on`. `label` is the
/// button's text (and so its name): "👍 2" for a reaction shown, "👍" in the picker; a
/// reaction shown says whether it includes the viewer (`aria-pressed`) and who chose it.
fn reaction_form(
    room: &RoomId,
    seq: Seq,
    emoji: &str,
    on: bool,
    label: String,
    shown: Option<(bool, String)>,
) -> impl IntoView {
    let (pressed, who) = shown.unzip();
    view! {
        <form method="post" action=React::PATH>
            {message_fields(room, seq)}
            <input type="hidden" name="emoji" value=emoji.to_string() />
            <input type="hidden" name="on" value=on.to_string() />
            <button
                type="submit"
                class="reaction"
                title=who
                aria-pressed=pressed.map(|p| p.to_string())
            >
                {label}
            </button>
        </form>
    }
}

/// A message's reactions as toggles: each emoji with its count ("👍 2"), pressed when it
/// includes the viewer (a click takes theirs back), who chose it in its tooltip.
fn reaction_toggles(m: &ChatMessage, me: Option<&AuthorKey>) -> impl IntoView {
    let room = &m.room;
    m.reactions
        .iter()
        .map(|r| {
            let mine = me.is_some_and(|me| r.people.iter().any(|p| p.key == *me));
            let who: Vec<&str> = r.people.iter().map(|p| p.name.0.as_str()).collect();
            let label = format!("{} {}", r.emoji, r.people.len());
            reaction_form(
                room,
                m.seq,
                &r.emoji,
                !mine,
                label,
                Some((mine, who.join(", "))),
            )
        })
        .collect_view()
}

/// What marks a guest wherever a name is shown: text, so it is part of what a screen reader
/// reads ("Ada (guest)"), styled apart.
fn guest_badge() -> impl IntoView {
    view! { <span class="guest">" (guest)"</span> }
}

/// An older page of a room (`?before=`), server-rendered and static: the way back through
/// history with JavaScript off.
#[component]
fn Archive(data: RoomData) -> impl IntoView {
    let room = data.room.0.clone();
    let heading = heading(&data);
    let older = data.messages.first().map(|m| m.seq.0);
    view! {
        <div class="room archive">
            <header class="room-header">
                <p class="back">
                    <a href="/">"← Rooms"</a>
                </p>
                <h1>{heading}</h1>
            </header>
            <p>
                <a href=format!("/r/{room}")>"Back to the latest messages"</a>
            </p>
            {match (data.has_older, older) {
                (true, Some(seq)) => Either::Left(view! {
                    <form method="get" action=format!("/r/{room}")>
                        <input type="hidden" name="before" value=seq />
                        <button type="submit">"Load older messages"</button>
                    </form>
                }),
                _ => Either::Right(view! {
                    <p class="history-start">{format!("This is the beginning of #{room}.")}</p>
                }),
            }}
            <ol class="messages" role="log" aria-label="Messages">
                {placed_rows(&data.messages, fixed_zone(Zone::Utc), None, None)}
            </ol>
        </div>
    }
}

#[component]
fn Composer(live: LiveRoom) -> impl IntoView {
    let socket = expect_context::<ChatSocket>();
    let draft = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    // Reads an error a plain (JavaScript-off) form post came back with.
    let posted = Posted::new(PostMessage::PATH);
    let post_error = move || problem.get().or_else(|| posted.error.get());
    let room = live.room.get_value();

    let submit = move || {
        let text = draft.get_untracked();
        match crate::names::clean_message(&text) {
            Ok(text) => {
                problem.set(None);
                draft.set(String::new());
                socket.send(&live.room.get_value(), text);
            }
            Err(p) => problem.set(Some(p.sentence())),
        }
    };

    // The "@name" being typed, and the people it may name ("Mention someone").
    let typed = RwSignal::new(None::<String>);
    let active = RwSignal::new(0u32);
    let matches = move || mention_candidates(live, socket.name.get_untracked(), &typed.get()?);
    // Puts "@name " in place of what was typed after the `@`.
    let complete = move |name: &str| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = message_box() {
            let text = el.value();
            let caret = byte_at(&text, el.selection_start().ok().flatten().unwrap_or(0));
            let Some((at, _)) = mention_typed(&text, caret) else {
                return typed.set(None);
            };
            let text = format!("{}@{name} {}", &text[..at], &text[caret..]);
            let end = text[..at + name.len() + 2].encode_utf16().count() as u32;
            el.set_value(&text);
            draft.set(text);
            let _ = el.set_selection_range(end, end);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = name;
        typed.set(None);
    };

    let on_input = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        if !text.trim().is_empty() {
            socket.typing(&live.room.get_value());
        }
        #[cfg(feature = "hydrate")]
        typed.set(message_box().and_then(|el| {
            let caret = el.selection_start().ok().flatten()?;
            mention_typed(&text, byte_at(&text, caret)).map(|(_, typed)| typed)
        }));
        active.set(0);
        draft.set(text);
    };
    // The server renders the single-line input; once hydrated it becomes a textarea, so that
    // messages can have several lines (lists, quotes, code).
    let multiline = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| multiline.set(true));

    view! {
        <form
            class="composer"
            method="post"
            action=PostMessage::PATH
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <input type="hidden" name="room" value=room.0 />
            <label for="message">"Message"</label>
            {move || {
                if multiline.get() {
                    // With JavaScript: Enter sends, Shift+Enter starts a new line.
                    Either::Left(view! {
                        <textarea
                            id="message"
                            name="text"
                            rows="1"
                            autocomplete="off"
                            aria-autocomplete="list"
                            aria-controls="mentions"
                            aria-activedescendant=move || {
                                typed.with(Option::is_some).then(|| format!("mention-{}", active.get()))
                            }
                            prop:value=move || draft.get()
                            on:input=on_input
                            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                                let key = ev.key();
                                if let Some(names) = matches() {
                                    // Arrows choose whom to mention, Enter or Tab completes the
                                    // name, Escape closes the list.
                                    let n = names.len() as u32;
                                    let step = match key.as_str() {
                                        "ArrowDown" => 1,
                                        "ArrowUp" => n - 1,
                                        "Enter" | "Tab" => {
                                            complete(&names[active.get_untracked().min(n - 1) as usize]);
                                            0
                                        }
                                        "Escape" => {
                                            typed.set(None);
                                            0
                                        }
                                        _ => return,
                                    };
                                    ev.prevent_default();
                                    active.update(|a| *a = (*a + step) % n);
                                    return;
                                }
                                if key == "Enter" && !ev.shift_key() && !ev.is_composing() {
                                    ev.prevent_default();
                                    submit();
                                }
                            }
                        ></textarea>
                        // Drawn again whole as it changes: eight names at most. A press on
                        // a name completes it, and keeps the focus in the textbox.
                        {move || {
                            matches()
                                .map(|names| {
                                    let chosen = active.get() as usize;
                                    let options = name_rows(
                                        names
                                            .iter()
                                            .enumerate()
                                            .map(|(i, name)| (name.clone(), false, Some((i, i == chosen))))
                                            .collect(),
                                    );
                                    view! {
                                        <ul
                                            id="mentions"
                                            role="listbox"
                                            aria-label="Mention someone"
                                            on:mousedown=move |ev| {
                                                ev.prevent_default();
                                                let picked = pressed_name(&ev).filter(|n| names.contains(n));
                                                if let Some(name) = picked {
                                                    complete(&name);
                                                }
                                            }
                                        >
                                            {options}
                                        </ul>
                                    }
                                })
                        }}
                    })
                } else {
                    // Without it, a single-line input: Enter submits the form natively.
                    Either::Right(view! {
                        <input
                            id="message"
                            name="text"
                            type="text"
                            autocomplete="off"
                            prop:value=move || draft.get()
                            on:input=on_input
                        />
                    })
                }
            }}
            <button type="submit">"Send"</button>
            <FormError message=Signal::derive(post_error) />
        </form>
    }
}

/// The "@name" being typed before byte `caret` of `text`: where its `@` is, and what follows
/// it (lower-cased). The `@` starts a word; a name typed so far has no spaces.
#[cfg(any(feature = "hydrate", test))]
fn mention_typed(text: &str, caret: usize) -> Option<(usize, String)> {
    let before = text.get(..caret)?;
    let at = before.bytes().rposition(|b| b == b'@')?;
    let typed = &before[at + 1..];
    let word = crate::names::is_word;
    let starts = !before[..at].chars().next_back().is_some_and(word);
    let name_so_far = typed.len() <= 128 && typed.chars().all(|c| word(c) || c == '-');
    (starts && name_so_far).then(|| (at, crate::names::lower(typed)))
}

/// The composer's textarea, found by its id (the label's `for`) rather than through a
/// `NodeRef`: one signal type fewer in the bundle.
#[cfg(feature = "hydrate")]
fn message_box() -> Option<web_sys::HtmlTextAreaElement> {
    use wasm_bindgen::JsCast;
    let el = web_sys::window()?
        .document()?
        .get_element_by_id("message")?;
    el.dyn_into().ok()
}

/// The name on the option of the mention list that a press landed on.
fn pressed_name(ev: &leptos::ev::MouseEvent) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        event_target::<web_sys::Element>(ev).text_content()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        None
    }
}

/// The byte of `text` at `units` UTF-16 code units (what the browser's caret counts).
#[cfg(feature = "hydrate")]
fn byte_at(text: &str, units: u32) -> usize {
    let mut seen = 0;
    for (i, c) in text.char_indices() {
        if seen >= units as usize {
            return i;
        }
        seen += c.len_utf16();
    }
    text.len()
}

/// Whom "@" and `typed` may mention here: people online, then the authors of the messages
/// shown (latest first), then `here`; never the viewer; at most eight.
fn mention_candidates(live: LiveRoom, me: Option<String>, typed: &str) -> Option<Vec<String>> {
    let mut names: Vec<String> = live
        .online
        .with(|o| o.iter().map(|p| p.name.0.clone()).collect());
    live.messages
        .with(|list| names.extend(list.iter().rev().map(|m| m.author.0.clone())));
    names.push(crate::names::HERE.to_string());
    // Each name is lowered once, however many messages it wrote.
    let mut seen: Vec<String> = me.into_iter().collect();
    let mut shown: Vec<String> = Vec::new();
    for name in names {
        if seen.contains(&name) {
            continue;
        }
        if crate::names::lower(&name).starts_with(typed) {
            shown.push(name.clone());
            if shown.len() == 8 {
                break;
            }
        }
        seen.push(name);
    }
    (!shown.is_empty()).then_some(shown)
}

#[component]
fn PresenceList(live: LiveRoom) -> impl IntoView {
    view! {
        <aside class="presence" aria-labelledby="online-heading">
            <h2 id="online-heading">"Online"</h2>
            <ul aria-labelledby="online-heading">
                // Drawn again whole when someone comes or goes, which is far rarer than a
                // message: a keyed list here costs the bundle about a kilobyte.
                {move || {
                    name_rows(live.online.get().into_iter().map(|p| (p.name.0, p.guest, None)).collect())
                }}
            </ul>
        </aside>
    }
}

/// A name, whether it is a guest's, and (an option of the mention list) its place and
/// whether it is the one chosen.
type NameRow = (String, bool, Option<(usize, bool)>);

/// Names as list items: in the Online and Members lists (a guest's marked), and as the
/// options of the mention list (`option`: its place, and whether it is the one chosen). One
/// row type for the three lists, so the bundle carries one list of them.
fn name_rows(rows: Vec<NameRow>) -> Vec<impl IntoView> {
    rows.into_iter()
        .map(|(name, guest, option)| {
            let id = option.map(|(i, _)| format!("mention-{i}"));
            let role = option.map(|_| "option");
            let chosen = option.map(|(_, on)| on.to_string());
            view! {
                <li id=id role=role aria-selected=chosen>
                    <bdi>{name}</bdi>
                    {guest.then(guest_badge)}
                </li>
            }
        })
        .collect()
}

/// A list of account names, named by the heading `labelledby` points at.
#[component]
fn NameList(names: RwSignal<Vec<UserName>>, labelledby: &'static str) -> impl IntoView {
    view! {
        <ul aria-labelledby=labelledby>
            // A room's members, drawn again whole when one is invited.
            {move || {
                name_rows(names.get().into_iter().map(|user| (user.0, false, None)).collect())
            }}
        </ul>
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use crate::protocol::{ClientId, RoomId, Seq};

    fn message(seq: u64, author: &str, text: &str) -> ChatMessage {
        ChatMessage {
            guest: seq.is_multiple_of(3),
            rich: None,
            room: RoomId("r".into()),
            seq: Seq(seq),
            author: UserName(author.into()),
            text: text.into(),
            client_id: ClientId(format!("c{seq}")),
            ts: 0,
            ..Default::default()
        }
    }

    /// Every author and text sits in its own bidi isolate, so a right-to-left override in
    /// one cannot reorder what follows it (the next name, the next message).
    #[test]
    fn a_right_to_left_override_stays_inside_its_own_name_or_message() {
        let list = [
            message(1, "\u{202e}Mallory", "\u{202e}txt.exe"),
            message(2, "Bob", "after"),
        ];
        let html =
            Owner::new().with(|| placed_rows(&list, fixed_zone(Zone::Utc), None, None).to_html());
        for piece in ["\u{202e}Mallory", "\u{202e}txt.exe", "Bob", "after"] {
            let at = html.find(piece).unwrap();
            let open = html[..at].rfind('<').unwrap();
            assert!(
                html[open..at].starts_with("<bdi"),
                "{piece:?} is not the start of a <bdi> element in {html}"
            );
            assert!(
                html[at + piece.len()..].starts_with("</bdi>"),
                "{piece:?} is not the whole of its <bdi> element in {html}"
            );
        }
    }

    /// A page shows each message as it is now: edited, deleted, with its reactions.
    #[test]
    fn changed_messages_show_their_current_state() {
        let person = |name: &str| crate::protocol::Person {
            name: UserName(name.into()),
            key: crate::protocol::AuthorKey(format!("a:{name}")),
            guest: false,
        };
        let mut edited = message(1, "Ada", "fixed typo");
        edited.edited = true;
        let mut deleted = message(2, "Ada", "");
        deleted.deleted = true;
        let mut liked = message(4, "Bob", "ship it");
        liked.react("👍", &person("Ada"), true);
        liked.react("👍", &person("Cy"), true);
        let html = Owner::new().with(|| {
            placed_rows(&[edited, deleted, liked], fixed_zone(Zone::Utc), None, None).to_html()
        });
        assert!(
            html.contains("fixed typo</bdi><span class=\"edited\"> (edited)</span>"),
            "{html}"
        );
        assert!(html.contains(">This message was deleted.</i>"), "{html}");
        assert_eq!(html.matches("(edited)").count(), 1, "{html}");
        assert!(
            html.contains(r#"title="Ada, Cy" aria-pressed="false" class="reaction">👍 2</button>"#),
            "{html}"
        );
    }

    #[test]
    fn a_mention_is_being_typed_after_an_at_sign_that_starts_a_word() {
        assert_eq!(mention_typed("hi @Ad", 6), Some((3, "ad".into())));
        assert_eq!(mention_typed("@", 1), Some((0, String::new())));
        assert_eq!(mention_typed("hi @Ad and more", 6), Some((3, "ad".into())));
        assert_eq!(mention_typed("mail ada@exa", 12), None);
        assert_eq!(mention_typed("hi @Ada Lovelace", 16), None);
        assert_eq!(mention_typed("no at sign", 10), None);
    }
}
