"""The release bundle's size: raw, `gzip -9` and `brotli -q 11` bytes of target/site/pkg/hearth.wasm,
and `brotli -q 11` bytes of the JS that loads it (hearth.js).

Sized right after `cargo leptos build --release` when the run builds (a later debug build
rewrites target/site in place), otherwise when the wasm step runs.
"""

from __future__ import annotations

import subprocess

from .config import Settings
from .console import say, warn
from .context import Bench

Sizes = tuple[int, int, int, int]


def sizes(settings: Settings) -> Sizes | None:
    wasm = settings.wasm
    if not wasm.is_file():
        return None

    def packed(cmd: list[str], path=wasm) -> int:
        return len(subprocess.run([*cmd, str(path)], capture_output=True, check=True).stdout)

    js = wasm.with_name("hearth.js")
    js_brotli = packed(["brotli", "-q", "11", "-c"], js) if js.is_file() else 0
    return (wasm.stat().st_size, packed(["gzip", "-9", "-c"]), packed(["brotli", "-q", "11", "-c"]),
            js_brotli)


def run(b: Bench, built: Sizes | None) -> None:
    s = b.settings
    measured = built
    if measured is None:
        if s.skip_build:
            warn("BENCH_SKIP_BUILD=1: sizing whatever target/site holds now (a debug `cargo leptos build` "
                 "would have replaced the release WASM)")
        measured = sizes(s)
    if measured is None:
        b.results.record("wasm", "hearth", 1, {"error": "target/site/pkg/hearth.wasm is missing (cargo leptos build --release)"})
        return
    raw, gz, br, js = measured
    b.results.record("wasm", "hearth", 1, {"raw": raw, "gzip": gz, "brotli": br, "js_brotli": js})
    say(f"wasm: {raw} bytes raw, {gz} gzip -9, {br} brotli -q 11; hearth.js {js} brotli -q 11")
