"""Parent side of the runner: picks the loops, suites and workloads, pins the
CPUs, probes the loops, runs the suites, then summarizes, prints the report
and writes latest.json and latest.png."""

import os
import shutil
import sys
import time

from chart import plot
from constants import (ALL_LOOPS, DEFAULT_SUITES, DISTURBED, LABELS, SUITES, TARGETS,
                       TARGETS_VS_ASYNCIO, io_module)
from micro_runner import _child_env, probe_loop, run_micro
from report import render_report
from results import _loadavg, _show_path, build_results, write_json
from summary import short_of_clean, summarize_suites


def _split_workloads(arg, suites):
    """--workloads (names from any suite) -> {suite: [names]} in report order."""
    import micro
    import net
    import stacks
    import overhead
    bio = io_module()
    known = {"micro": micro.ORDER + micro.EXTRA, "io": bio.ORDER + bio.EXTRA, "net": net.ORDER,
             "stacks": stacks.ORDER, "overhead": overhead.ORDER}
    default = {"micro": list(micro.ORDER), "io": list(bio.ORDER), "net": list(net.ORDER),
               "stacks": list(stacks.ORDER), "overhead": list(overhead.ORDER)}
    if not arg:
        return {s: default[s] for s in suites}
    names = [w.strip() for w in arg.split(",") if w.strip()]
    for w in names:
        if not any(w in known[s] for s in SUITES):
            sys.exit("unknown workload %r (known: %s)" % (
                w, ", ".join(w for s in SUITES for w in known[s])))
    return {s: [w for w in known[s] if w in names] for s in suites}


def parent_main(args):
    import net
    TARGETS.update(net.TARGETS)
    TARGETS_VS_ASYNCIO.update(net.TARGETS_VS_ASYNCIO)
    LABELS.update(net.LABELS)
    bio = io_module()
    TARGETS.update(bio.TARGETS)
    LABELS.update(bio.LABELS)
    import stacks
    TARGETS.update(stacks.TARGETS)
    LABELS.update(stacks.LABELS)
    import overhead
    LABELS.update(overhead.LABELS)

    loops = [l.strip() for l in args.loops.split(",") if l.strip()]
    for l in loops:
        if l not in ALL_LOOPS:
            sys.exit("unknown loop %r (known: %s)" % (l, ", ".join(ALL_LOOPS)))
    if args.suite == "all":
        # the opt-in suites (overhead) only when --workloads names one of theirs
        suites = list(SUITES) if args.workloads else list(DEFAULT_SUITES)
    else:
        suites = [args.suite]
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
        if "net" in suites or "stacks" in suites or "overhead" in suites:
            pinning += ", load generator on CPU %d" % client_cpu

    t_start = time.time()
    load_start = _loadavg()
    desc = []
    if "micro" in suites:
        desc.append("micro: %s, %d round(s) of ~%.1f s samples"
                    % (",".join(wsel["micro"]), args.rounds, args.sample_time))
    if "io" in suites:
        desc.append("io: %s, %d round(s) of ~%.1f s samples"
                    % (",".join(wsel["io"]), args.rounds, args.sample_time))
    if "net" in suites:
        desc.append("net: %s, %d round(s) of %.1f s"
                    % (",".join(wsel["net"]), args.net_rounds, args.net_time))
    if "stacks" in suites:
        desc.append("stacks: %s, %d round(s) of %.1f s"
                    % (",".join(wsel["stacks"]), args.net_rounds, args.net_time))
    if "overhead" in suites:
        o = overhead.options(args)
        desc.append("overhead: %s, %d generation(s) x %d/%d block(s) of 4 uvcore variants"
                    % (",".join(wsel["overhead"]), o["generations"], o["blocks_call_soon"],
                       o["blocks_echo"]))
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
    if "io" in suites:
        t0 = time.time()
        s, e, extra = run_micro(args, avail, wsel["io"], suite="io")
        samples += s
        errors += e
        suite_meta["io"] = {
            "duration_s": round(time.time() - t0, 1),
            "rounds": args.rounds, "extra_rounds": extra,
            "sample_time_s": args.sample_time, "warmup_time_s": args.warmup_time,
            "disturbed_threshold": DISTURBED,
            "workloads": wsel["io"],
            "method": ("as micro (same child, settings and rotation); the spawned processes "
                       "(true, cat) run on the child's CPU, their CPU time is recorded as "
                       "children_cpu and not counted as others' CPU use; cpu_rate is per "
                       "CPU-second of the loop's process only"),
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
            tls_wl = [w for w in wl if net.tls.is_tls(net.WORKLOADS[w])]
            why = net.prepare_tls(ctx, meta) if tls_wl else None
            if why:
                for w in tls_wl:
                    errors.append({"suite": "net", "round": 0, "loop": "all", "workload": w,
                                   "error": "TLS workloads not run: " + why})
                    wl.remove(w)
                print("net: TLS workloads not run: %s" % why, file=sys.stderr)
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
                       "then the load generator (loadgen.c ping-pong, wrk for HTTP, "
                       "loadgen_tls.c for TLS) pinned "
                       "to the other CPU for a fixed time; server CPU time from /proc/PID/stat "
                       "over the measured window; a C epoll server as the ceiling; median "
                       "[min-max] over rounds; ratios of medians"),
        })
        suite_meta["net"] = meta
    if "stacks" in suites:
        t0 = time.time()
        s, e, meta = stacks.run(args, _child_env(), server_pin, client_pin, net_cpus, avail,
                                wsel["stacks"], short_of_clean,
                                lambda m: print(m, file=sys.stderr))
        samples += s
        errors += e
        meta.update({
            "duration_s": round(time.time() - t0, 1),
            "rounds": args.net_rounds, "workloads": wsel["stacks"],
            "pinning": ("loop's process (uvicorn server, asyncpg client) on CPU %d, wrk / "
                        "PostgreSQL on CPU %d" % (cpu, client_cpu) if server_pin
                        else net_pinning),
            "method": ("as net (rounds, rotation, fresh process per cell, priming, budget); "
                       "uvicorn_hello: uvicorn serving an ASGI hello world on the loop, "
                       "pinned to one CPU, wrk on the other; asyncpg_query: the asyncpg "
                       "client on the loop pinned to one CPU (pool 16, 64 tasks, SELECT "
                       "$1::int), PostgreSQL on the other; ops per CPU-second of the loop's "
                       "process"),
        })
        suite_meta["stacks"] = meta
    if "overhead" in suites:
        s, e, meta = overhead.run(args, _child_env(), server_pin, client_pin, net_cpus,
                                  wsel["overhead"], lambda m: print(m, file=sys.stderr))
        samples += s
        errors += e
        meta.update({
            "rounds": meta["settings"]["generations"] * meta["settings"]["blocks_call_soon"],
            "extra_rounds": 0,
            "pinning": ("call_soon child / echo server on CPU %d, load generator on CPU %d"
                        % (cpu, client_cpu) if server_pin else net_pinning),
            "method": ("4 uvcore builds/settings side by side (a: metrics in, b: "
                       "UVCORE_METRICS=0, c: a + trace_slow_callbacks(0.1), d: c + watchdog), "
                       "all built from one source snapshot into build/overhead/; per "
                       "generation one fresh pinned process per variant, then blocks in which "
                       "every variant takes one sample in rotated order; ratios of medians and "
                       "same-block (paired) ratios; target a/b >= 0.98"),
        })
        suite_meta["overhead"] = meta

    res = build_results(args, suites, wsel, loops, loop_info, suite_meta, samples, errors,
                        allowed, pinning, load_start, t_start)
    summarize_suites(res, samples, errors, loops, suites, wsel, args)

    report = render_report(res)
    print(report)

    out_dir = args.out_dir
    write_json(res, out_dir)
    ppath = os.path.join(out_dir, "latest.png")
    if plot(res, ppath):
        print("wrote %s" % _show_path(ppath), file=sys.stderr)
    return 1 if (errors and not samples) else 0
