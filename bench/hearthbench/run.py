"""The benchmark from start to end: checks, tools, builds, the scenarios in order, the report.

`main` is the program. It guarantees that every process it started is stopped and the
temporary data directories removed however it ends (finished, `Fatal`, a failed command,
SIGINT or SIGTERM), and exits 0, 1 (`Fatal`), 2 (bad setting), the failed command's status,
or 130/143 on a signal.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from . import build, cluster, page, report, scenarios, store, sweep, tools, wasm
from .config import Settings, Usage
from .console import Fatal, say, warn
from .context import Bench
from .loadgen import Loadgen
from .machine import check_host, describe, load_average, raise_open_files
from .procs import Interrupted, Procs, on_signals
from .results import Results, Rows, lock, make_raw_dir
from .servers import Servers

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    on_signals()
    procs = Procs()
    try:
        run(procs)
        return 0
    except Usage as e:
        warn(str(e))
        return 2
    except Fatal as e:
        warn(str(e))
        return 1
    except subprocess.CalledProcessError as e:
        cmd = " ".join(e.cmd) if isinstance(e.cmd, list) else str(e.cmd)
        warn(f"`{cmd}` exited with {e.returncode}")
        return e.returncode or 1
    except Interrupted as e:
        return e.status
    finally:
        procs.stop_all()


def run(procs: Procs) -> None:
    os.chdir(ROOT)
    cargo_bin = os.path.join(os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo"), "bin")
    if cargo_bin not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = f"{cargo_bin}:{os.environ.get('PATH', '')}"

    s = Settings.from_env(ROOT)
    check_host()
    raise_open_files(s)
    apt = tools.Apt()
    tools.ensure(s, apt)
    http_tool = tools.http_tool(apt) if s.want("http") else ""
    built_wasm = build.build(s)

    raw = make_raw_dir(s)
    held = lock(s)
    results = Results(raw)
    with tempfile.TemporaryDirectory(prefix="hearth-bench.") as tmp:
        # Servers are stopped before their data directories under TMP go.
        try:
            b = Bench(s, procs, raw, results, Servers(s, procs, raw, Path(tmp)), Loadgen(s, procs, raw), http_tool)
            load, elapsed = measure(b, built_wasm)
        finally:
            procs.stop_all()

    text = report.write(Rows(results.jsonl), meta(s, http_tool, load, elapsed, raw), raw, s.results / "latest.md")
    print()
    print(text, end="")
    print()
    say(f"table written to bench/results/latest.md; raw results in {s.rel(raw)}")
    held.close()


def measure(b: Bench, built_wasm: wasm.Sizes | None) -> tuple[str, int]:
    """Every scenario asked for, in order; the load average at the start and seconds taken."""
    s = b.settings
    load = load_average()
    say(f"results: {s.rel(b.raw)}   repeats: {s.repeat}   quick: {int(s.quick)}   load average: {load}")
    if float(load) > 0.7:
        warn(f"the machine is busy (load average {load}): numbers will be noisy; other work competes for both cores.")
    t0 = time.monotonic()
    parts = [
        ("steady", scenarios.steady),
        ("large", scenarios.large),
        ("sweep", sweep.run),
        ("idle", scenarios.idle),
        ("join", scenarios.join),
        ("slow", scenarios.slow),
        ("http", page.run),
        ("store", store.run),
        ("wasm", lambda b: wasm.run(b, built_wasm)),
        ("cluster", cluster.run),
    ]
    for name, run_part in parts:
        if s.want(name):
            run_part(b)
    return load, int(time.monotonic() - t0)


def meta(s: Settings, http_tool: str, load: str, elapsed: int, raw: Path) -> report.Meta:
    rates = " ".join(str(r) for r in s.sweep_rates)
    return report.Meta(
        quick=s.quick, repeat=s.repeat, size=s.size, max_steal=s.max_steal,
        steady=f"{s.steady.conns} connections x {s.steady.rate} msg/s, {s.steady.duration}s",
        large=f"{s.large.conns} connections x {s.large.rate} msg/s, {s.large.duration}s",
        sweep=f"{s.sweep_conns} connections, rate steps {rates} msg/s, {s.sweep_duration}s each",
        idle=f"{s.idle.conns} idle connections, {s.idle.duration}s",
        join=f"{s.join.conns} connections joining at {s.join.ramp}/s, then {s.join.rate} msg/s",
        slow=f"{s.slow.conns} connections x {s.slow.rate} msg/s, 1 stops reading, {s.slow.duration}s",
        http=http_tool,
        http_desc=f"GET /r/bench ({s.room_messages} messages), {s.http_conc} connections, {s.http_secs}s",
        http_rate=s.http_rate, http_conc=s.http_conc,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        commit=_commit(), machine=describe(), load=load, elapsed=elapsed, raw=s.rel(raw))


def _commit() -> str:
    """The short commit, marked when the work tree differs from it."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    commit = done.stdout.strip() if done.returncode == 0 else "?"
    if subprocess.run(["git", "diff", "--quiet", "HEAD"], capture_output=True).returncode != 0:
        commit += " (with uncommitted changes)"
    return commit
