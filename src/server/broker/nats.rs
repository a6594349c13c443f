//! Several nodes on core NATS: each stored message and change goes to the other nodes as one
//! NATS message, a best-effort signal that the database has something new.
//!
//! Subjects are per room (`hearth.msg.<room>`, `hearth.chg.<room>`); every node subscribes to
//! all of them and hands what arrives to the room if it is in memory here. The payload is
//! JSON: the store's epoch and the message (or change) as the protocol sends it, so a room
//! gets exactly what its own node would have stored.
//!
//! Nothing here may hold a room up or be needed for correctness:
//! - [`Broker::publish`] runs on the room actor and only hands the payload to a bounded
//!   queue; when NATS is slow or away and the queue is full, the payload is dropped (and
//!   counted).
//! - NATS itself drops what a slow subscriber cannot take (a slow-consumer event).
//! - Each room keeps a cursor and fills any gap from the store; [`NatsLink::run`] also makes
//!   every room in memory check the store on each (re)connection, on each slow-consumer
//!   event, and on a timer, so a message whose signal was lost still arrives within one
//!   period.

use super::Broker;
use crate::protocol::{Change, ChatMessage};
use crate::server::hub::Hub;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// Every subject Hearth uses starts with this.
const PREFIX: &str = "hearth";

#[derive(Clone, Debug)]
pub struct NatsSettings {
    /// Payloads waiting to be published, and NATS messages waiting to be delivered here,
    /// before more are dropped.
    pub buffer: usize,
    /// How often every room in memory checks the store for what NATS did not bring.
    pub catch_up: Duration,
}

/// The sending half, called by room actors.
pub struct NatsBroker {
    epoch: u64,
    outgoing: mpsc::Sender<(String, Bytes)>,
    dropped: AtomicU64,
}

/// The connection's tasks, started with [`NatsLink::run`] once the hub exists.
pub struct NatsLink {
    client: async_nats::Client,
    epoch: u64,
    outgoing: mpsc::Receiver<(String, Bytes)>,
    wake: Arc<Notify>,
    settings: NatsSettings,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    epoch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<&'a ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<&'a Change>,
}

#[derive(Deserialize)]
struct Incoming {
    epoch: u64,
    #[serde(default)]
    msg: Option<ChatMessage>,
    #[serde(default)]
    change: Option<Change>,
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
        let broker = Arc::new(NatsBroker {
            epoch,
            outgoing: tx,
            dropped: AtomicU64::new(0),
        });
        let link = NatsLink {
            client,
            epoch,
            outgoing: rx,
            wake,
            settings,
        };
        Ok((broker, link))
    }

    /// Payloads dropped because the queue to NATS was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn hand_off(&self, subject: String, payload: &Outgoing<'_>) {
        let bytes = match serde_json::to_vec(payload) {
            Ok(bytes) => Bytes::from(bytes),
            Err(err) => return tracing::error!(%err, "encoding for NATS failed"),
        };
        if self.outgoing.try_send((subject, bytes)).is_err() {
            // The store has it; other nodes fill it from there.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Broker for NatsBroker {
    fn publish(&self, msg: &ChatMessage) {
        let payload = Outgoing {
            epoch: self.epoch,
            msg: Some(msg),
            change: None,
        };
        self.hand_off(format!("{PREFIX}.msg.{}", msg.room), &payload);
    }

    fn publish_change(&self, change: &Change) {
        let payload = Outgoing {
            epoch: self.epoch,
            msg: None,
            change: Some(change),
        };
        self.hand_off(format!("{PREFIX}.chg.{}", change.room), &payload);
    }
}

impl NatsLink {
    /// Starts publishing, receiving and the periodic catch-up, for as long as the process
    /// runs.
    pub fn run(self, hub: Arc<Hub>) {
        let NatsLink {
            client,
            epoch,
            mut outgoing,
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
        let receiver = hub.clone();
        tokio::spawn(async move {
            let mut subscription = loop {
                match client.subscribe(format!("{PREFIX}.>")).await {
                    Ok(subscription) => break subscription,
                    Err(err) => {
                        tracing::warn!(%err, "subscribing on NATS failed; trying again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            while let Some(message) = subscription.next().await {
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
                if let Some(msg) = incoming.msg {
                    receiver.deliver_remote(msg).await;
                }
                if let Some(change) = incoming.change {
                    receiver.deliver_remote_change(change).await;
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
                hub.catch_up_all();
            }
        });
    }
}
