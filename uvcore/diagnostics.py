"""Slow-callback diagnosis: what ran too long, and where it was.

The loop times every callback in C (uvcore_metrics.h) and calls
SlowCallbackTracer.callback_done() only for one that went over the
threshold, so tracing costs nothing until something is slow. The report
names what actually ran: for a task step, the task, its coroutine and the
frame it is suspended in now (not asyncio's step wrapper); for a plain
callback, the function; for a protocol called from I/O, the protocol method.

With watchdog=True a thread looks at the loop every interval; a callback
that has run past the threshold is caught in the act: the loop thread's
Python stack is sampled while the callback still runs, reported at once
(`in_progress=True`) and attached to the final report when it ends.
"""

import asyncio
import collections
import functools
import logging
import math
import numbers
import operator
import os
import sys
import sysconfig
import threading
import time
import traceback
import weakref

logger = logging.getLogger('uvcore')

_ENV_THRESHOLD = 'UVCORE_SLOW_CALLBACK'     # seconds, e.g. "0.05"
_ENV_WATCHDOG = 'UVCORE_WATCHDOG'           # "1": sample stacks of slow callbacks


class SlowCallback:
    """One slow callback: what it was, where, and for how long."""

    __slots__ = ('duration', 'callback', 'task', 'coroutine', 'filename',
                 'lineno', 'function', 'stack', 'in_progress', 'time',
                 'thread_id')

    def __init__(self, duration, where, *, stack=None, in_progress=False,
                 thread_id=None):
        self.duration = duration
        self.callback = where.get('callback')
        self.task = where.get('task')
        self.coroutine = where.get('coroutine')
        self.filename = where.get('filename')
        self.lineno = where.get('lineno')
        self.function = where.get('function')
        self.stack = stack              # traceback.StackSummary, or None
        self.in_progress = in_progress
        self.time = time.time()
        self.thread_id = thread_id

    def as_dict(self):
        d = {k: getattr(self, k) for k in self.__slots__ if k != 'stack'}
        d['stack'] = ([{'filename': f.filename, 'lineno': f.lineno,
                        'function': f.name, 'line': f.line} for f in self.stack]
                      if self.stack is not None else None)
        return d

    def location(self):
        if self.filename is None:
            return '?'
        return f'{self.filename}:{self.lineno} in {self.function}'

    def __str__(self):
        state = 'still running after' if self.in_progress else 'took'
        head = f'{self.callback} {state} {self.duration:.3f} s'
        if self.task is not None:
            head += f' (task {self.task!r}, coroutine {self.coroutine})'
        lines = [head, f'  at {self.location()}']
        if self.stack is not None:
            lines.append('  stack of the loop thread while it ran:')
            for entry in self.stack.format():
                lines.extend('  ' + l for l in entry.rstrip('\n').split('\n'))
        return '\n'.join(lines)

    def __repr__(self):
        return (f'<SlowCallback {self.callback} {self.duration:.3f}s '
                f'at {self.location()}{" in progress" if self.in_progress else ""}>')


# -- naming what ran -----------------------------------------------------------

def _library_dirs():
    # Frames here are not "where": the standard library (asyncio.sleep,
    # socket.recv, ...) and uvcore itself. Third-party packages are kept, as
    # the user's own code may be installed next to them.
    dirs = {os.path.dirname(os.path.abspath(__file__))}
    for key in ('stdlib', 'platstdlib'):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.realpath(path))
            dirs.add(path)
    dirs.add(os.path.dirname(asyncio.__file__))
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


_LIBRARY_DIRS = _library_dirs()


def _is_library(filename):
    return filename.startswith(_LIBRARY_DIRS) and '-packages' + os.sep not in filename


def _innermost(coro):
    """The frame the awaiting chain of coro is suspended in: the deepest one
    outside asyncio and uvcore (asyncio.sleep's own frame says nothing), or
    None."""
    frame = outside = None
    seen = 0
    while coro is not None and seen < 100:
        f = (getattr(coro, 'cr_frame', None) or getattr(coro, 'gi_frame', None)
             or getattr(coro, 'ag_frame', None))
        if f is None:
            break
        frame = f
        if not _is_library(f.f_code.co_filename):
            outside = f
        coro = (getattr(coro, 'cr_await', None) or getattr(coro, 'gi_yieldfrom', None)
                or getattr(coro, 'ag_await', None))
        seen += 1
    return outside if outside is not None else frame


_LOOP_ENTRY = ('run_until_complete', 'run_forever', '_run_once', 'run')
_LOOP_DIRS = tuple(d.rstrip(os.sep) + os.sep for d in (
    os.path.dirname(os.path.abspath(__file__)), os.path.dirname(asyncio.__file__)))


def _callback_part(stack):
    """The frames of a sampled stack that belong to the running callback:
    those below the loop's entry point (run_forever and what called it say
    nothing about the callback)."""
    cut = 0
    for i, f in enumerate(stack):
        if f.name in _LOOP_ENTRY and f.filename.startswith(_LOOP_DIRS):
            cut = i + 1
    return traceback.StackSummary.from_list(stack[cut:]) if cut < len(stack) else stack


def _where_in_stack(stack):
    """The deepest frame of a sampled stack outside asyncio and uvcore."""
    for f in reversed(stack):
        if not _is_library(f.filename):
            return f
    return stack[-1] if stack else None


def _code_of(func):
    while isinstance(func, functools.partial):
        func = func.func
    func = getattr(func, '__func__', func)
    return getattr(func, '__code__', None)


def _callable_name(func):
    inner = func
    while isinstance(inner, functools.partial):
        inner = inner.func
    name = getattr(inner, '__qualname__', None) or getattr(inner, '__name__', None)
    return name or repr(inner)


def describe_task(task):
    coro = task.get_coro()
    where = {'task': task.get_name(),
             'coroutine': getattr(coro, '__qualname__', repr(coro)),
             'callback': f'step of task {task.get_name()!r}'}
    frame = _innermost(coro)
    if frame is not None:
        where.update(filename=frame.f_code.co_filename, lineno=frame.f_lineno,
                     function=frame.f_code.co_name)
    else:
        code = getattr(coro, 'cr_code', None) or getattr(coro, 'gi_code', None)
        if code is not None:
            where.update(filename=code.co_filename, lineno=code.co_firstlineno,
                         function=code.co_name)
    return where


def describe(what, protocol):
    """Where a slow callback lives: what (a Handle, or the name of a protocol
    method called from I/O) and the protocol (for the latter)."""
    if isinstance(what, str):
        method = getattr(protocol, what, None)
        code = _code_of(method)
        where = {'callback': f'{type(protocol).__qualname__}.{what}()'}
        if code is not None:
            where.update(filename=code.co_filename, lineno=code.co_firstlineno,
                         function=code.co_name)
        return where
    cb = getattr(what, '_callback', None)
    owner = getattr(cb, '__self__', None)
    if isinstance(owner, asyncio.Task):
        return describe_task(owner)
    where = {'callback': _callable_name(cb)}
    code = _code_of(cb)
    if code is not None:
        where.update(filename=code.co_filename, lineno=code.co_firstlineno,
                     function=code.co_name)
    return where


# -- the tracer ------------------------------------------------------------------

def _seconds(value, name):
    """A duration argument: a real number of seconds, finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a number of seconds, not '
                        f'{type(value).__name__}')
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f'{name} must be a finite number of seconds > 0, '
                         f'got {value!r}')
    return value


class SlowCallbackTracer:
    """Installed on a loop by loop.trace_slow_callbacks()."""

    def __init__(self, loop, threshold, handler=None, watchdog=False,
                 watchdog_interval=None, keep=100):
        threshold = _seconds(threshold, 'threshold')
        if handler is not None and not callable(handler):
            raise TypeError(f'handler must be callable or None, not '
                            f'{type(handler).__name__}')
        if watchdog_interval is not None:
            watchdog_interval = _seconds(watchdog_interval, 'watchdog_interval')
        keep = operator.index(keep)
        if keep < 1:
            raise ValueError(f'keep must be >= 1, got {keep}')
        self.loop_ref = weakref.ref(loop)   # the watchdog thread must not keep it
        self.threshold = threshold
        self.handler = handler if handler is not None else _log_report
        self.reports = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._sampled = {}              # callback start (ticks) -> stack
        self._watchdog = None
        if watchdog:
            interval = (watchdog_interval if watchdog_interval is not None
                        else min(threshold / 2, 0.25))
            self._watchdog = _Watchdog(self, float(interval))

    # Called by the loop (in its thread) when a callback has gone over.
    def callback_done(self, what, protocol, duration, started):
        with self._lock:
            stack = self._sampled.pop(started, None)
            self._sampled.clear()
        where = describe(what, protocol)
        if stack:
            # Caught in the act: where it was stuck beats where it is now.
            f = _where_in_stack(stack)
            where.update(filename=f.filename, lineno=f.lineno, function=f.name)
        report = SlowCallback(duration, where, stack=stack,
                              thread_id=threading.get_ident())
        self._emit(report)

    def _emit(self, report):
        self.reports.append(report)
        self.handler(report)

    def start(self):
        if self._watchdog is not None:
            self._watchdog.start()

    def stop(self):
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None


def _log_report(report):
    logger.warning('slow callback: %s', report)


class _Watchdog:
    """A thread that samples the loop thread's stack while a callback runs
    past the threshold."""

    def __init__(self, tracer, interval):
        self.tracer = tracer
        self.interval = interval
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='uvcore-watchdog')
        self._thread.start()

    def stop(self):
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(1.0)

    def _run(self):
        tracer = self.tracer
        reported = None
        while not self._stop.wait(self.interval):
            loop = tracer.loop_ref()
            if loop is None or loop.is_closed():
                return
            seq, started, now, tps, thread_id = loop._watch_state()
            if not started or (seq, started) == reported:
                continue
            running_for = (now - started) / tps
            if running_for < tracer.threshold:
                continue
            frame = sys._current_frames().get(thread_id) if thread_id else None
            # Still the same callback? (It may have ended meanwhile.)
            if loop._watch_state()[:2] != (seq, started) or frame is None:
                continue
            stack = _callback_part(traceback.extract_stack(frame))
            del frame
            reported = (seq, started)
            with tracer._lock:
                tracer._sampled[started] = stack
            task = asyncio.current_task(loop) if loop.is_running() else None
            if task is not None:
                where = describe_task(task)
                where['callback'] = f'step of task {task.get_name()!r}'
            else:
                where = {'callback': 'callback'}
            # The sample says where it is stuck now.
            f = _where_in_stack(stack)
            if f is not None:
                where.update(filename=f.filename, lineno=f.lineno, function=f.name)
                if task is None:
                    where['callback'] = f.name
            report = SlowCallback(running_for, where, stack=stack,
                                  in_progress=True, thread_id=thread_id)
            del loop
            try:
                tracer._emit(report)
            except Exception:
                logger.exception('uvcore watchdog: report handler failed')


class DiagnosticsMixin:
    """loop.trace_slow_callbacks() and loop.slow_callbacks()."""

    _tracer = None

    def trace_slow_callbacks(self, threshold=0.1, *, handler=None, watchdog=False,
                             watchdog_interval=None, keep=100):
        """Report every callback that runs longer than threshold seconds.

        handler(report) gets a SlowCallback (default: a warning on the
        'uvcore' logger); the last `keep` reports stay in slow_callbacks().
        watchdog=True also samples the Python stack of a callback that is
        still running past the threshold, every watchdog_interval seconds
        (default: half the threshold, at most 0.25 s); the handler is then
        called from the watchdog thread with in_progress=True.
        threshold=None turns tracing off."""
        tracer = None
        if threshold is not None:       # arguments checked before anything changes
            tracer = SlowCallbackTracer(self, threshold, handler, watchdog,
                                        watchdog_interval, keep)
        old = self._tracer
        if old is not None:
            old.stop()
        self._tracer = None
        self._set_slow_tracer(None, None)
        if tracer is None:
            return None
        self._tracer = tracer
        self._set_slow_tracer(tracer, tracer.threshold)
        tracer.start()
        return tracer

    def slow_callbacks(self):
        """The recent slow-callback reports, oldest first."""
        tracer = self._tracer
        return list(tracer.reports) if tracer is not None else []

    def _trace_from_environment(self):
        value = os.environ.get(_ENV_THRESHOLD, '').strip()
        if not value:
            return
        try:
            threshold = float(value)
        except ValueError:
            threshold = None
        if threshold == 0:
            return                      # "0": off, like the other switches
        if threshold is None or not (threshold > 0 and math.isfinite(threshold)):
            logger.warning('%s=%r is not a number of seconds > 0: ignored',
                           _ENV_THRESHOLD, value)
            return
        watchdog = os.environ.get(_ENV_WATCHDOG, '').strip() not in ('', '0')
        self.trace_slow_callbacks(threshold, watchdog=watchdog)

    def _stop_tracing(self):
        if self._tracer is not None:
            self._tracer.stop()
