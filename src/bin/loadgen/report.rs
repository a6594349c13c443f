//! The run's result, as the one-line JSON object `bench/LOADGEN_CONTRACT.md` specifies (field
//! names and order are that contract) or as a table for people.

use crate::args::Protocol;
use std::fmt::Write as _;

pub struct Report {
    pub protocol: Protocol,
    pub connections_ok: usize,
    pub connections_failed: usize,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub deliveries_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub loadgen_cpu_pct: f64,
    pub steal_pct: Option<f64>,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
    pub rss_per_conn: Option<f64>,
    pub slow_complete: bool,
    pub resyncs: u64,
    pub unrecovered: u64,
    pub server_errors: u64,
    pub typing_frames: u64,
    pub duration_s: f64,
}

fn json_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

impl Report {
    pub fn json(&self) -> String {
        format!(
            "{{\"protocol\":\"{}\",\"connections_ok\":{},\"connections_failed\":{},\"sent\":{},\
             \"expected\":{},\"received\":{},\"lost\":{},\"duplicates\":{},\
             \"deliveries_per_sec\":{:.1},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"max_ms\":{},\
             \"loadgen_cpu_pct\":{:.1},\"server_rss_kib_before\":{},\"server_rss_kib_after\":{},\
             \"rss_per_conn_kib\":{},\"slow_complete\":{},\"resyncs\":{},\"duration_s\":{:.1},\
             \"unrecovered\":{},\"server_errors\":{},\"typing_frames\":{},\"steal_pct\":{}}}",
            self.protocol.name(),
            self.connections_ok,
            self.connections_failed,
            self.sent,
            self.expected,
            self.received,
            self.lost,
            self.duplicates,
            self.deliveries_per_sec,
            round(self.p50_ms, 3),
            round(self.p90_ms, 3),
            round(self.p99_ms, 3),
            round(self.max_ms, 3),
            self.loadgen_cpu_pct,
            json_opt(self.rss_before),
            json_opt(self.rss_after),
            json_opt(self.rss_per_conn.map(|v| round(v, 2))),
            self.slow_complete,
            self.resyncs,
            self.duration_s,
            self.unrecovered,
            self.server_errors,
            self.typing_frames,
            json_opt(self.steal_pct.map(|v| round(v, 1))),
        )
    }

    pub fn table(&self) -> String {
        let kib = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} KiB"));
        let rows: Vec<(&str, String)> = vec![
            ("protocol", self.protocol.name().to_string()),
            (
                "connections",
                format!(
                    "{} ok, {} failed",
                    self.connections_ok, self.connections_failed
                ),
            ),
            ("sent", self.sent.to_string()),
            ("expected deliveries", self.expected.to_string()),
            ("received (unique)", self.received.to_string()),
            ("lost", self.lost.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("deliveries/s", format!("{:.0}", self.deliveries_per_sec)),
            (
                "latency p50/p90/p99/max",
                format!(
                    "{:.3} / {:.3} / {:.3} / {:.3} ms",
                    self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
                ),
            ),
            ("loadgen cpu", format!("{:.1} %", self.loadgen_cpu_pct)),
            (
                "machine steal",
                self.steal_pct
                    .map_or("-".to_string(), |v| format!("{v:.1} %")),
            ),
            (
                "server rss before/after",
                format!("{} / {}", kib(self.rss_before), kib(self.rss_after)),
            ),
            (
                "rss per connection",
                self.rss_per_conn
                    .map_or("-".to_string(), |v| format!("{v:.2} KiB")),
            ),
            ("slow complete", self.slow_complete.to_string()),
            ("resyncs", self.resyncs.to_string()),
            ("unrecovered rejoins", self.unrecovered.to_string()),
            ("server errors", self.server_errors.to_string()),
            ("typing frames sent", self.typing_frames.to_string()),
            ("duration", format!("{:.1} s", self.duration_s)),
        ];
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<26}{v}");
        }
        out
    }
}
