"""The sweep to saturation: the total rate raised step by step until the server falls behind.

Each step runs on a fresh server and is recorded as `sweep_step` (with its `rate` and
`attempt`). A step fails on p99 >= 100 ms, a loss, a duplicate, a failed connection, a
generator error or a server that exited; a failed step is tried once more (one noisy run does
not end a sweep) and the sweep stops when it fails again, or at once where the generator uses
>= 95 % of its core, since past that point it measures itself. One `sweep` record per server
and repeat gives the highest passing deliveries/s and why the sweep stopped. The bare server
does not sweep.
"""

from __future__ import annotations

from typing import Any

from .console import line, say
from .context import Bench
from .loadgen import bound_for, brief

SWEEP_SERVERS = ("hearth", "ws", "socketio")


def verdict(d: dict[str, Any]) -> str:
    """"pass" or "fail", "-gen" when the generator saturated, then the reasons."""
    if "error" in d:
        return "fail generator/run error"
    if d.get("server_died"):
        return "fail server exited"
    p99, lost, failed, cpu = d.get("p99_ms"), d.get("lost", 0), d.get("connections_failed", 0), d.get("loadgen_cpu_pct", 0)
    dup = d.get("duplicates", 0)
    ok = p99 is not None and p99 < 100 and lost == 0 and failed == 0 and dup == 0
    why = []
    if p99 is None or p99 >= 100:
        why.append("p99 >= 100 ms")
    if lost:
        why.append("loss")
    if dup:
        why.append("duplicates")
    if failed:
        why.append("failed connections")
    gen = cpu is not None and cpu >= 95
    if gen:
        why.append("generator CPU >= 95%")
    return ("pass" if ok else "fail") + ("-gen" if gen else "") + " " + ", ".join(why)


def step(b: Bench, server: str, rep: int, rate: int, attempt: int) -> tuple[dict[str, Any], str]:
    """One sweep step on a fresh server: its result and verdict."""
    s = b.settings
    srv = b.servers.start(server)
    out = b.loadgen.run(srv, bound_for(s, s.sweep_conns, s.sweep_ramp, s.sweep_duration), [
        "--connections", str(s.sweep_conns), "--ramp", str(s.sweep_ramp), "--duration", str(s.sweep_duration),
        "--drain", str(s.drain), "--size", str(s.size), "--senders", str(s.senders), "--rate", str(rate)])
    b.servers.stop(srv)
    b.results.record("sweep_step", server, rep, {**out, "rate": rate, "attempt": attempt})
    v = verdict(out)
    line(f"    {'sweep':<8} {server:<8} #{rep}  rate={rate:<6} {brief(out)}  -> {v}")
    return out, v


def sweep_server(b: Bench, server: str, rep: int) -> None:
    s = b.settings
    best, best_rate, best_out, stop = 0.0, 0, {}, "all steps passed"
    for rate in s.sweep_rates:
        out, v = step(b, server, rep, rate, 1)
        if v.startswith("fail") and not v.startswith("fail-gen"):
            say(f"  step failed ({v}); trying it once more")
            out, v = step(b, server, rep, rate, 2)
        if v.startswith("pass"):
            best, best_rate, best_out = float(out["deliveries_per_sec"]), rate, out
            if v.startswith("pass-gen"):
                stop = "generator CPU >= 95% (a lower bound)"
                break
        elif v.startswith("fail-gen"):
            stop = f"generator CPU >= 95% ({v.removeprefix('fail-gen ')}) at {rate} msg/s"
            break
        else:
            stop = f"{v.removeprefix('fail ')} at {rate} msg/s"
            break
    b.results.record("sweep", server, rep, {
        "ceiling_dps": best, "ceiling_rate": best_rate, "connections": s.sweep_conns, "stop": stop,
        "ceiling_p99_ms": best_out.get("p99_ms"), "ceiling_loadgen_cpu_pct": best_out.get("loadgen_cpu_pct"),
        "ceiling_server_cpu_pct": best_out.get("server_cpu_pct")})
    line(f"    {'sweep':<8} {server:<8} #{rep}  ceiling {best:.0f} deliveries/s at {best_rate} msg/s (stopped: {stop})")


def run(b: Bench) -> None:
    s = b.settings
    rates = " ".join(str(r) for r in s.sweep_rates)
    say(f"sweep: {s.sweep_conns} connections, total rate {rates} msg/s, {s.sweep_duration}s a step, until p99 >= 100 ms")
    for rep in range(1, s.repeat + 1):
        for server in SWEEP_SERVERS:
            if s.has_server(server):
                sweep_server(b, server, rep)
