"""Asynchronous generator hooks and loop.shutdown_asyncgens()."""

import asyncio
import gc
import sys
import warnings

import pytest

from _helpers import run_briefly


def test_hooks_installed_only_while_running(loop):
    def my_firstiter(agen):
        pass

    def my_finalizer(agen):
        pass

    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=my_firstiter, finalizer=my_finalizer)
    try:
        inside = []

        async def main():
            inside.append(sys.get_asyncgen_hooks())

        loop.run_until_complete(main())
        firstiter, finalizer = inside[0]
        assert firstiter is not None and finalizer is not None
        assert firstiter is not my_firstiter
        assert finalizer is not my_finalizer
        after = sys.get_asyncgen_hooks()
        assert after.firstiter is my_firstiter
        assert after.finalizer is my_finalizer
    finally:
        sys.set_asyncgen_hooks(*old)


def test_hooks_restored_after_exception(loop):
    old = sys.get_asyncgen_hooks()

    async def main():
        raise ValueError()

    with pytest.raises(ValueError):
        loop.run_until_complete(main())
    assert sys.get_asyncgen_hooks() == old


def test_shutdown_asyncgens_finalizes_unfinished_generator(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append(("finally", asyncio.get_running_loop() is loop))

    gen = agen()

    async def main():
        assert await gen.__anext__() == 1

    loop.run_until_complete(main())
    assert events == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert events == [("finally", True)]


def test_shutdown_asyncgens_can_await_in_finally(loop):
    events = []

    async def agen():
        try:
            yield 1
        finally:
            await asyncio.sleep(0.01)
            events.append("cleaned")

    gens = [agen() for _ in range(10)]

    async def main():
        for g in gens:
            await g.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert events == ["cleaned"] * 10


def test_shutdown_asyncgens_ignores_finished_and_unstarted(loop):
    async def agen():
        yield 1

    finished = agen()
    unstarted = agen()

    async def main():
        async for _ in finished:
            pass

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    unstarted.aclose().close()


def test_shutdown_asyncgens_twice_and_without_generators(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_asyncgens())


def test_shutdown_asyncgens_error_goes_to_handler(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))

    async def agen():
        try:
            yield 1
        finally:
            raise ZeroDivisionError("in finally")

    gen = agen()

    async def main():
        await gen.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(got) == 1
    assert isinstance(got[0]["exception"], ZeroDivisionError)
    assert got[0]["asyncgen"] is gen


def test_abandoned_generator_finalized_by_loop(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            events.append(asyncio.get_running_loop() is loop)

    async def main():
        g = agen()
        await g.__anext__()
        del g
        gc.collect()
        for _ in range(20):
            if events:
                break
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == [True]


def test_generator_iterated_after_shutdown_warns(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())

    async def agen():
        yield 1

    gen = agen()

    async def main():
        return await gen.__anext__()

    with pytest.warns(ResourceWarning):
        assert loop.run_until_complete(main()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop.run_until_complete(gen.aclose())


def test_async_for_over_generator_with_sleep(loop):
    async def ticker(n):
        for i in range(n):
            await asyncio.sleep(0.001)
            yield i

    async def main():
        return [i async for i in ticker(20)]

    assert loop.run_until_complete(main()) == list(range(20))


def test_run_cleans_up_generators(impl):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("closed")

    holder = []

    async def main():
        g = agen()
        holder.append(g)
        await g.__anext__()

    impl.run(main())
    assert events == ["closed"]


def test_generator_closed_explicitly_is_not_finalized_twice(loop):
    events = []

    async def agen():
        try:
            yield 1
        finally:
            events.append("finally")

    async def main():
        g = agen()
        await g.__anext__()
        await g.aclose()
        return g

    g = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert events == ["finally"]
    del g
    gc.collect()
    run_briefly(loop)
    assert events == ["finally"]
