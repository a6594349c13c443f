//! How every form reports a refusal: the server's sentence in a `role="alert"` paragraph,
//! present only while there is something to say.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// The error a server action last came back with, as the sentence to show.
pub fn action_error<S>(action: ServerAction<S>) -> impl Fn() -> Option<String> + Copy
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
    S::Error: Clone + Send + Sync + std::fmt::Display + 'static,
{
    move || {
        action
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| e.to_string())
    }
}

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
