//! `hearth-loadgen`: a WebSocket load generator for Hearth and the peer servers it is compared
//! with. The command line and the JSON it prints are specified in `bench/LOADGEN_CONTRACT.md`.
//!
//! Every connection is one task on a (by default single-threaded) tokio runtime. Senders post
//! on a fixed schedule; each message carries a compact token (`<run>s<sender>:<counter>`) and
//! its send time in microseconds since a shared base, so every receiver can measure latency
//! and detect loss and duplicates on its own. Latencies go into one histogram per worker
//! thread (a per-connection histogram would cost hundreds of KiB per connection).
//!
//! Phases: connect (bounded ramp) → send (`--duration`) → drain (`--drain`, or until every
//! expected delivery arrived) → slow connections resume reading (and resync, for Hearth) →
//! done. Every phase has a time limit, so the tool always terminates.
//!
//! Modules: `args` (the command line), `url`, `session` (Hearth guest sessions over HTTP),
//! `conn` (one connection's task), `receiver` (what a connection makes of a frame), `hearth_wire`
//! (Hearth's frames), `payload`, `seen` (dedupe), `stats` (latency histograms), `procfs`
//! (CPU, memory and steal), `shared` (what every connection task shares), `run` (the phases)
//! and `report`.

mod args;
mod conn;
mod hearth_wire;
mod payload;
mod procfs;
mod receiver;
mod report;
mod run;
mod seen;
mod session;
mod shared;
mod stats;
mod url;

use args::{check_args, Args};
use clap::Parser;
use conn::SETUP_TIMEOUT;
use run::run;
use std::time::Duration;
use url::resolve_url;

fn main() {
    let args = Args::parse();
    if let Err(e) = check_args(&args) {
        eprintln!("hearth-loadgen: {e}");
        std::process::exit(2);
    }
    let (url, addr) = match resolve_url(&args.url, args.protocol) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hearth-loadgen: {e}");
            std::process::exit(2);
        }
    };
    let also = match args.also.as_deref().map(|u| resolve_url(u, args.protocol)) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            eprintln!("hearth-loadgen: {e}");
            std::process::exit(2);
        }
    };
    // Last resort: whatever happens, the process ends.
    let cap = args.duration
        + args.drain
        + 60.0
        + args.connections as f64 / args.ramp
        + SETUP_TIMEOUT.as_secs_f64();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(cap));
        eprintln!("hearth-loadgen: gave up after {cap:.0} s");
        std::process::exit(3);
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearth-loadgen: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    if !args.json {
        eprintln!(
            "hearth-loadgen: {} connections to {url} ({}), {} senders at {} msg/s for {} s",
            args.connections,
            args.protocol.name(),
            args.senders,
            args.rate,
            args.duration
        );
    }
    let json = args.json;
    let report = runtime.block_on(run(args, url, addr, also));
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    runtime.shutdown_timeout(Duration::from_millis(500));
    if report.connections_ok == 0 {
        eprintln!("hearth-loadgen: no connection succeeded");
        std::process::exit(1);
    }
}
