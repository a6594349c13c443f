//! Choosing a guest display name: the first thing a visitor does, on either page.

use super::form_error::FormError;
use super::post_form::{PostForm, Posted};
use leptos::either::Either;
use leptos::prelude::*;

/// The "Display name" form, posting to `SetName`. `current` is the name already chosen, if
/// any.
#[component]
pub fn NameForm(posted: Posted, current: Option<String>) -> impl IntoView {
    let chosen = move || posted.done.get().or_else(|| current.clone());
    view! {
        <section class="name-form" aria-labelledby="name-heading">
            <h2 id="name-heading">
                {move || match chosen() {
                    Some(name) => Either::Left(view! { "You are " <bdi>{name}</bdi> }),
                    None => Either::Right("Choose a display name"),
                }}
            </h2>
            <PostForm posted>
                <label for="display-name">"Display name"</label>
                <input id="display-name" name="name" type="text" autocomplete="nickname" />
                <button type="submit">"Continue"</button>
            </PostForm>
            <FormError message=posted.error.into() />
        </section>
    }
}
