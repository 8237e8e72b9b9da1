#!/usr/bin/env python3
"""The processes under test of the stacks suite (benchmarks/stacks.py): real
libraries running on one event loop.

    python benchmarks/stack_servers.py --loop uvcore|uvloop|asyncio --style uvicorn
        [--host 127.0.0.1] [--port 0]
    python benchmarks/stack_servers.py --loop L --style asyncpg --port PGPORT
        [--pool 16] [--tasks 64] [--prime 0.3] [--pg-pid PID] [--cpus 0,1]

``--style uvicorn``: runs uvicorn's own command line in this process,

    uvicorn stack_servers:hello_app --loop LOOP --http httptools --no-access-log
            --workers 1 --log-level warning --host H --port P

with LOOP = ``uvcore:new_event_loop`` (uvicorn's custom loop factory import
string), ``uvloop`` or ``asyncio``; ``hello_app`` is a minimal ASGI app
("Hello, World!", Content-Length set).  Once uvicorn listens it prints
``READY <port> <loop class>`` (uvicorn's Server.startup is wrapped for that;
the loop class is checked against the one asked for) and serves until
SIGTERM (uvicorn's own graceful shutdown).

``--style asyncpg``: the *client* is the process under test.  It makes an
event loop of the given kind, an ``asyncpg`` pool of ``--pool`` connections
(min_size = max_size) to the PostgreSQL server on 127.0.0.1:PGPORT, primes it
with ``--prime`` seconds of load, prints ``READY 0 <loop class>`` and then
reads commands on stdin:

* ``run WARMUP DURATION``: ``--tasks`` tasks, each repeatedly
  ``await pool.fetchval("SELECT $1::int", i)`` (the answer is checked); after
  WARMUP seconds the measured window of DURATION seconds starts; prints one
  line ``@@STACKS {json}``: queries completed in the window, its wall time,
  this process's CPU time, PostgreSQL's CPU time (the postmaster ``--pg-pid``
  and its children, from /proc/PID/schedstat) and the busy time of ``--cpus``
  (/proc/stat), so the runner can tell how much other processes used;
* ``quit`` (or end of input): closes the pool and exits.

If it cannot start it prints ``ERROR <exception> (at file:line in function)``
(traceback on stderr) and exits with status 3, like net_servers.py.
"""

import argparse
import asyncio
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = "@@STACKS "

HELLO = b"Hello, World!"
HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]

# what uvicorn's --loop gets for each loop of the benchmark
UVICORN_LOOP = {"uvcore": "uvcore:new_event_loop", "uvloop": "uvloop", "asyncio": "asyncio"}
# the module the running loop's class must come from
LOOP_MODULE = {"uvcore": "uvcore", "uvloop": "uvloop", "asyncio": "asyncio"}

SQL = "SELECT $1::int"


# -- the ASGI app --------------------------------------------------------------------

async def hello_app(scope, receive, send):
    """Minimal ASGI hello world (answers the lifespan protocol too)."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
    elif scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _loop_class(loop):
    return "%s.%s" % (type(loop).__module__, type(loop).__qualname__)


def _check_loop(name, loop):
    """Raise if the running loop is not of the kind asked for."""
    mod = type(loop).__module__
    want = LOOP_MODULE[name]
    if not (mod == want or mod.startswith(want + ".")):
        raise RuntimeError("the running loop is %s, not a %s loop" % (_loop_class(loop), name))


def uvicorn_argv(loop_name, host, port):
    """uvicorn's command line (after the program name) for this benchmark."""
    return ["stack_servers:hello_app", "--app-dir", HERE,
            "--loop", UVICORN_LOOP[loop_name], "--http", "httptools", "--no-access-log",
            "--workers", "1", "--log-level", "warning", "--host", host, "--port", str(port)]


def run_uvicorn(args):
    import uvicorn.server
    from uvicorn.main import main as uvicorn_cli     # the click command of `uvicorn`

    orig_startup = uvicorn.server.Server.startup

    async def startup(self, sockets=None):
        await orig_startup(self, sockets=sockets)
        if not self.started:
            return
        loop = asyncio.get_running_loop()
        try:
            _check_loop(args.loop, loop)
        except RuntimeError as e:
            sys.stdout.write("ERROR %s\n" % e)
            sys.stdout.flush()
            os._exit(3)
        port = self.servers[0].sockets[0].getsockname()[1]
        sys.stdout.write("READY %d %s\n" % (port, _loop_class(loop)))
        sys.stdout.flush()

    uvicorn.server.Server.startup = startup
    # uvicorn's click command, as `uvicorn ...` would run it
    uvicorn_cli.main(args=uvicorn_argv(args.loop, args.host, args.port),
                     prog_name="uvicorn", standalone_mode=False)
    return 0


# -- the asyncpg client ------------------------------------------------------------------

CLK_TCK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def _task_cpu(pid):
    """CPU seconds of a process: /proc/PID/schedstat (ns, exact; includes all of
    its threads only for a single-threaded process, which postgres is), else
    utime+stime of /proc/PID/stat.  None if it is gone."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _children(ppid):
    """PIDs whose parent is ppid (PostgreSQL's backends and helpers)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        if int(fields[1]) == ppid:
            out.append(int(name))
    return out


def _cpu_sum(pids):
    tot = 0.0
    for p in pids:
        c = _task_cpu(p)
        if c is not None:
            tot += c
    return tot


def _cpus_busy(cpus):
    """(busy, steal) seconds of these CPUs from /proc/stat (as net.cpus_busy)."""
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


async def pg_load(pool, ntasks, warmup, duration, marks=None):
    """ntasks tasks querying through the pool; returns a dict with the queries
    completed in the measured window [warmup, warmup + duration] (all of them
    when marks is None: then it just runs for warmup + duration seconds).
    marks(): the readings taken at both ends of the window."""
    loop = asyncio.get_running_loop()
    count = 0
    stop = False
    bad = []
    win = {}

    async def worker(k):
        nonlocal count
        fetchval = pool.fetchval
        i = k
        while not stop:
            v = await fetchval(SQL, i)
            if v != i:
                bad.append((i, v))
                return
            count += 1
            i = (i + ntasks) % 1000003

    def mark(which):
        nonlocal stop
        if which == "end":
            win["t1"] = time.perf_counter()
            win["n1"] = count
            win["cpu1"] = time.process_time()
            if marks:
                win["end"] = marks()
            stop = True
        else:
            if marks:
                win["start"] = marks()
            win["n0"] = count
            win["cpu0"] = time.process_time()
            win["t0"] = time.perf_counter()

    loop.call_later(warmup, mark, "start")
    loop.call_later(warmup + duration, mark, "end")
    tasks = [loop.create_task(worker(k)) for k in range(ntasks)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errs = [r for r in results if isinstance(r, BaseException)]
    if errs:
        raise errs[0]
    if bad:
        raise RuntimeError("%d wrong answer(s), e.g. SELECT %d returned %r"
                           % (len(bad), bad[0][0], bad[0][1]))
    return {"ops": win["n1"] - win["n0"], "wall": win["t1"] - win["t0"],
            "cpu": win["cpu1"] - win["cpu0"], "total_ops": count,
            "start": win.get("start"), "end": win.get("end")}


def run_asyncpg(args):
    import asyncpg
    sys.path.insert(0, HERE)
    from loop_import import _import_loop        # the same loop import as the other suites
    factory, _info = _import_loop(args.loop)
    loop = factory()
    asyncio.set_event_loop(loop)
    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else []

    async def setup():
        _check_loop(args.loop, asyncio.get_running_loop())
        pool = await asyncpg.create_pool(host=args.host, port=args.port, user=args.user,
                                         database=args.database, ssl=False,
                                         min_size=args.pool, max_size=args.pool, timeout=30)
        r = await pg_load(pool, args.tasks, 0.0, args.prime)
        return pool, r["total_ops"]

    pool, prime_ops = loop.run_until_complete(setup())
    pg_pids = []

    def marks():
        return {"pg_cpu": _cpu_sum(pg_pids), "busy": _cpus_busy(cpus) if cpus else None}

    sys.stdout.write("READY 0 %s %d\n" % (_loop_class(loop), prime_ops))
    sys.stdout.flush()
    rc = 0
    try:
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                break
            if cmd[0] != "run" or len(cmd) != 3:
                sys.stdout.write("%s%s\n" % (MARK, json.dumps({"error": "bad command %r"
                                                                          % line.strip()})))
                sys.stdout.flush()
                continue
            if args.pg_pid:
                pg_pids[:] = [args.pg_pid] + _children(args.pg_pid)
            try:
                r = loop.run_until_complete(pg_load(pool, args.tasks, float(cmd[1]),
                                                    float(cmd[2]), marks))
            except Exception as e:          # noqa: BLE001 - reported to the runner
                out = {"error": "%s: %s" % (type(e).__name__, e)}
            else:
                s, e_ = r["start"], r["end"]
                out = {"ops": r["ops"], "wall": r["wall"], "cpu": r["cpu"],
                       "total_ops": r["total_ops"], "pg_processes": len(pg_pids),
                       "pg_cpu": (e_["pg_cpu"] - s["pg_cpu"]) if args.pg_pid else None}
                if cpus and s["busy"][0] is not None and e_["busy"][0] is not None:
                    out["busy"] = e_["busy"][0] - s["busy"][0]
                    out["steal"] = e_["busy"][1] - s["busy"][1]
            sys.stdout.write("%s%s\n" % (MARK, json.dumps(out)))
            sys.stdout.flush()
    finally:
        try:
            loop.run_until_complete(asyncio.wait_for(pool.close(), 10))
        except Exception:                   # noqa: BLE001
            rc = 1
        loop.close()
    return rc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", required=True, choices=("uvcore", "uvloop", "asyncio"))
    p.add_argument("--style", required=True, choices=("uvicorn", "asyncpg"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--user", default="postgres", help="asyncpg: database user")
    p.add_argument("--database", default="postgres", help="asyncpg: database")
    p.add_argument("--pool", type=int, default=16, help="asyncpg: pool connections")
    p.add_argument("--tasks", type=int, default=64, help="asyncpg: concurrent tasks")
    p.add_argument("--prime", type=float, default=0.3, help="asyncpg: seconds of priming load")
    p.add_argument("--pg-pid", type=int, default=None,
                   help="asyncpg: the postmaster's PID (its CPU time and its children's)")
    p.add_argument("--cpus", default=None, help="asyncpg: CPUs whose busy time to read")
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    try:
        if args.style == "uvicorn":
            from loop_import import _import_loop    # uvcore from the same place as elsewhere
            _import_loop(args.loop)
            return run_uvicorn(args)
        return run_asyncpg(args)
    except Exception as e:              # noqa: BLE001 - reported to the runner
        import traceback
        traceback.print_exc()
        tb = traceback.extract_tb(e.__traceback__)
        where = " (at %s:%d in %s)" % (os.path.basename(tb[-1].filename), tb[-1].lineno,
                                      tb[-1].name) if tb else ""
        msg = ("%s: %s" % (type(e).__name__, e)) if str(e) else type(e).__name__
        sys.stdout.write("ERROR %s%s\n" % (msg.replace("\n", " "), where))
        sys.stdout.flush()
        return 3


if __name__ == "__main__":
    sys.exit(main())
