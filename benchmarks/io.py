"""I/O workloads of the uvcore benchmark runner (the ``io`` suite): UDP,
subprocess spawning and reading a subprocess's pipe.

Same contract as micro.py: every workload is ``fn(loop, n) -> (ops, wall_s,
cpu_s)``; it does its set-up, times (``time.perf_counter`` and
``time.process_time``) only the part that runs on ``loop``, and returns how
many operations ran (possibly a little above ``n``: whole batches).  The code
is the same for every loop and uses only public asyncio APIs; only ``n`` is
calibrated per loop (by the child, micro_child.py).

``cpu_s`` is this process's CPU time (the loop's side).  The CPU time of the
spawned processes (``true``, ``cat``) is not in it; the child reads it from
``os.times()`` (children's user + system time) and records it separately.

NOTE: this file shadows the standard library's ``io`` by name, so it is never
imported as ``io``: the runner loads it by path as ``bench_io``
(constants.io_module()).  Do not ``import io`` from the benchmarks directory
expecting this module.
"""

import asyncio
import atexit
import os
import shutil
import subprocess
import tempfile
import time

__all__ = ["WORKLOADS", "ORDER", "EXTRA", "TARGETS", "LABELS"]

UDP_CLIENTS = 8              # client endpoints, one datagram in flight each
UDP_SIZE = 64                # bytes per datagram
UDP_RESEND = 0.1             # s without an echo before a client resends
UDP_STALL = 5.0              # s without any echo at all: fail the sample
SPAWN_CHAINS = 4             # processes in flight
PIPE_FILE_MIB = 64           # size of the file `cat` writes to the pipe
MIB = 1 << 20


def _timed(run):
    """Run ``run()`` and return (wall seconds, process CPU seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    run()
    t1 = time.perf_counter()
    c1 = time.process_time()
    return t1 - t0, c1 - c0


# 1. UDP echo -------------------------------------------------------------------

class _EchoServer(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class _Client(asyncio.DatagramProtocol):
    """Keeps one datagram in flight: sends the next one when the echo of the
    current one arrives.  The datagram carries a sequence number, so a late
    or duplicated echo (after a resend) is recognised and ignored."""

    def __init__(self, cid, todo, on_done):
        self.pad = bytes([cid]) * (UDP_SIZE - 8)
        self.todo = todo
        self.on_done = on_done
        self.seq = 0
        self.done = 0
        self.msg = None
        self.transport = None
        self.seen = -1          # `done` at the watchdog's last look
        self.resends = 0
        self.stale = 0

    def connection_made(self, transport):
        self.transport = transport

    def start(self):
        self.msg = self.seq.to_bytes(8, "little") + self.pad
        self.transport.sendto(self.msg)

    def datagram_received(self, data, addr):
        if data != self.msg:
            self.stale += 1     # an echo of an earlier, resent datagram
            return
        self.done += 1
        if self.done >= self.todo:
            self.msg = None
            self.on_done()
            return
        self.seq += 1
        self.msg = self.seq.to_bytes(8, "little") + self.pad
        self.transport.sendto(self.msg)

    def error_received(self, exc):
        pass                    # e.g. ECONNREFUSED from an ICMP error; the watchdog resends


def udp_echo(loop, n):
    """A UDP echo server endpoint on 127.0.0.1 (``datagram_received`` ->
    ``transport.sendto(data, addr)``) and UDP_CLIENTS client endpoints
    (``remote_addr``), each keeping one UDP_SIZE-byte datagram in flight.
    A watchdog timer every UDP_RESEND s resends a client's datagram if no
    echo came back since its last look (a lost datagram cannot hang the
    sample); if no client got any echo for UDP_STALL s the sample fails.
    Counts round trips (datagrams echoed back to a client)."""
    per = max(1, -(-n // UDP_CLIENTS))
    left = UDP_CLIENTS
    finished = loop.create_future()

    def on_done():
        nonlocal left
        left -= 1
        if not left and not finished.done():
            finished.set_result(None)

    transports, protos = [], []

    async def setup():
        st, _ = await loop.create_datagram_endpoint(_EchoServer, local_addr=("127.0.0.1", 0))
        transports.append(st)
        addr = st.get_extra_info("sockname")[:2]
        for i in range(UDP_CLIENTS):
            ct, cp = await loop.create_datagram_endpoint(
                lambda i=i: _Client(i, per, on_done), remote_addr=addr)
            transports.append(ct)
            protos.append(cp)

    watchdog = None
    idle = 0                    # watchdog looks in a row without any echo

    def check():
        nonlocal watchdog, idle
        moved = False
        for cp in protos:
            if cp.msg is not None and cp.done == cp.seen:
                cp.resends += 1
                cp.transport.sendto(cp.msg)
            elif cp.done != cp.seen:
                moved = True
            cp.seen = cp.done
        idle = 0 if moved else idle + 1
        if idle * UDP_RESEND >= UDP_STALL and not finished.done():
            finished.set_exception(RuntimeError(
                "udp_echo: no echo for %g s (%d of %d round trips, %d resends)"
                % (UDP_STALL, sum(c.done for c in protos), per * UDP_CLIENTS,
                   sum(c.resends for c in protos))))
            return
        watchdog = loop.call_later(UDP_RESEND, check)

    async def main():
        nonlocal watchdog
        for cp in protos:
            cp.start()
        watchdog = loop.call_later(UDP_RESEND, check)
        await finished

    try:
        loop.run_until_complete(setup())
        wall, cpu = _timed(lambda: loop.run_until_complete(main()))
    finally:
        if watchdog is not None:
            watchdog.cancel()
        for t in transports:
            t.close()
        loop.run_until_complete(asyncio.sleep(0))   # let the transports close
    ops = sum(cp.done for cp in protos)
    if ops != per * UDP_CLIENTS:
        raise RuntimeError("udp_echo: %d of %d round trips" % (ops, per * UDP_CLIENTS))
    return ops, wall, cpu


# 2. subprocess spawn -------------------------------------------------------------

_TRUE = None


def _true_path():
    global _TRUE
    if _TRUE is None:
        _TRUE = shutil.which("true") or "/bin/true"
    return _TRUE


def spawn(loop, n):
    """SPAWN_CHAINS tasks (``asyncio.gather``), each sequentially doing
    ``p = await asyncio.create_subprocess_exec(TRUE); await p.wait()``.
    TRUE is the absolute path of ``true`` (looked up once, outside the timed
    part, so no loop pays a PATH search).  Counts processes that exited 0."""
    per = max(1, -(-n // SPAWN_CHAINS))
    true = _true_path()
    cse = asyncio.create_subprocess_exec

    async def chain():
        ok = 0
        for _ in range(per):
            p = await cse(true)
            if await p.wait() == 0:
                ok += 1
        return ok

    async def main():
        return await asyncio.gather(*[chain() for _ in range(SPAWN_CHAINS)])

    res = None

    def run():
        nonlocal res
        res = loop.run_until_complete(main())

    wall, cpu = _timed(run)
    ops = sum(res)
    if ops != per * SPAWN_CHAINS:
        raise RuntimeError("spawn: %d of %d processes exited 0" % (ops, per * SPAWN_CHAINS))
    return ops, wall, cpu


# 3. reading a child's stdout -----------------------------------------------------

_PIPE_FILE = None


def _pipe_file():
    """The PIPE_FILE_MIB MiB file `cat` reads, created once per process
    (outside any timed part) and removed at exit."""
    global _PIPE_FILE
    if _PIPE_FILE is None:
        fd, path = tempfile.mkstemp(prefix="uvcore-bench-pipe-", suffix=".bin")
        atexit.register(lambda: os.path.exists(path) and os.unlink(path))
        block = bytes(range(256)) * (MIB // 256)
        with os.fdopen(fd, "wb") as f:
            for _ in range(PIPE_FILE_MIB):
                f.write(block)
        _PIPE_FILE = path
    return _PIPE_FILE


class _Counter(asyncio.SubprocessProtocol):
    """Counts the bytes of pipe_data_received; nothing else."""

    def __init__(self, done):
        self.done = done
        self.nbytes = 0

    def pipe_data_received(self, fd, data):
        self.nbytes += len(data)

    def connection_lost(self, exc):
        # after the process exited and all its pipes are closed
        if not self.done.done():
            self.done.set_result(exc)


def pipe_read(loop, n):
    """``loop.subprocess_exec`` of ``cat FILE`` (a PIPE_FILE_MIB MiB file in
    the page cache), stdout a pipe, a SubprocessProtocol counting bytes in
    ``pipe_data_received``, until the transport is closed (process exited,
    pipe at EOF); one `cat` after another until n MiB are read.  Counts MiB
    read."""
    path = _pipe_file()
    size = PIPE_FILE_MIB * MIB
    runs = max(1, -(-n // PIPE_FILE_MIB))
    cat = shutil.which("cat") or "/bin/cat"
    mine = os.sched_getaffinity(0)
    others = set(range(os.cpu_count() or 1)) - mine

    async def one():
        done = loop.create_future()
        tr, proto = await loop.subprocess_exec(
            lambda: _Counter(done), cat, path,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if others:
            try:
                os.sched_setaffinity(tr.get_pid(), others)
            except OSError:
                pass            # it has already finished
        try:
            await done
            rc = tr.get_returncode()
        finally:
            tr.close()
        if proto.nbytes != size or rc != 0:
            raise RuntimeError("pipe_read: read %d of %d bytes, cat exited %r"
                               % (proto.nbytes, size, rc))
        return proto.nbytes

    async def main():
        total = 0
        for _ in range(runs):
            total += await one()
        return total

    res = None

    def run():
        nonlocal res
        res = loop.run_until_complete(main())

    wall, cpu = _timed(run)
    return res // MIB, wall, cpu


# name -> (function, unit, short description, warm-up n)
WORKLOADS = {
    "udp_echo": (udp_echo, "datagrams/s",
                 "UDP echo, %d clients x 1 datagram of %d B in flight (round trips)"
                 % (UDP_CLIENTS, UDP_SIZE), 2000),
    "spawn": (spawn, "processes/s",
              "create_subprocess_exec('true') + wait, %d in flight" % SPAWN_CHAINS, 16),
    "pipe_read": (pipe_read, "MiB/s",
                  "subprocess_exec('cat' %d MiB file), count pipe_data_received bytes"
                  % PIPE_FILE_MIB, PIPE_FILE_MIB),
}
ORDER = ["udp_echo", "spawn", "pipe_read"]
EXTRA = []

# uvcore / uvloop, ratio of medians that uvcore must reach
TARGETS = {"udp_echo": 1.1, "spawn": 1.0, "pipe_read": 1.5}
LABELS = {"udp_echo": "UDP echo (datagrams/s)", "spawn": "spawn true (processes/s)",
          "pipe_read": "pipe read (MiB/s)"}
