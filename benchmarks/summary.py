"""Statistics of the samples: which samples to use (clean vs disturbed), which
workloads are short of clean samples, and the per-workload summary (medians,
ratios, same-round ratios, verdicts against the targets)."""

import statistics

from constants import BASELINE, SUBJECT, TARGETS, TARGETS_VS_ASYNCIO


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
        # loop "all": the workload could not run at all (say a tool is missing)
        for w in ([e["workload"]] if e["workload"] else workloads):
            for l in (loops if e["loop"] == "all" else [e["loop"]]):
                nerr[(w, l)] = nerr.get((w, l), 0) + 1
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


def summarize_suites(res, samples, errors, loops, suites, wsel, args):
    """res["summary"] for every suite run (micro, io, net, stacks), plus the C ceiling of the
    net suite (res["net"]["ceiling"], and a per-workload "ceiling" entry and ratio)."""
    import net
    summary = {}
    if "micro" in suites:
        summary.update(summarize(samples, errors, loops, wsel["micro"], args.rounds, "micro"))
    if "io" in suites:
        summary.update(summarize(samples, errors, loops, wsel["io"], args.rounds, "io"))
    if "net" in suites:
        ns = summarize(samples, errors, loops, wsel["net"], args.net_rounds, "net")
        ceiling = {}
        for w, ent in ns.items():
            key = net.WORKLOADS[w]["ceiling"]
            ent["ceiling_key"] = key
            if key is None:                 # no C ceiling (TLS)
                ent["ceiling"] = None
                continue
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
    if "stacks" in suites:
        summary.update(summarize(samples, errors, loops, wsel["stacks"], args.net_rounds,
                                 "stacks"))
    if "overhead" in suites:
        import overhead
        summary.update(overhead.summarize(samples, errors, wsel["overhead"]))
    res["summary"] = summary
