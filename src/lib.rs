//! Hearth: a self-hosted team chat. One crate, built twice: the server (`ssr`) renders pages
//! and runs the WebSocket hub; the browser bundle (`hydrate`) takes the pages over and keeps
//! one live connection per tab.
#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod format;
pub mod model;
pub mod names;
pub mod protocol;
#[cfg(feature = "ssr")]
pub mod server;
pub mod ui;

/// Browser entry point, called by the generated JS once the WASM bundle has loaded.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Panic messages in the console while developing; the release bundle goes without (its
    // bytes count against the budget, docs/benchmarks.md).
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(ui::App);
}
