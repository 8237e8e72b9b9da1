"""Command line of the runner: the options, their --quick defaults, --list, and
the dispatch to the child (``--child``) or the parent."""

import argparse
import sys

from constants import ALL_LOOPS, DEFAULT_SUITES, HERE, RESULTS_DIR, SUITES, TARGETS, io_module


def main(argv=None):
    p = argparse.ArgumentParser(
        description="uvcore benchmarks: scheduling micro benchmarks, I/O benchmarks (UDP, "
                    "subprocesses, pipes), network benchmarks and real stacks (uvicorn, "
                    "asyncpg) (interleaved, rotated, pinned).")
    p.add_argument("--suite", choices=tuple(SUITES) + ("all",), default="all",
                   help="which suite(s) to run: %s or all (default: all = %s; overhead only "
                        "when named, or with --workloads naming its workloads)"
                        % (", ".join(SUITES), ", ".join(DEFAULT_SUITES)))
    p.add_argument("--loops", default=",".join(ALL_LOOPS),
                   help="comma-separated, from %s (default: all)" % ",".join(ALL_LOOPS))
    p.add_argument("--workloads", default=None,
                   help="comma-separated workload names, from any suite (default: all with "
                        "a target, plus every net workload); --list shows them")
    p.add_argument("--rounds", type=int, default=None,
                   help="micro and io: rounds (default 5; 1 with --quick)")
    p.add_argument("--extra-rounds", type=int, default=None,
                   help="micro and io: at most this many extra rounds for workloads short of "
                        "undisturbed samples (default 2; 0 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 round, short samples, all selected suites")
    p.add_argument("--sample-time", type=float, default=None,
                   help="micro and io: seconds per measured sample (default 0.5; 0.1 with "
                        "--quick)")
    p.add_argument("--warmup-time", type=float, default=None,
                   help="micro and io: seconds of warm-up per workload (default 0.1; 0.03 with "
                        "--quick)")
    g = p.add_argument_group("net suite (the stacks suite uses the same settings)")
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
    g = p.add_argument_group("overhead suite (see benchmarks/overhead.py)")
    g.add_argument("--ov-generations", type=int, default=None,
                   help="generations of fresh processes, one per variant (default 4; 1 with "
                        "--quick)")
    g.add_argument("--ov-blocks", type=int, default=None,
                   help="blocks per generation; in each block every variant takes one sample "
                        "(default 6; 2 with --quick)")
    g.add_argument("--ov-sample-time", type=float, default=None,
                   help="call_soon: seconds per sample (default 0.25; 0.1 with --quick)")
    g.add_argument("--ov-echo-time", type=float, default=None,
                   help="echo: seconds measured per sample (default 1; 0.5 with --quick)")
    g.add_argument("--ov-echo-warmup", type=float, default=None,
                   help="echo: seconds of load before each measured window (default 0.2)")
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--cpu", type=int, default=None,
                   help="CPU to pin the micro/io child and the net server to (default 0)")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="micro and io: kill a child that prints no result for this many seconds "
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
        from micro_child import child_main   # the child imports no parent-side module
        return child_main(args)
    sys.path.insert(0, HERE)
    if args.list:
        import micro
        import net
        from report import _tfmt
        print("micro suite:")
        for w in micro.ORDER + micro.EXTRA:
            fn, unit, desc, _ = micro.WORKLOADS[w]
            t = TARGETS.get(w)
            print("  %-22s %-14s %s%s" % (w, unit, desc,
                                           "  (target >= %.1fx uvloop)" % t if t else "  (extra)"))
        bio = io_module()
        print("io suite:")
        for w in bio.ORDER + bio.EXTRA:
            fn, unit, desc, _ = bio.WORKLOADS[w]
            t = bio.TARGETS.get(w)
            print("  %-22s %-14s %s%s" % (w, unit, desc,
                                           "  (target >= %sx uvloop)" % _tfmt(t) if t else ""))
        print("net suite:")
        for w in net.ORDER:
            d = net.WORKLOADS[w]
            t = net.TARGETS.get(w)
            ta = net.TARGETS_VS_ASYNCIO.get(w)
            print("  %-22s %-14s %s%s" % (w, d["unit"], d["description"],
                                           ("  (target >= %sx uvloop%s)"
                                            % (_tfmt(t), ", > asyncio" if ta is not None else ""))
                                           if t else ""))
        import stacks
        print("stacks suite:")
        for w in stacks.ORDER:
            d = stacks.WORKLOADS[w]
            t = stacks.TARGETS.get(w)
            print("  %-22s %-14s %s%s" % (w, d["unit"], d["description"],
                                           "  (target >= %sx uvloop)" % _tfmt(t) if t else ""))
        import overhead
        print("overhead suite (variants a: metrics in, b: UVCORE_METRICS=0, c: a + "
              "tracing, d: c + watchdog):")
        for w in overhead.ORDER:
            d = overhead.WORKLOADS[w]
            print("  %-22s %-14s %s  (target %s >= %s)" % (w, d["unit"], d["description"],
                                                          "a/b", overhead.TARGET))
        return 0
    from parent import parent_main
    return parent_main(args)
