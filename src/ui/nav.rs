//! Which page an address names, and moving between pages without reloading.
//!
//! Hearth has four pages, so it routes them itself instead of with leptos_router, whose
//! nested-route machinery would be about 8 % of the browser bundle. On the server the address
//! comes from the request. In the browser it starts as `window.location` and then follows
//! this module's own navigations: clicks on same-origin links, server functions' redirects
//! (a created room, a direct conversation), and Back/Forward.

use leptos::prelude::*;
use leptos::server::ServerActionError;

/// The pages an address can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Home,
    /// `/r/{room}`, optionally `?before={seq}` for an older page.
    Room,
    Login,
    Register,
    NotFound,
}

/// The paths the server renders a page for, in axum's syntax; [`page_of`] says which page
/// each is, and anything else gets the "Page not found" page with status 404.
#[cfg(any(feature = "ssr", test))]
pub const PAGE_PATHS: [&str; 4] = ["/", "/r/{room}", "/login", "/register"];

/// The current address (path and query), provided to every component.
#[derive(Clone, Copy)]
pub struct Nav {
    address: RwSignal<String>,
}

impl Nav {
    /// The page the current address names (tracked).
    pub fn page(&self) -> Page {
        self.address.with(|a| page_of(path_of(a)))
    }

    /// The room the current address names, and its `before` (tracked); `None` off a room.
    pub fn room(&self) -> Option<(String, Option<u64>)> {
        self.address.with(|a| room_of(a))
    }

    /// The page of the room list the home page's address asks for (`?page=`, from 0; tracked).
    pub fn rooms_page(&self) -> u32 {
        self.address
            .with(|a| query_value(a, "page").and_then(|p| p.parse().ok()))
            .unwrap_or(0)
    }

    /// Shows `to` (a path on this site) without reloading, as a new history entry.
    #[cfg(feature = "hydrate")]
    fn go(&self, to: &str) {
        let to = same_origin_path(to).unwrap_or_else(|| to.to_string());
        if let Ok(history) = window().history() {
            let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&to));
        }
        self.address.set(to);
        window().scroll_to_with_x_and_y(0.0, 0.0);
    }
}

/// Provides the [`Nav`] for this page load; call once, in the root component.
///
/// Also provides what a JavaScript-off form post that failed came back with (`__path` and
/// `__err` in the query, put there by leptos_axum), for the form to show.
pub fn provide_nav() -> Nav {
    let nav = Nav {
        address: RwSignal::new(current_address()),
    };
    provide_context(nav);
    let posted_error = nav.address.with_untracked(|a| {
        Some(ServerActionError::new(
            &query_value(a, "__path")?,
            &query_value(a, "__err")?,
        ))
    });
    if let Some(error) = posted_error {
        provide_context(error);
    }
    #[cfg(feature = "hydrate")]
    follow_the_browser(nav);
    nav
}

#[cfg(feature = "ssr")]
fn current_address() -> String {
    use_context::<axum::http::request::Parts>()
        .and_then(|p| p.uri.path_and_query().map(|pq| pq.as_str().to_string()))
        .unwrap_or_else(|| "/".to_string())
}

#[cfg(feature = "hydrate")]
fn current_address() -> String {
    let location = window().location();
    let path = location.pathname().unwrap_or_else(|_| "/".to_string());
    path + &location.search().unwrap_or_default()
}

#[cfg(not(any(feature = "ssr", feature = "hydrate")))]
fn current_address() -> String {
    "/".to_string()
}

/// Takes over same-origin link clicks, server function redirects and Back/Forward.
#[cfg(feature = "hydrate")]
fn follow_the_browser(nav: Nav) {
    let _ = leptos::server_fn::redirect::set_redirect_hook(move |to: &str| nav.go(to));
    // Listeners for the tab's whole life: dropping the handles does not remove them.
    let _ = window_event_listener(leptos::ev::popstate, move |_| {
        nav.address.set(current_address())
    });
    let _ = window_event_listener(leptos::ev::click, move |ev| {
        if let Some(to) = link_target(&ev) {
            ev.prevent_default();
            nav.go(&to);
        }
    });
}

/// The path a click should show in place: a plain left click on a same-origin link that
/// does not ask for a new window, a download, or (`rel="external"`) a full page load.
#[cfg(feature = "hydrate")]
fn link_target(ev: &web_sys::MouseEvent) -> Option<String> {
    use wasm_bindgen::JsCast;
    if ev.default_prevented()
        || ev.button() != 0
        || ev.meta_key()
        || ev.ctrl_key()
        || ev.shift_key()
        || ev.alt_key()
    {
        return None;
    }
    let target = ev.target()?.dyn_into::<web_sys::Element>().ok()?;
    let link = target
        .closest("a[href]")
        .ok()??
        .dyn_into::<web_sys::HtmlAnchorElement>()
        .ok()?;
    if !link.target().is_empty()
        || link.has_attribute("download")
        || link.rel().split_ascii_whitespace().any(|r| r == "external")
    {
        return None;
    }
    same_origin_path(&link.href())
}

/// `url`'s path, query and fragment, if it is on this site.
#[cfg(feature = "hydrate")]
fn same_origin_path(url: &str) -> Option<String> {
    let here = window().location().href().ok()?;
    let url = web_sys::Url::new_with_base(url, &here).ok()?;
    (url.origin() == window().location().origin().ok()?)
        .then(|| url.pathname() + &url.search() + &url.hash())
}

/// The room an address (path and query) names, and its `before`; `None` off a room.
pub fn room_of(address: &str) -> Option<(String, Option<u64>)> {
    let room = path_of(address).strip_prefix("/r/")?;
    let before = query_value(address, "before").and_then(|b| b.parse().ok());
    Some((decode(room, false), before))
}

fn path_of(address: &str) -> &str {
    address.split(['?', '#']).next().unwrap_or("/")
}

fn page_of(path: &str) -> Page {
    match path {
        "/" => Page::Home,
        "/login" => Page::Login,
        "/register" => Page::Register,
        _ => match path.strip_prefix("/r/") {
            Some(room) if !room.is_empty() && !room.contains('/') => Page::Room,
            _ => Page::NotFound,
        },
    }
}

/// The first value of `key` in the address's query, decoded.
fn query_value(address: &str, key: &str) -> Option<String> {
    let query = address.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k, true) == key).then(|| decode(v, true))
    })
}

/// Percent-decoding (and `+` as a space, in a query); bytes that do not form UTF-8 become
/// U+FFFD rather than an error, as browsers do.
fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_pages() {
        assert_eq!(page_of("/"), Page::Home);
        assert_eq!(page_of("/login"), Page::Login);
        assert_eq!(page_of("/register"), Page::Register);
        assert_eq!(page_of("/r/general"), Page::Room);
        assert_eq!(page_of("/r/"), Page::NotFound);
        assert_eq!(page_of("/r/a/b"), Page::NotFound);
        assert_eq!(page_of("/nope"), Page::NotFound);
        assert_eq!(path_of("/r/general?before=40#x"), "/r/general");
    }

    #[test]
    fn every_served_path_names_a_page() {
        for path in PAGE_PATHS {
            let page = page_of(&path.replace("{room}", "general"));
            assert_ne!(page, Page::NotFound, "{path}");
        }
    }

    #[test]
    fn query_values_are_decoded() {
        let address = "/r/x?a=1&__err=eyJJbnZhbGlkIjoiYiJ9&q=a+b%20c%2B&__path=%2Fapi%2Fx";
        assert_eq!(query_value(address, "a").as_deref(), Some("1"));
        assert_eq!(query_value(address, "q").as_deref(), Some("a b c+"));
        assert_eq!(query_value(address, "__path").as_deref(), Some("/api/x"));
        assert_eq!(query_value(address, "missing"), None);
        assert_eq!(query_value("/r/x", "a"), None);
    }

    #[test]
    fn decoding_keeps_what_is_not_an_escape() {
        assert_eq!(decode("%3Cb%3E", false), "<b>");
        assert_eq!(decode("a+b", false), "a+b");
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(decode("caf%C3%A9", false), "café");
        assert_eq!(decode("%FF", false), "\u{FFFD}");
    }
}
