# Datagram endpoints: asyncio's DatagramTransport on a uv_udp_t opened on the
# socket that create_datagram_endpoint made (or was given).
#
# Receiving: libuv reads; IPv4/IPv6 endpoints use its batched receive
# (recvmmsg, up to DGRAM_BATCH datagrams per system call, into one buffer the
# loop keeps for all its endpoints). The sender's address object is kept and
# handed out again while the same peer keeps sending, and a destination
# object that was seen last time needs no conversion: an echo server that
# answers to the address it was given converts nothing.
#
# Sending: uv_udp_try_send at once; a datagram the kernel does not take now
# goes to libuv's send queue (uv_udp_send), which counts toward flow control.

from libc.string cimport memcmp, memcpy

from .includes.addr cimport uvc_addr_key_len, uvc_addr_to_py, uvc_addr_from_py

cdef size_t DGRAM_SLOT = 64 * 1024         # libuv's slot per datagram (recvmmsg)
cdef size_t DGRAM_BATCH = 20               # libuv reads at most 20 per call
# asyncio counts 8 header bytes per queued datagram from 3.13 on, and sends
# empty datagrams (earlier versions drop them).
cdef Py_ssize_t DGRAM_HEADER = 8 if sys.version_info >= (3, 13) else 0
cdef bint SEND_EMPTY_DGRAMS = sys.version_info >= (3, 13)


cdef struct UDPSendReq:
    uv.uv_udp_send_t req
    PyObject* data          # the bytes being sent
    Py_ssize_t size         # what it counts for in the write buffer


cdef void _on_udp_alloc(uv.uv_handle_t* handle, size_t suggested,
                        uv.uv_buf_t* buf) noexcept nogil:
    uvc_gil_ensure(handle.loop)
    with gil:
        (<UDPTransport>handle.data)._on_alloc(buf)


cdef void _on_udp_recv(uv.uv_udp_t* handle, ssize_t nread, const uv.uv_buf_t* buf,
                       const uv.sockaddr* addr, unsigned flags) noexcept nogil:
    if flags & uv.UV_UDP_MMSG_FREE:
        return              # the end of a batch: the buffer is the loop's
    if nread == 0 and addr == NULL:
        return              # nothing to read (EAGAIN)
    uvc_gil_ensure(handle.loop)
    with gil:
        (<UDPTransport>handle.data)._on_recv(nread, buf, addr)


cdef void _on_udp_send(uv.uv_udp_send_t* req, int status) noexcept nogil:
    cdef UDPSendReq* r = <UDPSendReq*>req
    uvc_gil_ensure(req.handle.loop)
    with gil:
        try:
            (<UDPTransport>req.data)._on_send_done(status, r.size)
        finally:
            Py_DECREF(r.data)
            Py_DECREF(<PyObject*>req.data)
    PyMem_RawFree(r)


@cython.no_gc_clear
cdef class UDPTransport(UVHandle):

    # -- receiving -----------------------------------------------------------

    cdef int _start_reading(self) except -1:
        cdef int err
        if self.reading or self.handle == NULL:
            return 0
        err = uv.uv_udp_recv_start(<uv.uv_udp_t*>self.handle, _on_udp_alloc,
                                   _on_udp_recv)
        if err < 0:
            self._fatal_error(uv_error(err), 'Fatal read error on datagram transport')
            return 0
        self.reading = True
        return 0

    cdef int _stop_reading(self) except -1:
        if self.reading:
            self.reading = False
            if self.handle != NULL:
                uv.uv_udp_recv_stop(<uv.uv_udp_t*>self.handle)
        return 0

    cdef int _on_alloc(self, uv.uv_buf_t* buf) except -1:
        cdef BaseLoop loop = self.loop
        if self.batched:
            if loop.dgram_buffer == NULL:
                loop.dgram_buffer = <char*>PyMem_RawMalloc(DGRAM_SLOT * DGRAM_BATCH)
            buf.base = loop.dgram_buffer
            buf.len = DGRAM_SLOT * DGRAM_BATCH if buf.base != NULL else 0
        else:
            buf.base = loop.read_buffer        # 256 KiB: asyncio's max_size
            buf.len = READ_BUFFER_SIZE
        return 0

    cdef object _peer_address(self, const uv.sockaddr* addr):
        cdef size_t n
        if addr == NULL:
            return None
        n = uvc_addr_key_len(addr)
        if n == 0:
            return uvc_addr_to_py(addr)
        if self.recv_addr is not None and memcmp(&self.recv_key, addr, n) == 0:
            return self.recv_addr
        obj = uvc_addr_to_py(addr)
        memcpy(&self.recv_key, addr, n)
        self.recv_addr = obj
        return obj

    cdef int _on_recv(self, ssize_t nread, const uv.uv_buf_t* buf,
                      const uv.sockaddr* addr) except -1:
        cdef BaseLoop loop = self.loop
        cdef uint64_t t0, t1
        if self.conn_lost or loop is None:
            return 0
        if nread >= 0:
            uvc_add(&loop.m.datagrams_received, 1)
            uvc_add(&loop.m.bytes_read, nread)
        uvc_add(&loop.m.io_callbacks_run, 1)
        t0 = uvc_ticks()
        loop.m.current_started = t0
        self._deliver(loop, nread, buf, addr)
        t1 = uvc_ticks()
        loop.m.current_started = 0
        if uvc_callback_done(&loop.m, t0, t1):
            loop._slow_callback('datagram_received' if nread >= 0 else 'error_received',
                                self.protocol, t0, t1 - t0)
        return 0

    cdef int _deliver(self, BaseLoop loop, ssize_t nread, const uv.uv_buf_t* buf,
                      const uv.sockaddr* addr) except -1:
        try:
            if nread < 0:
                if nread == uv.UV_ENOBUFS:
                    raise MemoryError()
                self.error_received(uv_error(<int>nread))
            else:
                self.datagram_received(
                    PyBytes_FromStringAndSize(buf.base, nread),
                    self._peer_address(addr))
        except (SystemExit, KeyboardInterrupt) as exc:
            loop._stop_with(exc)
        except BaseException as exc:
            # asyncio: the reader callback fails, the exception handler hears
            # of it, the endpoint stays open.
            loop.call_exception_handler({
                'message': 'Exception in datagram protocol callback',
                'exception': exc,
                'transport': self.proxy,
                'protocol': self.protocol,
            })
        return 0

    # -- sending -------------------------------------------------------------

    def sendto(self, data, addr=None):
        cdef Py_buffer view
        cdef uv.uv_buf_t buf
        cdef const uv.sockaddr* dest = NULL
        cdef int n
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'data argument must be a bytes-like object, '
                            f'not {type(data).__name__!r}')
        if not SEND_EMPTY_DGRAMS and not data:
            return
        if self.address is not None:
            if addr is not None and addr != self.address:
                raise ValueError(
                    f'Invalid address: must be None or {self.address}')
            addr = self.address
        if self.conn_lost:
            if self.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('socket.send() raised exception.')
            self.conn_lost += 1
            return
        if not self.connected:
            if addr is None:
                # What the socket module says about a missing address.
                return self._send_via_socket(data, addr)
            if addr is not self.send_addr:
                if uvc_addr_from_py(addr, self.family, &self.send_key):
                    self.send_addr = addr
                else:
                    self.send_addr = None
                    return self._send_via_socket(data, addr)
            dest = &self.send_key.sa
        if self.queued_reqs:
            self._send_queued(data, dest)
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            buf.base = <char*>view.buf
            buf.len = view.len
            n = uv.uv_udp_try_send(<uv.uv_udp_t*>self.handle, &buf, 1, dest)
        finally:
            PyBuffer_Release(&view)
        if n >= 0:
            uvc_add(&self.loop.m.datagrams_sent, 1)
            uvc_add(&self.loop.m.bytes_written, n)
            return
        if n == uv.UV_EAGAIN:
            self._send_queued(data, dest)
        else:
            self._report_send_error(uv_error(n))

    def _send_via_socket(self, data, addr):
        # A destination in a form converted only by the socket module (a host
        # name, an abstract Unix name, a bad address): asyncio's own path.
        cdef uvc_addr_t resolved
        if self.queued_reqs:
            # Keep the order: resolve it to a numeric address and queue it.
            try:
                info = socket.getaddrinfo(addr[0], addr[1], self.family,
                                          socket.SOCK_DGRAM)
                numeric = info[0][4]
            except OSError as exc:
                self._report_send_error(exc)
                return
            except (TypeError, IndexError, KeyError) as exc:
                self._fatal_error(exc, 'Fatal write error on datagram transport')
                return
            if not uvc_addr_from_py(numeric, self.family, &resolved):
                self._fatal_error(ValueError(f'cannot send to {addr!r}'),
                                  'Fatal write error on datagram transport')
                return
            self._send_queued(data, &resolved.sa)
            return
        try:
            n = self.sock.sendto(data, addr)
            uvc_add(&self.loop.m.datagrams_sent, 1)
            uvc_add(&self.loop.m.bytes_written, n)
        except (BlockingIOError, InterruptedError):
            try:
                info = socket.getaddrinfo(addr[0], addr[1], self.family,
                                          socket.SOCK_DGRAM)
                numeric = info[0][4]
            except BaseException as exc:
                self._report_send_error(exc)
                return
            if uvc_addr_from_py(numeric, self.family, &resolved):
                self._send_queued(data, &resolved.sa)
        except OSError as exc:
            self._report_send_error(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal write error on datagram transport')

    def _report_send_error(self, exc):
        try:
            self.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as inner:
            self.loop.call_exception_handler({
                'message': 'Exception in datagram protocol callback',
                'exception': inner,
                'transport': self.proxy,
                'protocol': self.protocol,
            })

    cdef int _send_queued(self, object data, const uv.sockaddr* addr) except -1:
        cdef UDPSendReq* r
        cdef uv.uv_buf_t buf
        cdef int err
        if type(data) is not bytes:
            data = bytes(data)          # what is queued must not change
        r = <UDPSendReq*>PyMem_RawCalloc(1, sizeof(UDPSendReq))
        if r == NULL:
            raise MemoryError()
        buf.base = PyBytes_AS_STRING(data)
        buf.len = PyBytes_GET_SIZE(data)
        r.size = buf.len + DGRAM_HEADER
        r.data = <PyObject*>data
        r.req.data = <void*>self
        err = uv.uv_udp_send(&r.req, <uv.uv_udp_t*>self.handle, &buf, 1, addr,
                             _on_udp_send)
        if err < 0:
            PyMem_RawFree(r)
            self._report_send_error(uv_error(err))
            return 0
        Py_INCREF(<PyObject*>data)
        Py_INCREF(<PyObject*>self)
        self.queued += r.size
        self.queued_reqs += 1
        self._maybe_pause_protocol()
        return 0

    cdef int _on_send_done(self, int status, Py_ssize_t size) except -1:
        self.queued -= size
        if status >= 0 and self.loop is not None:
            uvc_add(&self.loop.m.datagrams_sent, 1)
            uvc_add(&self.loop.m.bytes_written, size)
        self.queued_reqs -= 1
        if self.loop is None:
            return 0
        if status < 0 and status != uv.UV_ECANCELED and not self.conn_lost:
            self._report_send_error(uv_error(status))
        self._maybe_resume_protocol()
        if self.queued_reqs == 0 and self.closing and not self.conn_lost:
            self.conn_lost += 1
            self.loop.call_soon(self._call_connection_lost, None)
        return 0

    # -- flow control --------------------------------------------------------

    cdef int _maybe_pause_protocol(self) except -1:
        if self.queued <= self.high_water or self.protocol_paused:
            return 0
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
        if self.protocol_paused and self.queued <= self.low_water:
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
        return self.queued

    def get_write_buffer_limits(self):
        return (self.low_water, self.high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        self.high_water, self.low_water = _flow_limits(high, low, 64)
        self._maybe_pause_protocol()

    # -- closing -------------------------------------------------------------

    def is_closing(self):
        return self.closing

    def close(self):
        if self.closing:
            return
        self.closing = True
        self._stop_reading()
        if self.queued_reqs == 0 and not self.conn_lost:
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
        # Queued datagrams are dropped: libuv cancels them when the handle
        # closes, in _release.
        if self.conn_lost or self.loop is None:
            return 0
        self.closing = True
        self._stop_reading()
        self.conn_lost += 1
        self.loop.call_soon(self._call_connection_lost, exc)
        return 0

    def _call_connection_lost(self, exc):
        try:
            if self.protocol is not None:
                self.protocol.connection_lost(exc)
        finally:
            self._release()

    cdef int _release(self) except -1:
        cdef BaseLoop loop = self.loop
        if not self.alive:
            return 0
        self.alive = False
        self._stop_reading()
        if loop is not None and loop._transports is not None:
            if loop._transports.get(self.fd) is self.proxy:
                del loop._transports[self.fd]
        if self.sock is not None:
            self.sock.detach()          # libuv closes the fd, exactly once
        self._close()
        self.protocol = None
        self.datagram_received = self.error_received = None
        Py_DECREF(<PyObject*>self)      # the reference taken when opened
        return 0

    # -- introspection -------------------------------------------------------

    def _connection_made(self, waiter):
        if not self.closing:
            self._start_reading()
        if waiter is not None and not waiter.cancelled():
            waiter.set_result(None)

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def set_protocol(self, protocol):
        self.protocol = protocol
        self.datagram_received = protocol.datagram_received
        self.error_received = protocol.error_received

    def get_protocol(self):
        return self.protocol

    def _is_open(self):
        return self.alive

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
            info.append(f'write=<bufsize={self.queued}>')
        return '<{}>'.format(' '.join(info))


cdef object _make_datagram_transport(BaseLoop loop, object sock, object protocol,
                                     object address, object waiter, object extra):
    cdef UDPTransport t
    cdef int err
    cdef int fd
    cdef unsigned int flags
    loop._require_open()
    fd = sock.fileno()
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    if fd in loop._watchers:
        _drop_idle_watch(loop, fd)
    t = UDPTransport.__new__(UDPTransport)
    t.family = sock.family
    t.batched = t.family in (socket.AF_INET, socket.AF_INET6)
    flags = uv.UV_UDP_RECVMMSG if t.batched else 0
    _reserve_watchers(loop, fd)
    t._alloc(loop, sizeof(uv.uv_udp_t))
    err = uv.uv_udp_init_ex(loop.uvloop, <uv.uv_udp_t*>t.handle, flags)
    if err < 0:
        t._init_failed(err)
    err = uv.uv_udp_open(<uv.uv_udp_t*>t.handle, fd)
    if err < 0:
        t._close()          # the fd was not taken: it stays the socket's
        raise uv_error(err)
    t.sock = sock
    t.fd = fd
    t.address = address
    t.high_water = 64 * 1024
    t.low_water = 16 * 1024
    t.extra = {} if extra is None else dict(extra)
    t.extra['socket'] = TransportSocket(sock)
    try:
        t.extra['sockname'] = sock.getsockname()
    except OSError:
        t.extra['sockname'] = None
    if 'peername' not in t.extra:
        try:
            t.extra['peername'] = sock.getpeername()
        except OSError:
            t.extra['peername'] = None
    t.connected = bool(t.extra['peername'])
    t.proxy = DatagramTransportProxy(t)
    t.set_protocol(protocol)
    loop._transports[fd] = t.proxy
    Py_INCREF(<PyObject*>t)         # open: kept alive by its libuv handle
    t.alive = True
    loop.call_soon(protocol.connection_made, t.proxy)
    loop.call_soon(t._connection_made, waiter)
    return t.proxy


class DatagramTransportProxy(_FlowControlMixin, DatagramTransport):
    """The transport a DatagramProtocol sees."""

    __slots__ = ('_impl', 'sendto', 'get_extra_info', 'is_closing',
                 'get_write_buffer_size', '__weakref__')

    def __init__(self, impl):
        self._impl = impl
        self.sendto = impl.sendto
        self.get_extra_info = impl.get_extra_info
        self.is_closing = impl.is_closing
        self.get_write_buffer_size = impl.get_write_buffer_size

    def close(self):
        self._impl.close()

    def abort(self):
        self._impl.abort()

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
    def _sock_fd(self):
        return self._impl._sock_fd

    def __repr__(self):
        return self._impl._repr(type(self).__name__)

    def __del__(self, _warn=warnings.warn):
        impl = getattr(self, '_impl', None)     # (None: never initialised)
        if impl is not None and impl._is_open():
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
