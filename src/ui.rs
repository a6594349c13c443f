//! The Leptos components: the HTML shell, the router, and the pages (home, room, log in,
//! register).
//!
//! Pages render completely on the server (JavaScript is an enhancement): forms post to server
//! functions, and the room page carries its latest messages and who is online.

mod account;
mod form_error;
mod home_page;
mod markdown;
mod name_form;
mod post_form;
mod room_page;
mod time;

use crate::client::provide_chat_socket;
use account::{LoginPage, RegisterPage};
use home_page::HomePage;
use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};
use room_page::RoomPage;

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                // Plain tags rather than leptos_meta: no page changes its head, and the crate
                // would cost the browser bundle for nothing. `id="leptos"` lets
                // `cargo leptos watch` swap the stylesheet live.
                <title>"Hearth"</title>
                <link rel="stylesheet" id="leptos" href="/pkg/hearth.css" />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Every page, routed by leptos_router. The server renders a page whole, data included,
/// before sending it (`SsrMode::Async`), so it reads and works with JavaScript off.
#[component]
pub fn App() -> impl IntoView {
    provide_chat_socket();
    view! {
        <Router>
            <main>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/r/:room") view=RoomPage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/register") view=RegisterPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1>"Page not found"</h1>
        <p>
            <a href="/">"Back to the rooms"</a>
        </p>
    }
}
