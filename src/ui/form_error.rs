//! How every form reports a refusal: the server's sentence in a `role="alert"` paragraph,
//! present only while there is something to say.

use leptos::prelude::*;

/// A form's error, announced by screen readers when it appears.
#[component]
pub fn FormError(message: Signal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || message.with(Option::is_some)>
            <p class="error" role="alert">
                {move || message.get()}
            </p>
        </Show>
    }
}
