"""Integration tests: anyio's asyncio backend on the loop under test.

``anyio.run(..., backend="asyncio",
backend_options={"loop_factory": impl.new_event_loop})`` runs each scenario
on a fresh loop of the impl (stdlib asyncio or uvcore) with the same expected
outcome.  Only loopback sockets and a local ``cat`` child are used.
"""

import asyncio
import hashlib
import os
import shutil
import ssl
import sys
import threading
import time

import pytest

anyio = pytest.importorskip("anyio")

pytestmark = [pytest.mark.timeout(60)]

MiB = 1024 * 1024


def anyio_run(impl, func, *args):
    """anyio.run on a new loop of ``impl``.  anyio 4's asyncio backend takes
    the loop factory as the ``loop_factory`` backend option."""
    return anyio.run(func, *args, backend="asyncio",
                     backend_options={"loop_factory": impl.new_event_loop})



# ---------------------------------------------------------------------------
# The loop anyio runs on


def test_run_uses_loop_factory(impl):
    async def main():
        loop = asyncio.get_running_loop()
        # anyio's own view of the backend.
        backend = anyio.get_current_task()
        await anyio.sleep(0.01)
        return type(loop), loop, backend.name, anyio.current_time()

    loop_type, loop, task_name, now = anyio_run(impl, main)
    if impl.name == "uvcore":
        assert issubclass(loop_type, impl.module.Loop)
        assert loop_type.__module__.startswith("uvcore")
    else:
        assert loop_type.__module__.startswith("asyncio")
        assert not loop_type.__module__.startswith("uvcore")
    assert loop.is_closed()         # anyio.run closed it
    assert isinstance(now, float)
    assert task_name


def test_run_returns_value_and_raises(impl):
    async def ok(a, b):
        await anyio.sleep(0)
        return a + b

    assert anyio_run(impl, ok, 2, 3) == 5

    async def boom():
        await anyio.sleep(0)
        raise LookupError("x")

    with pytest.raises(LookupError):
        anyio_run(impl, boom)


# ---------------------------------------------------------------------------
# to_thread storm + TCP echo


def test_to_thread_storm_with_tcp_echo(impl):
    n_calls = 2000
    limit = 32
    payload = os.urandom(256 * 1024)

    def work(i):
        # Blocking-ish work in a worker thread.
        if i % 100 == 0:
            time.sleep(0.001)
        return i * i, threading.get_ident()

    async def main():
        limiter = anyio.CapacityLimiter(limit)
        results = {}
        peak = 0
        active = 0
        main_thread = threading.get_ident()
        echo_done = anyio.Event()
        echoed = []

        async def call(i):
            nonlocal peak, active
            active += 1
            try:
                value, tid = await anyio.to_thread.run_sync(
                    work, i, limiter=limiter)
            finally:
                active -= 1
            assert tid != main_thread
            results[i] = value
            peak = max(peak, limiter.borrowed_tokens)

        async def handle(stream):
            async with stream:
                try:
                    while True:
                        data = await stream.receive(65536)
                        await stream.send(data)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass

        async def echo_client(port, rounds):
            async with await anyio.connect_tcp("127.0.0.1", port) as conn:
                for r in range(rounds):
                    await conn.send(payload)
                    got = bytearray()
                    while len(got) < len(payload):
                        got += await conn.receive(65536)
                    assert bytes(got) == payload
                    echoed.append(r)
                    await anyio.sleep(0)
                await conn.send_eof()
                with pytest.raises(anyio.EndOfStream):
                    await conn.receive()

        with anyio.fail_after(40):
            listener = await anyio.create_tcp_listener(
                local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with listener:
                async with anyio.create_task_group() as server_tg:
                    server_tg.start_soon(listener.serve, handle)
                    async with anyio.create_task_group() as tg:
                        for c in range(4):
                            tg.start_soon(echo_client, port, 20)
                        for i in range(n_calls):
                            tg.start_soon(call, i)
                    echo_done.set()
                    server_tg.cancel_scope.cancel()
        return results, peak, len(echoed), limiter.borrowed_tokens

    results, peak, n_echoed, borrowed = anyio_run(impl, main)
    assert len(results) == n_calls
    assert results == {i: i * i for i in range(n_calls)}
    assert 1 <= peak <= limit
    assert borrowed == 0
    assert n_echoed == 4 * 20


def test_to_thread_from_thread_roundtrip(impl):
    """Worker threads call back into the loop (from_thread.run)."""
    async def double(x):
        await anyio.sleep(0)
        return 2 * x

    def worker(x):
        return anyio.from_thread.run(double, x) + 1

    async def main():
        out = []

        async def one(i):
            out.append((i, await anyio.to_thread.run_sync(worker, i)))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, i)
        return sorted(out)

    assert anyio_run(impl, main) == [(i, 2 * i + 1) for i in range(200)]


def test_worker_threads_outlive_plain_task(impl):
    """anyio binds its worker threads to the *root* task (the one
    anyio.run drives with run_until_complete) and keeps idle workers for
    reuse.  It finds that task by its done callback: asyncio's
    ``base_events._run_until_complete_cb`` (or uvloop's).  When it cannot,
    it binds workers to whatever task called to_thread and scans
    ``asyncio.all_tasks()`` again on every call.  Observable: a worker first
    used from a plain asyncio task must stay alive (idle) after that task
    ends."""
    async def main():
        async def plain():
            return await anyio.to_thread.run_sync(threading.current_thread)

        with anyio.fail_after(10):
            worker = await asyncio.get_running_loop().create_task(plain())
            assert worker.name == "AnyIO worker thread"
            await anyio.sleep(0.3)
            alive_after_task = worker.is_alive()
            # And it is the one reused for the next call.
            again = await anyio.to_thread.run_sync(threading.current_thread)
            return alive_after_task, again is worker

    assert anyio_run(impl, main) == (True, True)


# ---------------------------------------------------------------------------
# Task groups and cancellation


def test_task_groups_and_cancellation(impl):
    async def main():
        log = []

        # move_on_after cancels a long sleep.
        t0 = anyio.current_time()
        with anyio.move_on_after(0.1) as scope:
            await anyio.sleep(10)
            log.append("not reached")
        elapsed = anyio.current_time() - t0
        assert scope.cancelled_caught
        assert 0.08 <= elapsed < 2, elapsed

        # A task group whose children all get cancelled by a scope.
        cancelled = []

        async def sleeper(i):
            try:
                await anyio.sleep(10)
            except anyio.get_cancelled_exc_class():
                cancelled.append(i)
                raise

        with anyio.move_on_after(0.1) as scope:
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(sleeper, i)
        assert scope.cancelled_caught
        assert sorted(cancelled) == list(range(50))

        # An exception in a child cancels its siblings and surfaces as an
        # ExceptionGroup.
        siblings = []

        async def failing():
            await anyio.sleep(0.01)
            raise ValueError("child failed")

        async def sibling():
            try:
                await anyio.sleep(10)
            except anyio.get_cancelled_exc_class():
                siblings.append("cancelled")
                raise

        try:
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(sibling)
                    tg.start_soon(sibling)
                    tg.start_soon(failing)
        except BaseException as exc:     # ExceptionGroup on 3.11+
            group = exc
        else:
            group = None
        assert group is not None
        assert type(group).__name__.endswith("ExceptionGroup")
        assert [type(e) for e in group.exceptions] == [ValueError]
        assert siblings == ["cancelled", "cancelled"]

        # Shielded scope finishes its work despite an outer cancel.
        shielded = []
        with anyio.move_on_after(0.05):
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.15)
                shielded.append("done")
        assert shielded == ["done"]

        # fail_after raises TimeoutError.
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.05):
                await anyio.sleep(5)

        # task_group.start(): wait for a child's readiness signal.
        async def service(task_status=anyio.TASK_STATUS_IGNORED):
            await anyio.sleep(0.01)
            task_status.started("ready")
            await anyio.sleep(10)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                status = await tg.start(service)
                assert status == "ready"
                tg.cancel_scope.cancel()

        # Events and memory streams between tasks.
        send, recv = anyio.create_memory_object_stream(10)
        got = []

        async def producer():
            async with send:
                for i in range(100):
                    await send.send(i)

        async def consumer():
            async with recv:
                async for item in recv:
                    got.append(item)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(producer)
                tg.start_soon(consumer)
        assert got == list(range(100))
        return log

    assert anyio_run(impl, main) == []


def test_cancel_blocked_to_thread(impl):
    """A cancelled scope around to_thread.run_sync(abandon_on_cancel=True)
    returns promptly; the thread finishes on its own."""
    release = threading.Event()
    finished = threading.Event()

    def blocker():
        release.wait(10)
        finished.set()
        return "late"

    async def main():
        t0 = anyio.current_time()
        with anyio.move_on_after(0.1) as scope:
            await anyio.to_thread.run_sync(blocker, abandon_on_cancel=True)
        elapsed = anyio.current_time() - t0
        release.set()
        return scope.cancelled_caught, elapsed

    caught, elapsed = anyio_run(impl, main)
    assert caught
    assert elapsed < 2
    assert finished.wait(10)


# ---------------------------------------------------------------------------
# Subprocesses


@pytest.mark.skipif(shutil.which("cat") is None, reason="needs cat")
def test_open_process_cat(impl):
    data = os.urandom(2 * MiB)

    async def main():
        with anyio.fail_after(20):
            async with await anyio.open_process(["cat"]) as proc:
                got = bytearray()

                async def feed():
                    for i in range(0, len(data), 65536):
                        await proc.stdin.send(data[i:i + 65536])
                    await proc.stdin.aclose()

                async def drain():
                    try:
                        while True:
                            got.extend(await proc.stdout.receive(65536))
                    except anyio.EndOfStream:
                        pass

                async with anyio.create_task_group() as tg:
                    tg.start_soon(feed)
                    tg.start_soon(drain)
                rc = await proc.wait()
            # run_process: the whole round trip in one call.
            result = await anyio.run_process(["cat"], input=b"hello\n")
        return bytes(got), rc, result.returncode, result.stdout

    got, rc, rc2, out2 = anyio_run(impl, main)
    assert rc == 0 and rc2 == 0
    assert len(got) == len(data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert out2 == b"hello\n"


def test_open_process_terminate(impl):
    async def main():
        with anyio.fail_after(20):
            async with await anyio.open_process(
                    [sys.executable, "-c",
                     "import sys, time; print('up', flush=True); "
                     "time.sleep(30)"]) as proc:
                line = await proc.stdout.receive()
                assert line.startswith(b"up")
                proc.terminate()
                rc = await proc.wait()
        return rc

    assert anyio_run(impl, main) == -15


# ---------------------------------------------------------------------------
# TLS over anyio sockets (optional: needs trustme)


def test_tls_echo(impl):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    payload = os.urandom(MiB)

    from anyio.streams.tls import TLSListener, TLSStream

    async def handle(stream):
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async def main():
        with anyio.fail_after(30):
            tcp = await anyio.create_tcp_listener(local_host="127.0.0.1",
                                                  local_port=0)
            port = tcp.extra(anyio.abc.SocketAttribute.local_port)
            listener = TLSListener(tcp, server_ctx,
                                   standard_compatible=False)
            async with listener, anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handle)
                conn = await anyio.connect_tcp(
                    "127.0.0.1", port, ssl_context=client_ctx,
                    tls_standard_compatible=False)
                assert isinstance(conn, TLSStream)
                version = conn.extra(anyio.streams.tls.TLSAttribute
                                     .tls_version)
                async with conn:
                    for _ in range(3):
                        await conn.send(payload)
                        got = bytearray()
                        while len(got) < len(payload):
                            got += await conn.receive()
                        assert bytes(got) == payload
                tg.cancel_scope.cancel()
        return version

    assert anyio_run(impl, main).startswith("TLS")


# ---------------------------------------------------------------------------
# anyio inside asyncio.run / uvcore.run (no anyio.run)


def test_anyio_inside_impl_run(impl):
    async def main():
        assert anyio.get_current_task() is not None
        with anyio.fail_after(20):
            results = []

            async def one(i):
                results.append(await anyio.to_thread.run_sync(abs, -i))

            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(one, i)
            with anyio.move_on_after(0.05) as scope:
                await anyio.sleep(5)
            listener = await anyio.create_tcp_listener(
                local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)

            async def handle(stream):
                async with stream:
                    await stream.send((await stream.receive()).upper())

            async with listener, anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handle)
                async with await anyio.connect_tcp("127.0.0.1", port) as c:
                    await c.send(b"ping")
                    reply = await c.receive()
                tg.cancel_scope.cancel()
        return sorted(results), scope.cancelled_caught, reply, \
            type(asyncio.get_running_loop()).__module__

    results, caught, reply, loop_mod = impl.run(main())
    assert results == list(range(100))
    assert caught
    assert reply == b"PING"
    assert loop_mod.startswith("uvcore" if impl.name == "uvcore"
                               else "asyncio")
