"""The Markdown report: the results table, its notes, the targets, problems and the footer.

Built from the raw JSON lines alone (`results.Rows`) and `Meta`, the run's descriptions. Every
value is the median over a scenario's counted runs for one server; ratios are always Hearth ÷
peer. `write` leaves the table in the raw directory and in bench/results/latest.md.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from . import targets
from .config import SERVERS
from .results import Rows

NAMES = {"hearth": "Hearth", "ws": "Node ws", "socketio": "Socket.IO", "bare": "bare Rust"}
# Counts and context, not comparisons: shown without a ratio.
NO_RATIO = {"loadgen_cpu_pct", "server_cpu_pct", "steal_pct", "server_rss_kib_before", "lost",
            "connections_failed", "resyncs", "duplicates"}
MSG_METRICS = [
    ("deliveries_per_sec", "deliveries/s ↑", "int"),
    ("p50_ms", "p50 ms ↓", "ms"),
    ("p99_ms", "p99 ms ↓", "ms"),
    ("max_ms", "max ms ↓", "ms"),
    ("lost", "lost ↓", "int"),
    ("loadgen_cpu_pct", "generator CPU %", "pct"),
    ("server_cpu_pct", "server CPU % (whole run)", "pct"),
    ("steal_pct", "machine steal % (hypervisor)", "pct"),
    ("server_rss_kib_after", "server RSS after, KiB ↓", "int"),
]


@dataclass(frozen=True)
class Meta:
    """What the tables say about the run: sizes as prose, and the footer's facts."""

    quick: bool
    repeat: int
    size: int
    max_steal: str
    steady: str
    large: str
    sweep: str
    idle: str
    join: str
    slow: str
    http: str  # the HTTP load tool
    http_desc: str
    http_rate: int
    http_conc: int
    date: str
    commit: str
    machine: str
    load: str
    elapsed: int
    raw: str


def fmt(v: float | None, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.2f}" if v < 100 else f"{v:,.0f}"
    if kind == "pct":
        return f"{v:.0f}"
    if kind == "kib":
        return f"{v:.1f}"
    return str(v)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


class Table:
    """Markdown lines, appended in order."""

    def __init__(self, rows: Rows, meta: Meta):
        self.rows = rows
        self.meta = meta
        self.out: list[str] = []

    def p(self, text: str) -> None:
        self.out.append(text)

    def line(self, label: str, metric: str, values: list[float | None], kind: str, ratios: bool = True) -> None:
        h, w, s, f = values
        self.p(f"| {label} | {metric} | {fmt(h, kind)} | {fmt(w, kind)} | {fmt(s, kind)} | {fmt(f, kind)} | "
               f"{ratio(h, w) if ratios else '—'} | {ratio(h, s) if ratios else '—'} | {ratio(h, f) if ratios else '—'} |")

    def any_runs(self, scn: str) -> bool:
        return any(self.rows.runs(scn, s) for s in SERVERS)

    def block(self, scn: str, label: str, metrics: list[tuple[str, str, str]]) -> None:
        if not self.any_runs(scn):
            return
        for i, (key, metric, kind) in enumerate(metrics):
            self.line(label if i == 0 else "", metric, [self.rows.med(scn, s, key) for s in SERVERS], kind,
                      ratios=key not in NO_RATIO)


def render(rows: Rows, meta: Meta) -> str:
    t = Table(rows, meta)
    p, med, runs, good = t.p, rows.med, rows.runs, rows.good
    M = meta
    p("# Hearth benchmark results" + (" (BENCH_QUICK=1 smoke run: small counts, not comparable to the targets)" if M.quick else ""))
    p("")
    p(f"Medians of {M.repeat} run(s) per scenario and server; a fresh server process per run, pinned to CPU 0; "
      f"`hearth-loadgen` pinned to CPU 1; loopback; {M.size}-byte messages; Hearth with the SQLite store. "
      "↑ = higher is better, ↓ = lower is better; ratios are Hearth ÷ peer. "
      "bare Rust is `hearth-bare` (src/bin/bare.rs), a server with no chat logic at all (a bare "
      "tokio-tungstenite fan-out; the page's bytes from memory), run for the latency targets only: "
      "how much of a latency figure is the machine.")
    p("")
    p("| scenario | metric | Hearth | Node ws | Socket.IO | bare Rust | Hearth/ws | Hearth/Socket.IO | Hearth/bare |")
    p("|---|---|---:|---:|---:|---:|---:|---:|---:|")

    t.block("steady", f"steady: {M.steady}", MSG_METRICS)
    t.block("large", f"large room: {M.large}", MSG_METRICS)

    if t.any_runs("sweep"):
        t.line(f"sweep to saturation: {M.sweep}", "ceiling deliveries/s at p99 < 100 ms ↑",
               [med("sweep", s, "ceiling_dps") for s in SERVERS], "int")
        reasons = []
        for s in SERVERS:
            rs = [r.get("stop", r.get("error", "?")) for r in runs("sweep", s)]
            reasons.append("; ".join(sorted(set(rs))) if rs else "—")
        p(f"| | stopped because | {reasons[0]} | {reasons[1]} | {reasons[2]} | {reasons[3]} | | | |")
        for key, metric, kind in (("ceiling_p99_ms", "p99 ms at the ceiling step", "ms"),
                                  ("ceiling_loadgen_cpu_pct", "generator CPU % at the ceiling step", "pct"),
                                  ("ceiling_server_cpu_pct", "server CPU % at the ceiling step (whole run)", "pct")):
            t.line("", metric, [med("sweep", s, key) for s in SERVERS], kind, ratios=False)

    t.block("idle", f"idle: {M.idle}", [
        ("rss_per_conn_kib", "RSS per connection, KiB ↓", "kib"),
        ("server_rss_kib_before", "server RSS before, KiB", "int"),
        ("server_rss_kib_after", "server RSS after, KiB ↓", "int"),
        ("connections_failed", "failed connections ↓", "int"),
    ])
    t.block("join", f"join storm: {M.join}", [
        ("connections_ok", "connected ↑", "int"),
        ("connections_failed", "failed connections ↓", "int"),
        ("lost", "lost ↓", "int"),
        ("p99_ms", "p99 ms ↓", "ms"),
    ])
    if t.any_runs("slow"):
        t.block("slow", f"slow consumer: {M.slow}", [
            ("p99_ms", "others' p99 ms ↓", "ms"),
            ("lost", "lost (others) ↓", "int"),
            ("resyncs", "resyncs", "int"),
            ("steal_pct", "machine steal % (hypervisor)", "pct"),
        ])
        rel = []
        for s in SERVERS:
            a, b = med("slow", s, "p99_ms"), med("steady", s, "p99_ms")
            rel.append(a / b if a is not None and b else None)
        p(f"| | others' p99 ÷ steady p99 ↓ | {' | '.join('—' if v is None else f'{v:.2f}×' for v in rel)} | — | — | — |")
        comp = []
        for s in SERVERS:
            g = good("slow", s)
            comp.append(f"{sum(1 for r in g if r.get('slow_complete') is True)}/{len(runs('slow', s))}" if runs("slow", s) else "—")
        p(f"| | slow one complete (runs) | {' | '.join(comp)} | — | — | — |")

    if runs("http", "hearth"):
        ratio_keys = ("rps", "p50_ms", "p99_ms", "rps_at_rate", "p50_ms_at_rate", "p99_ms_at_rate")
        for i, (key, metric, kind) in enumerate([("rps", "requests/s ↑", "int"), ("p50_ms", "p50 ms ↓", "ms"),
                                                 ("p99_ms", "p99 ms ↓", "ms"), ("non_200", "non-200 responses", "int"),
                                                 ("errors", "request errors", "int"), ("page_bytes", "page bytes", "int"),
                                                 ("rps_at_rate", f"open loop at {M.http_rate} req/s: achieved ↑", "int"),
                                                 ("p50_ms_at_rate", f"open loop at {M.http_rate} req/s: p50 ms ↓", "ms"),
                                                 ("p99_ms_at_rate", f"open loop at {M.http_rate} req/s: p99 ms ↓", "ms"),
                                                 ("steal_pct", "machine steal % (hypervisor), both loops", "pct")]):
            label = f"room page ({M.http}): {M.http_desc}" if i == 0 else ""
            t.line(label, metric, [med("http", "hearth", key), None, None, med("http", "bare", key)], kind,
                   ratios=key in ratio_keys)

    for r in runs("store", "hearth"):
        label = "stored messages/s into one room (`cargo bench --bench store`, CPU 0)"
        if "error" in r:
            p(f"| {label} | {r['error']} | — | — | — | — | — | — | — |")
            continue
        items = [(row["case"] + " ↑", f"{row['msgs_per_sec']:,.0f}") for row in r.get("rows", [])]
        items += [(n.replace("|", "/"), "") for n in r.get("notes", [])]
        if not items:
            items = [("(no result found; see store.log)", "—")]
        for i, (metric, value) in enumerate(items):
            p(f"| {label if i == 0 else ''} | {metric} | {value} | — | — | — | — | — | — |")

    for r in runs("wasm", "hearth"):
        if "error" in r:
            p(f"| release WASM | {r['error']} | — | — | — | — | — | — | — |")
        else:
            for i, k in enumerate(["raw", "gzip", "brotli"]):
                desc = {"raw": "raw bytes", "gzip": "gzip -9 bytes", "brotli": "brotli -q 11 bytes"}[k]
                p(f"| {'release WASM (hearth.wasm)' if i == 0 else ''} | {desc} ↓ | {r[k]:,} ({r[k] / 1024:.0f} KiB) | — | — | — | — | — | — |")
            if "js_brotli" in r:
                p(f"| hearth.js | brotli -q 11 bytes ↓ | {r['js_brotli']:,} | — | — | — | — | — | — |")

    notes = _notes(rows, meta)
    if notes:
        p("")
        for n in notes:
            p(f"- {n}")

    targets.write(t)

    probs = _problems(rows)
    if probs:
        p("")
        p("## Problems seen")
        p("")
        for x in probs:
            p(f"- {x}")
    p("")
    p(f"{M.date}, commit {M.commit}; {M.machine}.")
    p(f"Load average at start: {M.load}; elapsed {M.elapsed} s for the scenarios; raw logs: `{M.raw}`.")
    return "\n".join(t.out) + "\n"


def _notes(rows: Rows, meta: Meta) -> list[str]:
    med, runs, good = rows.med, rows.runs, rows.good
    notes = []
    if runs("slow", "hearth") and not any((r.get("resyncs") or 0) > 0 for r in good("slow", "hearth")):
        notes.append("Slow consumer: Hearth sent no `resync` in any run, so the stalled connection's backlog "
                     "fit in the kernel's socket buffers plus Hearth's per-connection queue; the queue-full "
                     "path was not exercised at this rate and duration.")
    if any("generator" in str(r.get("stop", "")) for s in SERVERS for r in runs("sweep", s)):
        notes.append("Sweep: a ceiling marked by generator CPU ≥ 95 % is a lower bound set by the generator's one core.")
    for s in SERVERS:
        g = med("sweep", s, "ceiling_loadgen_cpu_pct")
        if g is not None and g >= 85:
            notes.append(f"Sweep: at {NAMES[s]}'s ceiling step the generator used {g:.0f} % of its core (whole run), so that "
                         "ceiling is probably set by the generator as much as by the server: read it as a lower bound.")
    if rows.superseded:
        which = ", ".join(f"{r['scenario']} {NAMES[r['server']]} #{r['rep']} ({r.get('steal_pct', 0):.0f} %)"
                          for r in rows.superseded)
        notes.append(f"Repeated because machine steal exceeded {meta.max_steal} % during the run (the repeat counts; "
                     f"both are in the raw results): {which}.")
    return notes


def _problems(rows: Rows) -> list[str]:
    """Every counted run with an error, a failed connection, a lost or duplicated delivery, a
    server that exited, or a saturated generator."""
    probs = []
    for r in rows.rows:
        tag = f"{r['scenario']} {NAMES.get(r['server'], r['server'])} #{r['rep']}" + (f" rate {r['rate']}" if "rate" in r else "")
        if "error" in r:
            probs.append(f"{tag}: {r['error']}")
            continue
        if r.get("server_died"):
            probs.append(f"{tag}: the server process exited during the run")
        keys: tuple[str, ...] = ("connections_failed", "lost", "duplicates", "unrecovered", "server_errors")
        if r["scenario"] == "sweep_step":
            # past saturation slow p99 and loss are what ends a sweep; duplicates never should happen
            keys = ("duplicates", "server_errors")
            tag += " (sweep step)"
        for k in keys:
            if isinstance(r.get(k), (int, float)) and r[k] > 0:
                probs.append(f"{tag}: {k} = {r[k]}")
        if r["scenario"] != "sweep_step" and isinstance(r.get("loadgen_cpu_pct"), (int, float)) and r["loadgen_cpu_pct"] >= 95:
            probs.append(f"{tag}: generator CPU {r['loadgen_cpu_pct']:.0f}% (generator-bound)")
    return probs


def write(rows: Rows, meta: Meta, raw: Path, latest: Path) -> str:
    """Writes the report to RAW/table.md and LATEST; returns it."""
    text = render(rows, meta)
    table = raw / "table.md"
    table.write_text(text)
    shutil.copyfile(table, latest)
    return text
