"""Settings: every environment variable the benchmark reads, and the sizes they imply.

Read once, by `Settings.from_env`, and never changed afterwards. The variables and their
defaults (all optional):

    BENCH_QUICK=0|1      small counts and short durations, one repeat
    BENCH_REPEAT=N       runs per scenario and server (default 3; 1 with BENCH_QUICK=1)
    BENCH_SKIP_BUILD=1   use the binaries and site already in target/ (no cargo at all)
    BENCH_ONLY=a,b       parts to run: steady,large,sweep,idle,join,slow,http,store,wasm
    BENCH_SERVERS=a,b    subset of hearth,ws,socketio,bare (default all four)
    BENCH_PORT_BASE=N    ports are taken upwards from here, a new one per server run (23100)
    BENCH_LOADGEN=PATH   another generator binary (default target/release/hearth-loadgen)
    BENCH_SWEEP_CONN=N   connections in the sweep (default 1000; 200 quick)
    BENCH_TYPISTS=P      in Hearth's steady and join-storm runs, P % of the connections send a
                         `typing` frame every 3 s (default 10; 0 = none)
    BENCH_MAX_STEAL=P    a run during which the hypervisor stole more than P % of the machine's
                         CPU is run once more, and the repeat counts (default 10; 100 = never)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .console import Fatal

ALL_PARTS = "steady,large,sweep,idle,join,slow,http,store,wasm,cluster"
ALL_SERVERS = "hearth,ws,socketio,bare"
# The order of servers in every loop and every table column.
SERVERS = ("hearth", "ws", "socketio", "bare")


@dataclass(frozen=True)
class Size:
    """One message scenario: connections opened at `ramp` per second, `duration` s of load."""

    conns: int
    ramp: int
    duration: int
    rate: int = 0


@dataclass(frozen=True)
class Settings:
    root: Path
    quick: bool
    repeat: int
    only: frozenset[str]
    servers: frozenset[str]
    port_base: int
    skip_build: bool
    loadgen: Path
    max_steal: str  # kept as given: it is compared as a number and printed as written
    steady: Size
    large: Size
    sweep_conns: int
    sweep_duration: int
    sweep_rates: tuple[int, ...]
    idle: Size
    join: Size
    slow: Size
    http_secs: int
    drain: int  # seconds the generator waits for in-flight deliveries
    size: int = 64  # bytes per message body
    senders: int = 10  # of the N connections, this many send
    sweep_ramp: int = 1000
    http_conc: int = 50
    http_rate: int = 3000  # requests/s for the open-loop latency run (the target's rate)
    room_messages: int = 50
    typists_pct: int = 10

    @classmethod
    def from_env(cls, root: Path, env: Mapping[str, str] = os.environ) -> Settings:
        quick_s = _get(env, "BENCH_QUICK", "0")
        if quick_s not in ("0", "1"):
            raise Usage("BENCH_QUICK must be 0 or 1")
        quick = quick_s == "1"
        repeat = _int(env, "BENCH_REPEAT", 1 if quick else 3)
        if quick:
            steady = Size(200, 1000, 3, 100)
            large = Size(1000, 1000, 3, 20)
            sweep_conns, sweep_duration = 200, 2
            sweep_rates = (100, 300, 600, 1000, 2000, 3000, 5000, 10000)
            idle = Size(2000, 2000, 3)
            join = Size(1000, 1000, 2, 20)
            slow_duration, http_secs, drain = 3, 3, 2
        else:
            steady = Size(1000, 1000, 15, 100)
            large = Size(5000, 1000, 10, 20)
            sweep_conns, sweep_duration = 1000, 5
            sweep_rates = (50, 100, 200, 300, 400, 500, 600, 700, 850, 1000, 1250, 1500, 2000,
                           3000, 5000, 10000)
            idle = Size(10000, 2000, 10)
            join = Size(5000, 1000, 5, 20)
            slow_duration, http_secs, drain = steady.duration, 10, 3
        # The generator is one core too: receiving for 1,000 connections it saturates before
        # Hearth does, so that sweep's ceiling is a lower bound. Fewer connections (more
        # deliveries each) let it go further: BENCH_SWEEP_CONN=200 measures the server rather
        # than the generator.
        sweep_conns = _int(env, "BENCH_SWEEP_CONN", sweep_conns)
        max_steal = _get(env, "BENCH_MAX_STEAL", "10")
        try:
            float(max_steal)
        except ValueError:
            raise Usage(f"BENCH_MAX_STEAL must be a number, not {max_steal!r}") from None
        return cls(
            root=root,
            quick=quick,
            repeat=repeat,
            only=_set(_get(env, "BENCH_ONLY", ALL_PARTS)),
            servers=_set(_get(env, "BENCH_SERVERS", ALL_SERVERS)),
            port_base=_int(env, "BENCH_PORT_BASE", 23100),
            skip_build=_get(env, "BENCH_SKIP_BUILD", "0") == "1",
            loadgen=Path(_get(env, "BENCH_LOADGEN", str(root / "target/release/hearth-loadgen"))),
            max_steal=max_steal,
            steady=steady,
            large=large,
            sweep_conns=sweep_conns,
            sweep_duration=sweep_duration,
            sweep_rates=sweep_rates,
            idle=idle,
            join=join,
            slow=Size(steady.conns, steady.ramp, slow_duration, steady.rate),
            http_secs=http_secs,
            drain=drain,
            typists_pct=_int(env, "BENCH_TYPISTS", 10),
        )

    def want(self, part: str) -> bool:
        return part in self.only

    def has_server(self, server: str) -> bool:
        return server in self.servers

    @property
    def need_fds(self) -> int:
        return self.idle.conns + 1024

    @property
    def hearth_bin(self) -> Path:
        return self.root / "target/release/hearth"

    @property
    def bare_bin(self) -> Path:
        return self.root / "target/release/hearth-bare"

    @property
    def wasm(self) -> Path:
        return self.root / "target/site/pkg/hearth.wasm"

    @property
    def peers(self) -> Path:
        return self.root / "bench/peers"

    @property
    def results(self) -> Path:
        return self.root / "bench/results"

    def rel(self, path: Path | str) -> str:
        """PATH relative to the repository when it is inside it, for messages."""
        p = str(path)
        prefix = f"{self.root}/"
        return p[len(prefix):] if p.startswith(prefix) else p


class Usage(Fatal):
    """A setting has a value the benchmark does not understand (exit status 2)."""


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    """The variable's value; unset and empty both mean the default."""
    return env.get(name) or default


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise Usage(f"{name} must be a whole number, not {value!r}") from None


def _set(csv: str) -> frozenset[str]:
    return frozenset(p for p in csv.split(",") if p)
