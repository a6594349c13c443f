//! A burst of logins against the real `hearth` binary: password hashing is bounded, so the
//! server's memory and thread count stay small and live chat keeps its acks.

mod common;

use common::{connect_to, Client};
use hearth::protocol::{ClientId, ClientMsg, RoomId, ServerMsg};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary as a child process, killed when dropped.
struct Hearth(Child);

impl Drop for Hearth {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A field of /proc/<pid>/status, as a number (kB for sizes).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

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
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (key, _) in std::env::vars() {
        if key.starts_with("HEARTH_") || key.starts_with("LEPTOS_") {
            command.env_remove(key);
        }
    }
    let child = command
        .env("HEARTH_ADDR", addr.to_string())
        .env("HEARTH_STORE", "memory")
        // Every login comes from its own address, so no per-address budget stops the burst
        // before it reaches the password hashing.
        .env("HEARTH_TRUST_PROXY", "true")
        .env("LEPTOS_OUTPUT_NAME", "hearth")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the hearth binary");
    let pid = child.id();
    let _server = Hearth(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "hearth did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

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
