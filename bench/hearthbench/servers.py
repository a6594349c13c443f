"""The servers under test: a fresh process per run, on a new free port, pinned to CPU 0.

`Servers.start` takes the next port above the last one used that nothing listens on, starts
the server with its output in `server.<kind>.<port>.log` in the raw directory, and returns
once the port accepts connections (or raises `Fatal` if the server exits or stays silent for
10 s). `Servers.stop` ends it (SIGTERM, then SIGKILL after 5 s) and removes Hearth's data
directory. A server still running when the benchmark ends is stopped by `Procs.stop_all`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import hearthenv
from .config import Settings
from .console import Fatal
from .procs import Procs, alive, terminate


@dataclass
class Server:
    kind: str
    port: int
    url: str  # where the generator connects
    protocol: str  # the generator's --protocol
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def port_in_use(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Servers:
    def __init__(self, settings: Settings, procs: Procs, raw: Path, tmp_root: Path):
        self.settings = settings
        self.procs = procs
        self.raw = raw
        self.tmp_root = tmp_root
        self.port = settings.port_base

    def _next_port(self) -> int:
        self.port += 1
        while port_in_use(self.port):
            self.port += 1
        return self.port

    def start(self, kind: str, bare_page: Path | None = None,
              env_extra: dict[str, str] | None = None) -> Server:
        """A fresh KIND server; with BARE_PAGE, `bare` answers every HTTP request with it.
        ENV_EXTRA is added to Hearth's settings (a database and NATS for several nodes)."""
        s = self.settings
        port = self._next_port()
        log = self.raw / f"server.{kind}.{port}.log"
        pin = ["taskset", "-c", "0"]
        env = None
        peers = str(s.peers)
        if kind == "hearth":
            data = Path(tempfile.mkdtemp(prefix="data.", dir=self.tmp_root))
            env = {**os.environ, **hearthenv.hearth_bench_env(s.root / "bench/hearth-env.sh", port, data),
                   **(env_extra or {})}
            cmd = [*pin, str(s.hearth_bin)]
            url, protocol = f"ws://127.0.0.1:{port}/ws", "hearth"
        elif kind == "ws":
            cmd = [*pin, "node", f"{peers}/ws-server.js", str(port)]
            url, protocol = f"ws://127.0.0.1:{port}/", "raw"
        elif kind == "socketio":
            cmd = [*pin, "node", f"{peers}/socketio-server.js", str(port)]
            url, protocol = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", "socketio"
        elif kind == "bare":
            cmd = [*pin, str(s.bare_bin), str(port)] + (["--page", str(bare_page)] if bare_page else [])
            url, protocol = f"ws://127.0.0.1:{port}/", "raw"
        else:
            raise Fatal(f"unknown server {kind}")
        with open(log, "w") as out:
            proc = self.procs.start(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, grace=3.0)
        server = Server(kind, port, url, protocol, proc, log)
        for _ in range(100):
            if not alive(proc):
                sys.stderr.write(log.read_text(errors="replace"))
                raise Fatal(f"{kind} exited while starting (log above: {log})")
            if port_in_use(port):
                return server
            time.sleep(0.1)
        raise Fatal(f"{kind} did not listen on 127.0.0.1:{port} within 10 s (log: {log})")

    def stop(self, server: Server) -> None:
        terminate(server.proc, 5.0)
        self.procs.forget(server.proc)
        for data in self.tmp_root.glob("data.*"):
            shutil.rmtree(data, ignore_errors=True)
