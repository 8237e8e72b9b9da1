"""Run a focused subset of the tests under valgrind's memcheck.

Used by ``make valgrind`` (against the normal in-place build).  One pytest
process runs under ``valgrind --tool=memcheck`` with PYTHONMALLOC=malloc (so
every Python object is a malloc block memcheck tracks), the suppressions in
tests/tools/valgrind-python.supp (interpreter noise only), and one log per
process in build/valgrind/ (forked children are followed; exec'd children,
e.g. subprocesses, run natively).  Only the ``uvcore`` half of the tests
parametrized by loop implementation runs (-p uvcore_only).

The modules (VALGRIND_MODULES in the Makefile) exercise libuv handles and
buffers: TCP, UDP, pipes, timers, call_soon, TLS...  Fails if memcheck
reports any error that is not suppressed (invalid read/write/free, use of
uninitialised values outside the interpreter, overlapping copies, bad
syscall parameters...), if pytest fails, or if its session did not finish.
The summary counts errors by kind and says which have a uvcore or libuv
frame in their stack.

Usage: python tests/tools/valgrind.py [--modules "test_tcp test_udp"]
       [--track-origins] [-- pytest arguments]
"""

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tests", "tools")

DEFAULT_MODULES = "test_call_soon test_timers test_tcp test_udp test_pipes test_tls"
ERROR_EXIT = 99

# Tests that cannot pass at valgrind's speed (some 30 times slower), by node
# id: they check wall-clock bounds that no slowdown can meet.
DESELECT = {
    # 100 concurrent TLS handshakes + 16 KiB echoes within a 25 s bound.
    "tests/test_tls.py::test_many_concurrent_tls_clients[uvcore]",
    # a 0.5 s handshake timeout must fire in under 2 s of wall-clock time.
    "tests/test_tls.py::test_client_handshake_timeout[uvcore]",
}

# Frames that belong to uvcore: its extension module (Cython-generated code
# and uvcore/includes), and libuv compiled into it.
UVCORE_FRAME = re.compile(r"_uvcore|__pyx_|uvcore/|\buv_|\buv__|vendor/libuv")
ERROR_START = re.compile(r"^==(\d+)== (\S.*)$")
# A crash (not a process ended by a test with SIGTERM / SIGKILL).
FATAL_SIGNAL = re.compile(r"Process terminating with default action of signal \d+ "
                          r"\(SIG(SEGV|BUS|ILL|FPE|ABRT)\)")
FRAME = re.compile(r"^==\d+==\s+(at|by) 0x[0-9A-F]+: (.*)$")


def log(msg):
    print(f"valgrind: {msg}", flush=True)


def parse_log(path):
    """[(kind, frames)] of the errors memcheck reported in one log."""
    errors = []
    cur = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = FRAME.match(line)
            if m and cur is not None:
                cur[1].append(m.group(2))
                continue
            m = ERROR_START.match(line)
            if m:
                text = m.group(2)
                cur = None
                if (text.startswith(("Invalid ", "Conditional jump", "Use of uninitialised",
                                     "Syscall param", "Mismatched free", "Source and destination",
                                     "Argument '", "Jump to the invalid"))
                        or "uninitialised" in text or FATAL_SIGNAL.match(text)):
                    cur = (text, [])
                    errors.append(cur)
            elif line.startswith("==") and cur is not None and line.strip().endswith("=="):
                cur = None
    return errors


def error_summary(path):
    with open(path, errors="replace") as f:
        for line in f:
            if "ERROR SUMMARY:" in line:
                m = re.search(r"ERROR SUMMARY: (\d+) errors from (\d+) contexts"
                              r" \(suppressed: (\d+) from (\d+)\)", line)
                if m:
                    return tuple(int(x) for x in m.groups())
    return None


def junit_counts(path):
    """tests / failures / errors / skipped from pytest's JUnit report."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = dict(tests=0, failures=0, errors=0, skipped=0)
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", default=DEFAULT_MODULES,
                    help=f"test modules (default: {DEFAULT_MODULES})")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "valgrind"))
    ap.add_argument("--valgrind", default=shutil.which("valgrind") or "valgrind")
    ap.add_argument("--track-origins", action="store_true",
                    help="say where uninitialised values come from (slower)")
    ap.add_argument("--all-impls", action="store_true",
                    help="run the asyncio half of impl-parametrized tests too")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()

    work = os.path.abspath(args.work)
    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    targets = []
    for name in args.modules.replace(",", " ").split():
        if "::" in name or os.sep in name:
            targets.append(name)
            continue
        name = name[:-3] if name.endswith(".py") else name
        name = name if name.startswith("test_") else "test_" + name
        path = os.path.join("tests", name + ".py")
        if not os.path.isfile(os.path.join(ROOT, path)):
            sys.exit(f"valgrind: no test module {path}")
        targets.append(path)

    junit = os.path.join(work, "pytest-report.xml")
    supp = os.path.join(TOOLS, "valgrind-python.supp")
    cmd = [args.valgrind, "--tool=memcheck", f"--error-exitcode={ERROR_EXIT}",
           "--leak-check=no", "--num-callers=40", "--fair-sched=yes",
           f"--suppressions={supp}", "--gen-suppressions=all",
           "--child-silent-after-fork=no", "--trace-children=no",
           f"--log-file={os.path.join(work, 'memcheck.%p.log')}"]
    if args.track_origins:
        cmd.append("--track-origins=yes")
    cmd += [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
            f"--junit-xml={junit}", "-q"]
    if not args.all_impls:
        cmd += ["-p", "uvcore_only"]
    cmd += [f"--deselect={nodeid}" for nodeid in sorted(DESELECT)]
    cmd += targets + args.pytest_args

    env = dict(os.environ)
    env["PYTHONMALLOC"] = "malloc"
    env["PYTHONPATH"] = os.pathsep.join([TOOLS] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    log(" ".join(cmd))
    t0 = time.monotonic()
    rc = subprocess.call(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0

    logs = sorted(glob.glob(os.path.join(work, "memcheck.*.log")))
    kinds = collections.Counter()
    in_uvcore = collections.Counter()
    shown = 0
    total_errors = 0
    suppressed = 0
    for path in logs:
        summary = error_summary(path)
        if summary:
            total_errors += summary[0]
            suppressed += summary[2]
        for kind, frames in parse_log(path):
            short = re.sub(r" of size \d+", "", kind)
            kinds[short] += 1
            ours = any(UVCORE_FRAME.search(fr) for fr in frames)
            if ours:
                in_uvcore[short] += 1
            if shown < 20:
                shown += 1
                print(f"\n----- {os.path.basename(path)}: {kind}"
                      + ("   [uvcore/libuv frame in stack]" if ours else ""))
                for fr in frames[:25]:
                    print("    " + fr)

    print(flush=True)
    log(f"pytest under valgrind ran {elapsed:.0f} s, exit status {rc}; logs in {work}")
    counts = junit_counts(junit)
    if counts:
        log("tests: {tests} run, {failures} failed, {errors} errors, {skipped} skipped "
            "(modules: {modules}); {deselected} deselected as too slow for valgrind".format(
                modules=" ".join(os.path.basename(t) for t in targets),
                deselected=len(DESELECT), **counts))
    log(f"{len(logs)} process log(s) (forked children included); errors: {total_errors} "
        f"(contexts by kind: {dict(kinds) or 'none'}); suppressed: {suppressed}")
    log(f"error contexts with a uvcore/libuv frame: {sum(in_uvcore.values())} "
        f"{dict(in_uvcore) if in_uvcore else ''}")
    problems = []
    if total_errors or kinds:
        problems.append(f"memcheck reported {total_errors} error(s)")
    if rc == ERROR_EXIT and not problems:
        problems.append("valgrind exited with the error exit code")
    elif rc not in (0, ERROR_EXIT):
        problems.append(f"pytest exited with status {rc}")
    if not (os.path.exists(junit) and os.path.getsize(junit) > 0):
        problems.append("pytest did not finish its session (no JUnit report)")
    if not logs:
        problems.append("no valgrind log written")
    for p in problems:
        log("FAIL: " + p)
    if not problems:
        log("OK: no memcheck error")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
