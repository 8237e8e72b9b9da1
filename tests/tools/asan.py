"""Run the test suite against the AddressSanitizer + UBSan build of uvcore.

Used by ``make asan``, which first builds the extension (and libuv) with
``UVCORE_ASAN=1 setup.py build_ext --build-lib build/asan/lib --build-temp
build/asan/tmp``: the normal in-place build in uvcore/ is left alone.

This script then

* assembles a private tree, build/asan/tree/: pyproject.toml, a copy of
  tests/, and a uvcore/ package made of the Python sources plus the ASAN
  extension.  pytest runs there, so the main process, every child Python the
  tests start (they put the imported package's folder first on PYTHONPATH)
  and the integration servers that import the package from the repository
  root (uvicorn, gunicorn) all import the ASAN build;
* runs pytest with the sanitizer runtimes preloaded (CPython is not built
  with ASAN, so libasan must come first), PYTHONMALLOC=malloc (every Python
  object is then a malloc block that ASAN tracks, so a use after free of one
  is caught), and every report written to build/asan/reports/;
* checks that the uvcore imported by pytest, and by every child Python that
  imported it, is the ASAN build (a sitecustomize in the tree records it);
* fails if pytest fails, if its session did not finish, or if any sanitizer
  report was written (or printed to pytest's output).

Leak detection is off (detect_leaks=0): CPython does not free everything at
exit.  Leaks are what ``make refleak`` looks for.

Usage: python tests/tools/asan.py [--lib build/asan/lib] [--work build/asan]
       [--pymalloc] [--deselect-none] [-- pytest arguments]
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Tests that cannot work under ASAN, by node id prefix (pytest --deselect).
# Keep this short, and say why for each.
DESELECT = {
    # Closes the transport 0.1 s after calling start_tls() and expects the
    # ClientHello to have been sent by then; under ASAN, OpenSSL's allocations
    # go through the sanitizer's allocator and ssl.create_default_context()
    # alone takes ~70 ms (25 ms without), so the window is missed by both
    # loops (asyncio's too) in a full run.
    "tests/test_start_tls.py::test_transport_closed_during_start_tls",
    # Lowers RLIMIT_AS to the child's VmSize + 32 MiB and expects reads to
    # fail with MemoryError: ASAN's allocator serves memory from address space
    # it reserved at start-up, so the limit is never reached (both loops).
    "tests/test_faults_process.py::test_reading_under_memory_exhaustion",
}

# Printed by the sanitizers; any of these in pytest's own output fails the run
# too (reports normally go to the log files).
REPORT_PATTERNS = [
    re.compile(r"ERROR: AddressSanitizer"),
    re.compile(r"AddressSanitizer:DEADLYSIGNAL"),
    re.compile(r"ERROR: LeakSanitizer"),
    re.compile(r"runtime error: "),
    re.compile(r"UndefinedBehaviorSanitizer"),
]

# With allocator_may_return_null=1 a request ASAN cannot serve (tests ask for
# e.g. a 1 TiB read buffer) returns NULL, as malloc would, and leaves this
# line in the log: not a report.
BENIGN = re.compile(r"^==\d+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes\n?",
                    re.MULTILINE)

SITECUSTOMIZE = '''\
# Written by tests/tools/asan.py: records, at exit, which uvcore extension
# this process imported (if any), so that the run can check that every
# Python process of the test suite used the ASAN build.
import atexit as _atexit
import os as _os
import sys as _sys


def _uvcore_asan_record():
    mod = _sys.modules.get("uvcore._uvcore")
    if mod is None:
        return
    try:
        path = _os.path.join({records!r}, "%d.txt" % _os.getpid())
        with open(path, "w") as f:
            f.write(_os.path.realpath(mod.__file__) + "\\n")
            f.write(" ".join(_sys.argv)[:300] + "\\n")
    except Exception:
        pass


_atexit.register(_uvcore_asan_record)
'''

PLUGIN = '''\
# Written by tests/tools/asan.py: loaded into pytest with -p; shows which
# uvcore is tested and stops the session at once if it is not the ASAN build.
import os
import subprocess

import pytest

EXPECTED = {expected!r}
RUNTIMES = {runtimes!r}

# The integration tests' database servers are not under test, and initdb
# hangs with libasan preloaded: they start without the sanitizer runtimes.
SERVERS = {{"initdb", "postgres", "pg_ctl", "pg_isready", "redis-server"}}
_popen_init = subprocess.Popen.__init__


def _without_sanitizers(self, args, *rest, **kwargs):
    prog = args if isinstance(args, (str, bytes, os.PathLike)) else (args[0] if args else "")
    if os.path.basename(os.fsdecode(prog)) in SERVERS:
        env = dict(kwargs.get("env") or os.environ)
        kept = [p for p in env.get("LD_PRELOAD", "").split() if p not in RUNTIMES]
        if kept:
            env["LD_PRELOAD"] = " ".join(kept)
        else:
            env.pop("LD_PRELOAD", None)
        kwargs["env"] = env
    return _popen_init(self, args, *rest, **kwargs)


subprocess.Popen.__init__ = _without_sanitizers


def _ext_path():
    import uvcore._uvcore as ext
    return os.path.realpath(ext.__file__)


def pytest_report_header(config):
    import uvcore
    return ["uvcore: %s" % uvcore.__file__,
            "uvcore extension (ASAN build): %s" % _ext_path()]


def pytest_sessionstart(session):
    got = _ext_path()
    if got != EXPECTED:
        pytest.exit("make asan: pytest imported %s, not the ASAN build %s"
                    % (got, EXPECTED), returncode=3)
    with open({marker!r}, "w") as f:
        f.write(got + "\\n")
'''


def log(msg):
    print(f"asan: {msg}", flush=True)


def find_extension(lib):
    found = glob.glob(os.path.join(lib, "uvcore", "_uvcore*.so"))
    if len(found) != 1:
        sys.exit(f"asan: expected one uvcore/_uvcore*.so in {lib}, found {found}; "
                 "build it with UVCORE_ASAN=1 setup.py build_ext --build-lib ...")
    return os.path.abspath(found[0])


def sanitizer_runtimes(so):
    """The libasan and libubsan the extension is linked to (from ldd)."""
    out = subprocess.run(["ldd", so], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(lib(asan|ubsan)\.so[.\d]*)\s+=>\s+(\S+)", line)
        if m:
            libs[m.group(2)] = m.group(3)
    if "asan" not in libs:
        sys.exit(f"asan: {so} is not linked to libasan: not an ASAN build "
                 f"(UVCORE_ASAN=1 missing?)\nldd says:\n{out}")
    return [libs["asan"]] + ([libs["ubsan"]] if "ubsan" in libs else [])


def assemble_tree(tree, so):
    """tree/: pyproject.toml, tests/ and uvcore/ (sources + the ASAN .so)."""
    if os.path.isdir(tree):
        shutil.rmtree(tree)
    os.makedirs(tree)
    shutil.copy2(os.path.join(ROOT, "pyproject.toml"), tree)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(os.path.join(ROOT, "tests"), os.path.join(tree, "tests"), ignore=ignore)
    pkg = os.path.join(tree, "uvcore")
    os.makedirs(pkg)
    src = os.path.join(ROOT, "uvcore")
    for name in sorted(os.listdir(src)):
        if name.endswith((".py", ".pyi")) or name == "py.typed":
            shutil.copy2(os.path.join(src, name), pkg)
    dest = os.path.join(pkg, os.path.basename(so))
    shutil.copy2(so, dest)
    return os.path.realpath(dest)


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
    ap.add_argument("--lib", default="build/asan/lib",
                    help="the --build-lib of the ASAN build_ext")
    ap.add_argument("--work", default="build/asan",
                    help="where the tree, the reports and the logs go")
    ap.add_argument("--pymalloc", action="store_true",
                    help="keep pymalloc (faster, but ASAN does not see Python objects)")
    ap.add_argument("--deselect-none", action="store_true",
                    help="run the tests deselected under ASAN too")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()

    os.chdir(ROOT)
    work = os.path.abspath(args.work)
    so = find_extension(os.path.abspath(args.lib))
    runtimes = sanitizer_runtimes(so)
    tree = os.path.join(work, "tree")
    reports = os.path.join(work, "reports")
    records = os.path.join(reports, "imports")
    for d in (reports,):
        if os.path.isdir(d):
            shutil.rmtree(d)
    os.makedirs(records)
    expected = assemble_tree(tree, so)
    marker = os.path.join(reports, "pytest-uvcore.txt")
    with open(os.path.join(tree, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE.format(records=records))
    with open(os.path.join(tree, "_uvcore_asan_plugin.py"), "w") as f:
        f.write(PLUGIN.format(expected=expected, marker=marker, runtimes=runtimes))
    log(f"extension: {so}")
    log(f"preloading: {' '.join(runtimes)}")

    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(runtimes + ([env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else []))
    env["ASAN_OPTIONS"] = ":".join([
        "detect_leaks=0",                 # CPython keeps memory at exit
        "halt_on_error=1",                # the first error ends the process ...
        "abort_on_error=1",               # ... with SIGABRT, which no test expects
        "allocator_may_return_null=1",    # huge requests: NULL (MemoryError) as with malloc
        # (not detect_stack_use_after_return: its fake stacks are mmapped per
        # thread, which fails in the children that lower RLIMIT_AS)
        "log_path=" + os.path.join(reports, "asan"),
    ] + ([env["ASAN_OPTIONS"]] if env.get("ASAN_OPTIONS") else []))
    env["UBSAN_OPTIONS"] = ":".join([
        "print_stacktrace=1",
        "halt_on_error=1",
        "log_path=" + os.path.join(reports, "ubsan"),
    ] + ([env["UBSAN_OPTIONS"]] if env.get("UBSAN_OPTIONS") else []))
    if not args.pymalloc:
        env["PYTHONMALLOC"] = "malloc"
    # The tree first: the sitecustomize, the plugin and the ASAN uvcore.
    env["PYTHONPATH"] = os.pathsep.join([tree] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTHONSAFEPATH", None)

    junit = os.path.join(reports, "pytest-report.xml")
    cmd = [sys.executable, "-m", "pytest", "-p", "_uvcore_asan_plugin",
           "-p", "no:cacheprovider", f"--junit-xml={junit}"]
    if not args.deselect_none:
        for nodeid in sorted(DESELECT):
            cmd.append(f"--deselect={nodeid}")
    cmd += args.pytest_args or ["tests"]
    log(f"running in {tree}: {' '.join(cmd[1:])}")
    output_log = os.path.join(work, "pytest-output.txt")
    t0 = time.monotonic()
    with open(output_log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        rc = proc.wait()
    elapsed = time.monotonic() - t0

    problems = []
    # 1. sanitizer reports
    report_files = []
    benign = 0
    for path in sorted(glob.glob(os.path.join(reports, "asan.*"))
                       + glob.glob(os.path.join(reports, "ubsan.*"))):
        with open(path, errors="replace") as f:
            text = f.read()
        if not BENIGN.sub("", text).strip():
            benign += 1
            continue
        report_files.append(path)
        print(f"\n===== {path} =====\n{text[:20000]}", flush=True)
    with open(output_log, errors="replace") as f:
        printed = [line.rstrip() for line in f
                   if any(p.search(line) for p in REPORT_PATTERNS)]
    if report_files:
        problems.append(f"{len(report_files)} sanitizer report file(s) in {reports}")
    if printed:
        problems.append(f"{len(printed)} sanitizer line(s) in pytest's output, e.g. {printed[0]!r}")
    # 2. the build that was tested
    if not os.path.exists(marker):
        problems.append("pytest did not confirm that it imported the ASAN build")
    others = {}
    n_records = 0
    for path in glob.glob(os.path.join(records, "*.txt")):
        with open(path) as f:
            lines = f.read().splitlines()
        if not lines:
            continue
        n_records += 1
        if lines[0] != expected:
            others[os.path.basename(path)[:-4]] = lines
    if others:
        problems.append(f"{len(others)} Python process(es) imported another uvcore build: "
                        + "; ".join(f"pid {pid}: {' | '.join(v)}" for pid, v in sorted(others.items())[:5]))
    # 3. pytest itself
    if rc != 0:
        problems.append(f"pytest exited with status {rc}")
    if not (os.path.exists(junit) and os.path.getsize(junit) > 0):
        problems.append("pytest did not finish its session (no JUnit report)")

    print(flush=True)
    log(f"pytest ran {elapsed:.0f} s, exit status {rc}; log: {output_log}")
    counts = junit_counts(junit)
    if counts:
        log("tests: {tests} run, {failures} failed, {errors} errors, {skipped} skipped; "
            "{deselected} node id prefix(es) deselected under ASAN".format(
                deselected=0 if args.deselect_none else len(DESELECT), **counts))
    log(f"tested extension: {expected}")
    log(f"Python processes that imported uvcore: {n_records} "
        f"(pytest + children), {n_records - len(others)} of them the ASAN build")
    log(f"sanitizer reports: {len(report_files)} file(s), {len(printed)} line(s) in the output"
        + (f" ({benign} log(s) with only 'failed to allocate' warnings for huge requests"
           " that returned NULL: not reports)" if benign else ""))
    if problems:
        for p in problems:
            log("FAIL: " + p)
        return 1
    log("OK: no AddressSanitizer / UndefinedBehaviorSanitizer report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
