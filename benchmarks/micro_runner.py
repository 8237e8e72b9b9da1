"""Parent side of the child processes: launching a child (``run.py --child``)
and reading its results, probing a loop, one measurement run of a loop, and
the rotated rounds of the suites measured by the child: micro and io (same
child, same settings: --rounds, --sample-time, ...).
"""

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time

from constants import HERE, MARK, REPO
from report import _fmt_rate
from summary import short_of_clean

RUN_PY = os.path.join(HERE, "run.py")    # the entry point, also run as the child


def _child_cmd(args, loop, workloads=None, probe=False):
    cmd = [sys.executable, RUN_PY, "--child", loop]
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


def run_micro(args, avail, workloads, suite="micro"):
    """The rounds of a child-measured suite (micro or io).  Returns (samples,
    errors, extra_rounds)."""
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
            print("%s extra round %d: too few undisturbed samples for %s"
                  % (suite, extra, ",".join(wl)), file=sys.stderr)
        rnd += 1
        shift = (rnd - 1) % max(1, len(avail))
        order = avail[shift:] + avail[:shift]
        for l in order:
            k += 1
            if rnd <= args.rounds:
                head = "%s round %d/%d [%d/%d] %-8s" % (suite, rnd, args.rounds, k, total, l)
            else:
                head = "%s extra round %d [%d/%d] %-8s" % (suite, rnd - args.rounds, k, total, l)
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
                x["suite"] = suite
            samples += s
            errors += e
            tail = " %.1f s" % (time.monotonic() - t0)
            if e:
                tail += "  (%d error(s): %s)" % (len(e), e[0]["error"].splitlines()[0][:120])
            # on a terminal, rewrite the line; otherwise just finish it
            sys.stderr.write(("\r\033[K%s ...%s\n" % (head, tail)) if tty else tail + "\n")
            sys.stderr.flush()
    return samples, errors, extra
