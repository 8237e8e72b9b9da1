#!/usr/bin/env python3
"""uvcore micro benchmark runner (scheduling side).

    python benchmarks/run.py [--loops uvcore,uvloop,asyncio] [--rounds 5]
                             [--workloads call_soon,...] [--quick] [--no-pin]

Method (see /work/shared/BENCHMARKING.md and benchmarks/README.md): for each
round, every loop runs once, in rotated order (A B C, B C A, C A B, ...).  One
run is one child process (``run.py --child LOOP``), pinned to one CPU with
taskset, that runs every selected workload once on a fresh event loop after a
short warm-up and prints one JSON line per workload.  The parent reports
``median [min-max]`` over rounds, ratios of medians to uvloop, the targets,
and writes benchmarks/results/latest.json and latest.png.

Standard library only, plus matplotlib (optional) for the chart.
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


def summarize(samples, errors, loops, workloads, rounds):
    by = {}
    for s in samples:
        by.setdefault((s["workload"], s["loop"]), []).append(s)
    used = {}
    for k, ss in by.items():
        used[k] = _use_clean(ss, rounds)
    nerr = {}
    for e in errors:
        for w in ([e["workload"]] if e["workload"] else workloads):
            nerr[(w, e["loop"])] = nerr.get((w, e["loop"]), 0) + 1
    summary = {}
    for w in workloads:
        ent = {"target": TARGETS.get(w), "loops": {}, "ratios": {}, "paired": {}}
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
                # same-round ratios over the samples used for the medians
                ra = {s["round"]: s["rate"] for s in used.get((w, a), ([], 0))[0]}
                rb = {s["round"]: s["rate"] for s in used.get((w, b), ([], 0))[0]}
                ent["paired"][key] = [ra[r] / rb[r] for r in sorted(ra) if r in rb]
        key = "%s/%s" % (SUBJECT, BASELINE)
        r = ent["ratios"].get(key)
        t = ent["target"]
        if t is None or r is None:
            ent["pass"] = None
        else:
            ent["pass"] = r >= t
            pr = ent["paired"].get(key, [])
            ent["rounds_meeting_target"] = "%d/%d" % (sum(1 for x in pr if x >= t), len(pr))
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


def render_report(res):
    loops = res["loops_requested"]
    avail = [l for l in loops if res["loops"][l]["available"]]
    summary = res["summary"]
    out = []
    ratio_keys = []
    for a in loops:
        if a != BASELINE and BASELINE in loops:
            ratio_keys.append("%s/%s" % (a, BASELINE))
    if SUBJECT in loops and "asyncio" in loops:
        ratio_keys.append("%s/asyncio" % SUBJECT)
    show_target = SUBJECT in loops and BASELINE in loops

    headers = ["workload"] + ["%s median [min-max]" % l for l in loops] + ratio_keys
    if show_target:
        headers += ["target %s/%s" % (SUBJECT, BASELINE), "result"]
    rows = []
    for w, ent in summary.items():
        row = [LABELS.get(w, w)]
        for l in loops:
            row.append(_fmt_cell(ent["loops"][l]) if l in avail else "missing")
        for k in ratio_keys:
            row.append(_fmt_ratio(ent["ratios"].get(k), ent["paired"].get(k)))
        if show_target:
            t = ent["target"]
            row.append(">= %.1fx" % t if t else "-")
            if ent["pass"] is None:
                if not t:
                    row.append("-")
                elif (SUBJECT in avail and ent["loops"][SUBJECT]["median"] is None
                      and ent["loops"][SUBJECT]["errors"]):
                    row.append("ERROR")
                else:
                    row.append("n/a")
            else:
                row.append("%s (%s rounds)" % ("PASS" if ent["pass"] else "FAIL",
                                               ent["rounds_meeting_target"]))
        rows.append(row)
    out.append(_table(headers, rows))
    out.append("rates in operations/s (M = 1e6, k = 1e3), %d round(s)%s; ratios are of medians, "
               "[min-max] of the same-round ratios." % (
                   res["rounds"], " + %d extra" % res["extra_rounds"] if res["extra_rounds"] else ""))

    # CPU efficiency (ops per CPU-second of the child), medians
    if avail:
        headers2 = ["workload (ops per CPU-second)"] + avail
        rows2 = []
        for w, ent in summary.items():
            rows2.append([LABELS.get(w, w)] + [_fmt_rate(ent["loops"][l]["cpu_rate_median"])
                                               for l in avail])
        out.append("")
        out.append(_table(headers2, rows2))

    # missing loops, errors
    for l in loops:
        li = res["loops"][l]
        if not li["available"]:
            out.append("")
            out.append("%s: MISSING - %s" % (l, li["error"]))
    if res["errors"]:
        out.append("")
        out.append("errors (%d):" % len(res["errors"]))
        for e in res["errors"][:20]:
            out.append("  round %s %s %s: %s" % (e["round"], e["loop"], e["workload"] or "",
                                                e["error"].splitlines()[0][:200] if e["error"] else ""))
    dist = [s for s in res["samples"] if s.get("disturbed")]
    retried = [s for s in res["samples"] if len(s.get("attempts_other_cpu") or []) > 1]
    if dist or retried:
        excluded = sum(ent["loops"][l]["n_samples"] - ent["loops"][l]["n_used"]
                       for ent in summary.values() for l in avail)
        out.append("")
        out.append("noise: other processes used > %d%% of the pinned CPU during %d sample(s), "
                   "%d of them still after re-measuring; %d disturbed sample(s) left out of "
                   "the statistics; %d extra round(s) run.%s"
                   % (DISTURBED * 100, len(retried), len(dist), excluded, res["extra_rounds"],
                      " '*' = too few clean samples, statistics include disturbed ones."
                      if any(ent["loops"][l]["uses_disturbed"] for ent in summary.values()
                             for l in avail) else ""))

    # versions and machine
    out.append("")
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
    out.append("run took %.0f s" % res["duration_s"])
    return "\n".join(out)


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
    others = [l for l in loops if l != BASELINE]
    colors = {"uvcore": "#1f77b4", "asyncio": "#999999"}
    summary = res["summary"]
    wls = list(summary)
    n = len(wls)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * n + 2), 5.2), dpi=120)
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
        label = "%s / %s" % (l, BASELINE) if avail else "%s / %s (missing)" % (l, BASELINE)
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
                            ha="center", va="bottom", fontsize=8,
                            color="white" if inside and l != "asyncio" else "black",
                            fontweight="bold" if inside else "normal")
        else:
            ax.bar([], [], color=colors.get(l, None), label=label)
    # targets
    tx = [j for j, w in enumerate(wls) if summary[w]["target"]]
    if SUBJECT in loops and tx:
        for k, j in enumerate(tx):
            t = summary[wls[j]]["target"]
            ymax = max(ymax, t)
            ax.hlines(t, j - 0.45, j + 0.45, colors="#d62728", linestyles="--", linewidth=1.6,
                      label="target %s/%s" % (SUBJECT, BASELINE) if k == 0 else None)
            ax.annotate(">= %.1fx" % t, (j + 0.45, t), xytext=(0, 2), textcoords="offset points",
                        ha="right", va="bottom", fontsize=7, color="#d62728")
    ax.axhline(1.0, color="black", linewidth=1.0, label="%s = 1" % BASELINE)
    ax.set_xticks(range(n))
    ax.set_xticklabels([LABELS.get(w, w) for w in wls], rotation=20, ha="right", fontsize=9)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, ymax * 1.15)
    ax.set_ylabel("throughput relative to %s (ratio of medians)" % BASELINE)
    v = res["versions"]
    ax.set_title("uvcore micro benchmarks, %s: %d round(s), python %s, %s %s"
                 % (res["timestamp"][:16].replace("T", " "), res["rounds"], v["python"],
                    BASELINE, res["loops"][BASELINE]["info"].get("version", "?")
                    if res["loops"][BASELINE]["available"] else "missing"), fontsize=10)
    missing = [l for l in loops if not res["loops"][l]["available"]]
    if missing:
        ax.text(0.01, 0.98, "missing: " + "; ".join(
            "%s (%s)" % (l, res["loops"][l]["error"].splitlines()[0][:70]) for l in missing),
            transform=ax.transAxes, ha="left", va="top", fontsize=8, color="#d62728")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_xlabel("bars: ratio of median ops/s to %s; error bars: min-max of the same-round "
                  "ratios" % BASELINE, fontsize=8, color="#555555")
    fig.tight_layout()
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


def parent_main(args):
    import micro   # only for the workload table (does not import any loop)

    loops = [l.strip() for l in args.loops.split(",") if l.strip()]
    for l in loops:
        if l not in ALL_LOOPS:
            sys.exit("unknown loop %r (known: %s)" % (l, ", ".join(ALL_LOOPS)))
    if args.workloads:
        workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
        for w in workloads:
            if w not in micro.WORKLOADS:
                sys.exit("unknown workload %r (known: %s)"
                         % (w, ", ".join(micro.ORDER + micro.EXTRA)))
    else:
        workloads = list(micro.ORDER)

    # pinning: the child on one CPU via taskset, the parent off it if possible
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = []
    cpu = args.cpu if args.cpu is not None else (0 if (not allowed or 0 in allowed) else allowed[0])
    args.pin_cmd = None
    if args.no_pin:
        pinning = "no (--no-pin)"
    elif not shutil.which("taskset"):
        pinning = "no (taskset not found)"
    else:
        args.pin_cmd = ["taskset", "-c", str(cpu)]
        pinning = "child on CPU %d (taskset)" % cpu
        rest = [c for c in allowed if c != cpu]
        if rest:
            try:
                os.sched_setaffinity(0, rest)
                pinning += ", runner on CPU %s" % ",".join(map(str, rest))
            except OSError:
                pass

    t_start = time.time()
    load_start = _loadavg()
    print("uvcore benchmarks: loops %s; workloads %s; %d round(s) of ~%.1f s samples; pinning: %s"
          % (",".join(loops), ",".join(workloads), args.rounds, args.sample_time, pinning),
          file=sys.stderr)

    loop_info = {}
    for l in loops:
        loop_info[l] = probe_loop(args, l)
        if not loop_info[l]["available"]:
            print("  %s: MISSING - %s" % (l, loop_info[l]["error"].splitlines()[0][:300]),
                  file=sys.stderr)
    avail = [l for l in loops if loop_info[l]["available"]]

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
            print("extra round %d: too few undisturbed samples for %s"
                  % (extra, ",".join(wl)), file=sys.stderr)
        rnd += 1
        shift = (rnd - 1) % max(1, len(avail))
        order = avail[shift:] + avail[:shift]
        for l in order:
            k += 1
            if rnd <= args.rounds:
                head = "round %d/%d [%d/%d] %-8s" % (rnd, args.rounds, k, total, l)
            else:
                head = "extra round %d [%d/%d] %-8s" % (rnd - args.rounds, k, total, l)
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
            samples += s
            errors += e
            tail = " %.1f s" % (time.monotonic() - t0)
            if e:
                tail += "  (%d error(s): %s)" % (len(e), e[0]["error"].splitlines()[0][:120])
            # on a terminal, rewrite the line; otherwise just finish it
            sys.stderr.write(("\r\033[K%s ...%s\n" % (head, tail)) if tty else tail + "\n")
            sys.stderr.flush()

    load_end = _loadavg()
    res = {
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "duration_s": round(time.time() - t_start, 1),
        "argv": sys.argv[1:],
        "rounds": args.rounds,
        "extra_rounds": extra,
        "quick": args.quick,
        "sample_time_s": args.sample_time,
        "warmup_time_s": args.warmup_time,
        "loops_requested": loops,
        "workloads_requested": workloads,
        "method": ("per round, each loop once in rotated order; one child process per "
                   "(round, loop) running every workload once on a fresh event loop after a "
                   "warm-up that calibrates ops per sample; child pinned with taskset; "
                   "median [min-max] over rounds; ratios of medians"),
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
        "workloads": {w: {"unit": micro.WORKLOADS[w][1], "description": micro.WORKLOADS[w][2],
                          "target_vs_uvloop": TARGETS.get(w)} for w in workloads},
        "targets": {w: TARGETS[w] for w in workloads if w in TARGETS},
        "samples": samples,
        "errors": errors,
    }
    for l in loops:
        if loop_info[l]["available"]:
            res["versions"][l] = loop_info[l]["info"].get("version")
            if loop_info[l]["info"].get("libuv"):
                res["versions"][l + "_libuv"] = loop_info[l]["info"]["libuv"]
    res["summary"] = summarize(samples, errors, loops, workloads, args.rounds)

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
        description="uvcore scheduling micro benchmarks (interleaved, rotated, pinned).")
    p.add_argument("--loops", default=",".join(ALL_LOOPS),
                   help="comma-separated, from %s (default: all)" % ",".join(ALL_LOOPS))
    p.add_argument("--workloads", default=None,
                   help="comma-separated workload names (default: all with a target)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 5; 1 with --quick)")
    p.add_argument("--extra-rounds", type=int, default=None,
                   help="at most this many extra rounds for workloads short of undisturbed "
                        "samples (default 2; 0 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 round, short samples")
    p.add_argument("--sample-time", type=float, default=None,
                   help="seconds per measured sample (default 0.5; 0.1 with --quick)")
    p.add_argument("--warmup-time", type=float, default=None,
                   help="seconds of warm-up per workload (default 0.1; 0.03 with --quick)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the child with taskset")
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin the child to (default 0)")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="kill a child that prints no result for this many seconds (default 60)")
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
    if args.rounds < 1:
        p.error("--rounds must be >= 1")

    if args.child:
        sys.path.insert(0, HERE)
        return child_main(args)
    sys.path.insert(0, HERE)
    if args.list:
        import micro
        for w in micro.ORDER + micro.EXTRA:
            fn, unit, desc, _ = micro.WORKLOADS[w]
            t = TARGETS.get(w)
            print("%-22s %-12s %s%s" % (w, unit, desc,
                                         "  (target >= %.1fx uvloop)" % t if t else "  (extra)"))
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
