#!/usr/bin/env python3
"""Echo and HTTP servers for the uvcore network benchmarks.

    python benchmarks/net_servers.py --loop uvcore|uvloop|asyncio
        --style sock|streams|protocol|buffered|http|tls [--host H] [--port P | --unix PATH]
        [--certfile CERT --keyfile KEY]         (--style tls)

Prints ``READY <port>`` on stdout once it listens (``--port 0``, the default,
picks a free port; a Unix socket prints ``READY 0``), then serves until it is
killed.  If it cannot start (say the loop lacks an API) it prints
``ERROR <exception> (at file:line in function)``, the traceback on stderr, and
exits with status 3.  The same code runs on every loop; only the event loop differs.

Styles (echo servers write back every byte they read):

* ``sock``: a plain listening socket; ``loop.sock_accept`` in a loop and one
  task per connection doing ``loop.sock_recv(conn, 65536)`` /
  ``loop.sock_sendall(conn, data)``.
* ``streams``: ``asyncio.start_server``; ``reader.read(65536)``,
  ``writer.write(data)``, ``await writer.drain()``.
* ``protocol``: ``asyncio.Protocol``; ``data_received`` -> ``transport.write``.
* ``buffered``: ``asyncio.BufferedProtocol``; ``get_buffer`` hands out a 64 KiB
  buffer, ``buffer_updated(n)`` writes the filled part back.  If the transport
  keeps unsent data (``get_write_buffer_size() > 0``) it may still refer to that
  buffer, so the protocol moves to a fresh one.
* ``http``: minimal HTTP/1.1 keep-alive server, an ``asyncio.Protocol`` that
  parses with ``httptools.HttpRequestParser`` and answers every request with
  "Hello, World!" (Content-Length set).  Closes the connection when the
  request asks for it.
* ``tls``: the ``protocol`` echo server (``data_received`` ->
  ``transport.write``) behind ``ssl=``: a server ``SSLContext``
  (``PROTOCOL_TLS_SERVER``, TLS 1.3 minimum, default ciphers and session
  tickets) with ``--certfile``/``--keyfile`` (benchmarks/tls.py makes them).
"""

import argparse
import asyncio
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
READ_SIZE = 65536

HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\n"
                 b"Content-Type: text/plain\r\n"
                 b"Content-Length: 13\r\n"
                 b"\r\n"
                 b"Hello, World!")

# Errors a peer that goes away can cause; the load generator ends every run by
# closing its connections with data in flight (the kernel sends RST).
PEER_GONE = (ConnectionError, BrokenPipeError, TimeoutError)


# -- sock_* methods --------------------------------------------------------------

async def _sock_echo(loop, conn):
    recv, sendall = loop.sock_recv, loop.sock_sendall
    try:
        while True:
            data = await recv(conn, READ_SIZE)
            if not data:
                break
            await sendall(conn, data)
    except PEER_GONE:
        pass
    finally:
        conn.close()


async def _sock_accept_loop(loop, lsock):
    accept = loop.sock_accept
    create_task = loop.create_task
    tasks = set()
    while True:
        conn, _ = await accept(lsock)
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = create_task(_sock_echo(loop, conn))
        tasks.add(t)                    # keep a reference until it is done
        t.add_done_callback(tasks.discard)


async def start_sock(loop, host, port, unix):
    if unix:
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(unix)
    else:
        lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                              socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, port))
    lsock.listen(1024)
    lsock.setblocking(False)
    task = loop.create_task(_sock_accept_loop(loop, lsock))
    # let the accept loop reach its first sock_accept, so a loop that lacks
    # it fails here, before READY, rather than when the first client comes
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    if task.done():
        task.result()
    start_sock.task = task              # keep a reference
    return lsock


# -- streams ---------------------------------------------------------------------

async def _stream_echo(reader, writer):
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except PEER_GONE:
        pass
    finally:
        writer.close()


async def start_streams(loop, host, port, unix):
    if unix:
        srv = await asyncio.start_unix_server(_stream_echo, unix, backlog=1024)
    else:
        srv = await asyncio.start_server(_stream_echo, host, port, backlog=1024)
    return srv


# -- Protocol --------------------------------------------------------------------

class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transport = None


# -- BufferedProtocol --------------------------------------------------------------

class EchoBufferedProtocol(asyncio.BufferedProtocol):
    __slots__ = ("transport", "buf")

    def connection_made(self, transport):
        self.transport = transport
        self.buf = memoryview(bytearray(READ_SIZE))

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        t = self.transport
        t.write(self.buf[:nbytes])
        if t.get_write_buffer_size():
            # the transport may hold on to (a view of) our buffer
            self.buf = memoryview(bytearray(READ_SIZE))

    def connection_lost(self, exc):
        self.transport = None


# -- HTTP on httptools --------------------------------------------------------------

class HttpProtocol(asyncio.Protocol):
    __slots__ = ("transport", "parser")

    def __init__(self):
        import httptools
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except Exception:               # httptools.HttpParserError and friends
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
            self.transport.close()

    def on_message_complete(self):
        t = self.transport
        if t is None:
            return
        t.write(HTTP_RESPONSE)
        if not self.parser.should_keep_alive():
            t.close()

    def connection_lost(self, exc):
        self.transport = None


# ---------------------------------------------------------------------------------

def _factory(style):
    return {"protocol": EchoProtocol, "buffered": EchoBufferedProtocol,
            "http": HttpProtocol}[style]


def tls_context(certfile, keyfile):
    """The server SSLContext of the ``tls`` style: TLS 1.3, defaults otherwise."""
    import ssl
    if not certfile or not keyfile:
        raise ValueError("--style tls needs --certfile and --keyfile")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


async def start_transport_server(loop, style, host, port, unix, ssl=None):
    factory = _factory(style)
    if unix:
        return await loop.create_unix_server(factory, unix, backlog=1024, ssl=ssl)
    return await loop.create_server(factory, host, port, backlog=1024, ssl=ssl)


STYLES = ("sock", "streams", "protocol", "buffered", "http", "tls")


async def start(loop, style, host, port, unix, certfile=None, keyfile=None):
    if style == "sock":
        srv = await start_sock(loop, host, port, unix)
        return srv, (None if unix else srv.getsockname()[1])
    if style == "streams":
        srv = await start_streams(loop, host, port, unix)
    else:
        if style == "http":
            import httptools  # noqa: F401 - fail before READY if it is missing
        ssl = None
        if style == "tls":
            ssl = tls_context(certfile, keyfile)
            style = "protocol"
        srv = await start_transport_server(loop, style, host, port, unix, ssl=ssl)
    return srv, (None if unix else srv.sockets[0].getsockname()[1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", required=True, choices=("uvcore", "uvloop", "asyncio"))
    p.add_argument("--style", required=True, choices=STYLES)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--unix", default=None, help="serve on this Unix socket path instead")
    p.add_argument("--certfile", default=None, help="--style tls: the certificate (PEM)")
    p.add_argument("--keyfile", default=None, help="--style tls: its private key (PEM)")
    args = p.parse_args(argv)

    sys.path.insert(0, HERE)
    try:
        from loop_import import _import_loop     # the same loop import as the micro suite
        factory, _info = _import_loop(args.loop)
        loop = factory()
        asyncio.set_event_loop(loop)
        if args.unix and os.path.exists(args.unix):
            os.unlink(args.unix)
        srv, port = loop.run_until_complete(
            start(loop, args.style, args.host, args.port, args.unix, args.certfile,
                  args.keyfile))
    except Exception as e:              # noqa: BLE001 - reported to the runner
        # one line for the runner ("ERROR ..."), the traceback on stderr
        import traceback
        traceback.print_exc()
        tb = traceback.extract_tb(e.__traceback__)
        where = " (at %s:%d in %s)" % (os.path.basename(tb[-1].filename), tb[-1].lineno,
                                      tb[-1].name) if tb else ""
        msg = ("%s: %s" % (type(e).__name__, e)) if str(e) else type(e).__name__
        sys.stdout.write("ERROR %s%s\n" % (msg.replace("\n", " "), where))
        sys.stdout.flush()
        return 3
    sys.stdout.write("READY %d\n" % (port or 0))
    sys.stdout.flush()
    try:
        loop.run_forever()
    finally:
        srv.close()
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
