"""The room page: `GET /r/bench` with 50 stored messages, from Hearth and from the bare server.

Hearth's runs fill `#bench` (bench/peers/seed-room.js) as a guest, check the page shows the
messages, and keep its bytes; the bare server then answers every request with those bytes
(`page.html` in the raw directory), which shows what the machine alone costs. Each run is
two loops from CPU 1: a closed loop (its requests/s is the ceiling) and, with `oha`, an open
loop at the target's rate (its latency is the target's). Repeats follow the steal rule, with
the steal measured from /proc/stat over both loops.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from . import hearthenv
from .console import line, say, warn
from .context import Bench
from .machine import machine_ticks
from .steal import record_or_repeat


class Page:
    """What Hearth's last run served: the page text and how many messages it showed."""

    def __init__(self) -> None:
        self.text = ""
        self.shown = 0


def read_tool_output(tool: str, path: Path, out: dict[str, Any], suffix: str = "") -> None:
    """Adds requests/s, p50, p99, non-200 responses and errors from one loop's output to OUT,
    each key with SUFFIX, or `error<SUFFIX>` if the output cannot be read."""
    try:
        text = path.read_text()
        if tool == "oha":
            d = json.loads(text)
            s = d["summary"]
            codes = d.get("statusCodeDistribution", {})
            # requests/s of answered requests (oha's own figure also counts any cut off at the deadline)
            out["rps" + suffix] = sum(codes.values()) / s["total"] if s.get("total") else s.get("requestsPerSec")
            out["success_rate" + suffix] = s.get("successRate")
            p = d.get("latencyPercentiles", {})
            out["p50_ms" + suffix] = p["p50"] * 1000 if p.get("p50") is not None else None
            out["p99_ms" + suffix] = p["p99"] * 1000 if p.get("p99") is not None else None
            out["non_200" + suffix] = sum(v for k, v in codes.items() if k != "200")
            out["errors" + suffix] = sum(v for k, v in d.get("errorDistribution", {}).items() if "deadline" not in k)
        else:
            unit = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
            out["rps" + suffix] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
            for q, key in (("50", "p50_ms"), ("99", "p99_ms")):
                m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+)(us|ms|s)\b" % q, text, re.M)
                out[key + suffix] = float(m.group(1)) * unit[m.group(2)] if m else None
            m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
            out["non_200" + suffix] = int(m.group(1)) if m else 0
            m = re.search(r"Socket errors:.*", text)
            out["errors" + suffix] = sum(int(x) for x in re.findall(r"\d+", m.group(0))) if m else 0
    except Exception as e:
        out["error" + suffix] = "could not read %s output: %s" % (tool, e)


def _oha_format() -> list[str]:
    """oha's JSON flag: newer releases take `--output-format json`, older ones `--json`."""
    done = subprocess.run(["oha", "--help"], capture_output=True, text=True)
    return ["--output-format", "json"] if "--output-format" in done.stdout + done.stderr else ["--json"]


def loops(b: Bench, server: str, rep: int, url: str, cookie: str, page: Page) -> dict[str, Any]:
    """Both loops against URL; the run's result object."""
    s, tool, raw = b.settings, b.http_tool, b.raw
    out_path = raw / f"http.{server}.{rep}.{tool}.out"
    rate_path = raw / f"http.{server}.{rep}.rate.out"
    bound = s.http_secs + 60
    header = ["-H", f"Cookie: {cookie}"]
    steal0, ticks0 = machine_ticks()
    with open(raw / "http.log", "a") as log:
        if tool == "oha":
            fmt = _oha_format()
            with open(out_path, "w") as out:
                b.procs.bounded(bound, ["taskset", "-c", "1", "oha", "-z", f"{s.http_secs}s", "-w", "-c", str(s.http_conc),
                                        "--no-tui", *fmt, *header, url], stdout=out, stderr=log)
        else:
            with open(out_path, "w") as out:
                b.procs.bounded(bound, ["taskset", "-c", "1", "wrk", "-t1", "-c", str(s.http_conc), "-d", f"{s.http_secs}s",
                                        "--latency", *header, url], stdout=out, stderr=log)
        # The closed loop above measures the ceiling; with 50 requests always outstanding its
        # latency is mostly queueing (Little's law: 50 requests outstanding at 3,000 req/s wait about 17 ms on average). The
        # target is about latency *at* 3,000 req/s, so that is measured open-loop: requests at
        # a fixed rate, timed from when each was due (no coordinated omission).
        if tool == "oha":
            with open(rate_path, "w") as out:
                b.procs.bounded(bound, ["taskset", "-c", "1", "oha", "-z", f"{s.http_secs}s", "-w", "-c", str(s.http_conc),
                                        "-q", str(s.http_rate), "--latency-correction", "--no-tui", *fmt, *header, url],
                                stdout=out, stderr=log)
        else:
            warn("wrk cannot send at a fixed rate; install oha for the latency-at-3,000 req/s figure")
    steal1, ticks1 = machine_ticks()
    result: dict[str, Any] = {"messages_on_page": page.shown, "page_bytes": len(page.text)}
    result["steal_pct"] = 100.0 * (steal1 - steal0) / (ticks1 - ticks0) if ticks1 > ticks0 else None
    read_tool_output(tool, out_path, result)
    read_tool_output(tool, rate_path, result, "_at_rate")
    return result


def _fill_room(b: Bench, port: int, url: str, cookie: str, page: Page) -> None:
    """A guest fills #bench; PAGE becomes what that guest's page shows."""
    s, log_path = b.settings, b.raw / "http.log"
    if not cookie:
        warn("could not get a session cookie from /api/set_name")
    with open(log_path, "a") as log:
        rc = b.procs.bounded(30, ["node", str(s.peers / "seed-room.js"), str(port), "bench", str(s.room_messages), cookie],
                             stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.stderr.write("".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-5:]))
        warn(f"could not fill the room; the page is measured with what it has (log: {s.rel(log_path)})")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": cookie}), timeout=30) as r:
            page.text = r.read().decode(errors="replace").rstrip("\n")
    except OSError:
        page.text = ""
    page.shown = page.text.count('<li class="message')
    if page.shown != s.room_messages:
        warn(f"the room page shows {page.shown} messages, expected {s.room_messages} ({len(page.text)} bytes)")


def page_server(b: Bench, server: str, page: Page, bare_page: Path | None = None) -> None:
    """The page runs against one server, BENCH_REPEAT that count."""
    s = b.settings
    rep, attempt = 1, 1
    while rep <= s.repeat:
        srv = b.servers.start(server, bare_page)
        url = f"http://127.0.0.1:{srv.port}/r/bench"
        cookie = ""
        if server == "hearth":
            # A guest session, as a browser gets one; the page is measured as that person sees it.
            cookie = hearthenv.guest_cookie(s.root / "bench/hearth-env.sh", srv.port)
            _fill_room(b, srv.port, url, cookie, page)
        result = loops(b, server, rep, url, cookie, page)
        b.servers.stop(srv)
        line(f"    {'http':<8} {server:<8} #{rep}  {json.dumps(result)}")
        if record_or_repeat(b.results, s.max_steal, "http", server, rep, result, attempt):
            rep, attempt = rep + 1, 1
        else:
            attempt = 2


def run(b: Bench) -> None:
    s = b.settings
    if not s.has_server("hearth"):
        return
    say(f"room page: #bench with {s.room_messages} messages, {b.http_tool} {s.http_secs}s x {s.http_conc} "
        "connections (server on CPU 0 only)")
    page = Page()
    page_server(b, "hearth", page)
    if s.has_server("bare") and page.text:
        say("  the same page bytes from hearth-bare (no rendering)")
        bare_page = b.raw / "page.html"
        bare_page.write_text(page.text)
        page_server(b, "bare", page, bare_page)
