"""Stress and soak tests, run against both loop implementations.

Each scenario is written once with a size parameter: a short version runs
in the default suite, a long version is marked ``stress`` (deselected by
default; run with ``-m stress``).  RSS figures are printed (see them with
``-s``) and repeated in assertion messages.
"""

import asyncio
import gc
import os
import resource
import sys
import threading
import time

import pytest

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


async def phased(total, meter, step):
    """Run ``await step(k)`` in 10 chunks adding up to ``total`` steps,
    sampling RSS before the first and after each chunk."""
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


def payload_for(i, size):
    # Distinct per connection, every byte position meaningful.
    seed = i.to_bytes(4, "big")
    block = bytes((j * 31 + i) & 0xFF for j in range(256))
    return (seed + block * (size // 256 + 1))[:size]


# ---------------------------------------------------------------------------
# 1. Many concurrent TCP connections, fds back to baseline


@sizes(500, 10_000)
def test_many_tcp_connections_fds_return(loop, impl, n):
    if n > 500:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 25_000:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 25000")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        restore = (soft, hard)
    else:
        restore = None
    size = 4096

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          backlog=min(n, 4096))
        port = server.sockets[0].getsockname()[1]
        try:
            # Warm-up connection (a libuv loop keeps a reserve fd).
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"x")
            assert await asyncio.wait_for(r.readexactly(1), 10) == b"x"
            await close_writer(w)
            await asyncio.sleep(0.05)
            baseline = fd_count()

            sem = asyncio.Semaphore(1000)

            async def connect(i):
                async with sem:
                    return await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), 30)

            conns = await asyncio.gather(*(connect(i) for i in range(n)))
            # All n connections (plus their server sides) are open now.
            assert fd_count() >= baseline + 2 * n - 10

            async def echo(i, reader, writer):
                data = payload_for(i, size)
                writer.write(data)
                got = await asyncio.wait_for(reader.readexactly(size), 60)
                assert got == data, f"connection {i}: echoed bytes differ"

            await asyncio.gather(*(echo(i, r, w)
                                   for i, (r, w) in enumerate(conns)))
            await asyncio.gather(*(close_writer(w) for _, w in conns))
            del conns
            await wait_until(lambda: fd_count() <= baseline, 30,
                             f"fd count back to baseline {baseline}")
            assert fd_count() == baseline
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 10)

    try:
        run(loop, main(), 60 if n <= 500 else 550)
    finally:
        if restore:
            resource.setrlimit(resource.RLIMIT_NOFILE, restore)


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
