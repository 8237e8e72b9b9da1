# The loop core: run/stop/close, call_soon and timers, the thread wake-up.
#
# One libuv iteration is one asyncio iteration:
#   prepare: arm the single uv_timer for the earliest deadline; let go of the
#            GIL if the poll is going to block (uv_backend_timeout != 0)
#   poll:    I/O callbacks; the first one takes the GIL back
#   check:   move due timers to the ready queue, then run the callbacks that
#            were ready when the phase began, in FIFO order
# An idle handle is active whenever callbacks are ready, so that poll does not
# block. The check handle is always active: it keeps uv_run running until stop().

cdef void _on_idle(uv.uv_idle_t* handle) noexcept nogil:
    pass    # only keeps poll from blocking while callbacks are ready


cdef void _on_timer(uv.uv_timer_t* handle) noexcept nogil:
    pass    # only wakes poll: due timers are run in the check phase


cdef void _on_wake(uv.uv_async_t* handle) noexcept nogil:
    pass    # only wakes poll: call_soon_threadsafe queued the callback already


cdef void _on_prepare(uv.uv_prepare_t* handle) noexcept nogil:
    cdef bint may_block
    uvc_gil_ensure(handle.loop)
    with gil:
        may_block = (<BaseLoop>handle.data)._before_poll()
    # Not uv_backend_timeout(): it answers 0 whenever an fd waits to be
    # registered, though the poll that follows may then block for long.
    if may_block:
        uvc_gil_release(handle.loop)


cdef void _on_check(uv.uv_check_t* handle) noexcept nogil:
    uvc_gil_ensure(handle.loop)
    with gil:
        _guarded_check(<BaseLoop>handle.data)


cdef void _guarded_check(BaseLoop loop) noexcept:
    # A failure of the loop's own machinery (not of a callback: those go to
    # the exception handler) leaves run_forever() as an exception, rather than
    # being printed and leaving the loop in an unknown state.
    try:
        loop._on_check()
    except BaseException as exc:
        if loop._raise_after_run is None:
            loop._raise_after_run = exc
        uv.uv_stop(loop.uvloop)


cdef void _release_datagram(uv.uv_handle_t* handle, void* arg) noexcept with gil:
    # loop.close(): an open datagram transport lets go of the reference its
    # open handle held (closing the handle alone would keep it forever).
    if uv.uv_is_closing(handle) or handle.data == NULL:
        return
    obj = <object>handle.data
    if isinstance(obj, UDPTransport):
        try:
            (<UDPTransport>obj)._release()
        except BaseException:
            (<UVHandle>obj)._close()


cdef void _warn_unclosed(uv.uv_handle_t* handle, void* arg) noexcept with gil:
    # loop.close() with transports still open: asyncio warns when each is
    # collected; uvcore releases them now, so it warns now.
    if uv.uv_is_closing(handle) or handle.data == NULL:
        return
    obj = <object>handle.data
    try:
        if isinstance(obj, UVStream) and not (<UVStream>obj).closing:
            proxy = (<UVStream>obj).proxy
        elif isinstance(obj, UDPTransport) and not (<UDPTransport>obj).closing:
            proxy = (<UDPTransport>obj).proxy
        else:
            return
        if proxy is not None:
            warnings.warn(f"unclosed transport {proxy!r}", ResourceWarning,
                          source=proxy)
    except BaseException:
        pass        # a warning filter set to "error" must not stop close()


cdef double _MAX_TIMER_DELAY = 86400.0 * 365 * 30

# Batches of more callbacks than this are timed in groups of this many.
cdef enum:
    _TIMING_GROUP = 16


@cython.no_gc_clear     # __dealloc__ of an unclosed loop still needs its fields
cdef class BaseLoop:
    """The libuv-driven core of uvcore.Loop."""

    def __cinit__(self):
        cdef int err
        self.uvloop = <uv.uv_loop_t*>PyMem_RawCalloc(1, sizeof(uvc_loop_t))
        if self.uvloop == NULL:
            raise MemoryError()
        err = uv.uv_loop_init(self.uvloop)
        if err < 0:
            PyMem_RawFree(self.uvloop)
            self.uvloop = NULL
            raise uv_error(err)
        self.uvloop.data = <void*>self
        self.h = <LoopHandles*>PyMem_RawCalloc(1, sizeof(LoopHandles))
        if self.h == NULL:
            raise MemoryError()
        uv.uv_idle_init(self.uvloop, &self.h.idle)
        uv.uv_check_init(self.uvloop, &self.h.check)
        uv.uv_prepare_init(self.uvloop, &self.h.prepare)
        uv.uv_timer_init(self.uvloop, &self.h.timer)
        uv.uv_async_init(self.uvloop, &self.h.wake, _on_wake)
        self.h.idle.data = self.h.check.data = self.h.prepare.data = <void*>self
        self.h.timer.data = self.h.wake.data = <void*>self
        uv.uv_unref(<uv.uv_handle_t*>&self.h.wake)
        uv.uv_unref(<uv.uv_handle_t*>&self.h.timer)
        uv.uv_unref(<uv.uv_handle_t*>&self.h.prepare)
        uv.uv_check_start(&self.h.check, _on_check)
        memset(&self.m, 0, sizeof(uvc_metrics_t))
        self.m.slow_ticks = <uint64_t>-1      # slow-callback tracing off
        if UVC_METRICS:
            uv.uv_loop_configure(self.uvloop, uv.UV_METRICS_IDLE_TIME)
        uv.uv_prepare_start(&self.h.prepare, _on_prepare)
        ring_init(&self.ready, 64)
        heap_init(&self.timers)
        self._armed_when = -1.0
        self.slow_callback_duration = 0.1
        self._watchers = {}
        self._dirty_watchers = []
        self._lingering = []
        self._transports = {}
        self._sockio = {}
        self._flush_list = []
        self.read_buffer = <char*>PyMem_RawMalloc(READ_BUFFER_SIZE)
        if self.read_buffer == NULL:
            raise MemoryError()
        self._signal_handlers = {}
        self._work = set()
        self._debug = coroutines._is_debug_mode()
        _live_loops.add(self)

    def __dealloc__(self):
        # No Python-level attribute of self may be used here: for a subclass
        # instance, its __dict__ is already gone.
        self._closed = True
        if self.uvloop != NULL:
            self._close_uv(True)
        self._drop_ready()
        self._drop_timers()
        ring_free(&self.ready)
        heap_free(&self.timers)
        PyMem_RawFree(self.read_buffer)
        self.read_buffer = NULL
        PyMem_RawFree(self.dgram_buffer)
        self.dgram_buffer = NULL

    # -- state ---------------------------------------------------------------

    cdef inline int _require_open(self) except -1:
        if self._closed:
            raise RuntimeError('Event loop is closed')
        return 0

    cdef int _require_loop_thread(self) except -1:
        if self._thread_id is None:
            return 0
        if threading.get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other "
                "than the current one")
        return 0

    cdef int _require_callable(self, object callback, str method) except -1:
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f'a callable object was expected by {method}(), '
                            f'got {callback!r}')
        return 0

    def _check_closed(self):
        self._require_open()

    def _check_thread(self):
        self._require_loop_thread()

    def _check_callback(self, callback, method):
        self._require_callable(callback, method)

    def _ensure_fd_no_transport(self, fd):
        _ensure_fd_no_transport(self, fd)

    # -- connections (asyncio's create_* build on these) ----------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None):
        adopted = getattr(self, '_adopted_socks', None)
        return _make_stream_transport(self, sock, protocol, waiter, extra, server,
                                      adopted is not None and sock in adopted)

    def _make_datagram_transport(self, sock, protocol, address=None,
                                 waiter=None, extra=None):
        return _make_datagram_transport(self, sock, protocol, address, waiter, extra)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _make_pipe_transport(self, pipe, protocol, waiter, extra, False)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _make_pipe_transport(self, pipe, protocol, waiter, extra, True)

    def _start_serving(self, protocol_factory, sock, sslcontext=None,
                       server=None, backlog=100,
                       ssl_handshake_timeout=_SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT):
        _start_serving(self, protocol_factory, sock, sslcontext, server, backlog,
                       ssl_handshake_timeout, ssl_shutdown_timeout)

    def _stop_serving(self, sock):
        # Python 3.13+: create_unix_server records (in _unix_server_sockets)
        # the socket files to remove when the server stops, if still theirs.
        unix = getattr(self, '_unix_server_sockets', None)
        path = sock.getsockname() if unix and sock in unix else None
        _remove_watch(self, sock.fileno(), False)
        sock.close()
        if path is not None:
            inode = unix.pop(sock)
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error('Unable to clean up listening UNIX socket %r: %r',
                             path, err)

    def _check_running(self):
        if self._running:
            raise RuntimeError('This event loop is already running')
        if events._get_running_loop() is not None:
            raise RuntimeError(
                'Cannot run the event loop while another loop is running')

    def is_running(self):
        return self._running

    def is_closed(self):
        return self._closed

    def get_debug(self):
        return self._debug

    def set_debug(self, enabled):
        self._debug = bool(enabled)
        if self._running:
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, self._debug)

    def _set_coroutine_origin_tracking(self, bint enabled):
        if enabled:
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(0)

    @property
    def _thread_id(self):
        return self._thread_id

    @property
    def _closed(self):
        return self._closed

    @property
    def _debug(self):
        return self._debug

    @property
    def _stopping(self):
        return self._stopping

    def time(self):
        """time.monotonic(), at its full resolution."""
        return uvc_monotonic()

    # -- scheduling ----------------------------------------------------------

    cdef Handle _make_handle(self, object callback, tuple args, object context):
        cdef Handle h = Handle.__new__(Handle)
        _fill_handle(h, self, callback, args, context)
        if self._debug:
            h.tb = _extract_stack()
        return h

    cdef inline int _push_ready(self, Handle handle) except -1:
        ring_push(&self.ready, handle)
        if not self._idle_active:
            self._ensure_idle()
        return 0

    cdef int _ensure_idle(self) except -1:
        if not self._idle_active and not self._closed:
            uv.uv_idle_start(&self.h.idle, _on_idle)
            self._idle_active = True
        return 0

    def call_soon(self, callback, a0=_NOARG, a1=_NOARG, a2=_NOARG, /, *rest,
                  context=None):
        """Arrange for callback(*args) to be called soon, in FIFO order."""
        cdef Handle h
        if self._closed:
            raise RuntimeError('Event loop is closed')
        if self._debug:
            self._require_loop_thread()
            self._require_callable(callback, 'call_soon')
        h = Handle.__new__(Handle)
        _fill_inline(h, self, callback, a0, a1, a2, rest, context)
        if self._debug:
            h.tb = _extract_stack()
        ring_push(&self.ready, h)
        if not self._idle_active:
            self._ensure_idle()
        return h

    def call_soon_threadsafe(self, callback, a0=_NOARG, a1=_NOARG, a2=_NOARG,
                             /, *rest, context=None):
        """Like call_soon(), but may be called from any thread."""
        cdef Handle h
        if self._closed:
            raise RuntimeError('Event loop is closed')
        if self._debug:
            self._require_callable(callback, 'call_soon_threadsafe')
        h = Handle.__new__(Handle)
        _fill_inline(h, self, callback, a0, a1, a2, rest, context)
        if self._debug:
            h.tb = _extract_stack()
        # The GIL serialises this push with the loop thread's own use of the
        # queue; the wake-up makes a sleeping poll return. The loop may have
        # been closed by its thread meanwhile (allocating above can run a
        # finaliser, which can switch threads): check again, with no Python
        # code in between.
        ring_push(&self.ready, h)
        if self.h != NULL and not self._closed:
            uv.uv_async_send(&self.h.wake)
        return h

    def _write_to_self(self):
        # asyncio's name for "wake the loop up"; some libraries call it.
        if self.h != NULL and not self._closed:
            uv.uv_async_send(&self.h.wake)

    cdef TimerHandle _schedule_timer(self, double when, object callback,
                                     tuple args, object context):
        cdef TimerHandle th = TimerHandle.__new__(TimerHandle)
        _fill_handle(th, self, callback, args, context)
        th.deadline = when
        heap_push(&self.timers, when, th)
        th.in_heap = True
        return th

    def call_later(self, delay, callback, a0=_NOARG, a1=_NOARG, a2=_NOARG, /,
                   *rest, context=None):
        """Arrange for callback(*args) to be called `delay` seconds from now."""
        cdef TimerHandle th
        cdef double when
        if type(delay) is float:
            when = uvc_monotonic() + <double>delay
        elif delay is None:
            raise TypeError('delay must not be None')
        else:
            when = uvc_monotonic() + delay
        if self._closed:
            raise RuntimeError('Event loop is closed')
        if self._debug:
            self._require_loop_thread()
            self._require_callable(callback, 'call_later')
        th = TimerHandle.__new__(TimerHandle)
        _fill_inline(th, self, callback, a0, a1, a2, rest, context)
        th.deadline = when
        if self._debug:
            th.tb = _extract_stack()
        heap_push(&self.timers, when, th)
        th.in_heap = True
        return th

    def call_at(self, when, callback, a0=_NOARG, a1=_NOARG, a2=_NOARG, /,
                *rest, context=None):
        """Like call_later(), with an absolute time on the loop's clock."""
        cdef TimerHandle th
        cdef double deadline
        if when is None:
            raise TypeError('when cannot be None')
        deadline = when
        if self._closed:
            raise RuntimeError('Event loop is closed')
        if self._debug:
            self._require_loop_thread()
            self._require_callable(callback, 'call_at')
        th = TimerHandle.__new__(TimerHandle)
        _fill_inline(th, self, callback, a0, a1, a2, rest, context)
        th.deadline = deadline
        if self._debug:
            th.tb = _extract_stack()
        heap_push(&self.timers, deadline, th)
        th.in_heap = True
        return th

    def _timer_handle_cancelled(self, handle):
        # asyncio's hook, called by asyncio.TimerHandle.cancel(); uvcore's own
        # TimerHandle counts its cancellation in the heap itself.
        pass

    cdef int _compact_timers(self) except -1:
        # Rebuild the heap without its cancelled entries: O(n), done only when
        # they are the majority, so each cancel costs O(1) amortised. The
        # dropped references are released after the heap is whole again, since
        # releasing one may run code that schedules a timer.
        cdef TimerHeap* t = &self.timers
        cdef Py_ssize_t i, j = 0, ndrop = 0
        cdef TimerHandle th
        cdef PyObject** drop = <PyObject**>PyMem_Malloc(
            (t.cancelled + 1) * sizeof(PyObject*))
        if drop == NULL:
            raise MemoryError()
        for i in range(t.size):
            th = <TimerHandle>t.items[i].handle
            if th.is_cancelled and ndrop <= t.cancelled:
                th.in_heap = False
                drop[ndrop] = t.items[i].handle
                ndrop += 1
            else:
                t.items[j] = t.items[i]
                j += 1
        th = None
        t.size = j
        t.cancelled = 0
        i = j // 2 - 1
        while i >= 0:
            _sift_down(t, i)
            i -= 1
        for i in range(ndrop):
            Py_DECREF(drop[i])
        PyMem_Free(drop)
        return 0

    # -- one iteration -------------------------------------------------------

    cdef int _before_poll(self) except -1:
        # Arms the timer; returns whether the poll may block (then the loop
        # lets go of the GIL while it sleeps).
        cdef TimerHeap* t = &self.timers
        cdef TimerHandle th
        cdef PyObject* p
        cdef double delay
        cdef unsigned long long ms
        if self._flush_list:
            self._flush_writes()
        if self._lingering:
            _expire_lingering(self)
        if self._dirty_watchers:
            _verify_dirty_watchers(self)
        if t.cancelled > 32 and t.cancelled * 2 > t.size:
            self._compact_timers()
        if t.cap > 1024:
            heap_shrink(t)
        while t.size:
            th = <TimerHandle>t.items[0].handle
            if not th.is_cancelled:
                break
            p = heap_pop(t)
            th.in_heap = False
            t.cancelled -= 1
            Py_DECREF(p)
        if t.size == 0:
            if self._armed_when >= 0:
                uv.uv_timer_stop(&self.h.timer)
                self._armed_when = -1.0
            return self._may_block()
        if t.items[0].when != self._armed_when or \
                not uv.uv_is_active(<uv.uv_handle_t*>&self.h.timer):
            delay = t.items[0].when - uvc_monotonic()
            if delay <= 0:
                ms = 0
            elif delay < _MAX_TIMER_DELAY:
                ms = <unsigned long long>ceil(delay * 1000.0)
            else:
                ms = <unsigned long long>(_MAX_TIMER_DELAY * 1000.0)
            uv.uv_timer_start(&self.h.timer, _on_timer, ms, 0)
            self._armed_when = t.items[0].when
        return self._may_block()

    cdef int _flush_writes(self) except -1:
        # Stream writes queued during this iteration go out before the poll,
        # one vectored uv_write per transport.
        cdef list pending = self._flush_list
        self._flush_list = []
        for t in pending:
            (<UVStream>t)._flush()
        return 0

    cdef int _stop_with(self, object exc) except -1:
        # A SystemExit/KeyboardInterrupt raised in a callback made by libuv:
        # it leaves run_forever() at the end of this iteration.
        if self._raise_after_run is None:
            self._raise_after_run = exc
        if self.uvloop != NULL:
            uv.uv_stop(self.uvloop)
        return 0

    cdef inline bint _may_block(self) noexcept:
        return not (self._idle_active or self._stopping or
                    self._raise_after_run is not None)

    cdef int _on_check(self) except -1:
        cdef TimerHeap* t = &self.timers
        cdef TimerHandle th
        cdef PyObject* p
        cdef double now
        if self._raise_after_run is not None:
            return 0     # a signal handler raised during the poll: leave now
        self.iteration += 1
        if t.size:
            now = uvc_monotonic()
            self._check_now = now
            while t.size and t.items[0].when <= now:
                p = heap_pop(t)
                th = <TimerHandle>p
                Py_DECREF(p)
                th.in_heap = False
                if th.is_cancelled:
                    t.cancelled -= 1
                else:
                    ring_push(&self.ready, th)
        if self.ready.count:
            self._run_ready(self.ready.count)
        if self.ready.count == 0 and self.ready.cap > 4096:
            ring_shrink(&self.ready, 64)
        if self._stopping or self._raise_after_run is not None:
            uv.uv_stop(self.uvloop)
        elif self.ready.count:
            self._ensure_idle()
        elif self._idle_active:
            uv.uv_idle_stop(&self.h.idle)
            self._idle_active = False
        return 0

    cdef int _run_ready(self, Py_ssize_t n) except -1:
        # Callback timing (docs/architecture.md, "Metrics"): one TSC read per
        # callback, the end of one being the start of the next, when the batch
        # is small or slow-callback tracing is on. A big batch of callbacks
        # (call_soon storms) is timed in groups of _TIMING_GROUP: the read
        # costs ~2% of a 150 ns callback, and a group's time bounds its
        # longest callback (a slow one is nearly all of it).
        cdef Handle h
        cdef PyObject* p
        cdef uint64_t t0 = uvc_ticks()
        cdef uint64_t batch_t0 = t0
        cdef uint64_t t1
        cdef bint each = n <= _TIMING_GROUP or self._slow_tracer is not None
        cdef int left = _TIMING_GROUP
        while n > 0 and self.ready.count:
            n -= 1
            p = ring_pop(&self.ready)
            h = <Handle>p
            Py_DECREF(p)
            if h.is_cancelled:
                continue
            self.m.current_started = t0
            uvc_add(&self.m.callbacks_run, 1)
            if UVC_METRICS and type(h) is TimerHandle:
                # How late it runs: late when taken from the heap, plus the
                # callbacks run before it in this batch. No clock read.
                uvc_add(&self.m.timers_fired, 1)
                uvc_lag_record(&self.m, self._check_now,
                               self._check_now - (<TimerHandle>h).deadline
                               + _ticks_to_seconds(t0 - batch_t0))
            if self._debug:
                self._run_debug(h)
            else:
                try:
                    h._call()
                except (SystemExit, KeyboardInterrupt) as exc:
                    self._raise_after_run = exc
                except BaseException as exc:
                    self._report_callback_error(h, exc)
            if each:
                t1 = uvc_ticks()
                if uvc_callback_done(&self.m, t0, t1):
                    self._slow_callback(h, None, t0, t1 - t0)
                    t1 = uvc_ticks()
                t0 = t1
            else:
                left -= 1
                if left == 0:
                    left = _TIMING_GROUP
                    t1 = uvc_ticks()
                    uvc_callback_done(&self.m, t0, t1)
                    t0 = t1
            if not h.persistent:
                if Py_REFCNT(h) > 1:
                    # Someone else keeps the handle: let go of what it refers
                    # to. (Otherwise it is about to be freed anyway.)
                    _release_handle(h)
                else:
                    h.loop = NULL
            if self._raise_after_run is not None:
                break
        if not each and left != _TIMING_GROUP:
            uvc_callback_done(&self.m, t0, uvc_ticks())
        self.m.current_started = 0
        return 0

    cdef int _slow_callback(self, object what, object protocol, uint64_t started,
                            uint64_t ticks) except -1:
        # A callback ran longer than the tracing threshold: `what` is its
        # Handle, or for a protocol called straight from I/O the method's name.
        uvc_add(&self.m.slow_callbacks, 1)
        tracer = self._slow_tracer
        if tracer is not None:
            try:
                tracer.callback_done(what, protocol, _ticks_to_seconds(ticks), started)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.call_exception_handler({
                    'message': 'Slow-callback tracer failed', 'exception': exc})
        return 0

    cdef int _run_debug(self, Handle h) except -1:
        cdef double t0 = uvc_monotonic()
        cdef double dt
        self._current_handle = h
        try:
            h._call()
        except (SystemExit, KeyboardInterrupt) as exc:
            self._raise_after_run = exc
        except BaseException as exc:
            self._report_callback_error(h, exc)
        finally:
            self._current_handle = None
        dt = uvc_monotonic() - t0
        if dt >= self.slow_callback_duration:
            logger.warning('Executing %s took %.3f seconds', _format_handle(h), dt)
        return 0

    cdef int _report_callback_error(self, Handle h, object exc) except -1:
        cb = _format_callback_source(h.cb, h._args_tuple())
        context = {'message': f'Exception in callback {cb}',
                   'exception': exc, 'handle': h}
        if h.tb:
            context['source_traceback'] = h.tb
        self.call_exception_handler(context)
        return 0

    # -- run / stop / close --------------------------------------------------

    def run_forever(self):
        """Run until stop() is called."""
        self._require_open()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            self._running = True
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            self._run_uv()
        finally:
            self._running = False
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    cdef int _run_uv(self) except -1:
        cdef object exc
        wakeup = _SignalWakeup.install(self)
        self.m.run_started = uvc_ticks()
        try:
            if self._stopping or self.ready.count:
                self._ensure_idle()
            uv.uv_run(self.uvloop, uv.UV_RUN_DEFAULT)
            uvc_gil_ensure(self.uvloop)
        finally:
            if self.m.run_started:
                self.m.run_ticks += uvc_ticks() - self.m.run_started
                self.m.run_started = 0
            self.m.current_started = 0
            if wakeup is not None:
                wakeup.uninstall()
        exc = self._raise_after_run
        if exc is not None:
            self._raise_after_run = None
            raise exc
        return 0

    def run_until_complete(self, future):
        """Run until the future (or coroutine) is done; return its result."""
        self._require_open()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # The caller cannot see the task: don't log "destroy pending task".
            future._log_destroy_pending = False
        future.add_done_callback(_stop_loop_of)
        try:
            self.run_forever()
        except:
            if new_task and future.done() and not future.cancelled():
                future.exception()    # consumed: it is raised here
            raise
        finally:
            future.remove_done_callback(_stop_loop_of)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def stop(self):
        """Stop after the callbacks that are ready now have run."""
        self._stopping = True
        if not self._closed and (self._thread_id is None or
                                 self._thread_id == threading.get_ident()):
            self._ensure_idle()

    def close(self):
        """Close the loop: drop pending callbacks, release every libuv handle."""
        if self._running:
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            logger.debug("Close %r", self)
        self._closed = True
        self._drop_ready()
        self._drop_timers()
        self._shutdown_executor_nowait()
        self._close_uv(False)

    cdef int _drop_ready(self) except -1:
        # Take the queue's contents out first: releasing a handle can run a
        # finaliser, which can schedule (or cancel) callbacks.
        cdef ReadyRing* r = &self.ready
        cdef Py_ssize_t i, n = r.count
        cdef PyObject** items
        if n == 0:
            return 0
        items = <PyObject**>PyMem_Malloc(n * sizeof(PyObject*))
        if items == NULL:
            raise MemoryError()
        for i in range(n):
            items[i] = ring_pop(r)
        for i in range(n):
            _release_handle(<Handle>items[i])
        for i in range(n):
            Py_DECREF(items[i])
        PyMem_Free(items)
        return 0

    cdef int _drop_timers(self) except -1:
        # As _drop_ready: the heap is emptied before any handle is released.
        cdef TimerHeap* t = &self.timers
        cdef Py_ssize_t i, n = t.size
        cdef TimerEntry* items = t.items
        if n == 0:
            return 0
        t.items = <TimerEntry*>PyMem_Malloc(t.cap * sizeof(TimerEntry))
        if t.items == NULL:
            t.items = items
            raise MemoryError()
        t.size = 0
        t.cancelled = 0
        for i in range(n):
            (<TimerHandle>items[i].handle).in_heap = False
        for i in range(n):
            _release_handle(<Handle>items[i].handle)
        for i in range(n):
            Py_DECREF(items[i].handle)
        PyMem_Free(items)
        return 0

    cdef int _close_uv(self, bint dealloc) except -1:
        # Every handle goes through uv_close and its close callback before the
        # memory goes; the loop is freed only when libuv reports it idle.
        cdef uv.uv_loop_t* loop = self.uvloop
        if loop == NULL:
            return 0
        if not dealloc:
            uv.uv_walk(loop, _warn_unclosed, NULL)
        if self._transports:
            for proxy in list(self._transports.values()):
                (<UVStream>proxy._impl)._release()
        uv.uv_walk(loop, _release_datagram, NULL)
        _close_watchers(self, dealloc)
        _wait_for_work(self)
        uv.uv_close(<uv.uv_handle_t*>&self.h.idle, NULL)
        uv.uv_close(<uv.uv_handle_t*>&self.h.check, NULL)
        uv.uv_close(<uv.uv_handle_t*>&self.h.prepare, NULL)
        uv.uv_close(<uv.uv_handle_t*>&self.h.timer, NULL)
        uv.uv_close(<uv.uv_handle_t*>&self.h.wake, NULL)
        self._idle_active = False
        uv.uv_run(loop, uv.UV_RUN_NOWAIT)
        while uv.uv_loop_close(loop) == uv.UV_EBUSY:
            uv.uv_walk(loop, _close_stray, NULL)
            uv.uv_run(loop, uv.UV_RUN_NOWAIT)
        PyMem_RawFree(self.h)
        self.h = NULL
        PyMem_RawFree(loop)
        self.uvloop = NULL
        return 0

    def _after_fork_in_child(self):
        # The child shares the parent's epoll set and wake-up fds: give it its
        # own, so nothing it does (closing the loop included) touches the parent's.
        if self.uvloop != NULL and not self._closed:
            self._forked = True
            uv.uv_loop_fork(self.uvloop)

    # -- file descriptors, signals, DNS --------------------------------------

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever fd is readable."""
        _add_watch(self, fd, callback, args, False)

    def remove_reader(self, fd):
        """Stop watching fd for reading; True if it was watched."""
        return _remove_watch(self, fd, False)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever fd is writable."""
        _add_watch(self, fd, callback, args, True)

    def remove_writer(self, fd):
        """Stop watching fd for writing; True if it was watched."""
        return _remove_watch(self, fd, True)

    def add_signal_handler(self, sig, callback, *args):
        """Call callback(*args) from the loop when signal sig arrives."""
        _add_signal_handler(self, sig, callback, args)

    def remove_signal_handler(self, sig):
        """Remove the handler for sig; True if there was one."""
        return _remove_signal_handler(self, sig)

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        return await _getaddrinfo(self, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        return await _getnameinfo(self, sockaddr, flags)

    # -- futures and tasks ---------------------------------------------------

    def create_future(self):
        """A Future attached to this loop."""
        return Future(loop=self)

    def create_task(self, coro, *, name=None, context=None,
                    eager_start=_NOARG):
        """Schedule the execution of a coroutine; return its Task."""
        self._require_open()
        uvc_add(&self.m.tasks_created, 1)
        if self._task_factory is None:
            if eager_start is not _NOARG:
                task = Task(coro, loop=self, name=name, context=context,
                            eager_start=eager_start)
            elif context is not None:
                task = Task(coro, loop=self, name=name, context=context)
            elif name is not None:
                task = Task(coro, loop=self, name=name)
            else:
                task = Task(coro, loop=self)
            if self._debug and task._source_traceback:
                del task._source_traceback[-1]
            return task
        kwargs = {}
        if context is not None:
            kwargs['context'] = context
        if eager_start is not _NOARG:
            kwargs['eager_start'] = eager_start
        task = self._task_factory(self, coro, **kwargs)
        if name is not None:
            task.set_name(name)
        return task

    # -- metrics and slow-callback tracing -------------------------------------

    def metrics(self):
        """Counters and timings kept by the loop, as a dict (see the README)."""
        return _loop_metrics(self)

    def _set_slow_tracer(self, tracer, threshold):
        # diagnostics.py: tracer.callback_done() is called for every callback
        # that runs longer than threshold seconds (None: tracing off).
        self._slow_tracer = tracer
        _set_slow_threshold(self, None if tracer is None else threshold)

    def _watch_state(self):
        return _watch_state(self)

    def _count_bytes_written(self, n):
        # For writes made outside the transports' own paths (sendfile).
        uvc_add(&self.m.bytes_written, n)

    def set_task_factory(self, factory):
        if factory is not None and not callable(factory):
            raise TypeError('task factory must be a callable or None')
        self._task_factory = factory

    def get_task_factory(self):
        return self._task_factory

    def __repr__(self):
        return (f'<{type(self).__name__} running={self.is_running()} '
                f'closed={self.is_closed()} debug={self.get_debug()}>')


cdef inline int _fill_handle(Handle h, BaseLoop loop, object callback, tuple args,
                             object context) except -1:
    cdef Py_ssize_t n = len(args)
    h.cb = callback
    h.loop = <PyObject*>loop
    h.nargs = n
    if n > 3:
        h.extra = args
    else:
        if n > 0:
            h.a0 = args[0]
        if n > 1:
            h.a1 = args[1]
        if n > 2:
            h.a2 = args[2]
    h.ctx = context if context is not None else PyContext_CopyCurrent()
    return 0


cdef inline int _fill_inline(Handle h, BaseLoop loop, object callback, object a0,
                             object a1, object a2, tuple rest,
                             object context) except -1:
    h.cb = callback
    h.loop = <PyObject*>loop
    if a0 is _NOARG:
        h.nargs = 0
    elif a1 is _NOARG:
        h.a0 = a0
        h.nargs = 1
    elif a2 is _NOARG:
        h.a0 = a0
        h.a1 = a1
        h.nargs = 2
    elif not rest:
        h.a0 = a0
        h.a1 = a1
        h.a2 = a2
        h.nargs = 3
    else:
        h.extra = (a0, a1, a2) + rest
        h.nargs = len(h.extra)
    h.ctx = context if context is not None else PyContext_CopyCurrent()
    return 0


def _own_stop_loop_of(fut):
    # run_until_complete's done-callback.
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return   # run_forever raises it; stopping here would swallow it
    futures._get_loop(fut).stop()


# asyncio's own function where it has one (the same behaviour): libraries
# find the task run_until_complete drives by this done-callback (anyio's
# find_root_task; without it every to_thread call scanned all tasks).
try:
    from asyncio.base_events import _run_until_complete_cb as _stop_loop_of
except ImportError:     # pragma: no cover
    _stop_loop_of = _own_stop_loop_of


cdef object _extract_stack():
    # The frames of the Python code that called into the loop (Cython
    # functions have no frames of their own).
    return format_helpers.extract_stack(sys._getframe(0))
