"""`Bench`: what every scenario needs for one benchmark run, built once by `run.main`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .loadgen import Loadgen
from .procs import Procs
from .results import Results
from .servers import Servers


@dataclass
class Bench:
    settings: Settings
    procs: Procs
    raw: Path  # this run's raw results directory
    results: Results
    servers: Servers
    loadgen: Loadgen
    http_tool: str  # "oha", "wrk", or "" when the page scenario does not run
