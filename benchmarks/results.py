"""The results (latest.json): machine readings (CPU model, load average), the
results dict with its JSON schema, and the JSON writer."""

import datetime
import json
import os
import platform
import sys
import time

from constants import TARGETS, TARGETS_VS_ASYNCIO, io_module


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


def build_results(args, suites, wsel, loops, loop_info, suite_meta, samples, errors,
                  allowed, pinning, load_start, t_start):
    """The results dict (everything but "summary", see summary.summarize_suites)."""
    import micro
    import net
    load_end = _loadavg()
    all_wl = [w for s in suites for w in wsel[s]]
    wdesc = {}
    for w in wsel.get("micro", []):
        wdesc[w] = {"suite": "micro", "unit": micro.WORKLOADS[w][1],
                    "description": micro.WORKLOADS[w][2],
                    "target_vs_uvloop": TARGETS.get(w)}
    for w in wsel.get("io", []):
        fn, unit, desc, _ = io_module().WORKLOADS[w]
        wdesc[w] = {"suite": "io", "unit": unit, "description": desc,
                    "target_vs_uvloop": TARGETS.get(w)}
    import stacks
    for w in wsel.get("stacks", []):
        d = stacks.WORKLOADS[w]
        wdesc[w] = {"suite": "stacks", "unit": d["unit"], "description": d["description"],
                    "target_vs_uvloop": TARGETS.get(w)}
    if wsel.get("overhead"):
        import overhead
        for w in wsel["overhead"]:
            d = overhead.WORKLOADS[w]
            wdesc[w] = {"suite": "overhead", "unit": d["unit"], "description": d["description"],
                        "message_size": d["size"], "verdict_metric": d["metric"],
                        "target_vs_uvloop": None,
                        "target": "%s >= %s" % (overhead.TARGET_KEY, overhead.TARGET)}
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
        t = res["net"].get("tls") or {}
        if t.get("python_ssl"):
            res["versions"]["openssl_python"] = t["python_ssl"]
        if t.get("loadgen_openssl"):
            res["versions"]["openssl_loadgen"] = t["loadgen_openssl"]
    if "stacks" in suites:
        sm = res["stacks"]
        for k, v in (sm.get("versions") or {}).items():
            if v:
                res["versions"][k] = v
        for k in ("cc", "wrk"):
            if sm.get(k):
                res["versions"].setdefault(k, sm[k])
        if (sm.get("postgres") or {}).get("version"):
            res["versions"]["postgresql"] = sm["postgres"]["version"]
    return res


def write_json(res, out_dir):
    """Write out_dir/latest.json atomically (via a .tmp file and a rename)."""
    os.makedirs(out_dir, exist_ok=True)
    jpath = os.path.join(out_dir, "latest.json")
    tmp = jpath + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, jpath)
    print("\nwrote %s" % _show_path(jpath), file=sys.stderr)
