#!/usr/bin/env python3
"""uvcore benchmark runner: scheduling micro benchmarks, I/O benchmarks and
network benchmarks.

    python benchmarks/run.py [--suite micro|io|net|all] [--loops uvcore,uvloop,asyncio]
                             [--rounds 5] [--net-rounds 3] [--workloads call_soon,...]
                             [--quick] [--no-pin]

Method (see /work/shared/BENCHMARKING.md and benchmarks/README.md): for each
round, every loop runs once, in rotated order (A B C, B C A, C A B, ...).

* micro suite: one run is one child process (``run.py --child LOOP``), pinned
  to one CPU with taskset, that runs every selected workload once on a fresh
  event loop after a short warm-up and prints one JSON line per workload.
* io suite (benchmarks/io.py: UDP echo, spawn, pipe read): measured exactly
  like micro, by the same child.
* net suite (benchmarks/net.py): one server process per (round, workload,
  loop) pinned to CPU 0, primed, then driven by a C load generator (or wrk
  for HTTP) pinned to CPU 1; a C epoll server runs alongside as the ceiling.

The parent reports ``median [min-max]`` over rounds, ratios of medians to
uvloop, the targets, and writes benchmarks/results/latest.json and latest.png
(all suites in one file and one figure).

Standard library only, plus matplotlib (optional) for the chart; a C compiler
and wrk (and httptools in the interpreter) for the net suite.

The runner is split into modules, all under benchmarks/:

* cli.py: the command line (options, --list) and the child/parent dispatch
* micro_child.py: the child (``--child``): probes a loop, measures micro/io workloads
* loop_import.py: importing a loop by name (micro child and net servers)
* micro_runner.py: launching children, probing loops, the micro/io suites' rounds
* parent.py: the parent's orchestration of the suites (pinning, suites, output)
* summary.py: statistics (medians, ratios, verdicts, the net C ceiling)
* report.py: the text report and its tables
* chart.py: the chart (latest.png)
* results.py: the results dict (JSON schema) and the JSON writer (latest.json)
* constants.py: paths, loops, targets, labels, noise threshold
* micro.py, io.py, net.py, net_servers.py: the workloads of the suites (io.py is
  loaded by path as bench_io: its name shadows the standard library's io)
"""

import os
import sys

# the sibling modules (also on sys.path when run as a script)
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from cli import main  # noqa: E402


if __name__ == "__main__":
    sys.exit(main())
