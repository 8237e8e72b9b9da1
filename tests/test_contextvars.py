"""contextvars support: callbacks and tasks run in the right Context."""

import asyncio
import contextvars
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


def test_callback_context_already_entered(loop):
    """Running a callback in a Context that is already entered fails the
    same way under every loop: the RuntimeError goes to the exception
    handler and the loop carries on."""
    ctx = contextvars.copy_context()
    got = []
    calls = []
    loop.set_exception_handler(lambda lp, c: got.append(c))

    def run_in_ctx():
        loop.call_soon(calls.append, "inside", context=ctx)
        loop.call_soon(calls.append, "plain")
        loop.call_soon(loop.stop)
        loop.run_forever()

    ctx.run(run_in_ctx)
    assert calls == ["plain"]
    assert len(got) == 1
    assert isinstance(got[0]["exception"], RuntimeError)


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
