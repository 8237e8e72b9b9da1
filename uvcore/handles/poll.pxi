# add_reader / add_writer: one uv_poll_t per watched fd, carrying the reader
# and writer Handles. Readiness puts the Handle on the ready queue, as asyncio
# does, so the callback runs in the same phase as every other callback.
#
# libuv registers fds with epoll lazily, in its poll phase, and aborts if epoll
# refuses; so an fd whose watch changed since the last poll is checked just
# before the poll (closed, or reused by a regular file: the watch is dropped,
# as epoll drops a closed fd), and a change of events restarts the watch
# (epoll ADD rather than MOD, which fails on an fd closed and reused).

from libc.errno cimport errno, EBADF
from posix.stat cimport struct_stat, fstat, S_ISREG, S_ISDIR


cdef void _on_poll(uv.uv_poll_t* handle, int status, int events) noexcept nogil:
    uvc_gil_ensure(handle.loop)
    with gil:
        (<FdWatcher>handle.data)._on_events(status, events)


@cython.no_gc_clear
cdef class FdWatcher(UVHandle):

    @staticmethod
    cdef FdWatcher new(BaseLoop loop, int fd):
        cdef FdWatcher w = FdWatcher.__new__(FdWatcher)
        cdef int err
        _reserve_watchers(loop, fd)
        w._alloc(loop, sizeof(uv.uv_poll_t))
        err = uv.uv_poll_init(loop.uvloop, <uv.uv_poll_t*>w.handle, fd)
        if err < 0:
            w._init_failed(err)
        w.fd = fd
        return w

    cdef int _update(self) except -1:
        cdef int mask = 0
        cdef int err
        if self.reader is not None:
            mask |= uv.UV_READABLE
        if self.writer is not None:
            mask |= uv.UV_WRITABLE
        if mask == self.mask or self.handle == NULL:
            return 0
        if self.mask:
            uv.uv_poll_stop(<uv.uv_poll_t*>self.handle)
        self.mask = mask
        if mask:
            err = uv.uv_poll_start(<uv.uv_poll_t*>self.handle, mask, _on_poll)
            if err < 0:
                raise uv_error(err)
            if not self.dirty:
                self.dirty = True
                self.loop._dirty_watchers.append(self)
        return 0

    cdef int _verify_fd(self) except -1:
        # Called before the poll for a watch that changed since the last one.
        cdef struct_stat st
        self.dirty = False
        if self.handle == NULL or not self.mask:
            return 0
        if fstat(self.fd, &st) == 0 and not S_ISREG(st.st_mode) \
                and not S_ISDIR(st.st_mode):
            return 0
        # epoll would refuse this fd: stop watching it (its callbacks will not
        # be called, as with asyncio's selector once an fd is closed).
        uv.uv_poll_stop(<uv.uv_poll_t*>self.handle)
        self.mask = 0
        return 0

    cdef int _unregister(self) except -1:
        # Stop the epoll registration (the next start registers afresh).
        if self.mask and self.handle != NULL:
            uv.uv_poll_stop(<uv.uv_poll_t*>self.handle)
        self.mask = 0
        return 0

    cdef int _on_events(self, int status, int events) except -1:
        cdef BaseLoop loop = self.loop
        if self.reader is None and self.writer is None:
            self._unregister()      # a lingering watch saw an event: stop it
            return 0
        if status < 0:
            # An error on the fd: let both callbacks find it out.
            events = uv.UV_READABLE | uv.UV_WRITABLE
        if events & (uv.UV_READABLE | uv.UV_DISCONNECT) and self.reader is not None:
            if not self.reader.is_cancelled:
                loop._push_ready(self.reader)
        if events & uv.UV_WRITABLE and self.writer is not None:
            if not self.writer.is_cancelled:
                loop._push_ready(self.writer)
        return 0


cdef object _fileobj_to_pyfd(object fileobj):
    # selectors' rules: an int, or an object with fileno(); the result is a
    # Python int >= 0 of any size.
    if isinstance(fileobj, int):
        fd = int(fileobj)
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


cdef int _fileobj_to_fd(object fileobj) except -1:
    # As above, for a descriptor that is about to be used: one that does not
    # fit a C int cannot be open, so it is refused the way epoll refuses it.
    fd = _fileobj_to_pyfd(fileobj)
    if fd > INT_MAX:
        raise OverflowError(f"file descriptor {fd} is out of range")
    return fd


cdef int _ensure_fd_no_transport(BaseLoop loop, object fd) except -1:
    cdef int fileno = _fileobj_to_fd(fd)
    transport = loop._transports.get(fileno)
    if transport is not None:
        raise RuntimeError(f'File descriptor {fd!r} is used by transport '
                           f'{transport!r}')
    return 0


cdef object _add_watch(BaseLoop loop, object fileobj, object callback, tuple args,
                       bint writing, object sock_key=None, bint own=False):
    # own: a transport watching its own fd (a write pipe's hang-up watch).
    # sock_key: the socket object, for the sock_* methods. A watch left
    # lingering by a sock_* wait on the same socket object is reused as it
    # is (no epoll change at all); any other use registers the fd afresh.
    cdef int fd
    cdef FdWatcher w
    cdef Handle h, old
    loop._require_open()
    fd = _fileobj_to_fd(fileobj)
    if loop._transports and not own:
        _ensure_fd_no_transport(loop, fd)
    h = loop._make_handle(callback, args, None)
    h.persistent = True
    w = loop._watchers.get(fd)
    if w is None:
        w = FdWatcher.new(loop, fd)
        loop._watchers[fd] = w
    elif w.lingering:
        w.lingering = False
        if sock_key is None or w.sock_key is not sock_key:
            w._unregister()
    w.sock_key = sock_key
    if writing:
        old = w.writer
        w.writer = h
    else:
        old = w.reader
        w.reader = h
    if old is not None:
        old.cancel()
    try:
        w._update()
    except BaseException:
        _remove_watch(loop, fileobj, writing)
        raise
    return h


cdef bint _remove_watch(BaseLoop loop, object fileobj, bint writing) except -1:
    cdef int fd
    cdef FdWatcher w
    cdef Handle old
    pyfd = _fileobj_to_pyfd(fileobj)
    if loop._closed or pyfd > INT_MAX:
        # Nothing can be registered under a descriptor beyond a C int.
        return False
    fd = pyfd
    w = loop._watchers.get(fd)
    if w is None:
        return False
    if writing:
        old = w.writer
        w.writer = None
    else:
        old = w.reader
        w.reader = None
    if w.reader is None and w.writer is None:
        del loop._watchers[fd]
        w._close()
    else:
        w._update()
    if old is None:
        return False
    old.cancel()
    return True


cdef int _linger_watch(BaseLoop loop, int fd, bint writing) except -1:
    # A sock_* wait is over. Its watch stays registered for a couple of
    # iterations, since the same task usually waits on the same socket again
    # soon (ping-pong): that saves an epoll DEL and ADD per wait.
    cdef FdWatcher w = loop._watchers.get(fd)
    cdef Handle old
    if w is None:
        return 0
    if writing:
        old = w.writer
        w.writer = None
    else:
        old = w.reader
        w.reader = None
    if old is not None:
        old.cancel()
    if w.reader is None and w.writer is None and w.sock_key is not None:
        w.lingering = True
        w.idle_since = loop.iteration
        loop._lingering.append(w)
    elif w.reader is None and w.writer is None:
        del loop._watchers[fd]
        w._close()
    else:
        w._update()
    return 0


cdef int _expire_lingering(BaseLoop loop) except -1:
    # Before the poll: close the lingering watches not reused since.
    cdef list keep = []
    cdef FdWatcher w
    for w in loop._lingering:
        if not w.lingering or w.handle == NULL:
            continue
        if loop.iteration - w.idle_since < 2:
            keep.append(w)
            continue
        w.lingering = False
        w.sock_key = None
        if loop._watchers.get(w.fd) is w:
            del loop._watchers[w.fd]
        w._close()
    loop._lingering = keep
    return 0


cdef int _drop_idle_watch(BaseLoop loop, int fd) except -1:
    # A transport is about to own fd: libuv allows one watcher per fd.
    cdef FdWatcher w = loop._watchers.get(fd)
    if w is not None and w.reader is None and w.writer is None:
        w.lingering = False
        del loop._watchers[fd]
        w._close()
    return 0


cdef int _verify_dirty_watchers(BaseLoop loop) except -1:
    cdef list dirty = loop._dirty_watchers
    cdef FdWatcher w
    if dirty:
        loop._dirty_watchers = []
        for w in dirty:
            w._verify_fd()
    return 0


cdef int _close_watchers(BaseLoop loop, bint dealloc) except -1:
    cdef FdWatcher w
    for w in loop._watchers.values():
        if w.reader is not None:
            w.reader.cancel()
        if w.writer is not None:
            w.writer.cancel()
        w._close()
    loop._watchers.clear()
    loop._dirty_watchers = []
    loop._lingering = []
    _close_signal_watchers(loop, dealloc)
    if loop._wakeup is not None:
        (<_SignalWakeup>loop._wakeup)._close()
        (<_SignalWakeup>loop._wakeup).rsock.close()
        (<_SignalWakeup>loop._wakeup).wsock.close()
        loop._wakeup = None
    return 0
