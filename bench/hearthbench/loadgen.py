"""One `hearth-loadgen` run against a running server, and its result as a JSON object.

The generator runs on CPU 1 under a timeout. Its command line, stderr and stdout go to
`loadgen.<n>.<server>.log` in the raw directory. The result is its JSON line, or an object with
`error` saying why there is none, plus what the generator cannot see itself: the server's CPU
over the whole run (`server_cpu_pct`, 100 = its one core) and `server_died` if it exited.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .config import Settings
from .machine import CLK_TCK, process_cpu_ticks
from .procs import Procs, alive
from .results import parse
from .servers import Server


def bound_for(settings: Settings, conns: int, ramp: int, duration: int) -> int:
    """Upper bound in seconds for one generator run: connecting + sending + draining + slack."""
    return (conns + ramp - 1) // ramp + duration + settings.drain + 60


class Loadgen:
    def __init__(self, settings: Settings, procs: Procs, raw: Path):
        self.settings = settings
        self.procs = procs
        self.raw = raw
        self.seq = 0

    def run(self, server: Server, bound: int, args: list[str]) -> dict[str, Any]:
        s = self.settings
        raw = self.raw
        self.seq += 1
        log = raw / f"loadgen.{self.seq}.{server.kind}.log"
        out_path = raw / "loadgen.out"
        log.write_text(f"hearth-loadgen --url '{server.url}' --protocol {server.protocol} "
                       f"--server-pid {server.pid} {' '.join(args)} --json\n")
        cmd = ["taskset", "-c", "1", str(s.loadgen), "--url", server.url, "--protocol", server.protocol,
               "--server-pid", str(server.pid), "--json", *args]
        ticks0, t0 = process_cpu_ticks(server.pid), time.time()
        with open(out_path, "w") as out, open(log, "a") as err:
            rc = self.procs.bounded(bound, cmd, stdout=out, stderr=err)
        ticks1, t1 = process_cpu_ticks(server.pid), time.time()
        stdout = out_path.read_text(errors="replace").rstrip("\n")
        with open(log, "a") as f:
            f.write(f"--- stdout (exit {rc}) ---\n{stdout}\n")
        line = next((row for row in stdout.split("\n") if row.startswith("{")), "")
        if line:
            d = parse(line)
        elif rc in (124, 137):
            d = {"error": f"loadgen timed out after {bound}s (log: {s.rel(log)})"}
        else:
            d = {"error": f"loadgen exited with {rc} and printed no JSON (log: {s.rel(log)})"}
        if ticks0 is not None and ticks1 is not None:
            d["server_cpu_pct"] = round(100.0 * (ticks1 - ticks0) / CLK_TCK / max(t1 - t0, 1e-3), 1)
        if not alive(server.proc):
            d["server_died"] = True
        return d


def brief(d: dict[str, Any], scenario: str = "") -> str:
    """One generator result in one line, for the progress log."""
    if "error" in d:
        return f"ERROR {d['error']}"

    def g(k: str, f: str = "{}") -> str:
        v = d.get(k)
        return "-" if v is None else f.format(v)

    slow = f" slow_complete={d.get('slow_complete')} resyncs={d.get('resyncs')}" if scenario == "slow" else ""
    return ("conns=%s/%s dps=%s p50=%sms p99=%sms lost=%s dup=%s cpu gen/server=%s/%s%% steal=%s%% rss=%s->%s KiB%s" % (
        g("connections_ok"), g("connections_failed"), g("deliveries_per_sec", "{:.0f}"),
        g("p50_ms", "{:.2f}"), g("p99_ms", "{:.2f}"), g("lost"), g("duplicates"),
        g("loadgen_cpu_pct", "{:.0f}"), g("server_cpu_pct", "{:.0f}"), g("steal_pct", "{:.0f}"),
        g("server_rss_kib_before"), g("server_rss_kib_after"), slow))
