"""call_later / call_at, TimerHandle and loop.time()."""

import asyncio
import random
import time

import pytest

from _helpers import run_briefly, run_until


def test_time_is_monotonic_clock(loop):
    for _ in range(100):
        t0 = time.monotonic()
        lt = loop.time()
        t1 = time.monotonic()
        assert t0 <= lt <= t1


def test_time_has_sub_millisecond_resolution(loop):
    values = set()
    for _ in range(200):
        values.add(loop.time())
        time.sleep(0.0001)
    # A millisecond clock would give at most a few dozen distinct values,
    # all whole numbers of milliseconds.
    assert len(values) > 100
    assert any(abs(v * 1000 - round(v * 1000)) > 1e-6 for v in values)


def test_time_advances_inside_a_callback(loop):
    seen = []

    def cb():
        t0 = loop.time()
        time.sleep(0.02)
        seen.append(loop.time() - t0)

    loop.call_soon(cb)
    run_briefly(loop)
    # loop.time() is not a per-iteration cached value.
    assert seen[0] >= 0.02


def test_call_later_runs_callback_with_args(loop):
    calls = []
    loop.call_later(0.01, calls.append, "x")
    run_until(loop, lambda: calls)
    assert calls == ["x"]


def test_call_at_runs_callback_with_args(loop):
    calls = []

    def cb(a, b):
        calls.append((a, b))

    loop.call_at(loop.time() + 0.01, cb, 1, 2)
    run_until(loop, lambda: calls)
    assert calls == [(1, 2)]


def test_ordering_by_deadline(loop):
    calls = []
    delays = [0.05, 0.01, 0.04, 0.02, 0.03, 0.0]
    for d in delays:
        loop.call_later(d, calls.append, d)
    run_until(loop, lambda: len(calls) == len(delays))
    assert calls == sorted(delays)


def test_ordering_by_call_at_deadline(loop):
    calls = []
    base = loop.time()
    offsets = [0.03, 0.01, 0.02, 0.005, 0.025]
    for off in offsets:
        loop.call_at(base + off, calls.append, off)
    run_until(loop, lambda: len(calls) == len(offsets))
    assert calls == sorted(offsets)


def test_equal_delays_keep_scheduling_order(loop):
    calls = []
    for i in range(100):
        loop.call_later(0.01, calls.append, i)
    run_until(loop, lambda: len(calls) == 100)
    assert calls == list(range(100))


def test_timer_never_runs_before_its_deadline(loop):
    records = []

    def cb(handle_box):
        records.append((loop.time(), time.monotonic(), handle_box[0].when()))

    delays = [0.0, 0.001, 0.002, 0.005, 0.0105, 0.015, 0.02, 0.03, 0.0333]
    for d in delays * 3:
        box = []
        box.append(loop.call_later(d, cb, box))
    for d in delays:
        box = []
        box.append(loop.call_at(loop.time() + d, cb, box))
    total = len(delays) * 4
    run_until(loop, lambda: len(records) == total)
    for lt, mono, when in records:
        assert lt >= when
        assert mono >= when


def test_sleep_never_returns_early(loop):
    async def main():
        for d in (0.001, 0.005, 0.01, 0.0151):
            t0 = loop.time()
            await asyncio.sleep(d)
            assert loop.time() - t0 >= d

    loop.run_until_complete(main())


def test_timers_fire_reasonably_on_time(loop):
    fired = []
    start = loop.time()
    loop.call_later(0.1, lambda: fired.append(loop.time()))
    run_until(loop, lambda: fired)
    assert 0.1 <= fired[0] - start < 0.6


def test_call_later_zero_returns_timer_handle(loop):
    calls = []
    t0 = loop.time()
    h = loop.call_later(0, calls.append, 1)
    t1 = loop.time()
    assert type(h).__name__ == "TimerHandle"
    assert t0 <= h.when() <= t1
    assert h.cancelled() is False
    run_until(loop, lambda: calls)
    assert calls == [1]


def test_when_of_call_later(loop):
    t0 = loop.time()
    h = loop.call_later(10.5, lambda: None)
    t1 = loop.time()
    assert t0 + 10.5 <= h.when() <= t1 + 10.5
    h.cancel()


def test_when_of_call_at_is_exact(loop):
    when = loop.time() + 123.456
    h = loop.call_at(when, lambda: None)
    assert h.when() == when
    h.cancel()
    assert h.when() == when


def test_integer_delays_accepted(loop):
    calls = []
    loop.call_later(0, calls.append, "later")
    loop.call_at(int(loop.time()), calls.append, "at")
    run_until(loop, lambda: len(calls) == 2)
    assert sorted(calls) == ["at", "later"]


def test_negative_delay_runs_promptly(loop):
    calls = []
    t0 = loop.time()
    h = loop.call_later(-5, calls.append, "neg")
    assert h.when() <= t0 - 5 + 0.5
    loop.call_later(0.05, calls.append, "pos")
    run_until(loop, lambda: len(calls) == 2)
    assert calls == ["neg", "pos"]
    assert loop.time() - t0 < 1


def test_call_at_in_the_past_runs_promptly(loop):
    calls = []
    t0 = loop.time()
    loop.call_at(t0 - 100, calls.append, "past")
    loop.call_at(t0 + 0.05, calls.append, "future")
    run_until(loop, lambda: len(calls) == 2)
    assert calls == ["past", "future"]
    assert loop.time() - t0 < 1


def test_cancelled_timer_does_not_run(loop):
    calls = []
    h = loop.call_later(0.01, calls.append, "cancelled")
    loop.call_later(0.03, calls.append, "kept")
    h.cancel()
    assert h.cancelled()
    run_until(loop, lambda: calls)
    run_briefly(loop)
    assert calls == ["kept"]


def test_timer_cancelled_by_earlier_timer(loop):
    calls = []
    late = []

    def first():
        calls.append("first")
        late[0].cancel()

    loop.call_later(0.02, first)
    late.append(loop.call_later(0.0201, calls.append, "second"))
    loop.call_later(0.05, calls.append, "third")
    run_until(loop, lambda: "third" in calls)
    assert calls == ["first", "third"]


def test_timer_scheduled_from_callback_earlier_than_pending(loop):
    calls = []

    def schedule():
        loop.call_later(0.01, calls.append, "short")

    loop.call_later(0.5, calls.append, "long")
    loop.call_soon(schedule)
    t0 = loop.time()
    run_until(loop, lambda: calls)
    assert calls == ["short"]
    assert loop.time() - t0 < 0.4


def test_timer_exception_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    calls = []

    def bad():
        raise RuntimeError("timer boom")

    h = loop.call_later(0.001, bad)
    loop.call_later(0.01, calls.append, "next")
    run_until(loop, lambda: calls)
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], RuntimeError)
    assert contexts[0]["handle"] is h


@pytest.mark.timeout(30)
def test_many_timers_with_cancellations(loop):
    rnd = random.Random(12345)
    fired = []
    handles = {}
    for i in range(2000):
        d = rnd.uniform(0, 0.1)
        handles[i] = loop.call_later(d, lambda i=i: fired.append(
            (i, loop.time(), handles[i].when())))
    cancelled = set(rnd.sample(sorted(handles), 1000))
    for i in cancelled:
        handles[i].cancel()

    # Timers cancelling other timers while the loop runs.
    def canceller():
        for i in rnd.sample(sorted(set(handles) - cancelled), 200):
            if not any(f[0] == i for f in fired):
                handles[i].cancel()
                cancelled.add(i)

    loop.call_later(0.05, canceller)
    run_until(loop, lambda: len(fired) >= len(handles) - len(cancelled),
              timeout=10)
    run_briefly(loop, 3)
    ids = [f[0] for f in fired]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(handles) - cancelled
    whens = [f[2] for f in fired]
    assert whens == sorted(whens)
    for _, now, when in fired:
        assert now >= when


@pytest.mark.timeout(20)
def test_many_sleeping_tasks(loop):
    rnd = random.Random(7)

    async def sleeper(d):
        t0 = loop.time()
        await asyncio.sleep(d)
        return loop.time() - t0 >= d

    async def main():
        return await asyncio.gather(
            *(sleeper(rnd.uniform(0, 0.05)) for _ in range(1000)))

    assert all(loop.run_until_complete(main()))


@pytest.mark.parametrize("delay", [1e9, 2 ** 64, 1e300])
def test_huge_delay(loop, delay):
    calls = []
    t0 = loop.time()
    h = loop.call_later(delay, calls.append, "never")
    assert h.when() >= t0 + delay * 0.999
    loop.call_later(0.02, calls.append, "soon")
    run_until(loop, lambda: calls)
    assert calls == ["soon"]
    assert loop.time() - t0 < 1
    h.cancel()
    assert h.cancelled()
    run_briefly(loop)
    assert calls == ["soon"]


def test_huge_call_at(loop):
    calls = []
    h = loop.call_at(loop.time() + 1e12, calls.append, "never")
    loop.call_soon(calls.append, "now")
    run_briefly(loop)
    assert calls == ["now"]
    h.cancel()


@pytest.mark.timeout(10)
def test_sleep_huge_can_be_cancelled(loop):
    async def main():
        task = asyncio.ensure_future(asyncio.sleep(1e9))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.monotonic()
    loop.run_until_complete(main())
    assert time.monotonic() - t0 < 2


def test_timer_handle_repr_mentions_callback(loop):
    def my_timer_callback():
        pass

    h = loop.call_later(10, my_timer_callback)
    assert "my_timer_callback" in repr(h)
    h.cancel()


def test_pending_timer_does_not_keep_run_until_complete_alive(loop):
    loop.call_later(60, lambda: None)

    async def main():
        await asyncio.sleep(0.01)
        return 5

    t0 = time.monotonic()
    assert loop.run_until_complete(main()) == 5
    assert time.monotonic() - t0 < 2


def test_call_later_with_context(loop):
    import contextvars

    var = contextvars.ContextVar("v", default=None)
    ctx = contextvars.copy_context()
    ctx.run(var.set, "timer-ctx")
    seen = []
    loop.call_later(0.001, lambda: seen.append(var.get()), context=ctx)
    loop.call_at(loop.time(), lambda: seen.append(var.get()), context=ctx)
    run_until(loop, lambda: len(seen) == 2)
    assert seen == ["timer-ctx", "timer-ctx"]
