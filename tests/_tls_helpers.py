"""Helpers shared by the TLS test modules (not a test module itself).

Certificates are made at test time with ``trustme``: one CA that everything
trusts, a second CA that nothing is issued by (for verification failures),
a server certificate for localhost/127.0.0.1/::1, one for a wrong name, and
a client certificate for mutual TLS.

The peers in other threads are real: blocking ``ssl`` sockets, or a stdlib
asyncio loop running in a thread.
"""

import asyncio
import atexit
import contextlib
import functools
import os
import socket
import ssl
import tempfile
import threading

import pytest
import trustme

from _net_helpers import (
    Echo, Pair, Recorder, ServerSide, close_server, listening_socket, pattern,
    server_port,
)

MiB = 1024 * 1024


# ---------------------------------------------------------------------------
# Certificates and contexts


class Certs:
    def __init__(self):
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()
        self.server = self.ca.issue_cert("localhost", "127.0.0.1", "::1",
                                         common_name="localhost")
        self.wrong_name = self.ca.issue_cert("wrong.example",
                                             common_name="wrong.example")
        self.client = self.ca.issue_cert("client.example",
                                         common_name="client.example")
        fd, self.ca_file = tempfile.mkstemp(prefix="uvcore-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(self.ca.cert_pem.bytes())
        atexit.register(os.unlink, self.ca_file)

    def server_ctx(self, cert=None, require_client=False, max_version=None):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.server).configure_cert(ctx)
        if require_client:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx

    def client_ctx(self, trust=None, with_cert=False, max_version=None):
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        (trust or self.ca).configure_trust(ctx)
        if with_cert:
            self.client.configure_cert(ctx)
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx


@functools.lru_cache(maxsize=None)
def get_certs():
    return Certs()


@pytest.fixture(scope="session")
def certs():
    """The test certificates (import this fixture into a test module)."""
    return get_certs()


# ---------------------------------------------------------------------------
# Small utilities


def open_fds():
    return len(os.listdir("/proc/self/fd"))


async def fd_baseline(loop):
    """The number of open descriptors, after one stream transport was made
    and closed on ``loop``: libuv opens a reserve descriptor (for EMFILE)
    with a loop's first stream and keeps it until the loop closes."""
    a, b = socket.socketpair()
    tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
    tr.close()
    b.close()
    for _ in range(5):
        await asyncio.sleep(0.01)
    return open_fds()


class HandlerLog:
    """A loop exception handler that records the contexts it is given."""

    def __init__(self, loop):
        self.contexts = []
        loop.set_exception_handler(self)

    def __call__(self, loop, context):
        self.contexts.append(context)


def sock_path_for(tmp_path):
    p = tmp_path / "t.sock"
    if len(os.fsencode(str(p))) > 100:   # pragma: no cover - odd tmp dirs
        pytest.skip("temporary directory path too long for AF_UNIX")
    return str(p)


def recv_exactly(sslsock, n):
    buf = bytearray()
    while len(buf) < n:
        b = sslsock.recv(min(n - len(buf), 1 << 20))
        if not b:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += b
    return bytes(buf)


def recv_until_eof(sslsock):
    """Read until EOF: (data, True) after a close_notify; (data, False)
    after a reset or, with suppress_ragged_eofs=False, an EOF without."""
    buf = bytearray()
    while True:
        try:
            b = sslsock.recv(1 << 20)
        except (ssl.SSLEOFError, ConnectionResetError):
            return bytes(buf), False
        if not b:
            return bytes(buf), True
        buf += b


def subject(cert):
    """A certificate's subject as a dict."""
    return dict(item for rdn in cert["subject"] for item in rdn)


def client_hello_prefix():
    """The first half of a real TLS ClientHello."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(inc, out,
                                                server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    return hello[:len(hello) // 2]


def call_without_ssl(loop, path, method, sock, kw):
    """A coroutine: ``method`` called without ssl, with ``kw``."""
    return {
        "create_connection": lambda: loop.create_connection(
            Recorder, "127.0.0.1", 1, **kw),
        "create_server": lambda: loop.create_server(
            Recorder, "127.0.0.1", 0, **kw),
        "open_connection": lambda: asyncio.open_connection(
            "127.0.0.1", 1, **kw),
        "start_server": lambda: asyncio.start_server(
            lambda r, w: None, "127.0.0.1", 0, **kw),
        "create_unix_connection": lambda: loop.create_unix_connection(
            Recorder, path, **kw),
        "create_unix_server": lambda: loop.create_unix_server(
            Recorder, path, **kw),
        "connect_accepted_socket": lambda: loop.connect_accepted_socket(
            Recorder, sock, **kw),
    }[method]()


# ---------------------------------------------------------------------------
# Blocking ssl peers in threads


class ThreadedServer:
    """A blocking server in a thread: ``handler(conn)`` runs in a thread of
    its own for each accepted connection.  With ``ctx`` the connection is
    wrapped (TLS handshake done) before the handler gets it."""

    def __init__(self, handler, ctx=None, host="127.0.0.1",
                 suppress_ragged_eofs=True):
        self.handler = handler
        self.ctx = ctx
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self.lsock = listening_socket(host)
        self.lsock.settimeout(0.05)
        self.address = self.lsock.getsockname()[:2]
        self.port = self.address[1]
        self.errors = []
        self.results = []
        self.conns = []
        self._stop = threading.Event()
        self._threads = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._acceptor.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._acceptor.join(10)
        for t in self._threads:
            t.join(10)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.lsock.close()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(10)
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn):
        try:
            if self.ctx is not None:
                conn = self.ctx.wrap_socket(
                    conn, server_side=True,
                    suppress_ragged_eofs=self.suppress_ragged_eofs)
                self.conns.append(conn)
            self.results.append(self.handler(conn))
        except Exception as exc:
            self.errors.append(exc)


def blocking_echo(conn):
    """Echo until EOF; return the number of bytes echoed."""
    total = 0
    clean = False
    while True:
        try:
            data = conn.recv(256 * 1024)
        except (ssl.SSLEOFError, ConnectionResetError):
            break
        if not data:
            clean = True
            break
        conn.sendall(data)
        total += len(data)
    if clean and isinstance(conn, ssl.SSLSocket):
        try:
            conn.unwrap()           # answer the peer's close_notify
        except (OSError, ValueError):
            pass
    conn.close()
    return total


class LoopThread:
    """A stdlib asyncio loop running in a thread of its own."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever,
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def submit(self, coro):
        """A concurrent.futures.Future: ``coro`` run on the thread's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro, timeout=10):
        """Await ``coro`` run on the thread's loop (from another loop)."""
        return await asyncio.wait_for(asyncio.wrap_future(self.submit(coro)),
                                      timeout)


# ---------------------------------------------------------------------------
# Servers, clients and protocols on the loop under test


async def stream_echo(reader, writer):
    """A start_server callback: echo until EOF."""
    try:
        while True:
            data = await reader.read(256 * 1024)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except (OSError, asyncio.TimeoutError):
            pass


async def stream_round_trip(reader, writer, payload, chunk=256 * 1024):
    """Send ``payload`` (with drain) while reading as much back."""

    async def send():
        view = memoryview(payload)
        for i in range(0, len(payload), chunk):
            writer.write(view[i:i + chunk])
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        got = await reader.readexactly(len(payload))
    finally:
        if not sender.done():
            sender.cancel()
    await sender
    return got


async def close_writer(writer):
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except (ConnectionError, ssl.SSLError):
        pass


async def start_echo_server(ctx):
    """A streams TLS echo server on the running loop: (server, port)."""
    server = await asyncio.start_server(stream_echo, "127.0.0.1", 0, ssl=ctx)
    return server, server_port(server)


async def stop_server(server):
    server.close()
    await server.wait_closed()


async def echo_client(port, ctx, payload):
    """A streams TLS client: sends ``payload``, returns what came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   ssl=ctx)
    got = await stream_round_trip(reader, writer, payload)
    await close_writer(writer)
    return got


@contextlib.asynccontextmanager
async def serving(loop, ctx, factory=Echo, host="127.0.0.1", **kw):
    """A create_server(ssl=ctx) server: yields (ServerSide, port)."""
    side = ServerSide(factory)
    server = await loop.create_server(side, host, 0, ssl=ctx, **kw)
    try:
        yield side, server_port(server)
    finally:
        await close_server(server)


@contextlib.asynccontextmanager
async def stream_serving(ctx, handler=stream_echo, **kw):
    """An asyncio.start_server(ssl=ctx) server: yields its port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx,
                                        **kw)
    try:
        yield server_port(server)
    finally:
        await close_server(server)


async def tls_pair(loop, certs, host="127.0.0.1", client=Recorder, server=Echo,
                   server_ctx=None, client_ctx=None, server_kw=None,
                   **client_kw):
    """A TLS server (ssl=), one TLS client connected to it, both protocols."""
    pair = Pair()
    pair.side = ServerSide(server)
    pair.server = await loop.create_server(
        pair.side, host, 0, ssl=server_ctx or certs.server_ctx(),
        **(server_kw or {}))
    pair.ctr, pair.cproto = await loop.create_connection(
        client, host, server_port(pair.server),
        ssl=client_ctx or certs.client_ctx(), **client_kw)
    pair.sproto = await pair.side.first()
    return pair


async def served(loop, certs, port, proto=None, data=b"served"):
    """A TLS client gets ``data`` echoed (new connection, or ``proto``)."""
    if proto is None:
        tr, proto = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=certs.client_ctx())
    n = len(proto.data) + len(data)
    proto.transport.write(data)
    assert (await proto.wait_bytes(n))[-len(data):] == data
    return proto


class BufferedSink(asyncio.BufferedProtocol):
    """A BufferedProtocol with a small buffer; collects (and may echo)."""

    def __init__(self, size=3000, echo=False):
        self.buf = bytearray(size)
        self.data = bytearray()
        self.echo = echo
        self.transport = None
        self.calls = 0
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        # A memoryview: the stdlib's SSLProtocol reads into buf[offset:],
        # which of a bytearray would be a copy.
        return memoryview(self.buf)

    def buffer_updated(self, nbytes):
        self.calls += 1
        chunk = bytes(self.buf[:nbytes])
        self.data += chunk
        if self.echo:
            self.transport.write(chunk)

    def eof_received(self):
        return None

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class Writer(Recorder):
    """Writes 64 KiB blocks until pause_writing() (or a cap) is reached."""

    block = None

    def fill(self, cap):
        if Writer.block is None:
            Writer.block = pattern(64 * 1024, seed=23)
        written = 0
        while not self.pauses and written < cap:
            self.transport.write(self.block)
            written += len(self.block)
        return written
