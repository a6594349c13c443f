//! A burst of logins against the real `hearth` binary: password hashing is bounded, so the
//! server's memory and thread count stay small and live chat keeps its acks.

mod common;

use common::process::{status_field, Hearth};
use common::{connect_to, Client};
use hearth::protocol::{ClientId, ClientMsg, RoomId, ServerMsg};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn send_and_ack(client: &mut Client, id: &str) -> Duration {
    let started = Instant::now();
    client
        .send(&ClientMsg::Send {
            room: RoomId("general".into()),
            client_id: ClientId(id.into()),
            text: format!("still here {id}"),
        })
        .await;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.recv())
            .await
            .expect("an ack within 10 s")
        {
            ServerMsg::Ack { client_id, .. } if client_id.0 == id => return started.elapsed(),
            ServerMsg::Error { message, .. } => panic!("send {id} refused: {message}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_logins_keep_memory_and_threads_bounded_and_chat_acked() {
    let server = Hearth::start(&[
        // Every login comes from its own address, so no per-address budget stops the burst
        // before it reaches the password hashing.
        ("HEARTH_TRUST_PROXY", "true"),
        ("RUST_LOG", "warn"),
    ])
    .await;
    let (addr, pid) = (server.addr, server.pid());

    let mut chat = connect_to(addr, "watcher", None).await;
    chat.join("general").await;
    let calm = send_and_ack(&mut chat, "calm").await;
    let rss_before = status_field(pid, "VmRSS:");

    let done = Arc::new(AtomicBool::new(false));
    let most_threads = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, most_threads) = (done.clone(), most_threads.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                most_threads.fetch_max(status_field(pid, "Threads:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let logins: Vec<_> = (0..200u32)
        .map(|i| {
            tokio::spawn(async move {
                let ip = std::net::Ipv4Addr::from(0x0a01_0000 + i).to_string();
                let body = common::form(&[("name", &format!("nobody{i}")), ("password", "guess")]);
                let reply = common::http(
                    addr,
                    "POST",
                    <hearth::api::Login as leptos::server_fn::ServerFn>::PATH,
                    Some(&body),
                    &[("Accept", "application/json"), ("X-Forwarded-For", &ip)],
                )
                .await;
                reply.status
            })
        })
        .collect();
    let mut acks = Vec::new();
    for i in 0..5 {
        acks.push(send_and_ack(&mut chat, &format!("busy{i}")).await);
    }
    let mut statuses = std::collections::BTreeMap::new();
    for login in logins {
        *statuses.entry(login.await.unwrap()).or_insert(0) += 1;
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak_growth_mib = status_field(pid, "VmHWM:").saturating_sub(rss_before) / 1024;
    let threads = most_threads.load(Ordering::Relaxed);
    println!(
        "statuses {statuses:?}; peak RSS growth {peak_growth_mib} MiB; most threads {threads}; \
         ack before {calm:?}, during {acks:?}"
    );
    assert!(
        statuses.keys().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.get(&401).is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(peak_growth_mib < 128, "peak RSS grew {peak_growth_mib} MiB");
    assert!(threads < 20, "the server ran {threads} threads");
}
