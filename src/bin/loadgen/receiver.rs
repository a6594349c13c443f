//! What one connection makes of the frames it reads: which deliveries are new, duplicate or
//! not this run's, their latency, and (Hearth) where the room's sequence stands, so a resync
//! asks for exactly what is missing.

use crate::args::Protocol;
use crate::hearth_wire::{self, Kind};
use crate::payload::parse_payload;
use crate::seen::{Insert, Seen};
use crate::shared::Shared;
use crate::stats::with_stats;
use hearth::protocol::{ClientMsg, RoomId, Seq, ServerMsg};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What one connection knows about its room and its peers' messages.
pub struct Receiver {
    pub slow: bool,
    pub room: usize,
    pub room_id: RoomId,
    /// Indexed by the sender's position within the room (`sender / rooms`).
    pub seen: Vec<Seen>,
    /// Hearth: the room's `last_seq` when this connection joined (or gave up on a gap).
    pub seq_base: u64,
    /// Hearth: sequence numbers seen after `seq_base` (offset by `seq_base + 1`). A rejoin
    /// asks for everything after the highest *gapless* one, so a second `resync` that comes
    /// before the first replay cannot skip the gap.
    pub seqs: Seen,
    pub epoch: u64,
    pub heartbeat: Duration,
    pub unique: u64,
    pub dups: u64,
    /// Set once a rejoin answered `recovered: false`: the gap cannot be filled.
    pub unrecoverable: bool,
}

/// What to do after reading a frame.
pub enum Reply {
    None,
    Send(String),
    Close,
}

impl Receiver {
    /// Counts one delivery of a payload: new or duplicate, with its latency.
    fn deliver(&mut self, sh: &Shared, payload: &str, now_us: u64) {
        let Some((sender, counter, sent_us)) = parse_payload(payload, &sh.tag) else {
            return;
        };
        if sender >= sh.senders || sender % sh.rooms != self.room {
            return;
        }
        let Some(seen) = self.seen.get_mut(sender / sh.rooms) else {
            return;
        };
        let new = match seen.insert(counter) {
            Insert::New => true,
            Insert::Dup => false,
            Insert::Bogus => return,
        };
        if self.slow {
            if new {
                self.unique += 1;
            } else {
                self.dups += 1;
            }
            return;
        }
        with_stats(|s| {
            if new {
                s.unique += 1;
                s.hist
                    .saturating_record(now_us.saturating_sub(sent_us).max(1));
                s.last_us = s.last_us.max(now_us);
            } else {
                s.dups += 1;
            }
        });
    }

    pub fn on_frame(&mut self, sh: &Shared, text: &str) -> Reply {
        let now_us = sh.now_us();
        match sh.protocol {
            Protocol::Raw => {
                self.deliver(sh, text, now_us);
                Reply::None
            }
            Protocol::Socketio => {
                if let Some(rest) = text.strip_prefix("42[\"chat\",\"") {
                    if let Some(payload) = rest.strip_suffix("\"]") {
                        self.deliver(sh, payload, now_us);
                    }
                    Reply::None
                } else if text == "2" {
                    Reply::Send("3".into())
                } else if text == "1" || text.starts_with("41") {
                    Reply::Close
                } else {
                    Reply::None
                }
            }
            Protocol::Hearth => self.on_hearth_frame(sh, text, now_us),
        }
    }

    fn on_hearth_frame(&mut self, sh: &Shared, text: &str, now_us: u64) -> Reply {
        let Some(frame) = hearth_wire::read(text) else {
            return Reply::None;
        };
        match frame.kind {
            Kind::Message => {
                if let Some(Seq(seq)) = frame.seq {
                    if seq > self.seq_base {
                        let _ = self.seqs.insert(seq - self.seq_base - 1);
                    }
                    self.deliver(sh, &frame.text, now_us);
                }
                Reply::None
            }
            Kind::Ping => Reply::Send(hearth_wire::encode(&ClientMsg::Pong)),
            Kind::Resync => {
                sh.resyncs.fetch_add(1, Ordering::Relaxed);
                let since = Seq(self.seq_base + self.seqs.gapless());
                Reply::Send(hearth_wire::join(&self.room_id, Some((since, self.epoch))))
            }
            Kind::Joined => {
                if let Some(ServerMsg::Joined {
                    last_seq,
                    epoch,
                    recovered,
                    ..
                }) = hearth_wire::decode(text)
                {
                    if !recovered {
                        sh.unrecovered.fetch_add(1, Ordering::Relaxed);
                        self.unrecoverable = true;
                        // A real client reloads the newest window here; continue from the
                        // room's head so later replays are not refused as well.
                        self.seq_base = last_seq.0.max(self.seq_base);
                        self.seqs = Seen::default();
                    }
                    self.epoch = epoch;
                }
                Reply::None
            }
            Kind::Error => {
                if sh.server_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    match hearth_wire::decode(text) {
                        Some(ServerMsg::Error { code, message, .. }) => {
                            eprintln!("hearth-loadgen: server error {code:?}: {message}")
                        }
                        _ => eprintln!("hearth-loadgen: server error: {text}"),
                    }
                }
                Reply::None
            }
            Kind::Welcome | Kind::Left | Kind::Presence | Kind::Ack | Kind::Pong | Kind::Other => {
                Reply::None
            }
        }
    }

    /// True when this connection has every message sent to its room (after sending ended).
    pub fn complete(&self, sh: &Shared) -> bool {
        self.seen.iter().enumerate().all(|(k, seen)| {
            let sender = k * sh.rooms + self.room;
            seen.count() >= sh.sent_by_sender[sender].load(Ordering::Relaxed)
        })
    }
}
