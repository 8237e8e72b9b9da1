"""Slow-callback tracing: loop.trace_slow_callbacks(), loop.slow_callbacks(),
the watchdog thread and the UVCORE_SLOW_CALLBACK / UVCORE_WATCHDOG switches.

uvcore only; asyncio's counterpart (debug-mode "Executing ... took" logs) is
covered by test_debug.py. Reports must name the user's code: the function,
its file and a line inside it, not asyncio's machinery.
"""

import asyncio
import gc
import inspect
import json
import logging
import os
import socket
import threading
import time

import pytest

from _helpers import child_env, run_briefly, run_python

pytestmark = pytest.mark.timeout(30)

HERE = os.path.abspath(__file__)


@pytest.fixture
def uloop(uvcore):
    loop = uvcore.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        if not loop.is_closed():
            loop.close()


def lines_of(func):
    """The range of source lines of func (def line included)."""
    src, first = inspect.getsourcelines(func)
    return range(first, first + len(src))


def assert_located_in(report, func):
    assert os.path.abspath(report.filename) == HERE, report
    assert report.function == func.__name__, report
    assert report.lineno in lines_of(func), (report, list(lines_of(func)))


def watchdog_threads():
    return [t for t in threading.enumerate()
            if t.name == 'uvcore-watchdog' and t.is_alive()]


# -- what is reported --------------------------------------------------------------

def test_plain_callback_reported_with_its_location(uloop):
    got = []
    uloop.trace_slow_callbacks(0.04, handler=got.append)

    def blocking_plain_callback():
        time.sleep(0.06)

    uloop.call_soon(blocking_plain_callback)
    run_briefly(uloop)
    assert len(got) == 1
    r = got[0]
    assert r.callback == 'test_plain_callback_reported_with_its_location.<locals>.' \
        'blocking_plain_callback'
    assert_located_in(r, blocking_plain_callback)
    assert 0.06 <= r.duration < 1.0
    assert r.task is None and r.coroutine is None
    assert r.in_progress is False and r.stack is None
    assert r.thread_id == threading.get_ident()
    assert 'blocking_plain_callback' in str(r) and 'took' in str(r)
    assert 'blocking_plain_callback' in repr(r)
    assert uloop.metrics()['slow_callbacks'] == 1
    assert uloop.slow_callbacks() == got


def test_partial_and_method_callbacks_named(uloop):
    import functools
    got = []
    uloop.trace_slow_callbacks(0.04, handler=got.append)

    class Worker:
        def crunch(self, seconds):
            time.sleep(seconds)

    w = Worker()
    uloop.call_soon(functools.partial(w.crunch, 0.06))
    uloop.call_later(0, w.crunch, 0.06)
    run_briefly(uloop, 2)
    assert len(got) == 2
    for r in got:
        assert r.callback.endswith('Worker.crunch'), r.callback
        assert_located_in(r, Worker.crunch)


def test_coroutine_step_reported_with_task_and_user_frame(uloop):
    got = []
    uloop.trace_slow_callbacks(0.04, handler=got.append)

    async def blocking_coroutine():
        await asyncio.sleep(0)
        time.sleep(0.06)                # the slow step
        await asyncio.sleep(0)

    uloop.run_until_complete(uloop.create_task(blocking_coroutine(),
                                               name='the-slow-task'))
    assert len(got) == 1
    r = got[0]
    assert r.task == 'the-slow-task'
    assert r.coroutine == blocking_coroutine.__qualname__
    assert "the-slow-task" in r.callback
    assert 'TaskStepMethWrapper' not in r.callback
    assert_located_in(r, blocking_coroutine)
    assert not r.filename.endswith(os.path.join('asyncio', 'tasks.py'))
    assert 'the-slow-task' in str(r) and 'blocking_coroutine' in str(r)


def test_coroutine_step_in_nested_coroutine(uloop):
    # The innermost user frame of the await chain is named, not the task's
    # top coroutine and not asyncio.sleep's own frame.
    got = []
    uloop.trace_slow_callbacks(0.04, handler=got.append)

    async def helper():
        time.sleep(0.06)
        await asyncio.sleep(0.001)

    async def outer():
        await helper()

    uloop.run_until_complete(outer())
    assert len(got) == 1
    r = got[0]
    assert r.coroutine == outer.__qualname__
    assert_located_in(r, helper)


class SlowProto(asyncio.Protocol):
    done = []

    def data_received(self, data):
        time.sleep(0.06)
        self.done.append(data)


class SlowBuffered(asyncio.BufferedProtocol):
    done = SlowProto.done

    def get_buffer(self, sizehint):
        return bytearray(1024)

    def buffer_updated(self, nbytes):
        time.sleep(0.06)
        self.done.append(nbytes)


class SlowDatagram(asyncio.DatagramProtocol):
    done = SlowProto.done

    def datagram_received(self, data, addr):
        time.sleep(0.06)
        self.done.append(data)


def test_slow_protocol_callbacks_named_by_method(uloop):
    got = []
    uloop.trace_slow_callbacks(0.04, handler=got.append)
    done = SlowProto.done
    done.clear()

    async def main():
        for proto in (SlowProto, SlowBuffered):
            server = await uloop.create_server(proto, '127.0.0.1', 0)
            with socket.create_connection(server.sockets[0].getsockname()) as c:
                c.sendall(b'ping')
                n = len(done)
                while len(done) == n:
                    await asyncio.sleep(0.002)
            server.close()
        tr, _ = await uloop.create_datagram_endpoint(
            SlowDatagram, local_addr=('127.0.0.1', 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b'dgram', tr.get_extra_info('sockname'))
            while len(done) < 3:
                await asyncio.sleep(0.002)
        tr.close()

    uloop.run_until_complete(asyncio.wait_for(main(), 10))
    assert [r.callback for r in got] == ['SlowProto.data_received()',
                                         'SlowBuffered.buffer_updated()',
                                         'SlowDatagram.datagram_received()']
    assert_located_in(got[0], SlowProto.data_received)
    assert_located_in(got[1], SlowBuffered.buffer_updated)
    assert_located_in(got[2], SlowDatagram.datagram_received)
    assert all(r.duration >= 0.06 for r in got)


def test_slow_eof_received_reported(uloop):
    got = []
    uloop.trace_slow_callbacks(0.03, handler=got.append)
    eof = []

    class SlowEof(asyncio.Protocol):
        def eof_received(self):
            time.sleep(0.06)
            eof.append(1)

    async def main():
        server = await uloop.create_server(SlowEof, '127.0.0.1', 0)
        with socket.create_connection(server.sockets[0].getsockname()) as c:
            c.shutdown(socket.SHUT_WR)
            while not eof:
                await asyncio.sleep(0.002)
        server.close()

    uloop.run_until_complete(asyncio.wait_for(main(), 5))
    assert uloop.metrics()['callback_seconds'] >= 0.06
    assert [r.function for r in got] == ['eof_received']


def test_under_threshold_not_reported(uloop):
    got = []
    uloop.trace_slow_callbacks(0.2, handler=got.append)
    uloop.call_soon(time.sleep, 0.02)
    uloop.call_later(0.001, time.sleep, 0.02)
    run_briefly(uloop, 3)
    assert got == [] and uloop.slow_callbacks() == []
    assert uloop.metrics()['slow_callbacks'] == 0


def test_threshold_none_turns_tracing_off(uloop):
    got = []
    tracer = uloop.trace_slow_callbacks(0.02, handler=got.append, watchdog=True)
    assert tracer is not None and tracer.threshold == 0.02
    assert uloop.trace_slow_callbacks(None) is None
    assert watchdog_threads() == []
    uloop.call_soon(time.sleep, 0.04)
    run_briefly(uloop)
    assert got == [] and uloop.slow_callbacks() == []
    assert uloop.metrics()['slow_callbacks'] == 0


def test_tracing_is_off_by_default(uloop):
    uloop.call_soon(time.sleep, 0.12)     # over asyncio's 0.1 s debug threshold
    run_briefly(uloop)
    assert uloop.slow_callbacks() == []
    assert uloop.metrics()['slow_callbacks'] == 0


def test_default_handler_logs_warning_on_uvcore_logger(uloop, caplog):
    caplog.set_level(logging.WARNING, logger='uvcore')
    uloop.trace_slow_callbacks(0.04)

    def callback_that_logs_slow():
        time.sleep(0.06)

    uloop.call_soon(callback_that_logs_slow)
    run_briefly(uloop)
    records = [r for r in caplog.records if r.name == 'uvcore']
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    msg = records[0].getMessage()
    assert msg.startswith('slow callback: ')
    assert 'callback_that_logs_slow' in msg and 'took' in msg
    assert os.path.basename(HERE) in msg


def test_handler_exception_goes_to_exception_handler(uloop):
    contexts = []
    uloop.set_exception_handler(lambda loop, ctx: contexts.append(ctx))

    def bad_handler(report):
        raise RuntimeError('handler broke')

    uloop.trace_slow_callbacks(0.04, handler=bad_handler)
    after = []
    uloop.call_soon(time.sleep, 0.06)
    uloop.call_soon(after.append, 'still running')
    run_briefly(uloop)
    uloop.call_soon(after.append, 'next iteration')
    run_briefly(uloop)
    assert after == ['still running', 'next iteration']
    assert len(contexts) == 1
    assert isinstance(contexts[0]['exception'], RuntimeError)
    assert 'tracer' in contexts[0]['message'].lower()
    assert len(uloop.slow_callbacks()) == 1    # kept before the handler failed


def test_keep_bounds_the_reports(uloop):
    uloop.trace_slow_callbacks(0.02, handler=lambda r: None, keep=3)
    for i in range(5):
        def slow():
            time.sleep(0.03)
        slow.__qualname__ = f'slow_{i}'
        uloop.call_soon(slow)
    run_briefly(uloop)
    reports = uloop.slow_callbacks()
    # The last three, oldest first.
    assert [r.callback for r in reports] == ['slow_2', 'slow_3', 'slow_4']
    assert uloop.metrics()['slow_callbacks'] == 5
    # A copy: changing it changes nothing.
    reports.clear()
    assert len(uloop.slow_callbacks()) == 3


def test_report_as_dict_is_json_ready(uloop):
    uloop.trace_slow_callbacks(0.02, handler=lambda r: None)
    uloop.call_soon(time.sleep, 0.03)
    run_briefly(uloop)
    d = uloop.slow_callbacks()[0].as_dict()
    assert set(d) >= {'duration', 'callback', 'task', 'coroutine', 'filename',
                      'lineno', 'function', 'stack', 'in_progress', 'time',
                      'thread_id'}
    json.dumps(d)
    assert abs(d['time'] - time.time()) < 5


# -- bad arguments -----------------------------------------------------------------

@pytest.mark.parametrize('threshold, exc', [
    (0, ValueError), (0.0, ValueError), (-1, ValueError), (-0.5, ValueError),
    (float('nan'), ValueError), ('x', (ValueError, TypeError)),
    ([0.1], TypeError), (object(), TypeError),
])
def test_bad_threshold_raises(uloop, threshold, exc):
    with pytest.raises(exc):
        uloop.trace_slow_callbacks(threshold)
    assert watchdog_threads() == []
    assert uloop.slow_callbacks() == []


def test_huge_threshold_is_refused_cleanly_or_never_fires(uloop):
    try:
        uloop.trace_slow_callbacks(float('inf'), handler=lambda r: None)
    except ValueError:
        assert uloop._tracer is None
    else:
        uloop.call_soon(time.sleep, 0.01)
        run_briefly(uloop)
        assert uloop.slow_callbacks() == []


@pytest.mark.parametrize('kwargs', [
    {'threshold': '0.1'},
    {'threshold': 0.1, 'handler': 5},
    {'threshold': 0.1, 'watchdog': True, 'watchdog_interval': 0},
    {'threshold': 0.1, 'watchdog': True, 'watchdog_interval': -1},
])
def test_bad_argument_types_refused(uloop, kwargs):
    try:
        with pytest.raises((TypeError, ValueError)):
            uloop.trace_slow_callbacks(**kwargs)
    finally:
        uloop.trace_slow_callbacks(None)


# -- the watchdog ------------------------------------------------------------------

@pytest.mark.timeout(20)
def test_watchdog_catches_a_callback_while_it_sleeps(uloop):
    events = []

    def handler(report):
        events.append((time.monotonic(), threading.current_thread().name, report))

    uloop.trace_slow_callbacks(0.2, handler=handler, watchdog=True,
                               watchdog_interval=0.05)
    assert len(watchdog_threads()) == 1
    span = {}

    def sleeps_two_seconds():
        span['start'] = time.monotonic()
        time.sleep(2.0)
        span['end'] = time.monotonic()

    uloop.call_soon(sleeps_two_seconds)
    run_briefly(uloop)
    early = [e for e in events if e[2].in_progress]
    final = [e for e in events if not e[2].in_progress]
    assert len(early) == 1 and len(final) == 1, events
    t, thread_name, r = early[0]
    assert thread_name == 'uvcore-watchdog'
    assert span['start'] + 0.2 <= t < span['end'] - 1.0     # caught in the act
    assert 0.2 <= r.duration < 1.0
    assert_located_in(r, sleeps_two_seconds)
    frames = [(f.name, f.lineno, f.line) for f in r.stack]
    assert any(name == 'sleeps_two_seconds' and line == 'time.sleep(2.0)'
               for name, _, line in frames), frames
    assert any(name == 'test_watchdog_catches_a_callback_while_it_sleeps'
               for name, _, _ in frames), frames
    assert 'still running after' in str(r)
    # The final report, from the loop thread, carries the sample.
    t, thread_name, r = final[0]
    assert thread_name == threading.current_thread().name and t >= span['end']
    assert r.duration >= 2.0
    assert r.stack is not None and r.stack == early[0][2].stack
    assert_located_in(r, sleeps_two_seconds)
    assert r.lineno == early[0][2].lineno               # the time.sleep line
    assert uloop.slow_callbacks() == [early[0][2], r]


def test_watchdog_names_the_task_of_a_blocked_step(uloop):
    got = []
    uloop.trace_slow_callbacks(0.05, handler=got.append, watchdog=True,
                               watchdog_interval=0.01)

    async def stuck_coroutine():
        time.sleep(0.2)

    uloop.run_until_complete(uloop.create_task(stuck_coroutine(), name='stuck'))
    early = [r for r in got if r.in_progress]
    assert len(early) == 1 and len(got) == 2
    assert early[0].task == 'stuck'
    assert early[0].coroutine == stuck_coroutine.__qualname__
    assert_located_in(early[0], stuck_coroutine)
    assert_located_in(got[-1], stuck_coroutine)
    assert got[-1].stack is not None


def test_watchdog_sample_kept_for_slow_data_received(uloop):
    got = []
    uloop.trace_slow_callbacks(0.05, handler=got.append, watchdog=True,
                               watchdog_interval=0.01)

    class Stuck(asyncio.Protocol):
        def data_received(self, data):
            time.sleep(0.2)

    async def main():
        server = await uloop.create_server(Stuck, '127.0.0.1', 0)
        with socket.create_connection(server.sockets[0].getsockname()) as c:
            c.sendall(b'x')
            while len(got) < 2:
                await asyncio.sleep(0.005)
        server.close()

    uloop.run_until_complete(asyncio.wait_for(main(), 5))
    assert got[0].in_progress and got[0].stack is not None
    assert got[1].callback.endswith('.Stuck.data_received()')
    assert got[1].stack is not None


def test_close_stops_the_watchdog(uvcore):
    loop = uvcore.new_event_loop()
    loop.trace_slow_callbacks(0.05, watchdog=True)
    loop.trace_slow_callbacks(0.05, watchdog=True)     # replaces, not adds
    assert len(watchdog_threads()) == 1
    loop.close()
    assert watchdog_threads() == []
    del loop
    gc.collect()


# -- the environment switches --------------------------------------------------------

CHILD = r'''
import asyncio, time, uvcore

def env_traced_callback():
    time.sleep(0.3)

async def main():
    loop = asyncio.get_running_loop()
    tracer = loop._tracer
    print('tracing', tracer is not None and tracer.threshold, flush=True)
    loop.call_soon(env_traced_callback)
    await asyncio.sleep(0.01)

uvcore.run(main())
'''


@pytest.mark.parametrize('env, expect_watchdog', [
    ({'UVCORE_SLOW_CALLBACK': '0.05', 'UVCORE_WATCHDOG': '1'}, True),
    ({'UVCORE_SLOW_CALLBACK': '0.05'}, False),
])
def test_environment_turns_tracing_on(uvcore, env, expect_watchdog):
    proc = run_python(['-c', CHILD], env=child_env(uvcore, **env), timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'tracing 0.05'
    err = proc.stderr
    assert 'slow callback: env_traced_callback took' in err, err
    assert err.count('still running after') == (1 if expect_watchdog else 0), err
    assert '<string>' in err                   # where: the child's -c source


def test_no_environment_no_tracing(uvcore):
    env = child_env(uvcore)
    env.pop('UVCORE_SLOW_CALLBACK', None)
    env.pop('UVCORE_WATCHDOG', None)
    proc = run_python(['-c', CHILD], env=env, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'tracing False'
    assert 'slow callback' not in proc.stderr


def test_environment_not_a_number_is_ignored_with_warning(uvcore):
    proc = run_python(['-c', CHILD], env=child_env(uvcore, UVCORE_SLOW_CALLBACK='soon'),
                      timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert 'is not a number of seconds' in proc.stderr


def test_environment_zero_does_not_break_loop_creation(uvcore):
    proc = run_python(['-c', CHILD], env=child_env(uvcore, UVCORE_SLOW_CALLBACK='0'),
                      timeout=20)
    assert proc.returncode == 0, proc.stderr[-2000:]
