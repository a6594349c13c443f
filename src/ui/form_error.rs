//! How every form reports a refusal: the server's sentence in a `role="alert"` paragraph,
//! present only while there is something to say.

use leptos::prelude::*;

/// A form's error, announced by screen readers when it appears.
#[component]
pub fn FormError(message: Signal<Option<String>>) -> impl IntoView {
    // A plain closure rather than `Show`: the same, for fewer bundle bytes.
    move || {
        message
            .get()
            .map(|m| view! { <p class="error" role="alert">{m}</p> })
    }
}
