"""Scheduling-side micro workloads for the uvcore benchmark runner.

Every workload is a function ``fn(loop, n) -> (ops, wall_s, cpu_s)``:
it does its set-up, then times (``time.perf_counter`` and
``time.process_time``) only the part that runs on ``loop``, and returns how
many operations ran.  ``ops`` may be a little above ``n`` because some
workloads work in whole batches.

The workloads use only public asyncio loop APIs, so they run unchanged on
asyncio, uvloop and uvcore.  They are deliberately identical for every loop:
the same Python code, the same callbacks, the same batch sizes.  Only the
number of operations per sample (``n``) is calibrated per loop, by run.py,
so that each sample lasts about the same wall time.
"""

import asyncio
import random
import threading
import time

__all__ = ["WORKLOADS", "ORDER", "EXTRA"]

# Batch sizes.  Large enough that the per-iteration cost of the loop (one
# uv_run / select per iteration) is spread over many operations, small enough
# that the ready queue stays in cache.
CALL_SOON_BATCH = 1000
TIMER_BATCH = 1000
TIMER_FIRE_EVERY = 10        # 1 timer in 10 is left to fire, the rest cancelled
TIMER_FIRE_DELAY = 0.001     # s; > 0 so that no loop can turn it into call_soon
FUTURE_BATCH = 100
SLEEP0_TASKS = 2             # "ping-pong": two tasks taking turns
TASK_BATCH = 100


def _timed(run):
    """Run ``run()`` and return (wall seconds, process CPU seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    run()
    t1 = time.perf_counter()
    c1 = time.process_time()
    return t1 - t0, c1 - c0


def _batches(n, batch):
    return max(1, -(-n // batch))   # ceil(n / batch), at least one batch


# 1. call_soon, no arguments --------------------------------------------------

def call_soon(loop, n):
    """Batches of CALL_SOON_BATCH ``loop.call_soon(cb)``; a driver callback
    queued after each batch queues the next one.  Counts callbacks run."""
    batches = _batches(n, CALL_SOON_BATCH)
    rng = range(CALL_SOON_BATCH)
    left = batches

    def cb():
        pass

    def driver():
        nonlocal left
        cs = loop.call_soon
        for _ in rng:
            cs(cb)
        left -= 1
        if left:
            cs(driver)          # runs after the whole batch (FIFO)
        else:
            cs(loop.stop)

    loop.call_soon(driver)
    wall, cpu = _timed(loop.run_forever)
    if left:
        raise RuntimeError("call_soon: loop stopped early (%d batches left)" % left)
    return batches * CALL_SOON_BATCH, wall, cpu


# 2. call_soon with two positional arguments ----------------------------------

def call_soon_2args(loop, n):
    """As call_soon, but ``loop.call_soon(cb, a, b)`` and ``cb(a, b)``."""
    batches = _batches(n, CALL_SOON_BATCH)
    rng = range(CALL_SOON_BATCH)
    left = batches
    a = object()
    b = 12345

    def cb(x, y):
        pass

    def driver():
        nonlocal left
        cs = loop.call_soon
        for _ in rng:
            cs(cb, a, b)
        left -= 1
        if left:
            cs(driver)
        else:
            cs(loop.stop)

    loop.call_soon(driver)
    wall, cpu = _timed(loop.run_forever)
    if left:
        raise RuntimeError("call_soon_2args: loop stopped early")
    return batches * CALL_SOON_BATCH, wall, cpu


# 3. call_soon_threadsafe from a producer thread --------------------------------

def call_soon_threadsafe(loop, n):
    """A producer thread calls ``loop.call_soon_threadsafe(cb)`` n times in a
    tight loop, then queues ``loop.stop``.  Time runs from starting the
    thread until the loop has run all n callbacks; counts callbacks run on
    the loop.  Both threads share the GIL (and, when pinned, one CPU), so
    this measures the wake-up path (self-pipe / uv_async) as well as the
    locked queue."""
    done = 0

    def cb():
        nonlocal done
        done += 1

    def producer():
        cst = loop.call_soon_threadsafe
        for _ in range(n):
            cst(cb)
        cst(loop.stop)

    th = threading.Thread(target=producer, name="bench-producer", daemon=True)

    def run():
        th.start()
        loop.run_forever()

    wall, cpu = _timed(run)
    th.join()
    if done != n:
        raise RuntimeError("call_soon_threadsafe: ran %d of %d callbacks" % (done, n))
    return n, wall, cpu


# 4. timer schedule + cancel churn ----------------------------------------------

_rng = random.Random(20261122)
# Pseudo-random delays (the same sequence for every loop and every run) for
# the timers that get cancelled: spread from 5 ms to 10 s so the loop's timer
# structure sees real ordering work, not a monotonic append.
_CANCEL_DELAYS = [
    _rng.uniform(0.005, 10.0)
    for _ in range(TIMER_BATCH - TIMER_BATCH // TIMER_FIRE_EVERY)
]
_N_FIRE = TIMER_BATCH // TIMER_FIRE_EVERY


def timer_churn(loop, n):
    """Batches of TIMER_BATCH ``loop.call_later(delay, cb)``: 90 % with
    pseudo-random delays of 5 ms..10 s that are cancelled one batch later
    (so ~2 batches of timers are live at any time), 10 % with a 1 ms delay
    that are left to fire.  Counts call_later calls; each one is either
    cancelled or fired before the sample ends."""
    batches = _batches(n, TIMER_BATCH)
    delays = _CANCEL_DELAYS
    nfire = range(_N_FIRE)
    expected_fired = batches * _N_FIRE
    fired = 0
    left = batches
    prev = []

    def noop():
        pass

    def on_fire():
        nonlocal fired
        fired += 1
        if fired == expected_fired:
            loop.stop()

    def driver():
        nonlocal left, prev
        cl = loop.call_later
        cur = [cl(d, noop) for d in delays]
        for _ in nfire:
            cl(TIMER_FIRE_DELAY, on_fire)
        for h in prev:
            h.cancel()
        prev = cur
        left -= 1
        if left:
            loop.call_soon(driver)
        else:
            for h in prev:
                h.cancel()
            prev = []
            # the loop stops when the last 1 ms timer has fired

    loop.call_soon(driver)
    wall, cpu = _timed(loop.run_forever)
    if fired != expected_fired or left:
        raise RuntimeError("timer_churn: %d of %d timers fired" % (fired, expected_fired))
    return batches * TIMER_BATCH, wall, cpu


# 5. sleep(0) ping-pong -----------------------------------------------------------

def sleep0(loop, n):
    """SLEEP0_TASKS tasks, each doing ``await asyncio.sleep(0)`` in a loop,
    so they take turns on the loop.  Counts task switches (sleeps)."""
    per_task = max(1, n // SLEEP0_TASKS)
    sleep = asyncio.sleep

    async def worker():
        for _ in range(per_task):
            await sleep(0)

    async def main():
        await asyncio.gather(*[worker() for _ in range(SLEEP0_TASKS)])

    wall, cpu = _timed(lambda: loop.run_until_complete(main()))
    return per_task * SLEEP0_TASKS, wall, cpu


# 6. future resolve -----------------------------------------------------------------

def future_resolve(loop, n):
    """One task, in batches of FUTURE_BATCH: ``fut = loop.create_future()``
    and ``loop.call_soon(fut.set_result, i)`` for each, then ``await`` each
    future in turn (the first await suspends until the loop has run the
    set_result callbacks; the rest find their future done).  Counts futures
    created, resolved and awaited."""
    batches = _batches(n, FUTURE_BATCH)
    rng = range(FUTURE_BATCH)

    async def main():
        cf = loop.create_future
        cs = loop.call_soon
        total = 0
        for _ in range(batches):
            futs = []
            for i in rng:
                f = cf()
                cs(f.set_result, i)
                futs.append(f)
            for f in futs:
                total += await f
        return total

    result = None

    def run():
        nonlocal result
        result = loop.run_until_complete(main())

    wall, cpu = _timed(run)
    if result != batches * sum(rng):
        raise RuntimeError("future_resolve: wrong results")
    return batches * FUTURE_BATCH, wall, cpu


# 7. task create + await -------------------------------------------------------------

async def _trivial():
    return 1


def task_create(loop, n):
    """One task, in batches of TASK_BATCH: ``t = loop.create_task(coro())``
    for each, then ``await`` each task in turn; ``coro`` returns at once.
    (The first await suspends until the loop has run the batch; the rest find
    their task done.)  Counts tasks created, run and awaited."""
    batches = _batches(n, TASK_BATCH)
    rng = range(TASK_BATCH)
    coro = _trivial

    async def main():
        ct = loop.create_task
        total = 0
        for _ in range(batches):
            tasks = [ct(coro()) for _ in rng]
            for t in tasks:
                total += await t
        return total

    result = None

    def run():
        nonlocal result
        result = loop.run_until_complete(main())

    wall, cpu = _timed(run)
    if result != batches * TASK_BATCH:
        raise RuntimeError("task_create: wrong results")
    return batches * TASK_BATCH, wall, cpu


def task_create_seq(loop, n):
    """Optional extra (no target): one task doing ``await
    loop.create_task(coro())`` n times, strictly one at a time, so every task
    costs two loop iterations.  Dominated by per-iteration overhead."""
    coro = _trivial

    async def main():
        ct = loop.create_task
        total = 0
        for _ in range(n):
            total += await ct(coro())
        return total

    result = None

    def run():
        nonlocal result
        result = loop.run_until_complete(main())

    wall, cpu = _timed(run)
    if result != n:
        raise RuntimeError("task_create_seq: wrong results")
    return n, wall, cpu


# name -> (function, unit, short description, warm-up n)
WORKLOADS = {
    "call_soon": (call_soon, "callbacks/s",
                  "call_soon(cb), batches of %d" % CALL_SOON_BATCH, 20000),
    "call_soon_2args": (call_soon_2args, "callbacks/s",
                        "call_soon(cb, a, b), batches of %d" % CALL_SOON_BATCH, 20000),
    "call_soon_threadsafe": (call_soon_threadsafe, "callbacks/s",
                             "call_soon_threadsafe(cb) from a producer thread", 20000),
    "timer_churn": (timer_churn, "timers/s",
                    "call_later + cancel (90%) / fire (10%)", 10000),
    "sleep0": (sleep0, "switches/s",
               "%d tasks: await asyncio.sleep(0)" % SLEEP0_TASKS, 10000),
    "future_resolve": (future_resolve, "futures/s",
                       "create_future, call_soon(set_result), await", 10000),
    "task_create": (task_create, "tasks/s",
                    "create_task(trivial coro) x%d, await each" % TASK_BATCH, 10000),
    # optional, not run unless named in --workloads:
    "task_create_seq": (task_create_seq, "tasks/s",
                        "await create_task(trivial coro), one at a time", 5000),
}
# the default set, in report order
ORDER = ["call_soon", "call_soon_2args", "call_soon_threadsafe", "timer_churn",
         "sleep0", "future_resolve", "task_create"]
EXTRA = ["task_create_seq"]
