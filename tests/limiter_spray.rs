//! A spray of 100,000 forwarded addresses against a per-address limit: the limiter's memory
//! stays bounded and its per-request cost flat. In a file of its own, so no other test's
//! allocations share the process whose RSS it reads.

mod common;

use common::{no_limits, quick_config, start_secured};
use hearth::server::limits::SecurityConfig;
use hearth::server::store::MemoryStore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Sends WebSocket upgrade requests without a session, each from its own forwarded
/// address, over one keep-alive connection, and checks each is answered 401 (counted by
/// the upgrade limit, then refused for having no session).
async fn upgrades_from(addr: SocketAddr, ips: std::ops::Range<u32>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    for i in ips {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive, Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: {ip}\r\n\r\n"
        );
        write.write_all(request.as_bytes()).await.unwrap();
        line.clear();
        read.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 401"), "{ip}: {line:?}");
        let mut length = 0usize;
        loop {
            line.clear();
            read.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await.unwrap();
    }
}

/// 100,000 distinct addresses, each counted once by a per-address limit whose buckets stay
/// far from full (one upgrade a minute): the limiter's memory stays bounded and the last
/// requests cost what the first did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_forwarded_addresses_keep_memory_bounded_and_cost_flat() {
    let server = start_secured(
        Arc::new(MemoryStore::new(7, 10_000)),
        quick_config(),
        SecurityConfig {
            trust_proxy: true,
            upgrades_per_minute: 1,
            ..no_limits()
        },
    )
    .await;
    const BATCH: u32 = 10_000;
    const CONNECTIONS: u32 = 8;
    let before = rss_kib();
    let mut batch_times = Vec::new();
    let started = Instant::now();
    for batch in 0..10 {
        let t = Instant::now();
        let per = BATCH / CONNECTIONS;
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let first = batch * BATCH + c * per;
                tokio::spawn(upgrades_from(server.addr, first..first + per))
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        batch_times.push(t.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "per-request cost grew: batches took {batch_times:?}"
        );
    }
    let growth_mib = rss_kib().saturating_sub(before) / 1024;
    println!("batches of {BATCH}: {batch_times:?}; RSS growth {growth_mib} MiB");
    // Flat cost: the fastest of the last three batches is no slower than four times the
    // slowest of the first three (a map scanned whole per request makes the later ones many
    // times slower); one batch slowed by a busy host cannot fail it.
    let first = batch_times[..3].iter().max().copied().unwrap_or_default();
    let last = batch_times[7..].iter().min().copied().unwrap_or_default();
    assert!(
        last < first * 4,
        "the last batches took at least {last:?} each, the first at most {first:?}"
    );
    assert!(growth_mib < 64, "RSS grew {growth_mib} MiB");
}
