# Stream transports: the logic TCP and Unix-socket connections share, on a
# uv_stream_t (uv_tcp_t or uv_pipe_t) opened on the connected socket's fd.
#
# The object handed to protocols is a Python proxy (transports.py) that
# subclasses asyncio.Transport, so `isinstance(t, asyncio.Transport)` holds;
# its hot methods are this object's own bound methods, stored in the proxy's
# slots, so a call costs no extra Python frame.
#
# Write path: try the syscall at once (uv_try_write); whatever is left is
# queued, and everything queued during one loop iteration goes to libuv as one
# vectored uv_write just before the loop next polls (BaseLoop._flush_writes).
# Read path: libuv reads into the loop's buffer and a bytes object is made of
# what was read; a BufferedProtocol's own buffer is read into directly.

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE

cdef size_t READ_BUFFER_SIZE = 256 * 1024

cdef int LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5


cdef struct WriteReq:
    uv.uv_write_t req
    PyObject* pinned        # the list of bytes objects being written
    Py_ssize_t nbytes


cdef void _on_stream_alloc(uv.uv_handle_t* handle, size_t suggested,
                           uv.uv_buf_t* buf) noexcept nogil:
    uvc_gil_ensure(handle.loop)
    with gil:
        (<UVStream>handle.data)._alloc_read_buffer(buf)


cdef void _on_stream_read(uv.uv_stream_t* stream, ssize_t nread,
                          const uv.uv_buf_t* buf) noexcept nogil:
    uvc_gil_ensure(stream.loop)
    with gil:
        (<UVStream>stream.data)._on_read(nread)


cdef void _on_write_done(uv.uv_write_t* req, int status) noexcept nogil:
    cdef WriteReq* w = <WriteReq*>req
    uvc_gil_ensure(req.handle.loop)
    with gil:
        try:
            (<UVStream>req.data)._on_write_done(status, w.nbytes)
        finally:
            Py_DECREF(w.pinned)
            Py_DECREF(<PyObject*>req.data)
    PyMem_RawFree(w)


@cython.no_gc_clear
cdef class UVStream(UVHandle):

    cdef int _open_stream(self, BaseLoop loop, object sock, object protocol,
                          object waiter, object extra, object server) except -1:
        # Called by TCPTransport/UnixTransport once their handle is open on
        # sock's fd.
        cdef int fd = sock.fileno()
        self.sock = sock
        self.fd = fd
        self.closing = False
        self.high_water = 64 * 1024
        self.low_water = 16 * 1024
        self.wq = []
        self.proxy = StreamTransportProxy(self)
        self.extra = {} if extra is None else dict(extra)
        self.extra['socket'] = TransportSocket(sock)
        try:
            self.extra['sockname'] = sock.getsockname()
        except OSError:
            self.extra['sockname'] = None
        if 'peername' not in self.extra:
            try:
                self.extra['peername'] = sock.getpeername()
            except OSError:
                self.extra['peername'] = None
        self._set_protocol(protocol)
        self.server = server
        if server is not None:
            _server_attach(server, self.proxy)
        loop._transports[fd] = self.proxy
        Py_INCREF(<PyObject*>self)      # open: kept alive by its libuv handle
        self.alive = True
        # As asyncio: connection_made is a callback of its own (an exception
        # in it goes to the exception handler), then reading starts and the
        # waiter is told.
        loop.call_soon(protocol.connection_made, self.proxy)
        loop.call_soon(self._connection_made, waiter)
        return 0

    def _connection_made(self, waiter):
        self.started = True
        if not self.closing and not self.paused:
            self._start_reading()
        if waiter is not None and not waiter.cancelled():
            waiter.set_result(None)

    cdef int _set_protocol(self, object protocol) except -1:
        self.protocol = protocol
        self.protocol_connected = True
        if isinstance(protocol, TLSProtocol):
            # uvcore's TLS layer: fed from C (_on_read), not via its methods.
            self.tls = protocol
            self.buffered = False
            self.data_received = self.get_buffer = self.buffer_updated = None
            return 0
        self.tls = None
        self.buffered = isinstance(protocol, BufferedProtocol)
        if self.buffered:
            self.get_buffer = protocol.get_buffer
            self.buffer_updated = protocol.buffer_updated
            self.data_received = None
        else:
            self.data_received = protocol.data_received
            self.get_buffer = self.buffer_updated = None
        return 0

    # -- reading -------------------------------------------------------------

    cdef int _start_reading(self) except -1:
        cdef int err
        if self.reading or self.handle == NULL:
            return 0
        err = uv.uv_read_start(<uv.uv_stream_t*>self.handle, _on_stream_alloc,
                               _on_stream_read)
        if err < 0:
            self._fatal_error(uv_error(err), 'Fatal read error on socket transport')
            return 0
        self.reading = True
        return 0

    cdef int _stop_reading(self) except -1:
        if self.reading:
            self.reading = False
            if self.handle != NULL:
                uv.uv_read_stop(<uv.uv_stream_t*>self.handle)
        return 0

    cdef int _alloc_read_buffer(self, uv.uv_buf_t* buf) except -1:
        cdef BaseLoop loop = self.loop
        buf.base = NULL
        buf.len = 0
        if not self.buffered:
            # Read into the loop's buffer and copy what was read into a bytes
            # object: reading straight into a fresh 256 KiB bytes object (then
            # shrunk) was measured slower, since glibc maps every such block
            # anew (page faults): streams echo at 100 KiB went from 12k to 8k
            # round trips/s.
            buf.base = loop.read_buffer
            buf.len = READ_BUFFER_SIZE
            return 0
        if self.view_held:
            PyBuffer_Release(&self.view)
            self.view_held = False
        try:
            b = self.get_buffer(-1)
            PyObject_GetBuffer(b, &self.view, PyBUF_WRITABLE)
            self.view_held = True
            if self.view.len == 0:
                raise RuntimeError('get_buffer() returned an empty buffer')
        except BaseException as exc:
            # Reported from the read callback (libuv calls it with ENOBUFS).
            self.read_error = exc
            return 0
        buf.base = <char*>self.view.buf
        buf.len = self.view.len
        return 0

    cdef int _release_view(self) except -1:
        if self.view_held:
            self.view_held = False
            PyBuffer_Release(&self.view)
        return 0

    cdef int _on_read(self, ssize_t nread) except -1:
        cdef BaseLoop loop = self.loop
        cdef uint64_t t0, t1
        if nread == 0:                       # EAGAIN: nothing read
            self._release_view()
            return 0
        if nread > 0:
            uvc_add(&loop.m.bytes_read, nread)
            uvc_add(&loop.m.io_callbacks_run, 1)
            t0 = uvc_ticks()
            loop.m.current_started = t0
            self._deliver(loop, nread)
            t1 = uvc_ticks()
            loop.m.current_started = 0
            if uvc_callback_done(&loop.m, t0, t1):
                loop._slow_callback(
                    'buffer_updated' if self.buffered and self.tls is None
                    else 'data_received',
                    self.protocol if self.tls is None else self.tls.app_protocol,
                    t0, t1 - t0)
            return 0
        self._release_view()
        if nread == uv.UV_EOF:
            uvc_add(&loop.m.io_callbacks_run, 1)
            protocol = self.protocol
            t0 = uvc_ticks()
            loop.m.current_started = t0
            self._on_eof()
            t1 = uvc_ticks()
            loop.m.current_started = 0
            if uvc_callback_done(&loop.m, t0, t1):
                loop._slow_callback('eof_received', protocol, t0, t1 - t0)
        elif nread == uv.UV_ENOBUFS and self.read_error is not None:
            exc = self.read_error
            self.read_error = None
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                loop._stop_with(exc)
            self._fatal_error(exc, 'Fatal error: protocol.get_buffer() call failed.')
        else:
            self._fatal_error(uv_error(<int>nread),
                              'Fatal read error on socket transport')
        return 0

    cdef int _deliver(self, BaseLoop loop, ssize_t nread) except -1:
        # nread bytes have arrived: to the TLS layer or the protocol.
        if self.tls is not None:
            try:
                self.tls._wire_data(loop.read_buffer, nread)
            except (SystemExit, KeyboardInterrupt) as exc:
                loop._stop_with(exc)
            except BaseException as exc:
                self._fatal_error(exc, 'Fatal error: TLS layer failed.')
        elif self.buffered:
            self._release_view()
            try:
                self.buffer_updated(nread)
            except (SystemExit, KeyboardInterrupt) as exc:
                loop._stop_with(exc)
            except BaseException as exc:
                self._fatal_error(
                    exc, 'Fatal error: protocol.buffer_updated() call failed.')
        else:
            try:
                data = PyBytes_FromStringAndSize(loop.read_buffer, nread)
            except MemoryError as exc:
                # As asyncio when recv() fails: fatal, never a silent hole.
                self._fatal_error(exc, 'Fatal read error on socket transport')
                return 0
            try:
                self.data_received(data)
            except (SystemExit, KeyboardInterrupt) as exc:
                loop._stop_with(exc)
            except BaseException as exc:
                self._fatal_error(
                    exc, 'Fatal error: protocol.data_received() call failed.')
        return 0

    cdef int _on_eof(self) except -1:
        cdef BaseLoop loop = self.loop
        if loop._debug:
            logger.debug("%r received EOF", self.proxy)
        try:
            keep_open = self.protocol.eof_received()
        except (SystemExit, KeyboardInterrupt) as exc:
            loop._stop_with(exc)
            return 0
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.eof_received() call failed.')
            return 0
        if keep_open:
            self._stop_reading()     # half-open: the protocol may still write
        else:
            self.close()
        return 0

    def pause_reading(self):
        if self.closing or self.paused:
            return
        self.paused = True
        self._stop_reading()
        if self.loop is not None and self.loop._debug:
            logger.debug("%r pauses reading", self.proxy)

    def resume_reading(self):
        if self.closing or not self.paused:
            return
        self.paused = False
        if self.started and self.alive:
            self._start_reading()
        if self.loop is not None and self.loop._debug:
            logger.debug("%r resumes reading", self.proxy)

    def is_reading(self):
        return not self.closing and not self.paused

    # -- writing -------------------------------------------------------------

    def write(self, data):
        self._write(data)

    cdef int _write(self, object data) except -1:
        cdef Py_buffer view
        cdef uv.uv_buf_t buf
        cdef int n
        if type(data) is bytes and self.wq_bytes == 0 and \
                self.inflight_bytes == 0 and not self.conn_lost and \
                not self.eof and self.empty_waiter is None and self.handle != NULL:
            # The common case: nothing queued, bytes, the kernel takes it all.
            buf.base = PyBytes_AS_STRING(data)
            buf.len = PyBytes_GET_SIZE(data)
            if buf.len == 0:
                return 0
            n = uv.uv_try_write(<uv.uv_stream_t*>self.handle, &buf, 1)
            if n > 0:
                uvc_add(&self.loop.m.bytes_written, n)
            if n == <int>buf.len:
                return 0
            if n < 0 and n != uv.UV_EAGAIN:
                self._fatal_error(uv_error(n), 'Fatal write error on socket transport')
                return 0
            self.wq.append(data)
            self.wq_head_offset = n if n > 0 else 0
            self.wq_bytes += buf.len - self.wq_head_offset
            self._schedule_flush()
            self._maybe_pause_protocol()
            return 0
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if self.eof:
            raise RuntimeError('Cannot call write() after write_eof()')
        if self.empty_waiter is not None:
            raise RuntimeError('unable to write; sendfile is in progress')
        if not data:
            return 0
        if self.conn_lost:
            if self.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('socket.send() raised exception.')
            self.conn_lost += 1
            return 0
        if self.wq_bytes == 0 and self.inflight_bytes == 0:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                buf.base = <char*>view.buf
                buf.len = view.len
                n = uv.uv_try_write(<uv.uv_stream_t*>self.handle, &buf, 1)
                if n > 0:
                    uvc_add(&self.loop.m.bytes_written, n)
                if n == view.len:
                    return 0
                if n < 0:
                    if n != uv.UV_EAGAIN:
                        self._fatal_error(uv_error(n),
                                          'Fatal write error on socket transport')
                        return 0
                    n = 0
                if type(data) is bytes:
                    self.wq.append(data)
                    self.wq_head_offset = n
                else:
                    self.wq.append(PyBytes_FromStringAndSize(<char*>view.buf + n,
                                                             view.len - n))
                    self.wq_head_offset = 0
                self.wq_bytes += view.len - n
            finally:
                PyBuffer_Release(&view)
            self._schedule_flush()
        else:
            if type(data) is not bytes:
                data = bytes(data)
            self.wq.append(data)
            self.wq_bytes += PyBytes_GET_SIZE(data)
            if self.inflight_bytes == 0:
                self._schedule_flush()
        self._maybe_pause_protocol()
        return 0

    def writelines(self, list_of_data):
        # One vectored write for all of them: queued together, flushed as one
        # uv_write before the loop next polls.
        if self.eof:
            raise RuntimeError('Cannot call writelines() after write_eof()')
        if self.empty_waiter is not None:
            raise RuntimeError('unable to writelines; sendfile is in progress')
        list_of_data = list(list_of_data)
        for data in list_of_data:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f'data argument must be a bytes-like object, '
                                f'not {type(data).__name__!r}')
        if self.conn_lost:
            if self.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('socket.send() raised exception.')
            self.conn_lost += 1
            return
        added = False
        for data in list_of_data:
            if not data:
                continue
            if type(data) is not bytes:
                data = bytes(data)
            self.wq.append(data)
            self.wq_bytes += PyBytes_GET_SIZE(data)
            added = True
        if added:
            if self.inflight_bytes == 0:
                self._schedule_flush()
            self._maybe_pause_protocol()

    cdef int _schedule_flush(self) except -1:
        if not self.flush_scheduled and self.loop is not None:
            self.flush_scheduled = True
            self.loop._flush_list.append(self)
        return 0

    cdef int _flush(self) except -1:
        # Hand everything queued to libuv as one vectored write.
        cdef WriteReq* w
        cdef uv.uv_buf_t* bufs
        cdef Py_ssize_t i, n, first
        cdef int err
        cdef list pinned
        self.flush_scheduled = False
        if self.handle == NULL or self.conn_lost or not self.wq or self.inflight_bytes:
            return 0
        pinned = self.wq
        n = len(pinned)
        w = <WriteReq*>PyMem_RawCalloc(1, sizeof(WriteReq))
        bufs = <uv.uv_buf_t*>PyMem_Malloc(n * sizeof(uv.uv_buf_t))
        if w == NULL or bufs == NULL:
            PyMem_RawFree(w)
            PyMem_Free(bufs)
            raise MemoryError()
        for i in range(n):
            obj = pinned[i]
            bufs[i].base = PyBytes_AS_STRING(obj)
            bufs[i].len = PyBytes_GET_SIZE(obj)
        bufs[0].base += self.wq_head_offset
        bufs[0].len -= self.wq_head_offset
        # The kernel may have room again by now: what it takes at once needs
        # no uv_write (whose completion libuv reports an iteration later).
        err = uv.uv_try_write(<uv.uv_stream_t*>self.handle, bufs, n)
        if err > 0:
            uvc_add(&self.loop.m.bytes_written, err)
            self.wq_bytes -= err
            first = 0
            while first < n and <size_t>err >= bufs[first].len:
                err -= bufs[first].len
                first += 1
            if first == n:
                PyMem_RawFree(w)
                PyMem_Free(bufs)
                self.wq = []
                self.wq_head_offset = 0
                self._queue_drained()
                return 0
            bufs[first].base += err
            bufs[first].len -= err
            for i in range(n - first):
                bufs[i] = bufs[i + first]
            n -= first
            del pinned[:first]
        w.nbytes = self.wq_bytes
        w.pinned = <PyObject*>pinned
        w.req.data = <void*>self
        err = uv.uv_write(&w.req, <uv.uv_stream_t*>self.handle, bufs, n, _on_write_done)
        PyMem_Free(bufs)        # libuv keeps its own copy of the array
        if err < 0:
            PyMem_RawFree(w)
            self._fatal_error(uv_error(err), 'Fatal write error on socket transport')
            return 0
        Py_INCREF(<PyObject*>pinned)
        Py_INCREF(<PyObject*>self)
        self.wq = []
        self.wq_head_offset = 0
        self.inflight_bytes = self.wq_bytes
        self.wq_bytes = 0
        return 0

    cdef int _on_write_done(self, int status, Py_ssize_t nbytes) except -1:
        self.inflight_bytes -= nbytes
        if status >= 0 and self.loop is not None:
            uvc_add(&self.loop.m.bytes_written, nbytes)
        if status < 0:
            if status != uv.UV_ECANCELED and not self.conn_lost:
                self._fatal_error(uv_error(status),
                                  'Fatal write error on socket transport')
            return 0
        if self.wq:
            self._flush()      # what was queued meanwhile goes out now
        self._queue_drained()
        return 0

    cdef int _queue_drained(self) except -1:
        # Some queued bytes are written: resume the protocol below the low
        # mark; once nothing is left, finish a close or a write_eof.
        self._maybe_resume_protocol()
        if self.wq_bytes == 0 and self.inflight_bytes == 0:
            if self.empty_waiter is not None and not self.empty_waiter.done():
                self.empty_waiter.set_result(None)
            if self.closing and not self.conn_lost:
                self.conn_lost += 1
                self.loop.call_soon(self._call_connection_lost, None)
            elif self.eof:
                self._shutdown_write()
        return 0

    cdef int _shutdown_write(self) except -1:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return 0

    cdef int _maybe_pause_protocol(self) except -1:
        if self.wq_bytes + self.inflight_bytes <= self.high_water:
            return 0
        if not self.protocol_paused:
            self.protocol_paused = True
            try:
                self.protocol.pause_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.loop.call_exception_handler({
                    'message': 'protocol.pause_writing() failed',
                    'exception': exc,
                    'transport': self.proxy,
                    'protocol': self.protocol,
                })
        return 0

    cdef int _maybe_resume_protocol(self) except -1:
        if self.protocol_paused and \
                self.wq_bytes + self.inflight_bytes <= self.low_water:
            self.protocol_paused = False
            try:
                self.protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt) as exc:
                self.loop._stop_with(exc)
            except BaseException as exc:
                self.loop.call_exception_handler({
                    'message': 'protocol.resume_writing() failed',
                    'exception': exc,
                    'transport': self.proxy,
                    'protocol': self.protocol,
                })
        return 0

    def get_write_buffer_size(self):
        return self.wq_bytes + self.inflight_bytes

    def get_write_buffer_limits(self):
        return (self.low_water, self.high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        self.high_water, self.low_water = _flow_limits(high, low, 64)
        self._maybe_pause_protocol()

    def write_eof(self):
        if self.closing or self.eof:
            return
        self.eof = True
        if self.wq_bytes == 0 and self.inflight_bytes == 0:
            self._shutdown_write()

    def can_write_eof(self):
        return True

    # -- closing -------------------------------------------------------------

    def is_closing(self):
        return self.closing

    def close(self):
        if self.closing:
            return
        self.closing = True
        self._stop_reading()
        if self.wq_bytes == 0 and self.inflight_bytes == 0:
            if self.loop is None:
                # Released by loop.close(): as asyncio, whose call_soon says so.
                raise RuntimeError('Event loop is closed')
            self.conn_lost += 1
            self.loop.call_soon(self._call_connection_lost, None)

    def abort(self):
        self._force_close(None)

    cdef int _fatal_error(self, object exc, str message) except -1:
        cdef BaseLoop loop = self.loop
        if loop is None:
            return 0
        if isinstance(exc, OSError):
            if loop._debug:
                logger.debug("%r: %s", self.proxy, message, exc_info=True)
        else:
            loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self.proxy,
                'protocol': self.protocol,
            })
        self._force_close(exc)
        return 0

    cdef int _force_close(self, object exc) except -1:
        if self.conn_lost or self.loop is None:
            return 0
        self.wq = []
        self.wq_bytes = 0
        self.wq_head_offset = 0
        if not self.closing:
            self.closing = True
        self._stop_reading()
        self.conn_lost += 1
        self.loop.call_soon(self._call_connection_lost, exc)
        return 0

    def _force_close_from_python(self, exc):
        self._force_close(exc)

    def _call_connection_lost(self, exc):
        try:
            if self.protocol_connected and self.protocol is not None:
                self.protocol.connection_lost(exc)
        finally:
            self._release()

    cdef int _release(self) except -1:
        # The end of the connection: the fd is closed by uv_close (the socket
        # object is detached first, so the two never both close it).
        cdef BaseLoop loop = self.loop
        if not self.alive:
            return 0
        self.alive = False
        self._stop_reading()
        self._release_view()
        if loop is not None and loop._transports is not None:
            if loop._transports.get(self.fd) is self.proxy:
                del loop._transports[self.fd]
        if self.discard_on_close:
            _discard_input(self.uv_fd, loop)
        if self.sock is not None:
            if self.uv_fd == self.fd:
                self.sock.detach()      # libuv closes the fd
            else:
                self.sock.close()       # libuv closes its dup
        self._close()
        self.protocol = None
        self.tls = None
        server = self.server
        self.server = None
        if server is not None and loop is not None and not loop._closed:
            # (A closing loop drops its transports without telling their
            # server: waking its waiters would schedule callbacks.)
            _server_detach(server, self.proxy)
        Py_DECREF(<PyObject*>self)      # the reference taken in _open_stream
        return 0

    # -- sendfile support (asyncio's loop.sendfile) ---------------------------

    def _make_empty_waiter(self):
        if self.empty_waiter is not None:
            raise RuntimeError('Empty waiter is already set')
        self.empty_waiter = self.loop.create_future()
        if self.wq_bytes == 0 and self.inflight_bytes == 0:
            self.empty_waiter.set_result(None)
        return self.empty_waiter

    def _reset_empty_waiter(self):
        self.empty_waiter = None

    # -- introspection -------------------------------------------------------

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def set_protocol(self, protocol):
        self._set_protocol(protocol)

    def get_protocol(self):
        return self.protocol

    @property
    def _protocol_paused(self):
        return self.protocol_paused

    def _get_loop(self):
        return self.loop

    def _is_open(self):
        return self.alive

    @property
    def _sock(self):
        return self.sock

    @property
    def _sock_fd(self):
        return self.fd

    def _repr(self, str name):
        info = [name]
        if not self.alive:
            info.append('closed')
        elif self.closing:
            info.append('closing')
        info.append(f'fd={self.fd}')
        if self.alive:
            info.append('read=polling' if self.reading else 'read=idle')
            state = 'polling' if self.inflight_bytes else 'idle'
            info.append(f'write=<{state}, bufsize={self.wq_bytes + self.inflight_bytes}>')
        return '<{}>'.format(' '.join(info))


cdef extern from "sys/socket.h" nogil:
    ssize_t recv(int fd, void* buf, size_t n, int flags)
    int MSG_DONTWAIT


cdef int _discard_input(int fd, BaseLoop loop) except -1:
    # Unread input makes close() send a reset, which can destroy what we
    # wrote last (a TLS close_notify) before the peer reads it.
    cdef int i
    if loop is None or loop.read_buffer == NULL:
        return 0
    for i in range(16):
        if recv(fd, loop.read_buffer, READ_BUFFER_SIZE, MSG_DONTWAIT) <= 0:
            break
    return 0


# asyncio.Server grew a transport argument to _attach/_detach in 3.13.
import inspect as _inspect
from asyncio import base_events as _base_events
cdef bint _SERVER_ATTACH_TAKES_TRANSPORT = len(
    _inspect.signature(_base_events.Server._attach).parameters) > 1


cdef int _server_attach(object server, object transport) except -1:
    if _SERVER_ATTACH_TAKES_TRANSPORT:
        server._attach(transport)
    else:
        server._attach()
    return 0


cdef int _server_detach(object server, object transport) except -1:
    if _SERVER_ATTACH_TAKES_TRANSPORT:
        server._detach(transport)
    else:
        server._detach()
    return 0


class StreamTransportProxy(_FlowControlMixin):
    """The transport a protocol sees for a TCP or Unix stream connection."""

    # The hot methods are the implementation's own bound methods, kept in
    # slots: calling transport.write() costs no extra Python frame.
    __slots__ = ('_impl', 'write', 'writelines', 'get_extra_info', 'is_closing',
                 'pause_reading', 'resume_reading', 'is_reading',
                 'get_write_buffer_size', '__weakref__')

    _sendfile_compatible = _SendfileMode.TRY_NATIVE
    _start_tls_compatible = True

    def __init__(self, impl):
        self._impl = impl
        self.write = impl.write
        self.writelines = impl.writelines
        self.get_extra_info = impl.get_extra_info
        self.is_closing = impl.is_closing
        self.pause_reading = impl.pause_reading
        self.resume_reading = impl.resume_reading
        self.is_reading = impl.is_reading
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

    @property
    def _protocol_paused(self):
        return self._impl._protocol_paused

    @property
    def _sock(self):
        return self._impl._sock

    @property
    def _sock_fd(self):
        return self._impl._sock_fd

    @property
    def _loop(self):
        return self._impl._get_loop()

    def _force_close(self, exc):
        self._impl._force_close_from_python(exc)

    def _make_empty_waiter(self):
        return self._impl._make_empty_waiter()

    def _reset_empty_waiter(self):
        self._impl._reset_empty_waiter()

    def __repr__(self):
        return self._impl._repr(type(self).__name__)

    def __del__(self, _warn=warnings.warn):
        impl = getattr(self, '_impl', None)     # (None: never initialised)
        if impl is None:
            return
        if impl._is_open():
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
