"""Connections and servers for uvcore.Loop.

The orchestration of asyncio's network API -- resolving addresses, trying each
one (happy eyeballs), binding servers, building asyncio.Server, the sendfile and
TLS plumbing -- is asyncio's own code, taken from the running Python's asyncio
so that arguments, errors and messages are exactly asyncio's for that version.
TLS (_make_ssl_transport, start_tls) is uvcore's own layer (tls.pxi).
What it builds on is uvcore's: the stream, datagram and pipe transports
(libuv), the accept loop,
the sock_* methods and getaddrinfo (see _uvcore: handles/stream.pxi,
handles/tcp.pxi, server.pxi, sock.pxi, dns.pxi).
"""

import functools
import os
import socket
import weakref
from asyncio import base_events, constants, selector_events, unix_events

try:
    import ssl
except ImportError:         # pragma: no cover - Python built without ssl
    ssl = None

from ._uvcore import TLSProtocol

_BASE = base_events.BaseEventLoop
_SELECTOR = selector_events.BaseSelectorEventLoop
_UNIX = unix_events._UnixSelectorEventLoop


def _borrow(cls, *names):
    # The functions themselves: they run with self = the uvcore loop.
    found = {}
    for name in names:
        func = cls.__dict__.get(name)
        if func is not None:
            found[name] = func
    return found


def _adopting(func, positional):
    # The caller's own socket (sock=): its transport gets a dup of the fd
    # (tcp.pxi, _make_stream_transport), so that closing the socket behind the
    # transport's back cannot pull the fd from under libuv.
    @functools.wraps(func)
    async def wrapper(self, *args, **kwargs):
        sock = kwargs.get('sock')
        if sock is None and len(args) > positional:
            sock = args[positional]
        if sock is None:
            return await func(self, *args, **kwargs)
        adopted = self._adopted_socks
        if adopted is None:
            adopted = self._adopted_socks = weakref.WeakSet()
        adopted.add(sock)
        try:
            return await func(self, *args, **kwargs)
        finally:
            adopted.discard(sock)
    return wrapper


class NetworkMixin:
    """create_connection/create_server/... over uvcore's transports."""

    _adopted_socks = None

    locals().update(_borrow(
        _BASE,
        'create_connection', '_connect_sock', '_create_connection_transport',
        '_ensure_resolved', 'create_server', '_create_server_getaddrinfo',
        'connect_accepted_socket', 'sendfile', '_sendfile_fallback',
        'sock_sendfile', '_sock_sendfile_fallback',
        '_check_sendfile_params', 'create_datagram_endpoint',
        'connect_read_pipe', 'connect_write_pipe',
    ))
    locals().update(_borrow(_SELECTOR, '_accept_connection2'))
    create_connection = _adopting(locals()['create_connection'], 99)
    connect_accepted_socket = _adopting(locals()['connect_accepted_socket'], 1)
    locals().update(_borrow(
        _UNIX,
        'create_unix_connection', 'create_unix_server', '_sock_sendfile_native',
        '_sock_sendfile_native_impl', '_sock_sendfile_update_filepos',
        '_sock_add_cancellation_callback',
    ))
    create_unix_connection = _adopting(locals()['create_unix_connection'], 99)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *,
                            server_side=False, server_hostname=None,
                            extra=None, server=None,
                            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                            ssl_shutdown_timeout=getattr(
                                constants, 'SSL_SHUTDOWN_TIMEOUT', None),
                            call_connection_made=True):
        # uvcore's TLS layer (tls.pxi) as the stream's protocol.
        tls = TLSProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            call_connection_made=call_connection_made,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._make_socket_transport(rawsock, tls, extra=extra, server=server)
        return tls.app_transport

    async def start_tls(self, transport, protocol, sslcontext, *,
                        server_side=False, server_hostname=None,
                        ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Upgrade an open connection to TLS; returns the new transport."""
        if ssl is None:
            raise RuntimeError('Python ssl module is not available')
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(f'sslcontext is expected to be an instance of '
                            f'ssl.SSLContext, got {sslcontext!r}')
        if not getattr(transport, '_start_tls_compatible', False):
            raise TypeError(
                f'transport {transport!r} is not supported by start_tls()')
        if transport.is_closing():
            # (asyncio waits forever here: nothing will ever answer)
            raise ConnectionResetError('Connection lost: the transport is closing')
        waiter = self.create_future()
        tls = TLSProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            call_connection_made=False,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        # Nothing may be read between the switch of protocols and the
        # handshake: the bytes would go to the old protocol.
        transport.pause_reading()
        transport.set_protocol(tls)
        made = self.call_soon(tls.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return tls.app_transport

    async def _sendfile_native(self, transp, file, offset, count):
        # The transport's fd belongs to its libuv stream, which libuv lets no
        # other watcher share; a duplicate of the fd (same socket) can be
        # watched for writability while the kernel's sendfile runs.
        resume_reading = transp.is_reading()
        transp.pause_reading()
        await transp._make_empty_waiter()
        dup = socket.socket(fileno=os.dup(transp._sock_fd))
        try:
            dup.setblocking(False)
            sent = await self.sock_sendfile(dup, file, offset, count,
                                            fallback=False)
            self._count_bytes_written(sent)
            return sent
        finally:
            dup.close()
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()
