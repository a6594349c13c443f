//! Choosing a guest display name: the first thing a visitor does, on either page.

use super::form_error::{action_error, FormError};
use crate::api::SetName;
use leptos::prelude::*;

/// The "Display name" form. `current` is the name already chosen, if any.
#[component]
pub fn NameForm(action: ServerAction<SetName>, current: Option<String>) -> impl IntoView {
    let error = action_error(action);
    let chosen = move || {
        action
            .value()
            .get()
            .and_then(|r| r.ok())
            .or_else(|| current.clone())
    };
    view! {
        <section class="name-form" aria-labelledby="name-heading">
            <h2 id="name-heading">
                {move || match chosen() {
                    Some(name) => format!("You are {name}"),
                    None => "Choose a display name".to_string(),
                }}
            </h2>
            <ActionForm action=action>
                <label for="display-name">"Display name"</label>
                <input id="display-name" name="name" type="text" autocomplete="nickname" />
                <button type="submit">"Continue"</button>
            </ActionForm>
            <FormError message=Signal::derive(error) />
        </section>
    }
}
