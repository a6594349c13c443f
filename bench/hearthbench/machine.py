"""The host: what it is, what /proc says about it, and the open-files limit.

Guarantees the run happens on Linux with at least two CPUs (the server on CPU 0, the generator
on CPU 1) and with an open-files limit high enough for the largest scenario, which every child
process inherits.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess

from .config import Settings
from .console import Fatal, say, warn

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_count() -> int:
    return os.cpu_count() or 1


def check_host() -> None:
    if platform.system() != "Linux":
        raise Fatal("Linux only (taskset, /proc).")
    cpus = cpu_count()
    if cpus < 2:
        raise Fatal("needs at least 2 CPUs (the server on CPU 0, the generator on CPU 1); "
                    f"this machine has {cpus}.")


def raise_open_files(settings: Settings) -> None:
    """65,535 open files, or the hard limit if that is enough for the largest scenario."""
    want = 65535
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < settings.need_fds:
            raise Fatal(
                f"the open-files limit cannot go above {hard}, but the {settings.idle.conns}-connection "
                f"runs need about {settings.need_fds} per process.\n"
                "      Raise the hard limit (as root: `ulimit -Hn 65535` in this shell, LimitNOFILE= for a service, or\n"
                "      /etc/security/limits.conf), or run a smaller set with BENCH_QUICK=1.") from None
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        shown = "unlimited" if hard == resource.RLIM_INFINITY else hard
        warn(f"could not raise the open-files limit to {want}; using the hard limit {shown} "
             f"(enough: {settings.need_fds} needed).")
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    say(f"open files limit: {'unlimited' if soft == resource.RLIM_INFINITY else soft}")


def process_cpu_ticks(pid: int) -> int | None:
    """User+system CPU ticks of a process so far (all its threads), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces:
    # state is field 3, utime field 14, stime field 15.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """The machine's stolen and total CPU ticks so far (/proc/stat), for the page runs; the
    generator measures its own runs (`steal_pct` in its JSON)."""
    with open("/proc/stat") as f:
        for row in f:
            if row.startswith("cpu "):
                ticks = [int(v) for v in row.split()[1:9]]
                return ticks[7], sum(ticks)
    raise Fatal("/proc/stat has no `cpu` line")


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def describe() -> str:
    """CPU model x count, kernel, node and rustc versions: the report's machine line."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for row in f:
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    node = _version(["node", "--version"])
    rustc = " ".join(_version(["rustc", "--version"]).split(" ")[:2])
    return f"{model} x {cpu_count()}, {platform.release()}, node {node}, {rustc}"


def _version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
