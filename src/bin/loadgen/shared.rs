//! The state every connection task of a run shares: the run's settings, the phase it is in,
//! and the counters the report is made from. Counters are atomics, written by any task.

use crate::args::Protocol;
use hearth::protocol::RoomId;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    Setup,
    Send { start: Instant, end: Instant },
    Idle,
    Drain,
    Slow,
    Done,
}

/// State every connection task shares.
pub struct Shared {
    /// One guest session cookie (`hearth_session=…`) per connection (hearth protocol only).
    pub sessions: Vec<String>,
    pub protocol: Protocol,
    pub url: String,
    pub addr: SocketAddr,
    /// A second node: connections with an odd index go there.
    pub also: Option<(String, SocketAddr)>,
    pub rooms: usize,
    pub senders: usize,
    pub sender_period: Duration,
    pub size: usize,
    pub connections: usize,
    pub slow: usize,
    /// Connections `senders..senders + typists` send `typing` frames every `typing_every`.
    pub typists: usize,
    pub typing_every: Duration,
    pub typing_sent: AtomicU64,
    /// Distinguishes this run's tokens and client ids from earlier runs against the same server.
    pub tag: String,
    pub base: Instant,
    pub phase: watch::Sender<Phase>,
    pub ready: AtomicUsize,
    pub failed: AtomicUsize,
    /// Fast (not `--slow`) connections established per room.
    pub members: Vec<AtomicU64>,
    pub slow_ok: AtomicUsize,
    pub slow_done: AtomicUsize,
    pub sent_by_sender: Vec<AtomicU64>,
    /// Messages each sender sends in total (`--rate` × `--duration`, split evenly).
    pub quota: Vec<u64>,
    /// Senders that are connected, and senders that have stopped sending.
    pub senders_active: AtomicUsize,
    pub senders_done: AtomicUsize,
    pub resyncs: AtomicU64,
    pub unrecovered: AtomicU64,
    pub server_errors: AtomicU64,
    pub early_closes: AtomicU64,
    pub send_failures: AtomicU64,
}

impl Shared {
    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    pub fn room_id(&self, room: usize) -> RoomId {
        RoomId(format!("bench-{room}"))
    }

    pub fn room_of(&self, idx: usize) -> usize {
        idx % self.rooms
    }

    /// Messages sent so far by the senders of `room`.
    fn sent_in_room(&self, room: usize) -> u64 {
        (room..self.senders)
            .step_by(self.rooms)
            .map(|s| self.sent_by_sender[s].load(Ordering::Relaxed))
            .sum()
    }

    pub fn expected(&self) -> u64 {
        (0..self.rooms)
            .map(|r| self.sent_in_room(r) * self.members[r].load(Ordering::Relaxed))
            .sum()
    }
}
