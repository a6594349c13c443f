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
    /// Not logged in, or wrong credentials (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// Too many attempts; the text says how long to wait (HTTP 429).
    #[error("{0}")]
    TooMany(String),
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

/// How resources carry server-rendered data into the browser: JSON with every `"` and `'`
/// swapped, read through [`crate::protocol::from_json`] so the bundle shares its decoders with
/// the server functions' answers.
///
/// Leptos embeds the encoded text in the page as a Debug-quoted string, and quoting JSON
/// escapes every `"` of every key and string one character at a time. With the quotes
/// swapped there is next to nothing to escape, so the page is smaller and cheaper to render.
/// The home page's resource uses it. The swap exchanges two ASCII bytes, so it keeps UTF-8
/// intact and undoes itself.
pub struct PageJson;

/// Exchanges `"` and `'` (the encoding of [`PageJson`], both ways).
fn swap_quotes(byte: u8) -> u8 {
    match byte {
        b'"' => b'\'',
        b'\'' => b'"',
        other => other,
    }
}

impl<T: Serialize> leptos::server::codee::Encoder<T> for PageJson {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(val: &T) -> Result<String, serde_json::Error> {
        let mut json = serde_json::to_vec(val)?;
        json.iter_mut().for_each(|b| *b = swap_quotes(*b));
        // Only ASCII bytes were exchanged for ASCII bytes, so this cannot fail.
        String::from_utf8(json).map_err(serde::ser::Error::custom)
    }
}

impl<T: serde::de::DeserializeOwned> leptos::server::codee::Decoder<T> for PageJson {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(val: &str) -> Result<T, serde_json::Error> {
        let mut json = val.as_bytes().to_vec();
        json.iter_mut().for_each(|b| *b = swap_quotes(*b));
        crate::protocol::from_json_bytes(&json)
    }
}

/// Who is looking at the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The name they chat under, if they are logged in or chose a guest name.
    pub name: Option<String>,
    /// True for a registered account (which can create private rooms and direct messages).
    pub registered: bool,
    /// Whether this server lets people chat without an account.
    pub guests_allowed: bool,
}

/// Who may enter a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Visibility {
    Public,
    Private,
    Direct,
}

/// A room as listed on the home page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEntry {
    pub name: String,
    /// What to show: `name` for rooms, the other person's name for a direct conversation.
    pub title: String,
    pub visibility: Visibility,
    pub online: usize,
}

/// A page's messages, oldest first, shared rather than copied.
///
/// A room keeps its latest page as one `Messages` until its next message (`server::room`),
/// and every room page rendered meanwhile shares it. On the server it also keeps what the
/// page makes of the messages, made once for all those pages: the JSON (serializing to
/// JSON writes it as it is, so this type must only be serialized with `serde_json`, as the
/// room page and `load_room` do) and the rows' HTML ([`Messages::html`]). In the browser it
/// is a list like any other: changing it copies it only if it is shared.
#[derive(Clone, Default)]
pub struct Messages(std::sync::Arc<Shared>);

#[derive(Clone, Default)]
struct Shared {
    list: Vec<ChatMessage>,
    #[cfg(feature = "ssr")]
    json: std::sync::OnceLock<Option<Box<serde_json::value::RawValue>>>,
    #[cfg(feature = "ssr")]
    html: std::sync::OnceLock<String>,
}

impl Messages {
    /// The list to change (a copy if it is shared); what was made of it is dropped.
    pub fn list_mut(&mut self) -> &mut Vec<ChatMessage> {
        let shared = std::sync::Arc::make_mut(&mut self.0);
        #[cfg(feature = "ssr")]
        {
            shared.json = Default::default();
            shared.html = Default::default();
        }
        &mut shared.list
    }

    /// The list itself (a copy if it is shared).
    pub fn into_vec(self) -> Vec<ChatMessage> {
        std::sync::Arc::try_unwrap(self.0).map_or_else(|shared| shared.list.clone(), |s| s.list)
    }

    /// The messages as HTML, made by `render` the first time it is asked for.
    #[cfg(feature = "ssr")]
    pub fn html(&self, render: impl FnOnce(&[ChatMessage]) -> String) -> &str {
        self.0.html.get_or_init(|| render(&self.0.list))
    }
}

impl std::ops::Deref for Messages {
    type Target = [ChatMessage];

    fn deref(&self) -> &[ChatMessage] {
        &self.0.list
    }
}

impl From<Vec<ChatMessage>> for Messages {
    fn from(list: Vec<ChatMessage>) -> Self {
        Messages(std::sync::Arc::new(Shared {
            list,
            #[cfg(feature = "ssr")]
            json: Default::default(),
            #[cfg(feature = "ssr")]
            html: Default::default(),
        }))
    }
}

impl PartialEq for Messages {
    fn eq(&self, other: &Self) -> bool {
        self.0.list == other.0.list
    }
}

impl Eq for Messages {}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.list.fmt(f)
    }
}

impl Serialize for Messages {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[cfg(feature = "ssr")]
        if let Some(json) = self
            .0
            .json
            .get_or_init(|| serde_json::value::to_raw_value(&self.0.list).ok())
        {
            return json.serialize(serializer);
        }
        self.0.list.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(Messages::from)
    }
}

/// One page of the room list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomList {
    pub rooms: Vec<RoomEntry>,
    /// This page's number (from 0).
    pub page: u32,
    /// The next page's number, when more rooms may follow.
    pub next_page: Option<u32>,
}

/// Everything a room page renders before the live connection takes over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    pub room: RoomId,
    /// The page heading: `# name`, or the other person's name in a direct conversation.
    pub title: String,
    pub visibility: Visibility,
    /// Members of a private room or direct conversation (empty for public rooms).
    pub members: Vec<UserName>,
    pub messages: Messages,
    pub online: Vec<crate::protocol::Person>,
    /// The newest sequence number included: the live connection subscribes from here.
    pub last_seq: Seq,
    pub epoch: u64,
    pub me: Option<UserName>,
    /// True when the viewer has an account (guests see a sign-up prompt instead).
    pub registered: bool,
    pub guests_allowed: bool,
    /// True when messages older than the first one shown may exist.
    pub has_older: bool,
    /// Set when this is an older page (`?before=`), which is shown without live updates.
    pub before: Option<Seq>,
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use super::{AppError, Messages, RoomPage, Visibility, PAGE_MESSAGES};
    use crate::protocol::{RoomId, Seq, UserName};
    use crate::server::accounts::{AccountError, Accounts, Identity, NewSession, RoomKind};
    use crate::server::hub::{Hub, HubError};
    use crate::server::identity;
    use crate::server::limits::Limits;
    use crate::server::rooms::RoomError;
    use axum::http::{header, request::Parts, HeaderMap, StatusCode};
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
        let parts = parts()?;
        if let Some(old) = identity::session_token(&parts.headers) {
            accounts()?
                .logout(old)
                .await
                .map_err(|e| internal(HubError::from(e)))?;
        }
        let config = &limits()?.config;
        let ttl = if session.identity.is_guest() {
            config.guest_session_ttl.min(config.session_ttl)
        } else {
            config.session_ttl
        };
        let cookie = identity::session_cookie(
            &session.token,
            ttl.as_secs(),
            identity::wants_secure_cookie(config, &parts.headers),
        );
        if let Some(res) = use_context::<ResponseOptions>() {
            res.append_header(header::SET_COOKIE, cookie);
        }
        Ok(())
    }

    /// Ends this request's session and clears the cookie.
    pub async fn end_session() -> Result<(), AppError> {
        let parts = parts()?;
        if let Some(token) = identity::session_token(&parts.headers) {
            accounts()?
                .logout(token)
                .await
                .map_err(|e| internal(HubError::from(e)))?;
        }
        let config = &limits()?.config;
        let cookie =
            identity::session_cookie("", 0, identity::wants_secure_cookie(config, &parts.headers));
        if let Some(res) = use_context::<ResponseOptions>() {
            res.append_header(header::SET_COOKIE, cookie);
        }
        Ok(())
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
    pub fn enter(raw: &str, who: Option<&Identity>) -> Result<RoomId, AppError> {
        enter_with(&*accounts()?, raw, who)
    }

    fn enter_with(
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
            AppError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body of [`super::load_room`] for callers that hold the server's state rather than
    /// a server function's context (the room page's handler, `server::room_page`).
    pub async fn room_page(
        hub: &Hub,
        accounts: &Accounts,
        limits: &Limits,
        headers: &HeaderMap,
        room: &str,
        before: Option<u64>,
    ) -> Result<RoomPage, AppError> {
        let who = session(accounts, limits, headers).await?;
        let room = enter_with(accounts, room, who.as_ref())?;
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
        let (visibility, title, members) = describe(accounts, &room, who.as_ref());
        Ok(RoomPage {
            room,
            title,
            visibility,
            members,
            has_older: messages.first().is_some_and(|m| m.seq.0 > 1),
            messages,
            online: snapshot.online,
            last_seq: snapshot.last_seq,
            epoch: snapshot.epoch,
            registered: who.as_ref().is_some_and(|w| !w.is_guest()),
            me: who.map(|w| w.name),
            guests_allowed: limits.config.allow_guests,
            before,
        })
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

/// Who is looking, and whether guests are allowed.
#[server]
pub async fn whoami() -> Result<Me, AppError> {
    let who = ssr::me().await?;
    Ok(Me {
        registered: who.as_ref().is_some_and(|w| !w.is_guest()),
        name: who.map(|w| w.name.0),
        guests_allowed: ssr::limits()?.config.allow_guests,
    })
}

/// Chooses (or changes) a guest display name, remembered in the session cookie.
#[server(endpoint = "set_name")]
pub async fn set_name(name: String) -> Result<String, AppError> {
    ssr::throttle_form()?;
    if !ssr::limits()?.config.allow_guests {
        return Err(ssr::fail(AppError::Invalid(
            "This server does not allow guests; register or log in to chat.".to_string(),
        )));
    }
    let name =
        crate::names::parse_display_name(&name).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    if let Some(who) = ssr::me().await? {
        if !who.is_guest() {
            return Err(ssr::fail(AppError::Invalid(format!(
                "You are logged in as {}; log out first to chat as a guest.",
                who.name
            ))));
        }
    }
    let session = ssr::accounts()?
        .guest(&name)
        .await
        .map_err(ssr::account_error)?;
    ssr::start_session(session).await?;
    Ok(name.0)
}

/// Creates an account and logs in.
#[server(endpoint = "register")]
pub async fn register(name: String, password: String) -> Result<String, AppError> {
    ssr::throttle_form()?;
    let name =
        crate::names::parse_display_name(&name).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    ssr::throttle_login(name.as_str())?;
    let ip = ssr::throttle_registration()?;
    let registered = ssr::accounts()?.register(&name, &password).await;
    if registered.is_err() {
        ssr::limits()?.registration_failed(ip);
    }
    let session = registered.map_err(ssr::account_error)?;
    ssr::start_session(session).await?;
    leptos_axum::redirect("/");
    Ok(name.0)
}

/// Logs in to an existing account.
#[server(endpoint = "login")]
pub async fn login(name: String, password: String) -> Result<String, AppError> {
    ssr::throttle_form()?;
    let name = crate::names::parse_display_name(&name).map_err(|_| {
        ssr::fail(AppError::Unauthorized(
            "That user name and password do not match; check both and try again.".to_string(),
        ))
    })?;
    ssr::throttle_login(name.as_str())?;
    let session = ssr::accounts()?
        .login(&name, &password)
        .await
        .map_err(ssr::account_error)?;
    let name = session.identity.name.0.clone();
    ssr::start_session(session).await?;
    leptos_axum::redirect("/");
    Ok(name)
}

/// Logs out: the cookie stops working and open chat connections of this session close.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    ssr::end_session().await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// One page (from 0) of the rooms this visitor may see, most recently active first, with how
/// many people are online in each.
#[server]
pub async fn list_rooms(page: Option<u32>) -> Result<RoomList, AppError> {
    let who = ssr::me().await?;
    let accounts = ssr::accounts()?;
    let page = page.unwrap_or(0);
    let (rooms, more) =
        crate::server::rooms::list(&*ssr::hub()?, &accounts, who.as_ref(), page as usize)
            .await
            .map_err(ssr::room_error)?;
    let rooms = rooms
        .into_iter()
        .map(|r| {
            let (visibility, title, _) = ssr::describe(&accounts, &r.room, who.as_ref());
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
#[server]
pub async fn create_room(name: String, private: Option<String>) -> Result<String, AppError> {
    ssr::throttle_form()?;
    let room = crate::names::parse_room(&name).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    let who = ssr::me().await?;
    crate::server::rooms::create(
        &*ssr::hub()?,
        &*ssr::accounts()?,
        who.as_ref(),
        ssr::address()?,
        &room,
        private.is_some(),
    )
    .await
    .map_err(ssr::room_error)?;
    leptos_axum::redirect(&format!("/r/{room}"));
    Ok(room.0)
}

/// Adds an account to a private room; only members can invite.
#[server]
pub async fn invite(room: String, name: String) -> Result<String, AppError> {
    ssr::throttle_form()?;
    let who = ssr::registered("invite people").await?;
    let room = ssr::enter(&room, Some(&who))?;
    let name =
        crate::names::parse_display_name(&name).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    let invited = crate::server::rooms::invite(&*ssr::accounts()?, &room, &who, &name)
        .await
        .map_err(ssr::room_error)?;
    Ok(invited.0)
}

/// Opens (creating on first use) the direct conversation with another account.
#[server]
pub async fn open_direct(name: String) -> Result<String, AppError> {
    ssr::throttle_form()?;
    let who = ssr::registered("send direct messages").await?;
    let name =
        crate::names::parse_display_name(&name).map_err(|e| ssr::fail(AppError::Invalid(e)))?;
    let room = crate::server::rooms::open_direct(
        &*ssr::hub()?,
        &*ssr::accounts()?,
        &who,
        ssr::address()?,
        &name,
    )
    .await
    .map_err(ssr::room_error)?;
    leptos_axum::redirect(&format!("/r/{room}"));
    Ok(room.0)
}

/// The room page's starting state: the latest messages (or, with `before`, the page of
/// messages before that sequence number) and who is online.
#[server]
pub async fn load_room(room: String, before: Option<u64>) -> Result<RoomPage, AppError> {
    let (hub, accounts, limits) = (ssr::hub()?, ssr::accounts()?, ssr::limits()?);
    ssr::room_page(
        &hub,
        &accounts,
        &limits,
        &ssr::parts()?.headers,
        &room,
        before,
    )
    .await
}

/// Up to one page of messages before `before`, oldest first (scrolling back in a room).
#[server]
pub async fn load_history(room: String, before: u64) -> Result<Vec<ChatMessage>, AppError> {
    let who = ssr::me().await?;
    let room = ssr::enter(&room, who.as_ref())?;
    ssr::hub()?
        .store()
        .latest(&room, Some(Seq(before)), PAGE_MESSAGES)
        .await
        .map_err(|e| ssr::internal(e.into()))
}

/// Posts a message from a plain HTML form (the live page sends over the WebSocket instead).
#[server]
pub async fn post_message(room: String, text: String) -> Result<(), AppError> {
    ssr::throttle_form()?;
    let Some(author) = ssr::me().await? else {
        return Err(ssr::fail(AppError::Unauthorized(
            "Log in or choose a display name before posting.".to_string(),
        )));
    };
    let room = ssr::enter(&room, Some(&author))?;
    // Posting never creates a room: that needs the creation rules (`server::rooms`).
    if !crate::server::rooms::exists(&*ssr::hub()?, &room)
        .await
        .map_err(ssr::room_error)?
    {
        return Err(ssr::fail(AppError::NotFound(format!(
            "There is no room called {room}; create it on the home page first."
        ))));
    }
    ssr::limits()?.post(author.session_id).map_err(|wait| {
        let secs = crate::server::limits::retry_after_secs(wait);
        ssr::too_many(
            wait,
            format!("You are sending too fast; wait {secs} s and try again."),
        )
    })?;
    // Each form post is a new message; the counter keeps ids unique within this process.
    static POSTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = POSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client_id = crate::protocol::ClientId(format!("form-{}-{n}", crate::server::hub::now_ms()));
    ssr::hub()?
        .post_as(author.person(), &room, client_id, text)
        .await
        .map_err(ssr::internal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PageJson;
    use crate::protocol::{ChatMessage, ClientId, RoomId, Seq, UserName};
    use leptos::server::codee::{Decoder, Encoder};

    fn message(text: &str) -> ChatMessage {
        ChatMessage {
            room: RoomId("general".into()),
            seq: Seq(7),
            author: UserName("ada".into()),
            text: text.into(),
            client_id: ClientId("c-1".into()),
            ts: 1,
            guest: false,
        }
    }

    #[test]
    fn page_json_round_trips_any_text() {
        for text in [
            "plain",
            r#"she said "hi" and it's fine"#,
            r#"back\slash \" \' \\"#,
            "</script><script>alert(1)</script>",
            "naïve café ☕ 日本語 \u{1F600}",
            "line\nbreak\ttab\u{0}nul",
            "'\"'\"",
        ] {
            let page = vec![message(text)];
            let encoded = <PageJson as Encoder<Vec<ChatMessage>>>::encode(&page).unwrap();
            let decoded: Vec<ChatMessage> = <PageJson as Decoder<_>>::decode(&encoded).unwrap();
            assert_eq!(decoded, page, "{text:?} came back different from {encoded}");
        }
    }

    /// A shared page encodes exactly as its list does, and a change makes a private copy
    /// whose JSON and HTML are made again, leaving the shared one as it was.
    #[cfg(feature = "ssr")]
    #[test]
    fn shared_messages_encode_as_a_list_and_remake_what_a_change_outdates() {
        use super::Messages;
        let list = vec![message("a </script> <b>"), message("c \"d\"")];
        let mut mine = Messages::from(list.clone());
        let shared = mine.clone();
        let json = |m: &Messages| serde_json::to_string(m).unwrap();
        assert_eq!(json(&mine), serde_json::to_string(&list).unwrap());
        assert_eq!(mine.html(|m| format!("{} rows", m.len())), "2 rows");

        mine.list_mut().pop();
        assert_eq!(json(&mine), serde_json::to_string(&list[..1]).unwrap());
        assert_eq!(mine.html(|m| format!("{} rows", m.len())), "1 rows");
        assert_eq!(json(&shared), serde_json::to_string(&list).unwrap());
        assert_eq!(shared.html(|_| "made again".into()), "2 rows");
        let decoded: Messages = serde_json::from_str(&json(&shared)).unwrap();
        assert_eq!(decoded, shared);
    }

    /// The point of the encoding: keys and plain strings carry no `"` for the page's quoting
    /// to escape.
    #[test]
    fn page_json_has_no_double_quotes_to_escape() {
        let encoded = <PageJson as Encoder<_>>::encode(&vec![message("hello")]).unwrap();
        assert!(!encoded.contains('"'), "{encoded}");
        assert!(
            encoded.starts_with("[{'room':'general','seq':7"),
            "{encoded}"
        );
    }
}
