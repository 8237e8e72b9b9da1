# Serving: the accept side of asyncio.Server. asyncio.Server itself (and the
# create_server/create_unix_server that build it) is asyncio's own; the loop
# provides _start_serving/_stop_serving: an fd watcher on the listening socket
# whose callback accepts in a loop and makes a stream transport per connection
# at once (asyncio makes a Task per connection; only TLS needs one here).

import errno as _errno
from asyncio import constants as _constants
from asyncio import trsock as _trsock

from asyncio import selector_events as _selector_events
cdef bint _ACCEPT2_TAKES_SHUTDOWN_TIMEOUT = 'ssl_shutdown_timeout' in \
    _inspect.signature(_selector_events.BaseSelectorEventLoop._accept_connection2).parameters

cdef frozenset _ACCEPT_RESOURCE_ERRORS = frozenset(
    [_errno.EMFILE, _errno.ENFILE, _errno.ENOBUFS, _errno.ENOMEM])


@cython.auto_pickle(False)
cdef class _Acceptor:
    cdef:
        BaseLoop loop
        object protocol_factory
        object sock
        object sslcontext
        object server
        int backlog
        object ssl_handshake_timeout
        object ssl_shutdown_timeout

    def __init__(self, *args, **kwargs):
        raise TypeError("_Acceptor objects are created by the event loop")

    def _on_readable(self):
        cdef BaseLoop loop = self.loop
        cdef int i
        sock = self.sock
        for i in range(self.backlog):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return      # nothing more to accept now
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCE_ERRORS:
                    raise   # the loop's exception handler logs it
                # Out of fds or memory: say so, stop accepting for a while
                # (pending connections wait in the backlog), then go on.
                loop.call_exception_handler({
                    'message': 'socket.accept() out of system resource',
                    'exception': exc,
                    'socket': _trsock.TransportSocket(sock),
                })
                _remove_watch(loop, sock.fileno(), False)
                loop.call_later(_constants.ACCEPT_RETRY_DELAY, self._resume)
                return
            uvc_add(&loop.m.connections_accepted, 1)
            self._serve(conn, addr)

    def _resume(self):
        if self.loop._closed or self.sock.fileno() < 0:
            return
        if self.server is not None and not self.server.is_serving():
            return
        _add_watch(self.loop, self.sock.fileno(), self._on_readable, (), False)

    cdef _serve(self, conn, addr):
        cdef BaseLoop loop = self.loop
        extra = {'peername': addr}
        if self.sslcontext is not None:
            # asyncio's own (its error reporting); 3.10's has no shutdown timeout.
            if _ACCEPT2_TAKES_SHUTDOWN_TIMEOUT:
                coro = loop._accept_connection2(
                    self.protocol_factory, conn, extra, self.sslcontext,
                    self.server, self.ssl_handshake_timeout,
                    self.ssl_shutdown_timeout)
            else:
                coro = loop._accept_connection2(
                    self.protocol_factory, conn, extra, self.sslcontext,
                    self.server, self.ssl_handshake_timeout)
            loop.create_task(coro)
            return
        protocol = None
        try:
            protocol = self.protocol_factory()
            _make_stream_transport(loop, conn, protocol, None, extra, self.server)
        except (SystemExit, KeyboardInterrupt):
            conn.close()
            raise
        except BaseException as exc:
            conn.close()
            if loop._debug:
                context = {
                    'message': 'Error on transport creation for incoming connection',
                    'exception': exc,
                }
                if protocol is not None:
                    context['protocol'] = protocol
                loop.call_exception_handler(context)


cdef object _start_serving(BaseLoop loop, object protocol_factory, object sock,
                           object sslcontext, object server, int backlog,
                           object ssl_handshake_timeout, object ssl_shutdown_timeout):
    cdef _Acceptor a = _Acceptor.__new__(_Acceptor)
    a.loop = loop
    a.protocol_factory = protocol_factory
    a.sock = sock
    a.sslcontext = sslcontext
    a.server = server
    a.backlog = backlog
    a.ssl_handshake_timeout = ssl_handshake_timeout
    a.ssl_shutdown_timeout = ssl_shutdown_timeout
    _add_watch(loop, sock.fileno(), a._on_readable, (), False)
