# TLS: the protocol layer between a stream transport (the wire: TLS records)
# and the application's protocol (plaintext), over ssl.MemoryBIO/SSLObject.
#
# Behaviour follows asyncio's SSLProtocol (3.11+): the same states, timeouts,
# flow-control defaults, errors and callback order, with two deliberate
# differences: closing sends close_notify and the application hears
# connection_lost at once (asyncio and uvloop wait for the peer's
# close_notify first, up to ssl_shutdown_timeout; uvcore half-closes the TCP
# connection and drains it in the background meanwhile); and reading stops when the BIOs are known to be
# empty instead of calling SSLObject.read until it raises SSLWantReadError
# (an exception per read was the single largest cost of a small TLS record).
#
# On a uvcore stream the wire is driven from C: the stream hands what it read
# (the loop's read buffer, through a memoryview, no bytes object) to
# _wire_data, and TLS records go out through the stream's own write path.
# Any other transport (TLS in TLS, a foreign transport) gets the ordinary
# protocol methods.

import ssl as _ssl
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_READ, PyBUF_WRITE

cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject** string, Py_ssize_t newsize) except -1

from asyncio import constants as _aio_constants
from asyncio import exceptions as _aio_exceptions

cdef object SSLWantReadError = _ssl.SSLWantReadError
cdef object SSLWantWriteError = _ssl.SSLWantWriteError
cdef tuple SSL_AGAIN = (_ssl.SSLWantReadError, _ssl.SSLSyscallError)
cdef object SSLError = _ssl.SSLError
cdef object CertificateError = _ssl.CertificateError
cdef Py_ssize_t TLS_READ_MAX = 256 * 1024
cdef Py_ssize_t TLS_RECORD_MAX = 16384 + 256       # plaintext of one record, and then some
cdef Py_ssize_t TLS_CHUNK = 64 * 1024
cdef Py_ssize_t SSL_READ_HIGH = getattr(_aio_constants, 'FLOW_CONTROL_HIGH_WATER_SSL_READ', 256)
cdef Py_ssize_t SSL_WRITE_HIGH = getattr(_aio_constants, 'FLOW_CONTROL_HIGH_WATER_SSL_WRITE', 512)

# states of the TLS session
cdef enum:
    TLS_UNWRAPPED = 0
    TLS_HANDSHAKE = 1
    TLS_WRAPPED = 2
    TLS_FLUSHING = 3
    TLS_SHUTDOWN = 4

# states of the application protocol
cdef enum:
    APP_INIT = 0
    APP_CON_MADE = 1
    APP_EOF = 2
    APP_CON_LOST = 3


def _default_client_context(server_side, server_hostname):
    if server_side:
        raise ValueError('Server side SSL needs a valid SSLContext')
    ctx = _ssl.create_default_context()
    if not server_hostname:
        ctx.check_hostname = False
    return ctx


@cython.no_gc_clear
cdef class TLSProtocol:

    def __init__(self, loop, app_protocol, sslcontext, waiter,
                 server_side=False, server_hostname=None,
                 call_connection_made=True,
                 ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = _SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(
                f"ssl_handshake_timeout should be a positive number, "
                f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = _SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(
                f"ssl_shutdown_timeout should be a positive number, "
                f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            sslcontext = _default_client_context(server_side, server_hostname)
        self.loop = loop
        self.server_side = server_side
        self.handshake_timeout = ssl_handshake_timeout
        self.shutdown_timeout = ssl_shutdown_timeout
        self.waiter = waiter
        self.extra = {'sslcontext': sslcontext}
        self.backlog = []
        self.incoming = _ssl.MemoryBIO()
        self.outgoing = _ssl.MemoryBIO()
        self.sslobj = sslcontext.wrap_bio(
            self.incoming, self.outgoing, server_side=server_side,
            server_hostname=server_hostname if server_hostname and not server_side
            else None)
        # ssl.SSLObject's read/write/pending are Python functions that only
        # forward to the C object (_sslobj); calling that directly saves a
        # Python frame per call.
        c_obj = getattr(self.sslobj, '_sslobj', self.sslobj)
        self.sslobj_read = c_obj.read
        self.sslobj_write = c_obj.write
        self.sslobj_pending = c_obj.pending
        self.incoming_write = self.incoming.write
        self.outgoing_read = self.outgoing.read
        self.app_state = APP_INIT if call_connection_made else APP_CON_MADE
        self.state = TLS_UNWRAPPED
        self.read_high, self.read_low = _flow_limits(None, None, SSL_READ_HIGH)
        self.write_high, self.write_low = _flow_limits(None, None, SSL_WRITE_HIGH)
        self._set_app_protocol(app_protocol)
        self.app_transport = TLSTransportProxy(self)

    cdef int _set_app_protocol(self, object app_protocol) except -1:
        self.app_protocol = app_protocol
        self.app_buffered = isinstance(app_protocol, BufferedProtocol)
        return 0

    # -- the wire side: protocol methods the stream transport calls ----------

    def connection_made(self, transport):
        self.transport = transport
        impl = getattr(transport, '_impl', None)
        self.wire = impl if isinstance(impl, UVStream) else None
        self._start_handshake()

    def connection_lost(self, exc):
        cdef BaseLoop loop = self.loop
        self.backlog = []
        self.backlog_size = 0
        if self.outgoing.pending:
            self.outgoing.read()
        self.conn_lost += 1
        self.app_closed = True
        if self.state != TLS_HANDSHAKE and \
                self.app_state in (APP_CON_MADE, APP_EOF):
            self.app_state = APP_CON_LOST
            loop.call_soon(self.app_protocol.connection_lost, exc)
        self.state = TLS_UNWRAPPED
        self.transport = None
        self.wire = None
        # As asyncio: let go of the application's side, so that the SSL
        # object and its OpenSSL state go with the last reference rather than
        # waiting for the cycle collector (proxy <-> this object; app
        # protocol -> proxy -> this object -> app protocol).
        self.app_transport = None
        self.app_protocol = None
        self._wakeup_waiter(exc)
        self._cancel_timers()

    def get_buffer(self, n):
        # Only for a transport other than a uvcore stream.
        want = n if 0 < n <= TLS_READ_MAX else TLS_READ_MAX
        if self.wire_buffer is None or len(self.wire_buffer) < want:
            self.wire_buffer = memoryview(bytearray(want))
        return self.wire_buffer

    def buffer_updated(self, nbytes):
        self.incoming.write(self.wire_buffer[:nbytes])
        self._on_incoming()

    def data_received(self, data):
        self.incoming.write(data)
        self._on_incoming()

    cdef int _wire_data(self, char* data, Py_ssize_t n) except -1:
        # From the uvcore stream's read callback: the loop's read buffer.
        self.incoming_write(PyMemoryView_FromMemory(data, n, PyBUF_READ))
        self._on_incoming()
        return 0

    cdef int _on_incoming(self) except -1:
        if self.state == TLS_WRAPPED:
            self._do_read()
        elif self.state == TLS_HANDSHAKE:
            self._do_handshake()
        elif self.state == TLS_FLUSHING:
            self._do_flush()
        elif self.state == TLS_SHUTDOWN:
            self._do_shutdown()
        return 0

    def eof_received(self):
        self.eof = True
        try:
            if self.loop._debug:
                logger.debug("%r received EOF", self)
            if self.state == TLS_HANDSHAKE:
                self._on_handshake_complete(ConnectionResetError)
            elif self.state == TLS_WRAPPED:
                self.state = TLS_FLUSHING
                if self.app_reading_paused:
                    return True
                self._do_flush()
            elif self.state == TLS_FLUSHING:
                self._do_write()
                self.state = TLS_SHUTDOWN
                self._do_shutdown()
            elif self.state == TLS_SHUTDOWN:
                if self.lingering:
                    self._on_shutdown_complete(None)
                else:
                    self._do_shutdown()
        except Exception:
            self.transport.close()
            raise

    def pause_writing(self):
        self.wire_paused = True

    def resume_writing(self):
        self.wire_paused = False
        self._process_outgoing()

    # -- handshake -----------------------------------------------------------

    cdef int _start_handshake(self) except -1:
        cdef BaseLoop loop = self.loop
        if loop._debug:
            logger.debug("%r starts SSL handshake", self)
            self.handshake_started = loop.time()
        self.state = TLS_HANDSHAKE
        self.handshake_timer = loop.call_later(self.handshake_timeout,
                                               self._check_handshake_timeout)
        self._do_handshake()
        return 0

    def _check_handshake_timeout(self):
        if self.state == TLS_HANDSHAKE:
            exc = ConnectionAbortedError(
                f"SSL handshake is taking longer than {self.handshake_timeout} "
                f"seconds: aborting the connection")
            self._fatal_error(exc)
            # (a wire that was already closed reports no connection_lost)
            self._wakeup_waiter(exc)

    cdef int _do_handshake(self) except -1:
        try:
            self.sslobj.do_handshake()
        except SSL_AGAIN:
            self._process_outgoing()
        except SSLError as exc:
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)
        return 0

    def _on_handshake_complete(self, handshake_exc):
        cdef BaseLoop loop = self.loop
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None
        sslobj = self.sslobj
        try:
            if handshake_exc is not None:
                raise handshake_exc
            self.state = TLS_WRAPPED
            peercert = sslobj.getpeercert()
        except Exception as exc:
            self.state = TLS_UNWRAPPED
            if isinstance(exc, CertificateError):
                msg = 'SSL handshake failed on verifying the certificate'
            else:
                msg = 'SSL handshake failed'
            # What the handshake wrote (an alert) goes out before the close.
            self._process_outgoing()
            self._fatal_error(exc, msg)
            self._wakeup_waiter(exc)
            return
        if loop._debug:
            logger.debug("%r: SSL handshake took %.1f ms", self,
                         (loop.time() - self.handshake_started) * 1e3)
        self.extra.update(peercert=peercert, cipher=sslobj.cipher(),
                          compression=sslobj.compression(), ssl_object=sslobj)
        if self.app_state == APP_INIT:
            self.app_state = APP_CON_MADE
            self.app_protocol.connection_made(self.app_transport)
        self._wakeup_waiter(None)
        self._do_read()

    cdef int _wakeup_waiter(self, object exc) except -1:
        waiter = self.waiter
        if waiter is None:
            return 0
        self.waiter = None
        if not waiter.cancelled():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)
        return 0

    # -- shutdown ------------------------------------------------------------

    cdef int _start_shutdown(self) except -1:
        if self.state in (TLS_FLUSHING, TLS_SHUTDOWN, TLS_UNWRAPPED):
            return 0
        self.app_closed = True
        if self.state == TLS_HANDSHAKE:
            self._abort()
            return 0
        self.state = TLS_FLUSHING
        self.shutdown_timer = self.loop.call_later(self.shutdown_timeout,
                                                   self._check_shutdown_timeout)
        self._do_flush()
        return 0

    def _check_shutdown_timeout(self):
        if self.state in (TLS_FLUSHING, TLS_SHUTDOWN) and self.transport is not None:
            self._force_close_wire(_aio_exceptions.TimeoutError('SSL shutdown timed out'))

    cdef int _do_flush(self) except -1:
        self._do_read()
        self.state = TLS_SHUTDOWN
        self._do_shutdown()
        return 0

    cdef int _do_shutdown(self) except -1:
        if self.lingering:
            return self._linger_input()
        try:
            if not self.eof:
                self.sslobj.unwrap()
        except SSL_AGAIN:
            # Our close_notify is written; the peer's has not come.
            self._process_outgoing()
            self._linger()
        except SSLError as exc:
            self._on_shutdown_complete(exc)
        else:
            self._process_outgoing()
            self._call_eof_received()
            self._on_shutdown_complete(None)
        return 0

    cdef int _linger(self) except -1:
        # The transfer stops at once: the application hears connection_lost
        # now, without waiting for the peer's close_notify (asyncio and uvloop
        # wait for it, up to ssl_shutdown_timeout). The TCP connection itself
        # is half-closed (FIN after our last bytes) and drained until the
        # peer's close_notify or EOF, so that nothing the peer still sends
        # makes the kernel reset the connection and drop the tail of what we
        # wrote; the shutdown timer bounds that.
        cdef BaseLoop loop = self.loop
        self.lingering = True
        if self.app_state == APP_CON_MADE or self.app_state == APP_EOF:
            self.app_state = APP_CON_LOST
            loop.call_soon(self.app_protocol.connection_lost, None)
        if self.wire is not None:
            self.wire.discard_on_close = True
            if not self.wire.closing and not self.wire.conn_lost:
                self.wire.write_eof()
                return 0
        self._on_shutdown_complete(None)   # other transports: close now
        return 0

    cdef int _linger_input(self) except -1:
        # After our close_notify: anything but the peer's close_notify is
        # thrown away.
        if self.discarding:
            if self.incoming.pending:
                self.incoming.read()
            return 0
        try:
            self.sslobj.unwrap()
        except SSL_AGAIN:
            return 0
        except SSLError:
            self.discarding = True          # (application data after close)
            if self.incoming.pending:
                self.incoming.read()
            return 0
        self._on_shutdown_complete(None)    # the peer's close_notify
        return 0

    cdef int _on_shutdown_complete(self, object exc) except -1:
        self._cancel_timers()
        if exc is not None:
            self._fatal_error(exc, 'Fatal error on transport')
        elif self.transport is not None and not self.closing_wire:
            self.closing_wire = True
            if self.wire is not None:
                self.wire.discard_on_close = True
            self.loop.call_soon(self.transport.close)
        return 0

    cdef int _abort(self) except -1:
        self.state = TLS_UNWRAPPED
        if self.transport is not None:
            self.transport.abort()
        return 0

    cdef int _cancel_timers(self) except -1:
        if self.shutdown_timer is not None:
            self.shutdown_timer.cancel()
            self.shutdown_timer = None
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None
        return 0

    # -- outgoing: application data to TLS records ----------------------------

    cdef int _app_write(self, object data) except -1:
        cdef Py_ssize_t n
        if self.state != TLS_WRAPPED and self.state != TLS_HANDSHAKE:
            if self.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning('SSL connection is closed')
            self.conn_lost += 1
            return 0
        n = len(data)
        if not n:
            return 0
        if self.state == TLS_WRAPPED and not self.backlog:
            # The common case: encrypt at once, hand the record to the wire.
            try:
                if self.sslobj_write(data) == n:
                    self._process_outgoing()
                    return 0
            except SSL_AGAIN:
                pass
            except Exception as exc:
                self._fatal_error(exc, 'Fatal error on SSL protocol')
                return 0
            # (a memory BIO takes everything; this is only for safety)
            self._process_outgoing()
            return 0
        self.backlog.append(data if type(data) is bytes else bytes(data))
        self.backlog_size += n
        if self.state == TLS_WRAPPED:
            try:
                self._do_write()
            except Exception as exc:
                self._fatal_error(exc, 'Fatal error on SSL protocol')
        else:
            self._control_app_writing()
        return 0

    cdef int _do_write(self) except -1:
        cdef Py_ssize_t count, size
        try:
            while self.backlog:
                data = self.backlog[0]
                size = len(data)
                count = self.sslobj_write(data)
                if count < size:
                    self.backlog[0] = memoryview(data)[count:]
                    self.backlog_size -= count
                else:
                    del self.backlog[0]
                    self.backlog_size -= size
        except SSL_AGAIN:
            pass
        self._process_outgoing()
        return 0

    cdef int _process_outgoing(self) except -1:
        if self.lingering:
            return 0                    # the wire is half-closed
        if not self.wire_paused and self.outgoing.pending:
            data = self.outgoing_read()
            if self.wire is not None:
                self.wire._write(data)
            elif self.transport is not None:
                self.transport.write(data)
        if self.app_writing_paused or self.outgoing.pending or self.backlog_size:
            self._control_app_writing()
        return 0

    cdef int _control_app_writing(self) except -1:
        cdef Py_ssize_t size = self.outgoing.pending + self.backlog_size
        if self.app_protocol is None:
            return 0                    # the connection is gone
        if size >= self.write_high and not self.app_writing_paused:
            self.app_writing_paused = True
            try:
                self.app_protocol.pause_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self.loop.call_exception_handler({
                    'message': 'protocol.pause_writing() failed',
                    'exception': exc,
                    'transport': self.app_transport,
                    'protocol': self,
                })
        elif size <= self.write_low and self.app_writing_paused:
            self.app_writing_paused = False
            try:
                self.app_protocol.resume_writing()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self.loop.call_exception_handler({
                    'message': 'protocol.resume_writing() failed',
                    'exception': exc,
                    'transport': self.app_transport,
                    'protocol': self,
                })
        return 0

    # -- incoming: TLS records to application data ----------------------------

    cdef int _do_read(self) except -1:
        if self.state != TLS_WRAPPED and self.state != TLS_FLUSHING:
            return 0
        try:
            if not self.app_reading_paused:
                if self.app_buffered:
                    self._read_buffered()
                else:
                    self._read_copied()
                if self.backlog:
                    self._do_write()
                else:
                    self._process_outgoing()
            self._control_wire_reading()
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
        return 0

    cdef int _read_copied(self) except -1:
        # The plaintext there is, in bytes objects of the right size (at most
        # TLS_CHUNK each, joined if there are several): SSLObject.read(n)
        # allocates n bytes for every record (asyncio and uvloop pass 256 KiB),
        # and allocations above glibc's mmap threshold (128 KiB at first) cost
        # page faults each time. The plaintext is at most what the BIO holds
        # plus what the SSL object holds: decrypted (pending()) and one record
        # it may have begun to take in before the rest arrived.
        cdef Py_ssize_t cap, off, count
        cdef bint closed = False, more = True
        cdef PyObject* raw
        incoming = self.incoming
        while more and not closed:
            cap = incoming.pending + self.sslobj_pending() + TLS_RECORD_MAX
            if cap > TLS_CHUNK:
                cap = TLS_CHUNK
            off = 0
            more = False
            data = PyBytes_FromStringAndSize(NULL, cap)
            view = PyMemoryView_FromMemory(PyBytes_AS_STRING(data), cap, PyBUF_WRITE)
            try:
                while True:
                    try:
                        count = self.sslobj_read(cap - off, view[off:] if off else view)
                    except SSL_AGAIN:
                        break
                    if count == 0:
                        closed = True       # close_notify
                        break
                    off += count
                    if not incoming.pending and not self.sslobj_pending():
                        break               # nothing left: no SSLWantReadError
                    if off == cap:
                        more = True         # a chunk full: another one
                        break
            finally:
                view.release()
            if not off:
                break
            if off < cap:
                # (nobody has seen it yet: shortened in place)
                raw = <PyObject*>data
                Py_INCREF(raw)
                data = None             # ours is now the only reference
                _PyBytes_Resize(&raw, off)
                data = <object>raw
                Py_DECREF(raw)
            # Each chunk is handed over as it is: joining would copy it all
            # again (make bench, TLS echo 100 KiB: 10.4k -> 10.9k round trips/s).
            self.app_protocol.data_received(data)
            if self.app_reading_paused or self.state != TLS_WRAPPED and \
                    self.state != TLS_FLUSHING:
                break
        if closed:
            self._call_eof_received()
            self._start_shutdown()
        return 0

    cdef int _read_buffered(self) except -1:
        cdef Py_ssize_t offset = 0, wants, count = 1
        cdef bint more = False
        buf = self.app_protocol.get_buffer(self.incoming.pending)
        wants = len(buf)
        if wants == 0:
            raise RuntimeError('get_buffer() returned an empty buffer')
        view = memoryview(buf)
        try:
            while offset < wants:
                count = self.sslobj_read(wants - offset,
                                         view[offset:] if offset else view)
                if count <= 0:
                    break
                offset += count
                if not self.incoming.pending and not self.sslobj_pending():
                    break
            else:
                more = True             # the buffer is full: read on later
        except SSL_AGAIN:
            pass
        finally:
            view.release()
        if offset:
            self.app_protocol.buffer_updated(offset)
        if more:
            self.loop.call_soon(self._resume_read)
        if count == 0:
            self._call_eof_received()
            self._start_shutdown()
        return 0

    def _resume_read(self):
        if self.state == TLS_WRAPPED:
            self._do_read()
        elif self.state == TLS_FLUSHING:
            self._do_flush()
        elif self.state == TLS_SHUTDOWN:
            self._do_shutdown()

    cdef int _call_eof_received(self) except -1:
        try:
            if self.app_state == APP_CON_MADE:
                self.app_state = APP_EOF
                if self.app_protocol.eof_received():
                    logger.warning('returning true from eof_received() '
                                   'has no effect when using ssl')
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Error calling eof_received()')
        return 0

    cdef int _control_wire_reading(self) except -1:
        cdef Py_ssize_t size = self.incoming.pending
        if size >= self.read_high and not self.wire_reading_paused:
            self.wire_reading_paused = True
            self.transport.pause_reading()
        elif size <= self.read_low and self.wire_reading_paused:
            self.wire_reading_paused = False
            self.transport.resume_reading()
        return 0

    # -- errors --------------------------------------------------------------

    cdef int _force_close_wire(self, object exc) except -1:
        transport = self.transport
        if transport is None:
            return 0
        if self.wire is not None:
            if self.lingering:
                self.wire.discard_on_close = True
            self.wire._force_close(exc)
        else:
            force = getattr(transport, '_force_close', None)
            if force is not None:
                force(exc)
            else:
                transport.abort()
        return 0

    def _fatal_error(self, exc, message='Fatal error on transport'):
        self._force_close_wire(exc)
        if isinstance(exc, OSError):
            if self.loop._debug:
                logger.debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, _aio_exceptions.CancelledError):
            self.loop.call_exception_handler({
                'message': message,
                'exception': exc,
                'transport': self.transport,
                'protocol': self,
            })

    # -- the application's transport (TLSTransportProxy calls these) ----------

    def write(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, "
                            f"got {type(data).__name__}")
        self._app_write(data)           # (copied if it has to wait)

    def writelines(self, list_of_data):
        data = b''.join(list_of_data)
        if data:
            self._app_write(data)

    def close(self):
        if not self.app_closed:
            self.app_closed = True
            self._start_shutdown()

    def abort(self):
        self.app_closed = True
        if self.state != TLS_UNWRAPPED or self.transport is not None:
            self._abort()

    def is_closing(self):
        return self.app_closed

    def is_reading(self):
        return not self.app_reading_paused

    def pause_reading(self):
        self.app_reading_paused = True

    def resume_reading(self):
        if self.app_reading_paused:
            self.app_reading_paused = False
            self.loop.call_soon(self._resume_read)

    def set_write_buffer_limits(self, high=None, low=None):
        self.write_high, self.write_low = _flow_limits(high, low, SSL_WRITE_HIGH)
        self._control_app_writing()

    def get_write_buffer_limits(self):
        return (self.write_low, self.write_high)

    def get_write_buffer_size(self):
        return self.outgoing.pending + self.backlog_size

    def set_read_buffer_limits(self, high=None, low=None):
        self.read_high, self.read_low = _flow_limits(high, low, SSL_READ_HIGH)
        if self.transport is not None:
            self._control_wire_reading()

    def get_read_buffer_limits(self):
        return (self.read_low, self.read_high)

    def get_read_buffer_size(self):
        return self.incoming.pending

    def get_extra_info(self, name, default=None):
        if name in self.extra:
            return self.extra[name]
        if self.transport is not None:
            return self.transport.get_extra_info(name, default)
        return default

    def set_protocol(self, protocol):
        self._set_app_protocol(protocol)

    def get_protocol(self):
        return self.app_protocol

    @property
    def _app_protocol_paused(self):
        return self.app_writing_paused

    def _transport_closed(self):
        return self.app_closed

    def __repr__(self):
        return f'<uvcore TLSProtocol state={self.state} app_state={self.app_state}>'


class TLSTransportProxy(_FlowControlMixin, Transport):
    """The transport an application protocol sees over TLS."""

    _start_tls_compatible = True        # TLS in TLS

    __slots__ = ('_impl', 'write', 'writelines', 'get_extra_info', 'is_closing',
                 'is_reading', 'pause_reading', 'resume_reading',
                 'get_write_buffer_size', '__weakref__')

    def __init__(self, impl):
        self._impl = impl
        self.write = impl.write
        self.writelines = impl.writelines
        self.get_extra_info = impl.get_extra_info
        self.is_closing = impl.is_closing
        self.is_reading = impl.is_reading
        self.pause_reading = impl.pause_reading
        self.resume_reading = impl.resume_reading
        self.get_write_buffer_size = impl.get_write_buffer_size

    def close(self):
        self._impl.close()

    def abort(self):
        self._impl.abort()

    def write_eof(self):
        raise NotImplementedError("SSL doesn't support half-closes")

    def can_write_eof(self):
        return False

    def _maybe_pause_protocol(self):
        pass

    def _maybe_resume_protocol(self):
        pass

    def set_write_buffer_limits(self, high=None, low=None):
        self._impl.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self):
        return self._impl.get_write_buffer_limits()

    def set_read_buffer_limits(self, high=None, low=None):
        self._impl.set_read_buffer_limits(high, low)

    def get_read_buffer_limits(self):
        return self._impl.get_read_buffer_limits()

    def get_read_buffer_size(self):
        return self._impl.get_read_buffer_size()

    def set_protocol(self, protocol):
        self._impl.set_protocol(protocol)

    def get_protocol(self):
        return self._impl.get_protocol()

    @property
    def _protocol_paused(self):
        return self._impl._app_protocol_paused

    def __repr__(self):
        return f'<{type(self).__name__} {self._impl!r}>'

    def __del__(self, _warn=warnings.warn):
        impl = getattr(self, '_impl', None)     # (None: never initialised)
        if impl is not None and not impl._transport_closed():
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            impl.abort()
