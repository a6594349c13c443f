//! The server side of the server functions (`crate::api`) and of the room page: who the
//! request comes from (session cookie, address), starting and ending sessions, the throttles
//! on forms, logins and registrations, who may enter which room, and how an error becomes a
//! sentence and a status code.

use crate::model::{
    AppError, Me, Messages, RoomEntry, RoomList, RoomPage, SidebarRoom, Visibility, MENTIONS_KEPT,
    PAGE_MESSAGES, SIDEBAR_ROOMS,
};
use crate::protocol::ChatMessage;
use crate::protocol::{RoomId, Seq, UserName};
use crate::server::accounts::{AccountError, Accounts, Identity, NewSession, RoomKind};
use crate::server::hub::{Hub, HubError};
use crate::server::identity;
use crate::server::limits::Limits;
use crate::server::rooms::RoomError;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use std::sync::Arc;

fn context<T: Clone + Send + Sync + 'static>(what: &str) -> Result<T, AppError> {
    use_context::<T>().ok_or_else(|| {
        tracing::error!("{what} missing from the server function context");
        AppError::Unavailable
    })
}

pub fn hub() -> Result<Arc<Hub>, AppError> {
    context("hub")
}

pub fn accounts() -> Result<Arc<Accounts>, AppError> {
    context("accounts")
}

pub fn limits() -> Result<Arc<Limits>, AppError> {
    context("limits")
}

pub fn parts() -> Result<Parts, AppError> {
    context("request")
}

/// The session behind this request, if any.
pub async fn me() -> Result<Option<Identity>, AppError> {
    session(&*accounts()?, &*limits()?, &parts()?.headers).await
}

/// The session behind a request with these headers, if any.
async fn session(
    accounts: &Accounts,
    limits: &Limits,
    headers: &HeaderMap,
) -> Result<Option<Identity>, AppError> {
    let Some(token) = identity::session_token(headers) else {
        return Ok(None);
    };
    let who = accounts
        .session(token)
        .await
        .map_err(|e| internal(HubError::from(e)))?;
    // Switching guests off also ends the guest sessions that already exist.
    let guests = limits.config.allow_guests;
    Ok(who.filter(|w| guests || !w.is_guest()))
}

/// The logged-in account, or an error asking to log in.
pub async fn registered(what: &str) -> Result<Identity, AppError> {
    match me().await? {
        Some(who) if !who.is_guest() => Ok(who),
        _ => Err(fail(AppError::Invalid(format!(
            "Log in or register to {what}."
        )))),
    }
}

/// Puts a new session in the cookie, ending the one it replaces.
pub async fn start_session(session: NewSession) -> Result<(), AppError> {
    let parts = end_current_session().await?;
    let config = &limits()?.config;
    let ttl = if session.identity.is_guest() {
        config.guest_session_ttl.min(config.session_ttl)
    } else {
        config.session_ttl
    };
    set_cookie(identity::session_cookie(
        &session.token,
        ttl.as_secs(),
        identity::wants_secure_cookie(config, &parts.headers),
    ));
    Ok(())
}

/// Ends this request's session and clears the cookie.
pub async fn end_session() -> Result<(), AppError> {
    let parts = end_current_session().await?;
    let config = &limits()?.config;
    set_cookie(identity::session_cookie(
        "",
        0,
        identity::wants_secure_cookie(config, &parts.headers),
    ));
    Ok(())
}

/// Ends the session this request's cookie names, if any; returns the request's parts.
async fn end_current_session() -> Result<Parts, AppError> {
    let parts = parts()?;
    if let Some(token) = identity::session_token(&parts.headers) {
        accounts()?
            .logout(token)
            .await
            .map_err(|e| internal(HubError::from(e)))?;
    }
    Ok(parts)
}

fn set_cookie(cookie: HeaderValue) {
    if let Some(res) = use_context::<ResponseOptions>() {
        res.append_header(header::SET_COOKIE, cookie);
    }
}

/// Counts a login or registration attempt against the throttle.
pub fn throttle_login(name: &str) -> Result<(), AppError> {
    let limits = limits()?;
    let ip = identity::client_ip(&limits.config, &parts()?);
    limits.login_attempt(ip, name).map_err(|wait| {
        too_many(
            wait,
            format!(
                "Too many attempts; wait {} minutes and try again.",
                wait.as_secs().div_ceil(60).max(1)
            ),
        )
    })
}

/// Counts a form post (a server function that changes something) against this
/// address's budget.
pub fn throttle_form() -> Result<(), AppError> {
    let limits = limits()?;
    let ip = identity::client_ip(&limits.config, &parts()?);
    limits.form_post(ip).map_err(|wait| {
        too_many(
            wait,
            format!(
                "Too many requests from your address; wait {} s and try again.",
                crate::server::limits::retry_after_secs(wait)
            ),
        )
    })
}

/// Counts an account registration against this address's hourly cap; the address is
/// returned so a registration that made no account can be given back.
pub fn throttle_registration() -> Result<std::net::IpAddr, AppError> {
    let limits = limits()?;
    let ip = identity::client_ip(&limits.config, &parts()?);
    limits.registration(ip).map_err(|wait| {
        too_many(
            wait,
            format!(
                "Too many accounts were registered from your address; wait {} minutes and try again.",
                wait.as_secs().div_ceil(60).max(1)
            ),
        )
    })?;
    Ok(ip)
}

/// A 429 that says when to try again, in `Retry-After` and in the sentence.
pub fn too_many(wait: std::time::Duration, sentence: String) -> AppError {
    if let Some(res) = use_context::<ResponseOptions>() {
        res.insert_header(
            header::RETRY_AFTER,
            crate::server::limits::retry_after_secs(wait).into(),
        );
    }
    fail(AppError::TooMany(sentence))
}

/// The room, if `who` may enter it; otherwise the same "not found" a missing room gets,
/// so private rooms do not reveal that they exist.
pub async fn enter(raw: &str, who: Option<&Identity>) -> Result<RoomId, AppError> {
    enter_with(&*accounts()?, raw, who).await
}

async fn enter_with(
    accounts: &Accounts,
    raw: &str,
    who: Option<&Identity>,
) -> Result<RoomId, AppError> {
    let denied = || {
        fail(AppError::NotFound(format!(
            "There is no room called {raw:?} that you can open. Private rooms and direct \
             messages open for their members only; ask a member to invite you."
        )))
    };
    let room = crate::names::parse_room(raw).map_err(|_| denied())?;
    accounts
        .refresh_access(&room)
        .await
        .map_err(|e| internal(HubError::from(e)))?;
    if accounts.may_enter(&room, who) {
        Ok(room)
    } else {
        Err(denied())
    }
}

/// How a room appears to `who`: its visibility, title and members.
pub fn describe(
    accounts: &Accounts,
    room: &RoomId,
    who: Option<&Identity>,
) -> (Visibility, String, Vec<UserName>) {
    let (kind, members) = accounts.room_access(room);
    match kind {
        RoomKind::Public => (Visibility::Public, room.0.clone(), members),
        RoomKind::Private => (Visibility::Private, room.0.clone(), members),
        RoomKind::Direct => {
            let others: Vec<&str> = members
                .iter()
                .filter(|m| Some(*m) != who.map(|w| &w.name))
                .map(|m| m.as_str())
                .collect();
            (Visibility::Direct, others.join(", "), members)
        }
    }
}

/// The address this request came from, as the per-address limits see it.
pub fn address() -> Result<std::net::IpAddr, AppError> {
    Ok(identity::client_ip(&limits()?.config, &parts()?))
}

/// A refusal from the room rules, with its status (and `Retry-After` for 429).
pub fn room_error(err: RoomError) -> AppError {
    match err {
        RoomError::NeedSession(s) => fail(AppError::Unauthorized(s)),
        RoomError::Invalid(s) => fail(AppError::Invalid(s)),
        RoomError::Forbidden(s) => fail(AppError::NotFound(s)),
        RoomError::TooMany { wait, sentence } => {
            if let Some(res) = use_context::<ResponseOptions>() {
                res.insert_header(header::RETRY_AFTER, wait.as_secs().max(1).into());
            }
            fail(AppError::TooMany(sentence))
        }
        RoomError::Store(e) => internal(HubError::from(e)),
    }
}

pub fn account_error(err: AccountError) -> AppError {
    match err {
        AccountError::Store(e) => internal(HubError::from(e)),
        AccountError::BadCredentials => fail(AppError::Unauthorized(err.to_string())),
        AccountError::Busy => too_many(crate::server::accounts::HASH_WAIT, err.to_string()),
        other => fail(AppError::Invalid(other.to_string())),
    }
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
    if let Some(res) = use_context::<ResponseOptions>() {
        res.set_status(status(&err));
    }
    err
}

/// The HTTP status an error is answered with.
pub fn status(err: &AppError) -> StatusCode {
    match err {
        AppError::Invalid(_) => StatusCode::BAD_REQUEST,
        AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
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

/// Who is looking, and whether guests are allowed.
pub async fn whoami() -> Result<Me, AppError> {
    let who = me().await?;
    Ok(Me {
        registered: who.as_ref().is_some_and(|w| !w.is_guest()),
        name: who.map(|w| w.name.0),
        guests_allowed: limits()?.config.allow_guests,
    })
}

/// Chooses (or changes) a guest display name, remembered in the session cookie.
pub async fn set_name(name: String) -> Result<String, AppError> {
    throttle_form()?;
    if !limits()?.config.allow_guests {
        return Err(fail(AppError::Invalid(
            "This server does not allow guests; register or log in to chat.".to_string(),
        )));
    }
    let name = crate::names::parse_display_name(&name).map_err(|e| fail(AppError::Invalid(e)))?;
    if let Some(who) = me().await? {
        if !who.is_guest() {
            return Err(fail(AppError::Invalid(format!(
                "You are logged in as {}; log out first to chat as a guest.",
                who.name
            ))));
        }
    }
    let session = accounts()?.guest(&name).await.map_err(account_error)?;
    start_session(session).await?;
    Ok(name.0)
}

/// Creates an account and logs in.
pub async fn register(name: String, password: String) -> Result<String, AppError> {
    throttle_form()?;
    let name = crate::names::parse_display_name(&name).map_err(|e| fail(AppError::Invalid(e)))?;
    throttle_login(name.as_str())?;
    let ip = throttle_registration()?;
    let registered = accounts()?.register(&name, &password).await;
    if registered.is_err() {
        limits()?.registration_failed(ip);
    }
    let session = registered.map_err(account_error)?;
    start_session(session).await?;
    leptos_axum::redirect("/");
    Ok(name.0)
}

/// Logs in to an existing account.
pub async fn login(name: String, password: String) -> Result<String, AppError> {
    throttle_form()?;
    let name = crate::names::parse_display_name(&name).map_err(|_| {
        fail(AppError::Unauthorized(
            "That user name and password do not match; check both and try again.".to_string(),
        ))
    })?;
    throttle_login(name.as_str())?;
    let session = accounts()?
        .login(&name, &password)
        .await
        .map_err(account_error)?;
    let name = session.identity.name.0.clone();
    start_session(session).await?;
    leptos_axum::redirect("/");
    Ok(name)
}

/// Logs out: the cookie stops working and open chat connections of this session close.
pub async fn logout() -> Result<(), AppError> {
    end_session().await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// One page (from 0) of the rooms this visitor may see, most recently active first, with how
/// many people are online in each.
pub async fn list_rooms(page: Option<u32>) -> Result<RoomList, AppError> {
    let who = me().await?;
    let accounts = accounts()?;
    let page = page.unwrap_or(0);
    let (rooms, more) =
        crate::server::rooms::list(&*hub()?, &accounts, who.as_ref(), page as usize)
            .await
            .map_err(room_error)?;
    let rooms = rooms
        .into_iter()
        .map(|r| {
            let (visibility, title, _) = describe(&accounts, &r.room, who.as_ref());
            RoomEntry {
                name: r.room.0,
                title,
                visibility,
                online: r.online,
            }
        })
        .collect();
    Ok(RoomList {
        rooms,
        page,
        next_page: more.then_some(page + 1),
    })
}

/// Creates a room (or finds the public one of that name) and goes to it. Creating needs a
/// session and fits a per-person and per-address budget; a private room needs an account,
/// and its creator is its first member.
pub async fn create_room(name: String, private: Option<String>) -> Result<String, AppError> {
    throttle_form()?;
    let room = crate::names::parse_room(&name).map_err(|e| fail(AppError::Invalid(e)))?;
    let who = me().await?;
    crate::server::rooms::create(
        &*hub()?,
        &*accounts()?,
        who.as_ref(),
        address()?,
        &room,
        private.is_some(),
    )
    .await
    .map_err(room_error)?;
    leptos_axum::redirect(&format!("/r/{room}"));
    Ok(room.0)
}

/// Adds an account to a private room; only members can invite.
pub async fn invite(room: String, name: String) -> Result<String, AppError> {
    throttle_form()?;
    let who = registered("invite people").await?;
    let room = enter(&room, Some(&who)).await?;
    let name = crate::names::parse_display_name(&name).map_err(|e| fail(AppError::Invalid(e)))?;
    let invited = crate::server::rooms::invite(&*accounts()?, &room, &who, &name)
        .await
        .map_err(room_error)?;
    Ok(invited.0)
}

/// Opens (creating on first use) the direct conversation with another account.
pub async fn open_direct(name: String) -> Result<String, AppError> {
    throttle_form()?;
    let who = registered("send direct messages").await?;
    let name = crate::names::parse_display_name(&name).map_err(|e| fail(AppError::Invalid(e)))?;
    let room = crate::server::rooms::open_direct(&*hub()?, &*accounts()?, &who, address()?, &name)
        .await
        .map_err(room_error)?;
    leptos_axum::redirect(&format!("/r/{room}"));
    Ok(room.0)
}

/// The room page's starting state: the latest messages (or, with `before`, the page of
/// messages before that sequence number) and who is online.
pub async fn load_room(room: String, before: Option<u64>) -> Result<RoomPage, AppError> {
    let (hub, accounts, limits) = (hub()?, accounts()?, limits()?);
    let who = me().await?;
    let room = enter_with(&accounts, &room, who.as_ref()).await?;
    let snapshot = hub.snapshot(&room, PAGE_MESSAGES).await.map_err(internal)?;
    let before = before.map(Seq);
    let messages = match before {
        None => snapshot.messages,
        Some(before) => Messages::from(
            hub.store()
                .latest(&room, Some(before), PAGE_MESSAGES)
                .await
                .map_err(|e| internal(e.into()))?,
        ),
    };
    let (visibility, title, members) = describe(&accounts, &room, who.as_ref());
    let (read, sidebar) = match (&who, before) {
        // Opening the latest page reads it: the mark rises to what the page shows.
        (Some(who), None) => {
            let key = who.author_key();
            let marks = hub.reads().of(&key).await.map_err(|e| internal(e.into()))?;
            hub.reads().mark(&key, &room, snapshot.last_seq);
            let read = marks.get(&room).copied();
            let sidebar = sidebar(&hub, &accounts, who, &marks, &room, snapshot.last_seq).await;
            (read, sidebar)
        }
        // Someone who has not chosen a name yet has read nothing anywhere: the sidebar is
        // the room they are in.
        (None, None) => (
            None,
            vec![SidebarRoom {
                room: room.clone(),
                title: title.clone(),
                visibility,
                last_seq: snapshot.last_seq,
                read: snapshot.last_seq,
                mentions: Vec::new(),
            }],
        ),
        (_, Some(_)) => (None, Vec::new()),
    };
    Ok(RoomPage {
        room,
        title,
        visibility,
        members,
        has_older: messages.first().is_some_and(|m| m.seq.0 > 1),
        messages,
        online: snapshot.online,
        last_seq: snapshot.last_seq,
        last_eseq: snapshot.last_eseq,
        epoch: snapshot.epoch,
        registered: who.as_ref().is_some_and(|w| !w.is_guest()),
        my_key: who.as_ref().map(|w| w.author_key()),
        me: who.map(|w| w.name),
        guests_allowed: limits.config.allow_guests,
        before,
        read,
        sidebar,
    })
}

/// The sidebar of `who`, who is reading `current` up to `current_seq`: the rooms they have
/// read in and the restricted rooms they belong to, that they may still enter, by name.
async fn sidebar(
    hub: &Hub,
    accounts: &Accounts,
    who: &Identity,
    marks: &std::collections::HashMap<RoomId, Seq>,
    current: &RoomId,
    current_seq: Seq,
) -> Vec<SidebarRoom> {
    let mut rooms: Vec<RoomId> = marks.keys().cloned().collect();
    rooms.extend(accounts.rooms_of(who).into_iter().map(|(room, _, _)| room));
    rooms.push(current.clone());
    rooms.retain(|r| accounts.may_enter(r, Some(who)));
    rooms.sort();
    rooms.dedup();
    let mut entries = Vec::with_capacity(rooms.len().min(SIDEBAR_ROOMS));
    for room in rooms {
        let (visibility, title, _) = describe(accounts, &room, Some(who));
        let (last_seq, read) = if room == *current {
            (current_seq, current_seq)
        } else {
            match hub.store().last_seq(&room).await {
                Ok(last) => (last, marks.get(&room).copied().unwrap_or_default()),
                Err(err) => {
                    tracing::error!(%room, %err, "sidebar room left out");
                    continue;
                }
            }
        };
        let mentions = unread_mentions(hub, who, &room, last_seq, read).await;
        entries.push(SidebarRoom {
            room,
            title,
            visibility,
            last_seq,
            read,
            mentions,
        });
    }
    // Direct conversations after the rooms, each group by what it is called.
    entries.sort_by(|a, b| {
        let direct = |e: &SidebarRoom| e.visibility == Visibility::Direct;
        (direct(a), &a.title).cmp(&(direct(b), &b.title))
    });
    entries.truncate(SIDEBAR_ROOMS);
    entries
}

/// The unread messages of `room` (after `read`, up to `last_seq`) that mention `who` by
/// name, among the newest [`MENTIONS_KEPT`]; looked for only in rooms with unread messages.
async fn unread_mentions(
    hub: &Hub,
    who: &Identity,
    room: &RoomId,
    last_seq: Seq,
    read: Seq,
) -> Vec<Seq> {
    let unread = (last_seq.0.saturating_sub(read.0) as usize).min(MENTIONS_KEPT);
    if unread == 0 {
        return Vec::new();
    }
    let key = who.author_key();
    match hub.store().latest(room, None, unread).await {
        Ok(messages) => messages
            .iter()
            .filter(|m| m.seq > read && m.mentions(&who.name.0, &key, false))
            .map(|m| m.seq)
            .collect(),
        Err(err) => {
            tracing::error!(%room, %err, "mentions not counted");
            Vec::new()
        }
    }
}

/// Up to one page of messages before `before`, oldest first (scrolling back in a room).
pub async fn load_history(room: String, before: u64) -> Result<Vec<ChatMessage>, AppError> {
    let who = me().await?;
    let room = enter(&room, who.as_ref()).await?;
    hub()?
        .store()
        .latest(&room, Some(Seq(before)), PAGE_MESSAGES)
        .await
        .map_err(|e| internal(e.into()))
}

/// An edit, deletion or reaction from a plain HTML form (the live page sends over the
/// WebSocket instead); back to the room page when it is done.
pub async fn change_message(
    room: String,
    seq: u64,
    kind: crate::protocol::ChangeKind,
    text: Option<String>,
    emoji: Option<String>,
    on: bool,
) -> Result<(), AppError> {
    use crate::server::store::{Changed, NewChange};
    throttle_form()?;
    let Some(who) = me().await? else {
        return Err(fail(AppError::Unauthorized(
            "Log in or choose a display name first.".to_string(),
        )));
    };
    let room = enter(&room, Some(&who)).await?;
    let text = match text.map(|t| crate::names::clean_message(&t)) {
        Some(Err(problem)) => return Err(fail(AppError::Invalid(problem.sentence()))),
        Some(Ok(text)) => Some(text),
        None => None,
    };
    if emoji
        .as_deref()
        .is_some_and(|e| !crate::protocol::REACTIONS.contains(&e))
    {
        return Err(fail(AppError::Invalid(format!(
            "Reactions are {}.",
            crate::protocol::REACTIONS.join(" ")
        ))));
    }
    limits()?.post(who.session_id).map_err(|wait| {
        let secs = crate::server::limits::retry_after_secs(wait);
        too_many(
            wait,
            format!("You are going too fast; wait {secs} s and try again."),
        )
    })?;
    let change = NewChange {
        seq: Seq(seq),
        by: who.person(),
        kind,
        text,
        emoji,
        on,
        ts: crate::server::hub::now_ms(),
    };
    match hub()?.change_as(&room, change).await.map_err(internal)? {
        Changed::Done(_) | Changed::Unchanged => {
            leptos_axum::redirect(&format!("/r/{room}"));
            Ok(())
        }
        Changed::NotFound => Err(fail(AppError::NotFound(format!(
            "Message {seq} is not in #{room}, or was deleted."
        )))),
        Changed::NotAuthor => Err(fail(AppError::Forbidden(
            "Only the person who wrote a message can edit or delete it.".to_string(),
        ))),
    }
}

/// Posts a message from a plain HTML form (the live page sends over the WebSocket instead).
pub async fn post_message(room: String, text: String) -> Result<(), AppError> {
    throttle_form()?;
    let Some(author) = me().await? else {
        return Err(fail(AppError::Unauthorized(
            "Log in or choose a display name before posting.".to_string(),
        )));
    };
    let room = enter(&room, Some(&author)).await?;
    // Posting never creates a room: that needs the creation rules (`server::rooms`).
    if !crate::server::rooms::exists(&*hub()?, &room)
        .await
        .map_err(room_error)?
    {
        return Err(fail(AppError::NotFound(format!(
            "There is no room called {room}; create it on the home page first."
        ))));
    }
    limits()?.post(author.session_id).map_err(|wait| {
        let secs = crate::server::limits::retry_after_secs(wait);
        too_many(
            wait,
            format!("You are sending too fast; wait {secs} s and try again."),
        )
    })?;
    // Each form post is a new message; the counter keeps ids unique within this process.
    static POSTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = POSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client_id = crate::protocol::ClientId(format!("form-{}-{n}", crate::server::hub::now_ms()));
    hub()?
        .post_as(author.person(), &room, client_id, text)
        .await
        .map_err(internal)?;
    Ok(())
}
