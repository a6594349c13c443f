"""The raw results: their directory, the one-run lock, and the JSON lines in and out.

A run's raw directory is `bench/results/raw/<UTC time>-<pid>/`; `results.jsonl` there holds one
JSON object per measured run, labelled with `scenario`, `server` and `rep` (and
`superseded_for_steal` when the steal rule replaced it). Only one benchmark measures at a time:
`lock` holds `bench/results/.lock` for the rest of the process.
"""

from __future__ import annotations

import fcntl
import json
import os
import statistics
import time
from pathlib import Path
from typing import IO, Any

from .config import Settings
from .console import Fatal, say

RESULTS_GITIGNORE = "# Raw logs stay local; the latest table is kept.\n*\n!.gitignore\n!latest.md\n"


def make_raw_dir(settings: Settings) -> Path:
    results = settings.results
    raw = results / "raw" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    raw.mkdir(parents=True, exist_ok=True)
    gitignore = results / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(RESULTS_GITIGNORE)
    return raw


def lock(settings: Settings) -> IO[str]:
    """Waits (at most an hour) until no other benchmark measures; returns the held lock, to be
    kept referenced until the end: two runs at once would share both cores and both be wrong."""
    f = open(settings.results / ".lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return f
    except BlockingIOError:
        pass
    say("another bench/run.sh is measuring; waiting for it to finish (at most 1 hour)")
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            pass
    raise Fatal("gave up waiting for the other bench/run.sh (lock: bench/results/.lock)")


def parse(raw: str) -> dict[str, Any]:
    """One generator JSON line as an object, or an error object that says why it is not one."""
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
    except Exception as e:
        obj = {"error": "unreadable loadgen output: %s" % e, "raw": raw[-500:]}
    return obj


class Results:
    def __init__(self, raw: Path):
        self.raw = raw
        self.jsonl = raw / "results.jsonl"
        self.jsonl.write_text("")

    def record(self, scenario: str, server: str, rep: int, obj: dict[str, Any],
               superseded: bool = False) -> dict[str, Any]:
        """Appends one result line, labelled (and marked when a repeat replaces it)."""
        obj = {**obj, "scenario": scenario, "server": server, "rep": rep}
        if superseded:
            obj["superseded_for_steal"] = True
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(obj) + "\n")
        return obj


class Rows:
    """The recorded results read back, for the tables. Runs repeated under the steal rule stay
    in `superseded`; every other view counts only their repeats."""

    def __init__(self, jsonl: Path):
        all_rows = [json.loads(row) for row in open(jsonl) if row.strip()]
        self.rows = [r for r in all_rows if not r.get("superseded_for_steal")]
        self.superseded = [r for r in all_rows if r.get("superseded_for_steal")]

    def runs(self, scn: str, srv: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["scenario"] == scn and r["server"] == srv]

    def good(self, scn: str, srv: str) -> list[dict[str, Any]]:
        return [r for r in self.runs(scn, srv) if "error" not in r]

    def med(self, scn: str, srv: str, key: str) -> float | None:
        vals = [r[key] for r in self.good(scn, srv)
                if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
        return statistics.median(vals) if vals else None
