#!/usr/bin/env python3
"""uvcore benchmark runner: scheduling micro benchmarks and network benchmarks.

    python benchmarks/run.py [--suite micro|net|all] [--loops uvcore,uvloop,asyncio]
                             [--rounds 5] [--net-rounds 3] [--workloads call_soon,...]
                             [--quick] [--no-pin]

Method (see /work/shared/BENCHMARKING.md and benchmarks/README.md): for each
round, every loop runs once, in rotated order (A B C, B C A, C A B, ...).

* micro suite: one run is one child process (``run.py --child LOOP``), pinned
  to one CPU with taskset, that runs every selected workload once on a fresh
  event loop after a short warm-up and prints one JSON line per workload.
* net suite (benchmarks/net.py): one server process per (round, workload,
  loop) pinned to CPU 0, primed, then driven by a C load generator (or wrk
  for HTTP) pinned to CPU 1; a C epoll server runs alongside as the ceiling.

The parent reports ``median [min-max]`` over rounds, ratios of medians to
uvloop, the targets, and writes benchmarks/results/latest.json and latest.png
(both suites in one file and one figure).

Standard library only, plus matplotlib (optional) for the chart; a C compiler
and wrk (and httptools in the interpreter) for the net suite.
"""

import argparse
import datetime
import json
import os
import platform
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

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


# ---------------------------------------------------------------------------
# child side
# ---------------------------------------------------------------------------

def _import_loop(name):
    """Return (factory, info) for loop `name`; raises on failure."""
    import asyncio
    info = {"python": platform.python_version()}
    if name == "asyncio":
        info["version"] = platform.python_version()
        return asyncio.new_event_loop, info
    if name == "uvloop":
        import uvloop
        info["version"] = getattr(uvloop, "__version__", "?")
        try:
            from uvloop import loop as _l
            v = _l.libuv_get_version()
            info["libuv"] = "%d.%d.%d" % (v >> 16, (v >> 8) & 0xFF, v & 0xFF)
        except Exception:
            pass
        info["path"] = os.path.dirname(uvloop.__file__)
        return uvloop.new_event_loop, info
    if name == "uvcore":
        try:
            import uvcore
        except ModuleNotFoundError as e:
            # Not installed: try the source tree (an in-place build).
            if e.name != "uvcore" or not os.path.isdir(os.path.join(REPO, "uvcore")):
                raise
            sys.path.insert(0, REPO)
            try:
                import uvcore
            except ImportError as e2:
                raise ImportError("uvcore is not installed, and the source tree %s is not "
                                  "built: %s: %s" % (os.path.join(REPO, "uvcore"),
                                                     type(e2).__name__, e2)) from None
        info["path"] = os.path.dirname(uvcore.__file__)
        info["version"] = str(getattr(uvcore, "__version__", "?"))
        lv = getattr(uvcore, "libuv_version", None)
        if callable(lv):
            try:
                info["libuv"] = str(lv())
            except Exception as e:     # noqa: BLE001
                info["libuv"] = "error: %r" % (e,)
        factory = getattr(uvcore, "new_event_loop", None)
        if factory is None:
            raise ImportError("uvcore (%s) has no new_event_loop()" % info["path"])
        return factory, info
    raise ValueError("unknown loop %r" % name)


def _emit(obj):
    sys.stdout.write(MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _short_exc(e):
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    return "".join(tb[-3:]).strip()[-1500:], "%s: %s" % (type(e).__name__, e)


class _CpuWatch:
    """Busy time of the CPUs this process may run on, from /proc/stat, to
    tell how much CPU others used while a sample ran."""

    def __init__(self):
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cpus = []
        self.tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self.ok = os.path.exists("/proc/stat") and bool(self.cpus)

    def read(self):
        if not self.ok:
            return None
        want = {"cpu%d" % c for c in self.cpus}
        busy = steal = 0
        with open("/proc/stat") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in want:
                    v = [int(x) for x in parts[1:]]
                    # user nice system idle iowait irq softirq steal ...
                    busy += v[0] + v[1] + v[2] + v[5] + v[6]
                    steal += v[7] if len(v) > 7 else 0
        return busy / self.tick, steal / self.tick

    def disturbed(self, other, wall):
        """True if others used more than DISTURBED of a CPU (beyond the CPUs
        we do not use ourselves), allowing 1.5 clock ticks of quantization."""
        if other is None or wall <= 0:
            return False
        slack = 1.5 / self.tick / wall
        return other > DISTURBED + slack + max(0, len(self.cpus) - 1)

    def other(self, before, after, own_cpu, wall):
        """(other CPUs' use as a fraction of one CPU, steal fraction)."""
        if before is None or after is None or wall <= 0:
            return None, None
        other = max(0.0, (after[0] - before[0]) - own_cpu) / wall
        steal = max(0.0, after[1] - before[1]) / wall
        return round(other, 3), round(steal, 3)


def _nice(n):
    """Round n to two significant digits."""
    n = max(1, int(n))
    mag = 10 ** max(0, len(str(n)) - 2)
    return max(mag, int(round(n / mag)) * mag)


def child_main(args):
    import asyncio
    import gc

    name = args.child
    try:
        factory, info = _import_loop(name)
        if args.probe:
            loop = factory()
            try:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(asyncio.sleep(0))
            finally:
                asyncio.set_event_loop(None)
                loop.close()
            info["class"] = type(loop).__module__ + "." + type(loop).__qualname__
    except BaseException as e:     # noqa: BLE001 - report anything, keep going
        tb, msg = _short_exc(e)
        _emit({"type": "import_error", "loop": name, "error": msg, "traceback": tb})
        return 3
    if args.probe:
        _emit({"type": "info", "loop": name, "info": info})
        return 0

    import micro
    watch = _CpuWatch()
    for wname in args.workloads.split(","):
        fn, unit, _desc, warm_n = micro.WORKLOADS[wname]
        rec = {"type": "sample", "loop": name, "workload": wname, "unit": unit}
        loop = None
        try:
            loop = factory()
            asyncio.set_event_loop(loop)
            # warm-up, which also calibrates n for this loop
            n = warm_n
            w_ops, w_wall, _ = fn(loop, n)
            rate = w_ops / max(w_wall, 1e-9)
            if w_wall < args.warmup_time * 0.5:
                n = _nice(rate * args.warmup_time)
                w_ops, w_wall, _ = fn(loop, n)
                rate = w_ops / max(w_wall, 1e-9)
            n = _nice(rate * args.sample_time)
            rec["warmup_rate"] = round(rate, 1)
            rec["n"] = n
            best = None
            attempts = []
            for attempt in range(MAX_RETRIES + 1):
                gc.collect()
                before = watch.read()
                ops, wall, cpu = fn(loop, n)
                after = watch.read()
                other, steal = watch.other(before, after, cpu, wall)
                attempts.append(other)
                cur = (ops, wall, cpu, other, steal)
                if best is None or (other or 0) < (best[3] or 0):
                    best = cur
                if not watch.disturbed(other, wall):
                    break
            ops, wall, cpu, other, steal = best
            rec.update(ok=True, ops=ops, wall=round(wall, 6), cpu=round(cpu, 6),
                       rate=round(ops / wall, 1),
                       cpu_rate=round(ops / cpu, 1) if cpu > 0 else None,
                       other_cpu=other, steal=steal,
                       disturbed=watch.disturbed(other, wall),
                       attempts_other_cpu=attempts)
        except BaseException as e:   # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            tb, msg = _short_exc(e)
            rec.update(ok=False, error=msg, traceback=tb)
        finally:
            if loop is not None:
                try:
                    asyncio.set_event_loop(None)
                    if not loop.is_closed():
                        loop.close()
                except BaseException as e:  # noqa: BLE001
                    rec.setdefault("warnings", []).append("close: %r" % (e,))
        _emit(rec)
    return 0


# ---------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------

def _child_cmd(args, loop, workloads=None, probe=False):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", loop]
    if probe:
        cmd.append("--probe")
    else:
        cmd += ["--workloads", ",".join(workloads),
                "--sample-time", repr(args.sample_time),
                "--warmup-time", repr(args.warmup_time)]
    if args.pin_cmd:
        cmd = args.pin_cmd + cmd
    return cmd


def _child_env():
    env = dict(os.environ)
    for k in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC",
              "PYTHONMALLOCSTATS", "PYTHONPROFILEIMPORTTIME"):
        env.pop(k, None)
    env["PYTHONHASHSEED"] = "0"
    return env


def run_child(cmd, idle_timeout, on_record=None):
    """Run one child; return (records, returncode, stderr_tail, timed_out).
    The child is killed if it prints no result for `idle_timeout` seconds."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, env=_child_env(), cwd=REPO)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        fd = proc.stdout.fileno()
        buf = b""
        records = []
        last = time.monotonic()
        timed_out = False
        while True:
            if sel.select(timeout=1.0):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    text = line.decode("utf-8", "replace")
                    if text.startswith(MARK):
                        try:
                            rec = json.loads(text[len(MARK):])
                        except ValueError:
                            continue
                        records.append(rec)
                        if on_record:
                            on_record(rec)
                last = time.monotonic()
            elif time.monotonic() - last > idle_timeout:
                timed_out = True
                proc.kill()
                break
        sel.close()
        proc.stdout.close()
        rc = proc.wait()
        err.seek(0)
        tail = err.read().decode("utf-8", "replace")[-2000:]
    return records, rc, tail, timed_out


def _rc_text(rc, timed_out, idle_timeout):
    if timed_out:
        return "killed: no result for %ds (hang?)" % idle_timeout
    if rc < 0:
        try:
            import signal
            return "child died: %s" % signal.Signals(-rc).name
        except (ValueError, AttributeError):
            return "child died: signal %d" % -rc
    return "child exited with code %d" % rc


def probe_loop(args, name):
    recs, rc, tail, timed_out = run_child(_child_cmd(args, name, probe=True), 60)
    for r in recs:
        if r.get("type") == "info":
            return {"available": True, "info": r["info"]}
        if r.get("type") == "import_error":
            return {"available": False, "error": r["error"], "traceback": r.get("traceback")}
    return {"available": False,
            "error": _rc_text(rc, timed_out, 60) + (": " + tail.strip()[-300:] if tail.strip() else "")}


def measure_loop(args, name, workloads, rnd, progress):
    """One child run (re-launched for the rest if a workload kills it)."""
    samples, errors = [], []
    todo = list(workloads)
    while todo:
        def on_record(rec):
            if rec.get("type") == "sample":
                progress(rec)
        recs, rc, tail, timed_out = run_child(
            _child_cmd(args, name, todo), args.idle_timeout, on_record)
        done = set()
        for r in recs:
            if r.get("type") == "import_error":
                errors.append({"round": rnd, "loop": name, "workload": None, "error": r["error"]})
                return samples, errors
            if r.get("type") != "sample":
                continue
            done.add(r["workload"])
            r["round"] = rnd
            if r.get("ok"):
                samples.append(r)
            else:
                errors.append({"round": rnd, "loop": name, "workload": r["workload"],
                               "error": r["error"], "traceback": r.get("traceback")})
        todo = [w for w in todo if w not in done]
        if todo:
            # the child died or hung during todo[0]: blame it, go on with the rest
            why = _rc_text(rc, timed_out, args.idle_timeout)
            errors.append({"round": rnd, "loop": name, "workload": todo[0],
                           "error": why, "stderr": tail.strip()[-1500:]})
            todo = todo[1:]
    return samples, errors


def _median(xs):
    return statistics.median(xs) if xs else None


def _use_clean(ss, want):
    """The samples to base statistics on: the undisturbed ones if there are at
    least min(want, 3) of them (or all samples are clean), else all."""
    clean = [s for s in ss if not s.get("disturbed")]
    if clean and (len(clean) == len(ss) or len(clean) >= min(want, 3)):
        return clean, False
    return ss, bool(ss) and len(clean) < len(ss)


def short_of_clean(samples, loops, workloads, want):
    """Workloads for which some loop has fewer than `want` clean samples
    (pairs that never produced a sample, i.e. always fail, do not count)."""
    cnt, seen = {}, set()
    for s in samples:
        key = (s["workload"], s["loop"])
        seen.add(key)
        if not s.get("disturbed"):
            cnt[key] = cnt.get(key, 0) + 1
    return [w for w in workloads
            if any((w, l) in seen and cnt.get((w, l), 0) < want for l in loops)]


# uvcore / asyncio must be above this (in addition to TARGETS); filled from net.py
TARGETS_VS_ASYNCIO = {}


def summarize(samples, errors, loops, workloads, rounds, suite):
    """Per-workload statistics of one suite: per loop median [min-max] over the
    samples used (see _use_clean), ratios of medians, same-round ratios,
    ops per CPU-second, verdict against the targets."""
    samples = [s for s in samples if s.get("suite", "micro") == suite]
    by = {}
    for s in samples:
        by.setdefault((s["workload"], s["loop"]), []).append(s)
    used = {}
    for k, ss in by.items():
        used[k] = _use_clean(ss, rounds)
    nerr = {}
    for e in errors:
        if e.get("suite", "micro") != suite:
            continue
        for w in ([e["workload"]] if e["workload"] else workloads):
            nerr[(w, e["loop"])] = nerr.get((w, e["loop"]), 0) + 1
    summary = {}
    for w in workloads:
        ent = {"suite": suite, "target": TARGETS.get(w),
               "target_vs_asyncio": TARGETS_VS_ASYNCIO.get(w),
               "loops": {}, "ratios": {}, "paired": {}, "cpu_ratios": {}}
        for l in loops:
            ss, noisy = used.get((w, l), ([], False))
            rates = [s["rate"] for s in ss]
            cpu_rates = [s["cpu_rate"] for s in ss if s.get("cpu_rate")]
            ent["loops"][l] = {
                "n_samples": len(by.get((w, l), [])),
                "n_used": len(rates),
                "uses_disturbed": noisy,
                "median": _median(rates),
                "min": min(rates) if rates else None,
                "max": max(rates) if rates else None,
                "cpu_rate_median": _median(cpu_rates),
                "disturbed_samples": sum(1 for s in by.get((w, l), []) if s.get("disturbed")),
                "errors": nerr.get((w, l), 0),
            }
        # ratios of medians, and per-round (paired) ratios
        for a in loops:
            for b in loops:
                if a == b or b not in (BASELINE, "asyncio"):
                    continue
                ma, mb = ent["loops"][a]["median"], ent["loops"][b]["median"]
                key = "%s/%s" % (a, b)
                ent["ratios"][key] = (ma / mb) if (ma and mb) else None
                ca, cb = ent["loops"][a]["cpu_rate_median"], ent["loops"][b]["cpu_rate_median"]
                ent["cpu_ratios"][key] = (ca / cb) if (ca and cb) else None
                # same-round ratios over the samples used for the medians
                ra = {s["round"]: s["rate"] for s in used.get((w, a), ([], 0))[0]}
                rb = {s["round"]: s["rate"] for s in used.get((w, b), ([], 0))[0]}
                ent["paired"][key] = [ra[r] / rb[r] for r in sorted(ra) if r in rb]
        key = "%s/%s" % (SUBJECT, BASELINE)
        akey = "%s/asyncio" % SUBJECT
        r = ent["ratios"].get(key)
        t = ent["target"]
        ta = ent["target_vs_asyncio"]
        ra_ = ent["ratios"].get(akey)
        if t is None or r is None or (ta is not None and ra_ is None):
            ent["pass"] = None
        else:
            ent["pass"] = r >= t and (ta is None or ra_ > ta)
            # rounds in which the same-round ratio(s) met the target(s)
            ss = {x["round"]: x["rate"] for x in used.get((w, SUBJECT), ([], 0))[0]}
            sb = {x["round"]: x["rate"] for x in used.get((w, BASELINE), ([], 0))[0]}
            sa = {x["round"]: x["rate"] for x in used.get((w, "asyncio"), ([], 0))[0]}
            met = tot = 0
            for rnd in sorted(ss):
                if rnd not in sb or (ta is not None and rnd not in sa):
                    continue
                tot += 1
                if ss[rnd] / sb[rnd] >= t and (ta is None or ss[rnd] / sa[rnd] > ta):
                    met += 1
            ent["rounds_meeting_target"] = "%d/%d" % (met, tot)
        summary[w] = ent
    return summary


def _fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e3:
        return "%.0fk" % (x / 1e3)
    return "%.0f" % x


def _fmt_cell(d):
    if not d or d["median"] is None:
        return "error" if d and d.get("errors") else "-"
    m = d["median"]
    unit, div = ("M", 1e6) if m >= 1e6 else (("k", 1e3) if m >= 1e3 else ("", 1.0))
    dec = 2 if unit == "M" else 0
    cell = "%.*f%s [%.*f-%.*f]" % (dec, m / div, unit, dec, d["min"] / div, dec, d["max"] / div)
    if d.get("uses_disturbed"):
        cell += " *"
    if d.get("errors"):
        cell += " (%d err)" % d["errors"]
    return cell


def _fmt_ratio(r, paired=None):
    if r is None:
        return "n/a"
    s = "%.2fx" % r
    if paired and len(paired) > 1:
        s += " [%.2f-%.2f]" % (min(paired), max(paired))
    return s


def _table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    out = []
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out.append(line(headers))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        out.append(line(r))
    return "\n".join(out)


SUITE_TITLES = {
    "micro": "micro: scheduling (operations/s; child pinned to one CPU)",
    "net": "net: echo round trips/s and HTTP requests/s (server on one CPU, load generator "
           "on the other)",
}


def _tfmt(t):
    """1.05 -> '1.05', 1.1 -> '1.1', 2 -> '2.0'"""
    s = ("%.2f" % t).rstrip("0")
    return s + "0" if s.endswith(".") else s


def _target_text(ent):
    t = ent.get("target")
    if not t:
        return "-"
    s = ">= %sx" % _tfmt(t)
    if ent.get("target_vs_asyncio") is not None:
        s += ", > asyncio"
    return s


def _verdict(ent, avail):
    t = ent.get("target")
    if ent["pass"] is None:
        if not t:
            return "-"
        if (SUBJECT in avail and ent["loops"][SUBJECT]["median"] is None
                and ent["loops"][SUBJECT]["errors"]):
            return "ERROR"
        return "n/a"
    return "%s (%s rounds)" % ("PASS" if ent["pass"] else "FAIL", ent["rounds_meeting_target"])


def _suite_tables(res, suite):
    loops = res["loops_requested"]
    avail = [l for l in loops if res["loops"][l]["available"]]
    summary = {w: e for w, e in res["summary"].items() if e.get("suite", "micro") == suite}
    out = []
    ratio_keys = []
    for a in loops:
        if a != BASELINE and BASELINE in loops:
            ratio_keys.append("%s/%s" % (a, BASELINE))
    if SUBJECT in loops and "asyncio" in loops:
        ratio_keys.append("%s/asyncio" % SUBJECT)
    show_target = SUBJECT in loops and BASELINE in loops
    ceiling = (res.get("net") or {}).get("ceiling") if suite == "net" else None
    show_ceiling = bool(ceiling)

    headers = ["workload"] + ["%s median [min-max]" % l for l in loops]
    if show_ceiling:
        headers.append("C epoll (ceiling)")
    headers += ratio_keys
    if show_target:
        headers += ["target %s/%s" % (SUBJECT, BASELINE), "result"]
    rows = []
    for w, ent in summary.items():
        row = [LABELS.get(w, w)]
        for l in loops:
            row.append(_fmt_cell(ent["loops"][l]) if l in avail else "missing")
        if show_ceiling:
            row.append(_fmt_cell(ceiling.get(ent.get("ceiling_key"))))
        for k in ratio_keys:
            row.append(_fmt_ratio(ent["ratios"].get(k), ent["paired"].get(k)))
        if show_target:
            row += [_target_text(ent), _verdict(ent, avail)]
        rows.append(row)
    out.append(_table(headers, rows))
    sm = res[suite]
    out.append("rates per second (M = 1e6, k = 1e3), %d round(s)%s; ratios are of medians, "
               "[min-max] of the same-round ratios." % (
                   sm["rounds"], " + %d extra" % sm["extra_rounds"] if sm["extra_rounds"] else ""))

    # CPU efficiency, medians
    if avail:
        what = ("ops per CPU-second of the child" if suite == "micro"
                else "round trips (requests) per server CPU-second")
        headers2 = ["workload (%s)" % what] + avail
        if show_ceiling:
            headers2.append("C epoll")
        ckeys = [k for k in ratio_keys if k.split("/")[0] in avail and k.split("/")[1] in avail]
        headers2 += ckeys
        rows2 = []
        for w, ent in summary.items():
            row = [LABELS.get(w, w)] + [_fmt_rate(ent["loops"][l]["cpu_rate_median"])
                                        for l in avail]
            if show_ceiling:
                c = ceiling.get(ent.get("ceiling_key"))
                row.append(_fmt_rate(c.get("cpu_rate_median")) if c else "-")
            row += [_fmt_ratio(ent["cpu_ratios"].get(k)) for k in ckeys]
            rows2.append(row)
        out.append("")
        out.append(_table(headers2, rows2))

    # noise
    ss = [s for s in res["samples"] if s.get("suite", "micro") == suite]
    dist = [s for s in ss if s.get("disturbed")]
    retried = [s for s in ss if len(s.get("attempts_other_cpu") or []) > 1]
    if dist or retried:
        excluded = sum(ent["loops"][l]["n_samples"] - ent["loops"][l]["n_used"]
                       for ent in summary.values() for l in avail)
        thr = sm.get("disturbed_threshold", DISTURBED)
        skipped = sum(1 for s in ss if s.get("retry_skipped"))
        out.append("")
        out.append("noise: %d measurement(s) disturbed (other processes used > %d%% of a CPU): "
                   "%d re-measured at once%s; %d sample(s) still disturbed, %d left out of the "
                   "statistics; %d extra round(s) run%s.%s"
                   % (len(retried) + skipped, thr * 100, len(retried),
                      ", %d not (time budget)" % skipped if skipped else "",
                      len(dist), excluded, sm["extra_rounds"],
                      " (%d skipped: time budget)" % sm["extra_rounds_skipped_for_budget"]
                      if sm.get("extra_rounds_skipped_for_budget") else "",
                      " '*' = too few clean samples, statistics include disturbed ones."
                      if any(ent["loops"][l]["uses_disturbed"] for ent in summary.values()
                             for l in avail) else ""))
    if suite == "net":
        n = res["net"]
        if n.get("error"):
            out.append("net suite NOT RUN: %s" % n["error"].splitlines()[0])
        else:
            out.append("net: %d connections, %.1f s measured after %.1f s warm-up (wrk: whole "
                       "seconds, no warm-up), servers primed with %.1f s of load first, %s; %s"
                       % (n["connections"], n["net_time_s"], n["warmup_time_s"],
                          n["prime_time_s"], n["transport"] + (" (HTTP: tcp)" if
                                                               n["transport"] != "tcp" else ""),
                          n["pinning"]))
            out.append("load generators: loadgen.c (%s %s), %s; httptools %s"
                       % (n.get("cc", "?"), n.get("cflags", ""), n.get("wrk") or "wrk missing",
                          n.get("httptools") or "missing"))
        warned = [s for s in ss if s.get("server_stderr")]
        if warned:
            out.append("note: %d server(s) wrote to stderr (see server_stderr in the JSON), "
                       "e.g. %s %s: %s" % (len(warned), warned[0]["loop"], warned[0]["workload"],
                                           warned[0]["server_stderr"].splitlines()[-1][:150]))
    return "\n".join(out)


def _grouped_errors(errors, limit=25):
    groups = {}
    for e in errors:
        first = (e["error"] or "").splitlines()[0][:220] if e.get("error") else ""
        key = (e.get("suite", "micro"), e["loop"], first)
        groups.setdefault(key, []).append(e)
    out = []
    for (suite, loop, msg), es in list(groups.items())[:limit]:
        wls = []
        for e in es:
            w = e["workload"] or "(all)"
            if w not in wls:
                wls.append(w)
        rounds = sorted({e["round"] for e in es})
        out.append("  %s %s: %d x %s  [%s; round(s) %s]"
                   % (suite, loop, len(es), msg, ", ".join(wls[:8]) + (", ..." if len(wls) > 8
                                                                      else ""),
                      ",".join(map(str, rounds))))
    if len(groups) > limit:
        out.append("  ... %d more kinds, see the JSON" % (len(groups) - limit))
    return out


def render_report(res):
    loops = res["loops_requested"]
    out = []
    for suite in res["suites"]:
        if not any(e.get("suite", "micro") == suite for e in res["summary"].values()):
            if suite == "net" and res.get("net", {}).get("error"):
                out.append("== %s ==" % SUITE_TITLES[suite])
                out.append("NOT RUN: %s" % res["net"]["error"])
                out.append("")
            continue
        out.append("== %s ==" % SUITE_TITLES[suite])
        out.append(_suite_tables(res, suite))
        out.append("")

    # missing loops, errors
    for l in loops:
        li = res["loops"][l]
        if not li["available"]:
            out.append("%s: MISSING - %s" % (l, li["error"]))
    if res["errors"]:
        out.append("errors (%d), grouped:" % len(res["errors"]))
        out += _grouped_errors(res["errors"])
    if out and out[-1] != "":
        out.append("")

    # versions and machine
    v = res["versions"]
    out.append("python %s (%s)" % (v["python"], v["python_build"]))
    for l in loops:
        li = res["loops"][l]
        if l == "asyncio":
            continue
        if li["available"]:
            i = li["info"]
            out.append("%s %s%s  (%s)" % (l, i.get("version", "?"),
                                         ", libuv %s" % i["libuv"] if i.get("libuv") else "",
                                         i.get("path", "")))
        else:
            out.append("%s: missing" % l)
    m = res["machine"]
    out.append("machine: %s, nproc %s, %s; pinned: %s"
               % (m["cpu_model"], m["nproc"], m["kernel"], m["pinning"]))
    out.append("load average (1/5/15 min): start %s, end %s"
               % (" ".join("%.2f" % x for x in m["loadavg_start"]),
                  " ".join("%.2f" % x for x in m["loadavg_end"])))
    out.append("run took %.0f s (%s)" % (res["duration_s"], ", ".join(
        "%s %.0f s" % (s, res[s]["duration_s"]) for s in res["suites"]
        if res.get(s, {}).get("duration_s") is not None)))
    return "\n".join(out)


def _plot_suite(ax, res, suite, title):
    loops = res["loops_requested"]
    others = [l for l in loops if l != BASELINE]
    colors = {"uvcore": "#1f77b4", "asyncio": "#999999"}
    summary = {w: e for w, e in res["summary"].items() if e.get("suite", "micro") == suite}
    wls = list(summary)
    n = len(wls)
    width = 0.8 / max(1, len(others))
    ymax = 1.2
    for i, l in enumerate(others):
        key = "%s/%s" % (l, BASELINE)
        avail = res["loops"][l]["available"]
        xs, ys, lo, hi = [], [], [], []
        for j, w in enumerate(wls):
            r = summary[w]["ratios"].get(key)
            if r is None:
                continue
            p = summary[w]["paired"].get(key) or [r]
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(r)
            lo.append(max(0.0, r - min(p)))
            hi.append(max(0.0, max(p) - r))
            ymax = max(ymax, max(p))
        if not avail:
            label = "%s / %s (missing)" % (l, BASELINE)
        elif not xs and any(summary[w]["loops"][l]["errors"] for w in wls):
            label = "%s / %s (errors: no result)" % (l, BASELINE)
        else:
            label = "%s / %s" % (l, BASELINE)
        if xs:
            bars = ax.bar(xs, ys, width * 0.92,
                          yerr=[lo, hi] if any(lo) or any(hi) else None, capsize=3,
                          color=colors.get(l, None), label=label,
                          error_kw={"elinewidth": 0.8, "ecolor": "#333333"})
            for b, y, h in zip(bars, ys, hi):
                # at the foot of the bar when it is tall enough, clear of the
                # error bars and target lines; above it otherwise
                inside = y >= 0.3
                ax.annotate("%.2f" % y, (b.get_x() + b.get_width() / 2, 0 if inside else y + h),
                            xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7,
                            color="white" if inside and l != "asyncio" else "black",
                            fontweight="bold" if inside else "normal")
        else:
            ax.bar([], [], color=colors.get(l, None), label=label)
        if suite == "net" and avail:
            # the same ratio per server CPU-second: robust when the client is
            # the limit or neighbours disturbed the wall-clock rates
            cx, cy = [], []
            for j, w in enumerate(wls):
                r = summary[w]["cpu_ratios"].get(key)
                if r is not None:
                    cx.append(j - 0.4 + width * (i + 0.5))
                    cy.append(r)
                    ymax = max(ymax, r)
            if cx:
                ax.scatter(cx, cy, marker="D", s=22, zorder=6, color="white",
                           edgecolors=colors.get(l, "#333333") if l != "asyncio" else "#555555",
                           linewidths=1.4, label="%s / %s per server CPU-s" % (l, BASELINE))
        # loops that errored on a workload: mark it
        for j, w in enumerate(wls):
            if (avail and summary[w]["ratios"].get(key) is None
                    and summary[w]["loops"][l]["errors"]):
                ax.annotate("error", (j - 0.4 + width * (i + 0.5), 0), xytext=(0, 3),
                            textcoords="offset points", ha="center", va="bottom",
                            fontsize=7, rotation=90, color="#d62728")
    # targets
    tx = [j for j, w in enumerate(wls) if summary[w]["target"]]
    if SUBJECT in loops and tx:
        for k, j in enumerate(tx):
            ent = summary[wls[j]]
            t = ent["target"]
            ymax = max(ymax, t)
            ax.hlines(t, j - 0.45, j + 0.45, colors="#d62728", linestyles="--", linewidth=1.6,
                      label="target %s/%s" % (SUBJECT, BASELINE) if k == 0 else None)
            ax.annotate(_target_text(ent), (j + 0.45, t), xytext=(0, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=7,
                        color="#d62728")
    # the C ceiling, relative to the baseline, as a marker (clipped at the top)
    ceiling = (res.get("net") or {}).get("ceiling") if suite == "net" else None
    top = ymax * 1.15
    if ceiling:
        cx, cy, clipped = [], [], []
        for j, w in enumerate(wls):
            c = ceiling.get(summary[w].get("ceiling_key"))
            b = summary[w]["loops"].get(BASELINE, {}).get("median")
            if c and c.get("median") and b:
                r = c["median"] / b
                cx.append(j)
                cy.append(min(r, top * 0.97))
                clipped.append(r)
        if cx:
            ax.scatter(cx, cy, marker="_", s=300, linewidths=2.2, color="black", zorder=5,
                       label="C epoll ceiling / %s (^ = off the scale)" % BASELINE)
            for x, y, r in zip(cx, cy, clipped):
                ax.annotate("C %.1fx%s" % (r, "" if r <= top * 0.97 else "^"), (x - 0.44, y),
                            xytext=(0, 2), textcoords="offset points", ha="left",
                            va="bottom", fontsize=6.5, color="black")
    ax.axhline(1.0, color="black", linewidth=1.0, label="%s = 1" % BASELINE)
    ax.set_xticks(range(n))
    ax.set_xticklabels([LABELS.get(w, w) for w in wls], rotation=25, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, top)
    ax.set_ylabel("relative to %s\n(ratio of medians)" % BASELINE, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    ax.grid(axis="y", alpha=0.3)


def plot(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:     # noqa: BLE001
        print("note: matplotlib not available (%s); no chart written." % (e,), file=sys.stderr)
        return False
    loops = res["loops_requested"]
    if BASELINE not in loops:
        print("note: no %s in --loops; no ratio chart." % BASELINE, file=sys.stderr)
        return False
    suites = [s for s in res["suites"]
              if any(e.get("suite", "micro") == s for e in res["summary"].values())]
    if not suites:
        print("note: nothing to plot.", file=sys.stderr)
        return False
    counts = [sum(1 for e in res["summary"].values() if e.get("suite", "micro") == s)
              for s in suites]
    width = max(7.0, 0.75 * max(counts) + 2.5)
    fig, axes = plt.subplots(len(suites), 1, figsize=(width, 4.6 * len(suites) + 0.4),
                             dpi=120, squeeze=False)
    for ax, s in zip(axes[:, 0], suites):
        sm = res[s]
        if s == "micro":
            title = "micro (scheduling): %d round(s), ops/s" % sm["rounds"]
        else:
            n = res["net"]
            title = ("net: %d round(s), %d connections, %.1f s per sample, %s; echo round trips/s, "
                     "HTTP requests/s (wrk)" % (sm["rounds"], n["connections"], n["net_time_s"],
                                               n["transport"]))
        _plot_suite(ax, res, s, title)
    v = res["versions"]
    head = ("uvcore benchmarks, %s: python %s, %s %s"
            % (res["timestamp"][:16].replace("T", " "), v["python"], BASELINE,
               res["loops"][BASELINE]["info"].get("version", "?")
               if res["loops"][BASELINE]["available"] else "missing"))
    missing = [l for l in loops if not res["loops"][l]["available"]]
    if missing:
        head += "\nmissing: " + "; ".join(
            "%s (%s)" % (l, res["loops"][l]["error"].splitlines()[0][:70]) for l in missing)
    fig.suptitle(head, fontsize=10)
    fig.text(0.5, 0.003, "bars: ratio of median rates to %s; error bars: min-max of the "
             "same-round ratios; red dashed: targets for %s" % (BASELINE, SUBJECT),
             ha="center", va="bottom", fontsize=7.5, color="#555555")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97 if not missing else 0.95))
    fig.savefig(path)
    plt.close(fig)
    return True


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _show_path(p):
    rel = os.path.relpath(p)
    return p if rel.startswith("..") else rel


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return [float("nan")] * 3


def run_micro(args, avail, workloads):
    """The micro suite's rounds.  Returns (samples, errors, extra_rounds)."""
    samples, errors = [], []
    total = args.rounds * len(avail)
    k = 0
    tty = sys.stderr.isatty()
    rnd = 0
    extra = 0
    while True:
        if rnd < args.rounds:
            wl = workloads
        else:
            # extra rounds, for workloads short of undisturbed samples
            wl = short_of_clean(samples, avail, workloads, args.rounds)
            if not wl or extra >= args.extra_rounds or not avail:
                break
            extra += 1
            total += len(avail)
            print("micro extra round %d: too few undisturbed samples for %s"
                  % (extra, ",".join(wl)), file=sys.stderr)
        rnd += 1
        shift = (rnd - 1) % max(1, len(avail))
        order = avail[shift:] + avail[:shift]
        for l in order:
            k += 1
            if rnd <= args.rounds:
                head = "micro round %d/%d [%d/%d] %-8s" % (rnd, args.rounds, k, total, l)
            else:
                head = "micro extra round %d [%d/%d] %-8s" % (rnd - args.rounds, k, total, l)
            sys.stderr.write(head + " ...")
            sys.stderr.flush()
            t0 = time.monotonic()

            def progress(rec, head=head):
                if tty:
                    what = ("%s %s" % (rec["workload"], _fmt_rate(rec.get("rate")))
                            if rec.get("ok") else "%s ERROR" % rec["workload"])
                    sys.stderr.write("\r\033[K%s ... %s" % (head, what))
                    sys.stderr.flush()

            s, e = measure_loop(args, l, wl, rnd, progress)
            for x in s + e:
                x["suite"] = "micro"
            samples += s
            errors += e
            tail = " %.1f s" % (time.monotonic() - t0)
            if e:
                tail += "  (%d error(s): %s)" % (len(e), e[0]["error"].splitlines()[0][:120])
            # on a terminal, rewrite the line; otherwise just finish it
            sys.stderr.write(("\r\033[K%s ...%s\n" % (head, tail)) if tty else tail + "\n")
            sys.stderr.flush()
    return samples, errors, extra


def _split_workloads(arg, suites):
    """--workloads (names from either suite) -> {suite: [names]} in report order."""
    import micro
    import net
    known = {"micro": micro.ORDER + micro.EXTRA, "net": net.ORDER}
    default = {"micro": list(micro.ORDER), "net": list(net.ORDER)}
    if not arg:
        return {s: default[s] for s in suites}
    names = [w.strip() for w in arg.split(",") if w.strip()]
    for w in names:
        if not any(w in known[s] for s in ("micro", "net")):
            sys.exit("unknown workload %r (known: %s)" % (
                w, ", ".join(known["micro"] + known["net"])))
    return {s: [w for w in known[s] if w in names] for s in suites}


def parent_main(args):
    import micro   # only for the workload table (does not import any loop)
    import net
    TARGETS.update(net.TARGETS)
    TARGETS_VS_ASYNCIO.update(net.TARGETS_VS_ASYNCIO)
    LABELS.update(net.LABELS)

    loops = [l.strip() for l in args.loops.split(",") if l.strip()]
    for l in loops:
        if l not in ALL_LOOPS:
            sys.exit("unknown loop %r (known: %s)" % (l, ", ".join(ALL_LOOPS)))
    suites = ["micro", "net"] if args.suite == "all" else [args.suite]
    wsel = _split_workloads(args.workloads, suites)
    suites = [s for s in suites if wsel[s]]
    if not suites:
        sys.exit("no workload selected")

    # pinning: the micro child / the server on one CPU via taskset, the load
    # generator (and the parent) on another one if possible
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = []
    cpu = args.cpu if args.cpu is not None else (0 if (not allowed or 0 in allowed) else allowed[0])
    rest = [c for c in allowed if c != cpu]
    client_cpu = args.client_cpu if args.client_cpu is not None else (rest[0] if rest else cpu)
    args.pin_cmd = None
    server_pin, client_pin = [], []
    net_cpus = allowed or [0]
    if args.no_pin:
        pinning = "no (--no-pin)"
        net_pinning = "not pinned"
    elif not shutil.which("taskset"):
        pinning = "no (taskset not found)"
        net_pinning = "not pinned (no taskset)"
    else:
        args.pin_cmd = ["taskset", "-c", str(cpu)]
        server_pin = ["taskset", "-c", str(cpu)]
        client_pin = ["taskset", "-c", str(client_cpu)]
        net_cpus = sorted({cpu, client_cpu})
        pinning = "child/server on CPU %d (taskset)" % cpu
        net_pinning = "server on CPU %d, load generator on CPU %d" % (cpu, client_cpu)
        if rest:
            try:
                os.sched_setaffinity(0, rest)
                pinning += ", runner on CPU %s" % ",".join(map(str, rest))
            except OSError:
                pass
        if "net" in suites:
            pinning += ", load generator on CPU %d" % client_cpu

    t_start = time.time()
    load_start = _loadavg()
    desc = []
    if "micro" in suites:
        desc.append("micro: %s, %d round(s) of ~%.1f s samples"
                    % (",".join(wsel["micro"]), args.rounds, args.sample_time))
    if "net" in suites:
        desc.append("net: %s, %d round(s) of %.1f s"
                    % (",".join(wsel["net"]), args.net_rounds, args.net_time))
    print("uvcore benchmarks: loops %s; %s; pinning: %s"
          % (",".join(loops), "; ".join(desc), pinning), file=sys.stderr)

    loop_info = {}
    for l in loops:
        loop_info[l] = probe_loop(args, l)
        if not loop_info[l]["available"]:
            print("  %s: MISSING - %s" % (l, loop_info[l]["error"].splitlines()[0][:300]),
                  file=sys.stderr)
    avail = [l for l in loops if loop_info[l]["available"]]

    samples, errors = [], []
    suite_meta = {}
    if "micro" in suites:
        t0 = time.time()
        s, e, extra = run_micro(args, avail, wsel["micro"])
        samples += s
        errors += e
        suite_meta["micro"] = {
            "duration_s": round(time.time() - t0, 1),
            "rounds": args.rounds, "extra_rounds": extra,
            "sample_time_s": args.sample_time, "warmup_time_s": args.warmup_time,
            "disturbed_threshold": DISTURBED,
            "workloads": wsel["micro"],
            "method": ("per round, each loop once in rotated order; one child process per "
                       "(round, loop) running every workload once on a fresh event loop after "
                       "a warm-up that calibrates ops per sample; child pinned with taskset; "
                       "median [min-max] over rounds; ratios of medians"),
        }
    if "net" in suites:
        t0 = time.time()
        ctx, meta = net.make_context(args, _child_env(), server_pin, client_pin, net_cpus)
        meta["pinning"] = net_pinning
        extra = 0
        if ctx is None:
            print("net suite not run: %s" % meta["error"], file=sys.stderr)
            for w in wsel["net"]:
                errors.append({"suite": "net", "round": 0, "loop": "all", "workload": w,
                               "error": meta["error"].splitlines()[0]})
        else:
            wl = list(wsel["net"])
            if "http" in wl and not ctx["wrk"]:
                errors.append({"suite": "net", "round": 0, "loop": "all", "workload": "http",
                               "error": "wrk not found (apt-get install wrk); HTTP not run"})
                print("net: wrk not found (apt-get install wrk); skipping http", file=sys.stderr)
                wl.remove("http")
            if "http" in wl and not meta.get("httptools"):
                errors.append({"suite": "net", "round": 0, "loop": "all", "workload": "http",
                               "error": "httptools is not installed in %s (pip install "
                                        "httptools); HTTP not run" % sys.executable})
                print("net: httptools not installed; skipping http", file=sys.stderr)
                wl.remove("http")
            try:
                s, e, extra, info = net.run_suite(args, ctx, avail, wl, short_of_clean,
                                                  lambda m: print(m, file=sys.stderr))
                meta.update(info)
            finally:
                net.cleanup(ctx)
            samples += s
            errors += e
        meta.update({
            "duration_s": round(time.time() - t0, 1),
            "rounds": args.net_rounds, "extra_rounds": extra,
            "workloads": wsel["net"],
            "method": ("per round, per workload, each loop in rotated order: a fresh server "
                       "process pinned to one CPU, primed with a short throw-away client run, "
                       "then the load generator (loadgen.c ping-pong, or wrk for HTTP) pinned "
                       "to the other CPU for a fixed time; server CPU time from /proc/PID/stat "
                       "over the measured window; a C epoll server as the ceiling; median "
                       "[min-max] over rounds; ratios of medians"),
        })
        suite_meta["net"] = meta

    load_end = _loadavg()
    all_wl = [w for s in suites for w in wsel[s]]
    wdesc = {}
    for w in wsel.get("micro", []):
        wdesc[w] = {"suite": "micro", "unit": micro.WORKLOADS[w][1],
                    "description": micro.WORKLOADS[w][2],
                    "target_vs_uvloop": TARGETS.get(w)}
    for w in wsel.get("net", []):
        d = net.WORKLOADS[w]
        wdesc[w] = {"suite": "net", "unit": d["unit"], "description": d["description"],
                    "message_size": d["size"], "target_vs_uvloop": TARGETS.get(w),
                    "target_vs_asyncio": TARGETS_VS_ASYNCIO.get(w)}
    res = {
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "duration_s": round(time.time() - t_start, 1),
        "argv": sys.argv[1:],
        "suites": suites,
        # the micro suite's settings stay at the top level too (older readers)
        "rounds": args.rounds,
        "extra_rounds": suite_meta.get("micro", {}).get("extra_rounds", 0),
        "quick": args.quick,
        "sample_time_s": args.sample_time,
        "warmup_time_s": args.warmup_time,
        "loops_requested": loops,
        "workloads_requested": all_wl,
        "method": {s: suite_meta[s]["method"] for s in suites},
        "machine": {
            "nproc": os.cpu_count(),
            "affinity": allowed,
            "cpu_model": _cpu_model(),
            "kernel": "%s %s" % (platform.system(), platform.release()),
            "hostname": platform.node(),
            "pinning": pinning,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
        },
        "versions": {
            "python": platform.python_version(),
            "python_build": "%s, %s" % (platform.python_implementation(),
                                        " ".join(platform.python_build())),
            "executable": sys.executable,
        },
        "loops": loop_info,
        "workloads": wdesc,
        "targets": {w: TARGETS[w] for w in all_wl if w in TARGETS},
        "targets_vs_asyncio": {w: TARGETS_VS_ASYNCIO[w] for w in all_wl
                               if w in TARGETS_VS_ASYNCIO},
        "samples": samples,
        "errors": errors,
    }
    res.update(suite_meta)
    for l in loops:
        if loop_info[l]["available"]:
            res["versions"][l] = loop_info[l]["info"].get("version")
            if loop_info[l]["info"].get("libuv"):
                res["versions"][l + "_libuv"] = loop_info[l]["info"]["libuv"]
    if "net" in suites:
        for k in ("cc", "wrk", "httptools"):
            if res["net"].get(k):
                res["versions"][k] = res["net"][k]
    summary = {}
    if "micro" in suites:
        summary.update(summarize(samples, errors, loops, wsel["micro"], args.rounds, "micro"))
    if "net" in suites:
        ns = summarize(samples, errors, loops, wsel["net"], args.net_rounds, "net")
        ceiling = {}
        for w, ent in ns.items():
            key = net.WORKLOADS[w]["ceiling"]
            ent["ceiling_key"] = key
            if key not in ceiling:
                c = net.ceiling_stats(samples, key)
                if c is not None:
                    ceiling[key] = c
            c = ceiling.get(key)
            ent["ceiling"] = c
            b = ent["loops"].get(BASELINE, {}).get("median") if BASELINE in loops else None
            ent["ratios"]["%s/%s" % (net.CEILING, BASELINE)] = (
                c["median"] / b if (c and c.get("median") and b) else None)
        for e in errors:
            if e.get("suite") == "net" and e["loop"] == net.CEILING and e["workload"]:
                ceiling.setdefault(net.WORKLOADS[e["workload"]]["ceiling"],
                                   {"median": None, "errors": 0})
                ceiling[net.WORKLOADS[e["workload"]]["ceiling"]]["errors"] = \
                    ceiling[net.WORKLOADS[e["workload"]]["ceiling"]].get("errors", 0) + 1
        res["net"]["ceiling"] = ceiling
        summary.update(ns)
    res["summary"] = summary

    report = render_report(res)
    print(report)

    out_dir = args.out_dir
    os.makedirs(out_dir, exist_ok=True)
    jpath = os.path.join(out_dir, "latest.json")
    tmp = jpath + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, jpath)
    print("\nwrote %s" % _show_path(jpath), file=sys.stderr)
    ppath = os.path.join(out_dir, "latest.png")
    if plot(res, ppath):
        print("wrote %s" % _show_path(ppath), file=sys.stderr)
    return 1 if (errors and not samples) else 0


def main(argv=None):
    p = argparse.ArgumentParser(
        description="uvcore benchmarks: scheduling micro benchmarks and network benchmarks "
                    "(interleaved, rotated, pinned).")
    p.add_argument("--suite", choices=("micro", "net", "all"), default="all",
                   help="which suite(s) to run (default: all)")
    p.add_argument("--loops", default=",".join(ALL_LOOPS),
                   help="comma-separated, from %s (default: all)" % ",".join(ALL_LOOPS))
    p.add_argument("--workloads", default=None,
                   help="comma-separated workload names, from either suite (default: all with "
                        "a target, plus every net workload); --list shows them")
    p.add_argument("--rounds", type=int, default=None,
                   help="micro: rounds (default 5; 1 with --quick)")
    p.add_argument("--extra-rounds", type=int, default=None,
                   help="micro: at most this many extra rounds for workloads short of "
                        "undisturbed samples (default 2; 0 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 round, short samples, both suites")
    p.add_argument("--sample-time", type=float, default=None,
                   help="micro: seconds per measured sample (default 0.5; 0.1 with --quick)")
    p.add_argument("--warmup-time", type=float, default=None,
                   help="micro: seconds of warm-up per workload (default 0.1; 0.03 with --quick)")
    g = p.add_argument_group("net suite")
    g.add_argument("--net-rounds", type=int, default=None,
                   help="rounds (default 3; 1 with --quick)")
    g.add_argument("--net-extra-rounds", type=int, default=None,
                   help="at most this many extra rounds for workloads short of undisturbed "
                        "samples (default 1; 0 with --quick)")
    g.add_argument("--net-time", type=float, default=None,
                   help="seconds measured per sample (default 2; 1 with --quick); wrk rounds "
                        "it to whole seconds")
    g.add_argument("--net-warmup", type=float, default=None,
                   help="seconds of load before the measured window (default 0.3; 0.1 with "
                        "--quick)")
    g.add_argument("--prime-time", type=float, default=None,
                   help="seconds of the throw-away priming run on every fresh server "
                        "(default 0.3; 0.2 with --quick)")
    g.add_argument("--net-budget", type=float, default=None,
                   help="seconds: re-measure disturbed samples and run extra rounds only while "
                        "the suite is projected to finish within this (default: 1.2 x the "
                        "estimated time of the planned rounds)")
    g.add_argument("--connections", type=int, default=50,
                   help="client connections (default 50)")
    g.add_argument("--net-transport", choices=("tcp", "unix"), default="tcp",
                   help="echo workloads over loopback TCP (default) or a Unix socket; HTTP "
                        "always uses TCP")
    g.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                   help="do not run the C epoll reference server")
    g.add_argument("--client-cpu", type=int, default=None,
                   help="CPU for the load generator (default: the first allowed CPU other "
                        "than --cpu)")
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--cpu", type=int, default=None,
                   help="CPU to pin the micro child and the net server to (default 0)")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="micro: kill a child that prints no result for this many seconds "
                        "(default 60)")
    p.add_argument("--out-dir", default=RESULTS_DIR, help="where latest.json/.png go")
    p.add_argument("--list", action="store_true", help="list workloads and exit")
    # internal: child mode
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.sample_time is None:
        args.sample_time = 0.1 if args.quick else 0.5
    if args.warmup_time is None:
        args.warmup_time = 0.03 if args.quick else 0.1
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.extra_rounds is None:
        args.extra_rounds = 0 if args.quick else 2
    if args.net_rounds is None:
        args.net_rounds = 1 if args.quick else 3
    if args.net_extra_rounds is None:
        args.net_extra_rounds = 0 if args.quick else 1
    if args.net_time is None:
        args.net_time = 1.0 if args.quick else 2.0
    if args.net_warmup is None:
        args.net_warmup = 0.1 if args.quick else 0.3
    if args.prime_time is None:
        args.prime_time = 0.2 if args.quick else 0.3
    if args.rounds < 1 or args.net_rounds < 1:
        p.error("--rounds and --net-rounds must be >= 1")
    if args.net_time <= 0 or args.connections < 1:
        p.error("--net-time and --connections must be > 0")

    if args.child:
        sys.path.insert(0, HERE)
        return child_main(args)
    sys.path.insert(0, HERE)
    if args.list:
        import micro
        import net
        print("micro suite:")
        for w in micro.ORDER + micro.EXTRA:
            fn, unit, desc, _ = micro.WORKLOADS[w]
            t = TARGETS.get(w)
            print("  %-22s %-14s %s%s" % (w, unit, desc,
                                           "  (target >= %.1fx uvloop)" % t if t else "  (extra)"))
        print("net suite:")
        for w in net.ORDER:
            d = net.WORKLOADS[w]
            t = net.TARGETS.get(w)
            ta = net.TARGETS_VS_ASYNCIO.get(w)
            print("  %-22s %-14s %s%s" % (w, d["unit"], d["description"],
                                           ("  (target >= %sx uvloop%s)"
                                            % (_tfmt(t), ", > asyncio" if ta is not None else ""))
                                           if t else ""))
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
