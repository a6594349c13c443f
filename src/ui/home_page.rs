//! `/`: who you are, the rooms you may enter and who is in them, creating a room, and (with
//! an account) starting a direct conversation.
//!
//! The room list comes a page at a time (`?page=`), most recently active first; a plain
//! "More rooms" link moves to the next page, so paging works with JavaScript off too.

use super::account::AccountBar;
use super::form_error::FormError;
use super::name_form::NameForm;
use super::post_form::{PostForm, Posted};
use crate::api::{list_rooms, whoami, CreateRoom, OpenDirect, SetName};
use crate::model::{AppError, Me, PageJson, RoomList as Rooms, Visibility};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

#[component]
pub fn HomePage() -> impl IntoView {
    let set_name = Posted::new(SetName::PATH);
    let create_room = Posted::new(CreateRoom::PATH);
    let query = use_query_map();
    // The page of the room list the address asks for (`?page=`, from 0).
    let number = move || query.with(|q| q.get_str("page").and_then(|p| p.parse().ok()));
    // One resource for the whole page: who is looking and the rooms they may see. The list
    // then keeps itself fresh (`RoomList`).
    let page = Resource::<_, PageJson>::new_with_options(
        move || (set_name.version.get(), number().unwrap_or(0u32)),
        |(_, number)| async move {
            let me = whoami().await.unwrap_or(Me {
                name: None,
                registered: false,
                guests_allowed: false,
            });
            (me, list_rooms(Some(number)).await)
        },
        false,
    );

    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let (me, rooms) = page.await;
                view! {
                    <header class="top">
                        <h1>"Hearth"</h1>
                        <AccountBar me=me.clone() />
                    </header>
                    <Identity me=me.clone() set_name />
                    <section class="rooms" aria-labelledby="rooms-heading">
                        <h2 id="rooms-heading">"Rooms"</h2>
                        <RoomList rooms />
                        <CreateRoomForm posted=create_room registered=me.registered />
                    </section>
                    {me.registered.then(|| view! { <DirectForm /> })}
                }
            })}
        </Suspense>
    }
}

/// The guest name form, or what to do when guests are not allowed.
#[component]
fn Identity(me: Me, set_name: Posted) -> impl IntoView {
    if me.registered {
        return None;
    }
    Some(if me.guests_allowed {
        Either::Left(view! { <NameForm posted=set_name current=me.name /> })
    } else {
        Either::Right(view! {
            <section class="name-form">
                <h2>"Sign in to chat"</h2>
                <p>
                    "This server is for members. " <a href="/login">"Log in"</a> " or "
                    <a href="/register">"create an account"</a> "."
                </p>
            </section>
        })
    })
}

/// The rooms, with how many people are online in each; reloaded every few seconds while the
/// page is open. A reload that fails keeps the list shown.
#[component]
fn RoomList(rooms: Result<Rooms, AppError>) -> impl IntoView {
    let (rooms, number, next_page) = match rooms {
        Ok(list) => (RwSignal::new(list.rooms), list.page, list.next_page),
        Err(e) => return Either::Right(view! { <p role="alert">{e.to_string()}</p> }),
    };
    #[cfg(feature = "hydrate")]
    if let Ok(timer) = set_interval_with_handle(
        move || {
            leptos::task::spawn_local(async move {
                if let Ok(list) = list_rooms(Some(number)).await {
                    let _ = rooms.try_set(list.rooms);
                }
            })
        },
        std::time::Duration::from_secs(5),
    ) {
        on_cleanup(move || timer.clear());
    }
    Either::Left(view! {
        <ul class="room-list">
            {move || {
                rooms
                    .get()
                    .into_iter()
                    .map(|r| {
                        let href = format!("/r/{}", r.name);
                        let badge = match r.visibility {
                            Visibility::Public => None,
                            Visibility::Private => Some("private"),
                            Visibility::Direct => Some("direct message"),
                        };
                        view! {
                            <li>
                                <a href=href>
                                    <bdi class="room-name">{r.title}</bdi>
                                    {badge.map(|b| view! { " " <span class="badge">{b}</span> })}
                                    " "
                                    <span class="online-count">
                                        {format!("{} online", r.online)}
                                    </span>
                                </a>
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
        <nav class="room-pages" aria-label="More rooms">
            {(number > 0)
                .then(|| {
                    let href = if number == 1 {
                        "/".to_string()
                    } else {
                        format!("/?page={}", number - 1)
                    };
                    view! { <a href=href>"Newer rooms"</a> " " }
                })}
            {next_page.map(|next| view! { <a href=format!("/?page={next}")>"More rooms"</a> })}
        </nav>
    })
}

#[component]
fn CreateRoomForm(posted: Posted, registered: bool) -> impl IntoView {
    view! {
        <PostForm posted>
            <label for="room-name">"Room name"</label>
            <input id="room-name" name="name" type="text" autocomplete="off" />
            {registered
                .then(|| {
                    view! {
                        <label class="check">
                            <input type="checkbox" name="private" value="on" />
                            " Private (members only)"
                        </label>
                    }
                })}
            <button type="submit">"Create room"</button>
        </PostForm>
        <FormError message=posted.error.into() />
    }
}

#[component]
fn DirectForm() -> impl IntoView {
    let posted = Posted::new(OpenDirect::PATH);
    view! {
        <section class="direct" aria-labelledby="direct-heading">
            <h2 id="direct-heading">"Direct messages"</h2>
            <PostForm posted>
                <label for="direct-name">"Message a person"</label>
                <input id="direct-name" name="name" type="text" autocomplete="off" />
                <button type="submit">"Open conversation"</button>
            </PostForm>
            <FormError message=posted.error.into() />
        </section>
    }
}
