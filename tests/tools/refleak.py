"""Reference / memory / file descriptor leak hunt over the test modules.

Used by ``make refleak`` (against the normal in-place build).  Each test
module runs in its own Python process, which runs the module's tests
``--runs`` times in a row in-process (pytest.main) with tracemalloc on.
After every run, with the garbage collected, it records

* live GC-tracked instances of uvcore's, asyncio's and concurrent.futures'
  classes, by type (gc.get_objects());
* traced memory (tracemalloc: every Python allocator, uvcore's PyMem_Raw*
  allocations of libuv handles included), in total and by the file of the
  Python frame that allocated it.  Files are grouped: uvcore/, asyncio/
  (with concurrent/) and tests/ (test modules, helpers, conftest: what
  uvcore's C code allocates counts against the Python line that called
  into it, often a test's or a helper's);
* open file descriptors (/proc/self/fd);
* sys.gettotalrefcount(), when the interpreter is a debug build (the
  runner uses whatever interpreter runs it);
* the number of GC-tracked objects of any type (in the JSON only: pytest,
  hypothesis and logging keep bounded caches that fill up slowly).

The first ``--warmup`` runs are discarded (imports, caches, free lists,
interned strings, pytest's and hypothesis' own state); for the remaining
runs the growth of each figure from one run to the next is computed.  A
figure leaks when it grew in *every* measured run by more than its
tolerance (noise goes up and down; a leak goes up each time):

* any uvcore / asyncio / concurrent type: more than 0 instances;
* open fds: more than 0;
* memory allocated from uvcore/, asyncio/ or tests/: more than
  --file-tolerance bytes (1 KiB: one small object per test of a module);
* traced memory in total: more than --total-tolerance bytes (16 KiB);
* total reference count (debug interpreters): more than --refs-tolerance.

Only the ``uvcore`` half of tests parametrized by loop implementation runs
(the ``asyncio`` half measures the standard library), unless --all-impls.
A module whose tests fail in any run fails too (its figures would mean
nothing).

Usage:
    python tests/tools/refleak.py [--runs 5] [--warmup 2] [--jobs 2]
        [--modules "test_timers test_tcp"] [--exclude "..."] [-- pytest args]

Figures per module and the verdicts are printed at the end and written to
build/refleak/summary.json; each module's pytest output is in
build/refleak/<module>.log, its raw figures in build/refleak/<module>.json.
"""

import argparse
import collections
import gc
import glob
import json
import os
import subprocess
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.join(ROOT, "tests")

# Not run by default: the long soak/load tests (their short versions run in
# make test, and measure RSS themselves), and the integration tests (session
# servers, third-party stacks: not uvcore's memory).
DEFAULT_EXCLUDE = {"test_stress"}

TRACKED_PREFIXES = ("uvcore", "asyncio", "concurrent")
JUDGED_GROUPS = ("uvcore/", "asyncio/", "tests/")


# --- child: one module, measured --------------------------------------------

class _Outcome:
    """pytest plugin: counts of passed / failed / skipped tests in one run."""

    def __init__(self):
        self.counts = collections.Counter()
        self.failed = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] += 1
            if report.outcome == "failed":
                self.failed.append(report.nodeid)


def _open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _collect():
    for _ in range(3):
        gc.collect()


def _measure(module_file):
    _collect()
    by_type = collections.Counter()
    total_objects = 0
    for obj in gc.get_objects():
        total_objects += 1
        tp = type(obj)
        mod = getattr(tp, "__module__", None)
        if isinstance(mod, str) and mod.startswith(TRACKED_PREFIXES):
            by_type[f"{mod}.{tp.__qualname__}"] += 1
    # This runner's own allocations (its records of earlier runs) are left out.
    own = {os.path.abspath(__file__), tracemalloc.__file__}
    by_file = collections.Counter()
    traced = 0
    for stat in tracemalloc.take_snapshot().statistics("filename"):
        filename = stat.traceback[0].filename
        if filename in own:
            continue
        by_file[_file_group(filename, module_file)] += stat.size
        traced += stat.size
    return {
        "types": dict(by_type),
        "gc_objects": total_objects,
        "traced": traced,
        "files": dict(by_file),
        "fds": _open_fds(),
        "refs": sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None,
    }


def _file_group(filename, module_file):
    """The group an allocating file counts in: uvcore/, asyncio/ (with
    concurrent.futures), tests/ (the test modules and their helpers: what
    uvcore's C code allocates is counted against the Python line that called
    it, often a test's or a helper's), or the file itself."""
    path = os.path.abspath(filename)
    if path.startswith(os.path.join(ROOT, "tests") + os.sep):
        return "tests/"
    if path.startswith(os.path.join(ROOT, "uvcore") + os.sep):
        return "uvcore/"
    norm = path.replace(os.sep, "/")
    for part in ("uvcore", "asyncio", "concurrent"):
        if f"/{part}/" in norm:
            return "asyncio/" if part == "concurrent" else f"{part}/"
    return filename


def child_main(args):
    # The in-place build in the checkout, as "python -m pytest" would import.
    sys.path.insert(0, ROOT)
    sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))
    import pytest
    import uvcore_only

    module_file = os.path.abspath(args.child)
    with open(args.json, "w"):
        pass
    tracemalloc.start(1)
    for i in range(args.runs):
        outcome = _Outcome()
        plugins = [outcome] + ([] if args.all_impls else [uvcore_only])
        t0 = time.monotonic()
        rc = pytest.main([module_file, "-q", "-p", "no:cacheprovider",
                          "--no-header",
                          *args.pytest_args], plugins=plugins)
        elapsed = time.monotonic() - t0
        m = _measure(module_file)
        m.update(run=i + 1, rc=int(rc), seconds=round(elapsed, 2),
                 outcomes=dict(outcome.counts), failed=outcome.failed[:20])
        # written out at once: nothing of ours outlives a run in memory
        with open(args.json, "a") as f:
            f.write(json.dumps(m) + "\n")
        print(f"refleak: {os.path.basename(module_file)} run {i + 1}/{args.runs}: "
              f"rc={int(rc)} {dict(outcome.counts)} {elapsed:.1f}s traced={m['traced']} "
              f"fds={m['fds']} gc_objects={m['gc_objects']}"
              + (f" refs={m['refs']}" if m["refs"] is not None else ""), flush=True)
        del m, outcome, plugins
    tracemalloc.stop()
    return 0


# --- analysis ----------------------------------------------------------------

def _deltas(values):
    return [b - a for a, b in zip(values, values[1:])]


def _grows(deltas, tolerance):
    return bool(deltas) and all(d > tolerance for d in deltas)


def analyse(result, warmup, file_tol, total_tol, refs_tol):
    runs = result["runs"]
    measured = runs[warmup - 1:] if warmup > 0 else runs
    leaks = []
    errors = []
    for r in runs:
        if r["rc"] not in (0, 5):   # 5: no tests collected (all deselected)
            errors.append(f"run {r['run']}: pytest status {r['rc']}, failed: {r['failed']}")

    types = sorted(set().union(*(r["types"] for r in measured)))
    type_growth = {}
    for t in types:
        d = _deltas([r["types"].get(t, 0) for r in measured])
        if _grows(d, 0):
            type_growth[t] = d
    if type_growth:
        leaks.append("live objects grew in every run: "
                     + ", ".join(f"{t} {d}" for t, d in type_growth.items()))

    fd_d = _deltas([r["fds"] for r in measured])
    if _grows(fd_d, 0):
        leaks.append(f"open fds grew in every run: {fd_d}")

    traced_d = _deltas([r["traced"] for r in measured])
    if _grows(traced_d, total_tol):
        leaks.append(f"traced memory grew in every run by more than {total_tol} B: {traced_d}")

    group_d = {}
    growing_files = {}
    files = sorted(set().union(*(r["files"] for r in measured)))
    for fname in files:
        d = _deltas([r["files"].get(fname, 0) for r in measured])
        if fname in JUDGED_GROUPS:
            group_d[fname] = d
            if _grows(d, file_tol):
                leaks.append(f"memory allocated from {fname} grew in every run "
                             f"by more than {file_tol} B: {_fmt_bytes(d)}")
        elif d and min(d) > 0:
            growing_files[fname] = d

    refs_d = None
    if measured and measured[0]["refs"] is not None:
        refs_d = _deltas([r["refs"] for r in measured])
        if _grows(refs_d, refs_tol):
            leaks.append(f"total refcount grew in every run by more than {refs_tol}: {refs_d}")

    top_files = sorted(growing_files.items(), key=lambda kv: -sum(kv[1]))[:3]
    return {
        "module": result["module"],
        "tests": runs[-1]["outcomes"] if runs else {},
        "seconds": round(sum(r["seconds"] for r in runs), 1),
        "traced_deltas": traced_d,
        "gc_objects_deltas": _deltas([r["gc_objects"] for r in measured]),
        "tracked_types_deltas": _deltas([sum(r["types"].values()) for r in measured]),
        "fds": [r["fds"] for r in runs],
        "refs_deltas": refs_d,
        "group_deltas": group_d,
        "growing_files": {f: d for f, d in top_files},
        "leaks": leaks,
        "errors": errors,
    }


# --- parent: every module ------------------------------------------------------

def _modules(args):
    if args.modules:
        names = args.modules.replace(",", " ").split()
    else:
        names = [os.path.basename(p)[:-3]
                 for p in sorted(glob.glob(os.path.join(TESTS, "test_*.py")))]
    exclude = set(DEFAULT_EXCLUDE if args.exclude is None
                  else args.exclude.replace(",", " ").split())
    out = []
    for n in names:
        n = os.path.basename(n)
        n = n[:-3] if n.endswith(".py") else n
        if not n.startswith("test_"):
            n = "test_" + n
        if n in exclude and not args.modules:
            continue
        path = os.path.join(TESTS, n + ".py")
        if not os.path.isfile(path):
            sys.exit(f"refleak: no test module {path}")
        out.append(path)
    return out


def _fmt_bytes(values):
    if not values:
        return "-"
    return " ".join(f"{v / 1024:+.1f}k" for v in values)


def parent_main(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    modules = _modules(args)
    print(f"refleak: {len(modules)} module(s), {args.runs} runs each "
          f"({args.warmup} warm-up), {args.jobs} at a time; logs in {work}", flush=True)
    t0 = time.monotonic()
    pending = list(modules)
    running = {}
    results = {}

    def start(path):
        name = os.path.basename(path)[:-3]
        json_path = os.path.join(work, name + ".json")
        log_path = os.path.join(work, name + ".log")
        if os.path.exists(json_path):
            os.remove(json_path)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", path,
               "--runs", str(args.runs), "--json", json_path]
        if args.all_impls:
            cmd.append("--all-impls")
        cmd += ["--", *args.pytest_args]
        logf = open(log_path, "w")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        running[proc] = (name, json_path, log_path, logf, time.monotonic())

    while pending or running:
        while pending and len(running) < args.jobs:
            start(pending.pop(0))
        done = None
        while done is None:
            for proc in running:
                if proc.poll() is not None:
                    done = proc
                    break
            else:
                time.sleep(0.2)
        name, json_path, log_path, logf, started = running.pop(done)
        logf.close()
        if done.returncode == 0 and os.path.exists(json_path):
            with open(json_path) as f:
                runs = [json.loads(line) for line in f if line.strip()]
            res = analyse({"module": name, "runs": runs}, args.warmup,
                          args.file_tolerance, args.total_tolerance, args.refs_tolerance)
        else:
            with open(log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            res = {"module": name, "leaks": [],
                   "errors": [f"runner exited with status {done.returncode}:\n{tail}"]}
        res["wall_seconds"] = round(time.monotonic() - started, 1)
        results[name] = res
        status = "LEAK" if res["leaks"] else ("ERROR" if res["errors"] else "ok")
        print(f"refleak: {name}: {status} ({res['wall_seconds']} s)", flush=True)

    # report
    print()
    cols = [("module", 24), ("tests", 5), ("traced total", 24), ("from uvcore/", 22),
            ("from asyncio/", 22), ("from tests/", 22), ("uv/aio objects", 14),
            ("fds", 7)]
    if any(r.get("refs_deltas") for r in results.values()):
        cols.append(("total refs", 18))
    hdr = " ".join(f"{c:>{w}}" if i else f"{c:{w}}" for i, (c, w) in enumerate(cols)) + "  verdict"
    print(hdr)
    print("-" * len(hdr))
    failed = []
    for name in sorted(results):
        r = results[name]
        verdict = "LEAK" if r["leaks"] else ("ERROR" if r["errors"] else "ok")
        if verdict != "ok":
            failed.append(name)
        if "traced_deltas" not in r:
            print(f"{name:24} {'':>{len(hdr) - 25}}  {verdict}")
            continue
        fds = r["fds"]
        g = r["group_deltas"]
        vals = [name, str(sum(r["tests"].values())), _fmt_bytes(r["traced_deltas"]),
                _fmt_bytes(g.get("uvcore/", [])), _fmt_bytes(g.get("asyncio/", [])),
                _fmt_bytes(g.get("tests/", [])), str(r["tracked_types_deltas"]),
                f"{fds[0]}..{fds[-1]}" if fds else "?"]
        if len(cols) > 8:
            vals.append(str(r["refs_deltas"]))
        print(" ".join(f"{v:>{w}}" if i else f"{v:{w}}" for i, (v, (_, w)) in enumerate(zip(vals, cols)))
              + f"  {verdict}")
    print()
    for name in sorted(results):
        r = results[name]
        for leak in r["leaks"]:
            print(f"LEAK  {name}: {leak}")
        if r["leaks"]:
            for f, d in r.get("growing_files", {}).items():
                print(f"      also grew in every run (not judged): {f} {_fmt_bytes(d)}")
        for err in r["errors"]:
            print(f"ERROR {name}: {err}")
    with open(os.path.join(work, "summary.json"), "w") as f:
        json.dump(results, f, indent=1)
    total = time.monotonic() - t0
    print(f"\nrefleak: {len(results)} module(s) in {total:.0f} s; "
          f"{len(failed)} failed" + (f": {' '.join(failed)}" if failed else ""))
    print(f"(growth from one run to the next, after {args.warmup} warm-up run(s); 'from X' ="
          " traced memory allocated from Python code in X; 'uv/aio objects' = live"
          " GC-tracked uvcore/asyncio/concurrent instances; 'fds' = open fds after the"
          " first and the last run)")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per module (default 5)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="runs discarded before measuring (default 2)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="modules measured at a time (default: 2, or 1 on one CPU)")
    ap.add_argument("--modules", default="",
                    help="test modules to run (default: all tests/test_*.py but the excluded)")
    ap.add_argument("--exclude", default=None,
                    help=f"modules left out (default: {' '.join(sorted(DEFAULT_EXCLUDE))})")
    ap.add_argument("--all-impls", action="store_true",
                    help="run the asyncio half of impl-parametrized tests too")
    ap.add_argument("--file-tolerance", type=int, default=1024,
                    help="bytes allocated from uvcore/, asyncio/ or tests/ may grow "
                         "per run (default 1024)")
    ap.add_argument("--total-tolerance", type=int, default=16 * 1024,
                    help="bytes traced memory may grow per run (default 16384)")
    ap.add_argument("--refs-tolerance", type=int, default=20,
                    help="total refcount growth per run tolerated (default 20)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "refleak"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    if args.runs < args.warmup + 2:
        ap.error("--runs must be at least --warmup + 2 (two growth figures)")
    if args.child:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
