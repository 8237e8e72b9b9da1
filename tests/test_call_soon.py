"""loop.call_soon: ordering, arguments, handles, cancellation, errors."""

import asyncio
import contextvars
import functools
import threading

import pytest

from _helpers import run_briefly


def test_callbacks_run_in_fifo_order(loop):
    calls = []
    for i in range(1000):
        loop.call_soon(calls.append, i)
    run_briefly(loop)
    assert calls == list(range(1000))


def test_positional_args_are_passed(loop):
    calls = []

    def cb(*args):
        calls.append(args)

    loop.call_soon(cb)
    loop.call_soon(cb, 1)
    loop.call_soon(cb, "a", None, 3.5, [1])
    run_briefly(loop)
    assert calls == [(), (1,), ("a", None, 3.5, [1])]


def test_partial_with_keywords(loop):
    calls = []

    def cb(a, *, b):
        calls.append((a, b))

    loop.call_soon(functools.partial(cb, 1, b=2))
    run_briefly(loop)
    assert calls == [(1, 2)]


def test_keyword_arguments_to_callback_rejected(loop):
    with pytest.raises(TypeError):
        loop.call_soon(print, end="")


def test_returns_handle(loop):
    h = loop.call_soon(lambda: None)
    assert callable(h.cancel)
    assert h.cancelled() is False
    run_briefly(loop)
    assert h.cancelled() is False


def test_cancel_before_run(loop):
    calls = []
    h1 = loop.call_soon(calls.append, 1)
    h2 = loop.call_soon(calls.append, 2)
    loop.call_soon(calls.append, 3)
    h2.cancel()
    assert h2.cancelled()
    assert not h1.cancelled()
    run_briefly(loop)
    assert calls == [1, 3]


def test_cancel_twice_is_harmless(loop):
    calls = []
    h = loop.call_soon(calls.append, 1)
    h.cancel()
    h.cancel()
    assert h.cancelled()
    run_briefly(loop)
    assert calls == []


def test_callback_cancels_a_later_ready_callback(loop):
    calls = []
    handles = []

    def first():
        calls.append("first")
        handles[0].cancel()

    loop.call_soon(first)
    handles.append(loop.call_soon(calls.append, "second"))
    loop.call_soon(calls.append, "third")
    run_briefly(loop)
    assert calls == ["first", "third"]


def test_callbacks_added_during_run_go_to_next_iteration(loop):
    calls = []

    def a():
        calls.append("a")
        loop.call_soon(calls.append, "c")
        # stop() while running: the current batch finishes, "c" waits.
        loop.stop()

    loop.call_soon(a)
    loop.call_soon(calls.append, "b")
    loop.run_forever()
    assert calls == ["a", "b"]
    run_briefly(loop)
    assert calls == ["a", "b", "c"]


def test_order_across_iterations(loop):
    calls = []

    def a():
        calls.append("a")
        loop.call_soon(calls.append, "c")

    loop.call_soon(a)
    loop.call_soon(calls.append, "b")
    run_briefly(loop, 2)
    assert calls == ["a", "b", "c"]


def test_self_rescheduling_callback_does_not_starve_others(loop):
    calls = []

    def spinner(n):
        calls.append(("spin", n))
        if n < 50:
            loop.call_soon(spinner, n + 1)

    loop.call_soon(spinner, 0)
    loop.call_soon(calls.append, ("other", 0))
    run_briefly(loop, 60)
    assert calls[:2] == [("spin", 0), ("other", 0)]
    assert [c for c in calls if c[0] == "spin"] == [
        ("spin", n) for n in range(51)]


def test_callback_runs_in_loop_thread_with_running_loop(loop):
    seen = []

    def cb():
        seen.append((threading.get_ident(), asyncio.get_running_loop()))

    loop.call_soon(cb)
    run_briefly(loop)
    assert seen == [(threading.get_ident(), loop)]


def test_exception_goes_to_handler_and_loop_continues(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append((lp, ctx)))
    calls = []
    err = ZeroDivisionError("boom")

    def bad():
        raise err

    h = loop.call_soon(bad)
    loop.call_soon(calls.append, "after")
    run_briefly(loop)
    assert calls == ["after"]
    assert len(contexts) == 1
    lp, ctx = contexts[0]
    assert lp is loop
    assert ctx["exception"] is err
    assert ctx["handle"] is h
    assert isinstance(ctx["message"], str) and ctx["message"]


def test_many_failing_callbacks_all_reported(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def bad(i):
        raise ValueError(i)

    for i in range(20):
        loop.call_soon(bad, i)
    run_briefly(loop)
    assert [c["exception"].args[0] for c in contexts] == list(range(20))


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_out_of_run_forever(loop, exc_type):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    calls = []

    def bad():
        raise exc_type()

    loop.call_soon(bad)
    loop.call_soon(calls.append, "later")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    assert contexts == []
    # The loop is still usable afterwards and keeps its pending callbacks.
    run_briefly(loop)
    assert calls == ["later"]


def test_default_context_is_copied_at_schedule_time(loop):
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    def cb():
        seen.append(var.get())
        var.set("changed in callback")

    token = var.set("at schedule")
    try:
        loop.call_soon(cb)
        var.set("after schedule")
        run_briefly(loop)
        assert seen == ["at schedule"]
        assert var.get() == "after schedule"
    finally:
        var.reset(token)


def test_explicit_context(loop):
    var = contextvars.ContextVar("var", default="unset")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    seen = []

    def cb(x):
        seen.append((x, var.get()))
        var.set("written by cb")

    loop.call_soon(cb, 1, context=ctx)
    run_briefly(loop)
    assert seen == [(1, "in ctx")]
    assert ctx[var] == "written by cb"
    assert var.get() == "unset"


def test_call_soon_in_debug_mode(loop):
    loop.set_debug(True)
    calls = []
    loop.call_soon(calls.append, 1)
    run_briefly(loop)
    assert calls == [1]
