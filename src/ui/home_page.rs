//! `/`: pick a display name, see the rooms and who is in them, create a room.

use super::name_form::NameForm;
use crate::api::{current_name, list_rooms, CreateRoom, SetName};
use leptos::either::Either;
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    let set_name = ServerAction::<SetName>::new();
    let create_room = ServerAction::<CreateRoom>::new();
    let me = Resource::new(move || set_name.version().get(), |_| current_name());
    let rooms = Resource::new(move || create_room.version().get(), |_| list_rooms());

    // Keep the online counts fresh while the page is open.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Ok(timer) =
            set_interval_with_handle(move || rooms.refetch(), std::time::Duration::from_secs(5))
        {
            on_cleanup(move || timer.clear());
        }
    });

    let room_error = move || {
        create_room
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| e.to_string())
    };

    view! {
        <header class="top">
            <h1>"Hearth"</h1>
        </header>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let current = me.await.ok().flatten();
                view! { <NameForm action=set_name current /> }
            })}
        </Suspense>
        <section class="rooms" aria-labelledby="rooms-heading">
            <h2 id="rooms-heading">"Rooms"</h2>
            <Transition fallback=|| view! { <p>"Loading rooms…"</p> }>
                {move || Suspend::new(async move {
                    match rooms.await {
                        Ok(list) => Either::Left(view! {
                            <ul class="room-list">
                                {list
                                    .into_iter()
                                    .map(|r| {
                                        let href = format!("/r/{}", r.name);
                                        view! {
                                            <li>
                                                <a href=href>
                                                    <span class="room-name">{r.name}</span>
                                                    " "
                                                    <span class="online-count">
                                                        {format!("{} online", r.online)}
                                                    </span>
                                                </a>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }),
                        Err(e) => Either::Right(view! { <p role="alert">{e.to_string()}</p> }),
                    }
                })}
            </Transition>
            <ActionForm action=create_room>
                <label for="room-name">"Room name"</label>
                <input id="room-name" name="name" type="text" autocomplete="off" />
                <button type="submit">"Create room"</button>
            </ActionForm>
            <Show when=move || room_error().is_some()>
                <p class="error" role="alert">
                    {room_error}
                </p>
            </Show>
        </section>
    }
}
