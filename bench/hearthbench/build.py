"""The builds (unless BENCH_SKIP_BUILD=1) and the binaries a run cannot do without.

The cargo commands, in this order: the generator and the bare server; the site and WASM
(`cargo leptos build --release`, only when the wasm or page step runs); the Hearth server.
"""

from __future__ import annotations

import os
import subprocess

from . import wasm
from .config import Settings
from .console import Fatal, say


def cargo(*args: str) -> None:
    say(" ".join(("cargo", *args)))
    subprocess.run(["cargo", *args], check=True)


def build(settings: Settings) -> wasm.Sizes | None:
    """Builds what the run needs; the WASM's sizes if the site was built."""
    s = settings
    sizes = None
    if s.skip_build:
        say("BENCH_SKIP_BUILD=1: using what is in target/")
    else:
        # The generator first: its feature set differs from the server's, and switching
        # features rebuilds the `hearth` library, so the two server builds (same features) go
        # together.
        cargo("build", "--release", "--features", "loadgen", "--bin", "hearth-loadgen", "--bin", "hearth-bare")
        if s.want("wasm") or s.want("http"):
            if subprocess.run(["cargo", "leptos", "--version"], capture_output=True).returncode != 0:
                raise Fatal("cargo-leptos is missing: run scripts/setup.sh once (it installs it and the WASM tools).")
            say("cargo leptos build --release   (site + WASM)")
            subprocess.run(["cargo", "leptos", "build", "--release"], check=True)
            # Sized at once: any later `cargo leptos build` (a debug one for the tests, say)
            # rewrites target/site in place.
            sizes = wasm.sizes(s)
        cargo("build", "--release", "--features", "ssr", "--bin", "hearth")
    check(s)
    return sizes


def check(s: Settings) -> None:
    needed = [(s.hearth_bin, s.has_server("hearth")), (s.bare_bin, s.has_server("bare")), (s.loadgen, True)]
    for path, used in needed:
        if used and not os.access(path, os.X_OK):
            raise Fatal(f"{path} is missing (build it, or drop BENCH_SKIP_BUILD).")
    if s.want("http") and s.has_server("hearth") and not (s.root / "target/site/pkg").is_dir():
        raise Fatal("target/site is missing: run `cargo leptos build --release` (the room page needs it).")
