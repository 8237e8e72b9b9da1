"""add_signal_handler / remove_signal_handler, SIGINT and Python-level
signal handlers, with real signals sent to this process with os.kill."""

import asyncio
import os
import signal
import sys
import threading
import time

import pytest

from _helpers import run_briefly, run_until

pytestmark = pytest.mark.usefixtures("restore_signals")

PID = os.getpid()


def kill_later(sig, delay=0.1):
    """Send ``sig`` to this process from another thread after ``delay``;
    returns the thread and a list that gets the send time."""
    sent = []

    def sender():
        time.sleep(delay)
        sent.append(time.monotonic())
        os.kill(os.getpid(), sig)

    t = threading.Thread(target=sender)
    t.start()
    return t, sent


def run_catching_sigint(func, sender):
    """Call ``func()`` expecting KeyboardInterrupt from SIGINT.

    Returns ("in call", t) when it came out of ``func()``, ("late", t) when
    it only surfaced after ``func()`` returned (the loop did not handle the
    signal while it slept), or (None, None).  A late KeyboardInterrupt is
    always caught here, so it can never abort the whole pytest session."""
    where = when = None
    try:
        try:
            func()
        except KeyboardInterrupt:
            where, when = "in call", time.monotonic()
        sender.join()
        for _ in range(100):  # let a pending Python signal handler run here
            pass
        time.sleep(0.01)
    except KeyboardInterrupt:
        if where is None:
            where, when = "late", time.monotonic()
    return where, when


# --- add_signal_handler -----------------------------------------------------

@pytest.mark.timeout(10)
def test_handler_gets_args_and_runs_in_loop(loop):
    seen = []

    def handler(*args):
        seen.append((args, threading.get_ident(),
                     asyncio.get_running_loop()))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "a", 2)
    t, _ = kill_later(signal.SIGUSR1)
    guard = loop.call_later(5, loop.stop)
    try:
        loop.run_forever()
    finally:
        guard.cancel()
        t.join()
    assert seen == [(("a", 2), threading.get_ident(), loop)]
    assert loop.remove_signal_handler(signal.SIGUSR1) is True


@pytest.mark.timeout(10)
def test_handler_runs_promptly_while_loop_sleeps(loop):
    fut = loop.create_future()
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: fut.done() or fut.set_result(time.monotonic()))
    t, sent = kill_later(signal.SIGUSR1, 0.2)

    async def main():
        return await asyncio.wait_for(fut, 5)

    try:
        ran_at = loop.run_until_complete(main())
    finally:
        t.join()
        loop.remove_signal_handler(signal.SIGUSR1)
    assert ran_at - sent[0] < 0.5


@pytest.mark.timeout(10)
def test_signal_received_before_run_is_delivered(loop):
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "usr1")
    os.kill(PID, signal.SIGUSR1)
    time.sleep(0.01)
    assert calls == []
    run_until(loop, lambda: calls)
    assert calls == ["usr1"]
    loop.remove_signal_handler(signal.SIGUSR1)


@pytest.mark.timeout(10)
def test_each_signal_sent_after_previous_handled(loop):
    calls = []
    handled = threading.Event()

    def handler():
        calls.append(1)
        handled.set()

    loop.add_signal_handler(signal.SIGUSR1, handler)

    def sender():
        for _ in range(5):
            handled.clear()
            os.kill(PID, signal.SIGUSR1)
            if not handled.wait(3):
                return

    t = threading.Thread(target=sender)
    t.start()
    try:
        run_until(loop, lambda: len(calls) >= 5 or not t.is_alive())
    finally:
        t.join()
        loop.remove_signal_handler(signal.SIGUSR1)
    assert len(calls) == 5


@pytest.mark.timeout(10)
def test_two_signals_two_handlers(loop):
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, calls.append, "usr2")
    os.kill(PID, signal.SIGUSR1)
    run_until(loop, lambda: "usr1" in calls)
    os.kill(PID, signal.SIGUSR2)
    run_until(loop, lambda: "usr2" in calls)
    assert calls == ["usr1", "usr2"]
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert loop.remove_signal_handler(signal.SIGUSR2)


@pytest.mark.timeout(10)
def test_replacing_a_handler(loop):
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "first")
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "second")
    os.kill(PID, signal.SIGUSR1)
    run_until(loop, lambda: calls)
    run_briefly(loop, 2)
    assert calls == ["second"]
    loop.remove_signal_handler(signal.SIGUSR1)


@pytest.mark.timeout(10)
def test_handler_exception_goes_to_exception_handler(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))

    def handler():
        raise LookupError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR1, handler)
    os.kill(PID, signal.SIGUSR1)
    run_until(loop, lambda: got)
    loop.remove_signal_handler(signal.SIGUSR1)
    assert isinstance(got[0]["exception"], LookupError)


# --- remove_signal_handler ------------------------------------------------------

def test_remove_returns_bool(loop):
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


@pytest.mark.timeout(10)
def test_removed_handler_no_longer_called(loop):
    calls = []
    py_calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "loop")
    assert loop.remove_signal_handler(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, lambda s, f: py_calls.append(s))
    os.kill(PID, signal.SIGUSR1)
    run_until(loop, lambda: py_calls)
    run_briefly(loop, 3)
    assert calls == []
    assert py_calls == [signal.SIGUSR1]


@pytest.mark.timeout(10)
def test_closed_loop_handlers_do_not_fire(loop_factory):
    calls = []
    first = loop_factory()
    first.add_signal_handler(signal.SIGUSR1, calls.append, "first")
    first.close()
    second = loop_factory()
    try:
        second.add_signal_handler(signal.SIGUSR1, calls.append, "second")
        os.kill(PID, signal.SIGUSR1)
        run_until(second, lambda: calls)
        run_briefly(second, 2)
        assert calls == ["second"]
        second.remove_signal_handler(signal.SIGUSR1)
    finally:
        second.close()


# --- argument checking ----------------------------------------------------------

@pytest.mark.parametrize("sig", [0, signal.NSIG, 1000, -1])
def test_invalid_signal_number(loop, sig):
    with pytest.raises(ValueError):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", ["SIGUSR1", 1.0, None])
def test_signal_must_be_int(loop, sig):
    with pytest.raises(TypeError):
        loop.add_signal_handler(sig, lambda: None)
    with pytest.raises(TypeError):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signal(loop, sig):
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(sig, lambda: None)
    assert loop.remove_signal_handler(sig) is False


def test_coroutine_function_rejected(loop):
    async def handler():
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, handler)
    coro = handler()
    try:
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


@pytest.mark.timeout(10)
def test_not_from_a_non_main_thread(loop_factory):
    errors = []

    def worker():
        lp = loop_factory()
        try:
            lp.add_signal_handler(signal.SIGUSR1, lambda: None)
        except Exception as exc:
            errors.append(exc)
        finally:
            lp.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join(5)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


# --- SIGINT -----------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_sigint_handler_replaces_keyboard_interrupt(loop):
    calls = []
    loop.add_signal_handler(signal.SIGINT, calls.append, "int")
    os.kill(PID, signal.SIGINT)
    run_until(loop, lambda: calls)
    assert calls == ["int"]
    assert loop.remove_signal_handler(signal.SIGINT) is True
    # Removing the SIGINT handler brings KeyboardInterrupt back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.timeout(10)
def test_sigint_raises_keyboard_interrupt_out_of_run_forever(loop):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    guard = loop.call_later(3, loop.stop)
    t, sent = kill_later(signal.SIGINT, 0.2)
    try:
        where, when = run_catching_sigint(loop.run_forever, t)
    finally:
        guard.cancel()
    assert where == "in call", "KeyboardInterrupt not raised by run_forever"
    assert when - sent[0] < 0.5
    assert not loop.is_running()
    # The loop is still usable.
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


@pytest.mark.timeout(10)
def test_sigint_raises_keyboard_interrupt_out_of_run_until_complete(loop):
    async def main():
        await asyncio.sleep(3)

    t, sent = kill_later(signal.SIGINT, 0.2)
    task = loop.create_task(main())
    where, when = run_catching_sigint(
        lambda: loop.run_until_complete(task), t)
    assert where == "in call", \
        "KeyboardInterrupt not raised by run_until_complete"
    assert when - sent[0] < 0.5
    assert not loop.is_running()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


# --- Python-level signal.signal handlers --------------------------------------

@pytest.mark.timeout(10)
def test_python_handler_runs_promptly_while_loop_sleeps(loop):
    ran = []
    fut = loop.create_future()

    def handler(signum, frame):
        ran.append((signum, time.monotonic(), threading.get_ident()))
        if not fut.done():
            loop.call_soon_threadsafe(
                lambda: fut.done() or fut.set_result(None))

    signal.signal(signal.SIGUSR1, handler)
    t, sent = kill_later(signal.SIGUSR1, 0.2)

    async def main():
        sleeper = asyncio.ensure_future(asyncio.sleep(3))
        try:
            await asyncio.wait({fut, sleeper},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()

    try:
        loop.run_until_complete(main())
    finally:
        t.join()
    assert len(ran) == 1
    signum, ran_at, ident = ran[0]
    assert signum == signal.SIGUSR1
    assert ident == threading.main_thread().ident
    assert ran_at - sent[0] < 0.5


@pytest.mark.timeout(10)
def test_python_handler_exception_propagates_promptly(loop):
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGUSR1, handler)
    t, sent = kill_later(signal.SIGUSR1, 0.2)
    guard = loop.call_later(3, loop.stop)
    raised_at = None
    try:
        loop.run_forever()
    except Interrupted:
        raised_at = time.monotonic()
    finally:
        t.join()
        guard.cancel()
    assert raised_at is not None
    assert raised_at - sent[0] < 0.5
    assert not loop.is_running()


# --- asyncio.Runner's SIGINT handling -----------------------------------------

@pytest.mark.skipif(sys.version_info < (3, 11), reason="Runner is 3.11+")
@pytest.mark.timeout(10)
def test_runner_sigint_cancels_main_task(impl):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    events = []

    async def main():
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            events.append(("cancelled", time.monotonic()))
            raise

    t, sent = kill_later(signal.SIGINT, 0.2)
    with asyncio.Runner(loop_factory=impl.new_event_loop) as runner:
        where, _ = run_catching_sigint(lambda: runner.run(main()), t)
    assert where == "in call", "Runner.run() did not raise KeyboardInterrupt"
    assert len(events) == 1
    assert events[0][1] - sent[0] < 0.5
    # The runner put the default SIGINT handler back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Runner is 3.11+")
@pytest.mark.timeout(10)
def test_run_sigint_cancels_main_task(impl):
    events = []

    async def main():
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    t, _ = kill_later(signal.SIGINT, 0.2)
    t0 = time.monotonic()
    where, _ = run_catching_sigint(lambda: impl.run(main()), t)
    assert where == "in call", "run() did not raise KeyboardInterrupt"
    assert events == ["cancelled"]
    assert time.monotonic() - t0 < 2
