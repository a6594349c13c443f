//! `/r/{room}`: the room's messages, the composer, who is online, and the connection state.

use super::name_form::NameForm;
use crate::api::{load_room, PostMessage, RoomPage as RoomData, SetName};
use crate::client::{ChatSocket, ConnState, LiveRoom};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_params_map;

#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let room = move || params.read().get("room").unwrap_or_default();
    let page = Resource::new(room, load_room);
    view! {
        <Suspense fallback=|| view! { <p>"Loading the room…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(data) => Either::Left(view! { <Room data /> }),
                    Err(e) => Either::Right(view! {
                        <h1>"Room not found"</h1>
                        <p role="alert">{e.to_string()}</p>
                        <p><a href="/">"Back to the rooms"</a></p>
                    }),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Room(data: RoomData) -> impl IntoView {
    let socket = expect_context::<ChatSocket>();
    let live = socket.open_room(&data);
    let room = data.room.clone();
    on_cleanup({
        let room = room.clone();
        move || socket.close_room(&room)
    });

    let set_name = ServerAction::<SetName>::new();
    let named = RwSignal::new(data.me.is_some());
    Effect::new(move |_| {
        if matches!(set_name.value().get(), Some(Ok(_))) {
            named.set(true);
            socket.reconnect_now();
        }
    });
    let me = data.me.clone().map(|n| n.0);

    view! {
        <div class="room">
            <header class="room-header">
                <p class="back">
                    <a href="/">"← Rooms"</a>
                </p>
                <h1>"# " {room.0.clone()}</h1>
                <ConnectionStatus status=socket.status />
            </header>
            <div class="room-body">
                <section class="conversation">
                    <GapNotice live />
                    <MessageList live />
                    {move || {
                        if named.get() {
                            Either::Left(view! { <Composer live /> })
                        } else {
                            Either::Right(view! { <NameForm action=set_name current=me.clone() /> })
                        }
                    }}
                </section>
                <PresenceList live />
            </div>
        </div>
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

#[component]
fn GapNotice(live: LiveRoom) -> impl IntoView {
    view! {
        <Show when=move || live.gap.get()>
            <p class="gap" role="alert">
                "Some messages may be missing — the latest history was reloaded."
            </p>
        </Show>
    }
}

#[component]
fn MessageList(live: LiveRoom) -> impl IntoView {
    view! {
        <ol class="messages" role="log" aria-label="Messages" aria-live="polite">
            <For each=move || live.messages.get() key=|m| m.seq let:msg>
                <li class="message">
                    <span class="author">{msg.author.0}</span>
                    <span class="text">{msg.text}</span>
                </li>
            </For>
            <For each=move || live.pending.get() key=|p| p.client_id.clone() let:pending>
                <li class="message pending">
                    <span class="author">"You"</span>
                    <span class="text">{pending.text}</span>
                    <span class="state">
                        {match pending.failed {
                            Some(why) => format!("Not sent: {why}"),
                            None => "Sending…".to_string(),
                        }}
                    </span>
                </li>
            </For>
        </ol>
    }
}

#[component]
fn Composer(live: LiveRoom) -> impl IntoView {
    let socket = expect_context::<ChatSocket>();
    let draft = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    // Reads an error a plain (JavaScript-off) form post came back with.
    let posted = ServerAction::<PostMessage>::new();
    let post_error = move || {
        problem.get().or_else(|| {
            posted
                .value()
                .get()
                .and_then(|r| r.err())
                .map(|e| e.to_string())
        })
    };
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
            // A single-line input: Enter submits natively, so it also sends with JavaScript
            // off.
            <input
                id="message"
                name="text"
                type="text"
                autocomplete="off"
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
            />
            <button type="submit">"Send"</button>
            <Show when=move || post_error().is_some()>
                <p class="error" role="alert">
                    {post_error}
                </p>
            </Show>
        </form>
    }
}

#[component]
fn PresenceList(live: LiveRoom) -> impl IntoView {
    view! {
        <aside class="presence" aria-labelledby="online-heading">
            <h2 id="online-heading">"Online"</h2>
            <ul aria-labelledby="online-heading">
                <For each=move || live.online.get() key=|u| u.0.clone() let:user>
                    <li>{user.0}</li>
                </For>
            </ul>
        </aside>
    }
}
