"""The steal rule, in one place, for every scenario that repeats runs.

A run during which the hypervisor stole more than BENCH_MAX_STEAL % of the machine's CPU
measured the host more than the server: it is kept in the raw results, marked superseded, and
run once more; the repeat counts whatever it measures. The rule looks only at steal, never at
the result, and applies to every server alike.
"""

from __future__ import annotations

from typing import Any

from .console import say
from .results import Results


def too_much_steal(obj: dict[str, Any], max_steal: str) -> bool:
    v = obj.get("steal_pct")
    return isinstance(v, (int, float)) and v > float(max_steal)


def record_or_repeat(results: Results, max_steal: str, scenario: str, server: str, rep: int,
                     obj: dict[str, Any], attempt: int) -> bool:
    """Records OBJ; False when it is a first attempt with too much steal, which the caller
    then runs once more."""
    if attempt == 1 and too_much_steal(obj, max_steal):
        results.record(scenario, server, rep, obj, superseded=True)
        say(f"  machine steal over {max_steal}% in that run; running it once more (the repeat counts)")
        return False
    results.record(scenario, server, rep, obj)
    return True
