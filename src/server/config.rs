//! Command-line and environment settings for the `hearth` binary.
//!
//! Every default runs as-is on a first start: an in-process hub and store, no set-up step.
//! The listen address and site files come from Leptos's own settings (`LEPTOS_SITE_ADDR`,
//! `LEPTOS_SITE_ROOT`), which cargo-leptos fills in.

use crate::server::http::HttpLimits;
use crate::server::hub::HubConfig;
use crate::server::limits::SecurityConfig;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "hearth",
    version,
    about = "Hearth: a self-hosted team chat server."
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on; overrides LEPTOS_SITE_ADDR (default 127.0.0.1:3000).
    #[arg(long, env = "HEARTH_ADDR")]
    pub addr: Option<SocketAddr>,

    /// Directory for the SQLite database (`hearth.db`); created on first start.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "data")]
    pub data_dir: std::path::PathBuf,

    /// Where history lives: `sqlite` (a file under --data-dir) or `memory` (lost on exit);
    /// see also --database-url.
    #[arg(long, env = "HEARTH_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,

    /// PostgreSQL URL (`postgres://user:password@host:5432/hearth`). When set, history and
    /// accounts live there, shared by every node given the same URL; --store and --data-dir
    /// are not used.
    #[arg(long, env = "HEARTH_DATABASE_URL")]
    pub database_url: Option<String>,

    /// NATS URL (`nats://host:4222`). When set, nodes sharing one database pass each stored
    /// message to each other through it, so a room spread over nodes is one conversation.
    #[arg(long, env = "HEARTH_NATS_URL")]
    pub nats_url: Option<String>,

    /// Messages waiting to go out to NATS, and NATS messages waiting to be delivered here,
    /// before more are dropped (rooms then fill what was dropped from the database).
    #[arg(long, env = "HEARTH_BROKER_BUFFER", default_value_t = 8192)]
    pub broker_buffer: usize,

    /// How often, in milliseconds, each node reads the latest numbers of its rooms in memory
    /// from the database and fills in what NATS did not bring (with several nodes).
    #[arg(long, env = "HEARTH_CATCH_UP_MS", default_value_t = 1000)]
    pub catch_up_ms: u64,

    /// With several nodes: a node that has not renewed its lease in the database for this
    /// many milliseconds is down, and its people leave every room (at most 10 s is wise).
    #[arg(long, env = "HEARTH_NODE_LEASE_MS", default_value_t = 6000)]
    pub node_lease_ms: u64,

    /// How long a person stays listed as online after their last tab closes, in milliseconds.
    #[arg(long, env = "HEARTH_PRESENCE_GRACE_MS", default_value_t = 3000)]
    pub presence_grace_ms: u64,

    /// Interval between heartbeats on each WebSocket, in milliseconds; a connection silent
    /// for three intervals is closed.
    #[arg(long, env = "HEARTH_HEARTBEAT_MS", default_value_t = 10_000)]
    pub heartbeat_ms: u64,

    /// Milliseconds a write to a WebSocket may wait for the client to take any bytes; a
    /// client that stops reading is disconnected after it.
    #[arg(long, env = "HEARTH_WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    pub write_timeout_ms: u64,

    /// Frames queued per connection before it is treated as a slow consumer and resynced.
    #[arg(long, env = "HEARTH_QUEUE_FRAMES", default_value_t = 512)]
    pub queue_frames: usize,

    /// Bytes of frames queued per connection before it is treated as a slow consumer and
    /// resynced (a long replay is read from the store as the connection takes it, so it does
    /// not count).
    #[arg(long, env = "HEARTH_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub queue_bytes: usize,

    /// Messages kept per room; older ones are deleted. 0 keeps everything (SQLite) or the
    /// newest 10,000 (memory store).
    #[arg(long, env = "HEARTH_RETAIN_MESSAGES", default_value_t = 0)]
    pub retain_messages: u64,

    /// Let people chat under a display name without an account (`true` or `false`).
    #[arg(long, env = "HEARTH_ALLOW_GUESTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_guests: bool,

    /// Other origins allowed to open WebSockets, comma-separated
    /// (e.g. `https://chat.example.com`). The server's own host is always allowed.
    #[arg(long, env = "HEARTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host names this server is reached by, comma-separated (e.g. `chat.example.com`).
    /// Requests for any other host are refused with 421, which stops DNS rebinding;
    /// `localhost`, IP addresses and the hosts of HEARTH_ALLOWED_ORIGINS are always accepted.
    #[arg(long, env = "HEARTH_PUBLIC_HOSTS", value_delimiter = ',')]
    pub public_hosts: Vec<String>,

    /// Trust X-Forwarded-For / -Proto / -Host from a reverse proxy in front of Hearth.
    /// Leave off when clients reach Hearth directly: they could forge those headers.
    #[arg(long, env = "HEARTH_TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy: bool,

    /// Always mark cookies Secure (set when users reach Hearth over https).
    #[arg(long, env = "HEARTH_SECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub secure_cookies: bool,

    /// Messages (sends, joins, leaves) per second per connection; 0 turns the limit off.
    #[arg(long, env = "HEARTH_MESSAGE_RATE", default_value_t = 10.0)]
    pub message_rate: f64,

    /// Burst of messages allowed above the rate.
    #[arg(long, env = "HEARTH_MESSAGE_BURST", default_value_t = 30.0)]
    pub message_burst: f64,

    /// Rate-limited frames within 10 s before a flooding connection is closed with 1008.
    #[arg(long, env = "HEARTH_FLOOD_STRIKES", default_value_t = 20)]
    pub flood_strikes: u32,

    /// WebSocket upgrades per minute per IP address; 0 turns the limit off.
    #[arg(long, env = "HEARTH_UPGRADES_PER_MINUTE", default_value_t = 120)]
    pub upgrades_per_minute: u32,

    /// Open WebSocket connections per person; 0 turns the limit off.
    #[arg(long, env = "HEARTH_CONNECTIONS_PER_USER", default_value_t = 20)]
    pub connections_per_user: usize,

    /// Login and registration attempts per 15 minutes per IP address and user name.
    #[arg(long, env = "HEARTH_LOGIN_ATTEMPTS", default_value_t = 10)]
    pub login_attempts: u32,

    /// Rooms one person may create per hour (joining a room that does not exist creates
    /// it); 0 turns the limit off.
    #[arg(long, env = "HEARTH_ROOMS_PER_HOUR", default_value_t = 20)]
    pub rooms_per_hour: u32,

    /// Rooms one IP address may create per hour, whoever creates them; 0 turns the limit off.
    #[arg(long, env = "HEARTH_ROOMS_PER_HOUR_PER_ADDRESS", default_value_t = 60)]
    pub rooms_per_hour_per_address: u32,

    /// Seconds a room with nobody in it and no activity stays in memory; it is loaded again
    /// on demand with the same sequence numbers. 0 keeps rooms in memory forever.
    #[arg(long, env = "HEARTH_ROOM_IDLE_SECS", default_value_t = 600)]
    pub room_idle_secs: u64,

    /// Rooms with more people online than this do not pass typing on.
    #[arg(long, env = "HEARTH_TYPING_ROOM_LIMIT", default_value_t = 1_000)]
    pub typing_room_limit: usize,

    /// Days a login lasts.
    #[arg(long, env = "HEARTH_SESSION_DAYS", default_value_t = 30)]
    pub session_days: u64,

    /// Days a guest name lasts (at most --session-days).
    #[arg(long, env = "HEARTH_GUEST_SESSION_DAYS", default_value_t = 7)]
    pub guest_session_days: u64,

    /// Login and registration attempts per 15 minutes per IP address (an IPv6 /64), whatever
    /// the names; 0 turns the limit off.
    #[arg(long, env = "HEARTH_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 30)]
    pub login_attempts_per_address: u32,

    /// Login attempts per 15 minutes per user name, from all addresses together; 0 turns
    /// the limit off.
    #[arg(long, env = "HEARTH_LOGIN_ATTEMPTS_PER_NAME", default_value_t = 30)]
    pub login_attempts_per_name: u32,

    /// Accounts registered per hour per IP address (an IPv6 /64); 0 turns the limit off.
    #[arg(long, env = "HEARTH_REGISTRATIONS_PER_HOUR", default_value_t = 20)]
    pub registrations_per_hour: u32,

    /// Form posts (choosing a name, logging in, registering, creating rooms, inviting,
    /// posting without JavaScript) per minute per IP address (an IPv6 /64); 0 turns the
    /// limit off.
    #[arg(long, env = "HEARTH_FORM_POSTS_PER_MINUTE", default_value_t = 30)]
    pub form_posts_per_minute: u32,

    /// Seconds between checkpoints that fold the SQLite write-ahead log into the database
    /// and truncate it; 0 leaves it to SQLite's automatic checkpoints.
    #[arg(long, env = "HEARTH_WAL_CHECKPOINT_SECS", default_value_t = 60)]
    pub wal_checkpoint_secs: u64,
    /// Milliseconds a client has to send a whole request head; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "HEARTH_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,

    /// Milliseconds a client has to send a whole request body.
    #[arg(long, env = "HEARTH_BODY_TIMEOUT_MS", default_value_t = 15_000)]
    pub body_timeout_ms: u64,

    /// Largest request body (a form), in bytes; bigger ones are answered 413.
    #[arg(long, env = "HEARTH_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,

    /// Open connections (pages and WebSockets) per IP address; 0 turns the cap off. Not
    /// applied with --trust-proxy, where every connection comes from the proxy.
    #[arg(long, env = "HEARTH_CONNECTIONS_PER_ADDRESS", default_value_t = 1024)]
    pub connections_per_address: usize,
}

impl Config {
    pub fn http(&self) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_millis(self.header_timeout_ms.max(100)),
            body_timeout: Duration::from_millis(self.body_timeout_ms.max(100)),
            body_limit: self.body_limit.max(1024),
            connections_per_address: if self.trust_proxy {
                0
            } else {
                self.connections_per_address
            },
        }
    }
}

impl Config {
    pub fn hub(&self) -> HubConfig {
        HubConfig {
            queue_frames: self.queue_frames.max(1),
            queue_bytes: self.queue_bytes.max(1),
            presence_grace: Duration::from_millis(self.presence_grace_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms.max(100)),
            rooms_per_hour: self.rooms_per_hour,
            rooms_per_hour_per_address: self.rooms_per_hour_per_address,
            room_idle: Duration::from_secs(self.room_idle_secs),
            typing_room_limit: self.typing_room_limit,
            write_timeout: Duration::from_millis(self.write_timeout_ms.max(100)),
            ..HubConfig::default()
        }
    }
}

impl Config {
    pub fn security(&self) -> SecurityConfig {
        SecurityConfig {
            allow_guests: self.allow_guests,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            trust_proxy: self.trust_proxy,
            secure_cookies: self.secure_cookies,
            message_rate: self.message_rate.max(0.0),
            message_burst: self.message_burst.max(1.0),
            flood_strikes: self.flood_strikes,
            upgrades_per_minute: self.upgrades_per_minute,
            connections_per_user: self.connections_per_user,
            login_attempts: self.login_attempts,
            session_ttl: Duration::from_secs(self.session_days.max(1) * 24 * 3600),
            login_attempts_per_address: self.login_attempts_per_address,
            login_attempts_per_name: self.login_attempts_per_name,
            registrations_per_hour: self.registrations_per_hour,
            form_posts_per_minute: self.form_posts_per_minute,
            guest_session_ttl: Duration::from_secs(
                self.guest_session_days.clamp(1, self.session_days.max(1)) * 24 * 3600,
            ),
            public_hosts: self
                .public_hosts
                .iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Copies a single node's history and accounts (its SQLite file) into an empty
    /// PostgreSQL database, keeping every sequence number and the epoch, so the team can
    /// move to several nodes and connected clients recover across the move.
    Migrate {
        /// The SQLite file: `hearth.db` in the data directory.
        #[arg(long)]
        from: std::path::PathBuf,
        /// The PostgreSQL URL (`postgres://…`); its database must hold no history yet.
        #[arg(long)]
        to: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Memory,
}
