"""Memory safety and leaks.

Memory is measured with tracemalloc (every Python allocator, uvcore's
PyMem_Raw* allocations of libuv handles and loops included) and with counts
of live objects: gc.get_objects() for GC-tracked types, weak references for
callback objects and handles (uvcore's Handle and TimerHandle are not tracked
by the cyclic GC, so gc.get_objects() cannot see them).

Each measurement runs the scenario a few times first (warm-up: caches,
free lists, interned strings), then compares memory before and after many
more repetitions.  Bounds are far below what a leak of one small object per
repetition would add.

Scenarios that may crash the interpreter run in a child process.
"""

import collections
import contextlib
import gc
import os
import signal
import socket
import tracemalloc
import weakref

import pytest

from _helpers import run_briefly, run_python, run_until


# --- measuring --------------------------------------------------------------

@contextlib.contextmanager
def tracing():
    """Trace allocations for the duration of the block."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        yield
    finally:
        if not was_tracing:
            tracemalloc.stop()


def traced_now():
    """Bytes currently traced, after a full collection."""
    gc.collect()
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def live_counts():
    """Live GC-tracked instances of uvcore's and asyncio's classes, by type."""
    gc.collect()
    gc.collect()
    counts = collections.Counter()
    for obj in gc.get_objects():
        tp = type(obj)
        mod = getattr(tp, "__module__", None)
        if isinstance(mod, str) and mod.startswith(("uvcore", "asyncio", "concurrent")):
            counts[f"{mod}.{tp.__qualname__}"] += 1
    return counts


def grown(before, after, slack=0):
    """The types of which there are more than ``slack`` more instances."""
    return {name: after[name] - before[name] for name in after
            if after[name] - before[name] > slack}


def open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - not Linux
        return None


def measure_growth(step, warmup, rounds):
    """Run ``step()`` ``warmup`` times, then ``rounds`` times more; return
    (traced bytes grown, live objects grown, fds grown) over the rounds."""
    with tracing():
        for _ in range(warmup):
            step()
        fds0 = open_fds()
        objs0 = live_counts()
        mem0 = traced_now()
        for _ in range(rounds):
            step()
        mem1 = traced_now()
        objs1 = live_counts()
        fds1 = open_fds()
    fd_growth = None if fds0 is None else fds1 - fds0
    return mem1 - mem0, grown(objs0, objs1), fd_growth


class Sentinel:
    """A callback owner: weakly referenceable, counts its calls."""

    def __init__(self):
        self.calls = 0

    def method(self, *args):
        self.calls += 1


def _noop(*args):
    pass


@pytest.fixture
def sockpair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


# --- many loops ---------------------------------------------------------------

def _use_one_loop(impl, a, b, keep_reader):
    loop = impl.new_event_loop()
    try:
        hits = []

        async def main():
            readable = loop.create_future()

            def on_readable():
                try:
                    a.recv(64)
                except BlockingIOError:
                    pass
                if not readable.done():
                    readable.set_result(None)

            fired = loop.create_future()
            loop.add_reader(a, on_readable)
            b.send(b"x")
            loop.call_soon(hits.append, "soon")
            loop.call_later(0, fired.set_result, None)
            loop.call_later(3600, hits.append, "never")   # pending at close
            infos = await loop.getaddrinfo("127.0.0.1", 80,
                                           type=socket.SOCK_STREAM)
            assert infos and infos[0][4][0] == "127.0.0.1"
            await readable
            await fired
            if not keep_reader:
                assert loop.remove_reader(a)

        loop.run_until_complete(main())
        assert hits == ["soon"]
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


@pytest.mark.timeout(60)
def test_many_loops_used_and_closed_do_not_grow(impl, sockpair):
    a, b = sockpair
    counter = [0]

    def step():
        # 100 loops a step; every other loop is closed with its reader still
        # registered.
        for _ in range(100):
            _use_one_loop(impl, a, b, keep_reader=counter[0] % 2 == 0)
            counter[0] += 1

    mem, objs, fds = measure_growth(step, warmup=1, rounds=10)
    assert counter[0] == 1100
    assert objs == {}, f"live objects grew over 1000 loops: {objs}"
    assert fds in (None, 0), f"{fds} file descriptors leaked over 1000 loops"
    # 32 bytes leaked per loop would be 32 kB here (the noise is < 1 kB).
    assert mem < 32 * 1024, f"traced memory grew by {mem} bytes over 1000 loops"


_UVCORE_TYPES = {"Loop", "BaseLoop", "FdWatcher", "SignalWatcher",
                 "_SignalWakeup", "UVHandle", "_WorkRequest"}


def uvcore_object_counts():
    gc.collect()
    counts = collections.Counter()
    for o in gc.get_objects():
        tp = type(o)
        if tp.__name__ in _UVCORE_TYPES and \
                str(getattr(tp, "__module__", "")).startswith("uvcore"):
            counts[tp.__name__] += 1
    return counts


@pytest.mark.timeout(60)
def test_many_loops_no_uvcore_objects_left(uvcore, sockpair, restore_signals):
    """uvcore-only: after the loops are closed and dropped, no uvcore object
    of theirs is alive (loops, fd/signal watchers, DNS work requests)."""
    a, b = sockpair
    before = uvcore_object_counts()
    refs = []
    for i in range(200):
        loop = uvcore.new_event_loop()
        refs.append(weakref.ref(loop))
        loop.add_reader(a, _noop)
        loop.call_soon(_noop)
        loop.call_later(3600, _noop)
        loop.run_until_complete(loop.getaddrinfo("127.0.0.1", None))
        if i % 2:
            loop.add_signal_handler(signal.SIGUSR2, _noop)
        loop.close()
        del loop
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert grown(before, uvcore_object_counts()) == {}


# --- reference cycles through handles ----------------------------------------

CYCLE_KINDS = [
    "call_soon",
    "call_soon_threadsafe",
    "call_soon_args",
    "call_soon_many_args",
    "call_later_fires",
    "call_at_fires",
    "call_soon_cancelled",
    "call_later_cancelled",
    "call_soon_pending_at_close",
    "call_later_pending_at_close",
    "call_later_cancelled_pending_at_close",
    "reader_removed",
    "reader_at_close",
]


def _make_cycle(loop, kind, sock):
    """A Sentinel in a reference cycle through a handle of ``loop``; returns
    a weak reference to it (and nothing else that refers to it)."""
    obj = Sentinel()
    if kind == "call_soon":
        obj.h = loop.call_soon(obj.method)
    elif kind == "call_soon_threadsafe":
        obj.h = loop.call_soon_threadsafe(obj.method)
    elif kind == "call_soon_args":
        obj.h = loop.call_soon(_noop, obj)
    elif kind == "call_soon_many_args":
        obj.h = loop.call_soon(_noop, 1, 2, 3, obj, 5)
    elif kind == "call_later_fires":
        obj.h = loop.call_later(0.001, obj.method)
    elif kind == "call_at_fires":
        obj.h = loop.call_at(loop.time() + 0.001, obj.method)
    elif kind == "call_soon_cancelled":
        obj.h = loop.call_soon(obj.method)
        obj.h.cancel()
    elif kind == "call_later_cancelled":
        obj.h = loop.call_later(3600, obj.method)
        obj.h.cancel()
    elif kind == "call_soon_pending_at_close":
        obj.h = loop.call_soon(obj.method)
    elif kind in ("call_later_pending_at_close",
                  "call_later_cancelled_pending_at_close"):
        obj.h = loop.call_later(3600, obj.method)
        if kind == "call_later_cancelled_pending_at_close":
            obj.h.cancel()
    elif kind in ("reader_removed", "reader_at_close"):
        # obj -> loop -> the reader's handle -> obj.method -> obj
        obj.loop = loop
        obj.sock = sock
        loop.add_reader(sock, obj.method)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return weakref.ref(obj)


@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
@pytest.mark.parametrize("kind", CYCLE_KINDS)
def test_callback_cycle_through_handle_is_collected(loop, kind, debug, sockpair):
    a, b = sockpair
    loop.set_debug(debug)
    ref = _make_cycle(loop, kind, a)

    if kind.endswith("at_close"):
        if kind.startswith(("call_later", "reader")):
            run_briefly(loop)       # an iteration does not free it: pending
    elif kind.endswith("fires"):
        run_until(loop, lambda: ref() is None or ref().calls == 1)
    elif kind == "reader_removed":
        b.send(b"x")
        run_until(loop, lambda: ref().calls >= 1)
        a.recv(64)
        assert loop.remove_reader(a)
        run_briefly(loop)
    else:
        run_briefly(loop)

    if not kind.endswith("at_close"):
        # The loop is done with the handle: the cycle must be collectable
        # while the loop is still open.
        gc.collect()
        assert ref() is None, "callback object kept alive after the loop " \
                              "was done with its handle"

    loop.close()
    gc.collect()
    assert ref() is None, "callback object kept alive after loop.close()"


@pytest.mark.parametrize("kind", ["call_soon", "call_later", "reader"])
def test_callback_raising_in_cycle_is_collected(loop, kind, sockpair):
    """The same, when the callback raises (the handle and the exception
    reach the exception handler)."""
    a, b = sockpair
    handled = []
    loop.set_exception_handler(lambda lp, ctx: handled.append(1))

    class Raiser(Sentinel):
        def method(self, *args):
            self.calls += 1
            if kind == "reader":
                loop.remove_reader(a)
            raise ValueError(self)

    def make():
        obj = Raiser()
        if kind == "call_soon":
            obj.h = loop.call_soon(obj.method)
        elif kind == "call_later":
            obj.h = loop.call_later(0.001, obj.method)
        else:
            obj.loop = loop
            loop.add_reader(a, obj.method)
            b.send(b"x")
        return weakref.ref(obj)

    ref = make()
    run_until(loop, lambda: handled)
    gc.collect()
    assert ref() is None


CLOSED_LOOP_CYCLES = [
    "handler_records_contexts",
    "handle_on_loop_ran",
    "handle_on_loop_cancelled",
    "timer_on_loop_pending_at_close",
    "handle_on_loop_pending_at_close",
]


@pytest.mark.parametrize("case", CLOSED_LOOP_CYCLES)
def test_closed_loop_reachable_from_its_handles_is_freed(impl, request, case):
    """A closed loop that (indirectly) refers to one of its handles is
    collected: e.g. an exception handler that records the contexts it gets
    (a context carries the handle), or a handle stored on the loop."""

    def make():
        lp = impl.new_event_loop()
        if case == "handler_records_contexts":
            seen = []
            lp.set_exception_handler(lambda loop, ctx: seen.append(ctx))

            def boom():
                raise ValueError("boom")

            lp.call_soon(boom)
        elif case == "handle_on_loop_ran":
            lp.handle = lp.call_soon(_noop)
        elif case == "handle_on_loop_cancelled":
            lp.handle = lp.call_later(3600, _noop)
            lp.handle.cancel()
        elif case == "timer_on_loop_pending_at_close":
            lp.handle = lp.call_later(3600, _noop)
        run_briefly(lp)
        if case == "handle_on_loop_pending_at_close":
            lp.handle = lp.call_soon(_noop)
        lp.close()
        return weakref.ref(lp)

    ref = make()
    gc.collect()
    assert ref() is None, "closed loop not freed"


# --- reader churn -----------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("iterate", ["each_100", "end_only"])
def test_add_remove_reader_churn(loop, sockpair, iterate):
    a, b = sockpair
    last = []

    def step():
        # 1000 add/remove pairs, reader and writer.
        for i in range(1000):
            obj = Sentinel()
            if i % 2:
                loop.add_reader(a, obj.method)
                assert loop.remove_reader(a)
            else:
                loop.add_writer(a, obj.method)
                assert loop.remove_writer(a)
            if iterate == "each_100" and i % 100 == 99:
                run_briefly(loop)
            last[:] = [weakref.ref(obj)]
            del obj
        run_briefly(loop)

    mem, objs, fds = measure_growth(step, warmup=1, rounds=9)
    assert last[0]() is None
    assert objs == {}, f"live objects grew: {objs}"
    assert fds in (None, 0)
    assert mem < 32 * 1024, f"traced memory grew by {mem} bytes"
    assert not loop.remove_reader(a)


def test_reader_replaced_many_times(loop, sockpair):
    """add_reader on a watched fd replaces the callback: the old ones are
    dropped, and the last one still works."""
    a, b = sockpair
    refs = []
    for _ in range(2000):
        obj = Sentinel()
        loop.add_reader(a, obj.method)
        refs.append(weakref.ref(obj))
        del obj
    gc.collect()
    assert sum(r() is not None for r in refs) == 1
    b.send(b"x")
    run_until(loop, lambda: refs[-1]().calls >= 1)
    a.recv(64)
    assert loop.remove_reader(a)
    gc.collect()
    assert refs[-1]() is None


# --- timers -----------------------------------------------------------------

N_TIMERS = 100_000


@pytest.mark.timeout(60)
def test_cancelled_timers_are_freed(loop):
    objs = [Sentinel() for _ in range(N_TIMERS)]
    obj_refs = [weakref.ref(o) for o in objs]
    handles = [loop.call_later(1e6 + i % 1000, o.method)
               for i, o in enumerate(objs)]
    handle_refs = [weakref.ref(h) for h in handles]
    del objs
    for h in handles:
        h.cancel()
    del h, handles
    gc.collect()
    # A cancelled handle lets go of its callback at once.
    assert sum(r() is not None for r in obj_refs) == 0
    run_briefly(loop)
    gc.collect()
    # After one iteration the loop holds none of the cancelled handles.
    assert sum(r() is not None for r in handle_refs) == 0
    # The loop still works.
    fired = []
    loop.call_later(0.001, fired.append, 1)
    run_until(loop, lambda: fired)


@pytest.mark.timeout(60)
def test_cancelled_timers_memory_is_released(loop):
    run_briefly(loop)
    with tracing():
        mem0 = traced_now()
        handles = [loop.call_later(1e6, _noop) for _ in range(N_TIMERS)]
        mem1 = traced_now()
        for h in handles:
            h.cancel()
        del h, handles
        run_briefly(loop)
        mem2 = traced_now()
    scheduled = mem1 - mem0
    assert scheduled > N_TIMERS * 50   # the measurement sees the handles
    # Most of it is given back (the handles themselves).
    assert mem2 - mem0 < scheduled // 4, (mem0, mem1, mem2)


@pytest.mark.timeout(60)
def test_cancelled_timers_heap_storage_is_released(loop, impl, request):
    """Once 100k cancelled timers are gone, the loop's timer heap gives its
    storage back (asyncio's list is rebuilt; uvcore's C array keeps the
    capacity of its peak: 24 bytes x 131072 = 3 MiB for 100k timers)."""
    run_briefly(loop)
    with tracing():
        mem0 = traced_now()
        handles = [loop.call_later(1e6, _noop) for _ in range(N_TIMERS)]
        for h in handles:
            h.cancel()
        del h, handles
        run_briefly(loop)
        mem2 = traced_now()
    assert mem2 - mem0 < 512 * 1024, f"{mem2 - mem0} bytes retained"


@pytest.mark.timeout(60)
def test_ready_queue_storage_is_released(loop, impl, request):
    """After a burst of 100k call_soon callbacks has run, the ready queue
    gives its storage back (asyncio's deque frees its blocks; uvcore's ring
    buffer keeps the capacity of its peak: 8 bytes x 131072 = 1 MiB)."""
    run_briefly(loop)
    with tracing():
        mem0 = traced_now()
        for _ in range(N_TIMERS):
            loop.call_soon(_noop)
        run_briefly(loop)
        mem2 = traced_now()
    assert mem2 - mem0 < 256 * 1024, f"{mem2 - mem0} bytes retained"


@pytest.mark.timeout(60)
def test_timer_churn_does_not_grow(loop):
    """call_later + cancel, and call_later that fires, many times."""
    def step():
        for i in range(2000):
            h = loop.call_later(3600 if i % 2 else 0, _noop)
            if i % 2:
                h.cancel()
        run_briefly(loop)

    mem, objs, fds = measure_growth(step, warmup=2, rounds=10)
    assert objs == {}
    assert mem < 32 * 1024, f"traced memory grew by {mem} bytes"


# --- close() while finalizers run ---------------------------------------------

_DEL_CANCELS_SCRIPT = """
import gc
{prelude}
loop = new_loop()

class Owner:
    # Cancels its timers when it goes away: a common clean-up pattern.
    def __init__(self, handles):
        self.handles = handles
    def tick(self):
        pass
    def __del__(self):
        for h in self.handles:
            h.cancel()

handles = [loop.call_later(200 + i, print, i) for i in range({n})]
owner = Owner(handles)
loop.call_later(100, owner.tick)       # the only strong reference to owner
del owner, handles
loop.close()                           # dropping the pending timers runs __del__
gc.collect()
loop2 = new_loop()
loop2.call_soon(loop2.stop)
loop2.run_forever()
loop2.close()
print("OK")
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [10, 1000])
def test_finalizer_cancelling_timers_during_close(impl, request, n):
    """A callback's owner whose __del__ cancels other pending timers, freed
    while close() drops the timers: no crash."""
    code = _DEL_CANCELS_SCRIPT.format(prelude=impl.child_prelude(), n=n)
    proc = run_python(["-X", "faulthandler", "-c", code], env=impl.child_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OK" in proc.stdout


# --- a loop dropped without close() --------------------------------------------

_DROP_SCRIPT = """
import asyncio, gc, signal, socket, sys, warnings, weakref
{prelude}

seen = []
def showwarning(message, category, filename, lineno, file=None, line=None):
    seen.append((category.__name__, str(message)))
warnings.simplefilter("always")
warnings.showwarning = showwarning

a, b = socket.socketpair()
case = {case!r}

def make():
    loop = new_loop()
    if case in ("reader", "reader_and_callbacks", "ran", "reader_removed"):
        loop.add_reader(a, a.recv, 64)
    if case in ("call_soon", "reader_and_callbacks"):
        loop.call_soon(print, "never")
    if case in ("call_later", "reader_and_callbacks"):
        loop.call_later(3600, print, "never")
    if case == "signal_handler":
        loop.add_signal_handler(signal.SIGUSR1, print, "never")
    if case == "reader_removed":
        assert loop.remove_reader(a)     # and no iteration after that
    if case == "ran":
        # Ran, with a reader that fired and was removed: nothing pending.
        b.send(b"x")
        loop.call_soon(print, "ran")
        loop.call_later(0, print, "timer ran")
        loop.call_soon(loop.remove_reader, a)
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
    if case == "task":
        async def forever():
            await asyncio.sleep(3600)
        loop.create_task(forever())
        loop.call_soon(loop.stop)
        loop.run_forever()
    return weakref.ref(loop)

ref = make()
for _ in range(3):
    gc.collect()
freed = ref() is None
# The process is still sound: another loop runs.
loop2 = new_loop()
loop2.call_soon(loop2.stop)
loop2.run_forever()
loop2.close()
unclosed = [m for c, m in seen
            if c == "ResourceWarning" and "unclosed event loop" in m]
print("FREED" if freed else "ALIVE")
print("WARNED" if unclosed else "NOWARNING")
"""

DROP_CASES = ["plain", "ran", "reader_removed", "reader", "call_soon",
              "call_later", "reader_and_callbacks", "signal_handler", "task"]

@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", DROP_CASES)
def test_dropped_unclosed_loop_warns_and_is_freed(impl, request, case):
    code = _DROP_SCRIPT.format(prelude=impl.child_prelude(), case=case)
    proc = run_python(["-X", "faulthandler", "-c", code], env=impl.child_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Segmentation fault" not in proc.stderr
    assert "never" not in proc.stdout
    lines = proc.stdout.split()
    assert "WARNED" in lines, proc.stdout + proc.stderr[-2000:]
    assert "FREED" in lines, proc.stdout + proc.stderr[-2000:]


def test_dropped_unclosed_loop_warns_in_process(loop_factory):
    """In this process too (no pending handle): a ResourceWarning."""
    lp = loop_factory()
    lp.call_soon(lp.stop)
    lp.run_forever()
    ref = weakref.ref(lp)
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del lp
        gc.collect()
    gc.collect()
    assert ref() is None


# --- signal handler churn -------------------------------------------------------

@pytest.mark.timeout(60)
def test_add_remove_signal_handler_churn(loop, restore_signals):
    received = []
    counter = [0]

    def step():
        # 100 add/remove pairs; every 20th, the signal is actually delivered.
        for i in range(100):
            obj = Sentinel()
            loop.add_signal_handler(signal.SIGUSR1, obj.method)
            if i % 20 == 0:
                loop.add_signal_handler(signal.SIGUSR1, received.append, i)
                os.kill(os.getpid(), signal.SIGUSR1)
                run_until(loop, lambda: received and received[-1] == i)
            assert loop.remove_signal_handler(signal.SIGUSR1)
            counter[0] += 1
        run_briefly(loop)

    mem, objs, fds = measure_growth(step, warmup=1, rounds=10)
    assert counter[0] == 1100
    assert len(received) == 55
    assert objs == {}, f"live objects grew: {objs}"
    assert fds in (None, 0)
    assert mem < 32 * 1024, f"traced memory grew by {mem} bytes"
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


# --- exceptions in callbacks ---------------------------------------------------------

@pytest.mark.timeout(60)
def test_raising_callbacks_do_not_grow(loop, sockpair):
    a, b = sockpair
    handled = [0]

    def handler(lp, context):
        handled[0] += 1     # records nothing of the context

    loop.set_exception_handler(handler)

    class Boom(Exception):
        pass

    def raiser(*args):
        raise Boom("boom", args)

    exc_refs = []

    def raiser_ref():
        exc = Boom("tracked")
        exc_refs.append(weakref.ref(exc))
        raise exc

    def reader():
        a.recv(64)
        raise Boom("reader")

    def step():
        # 1000 raising callbacks: call_soon (0-4 args), call_later, a reader.
        del exc_refs[:]
        for i in range(1000):
            k = i % 5
            if k == 0:
                loop.call_soon(raiser)
            elif k == 1:
                loop.call_soon(raiser, i, "x", None, i, i)
            elif k == 2:
                loop.call_later(0, raiser, i)
            elif k == 3:
                loop.call_soon(raiser_ref)
            else:
                loop.call_at(loop.time(), raiser, i, i)
        run_until(loop, lambda: handled[0] % 1000 == 0)
        loop.add_reader(a, reader)
        b.send(b"x")
        run_until(loop, lambda: handled[0] % 1000 == 1)
        loop.remove_reader(a)
        handled[0] -= 1
        run_briefly(loop)

    mem, objs, fds = measure_growth(step, warmup=1, rounds=5)
    assert handled[0] == 6000
    gc.collect()
    assert sum(r() is not None for r in exc_refs) == 0, \
        "exceptions raised by callbacks are kept alive"
    assert objs == {}, f"live objects grew: {objs}"
    assert mem < 32 * 1024, f"traced memory grew by {mem} bytes"
