"""Network benchmark suite for benchmarks/run.py (``--suite net``).

Echo servers in four styles (sock_* methods, streams, Protocol,
BufferedProtocol) at 1 KiB, 10 KiB and 100 KiB, driven by the C ping-pong load
generator ``loadgen.c``, a minimal httptools HTTP/1.1 server driven by
``wrk``, and TLS workloads (the Protocol echo behind ``ssl=``: echo at 1 KiB
and 100 KiB, and handshakes/s) driven by ``loadgen_tls.c`` (see tls.py).
The servers are in ``net_servers.py``; ``echo_epoll.c`` is the C ceiling
(raw epoll; also answers HTTP with ``--http``; none for TLS).

One cell = one server process for one (round, workload, server):

1. start the server pinned to the server CPU (taskset), wait for ``READY``;
2. prime it with a short throw-away client run (a fresh asyncio server is much
   slower until its first connections have come and gone: glibc's mmap
   threshold only rises after a large buffer is freed);
3. run the load generator pinned to the client CPU for ``--net-time`` seconds
   after a short warm-up; the server's CPU time (utime+stime, /proc/PID/stat)
   and the busy time of both CPUs (/proc/stat) are read at the start and end
   of the measured window, so the report gives round trips per server
   CPU-second, and tells how much CPU other processes used meanwhile; a
   disturbed measurement is repeated once on the same server;
4. stop the server (SIGTERM, then SIGKILL).

The C ceiling runs the same way, once per message size (and once for HTTP)
per round; it is not a loop and has no target.

Standard library only.
"""

import hashlib
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time

import tls

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_DIR = os.path.join(HERE, ".build")
SERVERS = os.path.join(HERE, "net_servers.py")

CEILING = "c_epoll"               # the C reference server, reported as a ceiling
CEILING_LABEL = "C epoll (ceiling)"

SIZES = [("1k", 1024), ("10k", 10240), ("100k", 102400)]
STYLES = [
    ("sock", "sock_*", "sock_accept + task per connection: sock_recv(65536) / sock_sendall"),
    ("streams", "streams", "start_server; reader.read(65536), writer.write, await drain()"),
    ("protocol", "Protocol", "Protocol: data_received -> transport.write"),
    ("buffered", "BufferedProtocol",
     "BufferedProtocol: get_buffer (64 KiB) / buffer_updated -> transport.write(view)"),
]

# name -> description of the workload
WORKLOADS = {}
ORDER = []
for _style, _label, _desc in STYLES:
    for _sk, _size in SIZES:
        _name = "%s_%s" % (_style, _sk)
        WORKLOADS[_name] = {
            "kind": "echo", "style": _style, "size": _size,
            "unit": "round trips/s",
            "label": "echo %s %s" % (_label, _sk.replace("k", " KiB")),
            "description": "echo ping-pong, %d-byte messages; server: %s" % (_size, _desc),
            "ceiling": "echo_%s" % _sk,
        }
        ORDER.append(_name)
WORKLOADS["http"] = {
    "kind": "http", "style": "http", "size": None, "unit": "requests/s",
    "label": "HTTP httptools",
    "description": ("HTTP/1.1 keep-alive GET, 'Hello, World!' with Content-Length; server: "
                    "Protocol + httptools.HttpRequestParser; load: wrk -t1"),
    "ceiling": "http",
}
ORDER.append("http")
# the TLS workloads (benchmarks/tls.py): tls_echo_1k, tls_echo_100k, tls_handshake
WORKLOADS.update(tls.WORKLOADS)
ORDER += tls.ORDER

# uvcore / uvloop, ratio of medians that uvcore must reach
TARGETS = {
    "sock_1k": 2.0,
    "streams_1k": 1.05,
    "protocol_1k": 1.1,
    "protocol_100k": 1.0,
    "buffered_1k": 1.1,
    "http": 1.05,
}
TARGETS.update(tls.TARGETS)
# ... and uvcore / asyncio must be above this
TARGETS_VS_ASYNCIO = {
    "protocol_100k": 1.0,
}
LABELS = {w: d["label"] for w, d in WORKLOADS.items()}

# A measurement is "disturbed" when other processes used more than this
# fraction of one CPU on the two CPUs the server and the load generator run
# on (busy time from /proc/stat minus the server's and the client's CPU time),
# plus slack for clock-tick quantization.  It is then measured again at once
# on the same server (MAX_RETRIES times) and the least disturbed attempt kept.
DISTURBED = 0.10
MAX_RETRIES = 1

SERVER_START_TIMEOUT = 30.0


class CellError(Exception):
    """A cell failed; str() is the one-line reason, .detail more text."""

    def __init__(self, msg, detail=None):
        super().__init__(msg)
        self.detail = detail


# ---------------------------------------------------------------------------
# tools: the C programs, wrk
# ---------------------------------------------------------------------------

def _cc():
    for c in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


def _cc_info():
    """(path, version line) of the C compiler; raises CellError if there is none."""
    cc = _cc()
    if not cc:
        raise CellError("no C compiler (cc/gcc/clang) found: the network suite needs one "
                        "to build loadgen.c and echo_epoll.c")
    try:
        ver = subprocess.run([cc, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        ver = "?"
    return cc, ver


CFLAGS = ["-O2", "-std=gnu11", "-Wall"]


def compile_c(name, libs=(), cc_info=None):
    """Compile benchmarks/NAME.c into benchmarks/.build/NAME-HASH (cached by a
    hash of source, compiler, flags and libraries) and return its path; raises
    CellError (compiler output in .detail)."""
    cc, ver = cc_info or _cc_info()
    flags = CFLAGS
    os.makedirs(BUILD_DIR, exist_ok=True)
    src = os.path.join(HERE, name + ".c")
    with open(src, "rb") as f:
        h = hashlib.sha256(f.read())
    h.update(("\0%s\0%s\0%s" % (cc, ver, " ".join(flags))).encode())
    if libs:
        h.update(("\0" + " ".join(libs)).encode())
    exe = os.path.join(BUILD_DIR, "%s-%s" % (name, h.hexdigest()[:16]))
    if not os.access(exe, os.X_OK):
        tmp = "%s.tmp%d" % (exe, os.getpid())
        r = subprocess.run([cc] + flags + ["-o", tmp, src] + list(libs), capture_output=True,
                           text=True)
        if r.returncode != 0:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise CellError("compiling %s failed" % os.path.basename(src),
                            (r.stderr or r.stdout)[-2000:])
        os.replace(tmp, exe)
        # drop older builds of the same program
        for old in os.listdir(BUILD_DIR):
            if old.startswith(name + "-") and os.path.join(BUILD_DIR, old) != exe:
                try:
                    os.unlink(os.path.join(BUILD_DIR, old))
                except OSError:
                    pass
    return exe


def build_tools():
    """Compile loadgen.c and echo_epoll.c into benchmarks/.build/ (see
    compile_c).  Returns a dict; raises CellError.  The TLS client
    (loadgen_tls.c) is built only when a TLS workload runs (prepare_tls)."""
    cc, ver = _cc_info()
    out = {"cc": cc, "cc_version": ver, "cflags": " ".join(CFLAGS)}
    for name in ("loadgen", "echo_epoll"):
        out[name] = compile_c(name, (), (cc, ver))
    return out


def prepare_tls(ctx, meta):
    """Build the TLS client and make the certificate (tls.prepare); returns
    None or why the TLS workloads cannot run."""
    cc_info = (ctx["tools"]["cc"], ctx["tools"]["cc_version"])
    return tls.prepare(ctx, meta, lambda name, libs: compile_c(name, libs, cc_info))


def wrk_info():
    exe = shutil.which("wrk")
    if not exe:
        return None, None
    try:
        r = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
        first = (r.stdout or r.stderr).splitlines()[0].strip()
        first = first.split(" Copyright")[0]       # "wrk 4.1.0 [epoll]"
    except (OSError, subprocess.SubprocessError, IndexError):
        first = "wrk ?"
    return exe, first


# ---------------------------------------------------------------------------
# /proc readers (the runner side; loadgen reads the same itself)
# ---------------------------------------------------------------------------

CLK_TCK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def proc_cpu(pid):
    """utime + stime of a process, seconds (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpus_busy(cpus):
    """(busy, steal) seconds of these CPUs from /proc/stat."""
    want = {"cpu%d" % c for c in cpus}
    busy = steal = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in want:
                    v = [int(x) for x in parts[1:]]
                    busy += v[0] + v[1] + v[2] + v[5] + v[6]
                    steal += v[7] if len(v) > 7 else 0
    except OSError:
        return None, None
    return busy / CLK_TCK, steal / CLK_TCK


# ---------------------------------------------------------------------------
# one server process
# ---------------------------------------------------------------------------

class Server:
    def __init__(self, cmd, env):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL, env=env, cwd=HERE)
        self.pid = self.proc.pid
        self.port = None

    def wait_ready(self, timeout):
        """Wait for "READY <port>"; raise CellError on "ERROR ...", exit or timeout."""
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CellError("server printed no READY within %.0f s" % timeout,
                                    self.stderr_tail())
                if not sel.select(min(left, 1.0)):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = self.proc.wait()
                    tail = self.stderr_tail()
                    last = tail.strip().splitlines()[-1] if tail.strip() else ""
                    raise CellError("server exited (status %s) before READY%s"
                                    % (rc, ": " + last[:200] if last else ""), tail)
                buf += chunk
        finally:
            sel.close()
        line = buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if line.startswith("ERROR"):
            self.stop()
            raise CellError("server failed to start: " + line[5:].strip(), self.stderr_tail())
        if not line.startswith("READY"):
            self.stop()
            raise CellError("unexpected server output: %r" % line[:200], self.stderr_tail())
        parts = line.split()
        self.port = int(parts[1]) if len(parts) > 1 else 0

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self, n=3000):
        try:
            self.err.seek(0)
            return self.err.read().decode("utf-8", "replace")[-n:]
        except (OSError, ValueError):
            return ""

    def stop(self):
        """Stop the server; returns its stderr tail."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        tail = self.stderr_tail()
        try:
            self.proc.stdout.close()
            self.err.close()
        except OSError:
            pass
        return tail


# ---------------------------------------------------------------------------
# load generators
# ---------------------------------------------------------------------------

def _run_capture(cmd, timeout, env):
    """Run cmd; return (stdout, stderr, returncode, rusage or None)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, cwd=HERE)
        deadline = time.monotonic() + timeout
        ru = None
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = (os.waitstatus_to_exitcode(status)
                                   if hasattr(os, "waitstatus_to_exitcode") else status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                ru = None
                proc.returncode = "timeout"
                break
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return (out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                proc.returncode, ru)


def run_loadgen(ctx, server, size, duration, warmup, http=False, measure=True, wl=None):
    gen = (tls.client_cmd(ctx, wl) if wl is not None and tls.is_tls(wl)
           else [ctx["tools"]["loadgen"]])
    cmd = list(ctx["client_pin"]) + gen + ["-c", str(ctx["connections"]),
                                           "-d", "%.3f" % duration, "-w", "%.3f" % warmup]
    if ctx["unix"] and not http:
        cmd += ["--unix", ctx["unix"]]
    else:
        cmd += ["--host", "127.0.0.1", "--port", str(server.port)]
    if http:
        cmd.append("--http")
    else:
        cmd += ["-s", str(size)]
    if measure:
        cmd += ["--server-pid", str(server.pid), "--cpus", ",".join(map(str, ctx["cpus"]))]
    stdout, stderr, rc, _ru = _run_capture(cmd, duration + warmup + 30, ctx["env"])
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise CellError("loadgen gave no result (exit %s)" % rc, (stderr or stdout)[-1500:])
    r = json.loads(lines[-1])
    if r.get("errors"):
        raise CellError("loadgen: %d error(s): %s" % (r["errors"], r.get("error")),
                        json.dumps(r))
    if not r.get("round_trips"):
        raise CellError("loadgen: no round trip completed", json.dumps(r))
    return {
        "ops": r["round_trips"],
        "wall": r["seconds"],
        "server_cpu": r.get("server_cpu"),
        "client_cpu": r.get("client_cpu"),
        "busy": r.get("cpus_busy"),
        "steal": r.get("cpus_steal"),
        "warmup_ops": r.get("warmup_round_trips"),
        "per_conn_min": r.get("per_conn_min"),
        "per_conn_max": r.get("per_conn_max"),
        "tls": ({k: r.get(k) for k in ("tls_version", "tls_cipher", "tls_group", "openssl",
                                       "handshakes", "handshakes_total", "legacy_ec")}
                if r.get("mode", "").startswith("tls") else None),
    }


_WRK_TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def run_wrk(ctx, server, duration):
    secs = max(1, int(round(duration)))     # wrk takes whole seconds only
    cmd = list(ctx["client_pin"]) + [ctx["wrk"], "-t1", "-c%d" % ctx["connections"],
                                     "-d%ds" % secs, "http://127.0.0.1:%d/" % server.port]
    s0 = proc_cpu(server.pid)
    b0 = cpus_busy(ctx["cpus"])
    t0 = time.perf_counter()
    stdout, stderr, rc, ru = _run_capture(cmd, secs + 30, ctx["env"])
    t1 = time.perf_counter()
    s1 = proc_cpu(server.pid)
    b1 = cpus_busy(ctx["cpus"])
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b", stdout)
    if rc != 0 or not m:
        raise CellError("wrk failed (exit %s)" % rc, (stderr + stdout)[-1500:])
    reqs = int(m.group(1))
    wall = float(m.group(2)) * _WRK_TIME[m.group(3)]
    errs = 0
    m2 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", stdout)
    if m2:
        errs += sum(int(x) for x in m2.groups())
    m3 = re.search(r"Non-2xx or 3xx responses: (\d+)", stdout)
    if m3:
        errs += int(m3.group(1))
    if errs:
        raise CellError("wrk: %d error(s): %s" % (errs, " / ".join(
            x.group(0) for x in (m2, m3) if x)), stdout[-1500:])
    if not reqs:
        raise CellError("wrk: no request completed", stdout[-1500:])
    return {
        "ops": reqs,
        "wall": wall,
        "window": t1 - t0,
        "server_cpu": (s1 - s0) if (s0 is not None and s1 is not None) else None,
        "client_cpu": (ru.ru_utime + ru.ru_stime) if ru else None,
        "busy": (b1[0] - b0[0]) if (b0[0] is not None and b1[0] is not None) else None,
        "steal": (b1[1] - b0[1]) if (b0[1] is not None and b1[1] is not None) else None,
    }


def _other(m, ncpus):
    """(other processes' CPU use as a fraction of one CPU, steal fraction,
    disturbed?) over the measured window."""
    window = m.get("window") or m["wall"]
    if m.get("busy") is None or m.get("server_cpu") is None or m.get("client_cpu") is None \
            or window <= 0:
        return None, None, False
    other = max(0.0, m["busy"] - m["server_cpu"] - m["client_cpu"]) / window
    steal = max(0.0, m["steal"] or 0.0) / window
    # /proc/stat counts whole clock ticks per CPU; utime+stime too
    slack = (1.5 * ncpus + 2) / CLK_TCK / window
    return round(other, 3), round(steal, 3), other > DISTURBED + slack


# ---------------------------------------------------------------------------
# one cell: start, prime, measure, stop
# ---------------------------------------------------------------------------

def _server_cmd(ctx, server, wl):
    http = wl["kind"] == "http"
    if server == CEILING:
        cmd = [ctx["tools"]["echo_epoll"]]
        if http:
            cmd.append("--http")
    else:
        cmd = [sys.executable, wl.get("script", SERVERS), "--loop", server, "--style",
               wl["style"]]
        if tls.is_tls(wl):
            cmd += tls.server_args(ctx)
    if ctx["unix"] and not http:
        cmd += ["--unix", ctx["unix"]]
    else:
        cmd += ["--host", "127.0.0.1", "--port", "0"]
    return list(ctx["server_pin"]) + cmd


def measure_cell(ctx, server, wname, may_retry=lambda: True, wl=None):
    """Returns a sample dict; raises CellError.  A disturbed measurement is
    repeated (MAX_RETRIES times) if may_retry() says there is time for it.
    wl: the workload's description (default WORKLOADS[wname]; the stacks
    suite passes its own, with "script" naming the server program)."""
    wl = wl or WORKLOADS[wname]
    http = wl["kind"] == "http"
    srv = Server(_server_cmd(ctx, server, wl), ctx["env"])
    rec = {}
    try:
        srv.wait_ready(SERVER_START_TIMEOUT)
        # prime: a short throw-away run with the same connections and size
        try:
            p = run_loadgen(ctx, srv, wl["size"], ctx["prime_time"], 0.0, http=http,
                            measure=False, wl=wl)
        except CellError as e:
            raise CellError("priming run: %s" % e, e.detail)
        rec["prime_ops"] = p["ops"]
        attempts, best = [], None
        for _ in range(MAX_RETRIES + 1):
            if http:
                m = run_wrk(ctx, srv, ctx["net_time"])
            else:
                m = run_loadgen(ctx, srv, wl["size"], ctx["net_time"], ctx["warmup_time"],
                                wl=wl)
            other, steal, disturbed = _other(m, len(ctx["cpus"]))
            m.update(other_cpu=other, steal_frac=steal, disturbed=disturbed)
            attempts.append(other)
            if best is None or (other or 0) < (best["other_cpu"] or 0):
                best = m
            if not disturbed or not srv.alive():
                break
            if len(attempts) <= MAX_RETRIES and not may_retry():
                rec["retry_skipped"] = "time budget"
                break
        if not srv.alive():
            raise CellError("server died during the run (status %s)" % srv.proc.poll(),
                            srv.stderr_tail())
    except CellError as e:
        if srv.port is not None and not srv.alive() and not str(e).startswith("server died"):
            # name the cause: the load generator only saw resets / EOF
            raise CellError("server died (status %s); %s" % (srv.proc.poll(), e),
                            (srv.stderr_tail() + "\n" + (e.detail or ""))[-3000:])
        raise
    finally:
        tail = srv.stop()
    m = best
    cpu = m.get("server_cpu")
    rec.update(
        ok=True, ops=m["ops"], wall=round(m["wall"], 6),
        rate=round(m["ops"] / m["wall"], 1),
        cpu=round(cpu, 4) if cpu is not None else None,
        cpu_rate=round(m["ops"] / cpu, 1) if cpu else None,
        client_cpu=round(m["client_cpu"], 4) if m.get("client_cpu") is not None else None,
        other_cpu=m["other_cpu"], steal=m["steal_frac"], disturbed=m["disturbed"],
        attempts_other_cpu=attempts,
        generator="wrk" if http else ("loadgen_tls" if tls.is_tls(wl) else "loadgen"),
    )
    for k in ("warmup_ops", "per_conn_min", "per_conn_max", "tls"):
        if m.get(k) is not None:
            rec[k] = m[k]
    if tail.strip():
        rec["server_stderr"] = tail.strip()[-1000:]
    return rec


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------

def _fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e3:
        return "%.*fk" % (2 if x < 1e4 else (1 if x < 1e5 else 0), x / 1e3)
    return "%.0f" % x


def make_context(args, env, server_pin, client_pin, cpus):
    """Build the tools; returns (ctx, meta).  ctx is None if the suite cannot run."""
    meta = {"connections": args.connections, "net_time_s": args.net_time,
            "warmup_time_s": args.net_warmup, "prime_time_s": args.prime_time,
            "transport": args.net_transport, "cpus_watched": cpus,
            "disturbed_threshold": DISTURBED}
    try:
        tools = build_tools()
    except CellError as e:
        meta["error"] = str(e) + ((": " + e.detail) if e.detail else "")
        return None, meta
    meta["cc"] = tools["cc_version"]
    meta["cflags"] = tools["cflags"]
    wrk, wver = wrk_info()
    meta["wrk"] = wver
    try:
        from importlib import metadata
        meta["httptools"] = metadata.version("httptools")
    except Exception:               # noqa: BLE001
        meta["httptools"] = None
    unix = None
    if args.net_transport == "unix":
        unix = os.path.join(tempfile.mkdtemp(prefix="uvcore-bench-"), "echo.sock")
    ctx = {"tools": tools, "wrk": wrk, "connections": args.connections,
           "net_time": args.net_time, "warmup_time": args.net_warmup,
           "prime_time": args.prime_time, "unix": unix, "env": env,
           "server_pin": server_pin, "client_pin": client_pin, "cpus": cpus}
    return ctx, meta


def cleanup(ctx):
    tls.cleanup(ctx)
    if ctx and ctx.get("unix"):
        shutil.rmtree(os.path.dirname(ctx["unix"]), ignore_errors=True)


def run_suite(args, ctx, loops, workloads, short_of_clean, log, suite="net", table=None,
              measure=None):
    """Run the rounds.  Returns (samples, errors, extra_rounds, info).

    suite, table, measure: the suite's name, its workload table (default
    WORKLOADS) and its cell function (default measure_cell), so that the
    stacks suite (stacks.py) runs on the same rounds, rotation and budget.

    Each round runs every workload; for each workload every loop in rotated
    order (the C ceiling once per message size, in the rotation of the first
    workload of that size).  short_of_clean(samples, loops, workloads, want)
    picks the workloads for extra rounds.

    Time budget: re-measuring disturbed cells and extra rounds only happen
    while the projected suite time (elapsed + cells left x mean cell time)
    stays within args.net_budget seconds (default: 1.2 x the estimated time of
    the planned rounds), so a busy machine cannot stretch the run much."""
    table = table or WORKLOADS
    measure = measure or measure_cell
    samples, errors = [], []
    info = {"retries": 0, "retries_skipped_for_budget": 0, "extra_rounds_skipped_for_budget": 0}
    if not workloads:
        return samples, errors, 0, info
    ceil_keys = {}                          # ceiling key -> first workload using it
    if args.ceiling:
        for w in workloads:
            if table[w]["ceiling"]:                 # none for TLS
                ceil_keys.setdefault(table[w]["ceiling"], w)

    def cells_for(wl_list, with_ceiling):
        cells = []
        for wi, w in enumerate(wl_list):
            servers = list(loops)
            if with_ceiling and table[w]["ceiling"] and \
                    ceil_keys.get(table[w]["ceiling"]) == w:
                servers.append(CEILING)
            shift = (rnd - 1 + wi) % max(1, len(servers))
            cells += [(w, s) for s in servers[shift:] + servers[:shift]]
        return cells

    tty = sys.stderr.isatty()
    rnd = extra = 0
    planned = len(cells_for(workloads, True)) * args.net_rounds
    est_cell = ctx["net_time"] + ctx["warmup_time"] + ctx["prime_time"] + 0.5
    budget = args.net_budget
    if budget is None:
        budget = round(1.2 * planned * est_cell + 10)
    info["budget_s"] = budget
    t_suite = time.monotonic()
    done = [0, 0.0]                     # cells done, seconds spent in them

    def mean_cell():
        return done[1] / done[0] if done[0] else est_cell

    def may_retry():
        left = max(0, planned - done[0] - 1)
        ok = (time.monotonic() - t_suite + left * mean_cell() + max(1.0, ctx["net_time"]) + 0.3
              <= budget)
        info["retries" if ok else "retries_skipped_for_budget"] += 1
        return ok

    while True:
        if rnd < args.net_rounds:
            wl, with_ceiling = workloads, True
        else:
            wl = short_of_clean(samples, loops, workloads, args.net_rounds)
            if not wl or extra >= args.net_extra_rounds or not loops:
                break
            need = len(cells_for(wl, False)) * mean_cell()
            if time.monotonic() - t_suite + need > budget:
                info["extra_rounds_skipped_for_budget"] += 1
                log("%s: no extra round for %s: it would take ~%.0f s, beyond the time "
                    "budget of %.0f s (--net-budget)" % (suite, ",".join(wl), need, budget))
                break
            extra += 1
            with_ceiling = False
            log("%s extra round %d: too few undisturbed samples for %s"
                % (suite, extra, ",".join(wl)))
        rnd += 1
        cells = cells_for(wl, with_ceiling)
        for k, (w, server) in enumerate(cells, 1):
            head = ("%s round %d/%d [%d/%d] %-13s %-8s" % (suite, rnd, args.net_rounds, k,
                                                              len(cells), w, server)
                    if rnd <= args.net_rounds else
                    "%s extra round %d [%d/%d] %-13s %-8s" % (suite, rnd - args.net_rounds, k,
                                                              len(cells), w, server))
            if tty:
                sys.stderr.write(head + " ...")
                sys.stderr.flush()
            t0 = time.monotonic()
            try:
                rec = measure(ctx, server, w, may_retry)
            except CellError as e:
                err = {"suite": suite, "round": rnd, "loop": server, "workload": w,
                       "error": str(e)}
                if e.detail:
                    err["detail"] = e.detail[-1500:]
                errors.append(err)
                tail = " ERROR: %s" % str(e)[:150]
            else:
                rec.update(type="sample", suite=suite, loop=server, round=rnd,
                           unit=table[w]["unit"],
                           workload=(w if server != CEILING else
                                     "ceiling:" + table[w]["ceiling"]))
                samples.append(rec)
                tail = " %s/s (%s per server CPU-s)%s" % (
                    _fmt_rate(rec["rate"]), _fmt_rate(rec.get("cpu_rate")),
                    " disturbed (others %.0f%% of a CPU)" % (100 * rec["other_cpu"])
                    if rec.get("disturbed") else "")
            done[0] += 1
            done[1] += time.monotonic() - t0
            tail += "  %.1f s" % (time.monotonic() - t0)
            sys.stderr.write(("\r\033[K%s ...%s\n" % (head, tail)) if tty
                             else "%s ...%s\n" % (head, tail))
            sys.stderr.flush()
    info["duration_s"] = round(time.monotonic() - t_suite, 1)
    return samples, errors, extra, info


def ceiling_stats(samples, key):
    """median/min/max and CPU-rate median of the ceiling samples for a key."""
    import statistics
    ss = [s for s in samples if s["loop"] == CEILING and s["workload"] == "ceiling:" + key]
    clean = [s for s in ss if not s.get("disturbed")]
    use = clean if len(clean) >= min(3, len(ss)) and clean else ss
    rates = [s["rate"] for s in use]
    cr = [s["cpu_rate"] for s in use if s.get("cpu_rate")]
    if not rates:
        return None
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "cpu_rate_median": statistics.median(cr) if cr else None,
            "n_samples": len(ss), "n_used": len(use),
            "uses_disturbed": len(use) > len(clean)}
