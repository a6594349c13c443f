//! Accounts in the UI: `/login`, `/register`, and the bar that says who you are with a
//! "Log out" button.
//!
//! Logging in or out changes who the live connection speaks for, so a success loads the
//! next page in full (a new socket with the new cookie) rather than navigating in place.

use super::form_error::{action_error, FormError};
use crate::api::{Login, Logout, Me, Register};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// After a successful action, load `/` afresh (with JavaScript on; without it the server's
/// redirect already did). Effects only run in the browser.
fn reload_home_after<S>(action: ServerAction<S>)
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
    S::Error: Clone + Send + Sync + 'static,
{
    Effect::new(move |_| {
        if matches!(action.value().get(), Some(Ok(_))) {
            let _ = window().location().set_href("/");
        }
    });
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    reload_home_after(action);
    let error = action_error(action);
    view! {
        <section class="account-form" aria-labelledby="login-heading">
            <h1 id="login-heading">"Log in"</h1>
            <ActionForm action>
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
            </ActionForm>
            <FormError message=Signal::derive(error) />
            <p>
                "No account yet? " <a href="/register">"Create an account"</a> " · "
                <a href="/">"Back to the rooms"</a>
            </p>
        </section>
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let action = ServerAction::<Register>::new();
    reload_home_after(action);
    let error = action_error(action);
    view! {
        <section class="account-form" aria-labelledby="register-heading">
            <h1 id="register-heading">"Create an account"</h1>
            <ActionForm action>
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
            </ActionForm>
            <FormError message=Signal::derive(error) />
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
    let logout = ServerAction::<Logout>::new();
    reload_home_after(logout);
    let who = match (&me.name, me.registered) {
        (Some(name), true) => format!("Signed in as {name}"),
        (Some(name), false) => format!("{name} (guest)"),
        (None, _) => "Not signed in".to_string(),
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
                        <ActionForm action=logout attr:class="inline">
                            <button type="submit">"Log out"</button>
                        </ActionForm>
                    }
                })}
        </nav>
    }
}
