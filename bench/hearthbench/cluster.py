"""Several nodes: one room spread over two Hearth nodes sharing one PostgreSQL database and one
nats-server, beside one node on PostgreSQL and one node on SQLite, under the same load in the
same run (BENCH_ONLY=cluster).

The load is steady's (connections, rate, duration; typing off): every other connection goes to
the second node (`hearth-loadgen --also`), so half of each message's deliveries cross NATS.
PostgreSQL and nats-server are Debian's, started here on free loopback ports with data of
their own, and share CPU 0 with the Hearth nodes (the generator has CPU 1): on two cores the
point is what the cluster path costs per message, not a speed-up. Per configuration the table
shows deliveries/s, p50/p99, loss, and CPU time per delivery: each Hearth node's (its CPU over
the deliveries to its own connections) and PostgreSQL's (every server process of it, over all
deliveries). Written to bench/results/cluster.md.
"""

from __future__ import annotations

import glob
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .console import Fatal, line, say
from .context import Bench
from .loadgen import bound_for
from .machine import CLK_TCK, process_cpu_ticks
from .servers import port_in_use

CONFIGS = (("one node, SQLite", 1, False), ("one node, PostgreSQL", 1, True),
           ("two nodes, PostgreSQL + NATS", 2, True))


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    """A private PostgreSQL server pinned to CPU 0."""

    def __init__(self, root: Path):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise Fatal("PostgreSQL's programs are missing: install Debian's 'postgresql' package")
        self.bin = Path(bins[-1])
        self.port = _free_port()
        self.data = root / "pg"
        self.data.mkdir()
        if os.geteuid() == 0:
            os.chmod(root, 0o755)
            shutil.chown(self.data, "postgres")
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-A", "trust", "-U", "postgres",
                                     "--no-locale", "-E", "UTF8", "-D", str(self.data)]),
                       check=True, capture_output=True)
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        subprocess.run(_as_postgres(["taskset", "-c", "0", str(self.bin / "pg_ctl"), "-D", str(self.data),
                                     "-l", str(self.data / "server.log"), "-w", "-o", options, "start"]),
                       check=True, capture_output=True)
        self.count = 0

    def database(self) -> str:
        self.count += 1
        name = f"bench{self.count}"
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        name], check=True, capture_output=True)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def cpu_ticks(self) -> dict[int, int]:
        """CPU ticks so far of every process of this server (the postmaster and its children)."""
        try:
            main = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return {}
        out = {}
        for pid in [main, *_children(main)]:
            ticks = process_cpu_ticks(pid)
            if ticks is not None:
                out[pid] = ticks
        return out

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                                     "stop"]), capture_output=True)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            kids.append(int(stat.split("/")[2]))
    return kids


def _ticks_spent(before: dict[int, int], after: dict[int, int]) -> int:
    return sum(t - before.get(pid, 0) for pid, t in after.items())


def run(b: Bench) -> None:
    s, z = b.settings, b.settings.steady
    nats_bin = shutil.which("nats-server")
    if not nats_bin:
        raise Fatal("nats-server is missing: install Debian's 'nats-server' package (scripts/setup.sh does)")
    say(f"cluster: {z.conns} connections x {z.rate} msg/s in one room, {z.duration}s: "
        + "; ".join(name for name, _, _ in CONFIGS))
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="hearth-cluster.") as tmp:
        pg = Postgres(Path(tmp))
        nats_port = _free_port()
        nats = b.procs.start(["taskset", "-c", "0", nats_bin, "-a", "127.0.0.1", "-p", str(nats_port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, grace=2.0)
        try:
            for _ in range(100):
                if port_in_use(nats_port):
                    break
                time.sleep(0.05)
            for rep in range(1, s.repeat + 1):
                for name, count, on_pg in CONFIGS:
                    env = {}
                    if on_pg:
                        env["HEARTH_DATABASE_URL"] = pg.database()
                    if count > 1:
                        env["HEARTH_NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
                    nodes = [b.servers.start("hearth", env_extra=env) for _ in range(count)]
                    also = ["--also", nodes[1].url] if count > 1 else []
                    node_ticks = [process_cpu_ticks(n.pid) or 0 for n in nodes]
                    pg_ticks = pg.cpu_ticks()
                    out = b.loadgen.run(nodes[0], bound_for(s, z.conns, z.ramp, z.duration), [
                        "--connections", str(z.conns), "--ramp", str(z.ramp), "--duration", str(z.duration),
                        "--drain", str(s.drain), "--size", str(s.size), "--senders", str(s.senders),
                        "--rate", str(z.rate), *also])
                    spent = [(process_cpu_ticks(n.pid) or 0) - t for n, t in zip(nodes, node_ticks)]
                    pg_spent = _ticks_spent(pg_ticks, pg.cpu_ticks()) if on_pg else 0
                    for node in nodes:
                        b.servers.stop(node)
                    received = out.get("received") or 0
                    if received:
                        # Connections alternate between the nodes: each has half the deliveries.
                        share = received / count
                        out["node_us_per_delivery"] = [round(t / CLK_TCK * 1e6 / share, 2) for t in spent]
                        if on_pg:
                            out["pg_us_per_delivery"] = round(pg_spent / CLK_TCK * 1e6 / received, 2)
                    rows[name].append(out)
                    b.results.record("cluster", name, rep, out)
                    line(f"    cluster {name:<30} #{rep}  dps={out.get('deliveries_per_sec')} "
                         f"p99={out.get('p99_ms')}ms lost={out.get('lost')} dup={out.get('duplicates')} "
                         f"node µs/delivery={out.get('node_us_per_delivery')} "
                         f"PostgreSQL µs/delivery={out.get('pg_us_per_delivery')}"
                         + (f" ERROR {out['error']}" if "error" in out else ""))
        finally:
            b.procs.stop_all()
            pg.stop()
    table = _table(s, z, rows)
    (s.results / "cluster.md").write_text(table)
    print()
    print(table, end="")
    say("cluster table written to bench/results/cluster.md")


def _median(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.2f}" if values else "-"


def _table(s, z, rows: dict[str, list[dict[str, Any]]]) -> str:
    out = [f"# Several nodes ({z.conns} connections x {z.rate} msg/s in one room, {z.duration}s, "
           f"median of {s.repeat})", "",
           "| | deliveries/s | p50 ms | p99 ms | lost | duplicates | Hearth CPU µs per delivery, each node "
           "| PostgreSQL CPU µs per delivery |",
           "|---|---|---|---|---|---|---|---|"]
    for name, runs in rows.items():
        ok = [r for r in runs if "error" not in r]
        nodes = len(ok[0].get("node_us_per_delivery", [])) if ok else 0
        per_node = " / ".join(_median([r.get("node_us_per_delivery", [None] * nodes)[i] for r in ok])
                              for i in range(nodes)) or "-"
        out.append(f"| {name} | {_median([r.get('deliveries_per_sec') for r in ok])} "
                   f"| {_median([r.get('p50_ms') for r in ok])} | {_median([r.get('p99_ms') for r in ok])} "
                   f"| {_median([r.get('lost') for r in ok])} | {_median([r.get('duplicates') for r in ok])} "
                   f"| {per_node} | {_median([r.get('pg_us_per_delivery') for r in ok])} |")
    out.append("")
    out.append(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; reproduce with "
               "`BENCH_ONLY=cluster ./bench/run.sh` (PostgreSQL and nats-server from Debian).")
    return "\n".join(out) + "\n"
