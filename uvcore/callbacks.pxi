# Handle and TimerHandle: a callback, up to three positional arguments kept
# inline, and the contextvars.Context it runs in. Calls go through vectorcall
# with the arguments on the C stack; only a callback with more than three
# arguments keeps a tuple.
#
# Handles are not tracked by the cyclic GC (half the objects a call_soon
# allocates, and a third of its time went to gen-0 collections). That is safe
# because a handle drops its references as soon as the loop is done with it:
# after it ran (one-shot handles), when it is cancelled, or when the loop is
# closed or freed. A cycle through a handle can only exist while the loop
# holds it. The handle's pointer to its loop is borrowed, and cleared on those
# same occasions: a handle never keeps a loop alive (a dropped loop with
# pending callbacks is still collected, with asyncio's ResourceWarning).

cdef object _NOARG = object()   # marks an absent inline argument


@cython.freelist(256)
@cython.no_gc
@cython.auto_pickle(False)
cdef class Handle:
    """An object returned by callback registration methods (asyncio.Handle)."""

    def __init__(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} objects are created by the "
                        f"event loop, not directly")

    @cython.final
    cdef int _call(self) except -1:
        # Runs the callback in its context; an exception propagates.
        cdef PyObject* stack[4]
        cdef PyObject* res
        cdef Py_ssize_t n = self.nargs
        cdef object ctx = self.ctx
        cdef object cb = self.cb
        PyContext_Enter(ctx)
        if n <= 3:
            stack[1] = <PyObject*>self.a0
            stack[2] = <PyObject*>self.a1
            stack[3] = <PyObject*>self.a2
            res = PyObject_Vectorcall(<PyObject*>cb, &stack[1],
                                      <size_t>n | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL)
        else:
            res = PyObject_Vectorcall(<PyObject*>cb,
                                      PySequence_Fast_ITEMS(self.extra),
                                      <size_t>n, NULL)
        PyContext_Exit(ctx)
        if res == NULL:
            return -1      # the callback's exception is set
        Py_DECREF(res)
        return 0

    cdef tuple _args_tuple(self):
        if self.nargs == 0:
            return ()
        if self.nargs == 1:
            return (self.a0,)
        if self.nargs == 2:
            return (self.a0, self.a1)
        if self.nargs == 3:
            return (self.a0, self.a1, self.a2)
        return self.extra

    @property
    def _callback(self):
        return self.cb

    @property
    def _args(self):
        if self.cb is None and self.is_cancelled:
            return None
        return self._args_tuple()

    @property
    def _cancelled(self):
        return self.is_cancelled

    @property
    def _loop(self):
        if self.loop == NULL:
            return None
        return <object>self.loop

    @property
    def _context(self):
        return self.ctx

    @property
    def _source_traceback(self):
        return self.tb

    def get_context(self):
        return self.ctx

    def __copy__(self):
        # A detached copy: same callback, not scheduled, not tied to the loop.
        cdef Handle c = type(self).__new__(type(self))
        c.cb = self.cb
        c.a0 = self.a0
        c.a1 = self.a1
        c.a2 = self.a2
        c.extra = self.extra
        c.nargs = self.nargs
        c.ctx = self.ctx
        c.is_cancelled = self.is_cancelled
        if isinstance(self, TimerHandle):
            (<TimerHandle>c).deadline = (<TimerHandle>self).deadline
        return c

    def __reduce__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def cancel(self):
        _cancel_handle(self)

    def cancelled(self):
        return self.is_cancelled

    def _run(self):
        # asyncio.Handle._run: run now, report an exception to the loop.
        if self.is_cancelled or self.cb is None:
            return
        try:
            self._call()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if self.loop == NULL:
                raise
            (<BaseLoop>self.loop)._report_callback_error(self, exc)

    def _repr_info(self):
        info = [type(self).__name__]
        if self.is_cancelled:
            info.append('cancelled')
        if self.cb is not None:
            info.append(_format_callback_source(self.cb, self._args_tuple()))
        if self.tb:
            frame = self.tb[-1]
            info.append(f'created at {frame[0]}:{frame[1]}')
        return info

    def __repr__(self):
        if self.repr_cache is not None:
            return self.repr_cache
        return '<{}>'.format(' '.join(self._repr_info()))


cdef class TimerHandle(Handle):
    """An object returned by call_later() and call_at() (asyncio.TimerHandle)."""

    def when(self):
        return self.deadline

    def cancel(self):
        cdef BaseLoop loop
        if not self.is_cancelled and self.in_heap and self.loop != NULL:
            loop = <BaseLoop>self.loop
            loop.timers.cancelled += 1
            _cancel_handle(self)
            if loop.timers.cancelled > 256 and \
                    loop.timers.cancelled * 2 > loop.timers.size:
                loop._compact_timers()
        else:
            _cancel_handle(self)

    def _repr_info(self):
        info = Handle._repr_info(self)
        info.insert(2 if self.is_cancelled else 1, f'when={self.deadline}')
        return info

    @property
    def _when(self):
        return self.deadline

    @property
    def _scheduled(self):
        return self.in_heap

    def __hash__(self):
        return hash(self.deadline)

    def __richcmp__(self, other, int op):
        if not isinstance(other, TimerHandle):
            return NotImplemented
        cdef double a = self.deadline
        cdef double b = (<TimerHandle>other).deadline
        if op == 0:
            return a < b
        if op == 1:
            return a <= b or self._same(other)
        if op == 4:
            return a > b
        if op == 5:
            return a >= b or self._same(other)
        if op == 2:
            return self._same(other)
        return not self._same(other)

    def _same(self, TimerHandle other):
        return (self.deadline == other.deadline and
                self.cb == other.cb and
                self._args_tuple() == other._args_tuple() and
                self.is_cancelled == other.is_cancelled)


cdef inline int _cancel_handle(Handle h) except -1:
    if h.is_cancelled:
        return 0
    h.is_cancelled = True
    if h.loop != NULL and (<BaseLoop>h.loop)._debug:
        # Keep a representation for debugging before dropping the callback.
        h.repr_cache = repr(h)
    _release_handle(h)
    return 0


cdef inline void _release_handle(Handle h) noexcept:
    # Drop what the handle refers to (see the note at the top of this file).
    h.cb = None
    h.a0 = h.a1 = h.a2 = None
    h.extra = None
    h.ctx = None
    h.tb = None
    h.loop = NULL


cdef object _format_callback_source(object callback, tuple args):
    try:
        return format_helpers._format_callback_source(callback, args)
    except TypeError:   # a newer signature
        return format_helpers._format_callback_source(callback, args, debug=True)
