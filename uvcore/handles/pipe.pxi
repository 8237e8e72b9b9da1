# Pipe transports for connect_read_pipe / connect_write_pipe (and so for a
# subprocess's stdin, stdout and stderr): a UVStream on a uv_pipe_t.
#
# The pipe object stays the caller's, as in asyncio: it is closed when the
# transport has told its protocol connection_lost, not before. libuv works on
# a duplicate of its fd, so the two closes never meet on one fd number.
#
# A read pipe that is found full (a read returned its whole capacity: the
# writer is faster than the default 64 KiB lets it be) is grown once, to
# PIPE_GROWN_SIZE: a child's output through `cat` went from ~1.1 to ~2.5 GiB/s
# here (docs/architecture.md). Only pipes that fill up are grown, so that
# many quiet children do not use up the user's pipe-buffer allowance.
#
# A write pipe learns that its reader went away without writing to it: its
# own fd (not the duplicate, which libuv's stream owns) is watched for the
# error epoll reports on a pipe with no reader, as asyncio watches it, for
# FIFOs and sockets.

from posix.stat cimport S_ISFIFO, S_ISSOCK, S_ISCHR
from libc.errno cimport EIO
import fcntl as _fcntl

cdef int PIPE_GROWN_SIZE = 256 * 1024


cdef int _epoll_accepts(int fd) except -1:
    # Character devices such as /dev/null cannot be polled: epoll refuses
    # them, and libuv aborts the process if that happens in its poll phase.
    import select
    ep = select.epoll()
    try:
        ep.register(fd, select.EPOLLIN)
    except OSError:
        return 0
    finally:
        ep.close()
    return 1


@cython.no_gc_clear
cdef class PipeTransport(UVStream):

    cdef int _open_pipe(self, BaseLoop loop, object pipe, object protocol,
                        object waiter, object extra, bint writing) except -1:
        cdef int err
        cdef int fd = pipe.fileno()
        cdef int dup_fd
        mode = os.fstat(fd).st_mode
        if writing:
            if not (S_ISFIFO(mode) or S_ISSOCK(mode) or S_ISCHR(mode)):
                raise ValueError('Pipe transport is only for pipes, sockets and '
                                 'character devices')
        elif not (S_ISFIFO(mode) or S_ISSOCK(mode) or S_ISCHR(mode)):
            raise ValueError('Pipe transport is for pipes/sockets only.')
        if S_ISCHR(mode) and not writing and not _epoll_accepts(fd):
            raise OSError(errno_mod.EPERM,
                          f'{pipe!r} cannot be watched for reading')
        self.writing = writing
        self.grow_at = 0
        if S_ISFIFO(mode) and not writing:
            try:
                capacity = _fcntl.fcntl(fd, _fcntl.F_GETPIPE_SZ)
            except (OSError, AttributeError):
                capacity = PIPE_GROWN_SIZE
            if capacity < PIPE_GROWN_SIZE:
                self.grow_at = capacity
        self.watch_hangup = writing and (S_ISFIFO(mode) or S_ISSOCK(mode))
        os.set_blocking(fd, False)
        dup_fd = os.dup(fd)
        try:
            _reserve_watchers(loop, dup_fd)
        except MemoryError:
            os.close(dup_fd)
            raise
        self._alloc(loop, sizeof(uv.uv_pipe_t))
        err = uv.uv_pipe_init(loop.uvloop, <uv.uv_pipe_t*>self.handle, 0)
        if err < 0:
            os.close(dup_fd)
            self._init_failed(err)
        err = uv.uv_pipe_open(<uv.uv_pipe_t*>self.handle, dup_fd)
        if err < 0:
            os.close(dup_fd)
            self._close()
            raise uv_error(err)
        self.pipe = pipe
        self.fd = fd
        self.closing = False
        self.high_water = 64 * 1024
        self.low_water = 16 * 1024
        self.wq = []
        self.extra = {} if extra is None else dict(extra)
        self.extra['pipe'] = pipe
        self._set_protocol(protocol)
        if writing:
            self.proxy = WritePipeProxy(self)
        else:
            self.proxy = ReadPipeProxy(self)
        loop._transports[fd] = self.proxy
        Py_INCREF(<PyObject*>self)      # open: kept alive by its libuv handle
        self.alive = True
        loop.call_soon(protocol.connection_made, self.proxy)
        loop.call_soon(self._connection_made, waiter)
        return 0

    cdef int _set_protocol(self, object protocol) except -1:
        if self.writing:         # a write pipe's protocol need not read
            self.protocol = protocol
            self.protocol_connected = True
            return 0
        return UVStream._set_protocol(self, protocol)

    cdef int _fatal_error(self, object exc, str message) except -1:
        cdef BaseLoop loop = self.loop
        if loop is None:
            return 0
        if isinstance(exc, OSError):
            # asyncio: a pipe's EIO (a pty whose other side closed) is only
            # logged in debug mode; write errors too; other read errors go to
            # the exception handler.
            if exc.errno == EIO or self.writing:
                if loop._debug:
                    logger.debug("%r: %s", self.proxy, message, exc_info=True)
            else:
                loop.call_exception_handler({
                    'message': 'Fatal read error on pipe transport',
                    'exception': exc,
                    'transport': self.proxy,
                    'protocol': self.protocol,
                })
        else:
            loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self.proxy,
                'protocol': self.protocol,
            })
        self._force_close(exc)
        return 0

    cdef int _release(self) except -1:
        cdef BaseLoop loop = self.loop
        if not self.alive:
            return 0
        self.alive = False
        self._stop_reading()
        self._release_view()
        if loop is not None and loop._transports is not None:
            if loop._transports.get(self.fd) is self.proxy:
                del loop._transports[self.fd]
        if self.hangup_watched:
            self.hangup_watched = False
            if loop is not None and not loop._closed:
                _remove_watch(loop, self.fd, False)
        self._close()                   # closes libuv's duplicate
        self.protocol = None
        pipe = self.pipe
        self.pipe = None
        try:
            pipe.close()                # the caller's object, as asyncio does
        finally:
            Py_DECREF(<PyObject*>self)  # the reference taken in _open_pipe
        return 0

    def _repr(self, str name):
        info = [name]
        if not self.alive:
            info.append('closed')
        elif self.closing:
            info.append('closing')
        info.append(f'fd={self.fd}')
        return '<{}>'.format(' '.join(info))


@cython.no_gc_clear
cdef class ReadPipeTransport(PipeTransport):

    cdef int _on_read(self, ssize_t nread) except -1:
        if self.grow_at and nread >= self.grow_at:
            self.grow_at = 0            # one attempt
            try:
                _fcntl.fcntl(self.fd, _fcntl.F_SETPIPE_SZ, PIPE_GROWN_SIZE)
            except OSError:
                pass                    # over the user's pipe allowance
        return UVStream._on_read(self, nread)

    cdef int _deliver(self, BaseLoop loop, ssize_t nread) except -1:
        # asyncio's read pipe calls data_received from its reader callback:
        # an exception there is that callback's, reported, and reading goes on.
        if self.buffered:
            return UVStream._deliver(self, loop, nread)
        try:
            data = PyBytes_FromStringAndSize(loop.read_buffer, nread)
        except MemoryError as exc:
            self._fatal_error(exc, 'Fatal read error on pipe transport')
            return 0
        try:
            self.data_received(data)
        except (SystemExit, KeyboardInterrupt) as exc:
            loop._stop_with(exc)
        except BaseException as exc:
            loop.call_exception_handler({
                'message': f'Exception in callback {type(self.proxy).__name__}'
                           f'._read_ready()',
                'exception': exc,
                'transport': self.proxy,
                'protocol': self.protocol,
            })
        return 0

    cdef int _on_eof(self) except -1:
        cdef BaseLoop loop = self.loop
        if loop._debug:
            logger.info("%r was closed by peer", self.proxy)
        self.closing = True
        self._stop_reading()
        self.conn_lost += 1
        loop.call_soon(self.protocol.eof_received)
        loop.call_soon(self._call_connection_lost, None)
        return 0


@cython.no_gc_clear
cdef class WritePipeTransport(PipeTransport):

    def _connection_made(self, waiter):
        self.started = True
        if self.watch_hangup and not self.closing and self.loop is not None:
            _add_watch(self.loop, self.fd, self._on_hangup, (), False, None, True)
            self.hangup_watched = True
        if waiter is not None and not waiter.cancelled():
            waiter.set_result(None)

    def _on_hangup(self):
        # The reader is gone (or, for a socket, sent something): asyncio
        # closes the transport, with BrokenPipeError if data was waiting.
        if self.hangup_watched:
            self.hangup_watched = False
            _remove_watch(self.loop, self.fd, False)
        if self.conn_lost:
            return
        if self.wq_bytes or self.inflight_bytes:
            self._force_close(BrokenPipeError())
        else:
            self._force_close(None)

    def write(self, data):
        if self.closing or self.conn_lost:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f'data argument must be a bytes-like object, '
                                f'not {type(data).__name__!r}')
            if not data:
                return
            if self.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('pipe closed by peer or '
                               'os.write(pipe, data) raised exception.')
            self.conn_lost += 1
            return
        UVStream.write(self, data)

    def write_eof(self):
        # asyncio: the end of writing is the end of the pipe.
        self.close()


cdef object _make_pipe_transport(BaseLoop loop, object pipe, object protocol,
                                 object waiter, object extra, bint writing):
    cdef PipeTransport t
    loop._require_open()
    if writing:
        t = WritePipeTransport.__new__(WritePipeTransport)
    else:
        t = ReadPipeTransport.__new__(ReadPipeTransport)
    t._open_pipe(loop, pipe, protocol, waiter, extra, writing)
    return t.proxy


class ReadPipeProxy(ReadTransport):
    """The transport a protocol sees for connect_read_pipe."""

    __slots__ = ('_impl', 'get_extra_info', 'is_closing', 'pause_reading',
                 'resume_reading', 'is_reading', '__weakref__')

    def __init__(self, impl):
        self._impl = impl
        self.get_extra_info = impl.get_extra_info
        self.is_closing = impl.is_closing
        self.pause_reading = impl.pause_reading
        self.resume_reading = impl.resume_reading
        self.is_reading = impl.is_reading

    def close(self):
        self._impl.close()

    def set_protocol(self, protocol):
        self._impl.set_protocol(protocol)

    def get_protocol(self):
        return self._impl.get_protocol()

    @property
    def _protocol(self):
        return self._impl.get_protocol()

    def __repr__(self):
        return self._impl._repr(type(self).__name__)

    def __del__(self, _warn=warnings.warn):
        impl = getattr(self, '_impl', None)     # (None: never initialised)
        if impl is not None and impl._is_open():
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)


class WritePipeProxy(_FlowControlMixin, WriteTransport):
    """The transport a protocol sees for connect_write_pipe."""

    __slots__ = ('_impl', 'write', 'writelines', 'get_extra_info', 'is_closing',
                 'get_write_buffer_size', '__weakref__')

    def __init__(self, impl):
        self._impl = impl
        self.write = impl.write
        self.writelines = impl.writelines
        self.get_extra_info = impl.get_extra_info
        self.is_closing = impl.is_closing
        self.get_write_buffer_size = impl.get_write_buffer_size

    def close(self):
        self._impl.close()

    def abort(self):
        self._impl.abort()

    def write_eof(self):
        self._impl.write_eof()

    def can_write_eof(self):
        return True

    def _maybe_pause_protocol(self):
        pass        # the implementation does its own flow control

    def _maybe_resume_protocol(self):
        pass

    def set_write_buffer_limits(self, high=None, low=None):
        self._impl.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self):
        return self._impl.get_write_buffer_limits()

    def set_protocol(self, protocol):
        self._impl.set_protocol(protocol)

    def get_protocol(self):
        return self._impl.get_protocol()

    @property
    def _protocol(self):
        return self._impl.get_protocol()

    def __repr__(self):
        return self._impl._repr(type(self).__name__)

    def __del__(self, _warn=warnings.warn):
        impl = getattr(self, '_impl', None)     # (None: never initialised)
        if impl is not None and impl._is_open():
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
