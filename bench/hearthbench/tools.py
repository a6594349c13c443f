"""The tools a run needs, each installed when missing and left alone when present.

Node.js with npm, taskset, timeout and curl must be there. gzip and brotli come from apt;
the peers' packages from `npm ci` in bench/peers when node_modules is older than the lock file;
the page's HTTP load tool is `oha` (`cargo install oha --locked`), or `wrk` from apt if that
install fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .config import Settings
from .console import Fatal, say, warn


class Apt:
    def __init__(self) -> None:
        self.updated = False

    def install(self, *packages: str) -> None:
        root = [] if os.geteuid() == 0 else ["sudo"]
        if not self.updated:
            subprocess.run([*root, "apt-get", "update", "-qq"], check=True)
            self.updated = True
        subprocess.run([*root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", *packages],
                       stdout=subprocess.DEVNULL, check=True)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def ensure(settings: Settings, apt: Apt) -> None:
    for tool in ("node", "npm", "taskset", "timeout", "curl"):
        if not have(tool):
            raise Fatal(f"{tool} is required (Node.js >= 18 with npm, util-linux (taskset), coreutils (timeout), curl).")
    for tool in ("gzip", "brotli"):
        if not have(tool):
            say(f"installing {tool} (apt)")
            apt.install(tool)
    peers = settings.peers
    installed = peers / "node_modules/.package-lock.json"
    if installed.is_file() and (peers / "package-lock.json").stat().st_mtime <= installed.stat().st_mtime:
        say("peers: node_modules up to date")
    else:
        say("peers: npm ci")
        subprocess.run(["npm", "ci", "--no-fund", "--no-audit", "--loglevel=error"], cwd=peers, check=True)


def http_tool(apt: Apt) -> str:
    """oha, installed if missing; wrk if that fails."""
    if have("oha"):
        tool = "oha"
    else:
        say("installing oha (cargo install oha --locked; a few minutes)")
        if subprocess.run(["nice", "-n", "10", "cargo", "install", "oha", "--locked"]).returncode == 0:
            tool = "oha"
        else:
            warn("cargo install oha failed; falling back to wrk from apt")
            if not have("wrk"):
                apt.install("wrk")
            tool = "wrk"
    done = subprocess.run([tool, "--version"], capture_output=True, text=True)
    version = (done.stdout or done.stderr).split("\n", 1)[0]
    say(f"HTTP load tool: {tool} ({version})")
    return tool
