//! The run's phases: guest sessions (Hearth), connect at the `--ramp` rate, send for
//! `--duration`, drain, let slow connections catch up, collect the outcomes into a report.
//! Every phase has a time limit, so a run always ends.

use crate::args::{Args, Protocol};
use crate::conn::{run_conn, Outcome, SETUP_TIMEOUT};
use crate::procfs::{cpu_seconds, machine_ticks, rss_kib, steal_pct};
use crate::report::Report;
use crate::session::guest_sessions;
use crate::shared::{Phase, Shared};
use crate::stats::{merged_stats, unique_so_far};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How long slow connections get to catch up once they read again.
const SLOW_PHASE_LIMIT: Duration = Duration::from_secs(30);

pub async fn run(
    args: Args,
    url: String,
    addr: SocketAddr,
    also: Option<(String, SocketAddr)>,
) -> Report {
    let rooms = if args.protocol == Protocol::Hearth {
        args.rooms.max(1)
    } else {
        1
    };
    let (phase, _) = watch::channel(Phase::Setup);
    let senders = args.senders;
    let sender_period = if senders == 0 || args.rate <= 0.0 {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs_f64((senders as f64 / args.rate).max(1e-6))
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let total = if args.idle {
        0
    } else {
        (args.rate * args.duration).round() as u64
    };
    let quota = (0..senders as u64)
        .map(|s| total / senders as u64 + u64::from(s < total % senders as u64))
        .collect();
    let tag = to_base36((nanos ^ ((std::process::id() as u64) << 40)) % 36u64.pow(4));
    // Taken before the sessions exist, so what they cost the server counts per connection.
    let rss_before = args.server_pid.and_then(rss_kib);
    // People have their sessions before they open the app: they are made first, and the
    // ramp below measures connecting, not signing up.
    let sessions = if args.protocol == Protocol::Hearth {
        match guest_sessions(addr, args.connections, &tag).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hearth-loadgen: could not create guest sessions: {e}");
                std::process::exit(1);
            }
        }
    } else {
        Vec::new()
    };
    let sh = Arc::new(Shared {
        sessions,
        protocol: args.protocol,
        url,
        addr,
        also,
        rooms,
        senders,
        sender_period,
        size: args.size,
        connections: args.connections,
        slow: if args.idle { 0 } else { args.slow },
        typists: if args.idle { 0 } else { args.typists },
        typing_every: Duration::from_secs_f64(args.typing_every),
        typing_sent: AtomicU64::new(0),
        tag,
        base: Instant::now(),
        phase,
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        members: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
        slow_ok: AtomicUsize::new(0),
        slow_done: AtomicUsize::new(0),
        sent_by_sender: (0..senders).map(|_| AtomicU64::new(0)).collect(),
        quota,
        senders_active: AtomicUsize::new(0),
        senders_done: AtomicUsize::new(0),
        resyncs: AtomicU64::new(0),
        unrecovered: AtomicU64::new(0),
        server_errors: AtomicU64::new(0),
        early_closes: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
    });

    // Connect, at most `--ramp` per second.
    let n = args.connections;
    let ramp_time = Duration::from_secs_f64(n as f64 / args.ramp);
    let spawner = {
        let sh = sh.clone();
        let gap = Duration::from_secs_f64(1.0 / args.ramp);
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(n);
            let mut t = tokio::time::interval(gap);
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            for idx in 0..n {
                t.tick().await;
                handles.push(tokio::spawn(run_conn(sh.clone(), idx)));
            }
            handles
        })
    };
    let setup_deadline = Instant::now() + ramp_time + SETUP_TIMEOUT + Duration::from_secs(5);
    while sh.ready.load(Ordering::Acquire) + sh.failed.load(Ordering::Relaxed) < n
        && Instant::now() < setup_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let presence announcements of the last joins drain before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let duration = Duration::from_secs_f64(args.duration);
    let (cpu_start, wall_start) = (cpu_seconds(), Instant::now());
    let ticks_start = machine_ticks();
    let send_start;
    let rss_after;
    if args.idle {
        send_start = Instant::now();
        sh.phase.send_replace(Phase::Idle);
        tokio::time::sleep(duration).await;
        rss_after = args.server_pid.and_then(rss_kib);
    } else {
        send_start = Instant::now() + Duration::from_millis(20);
        let end = send_start + duration;
        sh.phase.send_replace(Phase::Send {
            start: send_start,
            end,
        });
        tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
        // Senders behind schedule get up to a second more to send their last messages.
        let late = end + Duration::from_secs(1);
        while sh.senders_done.load(Ordering::Acquire) < sh.senders_active.load(Ordering::Relaxed)
            && Instant::now() < late
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sh.phase.send_replace(Phase::Drain);
        // Wait for deliveries, at most `--drain`.
        let drain_end = Instant::now() + Duration::from_secs_f64(args.drain);
        while Instant::now() < drain_end && unique_so_far() < sh.expected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rss_after = args.server_pid.and_then(rss_kib);
    }
    let cpu_pct =
        100.0 * (cpu_seconds() - cpu_start) / wall_start.elapsed().as_secs_f64().max(1e-3);
    let steal_pct = steal_pct(ticks_start, machine_ticks());

    if sh.slow > 0 && !args.idle {
        sh.phase.send_replace(Phase::Slow);
        let limit = Instant::now() + SLOW_PHASE_LIMIT;
        while Instant::now() < limit
            && sh.slow_done.load(Ordering::Acquire) < sh.slow_ok.load(Ordering::Relaxed)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sh.phase.send_replace(Phase::Done);

    // Collect the connections' outcomes; a task that does not end in time counts as failed.
    let mut outcomes = Vec::with_capacity(n);
    let collect_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    if let Ok(Ok(handles)) = tokio::time::timeout_at(collect_deadline, spawner).await {
        for h in handles {
            let abort = h.abort_handle();
            match tokio::time::timeout_at(collect_deadline, h).await {
                Ok(Ok(o)) => outcomes.push(o),
                Ok(Err(_)) => {}
                Err(_) => abort.abort(),
            }
        }
    }

    let stats = merged_stats();
    let sent: u64 = sh
        .sent_by_sender
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .sum();
    let expected = sh.expected();
    let connections_ok = outcomes.iter().filter(|o| o.survived).count();
    let slow: Vec<&Outcome> = outcomes.iter().filter(|o| o.slow).collect();
    let slow_complete = slow.len() == sh.slow
        && slow
            .iter()
            .all(|o| o.established && o.slow_complete && o.slow_dups == 0);
    let window_us = if args.idle {
        duration.as_micros() as u64
    } else {
        let start_us = send_start.duration_since(sh.base).as_micros() as u64;
        stats
            .last_us
            .saturating_sub(start_us)
            .max(duration.as_micros() as u64)
    };
    let ms = |q: f64| {
        if stats.hist.is_empty() {
            0.0
        } else {
            stats.hist.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let rss_per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connections_ok > 0 => {
            Some((a as f64 - b as f64) / connections_ok as f64)
        }
        _ => None,
    };
    let target = if args.idle {
        0.0
    } else {
        args.rate * args.duration
    };
    if sh.senders_active.load(Ordering::Relaxed) > 0 && (sent as f64) < 0.95 * target {
        eprintln!(
            "hearth-loadgen: sent {sent} of {target:.0} scheduled messages; the generator or \
             the server's backpressure could not keep up"
        );
    }
    if cpu_pct > 90.0 * args.threads as f64 {
        eprintln!(
            "hearth-loadgen: the generator used {cpu_pct:.0}% CPU with {} worker thread(s); \
             it may be the bottleneck",
            args.threads
        );
    }
    Report {
        protocol: args.protocol,
        connections_ok,
        connections_failed: n - connections_ok,
        sent,
        expected,
        received: stats.unique,
        lost: expected.saturating_sub(stats.unique),
        duplicates: stats.dups + slow.iter().map(|o| o.slow_dups).sum::<u64>(),
        deliveries_per_sec: stats.unique as f64 / (window_us as f64 / 1e6),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: if stats.hist.is_empty() {
            0.0
        } else {
            stats.hist.max() as f64 / 1000.0
        },
        loadgen_cpu_pct: cpu_pct,
        steal_pct,
        rss_before,
        rss_after,
        rss_per_conn,
        slow_complete,
        resyncs: sh.resyncs.load(Ordering::Relaxed),
        unrecovered: sh.unrecovered.load(Ordering::Relaxed),
        server_errors: sh.server_errors.load(Ordering::Relaxed),
        typing_frames: sh.typing_sent.load(Ordering::Relaxed),
        duration_s: args.duration,
    }
}

fn to_base36(mut v: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
