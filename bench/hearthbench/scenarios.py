"""The message scenarios: steady, large room, idle, join storm and slow consumer.

Each runs BENCH_REPEAT times per server (in the order hearth, ws, socketio, bare), every time
against a fresh server process, under the steal rule. The bare server is a reference for the
latency targets only, so it runs the steady and large-room scenarios and nothing else.
"""

from __future__ import annotations

from .config import SERVERS, Size
from .console import line, say
from .context import Bench
from .loadgen import bound_for, brief
from .steal import record_or_repeat


def run_scenario(b: Bench, name: str, size: Size, extra: list[str],
                 hearth_extra: tuple[str, ...] = ()) -> None:
    """`hearth_extra` are flags for Hearth's runs only (typing: the peers have no such frame)."""
    s = b.settings
    for rep in range(1, s.repeat + 1):
        for server in SERVERS:
            if not s.has_server(server):
                continue
            if server == "bare" and name not in ("steady", "large"):
                continue
            for attempt in (1, 2):
                srv = b.servers.start(server)
                out = b.loadgen.run(srv, bound_for(s, size.conns, size.ramp, size.duration), [
                    "--connections", str(size.conns), "--ramp", str(size.ramp),
                    "--duration", str(size.duration), "--drain", str(s.drain), "--size", str(s.size), *extra,
                    *(hearth_extra if server == "hearth" else ())])
                b.servers.stop(srv)
                line(f"    {name:<8} {server:<8} #{rep}  {brief(out, name)}")
                if record_or_repeat(b.results, s.max_steal, name, server, rep, out, attempt):
                    break


def _sending(b: Bench, size: Size) -> list[str]:
    return ["--senders", str(b.settings.senders), "--rate", str(size.rate)]


def _typing(b: Bench, size: Size) -> tuple[str, ...]:
    """Hearth's typists: BENCH_TYPISTS % of the connections, one `typing` frame each per 3 s."""
    return ("--typists", str(size.conns * b.settings.typists_pct // 100))


def steady(b: Bench) -> None:
    s, z = b.settings, b.settings.steady
    say(f"steady: {z.conns} connections x {z.rate} msg/s in one room, {z.duration}s, {s.size}-byte messages"
        f", Hearth with typing from {s.typists_pct} % of the connections")
    run_scenario(b, "steady", z, _sending(b, z), _typing(b, z))


def large(b: Bench) -> None:
    z = b.settings.large
    say(f"large: {z.conns} connections x {z.rate} msg/s in one room, {z.duration}s")
    run_scenario(b, "large", z, _sending(b, z))


def idle(b: Bench) -> None:
    z = b.settings.idle
    say(f"idle: {z.conns} idle connections, {z.duration}s, server RSS")
    run_scenario(b, "idle", z, ["--idle"])


def join(b: Bench) -> None:
    z = b.settings.join
    say(f"join storm: {z.conns} connections joining at {z.ramp}/s, then {z.rate} msg/s for {z.duration}s"
        f", Hearth with typing from {b.settings.typists_pct} % of the connections")
    run_scenario(b, "join", z, _sending(b, z), _typing(b, z))


def slow(b: Bench) -> None:
    """Steady's load with one connection that stops reading; steady's own run is the baseline
    the others' p99 is compared with, so it runs first if it was not asked for."""
    s, z = b.settings, b.settings.slow
    say(f"slow consumer: {z.conns} connections x {z.rate} msg/s, one stops reading, {z.duration}s")
    if not s.want("steady"):
        say("  (baseline without the slow consumer first)")
        run_scenario(b, "steady", s.steady, _sending(b, s.steady))
    run_scenario(b, "slow", z, [*_sending(b, z), "--slow", "1"])
