"""run_in_executor / set_default_executor / shutdown_default_executor."""

import asyncio
import concurrent.futures
import sys
import threading
import time
import warnings

import pytest

import _helpers


def test_run_in_default_executor(loop):
    async def main():
        fut = loop.run_in_executor(None, lambda a, b: (a + b,
                                                       threading.get_ident()),
                                   2, 3)
        assert asyncio.isfuture(fut)
        return await fut

    value, ident = loop.run_until_complete(main())
    assert value == 5
    assert ident != threading.get_ident()


def test_run_in_executor_exception(loop):
    def fail():
        raise KeyError("from thread")

    async def main():
        with pytest.raises(KeyError):
            await loop.run_in_executor(None, fail)

    loop.run_until_complete(main())


def test_run_in_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="custom-pool") as ex:
        async def main():
            return await loop.run_in_executor(
                ex, lambda: threading.current_thread().name)

        name = loop.run_until_complete(main())
    assert name.startswith("custom-pool")


def test_run_in_executor_many_jobs(loop):
    async def main():
        futs = [loop.run_in_executor(None, pow, i, 2) for i in range(200)]
        return await asyncio.gather(*futs)

    assert loop.run_until_complete(main()) == [i * i for i in range(200)]


@pytest.mark.timeout(10)
def test_executor_job_does_not_block_loop(loop):
    gate = threading.Event()
    ticks = []

    async def ticker():
        while not gate.is_set():
            ticks.append(1)
            await asyncio.sleep(0.005)

    async def main():
        t = loop.create_task(ticker())
        fut = loop.run_in_executor(None, gate.wait, 5)
        await asyncio.sleep(0.1)
        gate.set()
        await fut
        await t

    loop.run_until_complete(main())
    assert len(ticks) >= 5


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="my-default")
    try:
        loop.set_default_executor(ex)

        async def main():
            return await loop.run_in_executor(
                None, lambda: threading.current_thread().name)

        assert loop.run_until_complete(main()).startswith("my-default")
    finally:
        ex.shutdown(wait=True)


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="non-ThreadPoolExecutor is a TypeError from 3.11")
@pytest.mark.parametrize("bad", [
    object(), 1, "executor",
    pytest.param("process", id="ProcessPoolExecutor")])
def test_set_default_executor_type_check(loop, bad):
    if bad == "process":
        bad = concurrent.futures.ProcessPoolExecutor(max_workers=1)
    try:
        with pytest.raises(TypeError):
            loop.set_default_executor(bad)
    finally:
        if isinstance(bad, concurrent.futures.Executor):
            bad.shutdown(wait=True)


@pytest.mark.skipif(sys.version_info >= (3, 11),
                    reason="3.10 only warns")
def test_set_default_executor_type_check_warns_on_310(loop):
    class OtherExecutor(concurrent.futures.Executor):
        pass

    with pytest.warns(DeprecationWarning):
        loop.set_default_executor(OtherExecutor())


@pytest.mark.timeout(10)
def test_shutdown_default_executor_waits_for_jobs(loop):
    done = []

    def job():
        time.sleep(0.2)
        done.append(True)

    async def main():
        loop.run_in_executor(None, job)  # not awaited
        await asyncio.sleep(0.01)
        await loop.shutdown_default_executor()
        return list(done)

    assert loop.run_until_complete(main()) == [True]


def test_shutdown_default_executor_without_executor(loop):
    loop.run_until_complete(loop.shutdown_default_executor())


def test_default_executor_unusable_after_shutdown(loop):
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError):
        loop.run_in_executor(None, int)
    # An explicit executor still works.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        assert loop.run_until_complete(
            loop.run_in_executor(ex, int, "7")) == 7


def test_shutdown_default_executor_with_custom_default(loop):
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(ex)
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError):
        ex.submit(int)


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="shutdown_default_executor(timeout=) is 3.12+")
@pytest.mark.timeout(10)
def test_shutdown_default_executor_timeout(impl, loop):
    if impl.name == "asyncio" and \
            not _helpers.stdlib_shutdown_executor_honours_timeout():
        pytest.skip("this Python's asyncio ignores the timeout (3.12.1)")
    gate = threading.Event()

    async def main():
        loop.run_in_executor(None, gate.wait, 5)
        await asyncio.sleep(0.01)
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning):
            await loop.shutdown_default_executor(timeout=0.1)
        return time.monotonic() - t0

    try:
        elapsed = loop.run_until_complete(main())
    finally:
        gate.set()
    assert 0.05 <= elapsed < 2


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="shutdown_default_executor(timeout=) is 3.12+")
def test_shutdown_default_executor_timeout_not_needed(loop):
    async def main():
        await loop.run_in_executor(None, int)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            await loop.shutdown_default_executor(timeout=5)

    loop.run_until_complete(main())


@pytest.mark.timeout(10)
def test_close_shuts_down_default_executor_without_waiting(loop):
    """loop.close() shuts the default executor down but, like asyncio's
    BaseEventLoop.close(), does not block on running jobs; the jobs still
    finish in their threads."""
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(ex)
    gate = threading.Event()
    done = threading.Event()

    def job():
        gate.wait(5)
        done.set()

    async def main():
        loop.run_in_executor(None, job)
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    t0 = time.monotonic()
    loop.close()
    assert time.monotonic() - t0 < 1
    with pytest.raises(RuntimeError):
        ex.submit(int)
    gate.set()
    assert done.wait(5)
    ex.shutdown(wait=True)


@pytest.mark.timeout(10)
def test_run_waits_for_default_executor(impl):
    done = []

    def job():
        time.sleep(0.2)
        done.append(True)

    async def main():
        asyncio.get_running_loop().run_in_executor(None, job)
        await asyncio.sleep(0.01)

    impl.run(main())
    assert done == [True]


def test_run_in_executor_debug_mode(loop):
    loop.set_debug(True)

    async def main():
        return await loop.run_in_executor(None, sum, [1, 2, 3])

    assert loop.run_until_complete(main()) == 6


def test_run_in_executor_with_functools_partial(loop):
    import functools

    async def main():
        return await loop.run_in_executor(
            None, functools.partial(int, "ff", base=16))

    assert loop.run_until_complete(main()) == 255


def test_cancel_executor_future(loop):
    gate = threading.Event()

    async def main():
        fut = loop.run_in_executor(None, gate.wait, 5)
        await asyncio.sleep(0.01)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut

    try:
        loop.run_until_complete(main())
    finally:
        gate.set()
