# Signals. add_signal_handler watches a signal with uv_signal_t; its callback
# runs from the ready queue, like asyncio's. While the loop runs in the main
# thread, Python's own signal handlers (SIGINT's KeyboardInterrupt included)
# must still run promptly even though the thread sleeps inside libuv: Python's
# C-level handler writes to the wake-up fd (signal.set_wakeup_fd), which the
# loop polls, and the poll callback runs the pending Python handlers.

import signal as _signal


cdef void _on_signal(uv.uv_signal_t* handle, int signum) noexcept nogil:
    uvc_gil_ensure(handle.loop)
    with gil:
        (<SignalWatcher>handle.data)._fire()


cdef void _on_wakeup_readable(uv.uv_poll_t* handle, int status, int events) noexcept nogil:
    uvc_gil_ensure(handle.loop)
    with gil:
        (<_SignalWakeup>handle.data)._on_readable()


@cython.no_gc_clear
cdef class SignalWatcher(UVHandle):

    cdef int _fire(self) except -1:
        if self.callback is not None and not self.callback.is_cancelled:
            self.loop._push_ready(self.callback)
        return 0


@cython.no_gc_clear
cdef class _SignalWakeup(UVHandle):

    @staticmethod
    def install(BaseLoop loop):
        # Returns the wake-up to uninstall after the run, or None outside the
        # main thread (where Python runs no signal handlers).
        cdef _SignalWakeup w
        cdef int err
        if loop.uvloop == NULL or \
                threading.current_thread() is not threading.main_thread():
            return None
        w = loop._wakeup
        if w is None:
            w = _SignalWakeup.__new__(_SignalWakeup)
            w.rsock, w.wsock = socket.socketpair()
            w.rsock.setblocking(False)
            w.wsock.setblocking(False)
            w._alloc(loop, sizeof(uv.uv_poll_t))
            err = uv.uv_poll_init(loop.uvloop, <uv.uv_poll_t*>w.handle,
                                  w.rsock.fileno())
            if err < 0:
                w.rsock.close()
                w.wsock.close()
                w._init_failed(err)
            uv.uv_unref(w.handle)
            loop._wakeup = w
        try:
            w.old_fd = _signal.set_wakeup_fd(w.wsock.fileno(),
                                             warn_on_full_buffer=False)
        except (ValueError, OSError):
            return None     # not the main interpreter
        uv.uv_poll_start(<uv.uv_poll_t*>w.handle, uv.UV_READABLE, _on_wakeup_readable)
        w.installed = True
        return w

    def uninstall(self):
        if not self.installed:
            return
        self.installed = False
        if self.handle != NULL:
            uv.uv_poll_stop(<uv.uv_poll_t*>self.handle)
        try:
            _signal.set_wakeup_fd(self.old_fd)
        except (ValueError, OSError):
            pass
        self.old_fd = None

    cdef int _on_readable(self) except -1:
        cdef BaseLoop loop = self.loop
        try:
            while self.rsock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        try:
            PyErr_CheckSignals()
        except BaseException as exc:
            # A Python signal handler raised (KeyboardInterrupt for SIGINT):
            # it leaves run_forever() now, as it would from asyncio's select().
            if loop._raise_after_run is None:
                loop._raise_after_run = exc
            uv.uv_stop(loop.uvloop)
        return 0


cdef int _check_signal(object sig) except -1:
    if not isinstance(sig, int):
        raise TypeError(f'sig must be an int, not {sig!r}')
    if sig not in _signal.valid_signals():
        raise ValueError(f'invalid signal number {sig}')
    return 0


cdef object _add_signal_handler(BaseLoop loop, object sig, object callback,
                                tuple args):
    cdef SignalWatcher w
    cdef int err
    if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
        raise TypeError("coroutines cannot be used with add_signal_handler()")
    _check_signal(sig)
    loop._require_open()
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError('set_wakeup_fd only works in main thread of the '
                           'main interpreter')
    h = loop._make_handle(callback, args, None)
    h.persistent = True
    w = loop._signal_handlers.get(sig)
    if w is None:
        w = SignalWatcher.__new__(SignalWatcher)
        w._alloc(loop, sizeof(uv.uv_signal_t))
        err = uv.uv_signal_init(loop.uvloop, <uv.uv_signal_t*>w.handle)
        if err < 0:
            w._init_failed(err)
        w.signum = sig
        # libuv installs its own handler (sigaction) unless one of its handles
        # in this process already watches the signal.
        err = uv.uv_signal_start(<uv.uv_signal_t*>w.handle, _on_signal, sig)
        if err < 0:
            w._close()
            if err == uv.UV_EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise uv_error(err)
        uv.uv_unref(w.handle)
        loop._signal_handlers[sig] = w
    elif w.callback is not None:
        w.callback.cancel()
    w.callback = h


cdef bint _remove_signal_handler(BaseLoop loop, object sig) except -1:
    cdef SignalWatcher w
    _check_signal(sig)
    w = loop._signal_handlers.pop(sig, None)
    if w is None:
        return False
    if w.callback is not None:
        w.callback.cancel()
    w._close()          # libuv gives the signal back its default disposition
    handler = _signal.default_int_handler if sig == _signal.SIGINT else _signal.SIG_DFL
    try:
        _signal.signal(sig, handler)
    except OSError as exc:
        if exc.errno == errno_mod.EINVAL:
            raise RuntimeError(f'sig {sig:d} cannot be caught')
        raise
    except ValueError:
        pass    # not in the main thread: libuv already reset the disposition
    return True


cdef int _close_signal_watchers(BaseLoop loop, bint dealloc) except -1:
    # dealloc: the loop is being freed; it must not be handed to Python code.
    if not loop._signal_handlers:
        return 0
    if sys.is_finalizing():
        if not dealloc:
            warnings.warn(f"Closing the loop {loop!r} on interpreter shutdown "
                          f"stage, skipping signal handlers removal",
                          ResourceWarning, source=loop)
        for w in loop._signal_handlers.values():
            (<SignalWatcher>w)._close()
        loop._signal_handlers.clear()
        return 0
    for sig in list(loop._signal_handlers):
        _remove_signal_handler(loop, sig)
    return 0
