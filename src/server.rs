//! Everything that only runs on the server: the hub, its rooms and connections, the store,
//! identity, configuration, and the HTTP router that ties them to the Leptos app.

pub mod broker;
pub mod config;
pub mod hub;
pub mod identity;
pub mod presence;
pub mod room;
pub mod socket;
pub mod store;

use crate::protocol::MAX_FRAME_BYTES;
use crate::ui::{shell, App};
use axum::extract::{ws::WebSocketUpgrade, FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use hub::Hub;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use socket::ReadError;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: Arc<Hub>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The whole HTTP surface: `/ws`, the server functions, the pages, and static files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let hub = state.hub.clone();
    let options = state.leptos_options.clone();
    Router::new()
        .route("/ws", get(ws_upgrade))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(hub.clone()),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

/// Upgrades to the chat protocol for a visitor who has chosen a display name.
async fn ws_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let Some(user) = identity::name_from_headers(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            "Choose a display name on the home page before connecting.",
        )
            .into_response();
    };
    let hub = state.hub.clone();
    // Small buffers: tungstenite's 128 KiB defaults would dominate per-connection memory.
    // Chat frames are small; a bigger frame grows the read buffer for as long as it needs.
    ws.read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            let stream = stream.map(|item| item.map_err(classify));
            socket::serve(hub, user, sink, stream).await;
        })
}

/// Maps a transport error to the close code it deserves.
fn classify(err: axum::Error) -> ReadError {
    let inner = err.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => ReadError::TooBig,
        Some(tungstenite::Error::Utf8(_)) => ReadError::BadUtf8,
        _ => ReadError::Gone,
    }
}
