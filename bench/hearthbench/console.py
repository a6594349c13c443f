"""Console output: progress lines on stdout, warnings on stderr, and `Fatal`.

Every message the benchmark prints goes through here so the prefixes stay the same
(`==> ` for progress, `bench: ` for warnings and errors). A fatal condition raises `Fatal`;
`run.main` prints it and exits 1 after the cleanup has stopped every process.
"""

import sys


class Fatal(Exception):
    """The benchmark cannot go on; the message says why and what to do."""


def say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def warn(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def line(msg: str) -> None:
    """One result line of the progress log, printed as it is."""
    print(msg, flush=True)
