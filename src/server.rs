//! Everything that only runs on the server: the hub, its rooms and connections, the store,
//! identity, configuration, and the HTTP router that ties them to the Leptos app.

pub mod accounts;
pub mod broker;
pub mod config;
pub mod conn;
pub mod db;
pub mod endpoints;
pub mod http;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod migrate;
pub mod presence;
pub mod queue;
pub mod reads;
pub mod room;
pub mod rooms;
pub mod socket;
pub mod store;
pub mod wire;

use crate::protocol::MAX_FRAME_BYTES;
use crate::ui::{shell, App};
use accounts::Accounts;
use axum::extract::{FromRef, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hub::Hub;
use leptos::prelude::*;
use leptos_axum::{AxumRouteListing, LeptosRoutes};
use limits::Limits;
use std::sync::{Arc, LazyLock};

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: Arc<Hub>,
    pub accounts: Arc<Accounts>,
    pub limits: Arc<Limits>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The app's routes, listed once per process. Listing runs the app with resource loading
/// suppressed through a process-wide flag, and a resource first polled while that flag is
/// up never loads (leptos issue 4773): building a second router beside a rendering one (as
/// the integration tests do, one server per test) would otherwise hang that render.
static ROUTES: LazyLock<Vec<AxumRouteListing>> =
    LazyLock::new(|| leptos_axum::generate_route_list(App));

/// The whole HTTP surface: `/ws`, the server functions, the pages, and static files.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the per-IP limits
/// need the peer address.
pub fn router(state: AppState) -> Router {
    let context = {
        let state = state.clone();
        move || provide_services(&state)
    };
    let options = state.leptos_options.clone();
    let limits = state.limits.clone();
    let routes = ROUTES.clone();
    Router::new()
        .route("/ws", get(ws_upgrade))
        // The pages (each rendered whole before the first byte goes out, see `ui::App`) and
        // the server functions, with the state in their context.
        .leptos_routes_with_context(&state, routes, context, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(
            limits.clone(),
            same_origin_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(limits, known_host))
        .with_state(state)
}

/// What every page and server function finds in its context besides the [`AppState`]
/// itself (which leptos_axum provides).
fn provide_services(state: &AppState) {
    provide_context(state.hub.clone());
    provide_context(state.accounts.clone());
    provide_context(state.limits.clone());
}

/// Upgrades to the chat protocol for a visitor with a live session (an account or a guest
/// name). In order: a foreign `Origin` gets 403 (cross-site WebSocket hijacking), too many
/// upgrades from one address 429, no session 401, too many open connections for one person
/// 429. A request that is not a WebSocket upgrade at all is refused first (400, 405 or 426),
/// and one for a foreign host before that (421, [`known_host`]). The session's watch is
/// released however the upgrade ends, completed or not.
async fn ws_upgrade(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let upgrade = match wire::upgrade_request(&mut parts) {
        Ok(upgrade) => upgrade,
        Err(refusal) => return refusal.into_response(),
    };
    let config = &state.limits.config;
    if !identity::origin_allowed(config, &parts.headers) {
        return (
            StatusCode::FORBIDDEN,
            "This page's origin may not open Hearth connections (see HEARTH_ALLOWED_ORIGINS).",
        )
            .into_response();
    }
    let address = identity::client_ip(config, &parts);
    if let Err(wait) = state.limits.upgrade(address) {
        return too_many(wait, "Too many connection attempts from your address.");
    }
    let who = match identity::session_token(&parts.headers) {
        Some(token) => state.accounts.session(token).await,
        None => Ok(None),
    };
    // Switching guests off also ends the guest sessions that already exist.
    let who = who.map(|w| w.filter(|w| config.allow_guests || !w.is_guest()));
    let who = match who {
        Ok(Some(who)) => who,
        Ok(None) => {
            return (
                StatusCode::UNAUTHORIZED,
                "Log in, or choose a display name on the home page, before connecting.",
            )
                .into_response()
        }
        Err(err) => {
            tracing::error!(%err, "session lookup failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response();
        }
    };
    let Some(slot) = state.limits.connection(&who.author_key()) else {
        return too_many(
            std::time::Duration::from_secs(5),
            "You have too many open connections; close a tab or device.",
        );
    };
    let ctx = socket::Session {
        ended: socket::SessionWatch::new(&state.accounts, &who),
        identity: who,
        accounts: state.accounts.clone(),
        rate: state.limits.message_bucket(),
        pings: state.limits.bucket(socket::PING_RATE, socket::PING_BURST),
        _slot: slot,
        address,
    };
    let hub = state.hub.clone();
    // A small read buffer: tungstenite's 128 KiB default would dominate per-connection
    // memory. Chat frames are small; a bigger frame grows the buffer for as long as it needs.
    let limits = wire::ReadLimits {
        read_buffer: 1024,
        max_frame: MAX_FRAME_BYTES,
    };
    upgrade.accept(limits, move |reader, writer| {
        socket::serve(hub, ctx, writer, reader)
    })
}

/// Refuses a state-changing request (anything but GET/HEAD) from another site's page: the
/// same Origin rule as the WebSocket upgrade. SameSite=Lax already keeps the session cookie
/// off such requests; this also stops login CSRF (a foreign form logging a visitor into
/// someone else's account) and cross-site guest-name or room spam.
async fn same_origin_writes(
    State(limits): State<Arc<Limits>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method();
    if method != axum::http::Method::GET
        && method != axum::http::Method::HEAD
        && !identity::origin_allowed(&limits.config, request.headers())
    {
        return (
            StatusCode::FORBIDDEN,
            "Forms on other sites cannot post to Hearth (see HEARTH_ALLOWED_ORIGINS).",
        )
            .into_response();
    }
    next.run(request).await
}

/// Refuses a request addressed to a host name this server does not answer to (421): a
/// hostile name resolving to this server would otherwise get pages, sessions and WebSockets
/// as a site of its own, passing the Origin checks (DNS rebinding).
async fn known_host(
    State(limits): State<Arc<Limits>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !identity::host_allowed(&limits.config, request.headers()) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This server does not answer to that host name (see HEARTH_PUBLIC_HOSTS).",
        )
            .into_response();
    }
    next.run(request).await
}

/// 429 with a `Retry-After` in whole seconds.
fn too_many(wait: std::time::Duration, sentence: &str) -> Response {
    let secs = wait.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        format!("{sentence} Try again in {secs} s."),
    )
        .into_response()
}
