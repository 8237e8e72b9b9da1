"""call_soon_threadsafe and friends, with real threads."""

import asyncio
import contextvars
import threading
import time

import pytest

from _helpers import run_briefly, run_until


@pytest.mark.timeout(30)
def test_many_threads_each_callback_runs_exactly_once(loop):
    n_threads, per_thread = 8, 500
    total = n_threads * per_thread
    seen = []
    barrier = threading.Barrier(n_threads)

    def producer(tid):
        barrier.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(seen.append, (tid, i))

    threads = [threading.Thread(target=producer, args=(t,))
               for t in range(n_threads)]
    for t in threads:
        t.start()
    try:
        run_until(loop, lambda: len(seen) >= total, timeout=20)
    finally:
        for t in threads:
            t.join(10)
    run_briefly(loop, 2)
    assert len(seen) == total
    assert len(set(seen)) == total
    for tid in range(n_threads):
        mine = [i for (t, i) in seen if t == tid]
        assert mine == list(range(per_thread))  # per-thread FIFO


@pytest.mark.timeout(10)
def test_wakes_a_loop_sleeping_without_timers(loop):
    fut = loop.create_future()
    sent = []

    def wake():
        time.sleep(0.2)
        sent.append(time.monotonic())
        loop.call_soon_threadsafe(fut.set_result, "woken")

    t = threading.Thread(target=wake)
    t.start()
    # Safety net: never hang for long even if the wakeup is lost.
    guard = loop.call_later(5, lambda: fut.done() or fut.set_result("late"))
    try:
        result = loop.run_until_complete(fut)
        woke = time.monotonic()
    finally:
        guard.cancel()
        t.join()
    assert result == "woken"
    assert woke - sent[0] < 0.5


@pytest.mark.timeout(10)
def test_wakes_a_loop_sleeping_on_a_long_timer(loop):
    sent = []

    async def main():
        fut = loop.create_future()

        def wake():
            time.sleep(0.2)
            sent.append(time.monotonic())
            loop.call_soon_threadsafe(fut.set_result, None)

        t = threading.Thread(target=wake)
        t.start()
        try:
            await asyncio.wait_for(fut, 5)
            return time.monotonic()
        finally:
            t.join()

    woke = loop.run_until_complete(main())
    assert woke - sent[0] < 0.5


@pytest.mark.timeout(10)
def test_timer_scheduled_from_thread_runs_on_time(loop):
    fired = []

    def from_thread():
        time.sleep(0.05)
        loop.call_soon_threadsafe(
            loop.call_later, 0.05, lambda: fired.append(time.monotonic()))

    async def main():
        t = threading.Thread(target=from_thread)
        start = time.monotonic()
        t.start()
        try:
            while not fired and time.monotonic() - start < 5:
                await asyncio.sleep(0.5)  # a long sleep must not delay it
        finally:
            t.join()
        return start

    start = loop.run_until_complete(main())
    assert fired
    assert fired[0] - start < 0.45


def test_scheduled_before_the_loop_runs(loop):
    calls = []
    t = threading.Thread(target=loop.call_soon_threadsafe,
                         args=(calls.append, "early"))
    t.start()
    t.join()
    run_briefly(loop)
    assert calls == ["early"]


def test_from_the_loop_thread_itself(loop):
    calls = []

    def cb():
        loop.call_soon_threadsafe(calls.append, 2)
        calls.append(1)

    loop.call_soon_threadsafe(cb)
    run_briefly(loop, 2)
    assert calls == [1, 2]


def test_returns_a_cancellable_handle(loop):
    calls = []
    handles = []

    def in_thread():
        handles.append(loop.call_soon_threadsafe(calls.append, "x"))
        handles.append(loop.call_soon_threadsafe(calls.append, "y"))
        handles[0].cancel()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert handles[0].cancelled()
    run_briefly(loop)
    assert calls == ["y"]


def test_args_and_context(loop):
    var = contextvars.ContextVar("var", default="unset")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "explicit")
    seen = []

    def cb(tag):
        seen.append((tag, var.get()))

    def in_thread():
        var.set("thread value")
        loop.call_soon_threadsafe(cb, "default")
        loop.call_soon_threadsafe(cb, "explicit", context=ctx)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    run_briefly(loop)
    assert seen == [("default", "thread value"), ("explicit", "explicit")]


def test_on_closed_loop_raises(loop):
    loop.close()
    errors = []

    def in_thread():
        try:
            loop.call_soon_threadsafe(lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert len(errors) == 1
    assert "Event loop is closed" in str(errors[0])


@pytest.mark.timeout(10)
def test_run_coroutine_threadsafe(loop):
    async def add(a, b):
        await asyncio.sleep(0.01)
        return a + b

    results = []

    def in_thread():
        cf = asyncio.run_coroutine_threadsafe(add(2, 3), loop)
        results.append(cf.result(5))

    async def main():
        t = threading.Thread(target=in_thread)
        t.start()
        while t.is_alive():
            await asyncio.sleep(0.005)
        t.join()

    loop.run_until_complete(main())
    assert results == [5]


@pytest.mark.timeout(10)
def test_stop_from_another_thread(loop):
    started = threading.Event()
    loop.call_soon(started.set)

    def stopper():
        started.wait(5)
        time.sleep(0.1)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=stopper)
    t.start()
    guard = loop.call_later(5, loop.stop)
    t0 = time.monotonic()
    try:
        loop.run_forever()
    finally:
        guard.cancel()
        t.join()
    assert time.monotonic() - t0 < 1.5


@pytest.mark.timeout(20)
def test_producer_storm_while_loop_busy(loop):
    """Threads hammer the loop while its callbacks also do work."""
    stop_flag = threading.Event()
    count = [0]
    own = [0]

    def producer():
        while not stop_flag.is_set():
            loop.call_soon_threadsafe(count.__setitem__, 0, count[0] + 1)
            time.sleep(0)

    def own_work():
        own[0] += 1
        if own[0] < 2000:
            loop.call_soon(own_work)

    threads = [threading.Thread(target=producer) for _ in range(4)]
    for t in threads:
        t.start()
    loop.call_soon(own_work)
    try:
        run_until(loop, lambda: own[0] >= 2000 and count[0] > 100,
                  timeout=10)
    finally:
        stop_flag.set()
        for t in threads:
            t.join(5)
    run_briefly(loop, 2)
    assert own[0] == 2000
