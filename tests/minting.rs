//! A stranger minting guests and rooms against the real `hearth` binary (SQLite store, the
//! default limits): the form budget per address and the room creation budgets stop the
//! minting, the server's memory and the home page stay small, and a conversation going on
//! meanwhile is delivered whole and in order.

mod common;

use common::process::Hearth;
use common::{connect_cookie, guest_cookie, http, try_call};
use hearth::api::{CreateRoom, SetName};
use hearth::protocol::{ClientId, ClientMsg, RoomId};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// What the attack got: guests and rooms it made, and posts refused.
#[derive(Default)]
struct Minted {
    guests: AtomicUsize,
    rooms: AtomicUsize,
    refused: AtomicUsize,
    without_cookie_made: AtomicUsize,
    resets: AtomicUsize,
}

impl Minted {
    /// Counts a refusal: an error status, or a connection the server reset (the cap on
    /// connections per address closes what it refuses).
    fn refused(&self, reply: std::io::Result<common::Reply>) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if reply.is_err() {
            self.resets.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One attacker: a new guest, a room with it, and a room without any cookie, over and over.
async fn mint(addr: SocketAddr, worker: usize, stop: Arc<AtomicBool>, minted: Arc<Minted>) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let name = format!("m{worker}x{i}");
        let guest = try_call::<SetName>(addr, &[("name", &name)], None).await;
        match guest {
            Ok(guest) if guest.status < 400 && guest.session_cookie().is_some() => {
                minted.guests.fetch_add(1, Ordering::Relaxed);
                let cookie = guest.session_cookie().unwrap_or_default();
                match try_call::<CreateRoom>(addr, &[("name", &name)], Some(&cookie)).await {
                    Ok(room) if room.status < 400 => {
                        minted.rooms.fetch_add(1, Ordering::Relaxed);
                    }
                    other => minted.refused(other),
                }
            }
            other => minted.refused(other),
        }
        let anonymous = try_call::<CreateRoom>(addr, &[("name", &format!("{name}n"))], None).await;
        match anonymous {
            Ok(reply) if reply.status < 400 => {
                minted.without_cookie_made.fetch_add(1, Ordering::Relaxed);
            }
            other => minted.refused(other),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minting_guests_and_rooms_from_one_address_is_bounded_and_chat_goes_on() {
    let server = Hearth::start(&[
        ("HEARTH_STORE", "sqlite"),
        // The conversation going on meanwhile is as fast as the test can make it.
        ("HEARTH_MESSAGE_RATE", "0"),
    ])
    .await;
    let addr = server.addr;
    // The people talking meanwhile arrive first: they share the attacker's address.
    let talker_cookie = guest_cookie(addr, "Talker").await;
    let watcher_cookie = guest_cookie(addr, "Watcher").await;
    let mut talker = connect_cookie(addr, &talker_cookie).await;
    let mut watcher = connect_cookie(addr, &watcher_cookie).await;
    talker.join("general").await;
    watcher.join("general").await;
    let home_before = http(addr, "GET", "/", None, &[]).await.body.len();
    let rss_before = server.rss();

    let stop = Arc::new(AtomicBool::new(false));
    let minted = Arc::new(Minted::default());
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(mint(addr, w, stop.clone(), minted.clone())))
        .collect();
    // Eight seconds of minting while one person talks and another listens.
    let started = Instant::now();
    let mut heard = Vec::new();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let id = format!("t{sent}");
        talker
            .send(&ClientMsg::Send {
                room: RoomId("general".into()),
                client_id: ClientId(id.clone()),
                text: format!("talk {sent}"),
            })
            .await;
        talker.acks(1).await;
        heard.push(watcher.next_message().await.text);
        sent += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let growth = server.rss().saturating_sub(rss_before);
    let home_after = http(addr, "GET", "/", None, &[]).await.body.len();
    let (guests, rooms) = (
        minted.guests.load(Ordering::Relaxed),
        minted.rooms.load(Ordering::Relaxed),
    );
    println!(
        "{guests} guests and {rooms} rooms minted, {} posts refused ({} reset), {} rooms made \
         without a cookie; RSS growth {:.1} MiB; home page {home_before} -> {home_after} bytes; {sent} \
         messages heard",
        minted.refused.load(Ordering::Relaxed),
        minted.resets.load(Ordering::Relaxed),
        minted.without_cookie_made.load(Ordering::Relaxed),
        growth as f64 / MIB as f64,
    );
    assert_eq!(
        minted.without_cookie_made.load(Ordering::Relaxed),
        0,
        "no room is made without a session"
    );
    // 30 form posts a minute per address, a burst of 30: over eight seconds at most 34 posts
    // get through, whatever they are.
    assert!(
        guests + rooms <= 34,
        "{guests} guests and {rooms} rooms got through the per-address form budget"
    );
    assert!(
        minted.refused.load(Ordering::Relaxed) > 0,
        "the flood was refused"
    );
    assert!(
        growth < 64 * MIB,
        "minting grew the server by {} MiB",
        growth / MIB
    );
    assert!(
        home_after < home_before + 16 * 1024,
        "the home page grew from {home_before} to {home_after} bytes"
    );
    let expected: Vec<String> = (0..sent).map(|i| format!("talk {i}")).collect();
    assert_eq!(
        heard, expected,
        "the conversation arrived whole and in order"
    );
}
