//! Several nodes on core NATS: each stored message and change goes to the other nodes as one
//! NATS message, a best-effort signal that the database has something new.
//!
//! Subjects are per room: `hearth.msg.<room>` (a stored message), `hearth.chg.<room>` (a
//! change), `hearth.pre.<room>` (one node's list of who is online there), `hearth.ask.<room>`
//! (a node that just started the room asks for those lists); `hearth.acc` carries permission
//! changes. Every node subscribes to all of them and hands what arrives to the room if it is
//! in memory here. A message's payload is a header line (epoch, seq, node) and the frame the
//! storing node's room sent, which the other nodes forward as it is; the others are JSON
//! with the sender's node id and the store's epoch. Anything of another epoch (a node on
//! another database) is ignored.
//!
//! Nothing here may hold a room up or be needed for correctness:
//! - [`Broker::publish`] runs on the room actor and only hands the payload to a bounded
//!   queue; when NATS is slow or away and the queue is full, the payload is dropped (counted,
//!   and logged every third of the lease).
//! - NATS itself drops what a slow subscriber cannot take (a slow-consumer event).
//! - Each room keeps a cursor and fills any gap from the store; [`NatsLink::run`] also reads
//!   the latest numbers of every room in memory (one query, [`Hub::catch_up_all`]) on each
//!   (re)connection, on each slow-consumer event and on a timer, and a room that is behind
//!   fills in, so a message whose signal was lost still arrives within one period.

use super::Broker;
use crate::on_db;
use crate::protocol::{Change, ChatMessage, Person, RoomId, ServerMsg};
use crate::server::accounts::{AccessNews, Accounts};
use crate::server::db::Db;
use crate::server::hub::Hub;
use crate::server::store::StoreError;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tungstenite::Utf8Bytes;

/// Every subject Hearth uses starts with this.
const PREFIX: &str = "hearth";
/// Stored messages' subjects start with this; the rest carry JSON envelopes.
const MESSAGES: &str = "hearth.msg.";

#[derive(Clone, Debug)]
pub struct NatsSettings {
    /// Payloads waiting to be published, and NATS messages waiting to be delivered here,
    /// before more are dropped.
    pub buffer: usize,
    /// How often the rooms in memory are checked against the store for what NATS did not
    /// bring.
    pub catch_up: Duration,
    /// A node that has not renewed its lease in the database for this long is down, and its
    /// people leave. Renewed (and every room's list republished) every third of it.
    pub lease: Duration,
}

/// The sending half, called by room actors.
pub struct NatsBroker {
    node: u64,
    epoch: u64,
    outgoing: mpsc::Sender<(String, Bytes)>,
    /// Payloads dropped because the queue to NATS was full; the lease check logs it.
    dropped: Arc<AtomicU64>,
}

/// The connection's tasks, started with [`NatsLink::run`] once the hub exists.
pub struct NatsLink {
    client: async_nats::Client,
    node: u64,
    epoch: u64,
    outgoing: mpsc::Receiver<(String, Bytes)>,
    dropped: Arc<AtomicU64>,
    wake: Arc<Notify>,
    settings: NatsSettings,
}

#[derive(Serialize, Default)]
struct Outgoing<'a> {
    node: u64,
    epoch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<&'a Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence: Option<PresenceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ask: Option<&'a RoomId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access: Option<&'a AccessNews>,
}

#[derive(Serialize)]
struct PresenceOut<'a> {
    room: &'a RoomId,
    version: u64,
    people: &'a [Person],
}

#[derive(Deserialize)]
struct Incoming {
    node: u64,
    epoch: u64,
    #[serde(default)]
    change: Option<Change>,
    #[serde(default)]
    presence: Option<PresenceIn>,
    #[serde(default)]
    ask: Option<RoomId>,
    #[serde(default)]
    access: Option<AccessNews>,
}

#[derive(Deserialize)]
struct PresenceIn {
    room: RoomId,
    version: u64,
    people: Vec<Person>,
}

impl NatsBroker {
    /// Connects to NATS at `url`. A server that is not up yet is retried in the background:
    /// the node serves meanwhile, and its rooms catch up from the store.
    pub async fn connect(
        url: &str,
        epoch: u64,
        settings: NatsSettings,
    ) -> Result<(Arc<NatsBroker>, NatsLink), async_nats::ConnectError> {
        let wake = Arc::new(Notify::new());
        let on_event = wake.clone();
        let buffer = settings.buffer.max(1);
        let client = async_nats::ConnectOptions::new()
            .name("hearth")
            // A node's own messages are already delivered by its rooms.
            .no_echo()
            .subscription_capacity(buffer)
            .retry_on_initial_connect()
            // NATS coming back is noticed within a second, not after the default backoff.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).clamp(100, 1000))
            })
            .event_callback(move |event| {
                let wake = on_event.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("connected to NATS; rooms catch up from the store");
                            wake.notify_one();
                        }
                        async_nats::Event::SlowConsumer(_) => {
                            tracing::warn!("NATS dropped messages for this node; rooms catch up");
                            wake.notify_one();
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("lost NATS; rooms keep checking the store")
                        }
                        other => tracing::info!(event = %other, "NATS"),
                    }
                }
            })
            .connect(url)
            .await?;
        let (tx, rx) = mpsc::channel(buffer);
        let dropped = Arc::new(AtomicU64::new(0));
        // Random per process: a restarted node is a new node, whose lists start afresh.
        let node = loop {
            let node = getrandom::u64().map_err(std::io::Error::other)? >> 1;
            if node != 0 {
                break node;
            }
        };
        let broker = Arc::new(NatsBroker {
            node,
            epoch,
            outgoing: tx,
            dropped: dropped.clone(),
        });
        let link = NatsLink {
            client,
            node,
            epoch,
            outgoing: rx,
            dropped,
            wake,
            settings,
        };
        Ok((broker, link))
    }

    fn hand_off(&self, subject: String, payload: &Outgoing<'_>) {
        match serde_json::to_vec(payload) {
            Ok(bytes) => self.send(subject, Bytes::from(bytes)),
            Err(err) => tracing::error!(%err, "encoding for NATS failed"),
        }
    }

    fn send(&self, subject: String, bytes: Bytes) {
        if self.outgoing.try_send((subject, bytes)).is_err() {
            // The store has it; other nodes fill it from there.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Broker for NatsBroker {
    fn node(&self) -> u64 {
        self.node
    }

    fn publish(&self, msg: &ChatMessage, frame: &Utf8Bytes) {
        let header = format!("{} {} {}\n", self.epoch, msg.seq.0, self.node);
        let mut payload = Vec::with_capacity(header.len() + frame.len());
        payload.extend_from_slice(header.as_bytes());
        payload.extend_from_slice(frame.as_bytes());
        self.send(format!("{PREFIX}.msg.{}", msg.room), Bytes::from(payload));
    }

    fn publish_change(&self, change: &Change) {
        let payload = Outgoing {
            change: Some(change),
            ..self.envelope()
        };
        self.hand_off(format!("{PREFIX}.chg.{}", change.room), &payload);
    }

    fn publish_presence(&self, room: &RoomId, version: u64, people: &[Person]) {
        let payload = Outgoing {
            presence: Some(PresenceOut {
                room,
                version,
                people,
            }),
            ..self.envelope()
        };
        self.hand_off(format!("{PREFIX}.pre.{room}"), &payload);
    }

    fn ask_presence(&self, room: &RoomId) {
        let payload = Outgoing {
            ask: Some(room),
            ..self.envelope()
        };
        self.hand_off(format!("{PREFIX}.ask.{room}"), &payload);
    }
}

impl NatsBroker {
    /// Tells the other nodes what their cached permissions must follow (installed as the
    /// accounts' announcer).
    pub fn publish_access(&self, news: &AccessNews) {
        let payload = Outgoing {
            access: Some(news),
            ..self.envelope()
        };
        self.hand_off(format!("{PREFIX}.acc"), &payload);
    }

    fn envelope(&self) -> Outgoing<'static> {
        Outgoing {
            node: self.node,
            epoch: self.epoch,
            ..Outgoing::default()
        }
    }
}

impl NatsLink {
    /// Starts publishing, receiving, the periodic catch-up and this node's lease in `db`,
    /// for as long as the process runs.
    pub async fn run(
        self,
        hub: Arc<Hub>,
        db: Db,
        accounts: Arc<Accounts>,
    ) -> Result<(), StoreError> {
        let NatsLink {
            client,
            node,
            epoch,
            mut outgoing,
            dropped,
            wake,
            settings,
        } = self;
        let publisher = client.clone();
        tokio::spawn(async move {
            while let Some((subject, payload)) = outgoing.recv().await {
                if let Err(err) = publisher.publish(subject, payload).await {
                    tracing::warn!(%err, "publishing to NATS failed; other nodes catch up");
                }
            }
        });
        // Nodes this one has heard presence from: each is checked against the leases.
        let heard: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let leases = Leases {
            db,
            node,
            lease: settings.lease,
            dropped,
            reported: 0,
        };
        leases.renew().await?;
        leases.spawn(hub.clone(), heard.clone(), accounts.clone());
        let receiver = hub.clone();
        let mut subscription = client
            .subscribe(format!("{PREFIX}.>"))
            .await
            .map_err(|e| StoreError::Unavailable(format!("subscribing on NATS failed: {e}")))?;
        // Serves only once the server has the subscription (when NATS is up), so nothing
        // announced after this node answers is missed; a NATS that is down holds nothing up.
        if tokio::time::timeout(Duration::from_secs(2), client.flush())
            .await
            .is_err()
        {
            tracing::warn!("NATS is not answering yet; serving anyway, rooms catch up");
        }
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                if message.subject.starts_with(MESSAGES) {
                    match decode_message(message.payload, epoch) {
                        Ok(Some((msg, frame))) => receiver.deliver_remote(msg, Some(frame)).await,
                        Ok(None) => {}
                        Err(err) => tracing::warn!(%err, "unreadable message from NATS"),
                    }
                    continue;
                }
                let incoming: Incoming = match serde_json::from_slice(&message.payload) {
                    Ok(incoming) => incoming,
                    Err(err) => {
                        tracing::warn!(%err, subject = %message.subject, "unreadable NATS message");
                        continue;
                    }
                };
                if incoming.epoch != epoch {
                    tracing::warn!(
                        theirs = incoming.epoch,
                        ours = epoch,
                        "a node of another history shares this NATS; ignoring it"
                    );
                    continue;
                }
                if let Some(change) = incoming.change {
                    receiver.deliver_remote_change(change).await;
                }
                if let Some(list) = incoming.presence {
                    heard
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(incoming.node);
                    receiver
                        .deliver_remote_presence(
                            &list.room,
                            incoming.node,
                            list.version,
                            list.people,
                        )
                        .await;
                }
                if let Some(room) = incoming.ask {
                    receiver.share_presence(&room).await;
                }
                if let Some(news) = incoming.access {
                    // It may read the database: the rooms' messages do not wait for it.
                    let accounts = accounts.clone();
                    tokio::spawn(async move { accounts.apply(news).await });
                }
            }
            tracing::error!("the NATS subscription ended; rooms rely on catching up");
        });
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(settings.catch_up.max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = wake.notified() => {}
                }
                hub.catch_up_all().await;
            }
        });
        Ok(())
    }
}

/// A stored message as another node published it: a header line (`<epoch> <seq> <node>`),
/// then the frame that node's room sent, which is forwarded as it is. `None` for a message
/// of another history.
fn decode_message(payload: Bytes, epoch: u64) -> Result<Option<(ChatMessage, Utf8Bytes)>, String> {
    let end = payload
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let header = std::str::from_utf8(&payload[..end]).map_err(|e| e.to_string())?;
    let mut fields = header.split(' ').map(str::parse::<u64>);
    let (Some(Ok(theirs)), Some(Ok(seq))) = (fields.next(), fields.next()) else {
        return Err(format!("bad header {header:?}"));
    };
    if theirs != epoch {
        tracing::warn!(
            theirs,
            ours = epoch,
            "a node of another history shares this NATS"
        );
        return Ok(None);
    }
    let frame = Utf8Bytes::try_from(payload.slice(end + 1..)).map_err(|e| e.to_string())?;
    match serde_json::from_str::<ServerMsg>(frame.as_str()) {
        Ok(ServerMsg::Message(msg)) if msg.seq.0 == seq => Ok(Some((msg, frame))),
        Ok(_) => Err(format!("the frame is not message {seq}")),
        Err(err) => Err(err.to_string()),
    }
}

/// This node's lease in the database (table `nodes`, PostgreSQL's clock), and the check of
/// the other nodes' leases.
struct Leases {
    db: Db,
    node: u64,
    lease: Duration,
    /// The broker's count of payloads dropped, and how many were already reported.
    dropped: Arc<AtomicU64>,
    reported: u64,
}

impl Leases {
    async fn renew(&self) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO nodes (id, seen_at) VALUES ($1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT) \
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            )
            .bind(self.node as i64)
            .execute(pool)
            .await?;
            // Rows of nodes long gone (every restart is a new node).
            sqlx::query(
                "DELETE FROM nodes \
                 WHERE seen_at < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - 86400000",
            )
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Says how many payloads the full queue to NATS dropped since the last report.
    fn report_dropped(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.reported {
            tracing::warn!(
                dropped = dropped - self.reported,
                "the queue to NATS was full: payloads were dropped (other nodes read those \
                 messages from the database; HEARTH_BROKER_BUFFER sets the queue's size)"
            );
            self.reported = dropped;
        }
    }

    /// The nodes whose lease is current, this one included.
    async fn alive(&self) -> Result<HashSet<u64>, crate::server::store::StoreError> {
        let ids: Vec<i64> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM nodes \
                 WHERE seen_at >= (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - $1",
            )
            .bind(self.lease.as_millis() as i64)
            .fetch_all(pool)
            .await?
        });
        Ok(ids.into_iter().map(|id| id as u64).collect())
    }

    /// Every third of the lease: renews it, declares down every node heard from whose lease
    /// has run out (its people leave), republishes every room's list, and ends connections
    /// of sessions that ended elsewhere (in case their announcement was lost).
    fn spawn(mut self, hub: Arc<Hub>, heard: Arc<Mutex<HashSet<u64>>>, accounts: Arc<Accounts>) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval((self.lease / 3).max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(err) = self.renew().await {
                    tracing::warn!(%err, "renewing this node's lease failed");
                }
                match self.alive().await {
                    Ok(alive) => {
                        let down: Vec<u64> = {
                            let mut heard = heard.lock().unwrap_or_else(|p| p.into_inner());
                            let down = heard
                                .iter()
                                .filter(|n| !alive.contains(n))
                                .copied()
                                .collect();
                            heard.retain(|n| alive.contains(n));
                            down
                        };
                        for node in down {
                            tracing::warn!(node, "a node's lease ran out; its people leave");
                            hub.node_down(node).await;
                        }
                    }
                    Err(err) => tracing::warn!(%err, "reading the nodes' leases failed"),
                }
                hub.share_presence_all();
                self.report_dropped();
                if let Err(err) = accounts.check_live_sessions().await {
                    tracing::warn!(%err, "checking live sessions against the database failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RoomId, Seq};

    fn published(epoch: u64, seq: u64, frame_seq: u64) -> Bytes {
        let msg = ChatMessage {
            room: RoomId("r".into()),
            seq: Seq(frame_seq),
            text: "hello".into(),
            ..Default::default()
        };
        let frame = Utf8Bytes::from(ServerMsg::Message(msg).encode());
        Bytes::from(format!("{epoch} {seq} 7\n{}", frame.as_str()))
    }

    #[test]
    fn a_published_message_is_forwarded_as_its_frame_and_checked() {
        let (msg, frame) = decode_message(published(5, 3, 3), 5).unwrap().unwrap();
        assert_eq!((msg.seq, msg.text.as_str()), (Seq(3), "hello"));
        assert!(frame.as_str().starts_with('{') && frame.as_str().contains("hello"));
        // Another history's message is ignored; a header that does not match its frame, or
        // no header at all, is an error.
        assert_eq!(decode_message(published(6, 3, 3), 5).unwrap(), None);
        assert!(decode_message(published(5, 4, 3), 5).is_err());
        assert!(decode_message(Bytes::from_static(b"{}"), 5).is_err());
    }
}
