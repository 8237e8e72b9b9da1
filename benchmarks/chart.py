"""The chart (latest.png): per suite, the ratios to the baseline with the
same-round min-max, the targets and, for the net suite, the C ceiling.
matplotlib is optional."""

import sys

from constants import BASELINE, LABELS, SUBJECT
from report import _target_text


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
        if suite in ("net", "stacks") and avail:
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
                           linewidths=1.4, label="%s / %s per %s CPU-s" % (
                               l, BASELINE, "server" if suite == "net" else "loop process"))
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
    if n > 3:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    else:       # few bars (stacks): the legend beside the panel, not over the bars
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)
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
        elif s == "io":
            title = ("io: %d round(s), %.1f s samples; UDP echo datagrams/s, "
                     "processes/s, pipe MiB/s" % (sm["rounds"], sm["sample_time_s"]))
        elif s == "stacks":
            title = ("stacks: %d round(s), %.1f s samples;\nuvicorn requests/s (wrk), asyncpg "
                     "queries/s" % (sm["rounds"], sm.get("net_time_s", 0)))
        elif s == "overhead":
            import overhead
            overhead.plot_panel(ax, res)
            continue
        else:
            n = res["net"]
            title = ("net: %d round(s), %d connections, %.1f s per sample, %s; echo round trips/s, "
                     "HTTP requests/s (wrk), TLS handshakes/s"
                     % (sm["rounds"], n["connections"], n["net_time_s"], n["transport"]))
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
