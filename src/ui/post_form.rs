//! Forms that post to a server function: a plain HTML form post with JavaScript off, a
//! `fetch` of the same fields with it on.
//!
//! Kept instead of Leptos's `ActionForm` for a measured reason: that builds the whole action
//! machinery (decoding the form into the server function's arguments, encoding them again,
//! decoding the answer) once per server function, 27 KB brotli for Hearth's forms, and
//! reports success only through signals, which would take an effect to act on. Every form
//! here shares one code path instead: it sends the form's fields as they are, every
//! form-backed server function answers with a string (or nothing), and a success runs a
//! callback ([`Posted::on_done`]).

use crate::model::AppError;
#[cfg(feature = "hydrate")]
use crate::protocol::from_json;
use leptos::prelude::*;
use leptos::server::ServerActionError;
use leptos::server_fn::error::ServerFnUrlError;

/// What a form's last post came back with.
#[derive(Clone, Copy)]
pub struct Posted {
    /// The server function's URL.
    path: &'static str,
    /// The last successful answer.
    pub done: RwSignal<Option<String>>,
    /// The last refusal, as the sentence to show.
    pub error: RwSignal<Option<String>>,
    /// Counts successful posts, so data that a post changes can be fetched again.
    pub version: RwSignal<u32>,
    /// Runs with the answer after each successful post (see [`Posted::on_done`]).
    then: Option<Callback<String>>,
}

impl Posted {
    /// State for a form posting to `path`. A JavaScript-off post that failed came back to
    /// this page with its error in the URL (leptos_axum puts it there, the router provides
    /// it), so the form starts out showing it, on the server and in the browser alike.
    pub fn new(path: &'static str) -> Self {
        let error = use_context::<ServerActionError>()
            .filter(|e| e.path() == path)
            .map(|e| ServerFnUrlError::<AppError>::decode_err(e.err()).to_string());
        Posted {
            path,
            done: RwSignal::new(None),
            error: RwSignal::new(error),
            version: RwSignal::new(0),
            then: None,
        }
    }

    /// Runs `then` with the answer after each successful post made with JavaScript on (with
    /// it off, the server's answer is a new page).
    pub fn on_done(mut self, then: impl Fn(String) + Send + Sync + 'static) -> Self {
        self.then = Some(Callback::new(then));
        self
    }

    /// Posts the form's fields and records the answer; follows the server's redirect, if it
    /// sent one, through the router.
    #[cfg(feature = "hydrate")]
    fn submit(self, form: web_sys::HtmlFormElement) {
        leptos::task::spawn_local(async move {
            match post(self.path, &form).await {
                Ok((answer, redirect)) => {
                    self.error.set(None);
                    self.done.set(Some(answer.clone()));
                    self.version.update(|v| *v += 1);
                    if let Some(then) = self.then {
                        then.run(answer);
                    }
                    if let Some(to) = redirect {
                        leptos::server_fn::redirect::call_redirect_hook(&to);
                    }
                }
                Err(e) => self.error.set(Some(e.to_string())),
            }
        });
    }
}

/// Sends a form's fields to a server function the way the browser would without JavaScript
/// (URL-encoded), but asking for JSON: the answer then carries the result or the error
/// instead of a redirect back to the page. Returns the answer and where the server
/// redirects to.
#[cfg(feature = "hydrate")]
async fn post(
    path: &str,
    form: &web_sys::HtmlFormElement,
) -> Result<(String, Option<String>), AppError> {
    use wasm_bindgen::JsCast;
    let transport = |e: &dyn std::fmt::Display| AppError::Transport(e.to_string());
    let unreadable = |_| transport(&"this browser could not read the form");
    let fields = web_sys::FormData::new_with_form(form).map_err(unreadable)?;
    let body = web_sys::UrlSearchParams::new_with_str_sequence_sequence(fields.unchecked_ref())
        .map_err(unreadable)?;
    let res = gloo_net::http::RequestBuilder::new(path)
        .method(gloo_net::http::Method::POST)
        .header("Accept", "application/json")
        .body(body)
        .map_err(|e| transport(&e))?
        .send()
        .await
        .map_err(|e| transport(&e))?;
    let text = res.text().await.map_err(|e| transport(&e))?;
    if !res.ok() {
        return Err(from_json::<AppError>(&text)
            .unwrap_or_else(|_| transport(&format_args!("HTTP {}", res.status()))));
    }
    let redirect = res
        .headers()
        .has(leptos::server_fn::redirect::REDIRECT_HEADER)
        .then(|| res.headers().get("location"))
        .flatten();
    // Every form-backed server function returns a `String` or `()` (JSON `null`).
    let answer = from_json::<Option<String>>(&text)
        .map_err(|e| transport(&e))?
        .unwrap_or_default();
    Ok((answer, redirect))
}

/// A `<form method="post">` to a server function; see the module docs.
#[component]
pub fn PostForm(
    posted: Posted,
    #[prop(optional)] class: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <form
            method="post"
            action=posted.path
            class=class
            on:submit=move |ev| {
                ev.prevent_default();
                #[cfg(feature = "hydrate")]
                {
                    use wasm_bindgen::JsCast;
                    if let Some(form) = ev
                        .target()
                        .and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
                    {
                        posted.submit(form);
                    }
                }
            }
        >
            {children()}
        </form>
    }
}
