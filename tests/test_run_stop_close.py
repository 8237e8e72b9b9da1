"""run_forever / run_until_complete / stop / close / is_running / is_closed."""

import asyncio
import concurrent.futures
import signal
import threading
import time

import pytest

import _helpers
from _helpers import run_briefly

ALREADY_RUNNING = "This event loop is already running"
OTHER_RUNNING = "Cannot run the event loop while another loop is running"
CLOSE_RUNNING = "Cannot close a running event loop"
CLOSED = "Event loop is closed"


# --- run_until_complete -----------------------------------------------------

def test_run_until_complete_coroutine_returns_value(loop):
    async def main():
        await asyncio.sleep(0)
        return 42

    assert loop.run_until_complete(main()) == 42


def test_run_until_complete_future(loop):
    fut = loop.create_future()
    loop.call_later(0.01, fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_task(loop):
    async def main():
        return "task"

    task = loop.create_task(main())
    assert loop.run_until_complete(task) == "task"


def test_run_until_complete_done_future(loop):
    fut = loop.create_future()
    fut.set_result(7)
    assert loop.run_until_complete(fut) == 7


def test_run_until_complete_awaitable_object(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"


@pytest.mark.parametrize("bad", [123, None, "str", lambda: None])
def test_run_until_complete_non_awaitable(loop, bad):
    with pytest.raises(TypeError):
        loop.run_until_complete(bad)
    assert not loop.is_running()


def test_run_until_complete_exception_propagates(loop):
    class MyError(Exception):
        pass

    async def main():
        await asyncio.sleep(0)
        raise MyError("x")

    with pytest.raises(MyError):
        loop.run_until_complete(main())
    assert not loop.is_running()


def test_run_until_complete_cancelled_future(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_future_of_another_loop(loop):
    other = asyncio.new_event_loop()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(fut)
    finally:
        other.close()


def test_run_until_complete_stopped_early(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError,
                       match="Event loop stopped before Future completed"):
        loop.run_until_complete(fut)
    fut.cancel()


def test_run_until_complete_does_not_wait_for_other_callbacks(loop):
    calls = []
    loop.call_later(30, calls.append, "far")
    t0 = time.monotonic()
    loop.run_until_complete(asyncio.sleep(0.01))
    assert time.monotonic() - t0 < 1
    assert calls == []


def test_run_until_complete_repeatedly(loop):
    async def step(i):
        await asyncio.sleep(0)
        return i

    assert [loop.run_until_complete(step(i)) for i in range(50)] == list(
        range(50))


# --- run_forever / stop -----------------------------------------------------

def test_run_forever_returns_none_after_stop(loop):
    loop.call_later(0.01, loop.stop)
    assert loop.run_forever() is None


def test_stop_before_run_forever_runs_one_iteration(loop):
    calls = []

    def a():
        calls.append("a")
        loop.call_soon(calls.append, "c")

    loop.call_soon(a)
    loop.call_soon(calls.append, "b")
    loop.stop()
    loop.run_forever()
    assert calls == ["a", "b"]
    # The callback scheduled during that iteration runs next time.
    loop.stop()
    loop.run_forever()
    assert calls == ["a", "b", "c"]


def test_stop_before_run_with_nothing_scheduled(loop):
    loop.stop()
    t0 = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - t0 < 1
    assert not loop.is_running()


def test_stop_is_not_sticky(loop):
    loop.stop()
    loop.run_forever()
    calls = []
    loop.call_later(0.05, calls.append, "timer")
    loop.call_later(0.06, loop.stop)
    loop.run_forever()
    assert calls == ["timer"]


def test_stop_inside_callback_finishes_current_batch(loop):
    calls = []

    def stopper():
        calls.append("stopper")
        loop.stop()

    loop.call_soon(stopper)
    loop.call_soon(calls.append, "same batch")
    loop.run_forever()
    assert calls == ["stopper", "same batch"]


def test_stop_called_twice(loop):
    calls = []
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    loop.call_soon(calls.append, 1)
    loop.run_forever()
    assert calls == [1]
    loop.call_later(0.01, calls.append, 2)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == [1, 2]


def test_stop_from_coroutine(loop):
    async def main():
        await asyncio.sleep(0.01)
        loop.stop()

    loop.create_task(main())
    t0 = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - t0 < 1


def test_due_timer_runs_with_stop(loop):
    calls = []
    loop.call_later(0.01, calls.append, "timer")
    time.sleep(0.02)
    loop.stop()
    loop.run_forever()
    assert calls == ["timer"]


# --- reentrancy ---------------------------------------------------------------

def test_run_forever_while_running(loop):
    errors = []

    def cb():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert len(errors) == 1
    assert ALREADY_RUNNING in str(errors[0])


def test_nested_run_until_complete(loop):
    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError, match=ALREADY_RUNNING):
                loop.run_until_complete(coro)
        finally:
            coro.close()
        return "ok"

    assert loop.run_until_complete(main()) == "ok"
    assert not loop.is_running()


def _skip_if_stdlib_bug(impl):
    if impl.name == "asyncio" and _helpers.stdlib_run_forever_cleanup_bug():
        pytest.skip("this Python's asyncio loses its running-loop state "
                    "after refusing run_forever() (CPython 3.13.0)")


def test_run_another_loop_of_same_impl_while_running(impl, loop,
                                                     loop_factory):
    _skip_if_stdlib_bug(impl)
    other = loop_factory()
    try:
        async def main():
            with pytest.raises(RuntimeError, match=OTHER_RUNNING):
                other.run_forever()
            fut = other.create_future()
            with pytest.raises(RuntimeError, match=OTHER_RUNNING):
                other.run_until_complete(fut)
            return "ok"

        assert loop.run_until_complete(main()) == "ok"
        assert not other.is_running()
        # Once the outer loop is done, the other loop runs fine.
        assert other.run_until_complete(asyncio.sleep(0, "x")) == "x"
    finally:
        other.close()


def test_run_stdlib_loop_inside_this_loop(loop):
    other = asyncio.new_event_loop()
    try:
        async def main():
            with pytest.raises(RuntimeError, match=OTHER_RUNNING):
                other.run_forever()

        loop.run_until_complete(main())
    finally:
        other.close()


def test_run_this_loop_inside_stdlib_loop(loop):
    outer = asyncio.new_event_loop()
    try:
        async def main():
            with pytest.raises(RuntimeError, match=OTHER_RUNNING):
                loop.run_forever()
            assert not loop.is_running()

        outer.run_until_complete(main())
    finally:
        outer.close()
    # The loop under test still works afterwards.
    assert loop.run_until_complete(asyncio.sleep(0, 3)) == 3


def test_running_loop_is_set_only_while_running(loop):
    seen = []

    async def main():
        seen.append(asyncio.get_running_loop())
        seen.append(asyncio.get_event_loop())
        seen.append(asyncio._get_running_loop())

    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    loop.run_until_complete(main())
    assert seen == [loop, loop, loop]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# --- is_running / is_closed / close -------------------------------------------

def test_is_running_and_is_closed(loop):
    states = []
    assert not loop.is_running()
    assert not loop.is_closed()
    loop.call_soon(lambda: states.append((loop.is_running(), loop.is_closed())))
    run_briefly(loop)
    assert states == [(True, False)]
    assert not loop.is_running()
    loop.close()
    assert loop.is_closed()
    assert not loop.is_running()


def test_close_running_loop(loop):
    errors = []

    def cb():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(exc)

    loop.call_soon(cb)
    run_briefly(loop)
    assert len(errors) == 1
    assert CLOSE_RUNNING in str(errors[0])
    assert not loop.is_closed()


def test_close_is_idempotent(loop):
    loop.close()
    loop.close()
    assert loop.is_closed()


def test_close_with_pending_callbacks(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_later(0.01, calls.append, 2)
    loop.close()
    assert calls == []
    assert loop.is_closed()


def test_close_with_handlers_and_readers(loop):
    import socket

    a, b = socket.socketpair()
    try:
        loop.add_reader(a, lambda: None)
        loop.add_writer(b, lambda: None)
        loop.close()
        assert loop.is_closed()
    finally:
        a.close()
        b.close()


def _noop():
    pass


async def _coro():
    pass


# name -> function(loop, coroutine, socket) performing the call
CALLS_AFTER_CLOSE = {
    "call_soon": lambda lp, c, s: lp.call_soon(_noop),
    "call_later": lambda lp, c, s: lp.call_later(1, _noop),
    "call_at": lambda lp, c, s: lp.call_at(lp.time() + 1, _noop),
    "call_soon_threadsafe": lambda lp, c, s: lp.call_soon_threadsafe(_noop),
    "run_forever": lambda lp, c, s: lp.run_forever(),
    "run_until_complete": lambda lp, c, s: lp.run_until_complete(c),
    "create_task": lambda lp, c, s: lp.create_task(c),
    "run_in_executor": lambda lp, c, s: lp.run_in_executor(None, _noop),
    "add_reader": lambda lp, c, s: lp.add_reader(s, _noop),
    "add_writer": lambda lp, c, s: lp.add_writer(s, _noop),
    "add_signal_handler": lambda lp, c, s: lp.add_signal_handler(
        signal.SIGUSR1, _noop),
}


@pytest.mark.parametrize("what", sorted(CALLS_AFTER_CLOSE))
def test_calls_after_close(loop, what):
    import socket

    loop.close()
    coro = _coro()
    a, b = socket.socketpair()
    try:
        with pytest.raises(RuntimeError, match=CLOSED):
            CALLS_AFTER_CLOSE[what](loop, coro, a)
    finally:
        coro.close()
        a.close()
        b.close()


def test_harmless_calls_after_close(loop):
    loop.close()
    assert isinstance(loop.time(), float)
    loop.stop()
    assert loop.get_debug() in (True, False)
    fut = loop.create_future()
    assert not fut.done()
    fut.cancel()
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


@pytest.mark.timeout(15)
def test_loop_running_in_another_thread(impl, loop_factory):
    _skip_if_stdlib_bug(impl)
    lp = loop_factory()
    started = threading.Event()
    result = {}

    def runner():
        asyncio.set_event_loop(lp)
        lp.call_soon(started.set)
        lp.run_forever()
        result["stopped"] = True

    t = threading.Thread(target=runner)
    t.start()
    try:
        assert started.wait(5)
        assert lp.is_running()
        assert not lp.is_closed()
        # This thread has no running loop of its own.
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        # Running the same loop here too is refused.
        with pytest.raises(RuntimeError, match=ALREADY_RUNNING):
            lp.run_forever()
        with pytest.raises(RuntimeError, match=CLOSE_RUNNING):
            lp.close()

        async def where():
            await asyncio.sleep(0.01)
            return threading.get_ident(), asyncio.get_running_loop()

        cf = asyncio.run_coroutine_threadsafe(where(), lp)
        ident, running = cf.result(5)
        assert ident == t.ident
        assert running is lp

        cf2 = concurrent.futures.Future()
        lp.call_soon_threadsafe(
            lambda: cf2.set_result(threading.get_ident()))
        assert cf2.result(5) == t.ident
    finally:
        lp.call_soon_threadsafe(lp.stop)
        t.join(5)
    assert result == {"stopped": True}
    assert not lp.is_running()
    lp.close()
    assert lp.is_closed()


@pytest.mark.timeout(15)
def test_loops_in_several_threads_at_once(loop_factory):
    results = {}

    def worker(i):
        lp = loop_factory()
        try:
            async def main():
                await asyncio.sleep(0.05)
                return i, asyncio.get_running_loop() is lp

            results[i] = lp.run_until_complete(main())
        finally:
            lp.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: (i, True) for i in range(8)}


def test_close_shuts_down_default_executor(loop):
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    assert loop.run_until_complete(
        loop.run_in_executor(None, lambda: 5)) == 5
    loop.close()
    with pytest.raises(RuntimeError):
        executor.submit(lambda: None)
