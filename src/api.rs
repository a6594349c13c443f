//! Server functions: the page-level API behind the forms and server-rendered pages.
//!
//! Each works as a plain HTML form post too (JavaScript off): leptos_axum then redirects
//! back, carrying any error in the URL so the form can show it inline. Live traffic does not
//! go through here; it uses the WebSocket hub.

use crate::protocol::{ChatMessage, RoomId, Seq, UserName};
use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// Messages a room page is rendered with.
pub const PAGE_MESSAGES: usize = 50;

/// What a person sees when a server function fails: always a sentence saying what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Input that breaks a rule (HTTP 400); the text says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The server could not do it right now (HTTP 500); details are in the server log.
    #[error("Something went wrong on our side; please try again in a moment.")]
    Unavailable,
    /// The request never reached the server function (network, decoding).
    #[error("Could not reach the server ({0}); check your connection and try again.")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

/// A room as listed on the home page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEntry {
    pub name: String,
    pub online: usize,
}

/// Everything a room page renders before the live connection takes over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    pub room: RoomId,
    pub messages: Vec<ChatMessage>,
    pub online: Vec<UserName>,
    /// The newest sequence number included: the live connection subscribes from here.
    pub last_seq: Seq,
    pub epoch: u64,
    pub me: Option<UserName>,
    /// True when messages older than the first one shown may exist.
    pub has_older: bool,
    /// Set when this is an older page (`?before=`), which is shown without live updates.
    pub before: Option<Seq>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::AppError;
    use crate::protocol::UserName;
    use crate::server::hub::{Hub, HubError};
    use axum::http::{request::Parts, StatusCode};
    use leptos::prelude::*;
    use leptos_axum::ResponseOptions;
    use std::sync::Arc;

    pub fn hub() -> Result<Arc<Hub>, AppError> {
        use_context::<Arc<Hub>>().ok_or_else(|| {
            tracing::error!("hub missing from the server function context");
            AppError::Unavailable
        })
    }

    pub fn me() -> Option<UserName> {
        use_context::<Parts>().and_then(|p| crate::server::identity::name_from_headers(&p.headers))
    }

    /// Sets the HTTP status for an error and passes it on. A plain HTML form post (JavaScript
    /// off) keeps leptos_axum's redirect back to the form instead, which carries the error.
    pub fn fail(err: AppError) -> AppError {
        let form_post = use_context::<Parts>().is_some_and(|p| {
            p.method == axum::http::Method::POST
                && p.headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
        });
        if form_post {
            return err;
        }
        let status = match err {
            AppError::Invalid(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let Some(res) = use_context::<ResponseOptions>() {
            res.set_status(status);
        }
        err
    }

    pub fn internal(err: HubError) -> AppError {
        match err {
            HubError::Refused(_, sentence) => fail(AppError::Invalid(sentence)),
            other => {
                tracing::error!(%other, "server function failed");
                fail(AppError::Unavailable)
            }
        }
    }
}

/// The visitor's display name, if they chose one.
#[server]
pub async fn current_name() -> Result<Option<String>, AppError> {
    Ok(ssr::me().map(|n| n.0))
}

/// Chooses (or changes) the visitor's display name and remembers it in a cookie.
#[server]
pub async fn set_name(name: String) -> Result<String, AppError> {
    let name =
        crate::names::parse_display_name(&name).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.append_header(
            axum::http::header::SET_COOKIE,
            crate::server::identity::name_cookie(&name),
        );
    }
    Ok(name.0)
}

/// Every room with how many people are online in it.
#[server]
pub async fn list_rooms() -> Result<Vec<RoomEntry>, AppError> {
    let rooms = ssr::hub()?.room_summaries().await.map_err(ssr::internal)?;
    Ok(rooms
        .into_iter()
        .map(|r| RoomEntry {
            name: r.room.0,
            online: r.online,
        })
        .collect())
}

/// Creates a room (or finds the existing one of that name) and goes to it.
#[server]
pub async fn create_room(name: String) -> Result<String, AppError> {
    let room = crate::names::parse_room(&name).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    ssr::hub()?
        .create_room(&room)
        .await
        .map_err(ssr::internal)?;
    leptos_axum::redirect(&format!("/r/{room}"));
    Ok(room.0)
}

/// The room page's starting state: the latest messages (or, with `before`, the page of
/// messages before that sequence number) and who is online.
#[server]
pub async fn load_room(room: String, before: Option<u64>) -> Result<RoomPage, AppError> {
    let room = crate::names::parse_room(&room).map_err(|_| {
        ssr::fail(AppError::NotFound(format!(
            "There is no room called {room:?}. {}",
            crate::names::ROOM_RULE
        )))
    })?;
    let hub = ssr::hub()?;
    let snapshot = hub
        .snapshot(&room, PAGE_MESSAGES)
        .await
        .map_err(ssr::internal)?;
    let before = before.map(Seq);
    let messages = match before {
        None => snapshot.messages,
        Some(before) => hub
            .store()
            .latest(&room, Some(before), PAGE_MESSAGES)
            .await
            .map_err(|e| ssr::internal(e.into()))?,
    };
    Ok(RoomPage {
        room,
        has_older: messages.first().is_some_and(|m| m.seq.0 > 1),
        messages,
        online: snapshot.online,
        last_seq: snapshot.last_seq,
        epoch: snapshot.epoch,
        me: ssr::me(),
        before,
    })
}

/// Up to one page of messages before `before`, oldest first (scrolling back in a room).
#[server]
pub async fn load_history(room: String, before: u64) -> Result<Vec<ChatMessage>, AppError> {
    let room = crate::names::parse_room(&room).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    ssr::hub()?
        .store()
        .latest(&room, Some(Seq(before)), PAGE_MESSAGES)
        .await
        .map_err(|e| ssr::internal(e.into()))
}

/// Posts a message from a plain HTML form (the live page sends over the WebSocket instead).
#[server]
pub async fn post_message(room: String, text: String) -> Result<(), AppError> {
    let author = ssr::me().ok_or_else(|| {
        ssr::fail(AppError::Invalid(
            "Choose a display name before posting.".to_string(),
        ))
    })?;
    let room = crate::names::parse_room(&room).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    // Each form post is a new message; the counter keeps ids unique within this process.
    static POSTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = POSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client_id = crate::protocol::ClientId(format!("form-{}-{n}", crate::server::hub::now_ms()));
    ssr::hub()?
        .post(author, &room, client_id, text)
        .await
        .map_err(ssr::internal)?;
    Ok(())
}
