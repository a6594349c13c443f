//! Command-line and environment settings for the `hearth` binary.
//!
//! Every default runs as-is on a first start: an in-process hub and store, no set-up step.
//! The listen address and site files come from Leptos's own settings (`LEPTOS_SITE_ADDR`,
//! `LEPTOS_SITE_ROOT`), which cargo-leptos fills in.

use crate::server::hub::HubConfig;
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
    /// Address to listen on; overrides LEPTOS_SITE_ADDR (default 127.0.0.1:3000).
    #[arg(long, env = "HEARTH_ADDR")]
    pub addr: Option<SocketAddr>,

    /// Directory for the SQLite database (`hearth.db`); created on first start.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "data")]
    pub data_dir: std::path::PathBuf,

    /// Where history lives: `sqlite` (a file under --data-dir) or `memory` (lost on exit).
    #[arg(long, env = "HEARTH_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,

    /// How long a person stays listed as online after their last tab closes, in milliseconds.
    #[arg(long, env = "HEARTH_PRESENCE_GRACE_MS", default_value_t = 3000)]
    pub presence_grace_ms: u64,

    /// Interval between heartbeats on each WebSocket, in milliseconds; a connection silent
    /// for three intervals is closed.
    #[arg(long, env = "HEARTH_HEARTBEAT_MS", default_value_t = 10_000)]
    pub heartbeat_ms: u64,

    /// Frames queued per connection before it is treated as a slow consumer and resynced.
    #[arg(long, env = "HEARTH_QUEUE_FRAMES", default_value_t = 512)]
    pub queue_frames: usize,

    /// Messages kept per room; older ones are deleted. 0 keeps everything (SQLite) or the
    /// newest 10,000 (memory store).
    #[arg(long, env = "HEARTH_RETAIN_MESSAGES", default_value_t = 0)]
    pub retain_messages: u64,
}

impl Config {
    pub fn hub(&self) -> HubConfig {
        HubConfig {
            queue_frames: self.queue_frames.max(1),
            presence_grace: Duration::from_millis(self.presence_grace_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms.max(100)),
            ..HubConfig::default()
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Memory,
}
