"""The text report: number and cell formatting, the per-suite tables, the
grouped errors and the versions/machine footer."""

from constants import BASELINE, DISTURBED, LABELS, SUBJECT


CLIENT_BOUND = 0.95     # net: the load generator's CPU share that the report points out


def _kdec(m):
    """Decimals for a rate shown in k: 2 below 10k, 1 below 100k (TLS handshakes,
    100 KiB echoes), 0 above."""
    return 2 if m < 1e4 else (1 if m < 1e5 else 0)


def _fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e3:
        return "%.*fk" % (_kdec(x), x / 1e3)
    return "%.0f" % x


def _fmt_fine(x):
    """About 3 significant digits (io suite: rates of ~10 to ~100k per second,
    e.g. MiB/s or processes/s, where "2k" would say too little)."""
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e4:
        return "%.1fk" % (x / 1e3)
    if x >= 100:
        return "%.0f" % x
    return "%.1f" % x if x >= 10 else "%.2f" % x


def _fmt_cell(d, fine=False):
    if not d or d["median"] is None:
        return "error" if d and d.get("errors") else "-"
    m = d["median"]
    if fine:
        cell = "%s [%s-%s]" % (_fmt_fine(m), _fmt_fine(d["min"]), _fmt_fine(d["max"]))
    else:
        unit, div = ("M", 1e6) if m >= 1e6 else (("k", 1e3) if m >= 1e3 else ("", 1.0))
        dec = 2 if unit == "M" else (_kdec(m) if unit == "k" else 0)
        cell = "%.*f%s [%.*f-%.*f]" % (dec, m / div, unit, dec, d["min"] / div, dec,
                                       d["max"] / div)
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
    "io": "io: UDP datagrams/s, subprocesses/s, pipe MiB/s (child pinned to one CPU; the "
          "processes it spawns share that CPU)",
    "net": "net: echo round trips/s, HTTP requests/s, TLS handshakes/s (server on one CPU, "
           "load generator on the other)",
    "stacks": "stacks: uvicorn requests/s, asyncpg queries/s (the loop's process on one CPU, "
              "wrk / PostgreSQL on the other)",
    "overhead": "overhead (issue 8): uvcore loop metrics on vs compiled out, slow-callback "
                "tracing on vs off (call_soon callbacks/s; 1 KiB Protocol echo round trips/s)",
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
    fine = suite == "io"
    fmt_rate = _fmt_fine if fine else _fmt_rate

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
            row.append(_fmt_cell(ent["loops"][l], fine) if l in avail else "missing")
        if show_ceiling:
            row.append(_fmt_cell(ceiling.get(ent.get("ceiling_key"))))
        for k in ratio_keys:
            row.append(_fmt_ratio(ent["ratios"].get(k), ent["paired"].get(k)))
        if show_target:
            row += [_target_text(ent), _verdict(ent, avail)]
        rows.append(row)
    out.append(_table(headers, rows))
    sm = res[suite]
    out.append("rates per second%s (M = 1e6, k = 1e3), %d round(s)%s; ratios are of medians, "
               "[min-max] of the same-round ratios." % (
                   " in each workload's unit" if fine else "",
                   sm["rounds"], " + %d extra" % sm["extra_rounds"] if sm["extra_rounds"] else ""))

    # CPU efficiency, medians
    if avail:
        what = {"micro": "ops per CPU-second of the child",
                "io": "ops per CPU-second of the child, without its subprocesses",
                "stacks": "requests (queries) per CPU-second of the loop's process"}.get(
                    suite, "round trips (requests, handshakes) per server CPU-second")
        headers2 = ["workload (%s)" % what] + avail
        if show_ceiling:
            headers2.append("C epoll")
        ckeys = [k for k in ratio_keys if k.split("/")[0] in avail and k.split("/")[1] in avail]
        headers2 += ckeys
        rows2 = []
        for w, ent in summary.items():
            row = [LABELS.get(w, w)] + [fmt_rate(ent["loops"][l]["cpu_rate_median"])
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
        if n.get("tls") and any(s.get("tls") for s in ss):
            t = n["tls"]
            neg = next(s["tls"] for s in ss if s.get("tls"))
            out.append("TLS: loadgen_tls.c (%s), servers: python ssl (%s); %s, %s, %s; %s "
                       "certificate; no C ceiling for TLS"
                       % (t.get("loadgen_openssl", "?"), t.get("python_ssl", "?"),
                          neg.get("tls_version"), neg.get("tls_cipher"), neg.get("tls_group"),
                          t.get("certificate", "?").split(",")[0] + " EC P-256"))
        out += _saturated(ss, "load generator", "client", "server CPU-second")
    if suite == "stacks":
        import stacks
        out += stacks.report_lines(res, ss)
        out += _saturated(ss, "wrk / PostgreSQL", "other side",
                          "CPU-second of the loop's process")
    if suite in ("net", "stacks"):
        warned = [s for s in ss if s.get("server_stderr")]
        if warned:
            out.append("note: %d server(s) wrote to stderr (see server_stderr in the JSON), "
                       "e.g. %s %s: %s" % (len(warned), warned[0]["loop"], warned[0]["workload"],
                                           warned[0]["server_stderr"].splitlines()[-1][:150]))
    return "\n".join(out)


def _saturated(ss, who, side, per):
    """A note on the cells where the load generator (net; wrk or PostgreSQL in
    stacks) used (nearly) all of its CPU."""
    sat = {}
    for x in ss:
        if x.get("client_cpu") is not None and x.get("wall") and \
                not x["workload"].startswith("ceiling:"):
            sat.setdefault((x["workload"], x["loop"]), []).append(x["client_cpu"] / x["wall"])
    busy = ["%s %s %.0f%%" % (LABELS.get(w, w), l, 100 * sorted(v)[len(v) // 2])
            for (w, l), v in sat.items() if sorted(v)[len(v) // 2] >= CLIENT_BOUND]
    if not busy:
        return []
    return ["%s CPU >= %.0f%% (median; throughput may be capped by the %s there, compare "
            "per %s): %s" % (who, 100 * CLIENT_BOUND, side, per, ", ".join(busy))]


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
            if suite in ("net", "overhead") and res.get(suite, {}).get("error"):
                out.append("== %s ==" % SUITE_TITLES[suite])
                out.append("NOT RUN: %s" % res[suite]["error"])
                out.append("")
            continue
        out.append("== %s ==" % SUITE_TITLES[suite])
        if suite == "overhead":
            import overhead
            out.append(overhead.render(res, _table))
        else:
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
