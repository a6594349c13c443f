"""The issue's targets, checked against Hearth's medians: one row each, PASS, FAIL or —.

A target gets a row only when its scenario ran. A ceiling ratio measured while the generator
was the limit is a lower bound, so falling short of it is "—", not FAIL. A quick run's verdicts
are indicative only (its counts are smaller), and the heading says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import SERVERS

if TYPE_CHECKING:
    from .report import Table


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "FAIL")


def write(t: Table) -> None:
    p, M = t.p, t.meta
    med, runs = t.rows.med, t.rows.runs
    p("")
    p("## Targets (from the issue)" + (" — quick run: indicative only, the counts differ" if M.quick else ""))
    p("")
    p("| target | measured | verdict |")
    p("|---|---|---|")
    n_targets = len(t.out)

    def target(name: str, measured: str, ok: bool | None) -> None:
        p(f"| {name} | {measured} | {verdict(ok)} |")

    def bare_note(scn: str, key: str) -> str:
        f = med(scn, "bare", key)
        return "" if f is None else f" (bare Rust: {f:.2f} ms)"

    ch, cw, cs = (med("sweep", s, "ceiling_dps") for s in SERVERS[:3])
    gen_bound = any("generator" in str(r.get("stop", "")) for r in runs("sweep", "hearth")) \
        or (med("sweep", "hearth", "ceiling_loadgen_cpu_pct") or 0) >= 85
    lower_bound = " (Hearth generator-bound: a lower bound)" if gen_bound else ""
    if ch is not None and cw:
        target("ceiling ≥ 4× Node ws", f"{ch / cw:.2f}×" + lower_bound, ch / cw >= 4 or (None if gen_bound else False))
    if ch is not None and cs:
        target("ceiling ≥ 8× Socket.IO", f"{ch / cs:.2f}×" + lower_bound, ch / cs >= 8 or (None if gen_bound else False))
    v = med("steady", "hearth", "p99_ms")
    if v is not None:
        target(f"p99 ≤ 5 ms at steady ({M.steady})", f"{v:.2f} ms" + bare_note("steady", "p99_ms"), v <= 5)
    v = med("large", "hearth", "p99_ms")
    if v is not None:
        target(f"p99 ≤ 40 ms at large room ({M.large})", f"{v:.2f} ms" + bare_note("large", "p99_ms"), v <= 40)
    v = med("idle", "hearth", "rss_per_conn_kib")
    if v is not None:
        target(f"≤ 8 KiB RSS per idle connection ({M.idle})", f"{v:.1f} KiB", v <= 8)
    js = runs("join", "hearth")
    if js:
        dropped = [r.get("connections_failed", 0) + r.get("lost", 0) if "error" not in r else None for r in js]
        bad = [d for d in dropped if d is None or d > 0]
        target(f"join storm: 0 dropped ({M.join})",
               "failed connections + lost per run: " + ", ".join("error" if d is None else str(d) for d in dropped), not bad)
    a, b = med("slow", "hearth", "p99_ms"), med("steady", "hearth", "p99_ms")
    if a is not None and b:
        target("slow consumer: others' p99 ≤ 1.5× the run without it", f"{a:.2f} ms vs {b:.2f} ms = {a / b:.2f}×", a / b <= 1.5)
    ss = runs("slow", "hearth")
    if ss:
        n = sum(1 for r in ss if r.get("slow_complete") is True)
        target("slow consumer: the slow one complete", f"{n}/{len(ss)} runs", n == len(ss))

    for r in runs("store", "hearth"):
        hub = [row for row in r.get("rows", []) if row["case"].startswith("sqlite: hub send")]
        for n in r.get("notes", []):
            if n.lower().startswith("target"):
                best = max((row["msgs_per_sec"] for row in hub), default=None)
                target(n.split(":", 1)[1].rsplit(":", 1)[0].strip() if ":" in n else n,
                       "—" if best is None else f"{best:,.0f} msgs/s (best hub send case)",
                       None if "met" not in n.lower() else ("not met" not in n.lower()))
    rps, p99r, got = med("http", "hearth", "rps"), med("http", "hearth", "p99_ms_at_rate"), med("http", "hearth", "rps_at_rate")
    if rps is not None:
        target("room page ≥ 5,000 requests/s on one core", f"{rps:,.0f} req/s (closed loop, {M.http_conc} connections)", rps >= 5000)
    if p99r is not None and got is not None:
        rate = float(M.http_rate)
        target(f"room page p99 ≤ 10 ms at {rate:,.0f} req/s",
               f"{p99r:.2f} ms (achieved {got:,.0f} req/s)" + bare_note("http", "p99_ms_at_rate"),
               p99r <= 10 and got >= 0.95 * rate)
    for r in runs("wasm", "hearth"):
        if "brotli" in r:
            # 300 KB read as 300,000 bytes, the stricter of the two readings.
            total = r["brotli"] + r.get("js_brotli", 0)
            target("the browser bundle (WASM + JS) ≤ 300 KB brotli", f"{total:,} bytes", total <= 300_000)
    if len(t.out) == n_targets:
        p("| (no target measured in this run) | — | — |")
