"""contextvars support: callbacks and tasks run in the right Context."""

import asyncio
import contextvars
import gc
import logging
import sys
import threading

import pytest

from _helpers import run_briefly, run_until

var = contextvars.ContextVar("uvcore_test_var", default="default")

needs_task_context = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")


def _ctx_with(value):
    ctx = contextvars.copy_context()
    ctx.run(var.set, value)
    return ctx


def test_call_soon_context(loop):
    ctx = _ctx_with("soon")
    seen = []
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    run_briefly(loop)
    assert seen == ["soon"]


def test_call_soon_context_none_means_current(loop):
    seen = []
    token = var.set("current")
    try:
        loop.call_soon(lambda: seen.append(var.get()), context=None)
    finally:
        var.reset(token)
    run_briefly(loop)
    assert seen == ["current"]


def test_call_later_and_call_at_context(loop):
    ctx = _ctx_with("timer")
    seen = []
    loop.call_later(0.001, lambda: seen.append(("later", var.get())),
                    context=ctx)
    loop.call_at(loop.time() + 0.002,
                 lambda: seen.append(("at", var.get())), context=ctx)
    run_until(loop, lambda: len(seen) == 2)
    assert seen == [("later", "timer"), ("at", "timer")]


def test_call_soon_threadsafe_context(loop):
    ctx = _ctx_with("threadsafe")
    seen = []

    def in_thread():
        loop.call_soon_threadsafe(lambda: seen.append(var.get()), context=ctx)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    run_briefly(loop)
    assert seen == ["threadsafe"]


def test_writes_in_callback_land_in_given_context(loop):
    ctx = _ctx_with("before")

    def cb():
        var.set("after")

    loop.call_soon(cb, context=ctx)
    loop.call_later(0.001, cb, context=ctx)
    run_until(loop, lambda: ctx[var] == "after")
    assert ctx[var] == "after"
    assert var.get() == "default"


def test_same_context_shared_by_several_callbacks(loop):
    ctx = _ctx_with(0)
    seen = []

    def incr():
        var.set(var.get() + 1)
        seen.append(var.get())

    for _ in range(5):
        loop.call_soon(incr, context=ctx)
    run_briefly(loop)
    assert seen == [1, 2, 3, 4, 5]
    assert ctx[var] == 5


def test_callbacks_without_context_are_isolated(loop):
    seen = []

    def writer():
        var.set("leaked?")

    def reader():
        seen.append(var.get())

    loop.call_soon(writer)
    loop.call_soon(reader)
    run_briefly(loop)
    assert seen == ["default"]
    assert var.get() == "default"


def test_task_copies_context_at_creation(loop):
    seen = []

    async def child():
        seen.append(var.get())
        await asyncio.sleep(0)
        seen.append(var.get())
        var.set("set in child")

    async def main():
        var.set("parent value")
        t = asyncio.ensure_future(child())
        var.set("changed after create")
        await t
        seen.append(var.get())

    loop.run_until_complete(main())
    assert seen == ["parent value", "parent value", "changed after create"]


@needs_task_context
def test_create_task_with_context(loop):
    ctx = _ctx_with("task ctx")
    seen = []

    async def coro():
        seen.append(var.get())
        await asyncio.sleep(0.001)
        seen.append(var.get())
        var.set("written by task")

    task = loop.create_task(coro(), context=ctx)
    loop.run_until_complete(task)
    assert seen == ["task ctx", "task ctx"]
    assert ctx[var] == "written by task"
    assert var.get() == "default"


def test_context_survives_many_steps(loop):
    async def step_n(n, value):
        var.set(value)
        for _ in range(n):
            await asyncio.sleep(0)
            assert var.get() == value
        return value

    async def main():
        return await asyncio.gather(*(step_n(20, i) for i in range(50)))

    assert loop.run_until_complete(main()) == list(range(50))


def test_callback_context_already_entered(loop, caplog):
    """Running a callback in a Context that is already entered fails the
    same way under every loop: the callback does not run, the RuntimeError
    is reported through the exception handler and the loop carries on."""
    caplog.set_level(logging.DEBUG, logger="asyncio")
    ctx = contextvars.copy_context()
    calls = []

    def run_in_ctx():
        loop.call_soon(calls.append, "inside", context=ctx)
        loop.call_soon(calls.append, "plain")
        loop.call_soon(loop.stop)
        loop.run_forever()

    ctx.run(run_in_ctx)
    assert calls == ["plain"]
    errors = [r for r in caplog.records
              if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert isinstance(errors[0].exc_info[1], RuntimeError)


needs_get_context = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="Handle.get_context() is 3.12+")


@needs_get_context
def test_handle_get_context(loop):
    ctx = _ctx_with("handle ctx")
    h = loop.call_soon(lambda: None, context=ctx)
    th = loop.call_later(10, lambda: None, context=ctx)
    assert h.get_context() is ctx
    assert th.get_context() is ctx
    default = loop.call_soon(lambda: None)
    assert isinstance(default.get_context(), contextvars.Context)
    th.cancel()
    run_briefly(loop)


@needs_get_context
def test_custom_exception_handler_runs_in_callback_context(loop):
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append(var.get()))

    def bad():
        raise ValueError()

    loop.call_soon(bad, context=_ctx_with("failing callback ctx"))
    run_briefly(loop)
    assert seen == ["failing callback ctx"]


@needs_get_context
def test_custom_exception_handler_runs_in_task_context(loop):
    seen = []
    loop.set_exception_handler(lambda lp, c: seen.append(var.get()))

    async def failing():
        var.set("task ctx value")
        raise ValueError()

    def make():
        task = loop.create_task(failing())
        run_until(loop, task.done)

    make()
    gc.collect()
    run_briefly(loop)
    assert seen == ["task ctx value"]


def test_nested_ctx_run_inside_callback_is_an_error(loop):
    ctx = contextvars.copy_context()
    results = []

    def cb():
        try:
            ctx.run(lambda: None)
        except RuntimeError:
            results.append("RuntimeError")

    loop.call_soon(cb, context=ctx)
    run_briefly(loop)
    assert results == ["RuntimeError"]


def test_run_until_complete_in_a_context(loop):
    ctx = _ctx_with("outer ctx")

    async def main():
        return var.get()

    # Tasks copy the context current when they are created.
    assert ctx.run(loop.run_until_complete, main()) == "outer ctx"


def test_run_in_executor_does_not_propagate_context(loop):
    async def main():
        var.set("main")

        def in_thread():
            return var.get()

        return await loop.run_in_executor(None, in_thread)

    # run_in_executor does not propagate the context (asyncio.to_thread
    # does), and the loop thread's own value stays unchanged.
    assert loop.run_until_complete(main()) == "default"
    assert var.get() == "default"


def test_to_thread_propagates_context(loop):
    async def main():
        var.set("propagated")
        return await asyncio.to_thread(var.get)

    assert loop.run_until_complete(main()) == "propagated"
