//! Desktop notifications and the tab title while the tab is hidden (browser only).
//!
//! A direct message, or a message that mentions the person (`@name`, or `@here` in a room
//! they are in), that arrives while the tab is hidden raises a notification, once the
//! person has allowed them (the room's "Enable notifications" button asks); a click on it
//! brings the tab, which shows that conversation, to the front. Every message from someone
//! else that arrives while the tab is hidden counts in the title ("(3) Hearth") until the tab
//! is shown again.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

/// The title of every page.
const TITLE: &str = "Hearth";

/// Whether the browser supports notifications and has not been asked yet.
pub fn can_ask() -> bool {
    supported() && Notification::permission() == NotificationPermission::Default
}

fn supported() -> bool {
    web_sys::window().is_some_and(|w| {
        js_sys::Reflect::has(&w, &JsValue::from_str("Notification")).unwrap_or(false)
    })
}

/// Asks for permission; `then` runs with whether it was granted.
pub fn ask(then: impl FnOnce(bool) + 'static) {
    let Ok(promise) = Notification::request_permission() else {
        return then(false);
    };
    let answered = Closure::once(move |_: JsValue| {
        then(Notification::permission() == NotificationPermission::Granted)
    });
    let _ = promise.then(&answered);
    answered.forget();
}

/// Shows a notification titled `title` with `body`, if allowed.
pub fn show(title: &str, body: &str) {
    if !supported() || Notification::permission() != NotificationPermission::Granted {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(body);
    let Ok(note) = Notification::new_with_options(title, &options) else {
        return;
    };
    let clicked = Closure::<dyn FnMut()>::new({
        let note = note.clone();
        move || {
            if let Some(window) = web_sys::window() {
                let _ = window.focus();
            }
            note.close();
        }
    });
    note.set_onclick(Some(clicked.as_ref().unchecked_ref()));
    // Lives as long as the notification can be clicked; a handful per hidden spell.
    clicked.forget();
}

/// Whether the tab is hidden (another tab in front, or the window minimised).
pub fn hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden())
}

/// Shows `unseen` in the title: "(N) Hearth", or plain "Hearth" for none.
pub fn set_unseen(unseen: u32) {
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        if unseen == 0 {
            document.set_title(TITLE);
        } else {
            document.set_title(&format!("({unseen}) {TITLE}"));
        }
    }
}
