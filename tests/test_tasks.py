"""create_future / create_task / task factories / cancellation."""

import asyncio
import sys

import pytest

from _helpers import run_briefly


# --- futures -------------------------------------------------------------------

def test_create_future(loop):
    fut = loop.create_future()
    assert asyncio.isfuture(fut)
    assert fut.get_loop() is loop
    assert not fut.done()
    fut.set_result(3)
    assert fut.result() == 3


def test_future_done_callback_runs_through_loop(loop):
    fut = loop.create_future()
    calls = []
    fut.add_done_callback(lambda f: calls.append(f.result()))
    fut.set_result("r")
    assert calls == []  # scheduled, not called synchronously
    run_briefly(loop)
    assert calls == ["r"]


def test_await_future_set_from_callback(loop):
    async def main():
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, "from timer")
        return await fut

    assert loop.run_until_complete(main()) == "from timer"


# --- create_task -----------------------------------------------------------

def test_create_task_returns_a_task(loop):
    async def coro():
        return 1

    task = loop.create_task(coro())
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) == 1


def test_task_starts_only_when_loop_runs(loop):
    calls = []

    async def coro():
        calls.append("ran")

    task = loop.create_task(coro())
    assert calls == []
    loop.run_until_complete(task)
    assert calls == ["ran"]


def test_create_task_name(loop):
    async def coro():
        pass

    named = loop.create_task(coro(), name="my-task")
    default = loop.create_task(coro())
    assert named.get_name() == "my-task"
    assert default.get_name().startswith("Task-")
    loop.run_until_complete(asyncio.gather(named, default))


def test_create_task_name_non_string(loop):
    async def coro():
        pass

    task = loop.create_task(coro(), name=123)
    assert task.get_name() == "123"
    loop.run_until_complete(task)


@pytest.mark.parametrize("bad", [123, None, lambda: None])
def test_create_task_requires_coroutine(loop, bad):
    with pytest.raises(TypeError):
        loop.create_task(bad)


def test_current_task_and_all_tasks(loop):
    async def main():
        me = asyncio.current_task()
        assert asyncio.current_task(loop) is me
        assert me in asyncio.all_tasks()
        assert me in asyncio.all_tasks(loop)
        return me

    task = loop.create_task(main())
    assert loop.run_until_complete(task) is task
    assert asyncio.current_task(loop) is None


def test_gather_many_tasks(loop):
    async def work(i):
        for _ in range(3):
            await asyncio.sleep(0)
        return i * 2

    async def main():
        return await asyncio.gather(*(loop.create_task(work(i))
                                      for i in range(2000)))

    assert loop.run_until_complete(main()) == [i * 2 for i in range(2000)]


def test_tasks_interleave(loop):
    log = []

    async def worker(name):
        for i in range(3):
            log.append((name, i))
            await asyncio.sleep(0)

    loop.run_until_complete(asyncio.gather(worker("a"), worker("b")))
    assert log == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2),
                   ("b", 2)]


# --- cancellation -------------------------------------------------------------

def test_cancel_sleeping_task(loop):
    state = []

    async def sleeper():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            state.append("cancelled")
            raise

    async def main():
        t = loop.create_task(sleeper())
        await asyncio.sleep(0.01)
        assert t.cancel() is True
        with pytest.raises(asyncio.CancelledError):
            await t
        assert t.cancelled()
        assert t.cancel() is False  # already done

    loop.run_until_complete(main())
    assert state == ["cancelled"]


def test_cancel_with_message(loop):
    inner_args = []

    async def sleeper():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            inner_args.append(exc.args)
            raise

    async def main():
        t = loop.create_task(sleeper())
        await asyncio.sleep(0)
        t.cancel("the reason")
        try:
            await t
        except asyncio.CancelledError as exc:
            return exc.args

    outer_args = loop.run_until_complete(main())
    assert inner_args == [("the reason",)]
    if sys.version_info >= (3, 11):  # 3.10 drops the message here
        assert outer_args == ("the reason",)


def test_cancel_before_first_step(loop):
    ran = []

    async def coro():
        ran.append(1)

    task = loop.create_task(coro())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert ran == []


def test_run_until_complete_cancelled_task(loop):
    async def main():
        await asyncio.sleep(10)

    task = loop.create_task(main())
    loop.call_later(0.01, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


def test_wait_for_timeout(loop):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.02)
        return "timed out"

    assert loop.run_until_complete(main()) == "timed out"


def test_shield(loop):
    async def inner():
        await asyncio.sleep(0.02)
        return "inner done"

    async def main():
        t = loop.create_task(inner())
        outer = asyncio.ensure_future(asyncio.shield(t))
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return await t

    assert loop.run_until_complete(main()) == "inner done"


def test_wait_first_completed(loop):
    async def main():
        fast = loop.create_task(asyncio.sleep(0.01, "fast"))
        slow = loop.create_task(asyncio.sleep(10, "slow"))
        done, pending = await asyncio.wait(
            {fast, slow}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {fast} and pending == {slow}
        slow.cancel()
        return fast.result()

    assert loop.run_until_complete(main()) == "fast"


# --- task factory -------------------------------------------------------------

def test_task_factory_default_none(loop):
    assert loop.get_task_factory() is None


def test_set_task_factory(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append((lp, coro))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def coro():
        return "factory made"

    c = coro()
    task = loop.create_task(c)
    assert calls == [(loop, c)]
    assert loop.run_until_complete(task) == "factory made"


def test_task_factory_with_name(loop):
    def factory(lp, coro, **kwargs):
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)

    async def coro():
        pass

    task = loop.create_task(coro(), name="through-factory")
    assert task.get_name() == "through-factory"
    loop.run_until_complete(task)


def test_task_factory_custom_class(loop):
    class MyTask(asyncio.Task):
        pass

    loop.set_task_factory(lambda lp, coro, **kw: MyTask(coro, loop=lp, **kw))

    async def child():
        return 1

    async def main():
        # ensure_future goes through loop.create_task, hence the factory.
        t = asyncio.ensure_future(child())
        assert type(t) is MyTask
        return await t

    main_task = loop.create_task(main())
    assert type(main_task) is MyTask
    assert loop.run_until_complete(main_task) == 1


def test_task_factory_reset_with_none(loop):
    class MyTask(asyncio.Task):
        pass

    loop.set_task_factory(lambda lp, coro, **kw: MyTask(coro, loop=lp, **kw))
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None

    async def coro():
        pass

    task = loop.create_task(coro())
    assert type(task) is not MyTask
    loop.run_until_complete(task)


@pytest.mark.parametrize("bad", [1, "factory", object()])
def test_set_task_factory_non_callable(loop, bad):
    with pytest.raises(TypeError):
        loop.set_task_factory(bad)
    assert loop.get_task_factory() is None


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="create_task(context=) is 3.11+")
def test_task_factory_receives_context(loop):
    import contextvars

    got = {}

    def factory(lp, coro, **kwargs):
        got.update(kwargs)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()

    async def coro():
        pass

    task = loop.create_task(coro(), context=ctx)
    assert got.get("context") is ctx
    loop.run_until_complete(task)


# --- eager tasks ----------------------------------------------------------------

needs_eager = pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"),
    reason="eager tasks are 3.12+")


@needs_eager
def test_eager_task_factory(loop):
    log = []

    async def coro():
        log.append("started")
        await asyncio.sleep(0)
        log.append("resumed")
        return "eager"

    async def main():
        loop.set_task_factory(asyncio.eager_task_factory)
        t = loop.create_task(coro())
        log.append("created")
        return await t

    assert loop.run_until_complete(main()) == "eager"
    assert log == ["started", "created", "resumed"]


@needs_eager
def test_eager_task_completing_synchronously(loop):
    async def coro():
        return "sync"

    async def main():
        loop.set_task_factory(asyncio.eager_task_factory)
        t = loop.create_task(coro())
        assert t.done()
        return t.result()

    assert loop.run_until_complete(main()) == "sync"


def _stdlib_create_task_takes_eager_start():
    import inspect

    params = inspect.signature(asyncio.BaseEventLoop.create_task).parameters
    return "eager_start" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory")
                    or not _stdlib_create_task_takes_eager_start(),
                    reason="loop.create_task(eager_start=) needs 3.14+")
def test_create_task_eager_start(loop):
    log = []

    async def coro():
        log.append("started")
        await asyncio.sleep(0)
        return 1

    async def main():
        t = loop.create_task(coro(), eager_start=True)
        log.append("created")
        lazy = loop.create_task(coro(), eager_start=False)
        log.append("created lazy")
        return await asyncio.gather(t, lazy)

    assert loop.run_until_complete(main()) == [1, 1]
    assert log == ["started", "created", "created lazy", "started"]


def test_run_until_complete_many_tasks_then_clean(loop):
    async def forever():
        await asyncio.sleep(3600)

    tasks = [loop.create_task(forever()) for _ in range(100)]
    run_briefly(loop)
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    assert all(t.cancelled() for t in tasks)
    assert not set(tasks) & asyncio.all_tasks(loop)
