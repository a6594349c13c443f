//! Server functions: the page-level API behind the forms and server-rendered pages.
//!
//! Each works as a plain HTML form post too (JavaScript off): leptos_axum then redirects
//! back, carrying any error in the URL so the form can show it inline. Live traffic does not
//! go through here; it uses the WebSocket hub. Each function only names its endpoint and
//! hands over to `server::endpoints`, where the rules are; the types they carry are in
//! `crate::model`.

use crate::model::{AppError, Me, RoomList, RoomPage};
use crate::protocol::ChatMessage;
use leptos::prelude::*;

/// Who is looking, and whether guests are allowed.
#[server]
pub async fn whoami() -> Result<Me, AppError> {
    crate::server::endpoints::whoami().await
}

/// Chooses (or changes) a guest display name, remembered in the session cookie.
#[server(endpoint = "set_name")]
pub async fn set_name(name: String) -> Result<String, AppError> {
    crate::server::endpoints::set_name(name).await
}

/// Creates an account and logs in.
#[server(endpoint = "register")]
pub async fn register(name: String, password: String) -> Result<String, AppError> {
    crate::server::endpoints::register(name, password).await
}

/// Logs in to an existing account.
#[server(endpoint = "login")]
pub async fn login(name: String, password: String) -> Result<String, AppError> {
    crate::server::endpoints::login(name, password).await
}

/// Logs out: the cookie stops working and open chat connections of this session close.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    crate::server::endpoints::logout().await
}

/// One page (from 0) of the rooms this visitor may see, most recently active first, with how
/// many people are online in each.
#[server]
pub async fn list_rooms(page: Option<u32>) -> Result<RoomList, AppError> {
    crate::server::endpoints::list_rooms(page).await
}

/// Creates a room (or finds the public one of that name) and goes to it. Creating needs a
/// session and fits a per-person and per-address budget; a private room needs an account,
/// and its creator is its first member.
#[server]
pub async fn create_room(name: String, private: Option<String>) -> Result<String, AppError> {
    crate::server::endpoints::create_room(name, private).await
}

/// Adds an account to a private room; only members can invite.
#[server]
pub async fn invite(room: String, name: String) -> Result<String, AppError> {
    crate::server::endpoints::invite(room, name).await
}

/// Opens (creating on first use) the direct conversation with another account.
#[server]
pub async fn open_direct(name: String) -> Result<String, AppError> {
    crate::server::endpoints::open_direct(name).await
}

/// The room page's starting state: the latest messages (or, with `before`, the page of
/// messages before that sequence number) and who is online.
#[server]
pub async fn load_room(room: String, before: Option<u64>) -> Result<RoomPage, AppError> {
    crate::server::endpoints::load_room(room, before).await
}

/// Up to one page of messages before `before`, oldest first (scrolling back in a room).
#[server]
pub async fn load_history(room: String, before: u64) -> Result<Vec<ChatMessage>, AppError> {
    crate::server::endpoints::load_history(room, before).await
}

/// Edits one's own message from a plain HTML form.
#[server]
pub async fn edit_message(room: String, seq: u64, text: String) -> Result<(), AppError> {
    use crate::protocol::ChangeKind;
    crate::server::endpoints::change_message(room, seq, ChangeKind::Edit, Some(text), None, false)
        .await
}

/// Deletes one's own message from a plain HTML form.
#[server]
pub async fn delete_message(room: String, seq: u64) -> Result<(), AppError> {
    use crate::protocol::ChangeKind;
    crate::server::endpoints::change_message(room, seq, ChangeKind::Delete, None, None, false).await
}

/// Sets one's reaction on a message from a plain HTML form (`on` is "true" or "false").
#[server]
pub async fn react(room: String, seq: u64, emoji: String, on: String) -> Result<(), AppError> {
    use crate::protocol::ChangeKind;
    let on = on == "true";
    crate::server::endpoints::change_message(room, seq, ChangeKind::React, None, Some(emoji), on)
        .await
}

/// Posts a message from a plain HTML form (the live page sends over the WebSocket instead).
#[server]
pub async fn post_message(room: String, text: String) -> Result<(), AppError> {
    crate::server::endpoints::post_message(room, text).await
}
