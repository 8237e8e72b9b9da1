"""The stacks suite (``--suite stacks``): real libraries on each loop.

* ``uvicorn_hello``: uvicorn (one worker, ``--http httptools``,
  ``--no-access-log``, ``--loop uvcore:new_event_loop`` / ``uvloop`` /
  ``asyncio``) serving a minimal ASGI hello-world app
  (``stack_servers.py --style uvicorn``), pinned to the server CPU; load by
  ``wrk -t1 -cN`` pinned to the client CPU, exactly like the net suite's
  ``http`` workload (net.measure_cell: fresh server per cell, primed with
  ``loadgen --http``, server CPU from /proc/PID/stat).  Requests/s and
  requests per server CPU-second.
* ``asyncpg_query``: the process under test is the *client*
  (``stack_servers.py --style asyncpg``, pinned to the server CPU): an asyncpg
  pool of 16 connections, 64 tasks each looping ``await pool.fetchval("SELECT
  $1::int", i)``; PostgreSQL (a throwaway cluster made by this module, trust
  auth, 127.0.0.1 on a free port) runs pinned to the client CPU.  Queries/s
  and queries per CPU-second of the client process.  One client process per
  cell: it makes its pool, primes it, then measures on command (so a
  disturbed measurement is repeated at once, as in the net suite).

Rounds, rotation, times, priming, the time budget and the noise rule are the
net suite's (net.run_suite; ``--net-rounds``, ``--net-time``, ...).  If
PostgreSQL cannot be set up, ``asyncpg_query`` is reported as an error and
the rest runs.  No C ceiling here.

PostgreSQL: ``initdb`` and ``postgres`` from /usr/lib/postgresql/*/bin (the
newest), run as the ``postgres`` user via ``runuser -u postgres --`` when the
runner is root (they refuse root), with the data directory in a temporary
directory owned by that user; stopped at the end by the postmaster's PID
(SIGINT = fast shutdown, then SIGQUIT, then SIGKILL).
"""

import copy
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import net

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "stack_servers.py")

PG_POOL = 16                # asyncpg pool connections
PG_TASKS = 64               # concurrent tasks
PG_START_TIMEOUT = 60.0
PG_STOP_TIMEOUT = 15.0
PG_TMP_PREFIX = "uvcore-bench-pg-"

WORKLOADS = {
    "uvicorn_hello": {
        "kind": "http", "style": "uvicorn", "size": None, "unit": "requests/s",
        "script": SCRIPT, "label": "uvicorn hello (httptools)",
        "description": ("uvicorn, 1 worker, --http httptools --no-access-log, --loop "
                        "uvcore:new_event_loop|uvloop|asyncio, minimal ASGI hello world "
                        "(13-byte body, Content-Length); load: wrk -t1 (keep-alive GET)"),
        "ceiling": None,
    },
    "asyncpg_query": {
        "kind": "asyncpg", "style": "asyncpg", "size": None, "unit": "queries/s",
        "label": "asyncpg SELECT $1 (pool 16, 64 tasks)",
        "description": ("asyncpg client on the loop: pool of %d connections, %d tasks each "
                        "looping await pool.fetchval('SELECT $1::int', i) (answer checked), "
                        "against a local PostgreSQL on the other CPU" % (PG_POOL, PG_TASKS)),
        "ceiling": None,
    },
}
ORDER = ["uvicorn_hello", "asyncpg_query"]

# uvcore / uvloop, ratio of medians that uvcore must reach
TARGETS = {
    "uvicorn_hello": 1.0,
    "asyncpg_query": 1.0,
}
LABELS = {w: d["label"] for w, d in WORKLOADS.items()}


def _version(dist):
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:               # noqa: BLE001
        return None


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

def _pg_bin():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: [int(x) if x.isdigit() else 0
                                   for x in p.split("/")[-2].split(".")], reverse=True):
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "postgres")):
            return d
    if shutil.which("initdb") and shutil.which("postgres"):
        return os.path.dirname(shutil.which("postgres"))
    return None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, n=1500):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _remove_stale_dirs():
    """Data directories of bench runs that are gone and whose postgres is not
    running (a postgres still running is left alone)."""
    for d in glob.glob(os.path.join(tempfile.gettempdir(), PG_TMP_PREFIX + "*")):
        try:
            owner = int(os.path.basename(d)[len(PG_TMP_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if owner == os.getpid() or os.path.exists("/proc/%d" % owner):
            continue
        pm = None
        try:
            with open(os.path.join(d, "data", "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            pass
        if pm is None or not _alive(pm):
            shutil.rmtree(d, ignore_errors=True)


class PgError(Exception):
    pass


class Postgres:
    """A throwaway PostgreSQL cluster: start() / stop()."""

    def __init__(self, pin):
        self.pin = list(pin)
        self.tmp = self.proc = self.pid = self.port = None
        self.info = {}

    def _as_user(self):
        """(command prefix, uid, gid, env) to run the server binaries."""
        env = dict(os.environ)
        for k in ("PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
            env.pop(k, None)
        env["LC_ALL"] = "C"
        if os.geteuid() != 0:
            return [], os.geteuid(), os.getegid(), env
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PgError("running as root and there is no 'postgres' user to run "
                          "initdb/postgres as (they refuse root)")
        runuser = shutil.which("runuser")
        if not runuser:
            raise PgError("running as root and runuser (util-linux) is not installed")
        env.update(HOME=self.tmp, USER="postgres", LOGNAME="postgres")
        return [runuser, "-u", "postgres", "--"], pw.pw_uid, pw.pw_gid, env

    def start(self):
        pg_bin = _pg_bin()
        if not pg_bin:
            raise PgError("PostgreSQL server binaries (initdb, postgres) not found "
                          "(apt-get install postgresql)")
        _remove_stale_dirs()
        self.tmp = tempfile.mkdtemp(prefix="%s%d-" % (PG_TMP_PREFIX, os.getpid()))
        prefix, uid, gid, env = self._as_user()
        os.chown(self.tmp, uid, gid)
        os.chmod(self.tmp, 0o700)
        data = os.path.join(self.tmp, "data")
        sock = os.path.join(self.tmp, "sock")
        os.mkdir(sock, 0o755)
        os.chown(sock, uid, gid)
        log = os.path.join(self.tmp, "postgres.log")
        try:
            ver = subprocess.run([os.path.join(pg_bin, "postgres"), "--version"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            ver = "?"
        self.info = {"version": ver, "bin": pg_bin,
                     "run_as": "postgres (runuser)" if prefix else "the runner's user"}
        r = subprocess.run(prefix + [os.path.join(pg_bin, "initdb"), "-D", data, "-U",
                                     "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                                     "--no-sync"],
                           cwd=self.tmp, env=env, capture_output=True, text=True, timeout=180,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise PgError("initdb failed (exit %s): %s" % (
                r.returncode, (r.stderr or r.stdout).strip().splitlines()[-1:]))
        self.port = _free_port()
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": "'%s'" % sock, "max_connections": "100",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "autovacuum": "off", "jit": "off", "logging_collector": "off",
            "log_min_messages": "warning",
        }
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write("\n# uvcore benchmarks (stacks suite)\n")
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        os.chown(os.path.join(data, "pg_hba.conf"), uid, gid)
        self.info["settings"] = ", ".join("%s=%s" % (k, v.strip("'")) for k, v in settings.items()
                                          if k not in ("unix_socket_directories",))
        with open(log, "ab") as lf:
            os.chown(log, uid, gid)
            self.proc = subprocess.Popen(prefix + self.pin + [os.path.join(pg_bin, "postgres"),
                                                              "-D", data],
                                         cwd=self.tmp, env=env, stdin=subprocess.DEVNULL,
                                         stdout=lf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + PG_START_TIMEOUT
        pidfile = os.path.join(data, "postmaster.pid")
        while True:
            if self.pid is None:
                try:
                    with open(pidfile) as f:
                        lines = f.read().splitlines()
                    # line 8 is the status: "ready" once it accepts connections
                    if len(lines) >= 8:
                        self.pid = int(lines[0])
                except (OSError, ValueError):
                    pass
            if self.pid is not None and self._ready(pidfile):
                break
            if self.proc.poll() is not None:
                raise PgError("postgres exited (status %s): %s"
                              % (self.proc.returncode, _tail(log, 600).strip()))
            if time.monotonic() > deadline:
                raise PgError("postgres not ready within %.0f s: %s"
                              % (PG_START_TIMEOUT, _tail(log, 600).strip()))
            time.sleep(0.1)
        self.info["port"] = self.port
        self.info["pid"] = self.pid
        return self

    def _ready(self, pidfile):
        try:
            with open(pidfile) as f:
                lines = f.read().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self):
        """Fast shutdown by the postmaster's PID; then remove the directory."""
        try:
            if self.pid is not None and _alive(self.pid):
                for sig, wait in ((signal.SIGINT, PG_STOP_TIMEOUT), (signal.SIGQUIT, 5.0),
                                  (signal.SIGKILL, 5.0)):
                    try:
                        os.kill(self.pid, sig)
                    except ProcessLookupError:
                        break
                    deadline = time.monotonic() + wait
                    while _alive(self.pid) and time.monotonic() < deadline:
                        if self.proc is not None:
                            self.proc.poll()        # reap runuser (or postgres) if it ended
                        time.sleep(0.05)
                    if not _alive(self.pid):
                        break
            if self.proc is not None:
                if self.proc.poll() is None and (self.pid is None or not _alive(self.pid)):
                    # runuser exits once postgres has; postgres never got a PID: stop it
                    try:
                        self.proc.wait(5)
                    except subprocess.TimeoutExpired:
                        self.proc.terminate()
                        try:
                            self.proc.wait(5)
                        except subprocess.TimeoutExpired:
                            self.proc.kill()
                            self.proc.wait()
        finally:
            if self.tmp and (self.pid is None or not _alive(self.pid)):
                shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# the asyncpg cell
# ---------------------------------------------------------------------------

class Client(net.Server):
    """The asyncpg client process: like net.Server (READY line, stop), plus
    commands on its stdin."""

    def __init__(self, cmd, env):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.PIPE, env=env, cwd=HERE)
        self.pid = self.proc.pid
        self.port = None
        self.buf = b""

    def command(self, line, timeout):
        """Send one command; return the JSON of its @@STACKS line."""
        import json
        import selectors
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:
            raise net.CellError("client gone (%s)" % e, self.stderr_tail())
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self.buf:
                    l, self.buf = self.buf.split(b"\n", 1)
                    text = l.decode("utf-8", "replace")
                    if text.startswith("@@STACKS "):
                        return json.loads(text[9:])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise net.CellError("client gave no result within %.0f s" % timeout,
                                        self.stderr_tail())
                if not sel.select(min(left, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise net.CellError("client exited (status %s) during the run"
                                        % self.proc.wait(), self.stderr_tail())
                self.buf += chunk

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return super().stop()


def measure_pg_cell(ctx, loop, wname, may_retry):
    pg = ctx["pg"]
    cmd = list(ctx["server_pin"]) + [
        sys.executable, SCRIPT, "--loop", loop, "--style", "asyncpg",
        "--host", "127.0.0.1", "--port", str(pg.port), "--pool", str(PG_POOL),
        "--tasks", str(PG_TASKS), "--prime", "%.3f" % ctx["prime_time"],
        "--pg-pid", str(pg.pid), "--cpus", ",".join(map(str, ctx["cpus"]))]
    cl = Client(cmd, ctx["env"])
    rec = {}
    try:
        cl.wait_ready(net.SERVER_START_TIMEOUT)
        attempts, best = [], None
        for _ in range(net.MAX_RETRIES + 1):
            r = cl.command("run %.3f %.3f" % (ctx["warmup_time"], ctx["net_time"]),
                           ctx["warmup_time"] + ctx["net_time"] + 60)
            if r.get("error"):
                raise net.CellError("asyncpg client: %s" % r["error"], cl.stderr_tail())
            if not r.get("ops"):
                raise net.CellError("asyncpg client: no query completed", str(r))
            m = {"ops": r["ops"], "wall": r["wall"], "server_cpu": r["cpu"],
                 "client_cpu": r.get("pg_cpu"), "busy": r.get("busy"), "steal": r.get("steal"),
                 "pg_processes": r.get("pg_processes")}
            other, steal, disturbed = net._other(m, len(ctx["cpus"]))
            m.update(other_cpu=other, steal_frac=steal, disturbed=disturbed)
            attempts.append(other)
            if best is None or (other or 0) < (best["other_cpu"] or 0):
                best = m
            if not disturbed:
                break
            if len(attempts) <= net.MAX_RETRIES and not may_retry():
                rec["retry_skipped"] = "time budget"
                break
        if not _alive(pg.pid):
            raise net.CellError("postgres died during the run", _tail(
                os.path.join(pg.tmp, "postgres.log")))
    finally:
        tail = cl.stop()
    m = best
    cpu = m["server_cpu"]
    rec.update(
        ok=True, ops=m["ops"], wall=round(m["wall"], 6), rate=round(m["ops"] / m["wall"], 1),
        cpu=round(cpu, 4), cpu_rate=round(m["ops"] / cpu, 1) if cpu else None,
        client_cpu=round(m["client_cpu"], 4) if m.get("client_cpu") is not None else None,
        other_cpu=m["other_cpu"], steal=m["steal_frac"], disturbed=m["disturbed"],
        attempts_other_cpu=attempts, generator="asyncpg client (the loop under test)",
        peer="postgres", pg_processes=m.get("pg_processes"), pool=PG_POOL, tasks=PG_TASKS)
    if tail.strip():
        rec["server_stderr"] = tail.strip()[-1000:]
    return rec


def measure(ctx, loop, wname, may_retry):
    wl = WORKLOADS[wname]
    if wl["kind"] == "asyncpg":
        if ctx.get("pg") is None:
            raise net.CellError("PostgreSQL is not running: %s" % ctx.get("pg_error"))
        return measure_pg_cell(ctx, loop, wname, may_retry)
    return net.measure_cell(ctx, loop, wname, may_retry, wl=wl)


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------

def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _not_installed(dist):
    import importlib.util
    return importlib.util.find_spec(dist) is None


def run(args, env, server_pin, client_pin, cpus, loops, workloads, short_of_clean, log):
    """Run the stacks suite.  Returns (samples, errors, meta)."""
    samples, errors = [], []
    a = copy.copy(args)
    a.net_transport = "tcp"
    ctx, meta = net.make_context(a, env, server_pin, client_pin, cpus)
    meta.pop("transport", None)
    meta.update(pool=PG_POOL, tasks=PG_TASKS, versions={
        "uvicorn": _version("uvicorn"), "httptools": _version("httptools"),
        "h11": _version("h11"), "asyncpg": _version("asyncpg")})
    meta["uvicorn_cmd"] = ("uvicorn stack_servers:hello_app --loop "
                           "uvcore:new_event_loop|uvloop|asyncio --http httptools "
                           "--no-access-log --workers 1 --log-level warning "
                           "--host 127.0.0.1 --port 0")

    def fail(w, why):
        errors.append({"suite": "stacks", "round": 0, "loop": "all", "workload": w,
                       "error": why})
        log("stacks: %s not run: %s" % (w, why))

    if ctx is None:
        for w in workloads:
            fail(w, meta["error"].splitlines()[0])
        return samples, errors, meta
    wl = list(workloads)
    if "uvicorn_hello" in wl:
        why = None
        if not ctx["wrk"]:
            why = "wrk not found (apt-get install wrk)"
        elif _not_installed("uvicorn") or _not_installed("httptools"):
            why = ("uvicorn and httptools must be installed in %s (pip install uvicorn "
                   "httptools)" % sys.executable)
        if why:
            fail("uvicorn_hello", why)
            wl.remove("uvicorn_hello")
    pg = None
    old_term = None
    try:
        if "asyncpg_query" in wl:
            why = None
            if _not_installed("asyncpg"):
                why = "asyncpg is not installed in %s (pip install asyncpg)" % sys.executable
            else:
                pg = Postgres(client_pin)
                try:
                    # a SIGTERM to the runner must still stop the server (finally below)
                    old_term = signal.signal(signal.SIGTERM, _exit_on_sigterm)
                    pg.start()
                    meta["postgres"] = pg.info
                    log("stacks: PostgreSQL running (%s, port %d, pid %d)"
                        % (pg.info["version"], pg.port, pg.pid))
                except (PgError, OSError, subprocess.SubprocessError) as e:
                    why = "PostgreSQL could not be started: %s" % e
                    meta["postgres"] = dict(pg.info, error=str(e))
            if why:
                fail("asyncpg_query", why)
                wl.remove("asyncpg_query")
            else:
                ctx["pg"] = pg
        if wl:
            s, e, extra, info = net.run_suite(args, ctx, loops, wl, short_of_clean, log,
                                              suite="stacks", table=WORKLOADS, measure=measure)
            samples += s
            errors += e
            meta.update(info)
            meta["extra_rounds"] = extra
    finally:
        if pg is not None:
            pg.stop()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        net.cleanup(ctx)
    meta.setdefault("extra_rounds", 0)
    return samples, errors, meta


def _pg_text(pg):
    if not pg:
        return "not started"
    if pg.get("error"):
        return "%s, NOT STARTED: %s" % (pg.get("version", "?"), pg["error"][:200])
    return "%s, run as %s, trust auth, fsync/autovacuum/jit off" % (
        pg.get("version", "?"), pg.get("run_as", "?"))


def report_lines(res, ss):
    """Footer lines of the stacks section of the text report."""
    m = res.get("stacks") or {}
    v = m.get("versions") or {}
    out = []
    if m.get("error"):
        out.append("stacks suite NOT RUN: %s" % m["error"].splitlines()[0])
        return out
    out.append("stacks: %.1f s measured after %.1f s warm-up (wrk: whole seconds, no warm-up), "
               "primed with %.1f s of load first; %s"
               % (m.get("net_time_s", 0), m.get("warmup_time_s", 0), m.get("prime_time_s", 0),
                  m.get("pinning", "")))
    out.append("uvicorn_hello: uvicorn %s (httptools %s), wrk -t1 -c%s (%s); asyncpg_query: "
               "asyncpg %s, pool %s, %s tasks, SELECT $1::int; PostgreSQL: %s; per CPU-second "
               "= of the loop's process (uvicorn server, asyncpg client)"
               % (v.get("uvicorn") or "missing", v.get("httptools") or "missing",
                  m.get("connections"), m.get("wrk") or "wrk missing",
                  v.get("asyncpg") or "missing", m.get("pool"), m.get("tasks"),
                  _pg_text(m.get("postgres"))))
    return out
