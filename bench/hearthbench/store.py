"""The store bench: `cargo bench --features ssr --bench store`, its executable run on CPU 0.

Built once with `--no-run` (or, with BENCH_SKIP_BUILD=1, the newest `store-*` executable
already in target/release/deps), then run directly: pinned like the servers, and with no cargo
or rebuild inside the timed run. Its table of cases is recorded as one `store` result with
`rows` (case, messages, seconds, msgs/s) and `notes` (its target lines), or an `error`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from .console import say, warn
from .context import Bench


def parse_log(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    rows, notes, in_table = [], [], False
    for row in lines:
        s = row.rstrip()
        if re.search(r"\bmsgs?/s\s*$", s) and not re.search(r"\d\s*$", s):
            in_table = True  # the header: "case  messages  seconds  msgs/s"
            continue
        m = re.match(r"^\s*(\S.*?)\s{2,}(\d+)\s+([\d.]+)\s+([\d.]+)\s*$", s)
        if in_table and m:
            rows.append({"case": m.group(1), "messages": int(m.group(2)),
                         "seconds": float(m.group(3)), "msgs_per_sec": float(m.group(4))})
            continue
        if in_table and not s.strip():
            in_table = False
        if re.match(r"^\s*target\b", s, re.I):
            notes.append(s.strip())
    if not rows:  # another format: keep any line that gives a rate
        notes += [r.strip() for r in lines if re.search(r"\d[\d,_.]*\s*(?:[kKM]\s*)?(?:msg|msgs|messages)\s*/\s*s", r)]
    return {"rows": rows, "notes": notes, "tail": lines[-15:]}


def _executable(b: Bench) -> tuple[Path | None, str]:
    """The bench executable, or None and why not."""
    s, raw = b.settings, b.raw
    build_log = raw / "store-build.log"
    if not s.skip_build:
        with open(build_log, "w") as log:
            rc = subprocess.run(["cargo", "bench", "--features", "ssr", "--bench", "store", "--no-run"],
                                stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            sys.stderr.write("".join(build_log.read_text(errors="replace").splitlines(keepends=True)[-20:]))
            return None, f"cargo bench --features ssr --bench store did not build (log: {s.rel(build_log)})"
        found = re.findall(r"^ *Executable .*\((.*)\)$", build_log.read_text(errors="replace"), re.M)
        exe = found[-1] if found else ""
    else:
        candidates = [p for p in (s.root / "target/release/deps").glob("store-*") if not p.name.endswith(".d")]
        exe = str(max(candidates, key=lambda p: p.stat().st_mtime)) if candidates else ""
    path = Path(exe) if exe.startswith("/") or not exe else s.root / exe
    if not exe or not os.access(path, os.X_OK) or not path.is_file():
        return None, f"could not find the store bench executable (log: {s.rel(build_log)})"
    return path, ""


def run(b: Bench) -> None:
    s = b.settings
    say("store: cargo bench --features ssr --bench store   (run pinned to CPU 0)")
    store_log = b.raw / "store.log"
    exe, err = _executable(b)
    if exe is not None:
        store_log.write_text(f"{exe} --bench\n")
        with open(store_log, "a") as log:
            rc = b.procs.bounded(600, ["taskset", "-c", "0", str(exe), "--bench"], stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ, "BENCH_QUICK": "1" if s.quick else "0"})
        if rc != 0:
            err = f"the store bench exited with {rc} (log: {s.rel(store_log)})"
    if err:
        warn(err)
        d = b.results.record("store", "hearth", 1, {"error": err})
    else:
        d = b.results.record("store", "hearth", 1, parse_log(store_log.read_text(errors="replace")))
    summary = d.get("error") or "; ".join("%s %.0f msgs/s" % (r["case"], r["msgs_per_sec"]) for r in d["rows"])
    say(f"store: {summary or 'no rows found'}")
