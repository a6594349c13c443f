"""Child processes: every one started through here is stopped when the benchmark ends.

`Procs` tracks what is running. `bounded` runs a command under coreutils `timeout` (so a hung
generator or bench cannot stall the run) and waits for it. `stop_all` (called from `run.main`'s
`finally`) stops whatever is still running: a bounded command with SIGTERM (`timeout` passes it
on), a server with SIGTERM and, if it has not gone within 3 s, SIGKILL. `on_signals` turns
SIGINT and SIGTERM into exceptions, so an interrupt unwinds through those `finally` blocks and
the process exits with 130 or 143 as a shell script would.
"""

from __future__ import annotations

import signal
import subprocess
from typing import IO


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; `status` is the exit status to end with."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def on_signals() -> None:
    def handler(signum: int, _frame) -> None:
        # Once unwinding has started, a second signal must not interrupt the cleanup.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(128 + signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def terminate(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM, up to GRACE seconds to exit, then SIGKILL; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Procs:
    def __init__(self) -> None:
        self._running: list[tuple[subprocess.Popen, float]] = []

    def start(self, cmd: list[str], *, stdout: IO | int | None = None, stderr: IO | int | None = None,
              env: dict[str, str] | None = None, grace: float = 0.0) -> subprocess.Popen:
        """Starts CMD in the background; `stop_all` gives it GRACE seconds after SIGTERM."""
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env, stdin=subprocess.DEVNULL)
        self._running.append((proc, grace))
        return proc

    def forget(self, proc: subprocess.Popen) -> None:
        self._running = [(p, g) for p, g in self._running if p is not proc]

    def bounded(self, secs: int, cmd: list[str], *, stdout: IO | int | None = None,
                stderr: IO | int | None = None, env: dict[str, str] | None = None) -> int:
        """Runs CMD under `timeout` and waits for it: its exit status, 124 (or 137 after the
        SIGKILL 5 s later) when it ran out of time."""
        proc = self.start(["timeout", "--kill-after=5", str(secs), *cmd], stdout=stdout, stderr=stderr, env=env)
        # Interrupted while waiting, it stays tracked and `stop_all` stops it.
        status = proc.wait()
        self.forget(proc)
        return status

    def stop_all(self) -> None:
        for proc, grace in reversed(self._running):
            if grace:
                terminate(proc, grace)
            elif proc.poll() is None:
                proc.terminate()
        self._running.clear()
