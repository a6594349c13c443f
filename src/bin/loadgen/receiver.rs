//! What one connection makes of the frames it reads: which deliveries are new, duplicate or
//! not this run's, their latency, and (Hearth) where the room's sequence stands, so a resync
//! asks for exactly what is missing.

use crate::args::Protocol;
use crate::hearth::{control, frame_type, hearth_join, hearth_message};
use crate::payload::parse_payload;
use crate::seen::{Insert, Seen};
use crate::shared::Shared;
use crate::stats::with_stats;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What one connection knows about its room and its peers' messages.
pub struct Receiver {
    pub slow: bool,
    pub room: usize,
    pub room_name: String,
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
            Protocol::Hearth => match frame_type(text) {
                Some("message") => {
                    if let Some((seq, body)) = hearth_message(text) {
                        if seq > self.seq_base {
                            let _ = self.seqs.insert(seq - self.seq_base - 1);
                        }
                        self.deliver(sh, body, now_us);
                    }
                    Reply::None
                }
                Some("ack") | Some("presence") | Some("pong") | Some("welcome") => Reply::None,
                Some("ping") => Reply::Send("{\"type\":\"pong\"}".into()),
                Some("resync") => {
                    sh.resyncs.fetch_add(1, Ordering::Relaxed);
                    let since = self.seq_base + self.seqs.gapless();
                    Reply::Send(hearth_join(&self.room_name, Some((since, self.epoch))))
                }
                Some("joined") => {
                    if let Some(c) = control(text) {
                        if c.recovered == Some(false) {
                            sh.unrecovered.fetch_add(1, Ordering::Relaxed);
                            self.unrecoverable = true;
                            // A real client reloads the newest window here; continue from
                            // the room's head so later replays are not refused as well.
                            self.seq_base = c.last_seq.unwrap_or(0).max(self.seq_base);
                            self.seqs = Seen::default();
                        }
                        if let Some(epoch) = c.epoch {
                            self.epoch = epoch;
                        }
                    }
                    Reply::None
                }
                Some("error") => {
                    let n = sh.server_errors.fetch_add(1, Ordering::Relaxed);
                    if n < 5 {
                        let c = control(text);
                        eprintln!(
                            "hearth-loadgen: server error {}: {}",
                            c.as_ref().and_then(|c| c.code.as_deref()).unwrap_or("?"),
                            c.as_ref()
                                .and_then(|c| c.message.as_deref())
                                .unwrap_or(text)
                        );
                    }
                    Reply::None
                }
                _ => Reply::None,
            },
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
