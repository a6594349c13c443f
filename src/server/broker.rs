//! The seam between this node's hub and other nodes.
//!
//! A room actor announces every message it stored with [`Broker::publish`], and every change
//! with [`Broker::publish_change`]; a broker that connects nodes forwards them, and the
//! receiving node hands them to [`crate::server::hub::Hub::deliver_remote`] (and
//! `deliver_remote_change`) so its own members see them. Sequence numbers come from the shared
//! store, so every node shows the same order. A broker may lose, repeat or reorder: each room
//! keeps a cursor (the last sequence number its members were sent, and the last `eseq` for
//! changes) and fills any gap from the store, and [`crate::server::hub::Hub::catch_up`] checks
//! the store with no broker message at all. The store is the truth, the broker only a signal.
//!
//! Presence is each node's own: a node lists the people connected to it (within the grace
//! period as before) and publishes that list per room; the other nodes show the union. A
//! node that stops renewing its lease in the database is declared down, and its people
//! leave (see [`nats`]).
//!
//! The embedded default is a single node, where there is nobody to forward to; [`nats`]
//! connects several.

pub mod nats;

use crate::protocol::{Change, ChatMessage, Person, RoomId};
use tungstenite::Utf8Bytes;

pub trait Broker: Send + Sync + 'static {
    /// This node's id among the nodes (random per process, below 2^63); 0 for a single node,
    /// which shares no presence.
    fn node(&self) -> u64 {
        0
    }
    /// Called when the people this node lists in `room` change, and again now and then:
    /// the whole list, under a version that only grows. Must not block.
    fn publish_presence(&self, _room: &RoomId, _version: u64, _people: &[Person]) {}
    /// A room started on this node: other nodes are asked to publish their people there.
    fn ask_presence(&self, _room: &RoomId) {}
    /// Called once per stored message, after its sequence number is known, with the frame
    /// its room sends (`frame`, already encoded): a receiving node forwards those bytes.
    /// Must not block: it runs on the room actor.
    fn publish(&self, msg: &ChatMessage, frame: &Utf8Bytes);
    /// Called once per stored change (edit, deletion, reaction), after its `eseq` is known;
    /// the receiving node hands it to [`crate::server::hub::Hub::deliver_remote_change`].
    fn publish_change(&self, change: &Change);
}

/// One process serves every connection: stored messages need no forwarding.
pub struct SingleNode;

impl Broker for SingleNode {
    fn publish(&self, _msg: &ChatMessage, _frame: &Utf8Bytes) {}
    fn publish_change(&self, _change: &Change) {}
}
