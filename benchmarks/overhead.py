#!/usr/bin/env python3
"""The overhead suite (``--suite overhead``): what uvcore's loop metrics and
slow-callback tracing cost (issue 8).

Four variants of uvcore, all built by this module from one snapshot of the
source tree (so they differ only in what is measured):

* ``metrics`` (a): the default build (metrics compiled in), tracing off;
* ``nometrics`` (b): built with ``UVCORE_METRICS=0`` (every counter update and
  clock read compiled out);
* ``trace`` (c): build a + ``loop.trace_slow_callbacks(0.1)``: armed, but no
  callback is slow, so it measures the armed-but-quiet cost;
* ``watchdog`` (d): build a + ``loop.trace_slow_callbacks(0.1, watchdog=True)``
  (a thread that looks at the loop every 0.05 s).

Workloads:

* ``overhead_call_soon``: the micro suite's ``call_soon`` workload
  (micro.call_soon, the same function), callbacks/s;
* ``overhead_echo_1k``: the net suite's 1 KiB ``Protocol`` echo
  (net_servers.start(..., "protocol", ...)), driven by the net suite's C load
  generator (loadgen.c, 50 connections, ping-pong), round trips/s and round
  trips per server CPU-second.

Target (issue 8): a/b >= 0.98, i.e. with the metrics compiled in the
benchmark is within 2 % of the build without them.  c/a and d/a are reported
without a target.

Method (see benchmarks/README.md, "Overhead suite"): for 2 % the usual "one
process per sample" scheme is too coarse, so the variants run side by side in
long-lived processes and take turns: per *generation* one fresh process per
variant (call_soon: a child pinned to the measured CPU; echo: a server pinned
to it, the load generator on the other CPU), then *blocks*: in each block
every variant takes one sample, in rotated order (ABCD, BCDA, ...).  The
ratios are computed per block (paired) and over the medians.  Fresh processes
per generation average out per-process effects (memory layout).

The builds are cached in build/overhead/<key>/ (git-ignored); the key is a
hash of the sources (uvcore/, setup.py, pyproject.toml, the libuv pin), the
interpreter, Cython, setuptools and the C compiler, so any change to a
.pyx/.pxi/.pxd/.h/.py under uvcore/ rebuilds both variants.  The build runs
``<python> setup.py build_ext --build-lib ... --build-temp ...`` in a copy of
the sources (so it writes nothing into the source tree, e.g. no
uvcore/_uvcore.c), with UVCORE_METRICS=1 resp. 0; the libuv objects are kept
in build/overhead/tmp-{on,off}/ across rebuilds.

Internal entry points (used by the runner):

    python benchmarks/overhead.py --child VARIANT --lib DIR ...   (call_soon)
    python benchmarks/overhead.py --serve VARIANT --lib DIR ...   (echo server)
    python benchmarks/overhead.py --build                         (build only)
"""

import argparse
import json
import math
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from overhead_build import BuildError, ensure_builds, _variant_env  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
SCRIPT = os.path.abspath(__file__)
BUILD_ROOT = os.path.join(REPO, "build", "overhead")
MARK = "@@BENCH "

# -- variants, workloads, target -------------------------------------------------

VARIANTS = ["metrics", "nometrics", "trace", "watchdog"]
VARIANT_INFO = {
    "metrics": {"letter": "a", "build": "on", "trace": None, "watchdog": False,
                "label": "a: metrics in, tracing off (default build)"},
    "nometrics": {"letter": "b", "build": "off", "trace": None, "watchdog": False,
                  "label": "b: metrics compiled out (UVCORE_METRICS=0)"},
    "trace": {"letter": "c", "build": "on", "trace": 0.1, "watchdog": False,
              "label": "c: a + trace_slow_callbacks(0.1)"},
    "watchdog": {"letter": "d", "build": "on", "trace": 0.1, "watchdog": True,
                 "label": "d: a + trace_slow_callbacks(0.1, watchdog=True)"},
}
# (numerator, denominator, what it measures)
RATIOS = [("metrics", "nometrics", "counters on vs compiled out"),
          ("trace", "metrics", "tracing armed vs off"),
          ("watchdog", "metrics", "tracing + watchdog vs off")]
TARGET_KEY = "metrics/nometrics"
TARGET = 0.98                # metrics/nometrics >= this: "within 2 %"

WORKLOADS = {
    "overhead_call_soon": {
        "kind": "call_soon", "unit": "callbacks/s", "size": None,
        "label": "call_soon (metrics overhead)",
        "description": ("the micro suite's call_soon workload (micro.call_soon: batches of "
                        "1000 loop.call_soon(cb)) on each uvcore variant; child pinned to one "
                        "CPU"),
        # ops per CPU-second of the child: time slices given to neighbours do
        # not count (on the shared machines most samples are "disturbed")
        "metric": "cpu_rate",
    },
    "overhead_echo_1k": {
        "kind": "echo", "unit": "round trips/s", "size": 1024,
        "label": "echo Protocol 1 KiB (metrics overhead)",
        "description": ("the net suite's Protocol echo (data_received -> transport.write) on "
                        "each uvcore variant, 1024-byte ping-pong, loadgen.c with 50 "
                        "connections; server on one CPU, load generator on the other"),
        # when the load generator is the limit, throughput hides the server's
        # cost: the verdict uses round trips per server CPU-second
        "metric": "cpu_rate",
    },
}
ORDER = ["overhead_call_soon", "overhead_echo_1k"]
LABELS = {w: d["label"] for w, d in WORKLOADS.items()}
TARGETS = {}                 # nothing against uvloop: see TARGET

# noise rules: as micro (call_soon, CPU of the child) and net (echo, both CPUs)
DISTURBED_CHILD = 0.05
DISTURBED_NET = 0.10

def _emit(obj, stream=None):
    stream = stream or sys.stdout
    stream.write(MARK + json.dumps(obj) + "\n")
    stream.flush()


# =============================================================================
# the processes under test: opening a loop of a variant
# =============================================================================

def _open_loop(variant, lib):
    """A fresh uvcore loop of `variant`, imported from `lib`; checks that it is
    the right build and that tracing is as asked.  Raises RuntimeError."""
    v = VARIANT_INFO[variant]
    import uvcore
    import uvcore._uvcore
    real = os.path.realpath(lib) + os.sep
    for f in (uvcore.__file__, uvcore._uvcore.__file__):
        if not os.path.realpath(f).startswith(real):
            raise RuntimeError("wrong uvcore: imported %s, expected it under %s" % (f, lib))
    loop = uvcore.new_event_loop()
    m = loop.metrics()
    want = v["build"] == "on"
    if bool(m["metrics_compiled_in"]) != want:
        raise RuntimeError("wrong build: metrics_compiled_in=%r, variant %s wants %r"
                           % (m["metrics_compiled_in"], variant, want))
    if getattr(loop, "_tracer", None) is not None:
        raise RuntimeError("slow-callback tracing is on before we asked (environment?)")
    tracer = None
    if v["trace"]:
        tracer = loop.trace_slow_callbacks(v["trace"], watchdog=v["watchdog"])
        wd = getattr(tracer, "_watchdog", None)
        if v["watchdog"] and (wd is None or wd._thread is None or not wd._thread.is_alive()):
            raise RuntimeError("watchdog thread not running")
        if not v["watchdog"] and wd is not None:
            raise RuntimeError("unexpected watchdog")
    info = {"variant": variant, "uvcore": os.path.realpath(uvcore._uvcore.__file__),
            "metrics_compiled_in": bool(m["metrics_compiled_in"]),
            "tracing": ({"threshold": tracer.threshold,
                         "watchdog_interval": (tracer._watchdog.interval
                                               if tracer._watchdog else None)}
                        if tracer else None)}
    return loop, info


def _final_metrics(loop):
    m = loop.metrics()
    tracer = getattr(loop, "_tracer", None)
    return {k: m.get(k) for k in ("metrics_compiled_in", "callbacks_run", "io_callbacks_run",
                                  "slow_callbacks", "longest_callback_seconds",
                                  "loop_iterations")} | {
        "slow_reports": len(tracer.reports) if tracer is not None else None}


# -- call_soon child (persistent: one sample per "sample" line on stdin) ---------

def child_main(args):
    import asyncio
    import gc
    import micro
    from micro_child import _CpuWatch, _nice, _short_exc
    fn, unit, _desc, warm_n = micro.WORKLOADS["call_soon"]
    try:
        loop, info = _open_loop(args.child, args.lib)
        asyncio.set_event_loop(loop)
        n = warm_n
        w_ops, w_wall, _ = fn(loop, n)
        rate = w_ops / max(w_wall, 1e-9)
        if w_wall < args.warmup_time * 0.5:
            n = _nice(rate * args.warmup_time)
            w_ops, w_wall, _ = fn(loop, n)
            rate = w_ops / max(w_wall, 1e-9)
        n = _nice(rate * args.sample_time)
        pre = max(1000, _nice(n * 0.1))        # un-timed, before each sample
        info.update(n=n, pre_n=pre, warmup_rate=round(rate, 1), pid=os.getpid())
    except BaseException as e:                  # noqa: BLE001
        tb, msg = _short_exc(e)
        _emit({"type": "error", "error": msg, "traceback": tb})
        return 3
    _emit({"type": "ready", "info": info})
    watch = _CpuWatch()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd != "sample":
            continue
        try:
            fn(loop, pre)      # this process slept while the others ran: warm caches
            # no re-measuring of disturbed samples (unlike micro): the verdict
            # uses CPU time, and the blocks keep the variants side by side
            gc.collect()
            before = watch.read()
            ops, wall, cpu = fn(loop, n)
            after = watch.read()
            other, steal = watch.other(before, after, cpu, wall)
            disturbed = (watch.disturbed(other, wall) if other is not None else False)
            _emit({"type": "sample", "ok": True, "ops": ops, "wall": round(wall, 6),
                   "cpu": round(cpu, 6), "rate": round(ops / wall, 1),
                   "cpu_rate": round(ops / cpu, 1) if cpu > 0 else None,
                   "other_cpu": other, "steal": steal, "disturbed": disturbed})
        except BaseException as e:              # noqa: BLE001
            tb, msg = _short_exc(e)
            _emit({"type": "sample", "ok": False, "error": msg, "traceback": tb})
    try:
        fin = _final_metrics(loop)
    except BaseException as e:                  # noqa: BLE001
        fin = {"error": repr(e)}
    _emit({"type": "final", "metrics": fin})
    loop.close()
    return 0


# -- echo server --------------------------------------------------------------------

def serve_main(args):
    import asyncio
    import net_servers
    try:
        loop, info = _open_loop(args.serve, args.lib)
        asyncio.set_event_loop(loop)
        srv, port = loop.run_until_complete(
            net_servers.start(loop, "protocol", args.host, 0, None))
        loop.add_signal_handler(signal.SIGTERM, loop.stop)
    except Exception as e:                      # noqa: BLE001
        import traceback
        traceback.print_exc()
        sys.stdout.write("ERROR %s: %s\n" % (type(e).__name__, str(e).replace("\n", " ")))
        sys.stdout.flush()
        return 3
    info["pid"] = os.getpid()
    sys.stdout.write("READY %d %s\n" % (port, json.dumps(info)))
    sys.stdout.flush()
    try:
        loop.run_forever()
    finally:
        try:
            fin = _final_metrics(loop)
        except BaseException as e:              # noqa: BLE001
            fin = {"error": repr(e)}
        _emit({"type": "final", "metrics": fin})
        srv.close()
        loop.close()
    return 0


# =============================================================================
# runner side
# =============================================================================

class _Proc:
    """A long-lived process under test, talking "@@BENCH {json}" lines on
    stdout (the call_soon child) or "READY port {json}" (the echo server)."""

    def __init__(self, cmd, env, cwd):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=env, cwd=cwd)
        self.pid = self.proc.pid
        self.buf = b""
        self.port = None
        self.info = None

    def readline(self, timeout):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no answer within %.0f s%s" % (timeout, self._tail()))
                if not sel.select(min(left, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError("process exited (status %s)%s"
                                       % (self.proc.wait(), self._tail()))
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def record(self, timeout):
        while True:
            line = self.readline(timeout)
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])

    def send(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def _tail(self):
        try:
            self.err.seek(0)
            t = self.err.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            t = ""
        return (": " + t[-600:]) if t else ""

    def stop(self, final_timeout=5.0, term=False):
        """Ask it to finish ("quit" / SIGTERM), collect its final record."""
        fin = None
        try:
            if term:
                self.proc.send_signal(signal.SIGTERM)
            else:
                self.send("quit")
            rec = self.record(final_timeout)
            if rec.get("type") == "final":
                fin = rec["metrics"]
        except (RuntimeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        tail = self._tail()
        self.err.close()
        return fin, tail


def _schedstat(pid):
    """CPU time of all threads of pid, seconds, from /proc/PID/task/*/schedstat
    (nanoseconds; /proc/PID/stat counts 10 ms ticks)."""
    tot = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    tot += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return None
    return tot / 1e9


def _order(rot):
    k = rot % len(VARIANTS)
    return VARIANTS[k:] + VARIANTS[:k]


def _run_call_soon(opts, builds, ctx, log, samples, errors, meta, block0):
    w = "overhead_call_soon"
    block = block0
    for g in range(1, opts["generations"] + 1):
        procs = {}
        try:
            for v in _order(g - 1):
                lib = builds[VARIANT_INFO[v]["build"]]
                cmd = list(ctx["server_pin"]) + [
                    sys.executable, SCRIPT, "--child", v, "--lib", lib,
                    "--sample-time", repr(opts["sample_time"]),
                    "--warmup-time", repr(opts["warmup_time"])]
                p = _Proc(cmd, _variant_env(lib, ctx["env"]), BUILD_ROOT)
                procs[v] = p
                rec = p.record(120)
                if rec.get("type") != "ready":
                    raise RuntimeError("%s child: %s" % (v, rec.get("error")))
                p.info = rec["info"]
                meta.setdefault("processes", []).append(
                    {"workload": w, "generation": g, **rec["info"]})
            for k in range(opts["blocks_call_soon"]):
                block += 1
                line = []
                for v in _order(block - 1):
                    procs[v].send("sample")
                    rec = procs[v].record(120)
                    if not rec.get("ok"):
                        errors.append({"suite": "overhead", "round": block, "loop": v,
                                       "workload": w, "error": rec.get("error"),
                                       "traceback": rec.get("traceback")})
                        line.append("%s error" % VARIANT_INFO[v]["letter"])
                        continue
                    rec.update(type="sample", suite="overhead", workload=w, loop=v,
                               round=block, generation=g, unit=WORKLOADS[w]["unit"],
                               n=procs[v].info["n"])
                    samples.append(rec)
                    line.append("%s %s%s" % (VARIANT_INFO[v]["letter"], _fmt(rec["rate"]),
                                             "*" if rec["disturbed"] else ""))
                log("overhead call_soon gen %d/%d block %d/%d: %s"
                    % (g, opts["generations"], k + 1, opts["blocks_call_soon"], "  ".join(line)))
        except (RuntimeError, OSError, ValueError) as e:
            errors.append({"suite": "overhead", "round": block, "loop": "all", "workload": w,
                           "error": str(e).splitlines()[0][:300], "detail": str(e)[-1500:]})
            log("overhead call_soon gen %d: ERROR %s" % (g, str(e)[:300]))
        finally:
            for v, p in procs.items():
                fin, tail = p.stop()
                meta.setdefault("final_metrics", []).append(
                    {"workload": w, "generation": g, "variant": v, "metrics": fin})
    return block


def _run_echo(opts, builds, ctx, log, samples, errors, meta, block0):
    import net
    w = "overhead_echo_1k"
    size = WORKLOADS[w]["size"]
    block = block0
    for g in range(1, opts["generations"] + 1):
        procs = {}
        try:
            for v in _order(g - 1):
                lib = builds[VARIANT_INFO[v]["build"]]
                cmd = list(ctx["server_pin"]) + [sys.executable, SCRIPT, "--serve", v,
                                                 "--lib", lib]
                p = _Proc(cmd, _variant_env(lib, ctx["env"]), BUILD_ROOT)
                procs[v] = p
                line = p.readline(60)
                if not line.startswith("READY"):
                    raise RuntimeError("%s server: %s%s" % (v, line[:300], p._tail()))
                _, port, js = line.split(" ", 2)
                p.port = int(port)
                p.info = json.loads(js)
                meta.setdefault("processes", []).append(
                    {"workload": w, "generation": g, **p.info})
                # prime (BENCHMARKING.md: a fresh server is slow until its first
                # connections have come and gone)
                net.run_loadgen(ctx, p, size, ctx["prime_time"], 0.0, measure=False)
            for k in range(opts["blocks_echo"]):
                block += 1
                line = []
                for v in _order(block - 1):
                    p = procs[v]
                    c0 = _schedstat(p.pid)
                    m = net.run_loadgen(ctx, p, size, opts["echo_time"], opts["echo_warmup"])
                    c1 = _schedstat(p.pid)
                    other, steal, disturbed = net._other(m, len(ctx["cpus"]))
                    m.update(other_cpu=other, steal=steal, disturbed=disturbed,
                             server_cpu_total=(c1 - c0) if None not in (c0, c1) else None)
                    total_ops = m["ops"] + (m.get("warmup_ops") or 0)
                    tot_cpu = m["server_cpu_total"]
                    rec = {"type": "sample", "suite": "overhead", "workload": w, "loop": v,
                           "round": block, "generation": g, "unit": WORKLOADS[w]["unit"],
                           "ok": True, "ops": m["ops"], "wall": round(m["wall"], 6),
                           "rate": round(m["ops"] / m["wall"], 1),
                           # per server CPU-second over the whole client run (warm-up
                           # included), from schedstat (ns); cpu_rate_ticks: the
                           # measured window only, from /proc/PID/stat (10 ms ticks)
                           "cpu": round(tot_cpu, 6) if tot_cpu else None,
                           "cpu_rate": round(total_ops / tot_cpu, 1) if tot_cpu else None,
                           "cpu_rate_ticks": (round(m["ops"] / m["server_cpu"], 1)
                                              if m.get("server_cpu") else None),
                           "server_cpu_window": m.get("server_cpu"),
                           "client_cpu": m.get("client_cpu"),
                           "other_cpu": m["other_cpu"], "steal": m["steal"],
                           "disturbed": m["disturbed"],
                           "per_conn_min": m.get("per_conn_min"),
                           "per_conn_max": m.get("per_conn_max")}
                    samples.append(rec)
                    line.append("%s %s (%s/CPU-s)%s" % (VARIANT_INFO[v]["letter"],
                                                       _fmt(rec["rate"]), _fmt(rec["cpu_rate"]),
                                                       "*" if rec["disturbed"] else ""))
                log("overhead echo gen %d/%d block %d/%d: %s"
                    % (g, opts["generations"], k + 1, opts["blocks_echo"], "  ".join(line)))
        except (RuntimeError, OSError, ValueError, net.CellError) as e:
            errors.append({"suite": "overhead", "round": block, "loop": "all", "workload": w,
                           "error": str(e).splitlines()[0][:300],
                           "detail": (getattr(e, "detail", None) or str(e))[-1500:]})
            log("overhead echo gen %d: ERROR %s" % (g, str(e)[:300]))
        finally:
            for v, p in procs.items():
                fin, tail = p.stop(term=True)
                meta.setdefault("final_metrics", []).append(
                    {"workload": w, "generation": g, "variant": v, "metrics": fin})
                if tail.strip(": \n"):
                    meta.setdefault("server_stderr", []).append(
                        {"generation": g, "variant": v, "stderr": tail[-800:]})
    return block


def options(args):
    """The suite's settings from the command line (--ov-*, --quick)."""
    q = getattr(args, "quick", False)

    def pick(name, full, quick):
        v = getattr(args, name, None)
        return v if v is not None else (quick if q else full)
    blocks = getattr(args, "ov_blocks", None)
    return {"generations": pick("ov_generations", 4, 1),
            "blocks_call_soon": blocks or (2 if q else 10),
            "blocks_echo": blocks or (2 if q else 8),
            "sample_time": pick("ov_sample_time", 0.25, 0.1),
            "warmup_time": 0.1,
            "echo_time": pick("ov_echo_time", 0.6, 0.3),
            "echo_warmup": pick("ov_echo_warmup", 0.1, 0.1),
            "prime_time": pick("prime_time", 0.3, 0.2),
            "connections": getattr(args, "connections", 50) or 50}


def run(args, env, server_pin, client_pin, cpus, workloads, log):
    """The suite.  Returns (samples, errors, meta)."""
    import net
    t0 = time.time()
    opts = options(args)
    meta = {"settings": opts, "variants": {v: dict(VARIANT_INFO[v]) for v in VARIANTS},
            "target": {"ratio": TARGET_KEY, "min": TARGET},
            "disturbed_threshold": {"call_soon": DISTURBED_CHILD, "echo": DISTURBED_NET},
            "workloads": list(workloads)}
    samples, errors = [], []
    try:
        b = ensure_builds(log)
    except BuildError as e:
        meta["error"] = str(e) + ((": " + e.detail[-1500:]) if e.detail else "")
        log("overhead suite not run: %s" % meta["error"])
        for w in workloads:
            errors.append({"suite": "overhead", "round": 0, "loop": "all", "workload": w,
                           "error": "build failed: " + str(e)})
        meta["duration_s"] = round(time.time() - t0, 1)
        return samples, errors, meta
    meta["build"] = {k: b[k] for k in ("key", "built_at", "seconds", "built_now", "check_s",
                                       "toolchain", "builds") if k in b}
    builds = {"on": b["on"], "off": b["off"]}
    ctx = {"env": env, "server_pin": server_pin, "client_pin": client_pin, "cpus": cpus,
           "connections": opts["connections"], "unix": None, "prime_time": opts["prime_time"]}
    block = 0
    if "overhead_call_soon" in workloads:
        t1 = time.time()
        block = _run_call_soon(opts, builds, ctx, log, samples, errors, meta, block)
        meta["call_soon_s"] = round(time.time() - t1, 1)
    if "overhead_echo_1k" in workloads:
        t1 = time.time()
        try:
            ctx["tools"] = {"loadgen": net.compile_c("loadgen")}
        except net.CellError as e:
            errors.append({"suite": "overhead", "round": 0, "loop": "all",
                           "workload": "overhead_echo_1k", "error": str(e),
                           "detail": e.detail})
        else:
            block = _run_echo(opts, builds, ctx, log, samples, errors, meta, block)
        meta["echo_s"] = round(time.time() - t1, 1)
    meta["duration_s"] = round(time.time() - t0, 1)
    return samples, errors, meta


# =============================================================================
# statistics, report, chart
# =============================================================================

def _fmt(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.3fM" % (x / 1e6)
    if x >= 1e3:
        return "%.1fk" % (x / 1e3)
    return "%.0f" % x


def _quartiles(xs):
    if len(xs) < 2:
        return (xs[0], xs[0]) if xs else (None, None)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def _median_ci(xs, level=0.95):
    """Distribution-free CI of the median (order statistics, binomial)."""
    n = len(xs)
    if n < 6:
        return None
    s = sorted(xs)
    alpha = (1 - level) / 2
    k, cum = 0, 0.0
    for i in range(n + 1):
        p = math.comb(n, i) / 2 ** n
        if cum + p > alpha:
            break
        cum += p
        k = i + 1
    if k < 1:
        return None
    return s[k - 1], s[n - k]


def _stats(vals):
    if not vals:
        return {"n": 0, "median": None}
    med = statistics.median(vals)
    q1, q3 = _quartiles(vals)
    return {"n": len(vals), "median": med, "min": min(vals), "max": max(vals),
            "q1": q1, "q3": q3, "iqr_pct": (100 * (q3 - q1) / med) if med else None}


def _use(ss, metric):
    """Samples for a metric's statistics: for cpu_rate all of them (CPU time
    does not count the slices neighbours got); for the wall rate the
    undisturbed ones when there are >= 3 (as in the other suites)."""
    if metric == "cpu_rate":
        return ss, False
    clean = [s for s in ss if not s.get("disturbed")]
    if clean and (len(clean) == len(ss) or len(clean) >= 3):
        return clean, False
    return ss, bool(ss) and len(clean) < len(ss)


def summarize(samples, errors, workloads):
    """res["summary"] entries of the suite.  Per workload: per variant
    ("loops", as the other suites' loops) statistics of the verdict metric
    (median/min/max/IQR) and of both metrics ("rate", "cpu_rate"); "ratios"
    (of medians, verdict metric), "rate_ratios", "cpu_ratios"; "paired" (the
    same-block ratios, verdict metric) with "paired_stats" (median, IQR,
    min-max, 95 % CI of the median) and "paired_stats_rate" (wall rate,
    undisturbed blocks); "pass" = metrics/nometrics >= TARGET."""
    out = {}
    for w in workloads:
        ss = [s for s in samples if s.get("suite") == "overhead" and s["workload"] == w]
        primary = WORKLOADS[w]["metric"]
        ent = {"suite": "overhead", "metric": primary, "target": None,
               "target_overhead": {"ratio": TARGET_KEY, "min": TARGET},
               "loops": {}, "ratios": {}, "paired": {}, "cpu_ratios": {}, "rate_ratios": {},
               "paired_stats": {}, "paired_stats_rate": {}}
        used = {}
        for v in VARIANTS:
            mine = [s for s in ss if s["loop"] == v]
            d = {"label": VARIANT_INFO[v]["label"], "n_samples": len(mine),
                 "disturbed_samples": sum(1 for s in mine if s.get("disturbed")),
                 "errors": sum(1 for e in errors if e.get("suite") == "overhead"
                               and e["workload"] == w and e["loop"] in (v, "all"))}
            for m in ("rate", "cpu_rate"):
                vs, noisy = _use(mine, m)
                used[(v, m)] = vs
                d[m] = _stats([s[m] for s in vs if s.get(m)])
                d[m]["uses_disturbed"] = noisy
            p = d[primary]
            d.update(median=p["median"], min=p.get("min"), max=p.get("max"),
                     iqr_pct=p.get("iqr_pct"), n_used=p["n"], uses_disturbed=p["uses_disturbed"],
                     cpu_rate_median=d["cpu_rate"]["median"])
            ent["loops"][v] = d
        for a, b, what in RATIOS:
            key = "%s/%s" % (a, b)
            for m, dst in (("rate", "rate_ratios"), ("cpu_rate", "cpu_ratios")):
                ma, mb = ent["loops"][a][m]["median"], ent["loops"][b][m]["median"]
                ent[dst][key] = (ma / mb) if (ma and mb) else None
            ent["ratios"][key] = ent["cpu_ratios" if primary == "cpu_rate" else "rate_ratios"][key]
            for m, dst in ((primary, "paired_stats"), ("rate", "paired_stats_rate")):
                ra = {s["round"]: s[m] for s in used[(a, m)] if s.get(m)}
                rb = {s["round"]: s[m] for s in used[(b, m)] if s.get(m)}
                paired = [ra[r] / rb[r] for r in sorted(ra) if r in rb]
                ps = _stats(paired)
                ps["ci95"] = _median_ci(paired)
                ps["what"] = what
                ps["uses_disturbed"] = (m == "rate" and (ent["loops"][a][m]["uses_disturbed"]
                                                         or ent["loops"][b][m]["uses_disturbed"]))
                ent[dst][key] = ps
                if m == primary:
                    ent["paired"][key] = paired
        r = ent["ratios"].get(TARGET_KEY)
        if r is None:
            ent["pass"] = None
        else:
            ent["pass"] = r >= TARGET
            p = ent["paired"][TARGET_KEY]
            ent["rounds_meeting_target"] = "%d/%d" % (sum(1 for x in p if x >= TARGET), len(p))
            ci = ent["paired_stats"][TARGET_KEY].get("ci95")
            ent["marginal"] = bool(ci and ci[0] < TARGET <= ci[1])
        out[w] = ent
    return out


def _cell(st, noisy=False):
    if not st or st.get("median") is None:
        return "-"
    s = "%s [%s-%s] IQR %.1f%%" % (_fmt(st["median"]), _fmt(st["min"]), _fmt(st["max"]),
                                   st["iqr_pct"] or 0)
    return s + (" *" if noisy else "")


def _ratio_cell(r):
    return "n/a" if r is None else "%.3f" % r


def _verdict(ent):
    if ent.get("pass") is None:
        return "n/a"
    s = "%s (%s blocks)" % ("PASS" if ent["pass"] else "FAIL", ent["rounds_meeting_target"])
    if ent.get("marginal"):
        s += ", marginal: 95% CI spans the target"
    return s


def _short(w):
    return LABELS[w].split(" (")[0]


def render(res, table):
    """The overhead section of the text report; table = report._table."""
    summ = {w: e for w, e in res["summary"].items() if e.get("suite") == "overhead"}
    meta = res.get("overhead") or {}
    out = []
    if meta.get("error"):
        out.append("NOT RUN: %s" % meta["error"])
        return "\n".join(out)
    out.append("variants: " + "; ".join(VARIANT_INFO[v]["label"] for v in VARIANTS))
    heads = ["workload (unit)"] + ["%s: %s" % (VARIANT_INFO[v]["letter"], v) for v in VARIANTS]
    heads += ["a/b", "c/a", "d/a", "target a/b", "result"]
    rows = []
    for w, ent in summ.items():
        cpu_what = "per server CPU-s" if WORKLOADS[w]["kind"] == "echo" else "per CPU-s"
        for m, what in (("cpu_rate", cpu_what), ("rate", WORKLOADS[w]["unit"])):
            verdict = m == ent["metric"]
            row = ["%s (%s%s)" % (_short(w), what, ", verdict" if verdict else "")]
            row += [_cell(ent["loops"][v][m], ent["loops"][v][m].get("uses_disturbed"))
                    for v in VARIANTS]
            rr = ent["rate_ratios"] if m == "rate" else ent["cpu_ratios"]
            row += [_ratio_cell(rr.get("%s/%s" % (a, b))) for a, b, _ in RATIOS]
            row += [">= %.2f" % TARGET, _verdict(ent)] if verdict else ["", ""]
            rows.append(row)
    out.append(table(heads, rows))
    out.append("median [min-max] and IQR (interquartile range, % of the median) per variant; "
               "ratios are of medians.  Per CPU-second: all samples (CPU time leaves out the "
               "slices neighbours got); wall rates: undisturbed samples only ('*': fewer than "
               "3, so all).")
    heads = ["workload", "ratio", "measures", "of medians", "paired median", "paired IQR",
             "paired min-max", "95% CI of paired median", "blocks"]
    rows = []
    for w, ent in summ.items():
        for m, key_ps in ((ent["metric"], "paired_stats"), ("rate", "paired_stats_rate")):
            if m == "rate" and ent["metric"] == "rate":
                continue
            for a, b, what in RATIOS:
                key = "%s/%s" % (a, b)
                ps = ent[key_ps][key]
                tag = ("per CPU-s" if m == "cpu_rate" else
                       "wall, all blocks: too few undisturbed" if ps.get("uses_disturbed") else
                       "wall, undisturbed blocks")
                rr = (ent["cpu_ratios"] if m == "cpu_rate" else ent["rate_ratios"]).get(key)
                lab = "%s/%s" % (VARIANT_INFO[a]["letter"], VARIANT_INFO[b]["letter"])
                if not ps.get("n"):
                    rows.append(["%s (%s)" % (_short(w), tag), lab, what, _ratio_cell(rr),
                                 "-", "-", "-", "-", "0"])
                    continue
                rows.append(["%s (%s)" % (_short(w), tag), lab, what, _ratio_cell(rr),
                             "%.3f" % ps["median"], "%.3f-%.3f" % (ps["q1"], ps["q3"]),
                             "%.3f-%.3f" % (ps["min"], ps["max"]),
                             ("%.3f-%.3f" % ps["ci95"]) if ps.get("ci95") else "-",
                             str(ps["n"])])
    out.append("")
    out.append(table(heads, rows))
    s = meta.get("settings", {})
    out.append("paired = the two variants' samples from the same block (a block: every variant "
               "once, in rotated order); %d generation(s) of fresh processes x %d (call_soon) / "
               "%d (echo) block(s); call_soon samples ~%.2f s (after an un-timed 10%% pre-run), "
               "echo %.1f s after %.1f s warm-up, %d connections, servers primed %.1f s."
               % (s.get("generations", 0), s.get("blocks_call_soon", 0), s.get("blocks_echo", 0),
                  s.get("sample_time", 0), s.get("echo_time", 0), s.get("echo_warmup", 0),
                  s.get("connections", 0), s.get("prime_time", 0)))
    ss = [x for x in res["samples"] if x.get("suite") == "overhead"]
    dist = sum(1 for x in ss if x.get("disturbed"))
    oc = sorted(x["other_cpu"] for x in ss if x.get("other_cpu") is not None)
    out.append("noise: %d of %d samples disturbed (others used > %.0f%% of a CPU, call_soon, "
               "or > %.0f%% of the two CPUs, echo); others' CPU use per sample: median %.0f%%, "
               "max %.0f%% of a CPU."
               % (dist, len(ss), 100 * DISTURBED_CHILD, 100 * DISTURBED_NET,
                  100 * oc[len(oc) // 2] if oc else 0, 100 * oc[-1] if oc else 0))
    fm = meta.get("final_metrics", [])
    traced = [f for f in fm if f.get("metrics") and f["variant"] in ("trace", "watchdog")]
    nslow = sum(f["metrics"].get("slow_callbacks") or 0 for f in traced)
    ncb = sum((f["metrics"].get("callbacks_run") or 0) + (f["metrics"].get("io_callbacks_run") or 0)
              for f in traced)
    longest = max([f["metrics"].get("longest_callback_seconds") or 0 for f in traced] or [0])
    nomet = [f for f in fm if f.get("metrics") is None]
    out.append("tracing check (c, d): %d process(es) ran %s callbacks, %d of them slow (> %.1f s; "
               "the longest %.3f s)%s%s."
               % (len(traced), _fmt(ncb), nslow, VARIANT_INFO["trace"]["trace"], longest,
                  "" if not nslow else
                  ": a callback preempted by other processes counts as slow (wall-clock time); "
                  "a handful of reports cost nothing measurable, many would mean the 'quiet' "
                  "case was not measured",
                  "; %d process(es) gave no final metrics" % len(nomet) if nomet else ""))
    b = meta.get("build") or {}
    if b:
        tc = b.get("toolchain") or {}
        out.append("builds: build/overhead/%s (%s; Cython/setuptools %s; %s)"
                   % (b.get("key"), "built in this run in %.0f s" % b["seconds"]
                      if b.get("built_now") else "cached, built %s" % b.get("built_at"),
                      tc.get("cython_setuptools"), tc.get("cc")))
    out.append("overhead suite took %.0f s (build check %.0f s, call_soon %.0f s, echo %.0f s)"
               % (meta.get("duration_s", 0), b.get("check_s", 0) if b else 0,
                  meta.get("call_soon_s", 0), meta.get("echo_s", 0)))
    return "\n".join(out)


def plot_panel(ax, res):
    """One chart panel: a/b, c/a, d/a per workload (ratio of medians of the
    workload's verdict metric), error bars = paired IQR, target line."""
    summ = {w: e for w, e in res["summary"].items() if e.get("suite") == "overhead"}
    wls = list(summ)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    width = 0.8 / len(RATIOS)
    lo_all, hi_all = [1.0, TARGET], [1.0]
    for i, (a, b, what) in enumerate(RATIOS):
        key = "%s/%s" % (a, b)
        xs, ys, lo, hi = [], [], [], []
        for j, w in enumerate(wls):
            r = summ[w]["ratios"].get(key)
            ps = summ[w]["paired_stats"].get(key) or {}
            if r is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(r)
            q1 = ps.get("q1") if ps.get("q1") is not None else r
            q3 = ps.get("q3") if ps.get("q3") is not None else r
            lo.append(max(0.0, r - min(q1, r)))
            hi.append(max(0.0, max(q3, r) - r))
            lo_all.append(min(q1, r))
            hi_all.append(max(q3, r))
        label = "%s/%s: %s" % (VARIANT_INFO[a]["letter"], VARIANT_INFO[b]["letter"], what)
        if xs:
            # markers, not bars: the axis does not start at 0
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", markersize=7, capsize=4,
                        color=colors[i], label=label, elinewidth=1.2)
            for x, y in zip(xs, ys):
                ax.annotate("%.3f" % y, (x, y), xytext=(6, 0), textcoords="offset points",
                            ha="left", va="center", fontsize=7)
        else:
            ax.errorbar([], [], fmt="o", color=colors[i], label=label)
    ax.axhline(1.0, color="black", linewidth=1.0)
    ax.axhline(TARGET, color="#d62728", linestyle="--", linewidth=1.4,
               label="target a/b >= %.2f" % TARGET)
    lo_, hi_ = min(lo_all), max(hi_all)
    pad = max(0.01, (hi_ - lo_) * 0.25)
    ax.set_ylim(lo_ - pad, hi_ + pad * 1.5)
    ax.set_xticks(range(len(wls)))
    ax.set_xticklabels(["%s\n(%s)" % (_short(w),
                                      "per CPU-s" if summ[w]["metric"] == "cpu_rate"
                                      else "wall rate") for w in wls], fontsize=8)
    ax.set_xlim(-0.6, len(wls) - 0.4)
    ax.set_ylabel("ratio of medians\n(error bars: same-block IQR)", fontsize=9)
    s = (res.get("overhead") or {}).get("settings", {})
    ax.set_title("overhead (issue 8): metrics on/compiled out, tracing on/off;\n"
                 "%d generation(s) x %d/%d block(s) (call_soon/echo)"
                 % (s.get("generations", 0), s.get("blocks_call_soon", 0),
                    s.get("blocks_echo", 0)), fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)
    ax.grid(axis="y", alpha=0.3)


# =============================================================================

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", choices=VARIANTS)
    p.add_argument("--serve", choices=VARIANTS)
    p.add_argument("--build", action="store_true", help="build (or check) the variants only")
    p.add_argument("--force", action="store_true", help="with --build: rebuild")
    p.add_argument("--lib")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--sample-time", type=float, default=0.25)
    p.add_argument("--warmup-time", type=float, default=0.1)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.serve:
        return serve_main(args)
    if args.build:
        try:
            info = ensure_builds(lambda m: print(m, file=sys.stderr), force=args.force)
        except BuildError as e:
            print("build failed: %s\n%s" % (e, e.detail or ""), file=sys.stderr)
            return 1
        print(json.dumps(info, indent=1))
        return 0
    p.error("run it through benchmarks/run.py --suite overhead")


if __name__ == "__main__":
    sys.exit(main())
