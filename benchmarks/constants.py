"""Constants shared by the benchmark runner's modules: paths, the loops, the
targets, the workload labels and the noise threshold.

TARGETS, TARGETS_VS_ASYNCIO and LABELS are updated in place with the net, io
and stacks suites' entries by the parent (parent.parent_main), so import the dicts,
do not copy them.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS_DIR = os.path.join(HERE, "results")
MARK = "@@BENCH "           # prefix of the child's JSON result lines on stdout

ALL_LOOPS = ["uvcore", "uvloop", "asyncio"]
BASELINE = "uvloop"
SUBJECT = "uvcore"

# uvcore / uvloop, ratio of medians that uvcore must reach
TARGETS = {
    "call_soon": 1.3,
    "call_soon_2args": 1.6,
    "call_soon_threadsafe": 1.5,
    "timer_churn": 3.0,
    "sleep0": 1.5,
    "future_resolve": 1.2,
    "task_create": 1.1,
}

LABELS = {
    "call_soon": "call_soon",
    "call_soon_2args": "call_soon 2 args",
    "call_soon_threadsafe": "call_soon_threadsafe",
    "timer_churn": "timer sched+cancel",
    "sleep0": "sleep(0) ping-pong",
    "future_resolve": "future resolve",
    "task_create": "task create+await",
    "task_create_seq": "task create+await (seq)",
}

# A sample is "disturbed" when other processes used more than this fraction
# of a CPU, on the CPUs the child may run on, beyond the CPUs the child itself
# could use.  A disturbed sample is re-measured at once (up to MAX_RETRIES
# times) and the least disturbed attempt is kept.  If it is still disturbed it
# is flagged; the statistics then use only clean samples (when there are
# enough, see _use_clean), and the runner adds up to --extra-rounds rounds
# for workloads that are short of clean samples.
DISTURBED = 0.05
MAX_RETRIES = 1

# uvcore / asyncio must be above this (in addition to TARGETS); filled from net.py
TARGETS_VS_ASYNCIO = {}

SUITES = ["micro", "io", "net", "stacks", "overhead"]     # the order of the report
# --suite all: every suite but the opt-in ones
OPT_IN_SUITES = []     # suites left out of "all" (none at present)
DEFAULT_SUITES = [s for s in SUITES if s not in OPT_IN_SUITES]


def io_module():
    """The io suite's workloads (benchmarks/io.py).  Its file name is the
    standard library's ``io``, which is always imported first, so it is
    loaded by path, as ``bench_io``."""
    import importlib.util
    import sys
    mod = sys.modules.get("bench_io")
    if mod is None:
        spec = importlib.util.spec_from_file_location("bench_io", os.path.join(HERE, "io.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bench_io"] = mod
        spec.loader.exec_module(mod)
    return mod
