"""Stress and soak tests, run against both loop implementations.

Each scenario is written once with a size parameter: a short version runs
in the default suite, a long version is marked ``stress`` (deselected by
default; run with ``-m stress``).  RSS figures are printed (see them with
``-s``) and repeated in assertion messages; each RSS run starts on a trimmed
heap (see trim_heap), so memory freed by earlier tests cannot hide growth.

The many-connections tests keep the far ends of their connections in a
child process (tests/_stress_peer.py), so that 10,000 connections need
10,000 descriptors in each process rather than 20,000 in one.
"""

import asyncio
import collections
import ctypes
import gc
import os
import resource
import subprocess
import sys
import threading
import time
import weakref

import pytest

import _helpers
from _stress_peer import payload_for
from _tls_helpers import fd_baseline, get_certs, subject

LONG = [pytest.mark.stress, pytest.mark.timeout(600)]


def sizes(short, long_):
    return pytest.mark.parametrize("n", [
        pytest.param(short, id="short"),
        pytest.param(long_, id="long", marks=LONG),
    ])


# ---------------------------------------------------------------------------
# Helpers

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def fd_count():
    return len(os.listdir("/proc/self/fd"))


class RssMeter:
    """Samples RSS at 0%, 10%, ..., 100% of a run of ``total`` steps."""

    def __init__(self, label, total):
        self.label = label
        self.total = total
        self.samples = []  # (percent, rss)

    def sample(self, done):
        pct = round(done * 100 / self.total)
        self.samples.append((pct, rss_bytes()))

    def check(self, limit):
        by_pct = dict(self.samples)
        base = by_pct[20]
        end = self.samples[-1][1]
        growth = (end - base) / base
        figures = ", ".join(f"{p}%={r // 1024}KiB" for p, r in self.samples)
        msg = (f"{self.label}: RSS growth 20%->end {growth * 100:+.2f}% "
               f"(limit {limit * 100:.0f}%); {figures}")
        print("\n" + msg)
        assert growth < limit, msg
        return msg


def growth_limit(n, short):
    return 0.20 if n == short else 0.05


try:
    _malloc_trim = ctypes.CDLL(None).malloc_trim    # glibc
except (OSError, AttributeError):  # pragma: no cover - other C libraries
    _malloc_trim = None


def trim_heap():
    """Collect garbage and hand free heap memory back to the system, so that
    what earlier tests freed (10,000 connections' worth, say) does not hide
    growth: RSS never shrinks by itself."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


async def phased(total, meter, step):
    """Run ``await step(k)`` in 10 chunks adding up to ``total`` steps,
    sampling RSS before the first (on a trimmed heap) and after each."""
    trim_heap()
    meter.sample(0)
    done = 0
    for i in range(1, 11):
        target = total * i // 10
        await step(target - done)
        done = target
        meter.sample(done)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)


def run(loop, coro, timeout):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return loop.run_until_complete(bounded())


async def close_writer(writer):
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 10)
    except (ConnectionError, OSError):
        pass


# ---------------------------------------------------------------------------
# 1. Many concurrent TCP connections, fds and handles back to baseline
#
# The loop under test holds n connections at once; their far ends live in a
# child process (tests/_stress_peer.py, plain sockets), so each process needs
# about n descriptors rather than one process 2n.


PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "_stress_peer.py")


class Peer:
    """A tests/_stress_peer.py child: commands to its stdin, answers (lines
    split into words) from its stdout, read in an executor thread."""

    def __init__(self, *args):
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, PEER_SCRIPT, *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=_helpers.child_env())

    async def expect(self, word, timeout):
        loop = asyncio.get_running_loop()
        line = await asyncio.wait_for(
            loop.run_in_executor(None, self.proc.stdout.readline), timeout)
        words = line.split()
        if not words or words[0] != word:
            raise AssertionError(
                f"peer {self.args[0]}: expected {word!r}, got {line!r} "
                f"(exit status {self.proc.poll()})")
        return words[1:]

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=30):
        """Reap the child (killed if it has not exited within ``timeout``
        of its stdin being closed) and close the pipes; its exit status."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait(10)
        self.proc.stdout.close()
        return status


def handle_kinds(impl):
    kinds = (asyncio.BaseTransport,)
    if impl.name == "uvcore":
        import uvcore._uvcore
        kinds += (uvcore._uvcore.UVHandle,)   # one per open libuv handle
    return kinds


def live_handles(loop, kinds):
    """Live transports (and, for uvcore, owners of libuv handles) by type,
    plus the selector registrations of a selector-based loop."""
    gc.collect()
    counts = collections.Counter(
        type(o).__qualname__ for o in gc.get_objects() if isinstance(o, kinds))
    selector = getattr(loop, "_selector", None)
    if selector is not None:
        counts["<selector registrations>"] = len(selector.get_map())
    return counts


async def settle_baseline(loop, kinds):
    """(fds, handles) once the loop has made and closed a stream transport
    (libuv keeps a reserve fd from a loop's first stream on), and garbage
    left by earlier tests is collected."""
    gc.collect()
    baseline = await fd_baseline(loop)
    assert fd_count() == baseline
    return baseline, live_handles(loop, kinds)


async def back_to_baseline(loop, kinds, fds, handles, timeout=30):
    await wait_until(lambda: fd_count() <= fds, timeout,
                     f"fd count back to baseline {fds}")
    assert fd_count() == fds
    deadline = time.monotonic() + timeout
    while (now := live_handles(loop, kinds)) != handles:
        if time.monotonic() > deadline:
            raise AssertionError(f"handles {dict(now)} != baseline "
                                 f"{dict(handles)}")
        await asyncio.sleep(0.05)
    return now


class NofileLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (skip if that is less
    than ``need``); restore it afterwards."""

    def __init__(self, need):
        self.need = need

    def __enter__(self):
        self.saved = resource.getrlimit(resource.RLIMIT_NOFILE)
        soft, hard = self.saved
        if hard != resource.RLIM_INFINITY and hard < self.need:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {self.need}")
        if soft != resource.RLIM_INFINITY and soft < self.need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return self

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_NOFILE, self.saved)


class Held(asyncio.Protocol):
    """Server side: echoes; counts live connections and bytes per one."""

    def __init__(self, stats):
        self.stats = stats
        self.received = 0

    def connection_made(self, transport):
        self.transport = transport
        s = self.stats
        s["active"] += 1
        s["accepted"] += 1
        s["max_active"] = max(s["max_active"], s["active"])

    def data_received(self, data):
        self.received += len(data)
        self.transport.write(data)

    def connection_lost(self, exc):
        self.stats["active"] -= 1
        self.stats["received"].append(self.received)


def report(impl, side, n, fds, handles, times):
    steps = ", ".join(f"{k} {v:.2f}s" for k, v in times.items())
    total = sum(times.values())
    print(f"\n{impl.name} as {side}: {n} connections held at once "
          f"(fds {fds[0]} -> {fds[1]} -> {fds[2]}; handles "
          f"{' -> '.join(str(h.total()) for h in handles)}); "
          f"{steps}; total {total:.2f}s")


@sizes(500, 10_000)
def test_many_tcp_connections_fds_return(loop, impl, n):
    """The loop as the server: a child connects n clients, all held at
    once, each echoing its own payload; then all closed."""
    size = 4096
    kinds = handle_kinds(impl)
    stats = {"active": 0, "accepted": 0, "max_active": 0, "received": []}

    async def main():
        baseline, handles0 = await settle_baseline(loop, kinds)
        server = await loop.create_server(lambda: Held(stats), "127.0.0.1",
                                          0, backlog=min(n, 4096))
        port = server.sockets[0].getsockname()[1]
        handles_srv = live_handles(loop, kinds)
        fds_srv = fd_count()
        times = {}
        peer = Peer("clients", "127.0.0.1", port, n, size)
        try:
            t0 = time.monotonic()
            count, _ = await peer.expect("connected", 300)
            assert int(count) == n
            await wait_until(lambda: stats["accepted"] == n, 60,
                             f"{n} connections accepted")
            times["connect"] = time.monotonic() - t0
            # All n are open here: none is closed before "close" is sent.
            assert stats["active"] == n
            peak = fd_count(), live_handles(loop, kinds)
            assert peak[0] >= fds_srv + n
            assert peak[1].total() >= handles_srv.total() + n
            t0 = time.monotonic()
            count, bad, _ = await peer.expect("echoed", 300)
            times["echo"] = time.monotonic() - t0
            assert (int(count), int(bad)) == (n, 0), "echoed bytes differ"
            assert stats["active"] == n
            peer.send("close")
            t0 = time.monotonic()
            await peer.expect("closed", 120)
            await wait_until(lambda: stats["active"] == 0, 120,
                             "every server-side connection lost")
            times["close"] = time.monotonic() - t0
        finally:
            status = await loop.run_in_executor(None, peer.finish)
        assert status == 0
        assert stats["max_active"] == n
        assert stats["received"] == [size] * n
        after = await back_to_baseline(loop, kinds, fds_srv, handles_srv)
        fds_end = fd_count()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)
        await back_to_baseline(loop, kinds, baseline, handles0)
        return (fds_srv, peak[0], fds_end), (handles_srv, peak[1], after), times

    with NofileLimit(n + 1000):
        fds, handles, times = run(loop, main(), 60 if n <= 500 else 550)
    report(impl, "server", n, fds, handles, times)


@sizes(500, 10_000)
def test_many_tcp_client_connections_fds_return(loop, impl, n):
    """The loop as the client: n connections to a server in a child, all
    held at once, each echoing its own payload; then all closed."""
    size = 4096
    kinds = handle_kinds(impl)

    async def main():
        baseline, handles0 = await settle_baseline(loop, kinds)
        times = {}
        peer = Peer("server")
        try:
            port = int((await peer.expect("listening", 30))[0])
            sem = asyncio.Semaphore(500)

            async def connect(i):
                async with sem:
                    return await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), 60)

            t0 = time.monotonic()
            conns = await asyncio.gather(*(connect(i) for i in range(n)))
            times["connect"] = time.monotonic() - t0
            peak = fd_count(), live_handles(loop, kinds)
            assert peak[0] >= baseline + n
            assert peak[1].total() >= handles0.total() + n
            peer.send("stats")
            accepted, active, _, _ = map(int, await peer.expect("stats", 60))
            assert (accepted, active) == (n, n)

            async def echo(i, reader, writer):
                async with sem:
                    data = payload_for(i, size)
                    writer.write(data)
                    got = await asyncio.wait_for(reader.readexactly(size), 60)
                    assert got == data, f"connection {i}: echoed bytes differ"

            t0 = time.monotonic()
            await asyncio.gather(*(echo(i, r, w)
                                   for i, (r, w) in enumerate(conns)))
            times["echo"] = time.monotonic() - t0
            t0 = time.monotonic()
            await asyncio.gather(*(close_writer(w) for _, w in conns))
            del conns
            times["close"] = time.monotonic() - t0
            peer.send("quit")
            stats = list(map(int, await peer.expect("stats", 60)))
        finally:
            status = await loop.run_in_executor(None, peer.finish)
        assert status == 0
        # accepted, (still) active, most at once, bytes echoed
        assert stats[0] == n and stats[2] == n and stats[3] == n * size
        after = await back_to_baseline(loop, kinds, baseline, handles0)
        return (baseline, peak[0], fd_count()), (handles0, peak[1], after), times

    with NofileLimit(n + 1000):
        fds, handles, times = run(loop, main(), 60 if n <= 500 else 550)
    report(impl, "client", n, fds, handles, times)


# ---------------------------------------------------------------------------
# 2. Soak: round trips and open/close cycles with bounded RSS


@pytest.mark.parametrize("n", [
    pytest.param((20_000, 2_000), id="short"),
    pytest.param((1_000_000, 100_000), id="long", marks=LONG),
])
def test_soak_round_trips_and_connect_cycles(loop, impl, n):
    rounds, cycles = n
    short = n[0] == 20_000
    limit = 0.20 if short else 0.05
    nconn = 4

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=128)
        port = server.sockets[0].getsockname()[1]
        try:
            conns = [await asyncio.open_connection("127.0.0.1", port)
                     for _ in range(nconn)]
            counter = [0]

            async def worker(reader, writer, k):
                for _ in range(k):
                    c = counter[0]
                    counter[0] += 1
                    msg = c.to_bytes(8, "big") * 4
                    writer.write(msg)
                    got = await reader.readexactly(len(msg))
                    assert got == msg

            async def rt_step(k):
                share = [k // nconn + (1 if i < k % nconn else 0)
                         for i in range(nconn)]
                await asyncio.wait_for(asyncio.gather(
                    *(worker(r, w, s) for (r, w), s in zip(conns, share))),
                    300)

            m1 = RssMeter(f"{impl.name} round trips x{rounds}", rounds)
            await phased(rounds, m1, rt_step)
            assert counter[0] == rounds
            for _, w in conns:
                await close_writer(w)

            async def cycle_step(k):
                for i in range(k):
                    r, w = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), 10)
                    w.write(b"ping")
                    assert await asyncio.wait_for(r.readexactly(4), 10) \
                        == b"ping"
                    await close_writer(w)

            m2 = RssMeter(f"{impl.name} connect/close x{cycles}", cycles)
            await phased(cycles, m2, cycle_step)
            return m1, m2
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 10)

    m1, m2 = run(loop, main(), 60 if short else 590)
    for m in (m1, m2):
        m.check(limit)


# ---------------------------------------------------------------------------
# 3. Timers, futures and tasks in bulk


@sizes(200_000, 3_000_000)
def test_timers_call_later_cancel_rss_bounded(loop, impl, n):
    limit = growth_limit(n, 200_000)
    fired = []

    async def main():
        async def step(k):
            batch = 5000
            done = 0
            while done < k:
                b = min(batch, k - done)
                handles = [loop.call_later(1000 + (j % 97), fired.append, j)
                           for j in range(b)]
                for h in handles:
                    h.cancel()
                del handles
                done += b
                await asyncio.sleep(0)
            # A short real timer, so due-timer processing runs too.
            await asyncio.sleep(0.001)

        m = RssMeter(f"{impl.name} call_later/cancel x{n}", n)
        await phased(n, m, step)
        return m

    m = run(loop, main(), 60 if n == 200_000 else 590)
    assert fired == []
    m.check(limit)


@sizes(100_000, 2_000_000)
def test_futures_and_tasks_in_bulk(loop, impl, n):
    limit = growth_limit(n, 100_000)

    async def main():
        async def coro(i):
            await asyncio.sleep(0)
            return i

        async def step(k):
            batch = 2000
            done = 0
            while done < k:
                b = min(batch, k - done)
                # Futures resolved from callbacks.
                futs = [loop.create_future() for _ in range(b)]
                for i, f in enumerate(futs):
                    loop.call_soon(f.set_result, i)
                res = await asyncio.gather(*futs)
                assert res == list(range(b))
                # Tasks.
                tasks = [loop.create_task(coro(i)) for i in range(b)]
                res = await asyncio.gather(*tasks)
                assert res == list(range(b))
                # Some cancelled ones as well.
                tasks = [loop.create_task(coro(i)) for i in range(b // 10)]
                for t in tasks:
                    t.cancel()
                res = await asyncio.gather(*tasks, return_exceptions=True)
                assert all(isinstance(x, asyncio.CancelledError) for x in res)
                done += b

        m = RssMeter(f"{impl.name} futures+tasks x{n}", n)
        await phased(n, m, step)
        return m

    m = run(loop, main(), 60 if n == 100_000 else 590)
    m.check(limit)


# ---------------------------------------------------------------------------
# 4. call_soon_threadsafe from 16 threads during TCP echo I/O


@sizes(5_000, 200_000)
def test_call_soon_threadsafe_16_threads_with_io(loop, impl, n):
    nthreads = 16
    seen = [[] for _ in range(nthreads)]
    total = nthreads * n
    count = [0]

    async def main():
        all_done = loop.create_future()

        def cb(tid, i):
            seen[tid].append(i)
            count[0] += 1
            if count[0] == total and not all_done.done():
                all_done.set_result(None)

        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        stop_io = [False]
        io_rounds = [0]

        async def io_loop():
            while not stop_io[0]:
                msg = io_rounds[0].to_bytes(8, "big") * 128
                w.write(msg)
                assert await asyncio.wait_for(r.readexactly(len(msg)), 10) \
                    == msg
                io_rounds[0] += 1

        io_task = loop.create_task(io_loop())
        start = threading.Barrier(nthreads + 1)
        errors = []

        def producer(tid):
            try:
                start.wait(10)
                for i in range(n):
                    loop.call_soon_threadsafe(cb, tid, i)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=producer, args=(t,), daemon=True)
                   for t in range(nthreads)]
        for t in threads:
            t.start()
        try:
            await loop.run_in_executor(None, start.wait, 10)
            await asyncio.wait_for(all_done, 120 if n == 5_000 else 550)
            # Nothing extra arrives afterwards.
            await asyncio.sleep(0.05)
        finally:
            stop_io[0] = True
            for t in threads:
                t.join(10)
            try:
                await asyncio.wait_for(io_task, 10)
            finally:
                await close_writer(w)
                server.close()
                await asyncio.wait_for(server.wait_closed(), 10)
        assert not errors
        assert not any(t.is_alive() for t in threads)
        return io_rounds[0]

    io_rounds = run(loop, main(), 150 if n == 5_000 else 590)
    assert count[0] == total
    for tid in range(nthreads):
        assert len(seen[tid]) == n, f"thread {tid}: {len(seen[tid])} != {n}"
        assert seen[tid] == list(range(n)), f"thread {tid}: order broken"
    assert io_rounds > 0
    print(f"\n{impl.name}: {total} threadsafe callbacks, "
          f"{io_rounds} echo round trips meanwhile")


# ---------------------------------------------------------------------------
# 5. Subprocess spawns and UDP ping-pong


def child_pids():
    pids = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return pids


def zombie_children():
    out = []
    for pid in child_pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state == "Z":
            out.append(pid)
    return out


@sizes(100, 3_000)
def test_subprocess_spawns_no_zombies_fds_back(loop, impl, n):
    echo = "/bin/echo" if os.path.exists("/bin/echo") else "/usr/bin/echo"

    async def spawn(i):
        proc = await asyncio.create_subprocess_exec(
            echo, f"hello {i}", stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert out == f"hello {i}\n".encode()
        assert proc.returncode == 0

    # Children that other tests' session fixtures keep running (a database
    # server, say) are not this test's.
    others = set(child_pids())

    def ours():
        return set(child_pids()) - others

    async def main():
        await spawn(-1)  # warm-up
        gc.collect()
        await asyncio.sleep(0.05)
        baseline = fd_count()
        for i in range(n):
            await spawn(i)
        gc.collect()
        await wait_until(lambda: fd_count() <= baseline, 10,
                         f"fd count back to baseline {baseline}")
        await wait_until(lambda: not ours(), 10, "no child processes left")
        return baseline

    baseline = run(loop, main(), 60 if n == 100 else 590)
    assert fd_count() == baseline
    assert not set(zombie_children()) - others


class PongServer(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class PingClient(asyncio.DatagramProtocol):
    def __init__(self, loop, total, meter):
        self.loop = loop
        self.total = total
        self.meter = meter
        self.seq = 0
        self.done = loop.create_future()
        self.resends = 0
        self.bad = 0
        self.next_sample = total // 10

    def connection_made(self, transport):
        self.transport = transport
        self.meter.sample(0)
        self.send()

    def send(self):
        self.transport.sendto(self.seq.to_bytes(8, "big") * 8)

    def datagram_received(self, data, addr):
        if self.done.done():
            return
        if data != self.seq.to_bytes(8, "big") * 8:
            # A late duplicate after a resend, or corruption.
            if len(data) != 64 or int.from_bytes(data[:8], "big") >= self.seq:
                self.bad += 1
            return
        self.seq += 1
        if self.seq >= self.next_sample:
            self.meter.sample(self.seq)
            self.next_sample += self.total // 10
        if self.seq == self.total:
            self.done.set_result(None)
        else:
            self.send()

    def error_received(self, exc):  # pragma: no cover
        pass

    def watchdog(self, last):
        if self.done.done():
            return
        if self.seq == last:
            self.resends += 1
            self.send()
        self.loop.call_later(0.5, self.watchdog, self.seq)


@sizes(20_000, 1_000_000)
def test_udp_ping_pong_rss_bounded(loop, impl, n):
    limit = growth_limit(n, 20_000)

    async def main():
        srv, _ = await loop.create_datagram_endpoint(
            PongServer, local_addr=("127.0.0.1", 0))
        addr = srv.get_extra_info("sockname")
        meter = RssMeter(f"{impl.name} UDP ping-pong x{n}", n)
        cli, proto = await loop.create_datagram_endpoint(
            lambda: PingClient(loop, n, meter), remote_addr=addr)
        loop.call_later(0.5, proto.watchdog, -1)
        try:
            await asyncio.wait_for(asyncio.shield(proto.done),
                                   60 if n == 20_000 else 580)
        finally:
            cli.close()
            srv.close()
            await asyncio.sleep(0.01)
        return proto, meter

    proto, meter = run(loop, main(), 70 if n == 20_000 else 590)
    assert proto.seq == n
    assert proto.bad == 0
    print(f"\n{impl.name}: UDP resends={proto.resends}")
    meter.check(limit)


# ---------------------------------------------------------------------------
# 6. TLS: connect, handshake, echo, close, over and over


@sizes(200, 5_000)
def test_tls_handshake_cycles_rss_bounded_fds_back(loop, impl, n):
    """n TLS connections one after another (4 at a time), server and
    client both on the loop: handshake, echo, close; RSS sampled every 10%
    and bounded after warm-up; fds and handles back to baseline."""
    limit = growth_limit(n, 200)
    kinds = handle_kinds(impl)
    certs = get_certs()
    server_ctx, client_ctx = certs.server_ctx(), certs.client_ctx()
    size = 2048
    workers = 4
    stats = {"active": 0, "accepted": 0, "max_active": 0, "received": []}

    async def main():
        baseline, handles0 = await settle_baseline(loop, kinds)
        server = await loop.create_server(lambda: Held(stats), "127.0.0.1",
                                          0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        versions = collections.Counter()
        started = [0]

        async def cycle(i):
            r, w = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx), 30)
            try:
                sslobj = w.get_extra_info("ssl_object")
                versions[sslobj.version()] += 1
                peer = subject(w.get_extra_info("peercert"))
                assert peer["commonName"] == "localhost"
                data = payload_for(i, size)
                w.write(data)
                got = await asyncio.wait_for(r.readexactly(size), 30)
                assert got == data, f"cycle {i}: echoed bytes differ"
            finally:
                await close_writer(w)

        async def step(k):
            first = started[0]
            started[0] += k
            todo = iter(range(first, first + k))

            async def worker():
                for i in todo:
                    await cycle(i)

            await asyncio.gather(*(worker() for _ in range(workers)))

        meter = RssMeter(f"{impl.name} TLS cycles x{n}", n)
        t0 = time.monotonic()
        try:
            await phased(n, meter, step)
            elapsed = time.monotonic() - t0
            await wait_until(lambda: stats["active"] == 0, 30,
                             "every server-side connection lost")
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 10)
        after = await back_to_baseline(loop, kinds, baseline, handles0)
        return meter, elapsed, versions, baseline, after

    meter, elapsed, versions, baseline, after = run(
        loop, main(), 60 if n == 200 else 590)
    assert stats["accepted"] == n
    assert stats["received"] == [size] * n
    print(f"\n{impl.name}: {n} TLS cycles in {elapsed:.2f}s "
          f"({n / elapsed:.0f}/s, {dict(versions)}); fds back to {baseline}, "
          f"handles back to {after.total()}")
    meter.check(limit)


class SSLObjects(Held):
    """Held, also keeping a weak reference to each connection's SSLObject."""

    def __init__(self, stats, refs):
        super().__init__(stats)
        self.refs = refs

    def connection_made(self, transport):
        super().connection_made(transport)
        self.refs.append(weakref.ref(transport.get_extra_info("ssl_object")))


def test_tls_closed_connections_freed_without_cyclic_gc(loop, impl, request):
    """What the TLS soak's RSS figures rest on, made exact: with the cyclic
    GC off, the SSLObjects (and OpenSSL state, tens of KiB each) of closed
    connections, client and server side, are freed by reference counting,
    as asyncio's are.  A busy process with a large heap runs a full
    collection rarely, and would hold every one of them until then."""
    n = 100
    certs = get_certs()
    server_ctx, client_ctx = certs.server_ctx(), certs.client_ctx()
    stats = {"active": 0, "accepted": 0, "max_active": 0, "received": []}
    refs = []

    async def main():
        server = await loop.create_server(lambda: SSLObjects(stats, refs),
                                          "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]

        async def cycle(i):
            r, w = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx), 30)
            refs.append(weakref.ref(w.get_extra_info("ssl_object")))
            w.write(payload_for(i, 100))
            assert await asyncio.wait_for(r.readexactly(100), 30) \
                == payload_for(i, 100)
            await close_writer(w)

        try:
            for i in range(5):                      # warm-up
                await cycle(i)
            gc.collect()
            refs.clear()
            gc.disable()
            try:
                for i in range(n):
                    await cycle(i)
                await wait_until(lambda: stats["active"] == 0, 30,
                                 "every server-side connection lost")
                for _ in range(5):
                    await asyncio.sleep(0)
                alive = sum(1 for ref in refs if ref() is not None)
            finally:
                gc.enable()
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 10)
        return alive

    alive = run(loop, main(), 60)
    assert len(refs) == 2 * n
    assert alive == 0, (f"{impl.name}: {alive} of {2 * n} SSLObjects of "
                        f"closed TLS connections are alive until the cyclic "
                        f"GC runs")
