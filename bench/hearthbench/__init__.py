"""Hearth's benchmark: Hearth and its Node peers through the same scenarios, one table.

`bench/run.sh` runs this package (`python3 -m hearthbench`). Each module owns one concern:

- `config`: the settings read from the environment, and the scenario sizes they imply
- `console`: progress lines, warnings and the one fatal error type
- `machine`: what the host is and what it says (/proc), the open-files limit
- `tools`: the tools a run needs, installed when missing; the Node peers' packages
- `build`: the cargo builds and the binaries they must leave behind
- `procs`: every child process, each bounded by a timeout, all stopped on exit or a signal
- `hearthenv`: how a benchmarked Hearth is configured and a guest made (bench/hearth-env.sh)
- `servers`: a fresh server per run, on a free port, pinned to CPU 0
- `results`: the raw results directory, the one-run lock, the JSON lines in and out
- `steal`: the rule that repeats a run during which the hypervisor stole too much CPU
- `loadgen`: one `hearth-loadgen` run on CPU 1 and its JSON result
- `scenarios`, `sweep`, `page`, `store`, `wasm`: one module per kind of measurement
- `report`, `targets`: the Markdown table and the issue's targets, from the JSON lines
- `context`: `Bench`, what every scenario is handed
- `run`: the order of it all
"""
