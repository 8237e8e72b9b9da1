"""os.fork() while a loop is running: the child can start over with its own
loop and leave, and the parent's loop keeps working.

The child always leaves with os._exit(): with both implementations the
child shares the parent's epoll instance and wakeup sockets, so a child that
closed the inherited loop (explicitly or by garbage collection at
interpreter exit) would unregister the parent's fds (asyncio itself breaks
its parent's call_soon_threadsafe wakeups that way).
"""

import asyncio
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings

import pytest

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.timeout(60),
]


def _fork(child_body):
    """Fork; in the child run ``child_body()`` and _exit with its return
    value (99 on an exception).  Returns the child's pid in the parent."""
    with warnings.catch_warnings():
        # 3.12+: "This process is multi-threaded, use of fork() may lead to
        # deadlocks in the child."
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child
        code = 98
        try:
            code = child_body()
        except BaseException:
            try:
                traceback.print_exc()
                sys.stderr.flush()
            except BaseException:
                pass
            code = 99
        finally:
            os._exit(code if isinstance(code, int) else 97)
    return pid


async def _wait_child(pid, timeout=20.0):
    """Wait for the child from inside the running loop (without blocking
    it); return its exit code."""
    deadline = time.monotonic() + timeout
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("forked child did not exit in time")
        await asyncio.sleep(0.01)


async def _check_loop_still_works(loop, pair):
    """Timers, thread wakeups, fd readers, the executor and DNS all work."""
    a, b = pair
    # timer
    t0 = loop.time()
    fired = loop.create_future()
    loop.call_later(0.05, fired.set_result, None)
    await asyncio.wait_for(fired, 5)
    assert 0.05 <= loop.time() - t0 < 2
    # wakeup from another thread
    woken = loop.create_future()
    sent = []

    def poke():
        time.sleep(0.05)
        sent.append(time.monotonic())
        loop.call_soon_threadsafe(woken.set_result, time.monotonic())

    th = threading.Thread(target=poke)
    th.start()
    await asyncio.wait_for(woken, 5)
    th.join()
    assert time.monotonic() - sent[0] < 1
    # reader registered before the fork
    got = loop.create_future()
    loop.add_reader(a, lambda: got.done() or got.set_result(a.recv(100)))
    try:
        b.send(b"after fork")
        assert await asyncio.wait_for(got, 5) == b"after fork"
    finally:
        loop.remove_reader(a)
    # executor and DNS
    assert await loop.run_in_executor(None, sum, [1, 2]) == 3
    infos = await asyncio.wait_for(
        loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM), 10)
    assert infos[0][4] == ("127.0.0.1", 80)


def _child_new_loop_body(loop_factory):
    lp = loop_factory()
    try:
        async def main():
            await asyncio.sleep(0.01)
            fut = lp.create_future()
            th = threading.Thread(
                target=lambda: lp.call_soon_threadsafe(fut.set_result, 1))
            th.start()
            await asyncio.wait_for(fut, 5)
            th.join()
            x, y = socket.socketpair()
            try:
                got = lp.create_future()
                lp.add_reader(x, lambda: got.done() or got.set_result(
                    x.recv(10)))
                y.send(b"c")
                assert await asyncio.wait_for(got, 5) == b"c"
                lp.remove_reader(x)
            finally:
                x.close()
                y.close()
            assert await lp.run_in_executor(None, int, "5") == 5
            infos = await asyncio.wait_for(
                lp.getaddrinfo("127.0.0.1", 81, type=socket.SOCK_STREAM), 10)
            assert infos[0][4] == ("127.0.0.1", 81)
            return asyncio.get_running_loop() is lp

        ok = lp.run_until_complete(asyncio.wait_for(main(), 15))
    finally:
        lp.close()
    return 0 if ok else 1


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_child_exits_at_once_parent_continues(loop, pair):
    async def main():
        # Have timers, a reader and executor threads live at fork time.
        loop.call_later(30, lambda: None)
        loop.add_reader(pair[0], lambda: None)
        await loop.run_in_executor(None, int)
        pid = _fork(lambda: 0)
        loop.remove_reader(pair[0])
        assert await _wait_child(pid) == 0
        await _check_loop_still_works(loop, pair)
        return "parent ok"

    assert loop.run_until_complete(main()) == "parent ok"


def test_child_runs_its_own_new_loop(loop, loop_factory, pair):
    async def main():
        await loop.run_in_executor(None, int)
        pid = _fork(lambda: _child_new_loop_body(loop_factory))
        assert await _wait_child(pid) == 0
        await _check_loop_still_works(loop, pair)
        return "parent ok"

    assert loop.run_until_complete(main()) == "parent ok"


def test_fork_from_a_plain_callback(loop, loop_factory, pair):
    pids = []
    loop.call_soon(lambda: pids.append(
        _fork(lambda: _child_new_loop_body(loop_factory))))

    async def main():
        while not pids:
            await asyncio.sleep(0)
        assert await _wait_child(pids[0]) == 0
        await _check_loop_still_works(loop, pair)

    loop.run_until_complete(main())


def test_fork_between_runs(loop, loop_factory, pair):
    loop.run_until_complete(loop.run_in_executor(None, int))
    pid = _fork(lambda: _child_new_loop_body(loop_factory))

    async def main():
        assert await _wait_child(pid) == 0
        await _check_loop_still_works(loop, pair)

    loop.run_until_complete(main())


@pytest.mark.usefixtures("restore_signals")
def test_child_signals_do_not_reach_parent_loop(loop, loop_factory, pair):
    parent_calls = []
    loop.add_signal_handler(signal.SIGUSR1, parent_calls.append, "parent")

    def child():
        lp = loop_factory()
        try:
            got = []
            lp.add_signal_handler(signal.SIGUSR1, got.append, "child")

            async def main():
                os.kill(os.getpid(), signal.SIGUSR1)
                for _ in range(500):
                    if got:
                        break
                    await asyncio.sleep(0.01)
                return got

            ok = lp.run_until_complete(main()) == ["child"]
            lp.remove_signal_handler(signal.SIGUSR1)
        finally:
            lp.close()
        return 0 if ok else 1

    async def main():
        pid = _fork(child)
        assert await _wait_child(pid) == 0
        # Let any stray notification arrive before checking.
        await asyncio.sleep(0.1)
        assert parent_calls == []
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(500):
            if parent_calls:
                break
            await asyncio.sleep(0.01)
        assert parent_calls == ["parent"]
        await _check_loop_still_works(loop, pair)

    try:
        loop.run_until_complete(main())
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


def test_many_children(loop, pair):
    async def main():
        pids = [_fork(lambda i=i: i) for i in range(5)]
        codes = [await _wait_child(pid) for pid in pids]
        assert codes == list(range(5))
        await _check_loop_still_works(loop, pair)

    loop.run_until_complete(main())
