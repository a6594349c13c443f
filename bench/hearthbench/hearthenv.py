"""How a benchmarked Hearth is started and how the page runs become a guest.

Both come from `bench/hearth-env.sh`, which `bench/page-cpu.sh` sources too: the functions are
called through bash, so the two benchmarks start the same server the same way from one list.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _call(env_sh: Path, function: str, *args: str) -> str:
    script = f'. "$0" && {function} "$@"'
    done = subprocess.run(["bash", "-c", script, str(env_sh), *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def hearth_bench_env(env_sh: Path, port: int, data_dir: Path) -> dict[str, str]:
    """The NAME=value settings a benchmarked Hearth runs with (`hearth_bench_env PORT DIR`)."""
    words = _call(env_sh, "hearth_bench_env", str(port), str(data_dir)).split()
    return dict(word.split("=", 1) for word in words)


def guest_cookie(env_sh: Path, port: int) -> str:
    """A `hearth_session=…` pair for a new guest (`guest_cookie PORT`); empty if refused."""
    try:
        return _call(env_sh, "guest_cookie", str(port))
    except subprocess.CalledProcessError:
        return ""
