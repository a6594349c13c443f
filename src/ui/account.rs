//! Accounts in the UI: `/login`, `/register`, and the bar that says who you are with a
//! "Log out" button.
//!
//! Logging in or out changes who the live connection speaks for, so a success loads the
//! next page in full (a new socket with the new cookie) rather than navigating in place.

use super::form_error::FormError;
use super::post_form::{PostForm, Posted};
use crate::api::{Login, Logout, Register};
use crate::model::Me;
use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// After a successful post, load `/` afresh (with JavaScript on; without it the server's
/// redirect already did).
fn reload_home_after(posted: Posted) -> Posted {
    posted.on_done(|_| {
        let _ = window().location().set_href("/");
    })
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let posted = reload_home_after(Posted::new(Login::PATH));
    view! {
        <section class="account-form" aria-labelledby="login-heading">
            <h1 id="login-heading">"Log in"</h1>
            <PostForm posted>
                <label for="login-name">"User name"</label>
                <input id="login-name" name="name" type="text" autocomplete="username" required />
                <label for="login-password">"Password"</label>
                <input
                    id="login-password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    required
                />
                <button type="submit">"Log in"</button>
            </PostForm>
            <FormError message=posted.error.into() />
            <p>
                "No account yet? " <a href="/register">"Create an account"</a> " · "
                <a href="/">"Back to the rooms"</a>
            </p>
        </section>
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let posted = reload_home_after(Posted::new(Register::PATH));
    view! {
        <section class="account-form" aria-labelledby="register-heading">
            <h1 id="register-heading">"Create an account"</h1>
            <PostForm posted>
                <label for="register-name">"User name"</label>
                <input
                    id="register-name"
                    name="name"
                    type="text"
                    autocomplete="username"
                    required
                />
                <label for="register-password">"Password"</label>
                <input
                    id="register-password"
                    name="password"
                    type="password"
                    autocomplete="new-password"
                    minlength="8"
                    required
                />
                <p class="hint">"At least 8 characters."</p>
                <button type="submit">"Create account"</button>
            </PostForm>
            <FormError message=posted.error.into() />
            <p>
                "Already registered? " <a href="/login">"Log in"</a> " · "
                <a href="/">"Back to the rooms"</a>
            </p>
        </section>
    }
}

/// Who you are, with "Log out" for a session or links to log in and register.
#[component]
pub fn AccountBar(me: Me) -> impl IntoView {
    let logout = reload_home_after(Posted::new(Logout::PATH));
    // The name is bidi-isolated, so right-to-left text in it cannot reorder the words around it.
    let who = match (me.name.clone(), me.registered) {
        (Some(name), true) => EitherOf3::A(view! { "Signed in as " <bdi>{name}</bdi> }),
        (Some(name), false) => EitherOf3::B(view! { <bdi>{name}</bdi> " (guest)" }),
        (None, _) => EitherOf3::C("Not signed in"),
    };
    view! {
        <nav class="account" aria-label="Account">
            <span class="who">{who}</span>
            {(!me.registered)
                .then(|| {
                    view! {
                        <a href="/login">"Log in"</a>
                        <a href="/register">"Register"</a>
                    }
                })}
            {me
                .name
                .is_some()
                .then(|| {
                    view! {
                        <PostForm posted=logout class="inline">
                            <button type="submit">"Log out"</button>
                        </PostForm>
                    }
                })}
        </nav>
    }
}
