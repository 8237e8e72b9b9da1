"""Robustness of uvcore's internal classes, and loop behaviour under unusual
but legal use: subclassing, many loops, loops in threads, the clock, timers.

uvcore._uvcore's classes (Handle, TimerHandle, the libuv handle owners, the
DNS work request, BaseLoop) are reachable from Python.  Whatever Python code
does with them, it must get an exception or a working object: never a crash.
Everything that might crash runs in a child process, so that a segfault
fails one test instead of the whole session.
"""

import asyncio
import contextvars
import gc
import random
import signal
import socket
import threading
import time
import weakref

import pytest

from _helpers import child_env, run_briefly, run_python, run_until


# --- child processes ------------------------------------------------------------

PRELUDE = """\
import asyncio, contextvars, copy, gc, signal, socket, sys, warnings
import uvcore
from uvcore import _uvcore as U
warnings.simplefilter("ignore", ResourceWarning)
"""


def run_child(code, uvcore_module=None, prelude=PRELUDE, timeout=30):
    """Run ``code`` in a child python; return the CompletedProcess after
    checking that it did not crash."""
    env = child_env(uvcore_module)
    proc = run_python(["-X", "faulthandler", "-c", prelude + code], env=env,
                      timeout=timeout)
    crashed = (proc.returncode < 0 or "Segmentation fault" in proc.stderr
               or "Fatal Python error" in proc.stderr
               or "core dumped" in proc.stderr)
    assert not crashed, (f"child crashed (returncode {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def check_child(code, uvcore_module):
    proc = run_child(code + "\nprint('CHILD-OK')\n", uvcore_module)
    assert "CHILD-OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    return proc


# --- direct construction ----------------------------------------------------------

CREATED_BY_LOOP = ["Handle", "TimerHandle", "UVHandle", "FdWatcher",
                   "SignalWatcher", "_SignalWakeup"]


@pytest.mark.parametrize("name", CREATED_BY_LOOP)
def test_direct_construction_raises_type_error(uvcore, name):
    check_child(f"""
cls = U.{name}
for args, kwargs in [((), {{}}), ((print,), {{}}), ((1, 2, 3), {{"loop": None}}),
                     ((uvcore.new_event_loop(),), {{}})]:
    try:
        obj = cls(*args, **kwargs)
    except TypeError as exc:
        assert "{name}" in str(exc), str(exc)
        assert "not directly" in str(exc), str(exc)
    else:
        raise SystemExit(f"{name}(*{{args}}) constructed {{obj!r}}")
gc.collect()
""", uvcore)


def test_direct_construction_of_work_request(uvcore):
    """_WorkRequest() either refuses, or gives an object whose methods are
    safe to call (its _done() is tested below)."""
    check_child("""
try:
    w = U._WorkRequest()
except TypeError:
    pass
else:
    repr(w)
    w._run()          # func is None: the error is kept, not raised
    del w
    gc.collect()
""", uvcore)


@pytest.mark.parametrize("status", [0, -125])
def test_work_request_done_on_direct_instance(uvcore, status):
    check_child(f"""
try:
    w = U._WorkRequest()
except TypeError:
    pass
else:
    w._run()
    try:
        w._done({status})
    except Exception:
        pass
""", uvcore)


def test_direct_construction_of_base_loop(uvcore):
    """BaseLoop() (the compiled core, without uvcore.Loop's mixins) is safe to
    use and to drop: what it cannot do raises an exception."""
    check_child("""
loop = U.BaseLoop()
repr(loop)
assert not loop.is_closed() and not loop.is_running()
loop.time()
h = loop.call_soon(print, "soon")
t = loop.call_later(3600, print, "later")
t2 = loop.call_at(loop.time() + 3600, print, "at")
t2.cancel()
a, b = socket.socketpair()
loop.add_reader(a, print)
loop.add_writer(b, print)
assert loop.remove_writer(b)
fut = loop.create_future()
for call in (loop.run_forever,
             lambda: loop.run_until_complete(asyncio.sleep(0)),
             lambda: loop.call_exception_handler({"message": "x"})):
    try:
        call()
    except Exception:
        pass
assert not loop.is_running()
try:
    loop.close()
except Exception:
    pass
loop.close() if not loop.is_closed() else None
for call in (lambda: loop.call_soon(print), lambda: loop.add_reader(a, print)):
    try:
        call()
    except Exception:
        pass
del loop, h, t, t2, fut
gc.collect()

# Dropped without close(), with watches and timers: no crash.
loop = U.BaseLoop()
loop.add_reader(a, print)
t = loop.call_later(3600, print)
t.cancel()
del loop, t
gc.collect()

# Loop.__new__ without __init__: no crash either.
loop = uvcore.Loop.__new__(uvcore.Loop)
try:
    loop.run_until_complete(asyncio.sleep(0))
except Exception:
    pass
try:
    loop.close()
except Exception:
    pass
del loop
gc.collect()
a.close(); b.close()
""", uvcore)


# --- objects made with __new__, bypassing the guard ------------------------------------

@pytest.mark.parametrize("name", ["Handle", "TimerHandle"])
def test_handle_new_without_loop_methods(uvcore, name):
    check_child(f"""
h = U.{name}.__new__(U.{name})
repr(h); str(h); h._repr_info()
assert not h.cancelled()
h.get_context()
h._callback, h._args, h._loop, h._context, h._source_traceback, h._cancelled
h.cancel()
assert h.cancelled()
h.cancel()
repr(h)
if isinstance(h, U.TimerHandle):
    h.when(); h._when; h._scheduled; hash(h)
    other = U.TimerHandle.__new__(U.TimerHandle)
    h == other; h < other; h <= other; h != other; h == 1
    try:
        h < 1
    except TypeError:
        pass
del h
gc.collect()
""", uvcore)


@pytest.mark.parametrize("name", ["Handle", "TimerHandle"])
@pytest.mark.parametrize("cancelled", [False, True],
                         ids=["live", "cancelled"])
def test_handle_new_without_loop_run(uvcore, name, cancelled):
    check_child(f"""
h = U.{name}.__new__(U.{name})
if {cancelled}:
    h.cancel()
try:
    h._run()
except Exception:
    pass
""", uvcore)


@pytest.mark.parametrize("name", ["UVHandle", "FdWatcher", "SignalWatcher",
                                  "_SignalWakeup"])
def test_uv_handle_owner_new_without_loop(uvcore, name):
    check_child(f"""
objs = [U.{name}.__new__(U.{name}) for _ in range(100)]
for o in objs:
    repr(o)
    if isinstance(o, U._SignalWakeup):
        o.uninstall()
        o.uninstall()
del objs, o
gc.collect()
""", uvcore)


def test_signal_wakeup_install_on_open_loop(uvcore):
    check_child("""
old = signal.set_wakeup_fd(-1)
loop = uvcore.new_event_loop()
w = U._SignalWakeup.install(loop)
assert w is not None
assert signal.set_wakeup_fd(-1) != -1   # installed (and now taken off again)
w.uninstall()
w.uninstall()
w2 = U._SignalWakeup.install(U.BaseLoop())
w2.uninstall()
loop.close()
del w, w2, loop
gc.collect()
""", uvcore)


def test_signal_wakeup_install_on_closed_loop(uvcore):
    check_child("""
loop = uvcore.new_event_loop()
loop.close()
try:
    w = U._SignalWakeup.install(loop)
    if w is not None:
        w.uninstall()
except Exception:
    pass
""", uvcore)


@pytest.mark.parametrize("where", ["main_thread", "other_thread"])
def test_private_run_on_closed_loop(uvcore, where):
    check_child(f"""
import threading
loop = uvcore.new_event_loop()
loop.close()
def attempt():
    try:
        loop._run()
    except Exception:
        pass
if "{where}" == "main_thread":
    attempt()
else:
    t = threading.Thread(target=attempt)
    t.start()
    t.join()
""", uvcore)


def test_private_loop_methods_on_closed_loop(uvcore):
    check_child("""
loop = uvcore.new_event_loop()
loop.call_soon(print)
loop.call_later(1, print)
loop.close()
loop._write_to_self()
loop._after_fork_in_child()
loop.stop()
loop.set_debug(True)
loop.close()
""", uvcore)


def test_handle_state_cannot_be_made_inconsistent(uvcore):
    check_child("""
loop = uvcore.new_event_loop()
h = loop.call_soon(print, "x")
setstate = getattr(U.Handle, "__setstate_cython__", None)
if setstate is not None:
    state = list(h.__reduce_cython__()[2])
    ints = [i for i, v in enumerate(state) if type(v) is int]
    state[ints[0]] = 5
    bad = U.Handle.__new__(U.Handle)
    try:
        bad.__setstate_cython__(tuple(state))
    except Exception:
        pass
    else:
        try:
            bad._run()
        except Exception:
            pass
loop.close()
""", uvcore)


def test_handle_copy_is_harmless(loop):
    """copy.copy of a pending handle gives a handle that may be run or
    cancelled without disturbing the loop (asyncio's handles copy too)."""
    import copy

    calls = []
    h = loop.call_soon(calls.append, "h")
    t = loop.call_later(0.001, calls.append, "t")
    hc = copy.copy(h)
    tc = copy.copy(t)
    repr(hc), repr(tc)
    for _ in range(300):
        copy.copy(tc).cancel()
    tc.cancel()
    hc.cancel()
    assert not h.cancelled() and not t.cancelled()
    run_until(loop, lambda: calls == ["h", "t"])
    # Timers still work after the copies miscounted cancellations.
    later = [loop.call_later(0.001 * i, calls.append, i) for i in range(50)]
    later[10].cancel()
    run_until(loop, lambda: len(calls) == 51)
    assert calls[2:] == [i for i in range(50) if i != 10]


# --- handles the loop is done with ------------------------------------------------

_DONE_HANDLES = """
errors = []
loop = new_loop()
loop.set_exception_handler(lambda lp, ctx: errors.append(ctx["message"]))
ran = loop.call_soon(print, "ran")
timer_ran = loop.call_later(0, print, "timer ran")
cancelled = loop.call_soon(print, "never")
cancelled.cancel()
timer_cancelled = loop.call_later(3600, print, "never")
timer_cancelled.cancel()
loop.call_later(0.01, loop.stop)
loop.run_forever()
pending = loop.call_soon(print, "pending")
timer_pending = loop.call_later(3600, print, "pending")
handles = [ran, timer_ran, cancelled, timer_cancelled]

def poke(handles):
    for h in handles:
        repr(h); str(h)
        h.cancelled()
        if hasattr(h, "get_context"):      # Python 3.12+ (uvcore: always)
            h.get_context()
        if isinstance(h, asyncio.TimerHandle) or hasattr(h, "when"):
            h.when()
        try:
            h._run()
        except Exception as exc:
            errors.append(repr(exc))
        h.cancel()
        assert h.cancelled()
        h.cancel()
        repr(h)

poke(handles)
loop.close()
poke([pending, timer_pending])
poke(handles)
del handles, ran, timer_ran, cancelled, timer_cancelled, pending, timer_pending
gc.collect()
print("CHILD-OK")
"""


def test_handles_after_the_loop_is_done_with_them(impl):
    """repr/cancel/cancelled/when/_run on handles that ran, were cancelled,
    or were pending when the loop closed: no crash."""
    proc = run_python(["-X", "faulthandler", "-c",
                       "import asyncio, gc\n" + impl.child_prelude()
                       + _DONE_HANDLES], env=impl.child_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CHILD-OK" in proc.stdout
    assert "never" not in proc.stdout


def test_closed_loop_refuses_work(impl):
    proc = run_python(["-X", "faulthandler", "-c",
                       "import asyncio, gc, socket\n" + impl.child_prelude()
                       + """
loop = new_loop()
loop.close()
a, b = socket.socketpair()
refused = 0
calls = [
    lambda: loop.call_soon(print),
    lambda: loop.call_soon_threadsafe(print),
    lambda: loop.call_later(0, print),
    lambda: loop.call_at(0, print),
    lambda: loop.add_reader(a, print),
    lambda: loop.add_writer(a, print),
    loop.run_forever,
    lambda: loop.run_until_complete(asyncio.sleep(0)),
    lambda: loop.run_in_executor(None, print),
]
for call in calls:
    try:
        call()
    except RuntimeError:
        refused += 1
coro = asyncio.sleep(0)
try:
    loop.create_task(coro)
except RuntimeError:
    refused += 1
coro.close()
coro = loop.getaddrinfo("localhost", 80)
try:
    loop.run_until_complete(coro)
except RuntimeError:
    refused += 1
coro.close()
assert not loop.remove_reader(a)
assert not loop.remove_writer(a)
loop.stop()
loop.time()
repr(loop)
loop.close()
assert loop.is_closed() and not loop.is_running()
print("REFUSED", refused)
"""], env=impl.child_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REFUSED 11" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_close_with_dns_lookup_in_flight(impl):
    """close() while a getaddrinfo runs in a worker thread: no crash, and the
    loop closes in bounded time."""
    proc = run_python(["-X", "faulthandler", "-c",
                       "import asyncio, gc, socket, time\n" + impl.child_prelude()
                       + """
for i in range(20):
    loop = new_loop()
    task = loop.create_task(loop.getaddrinfo("localhost", 80 + i))
    loop.call_soon(loop.stop)
    loop.run_forever()          # the lookup is submitted, not finished
    t0 = time.monotonic()
    loop.close()
    assert time.monotonic() - t0 < 10
    del task, loop
    gc.collect()
print("CHILD-OK")
"""], env=impl.child_env(PYTHONWARNINGS="ignore"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CHILD-OK" in proc.stdout


def test_base_class_cancel_of_timer_keeps_loop_sound(uvcore):
    """Handle.cancel (the base class's) applied to TimerHandles skips the
    heap's cancelled count; timers must still run in order, none early."""
    from uvcore._uvcore import Handle

    loop = uvcore.new_event_loop()
    try:
        fired = []
        handles = [loop.call_later(0.001 + (i % 50) * 0.0002, fired.append, i)
                   for i in range(1000)]
        for h in handles[::2]:
            Handle.cancel(h)
        for h in handles[1::4]:
            h.cancel()
        expected = sorted(handles[3::4], key=lambda h: h.when())
        run_until(loop, lambda: len(fired) == len(expected))
        run_briefly(loop, 3)
        assert len(fired) == len(expected)
        more = []
        for i in range(400):
            h = loop.call_later(0.001, more.append, i)
            if i % 3:
                h.cancel()
        run_until(loop, lambda: len(more) == 134)
        assert more == [i for i in range(400) if i % 3 == 0]
    finally:
        loop.close()


# --- subclassing ------------------------------------------------------------------

def test_loop_subclass_with_own_init(uvcore):
    class MyLoop(uvcore.Loop):
        def __init__(self, tag, *, extra=None):
            super().__init__()
            self.tag = tag
            self.extra = extra
            self.soon = 0
            self.errors = []

        def call_soon(self, callback, *args, context=None):
            self.soon += 1
            return super().call_soon(callback, *args, context=context)

        def call_exception_handler(self, context):
            self.errors.append(context)

    loop = MyLoop("t", extra=[1])
    try:
        assert isinstance(loop, uvcore.Loop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert loop.tag == "t" and loop.extra == [1]
        assert "MyLoop" in repr(loop)

        async def main():
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
            fut = loop.create_future()
            loop.call_later(0.001, fut.set_result, 7)
            return await fut

        assert loop.run_until_complete(main()) == 7
        assert loop.soon > 0          # asyncio's tasks and futures use it

        def boom():
            raise ValueError("boom")

        loop.call_soon(boom)
        run_briefly(loop)
        assert len(loop.errors) == 1
        assert isinstance(loop.errors[0]["exception"], ValueError)

        async def agen():
            yield 1

        async def use_agen():
            async for _ in agen():
                break

        loop.run_until_complete(use_agen())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()

    # The subclass works as a loop factory too.
    class Plain(uvcore.Loop):
        pass

    async def answer():
        return 42

    assert uvcore.run(answer(), loop_factory=Plain) == 42
    if not hasattr(asyncio, "Runner"):      # Python 3.10
        return
    with asyncio.Runner(loop_factory=lambda: MyLoop("r")) as runner:
        assert runner.run(answer()) == 42
        assert isinstance(runner.get_loop(), MyLoop)


def test_loop_subclass_dropped_unclosed_warns(uvcore):
    class MyLoop(uvcore.Loop):
        def __init__(self):
            super().__init__()
            self.payload = object()

    lp = MyLoop()
    ref = weakref.ref(lp)
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del lp
        gc.collect()
    gc.collect()
    assert ref() is None


# --- many loops, loops in threads ------------------------------------------------------

def test_hundred_loops_alive_each_running_in_turn(uvcore):
    loops = [uvcore.new_event_loop() for _ in range(100)]
    pairs = [socket.socketpair() for _ in range(100)]
    results = [[] for _ in range(100)]
    try:
        for i, (lp, (a, b)) in enumerate(zip(loops, pairs)):
            a.setblocking(False)
            # Work that stays pending while the other loops run.
            lp.call_later(3600, results[i].append, "never")
            lp.add_reader(a, lambda a=a, r=results[i]: r.append(a.recv(16)))

        for rnd in range(3):
            for i, (lp, (a, b)) in enumerate(zip(loops, pairs)):
                async def main(lp=lp, i=i, b=b):
                    await asyncio.sleep(0)
                    fut = lp.create_future()
                    lp.call_later(0.0005, fut.set_result, (rnd, i))
                    b.send(b"%d" % i)
                    infos = await lp.getaddrinfo("127.0.0.1", 80)
                    assert infos
                    return await fut

                assert lp.run_until_complete(main()) == (rnd, i)
                run_until(lp, lambda r=results[i]: len(r) == rnd + 1)
        for i, r in enumerate(results):
            assert r == [b"%d" % i] * 3
    finally:
        for lp in loops:
            lp.close()
        for a, b in pairs:
            a.close()
            b.close()


def _thread_body(impl, out):
    loop = impl.new_event_loop()
    a, b = socket.socketpair()
    try:
        async def main():
            got = []
            soon = loop.create_future()
            loop.call_soon(soon.set_result, "soon")
            later = loop.create_future()
            loop.call_later(0.005, later.set_result, "later")
            readable = loop.create_future()

            def on_read():
                got.append(a.recv(16))
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(a, on_read)
            b.send(b"ping")
            ip = await loop.getaddrinfo("127.0.0.1", 80,
                                        type=socket.SOCK_STREAM)
            named = await loop.getaddrinfo("localhost", 80,
                                           type=socket.SOCK_STREAM)
            await readable
            assert loop.remove_reader(a)
            try:
                loop.add_signal_handler(signal.SIGUSR1, print)
            except RuntimeError as exc:
                sig_error = exc
            else:
                sig_error = None
                loop.remove_signal_handler(signal.SIGUSR1)
            return (await soon, await later, got, ip[0][4][0], bool(named),
                    sig_error)

        out.append(loop.run_until_complete(main()))
        out.append(threading.current_thread() is not threading.main_thread())
        loop.run_until_complete(loop.shutdown_default_executor())
    except BaseException as exc:  # reported to the main thread
        out.append(exc)
    finally:
        loop.close()
        a.close()
        b.close()


def test_loop_in_non_main_thread(impl):
    out = []
    t = threading.Thread(target=_thread_body, args=(impl, out))
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert len(out) == 2, out
    soon, later, got, ip, named, sig_error = out[0]
    assert (soon, later, got, ip, named) == ("soon", "later", [b"ping"],
                                             "127.0.0.1", True)
    # As asyncio: signal handlers only from the main thread.
    assert isinstance(sig_error, RuntimeError)
    assert out[1] is True


@pytest.mark.timeout(60)
def test_loops_in_several_threads_at_once(impl):
    outs = [[] for _ in range(8)]
    threads = [threading.Thread(target=_thread_body, args=(impl, out))
               for out in outs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    for out in outs:
        assert len(out) == 2 and not isinstance(out[0], BaseException), out
        assert out[0][:5] == ("soon", "later", [b"ping"], "127.0.0.1", True)


def test_non_main_thread_loop_leaves_main_thread_signals_alone(uvcore,
                                                               restore_signals):
    """A loop running in another thread installs no wake-up fd."""
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    seen = []

    def body():
        lp = uvcore.new_event_loop()
        try:
            lp.call_soon(lambda: seen.append(signal.set_wakeup_fd.__name__))
            lp.call_later(0.01, lp.stop)
            lp.run_forever()
        finally:
            lp.close()

    t = threading.Thread(target=body)
    t.start()
    t.join(10)
    assert seen
    now = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(now)
    assert now == before


# --- the clock and timers ------------------------------------------------------------

def test_time_equals_monotonic_within_a_millisecond(loop):
    # Bracketed by two time.monotonic() calls, so that the thread being
    # preempted between the calls cannot fail the test.
    for _ in range(1000):
        t0 = time.monotonic()
        lt = loop.time()
        t1 = time.monotonic()
        assert t0 - 1e-3 <= lt <= t1 + 1e-3, (t0, lt, t1)
    off = []

    def cb():
        t0 = time.monotonic()
        lt = loop.time()
        t1 = time.monotonic()
        off.append(max(t0 - lt, lt - t1, 0.0))

    for i in range(100):
        loop.call_soon(cb)
    loop.call_later(0.001, cb)
    run_until(loop, lambda: len(off) == 101)
    assert max(off) < 1e-3, max(off)


@pytest.mark.timeout(30)
def test_timers_never_run_before_their_when(loop):
    rnd = random.Random(1234)
    early = []
    ran = []

    def check(i):
        now = loop.time()
        h = handles[i]
        if now < h.when():
            early.append((i, h.when() - now))
        ran.append(i)

    handles = []
    for i in range(500):
        kind = i % 3
        if kind == 0:
            h = loop.call_later(rnd.uniform(0, 0.05), check, i)
        elif kind == 1:
            h = loop.call_at(loop.time() + rnd.uniform(0, 0.05), check, i)
        else:
            # Sub-millisecond delays: below libuv's timer resolution.
            h = loop.call_later(rnd.uniform(0, 0.001), check, i)
        handles.append(h)
    run_until(loop, lambda: len(ran) == 500, timeout=10)
    assert early == [], f"{len(early)} timers ran early, e.g. {early[:5]}"
    # And in deadline order (equal deadlines: scheduling order).
    order = sorted(range(500), key=lambda i: (handles[i].when(), i))
    assert ran == order


@pytest.mark.timeout(30)
def test_timers_scheduled_from_callbacks_never_early(loop):
    rnd = random.Random(99)
    early = []
    count = [0]

    def tick(h_box):
        now = loop.time()
        if now < h_box[0].when():
            early.append(h_box[0].when() - now)
        count[0] += 1
        if count[0] < 500:
            box = []
            box.append(loop.call_later(rnd.uniform(0, 0.002), tick, box))

    for _ in range(5):
        box = []
        box.append(loop.call_later(0, tick, box))
    run_until(loop, lambda: count[0] >= 500, timeout=10)
    assert early == []


def test_context_of_timer_callbacks(loop):
    """Timers run in the context they were scheduled in (a sanity check of
    the inline-argument fast path)."""
    var = contextvars.ContextVar("var", default="default")
    seen = []

    def cb(*args):
        seen.append((var.get(), args))

    ctx = contextvars.copy_context()
    ctx.run(var.set, "ctx")
    for n in range(6):
        args = tuple(range(n))
        loop.call_soon(cb, *args, context=ctx)
        loop.call_later(0, cb, *args)
    run_until(loop, lambda: len(seen) == 12)
    assert sorted(seen) == sorted(
        [("ctx", tuple(range(n))) for n in range(6)]
        + [("default", tuple(range(n))) for n in range(6)])
