//! Delivery statistics of the fast (not `--slow`) connections: one latency histogram and
//! counters per worker thread, merged at the end. A per-connection histogram would cost
//! hundreds of KiB per connection; a shared one would be a lock every delivery contends on.

use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};

/// Latencies above this (µs) are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub struct ThreadStats {
    pub hist: Histogram<u64>,
    pub unique: u64,
    pub dups: u64,
    pub last_us: u64,
}

impl ThreadStats {
    pub fn new() -> ThreadStats {
        ThreadStats {
            hist: new_histogram(),
            unique: 0,
            dups: 0,
            last_us: 0,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

static REGISTRY: Mutex<Vec<Arc<Mutex<ThreadStats>>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Arc<Mutex<ThreadStats>> = {
        let stats = Arc::new(Mutex::new(ThreadStats::new()));
        lock(&REGISTRY).push(stats.clone());
        stats
    };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn with_stats<R>(f: impl FnOnce(&mut ThreadStats) -> R) -> R {
    LOCAL.with(|s| f(&mut lock(s)))
}

pub fn merged_stats() -> ThreadStats {
    let mut total = ThreadStats::new();
    for s in lock(&REGISTRY).iter() {
        let s = lock(s);
        let _ = total.hist.add(&s.hist);
        total.unique += s.unique;
        total.dups += s.dups;
        total.last_us = total.last_us.max(s.last_us);
    }
    total
}

pub fn unique_so_far() -> u64 {
    lock(&REGISTRY).iter().map(|s| lock(s).unique).sum()
}
