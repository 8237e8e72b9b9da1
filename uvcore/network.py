"""Connections and servers for uvcore.Loop.

The orchestration of asyncio's network API -- resolving addresses, trying each
one (happy eyeballs), binding servers, building asyncio.Server, the sendfile and
TLS plumbing -- is asyncio's own code, taken from the running Python's asyncio
so that arguments, errors and messages are exactly asyncio's for that version.
What it builds on is uvcore's: the stream, datagram and pipe transports
(libuv), the accept loop,
the sock_* methods and getaddrinfo (see _uvcore: handles/stream.pxi,
handles/tcp.pxi, server.pxi, sock.pxi, dns.pxi).
"""

import asyncio
import inspect
import os
import socket
from asyncio import base_events, constants, selector_events, sslproto, unix_events

_BASE = base_events.BaseEventLoop
_SELECTOR = selector_events.BaseSelectorEventLoop
_UNIX = unix_events._UnixSelectorEventLoop

_SSLPROTO_PARAMS = inspect.signature(sslproto.SSLProtocol).parameters


def _borrow(cls, *names):
    # The functions themselves: they run with self = the uvcore loop.
    found = {}
    for name in names:
        func = cls.__dict__.get(name)
        if func is not None:
            found[name] = func
    return found


class NetworkMixin:
    """create_connection/create_server/... over uvcore's transports."""

    locals().update(_borrow(
        _BASE,
        'create_connection', '_connect_sock', '_create_connection_transport',
        '_ensure_resolved', 'create_server', '_create_server_getaddrinfo',
        'connect_accepted_socket', 'sendfile', '_sendfile_fallback',
        'start_tls', 'sock_sendfile', '_sock_sendfile_fallback',
        '_check_sendfile_params', 'create_datagram_endpoint',
        'connect_read_pipe', 'connect_write_pipe',
    ))
    locals().update(_borrow(_SELECTOR, '_accept_connection2'))
    locals().update(_borrow(
        _UNIX,
        'create_unix_connection', 'create_unix_server', '_sock_sendfile_native',
        '_sock_sendfile_native_impl', '_sock_sendfile_update_filepos',
        '_sock_add_cancellation_callback',
    ))

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *,
                            server_side=False, server_hostname=None,
                            extra=None, server=None,
                            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                            ssl_shutdown_timeout=getattr(
                                constants, 'SSL_SHUTDOWN_TIMEOUT', None),
                            call_connection_made=True):
        kwargs = {'ssl_handshake_timeout': ssl_handshake_timeout,
                  'call_connection_made': call_connection_made}
        if 'ssl_shutdown_timeout' in _SSLPROTO_PARAMS:
            kwargs['ssl_shutdown_timeout'] = ssl_shutdown_timeout
        ssl_protocol = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            **kwargs)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra,
                                    server=server)
        return ssl_protocol._app_transport

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
            return await self.sock_sendfile(dup, file, offset, count,
                                            fallback=False)
        finally:
            dup.close()
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()
