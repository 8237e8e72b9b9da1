"""Helpers shared by the network test modules (not a test module itself).

Everything here uses real sockets on the loopback interface only
(127.0.0.1, ::1) or Unix sockets in a temporary directory.
"""

import asyncio
import contextlib
import inspect
import os
import select
import socket
import struct
import sys

import pytest


# ---------------------------------------------------------------------------
# Environment probes


def _probe_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            s.listen(1)
        return True
    except OSError:
        return False


HAS_IPV6 = _probe_ipv6()

requires_ipv6 = pytest.mark.skipif(
    not HAS_IPV6, reason="IPv6 loopback (::1) is not available")

requires_unix = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX sockets")

requires_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux-only behaviour")

# Loopback hosts of both families, for @pytest.mark.parametrize("host", ...).
LOOPBACK_HOSTS = [
    pytest.param("127.0.0.1", id="v4"),
    pytest.param("::1", id="v6", marks=requires_ipv6),
]


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def stdlib_accepts(method_name, param):
    """True when the stdlib loop's ``method_name`` takes keyword ``param``
    (how the tests tell which Python-version features exist)."""
    from asyncio import base_events, unix_events

    for cls in (unix_events._UnixSelectorEventLoop, base_events.BaseEventLoop):
        meth = getattr(cls, method_name, None)
        if meth is not None:
            return param in inspect.signature(meth).parameters
    return False


# ---------------------------------------------------------------------------
# Running coroutines


def run(loop, coro, timeout=10.0):
    """Run ``coro`` on ``loop`` to completion, bounded by ``timeout``."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return loop.run_until_complete(bounded())


async def wait_until(predicate, timeout=5.0, what="condition"):
    """Poll ``predicate()`` from inside the running loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.002)


async def spin(n=5):
    """Let the running loop go round ``n`` times."""
    for _ in range(n):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------
# Protocols


class Recorder(asyncio.Protocol):
    """A protocol that records what happens to it.

    ``events`` is the ordered list of callbacks seen ('made', 'data',
    'eof', 'lost'); consecutive data_received calls are recorded once.
    """

    keep_open_on_eof = False

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.transport = None
        self.events = []
        self.data = bytearray()
        self.data_calls = 0
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.lost_exc = None
        self.pauses = 0
        self.resumes = 0
        self.problems = []      # callback-order violations seen
        self._waiter = None

    def _check_order(self, callback):
        if "made" not in self.events:
            self.problems.append(f"{callback} before connection_made")
        if "lost" in self.events:
            self.problems.append(f"{callback} after connection_lost")
        if callback == "data_received" and "eof" in self.events:
            self.problems.append("data_received after eof_received")
        if callback == "eof_received" and "eof" in self.events:
            self.problems.append("eof_received twice")

    def _wake(self):
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def connection_made(self, transport):
        if self.events:
            self.problems.append("connection_made called twice or late")
        self.transport = transport
        self.events.append("made")
        self.made.set_result(transport)

    def data_received(self, data):
        self._check_order("data_received")
        if not isinstance(data, bytes):
            self.problems.append(f"data_received({type(data).__name__})")
        if not data:
            self.problems.append("data_received() with empty data")
        self.data_calls += 1
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self._wake()

    def eof_received(self):
        self._check_order("eof_received")
        self.events.append("eof")
        if not self.eof.done():
            self.eof.set_result(None)
        self._wake()
        return self.keep_open_on_eof

    def connection_lost(self, exc):
        if "made" not in self.events:
            self.problems.append("connection_lost before connection_made")
        if "lost" in self.events:
            self.problems.append("connection_lost called twice")
        self.events.append("lost")
        self.lost_exc = exc
        if not self.lost.done():
            self.lost.set_result(exc)
        self._wake()

    def pause_writing(self):
        self.pauses += 1

    def resume_writing(self):
        self.resumes += 1

    async def wait_bytes(self, n):
        """Wait until at least ``n`` bytes were received."""
        while len(self.data) < n:
            if self.lost.done() or self.eof.done():
                raise AssertionError(
                    f"connection ended after {len(self.data)} of {n} bytes")
            self._waiter = self.loop.create_future()
            await self._waiter
        return bytes(self.data)


class HalfOpenRecorder(Recorder):
    keep_open_on_eof = True


class Echo(Recorder):
    """Echoes what it receives; closes (by returning None) on EOF."""

    def data_received(self, data):
        super().data_received(data)
        self.transport.write(data)


class ServerSide:
    """Collects the protocols a server creates."""

    def __init__(self, proto_cls=Echo):
        self.proto_cls = proto_cls
        self.protocols = []
        self._new = None

    def __call__(self):
        proto = self.proto_cls()
        self.protocols.append(proto)
        if self._new is not None and not self._new.done():
            self._new.set_result(proto)
        return proto

    async def wait_count(self, n, timeout=5.0):
        await wait_until(lambda: len(self.protocols) >= n, timeout,
                         f"{n} accepted connections")
        await wait_until(lambda: all(p.made.done() for p in self.protocols[:n]),
                         timeout, "connection_made on the server side")
        return self.protocols[:n]

    async def first(self):
        return (await self.wait_count(1))[0]


async def close_transport(transport, proto=None):
    """Close ``transport`` and wait for connection_lost on ``proto``."""
    if transport is not None and not transport.is_closing():
        transport.close()
    if proto is not None:
        await asyncio.wait_for(asyncio.shield(proto.lost), 5)
        assert not getattr(proto, "problems", None), proto.problems


async def close_server(server):
    server.close()
    await asyncio.wait_for(server.wait_closed(), 5)


def server_port(server):
    return server.sockets[0].getsockname()[1]


# ---------------------------------------------------------------------------
# Sockets


def free_port(host="127.0.0.1"):
    """A port with nothing listening on it right now (bound then closed)."""
    with socket.socket(family_of(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_socket(host="127.0.0.1", backlog=100, blocking=True):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(backlog)
    s.setblocking(blocking)
    return s


def connected_pair(host="127.0.0.1"):
    """Two connected TCP sockets (client, server side), blocking."""
    with listening_socket(host) as lsock:
        c = socket.create_connection(lsock.getsockname()[:2])
        s, _ = lsock.accept()
    return c, s


def set_linger_zero(sock):
    """Make close() send a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))


def recv_all(sock, timeout=10.0):
    """Read a blocking socket until EOF; return what came."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        b = sock.recv(1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


@contextlib.contextmanager
def blackhole(host="127.0.0.1"):
    """A listening address that never completes a TCP handshake.

    A listening socket with backlog 0 whose accept queue is filled and never
    drained: the kernel drops further SYNs, so a connect() to it stays
    pending.  Yields the address.
    """
    family = family_of(host)
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.bind((host, 0))
    lsock.listen(0)
    addr = lsock.getsockname()
    fillers = []
    try:
        for _ in range(16):
            c = socket.socket(family, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(addr)
            _, writable, _ = select.select([], [c], [], 0.2)
            if not writable:
                # This one stays pending: the queue is full.
                c.close()
                break
            fillers.append(c)
        else:
            pytest.skip("could not fill a listen queue on this system")
        yield addr
    finally:
        for c in fillers:
            c.close()
        lsock.close()


# ---------------------------------------------------------------------------
# File descriptors


def fd_is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def grab_fd(number, attempts=256):
    """Open /dev/null until the kernel hands out descriptor ``number``.

    Returns the fd (== number) or None if it could not be had (it is in
    use).  The other descriptors opened on the way are closed again.
    """
    extra = []
    try:
        for _ in range(attempts):
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd == number:
                return fd
            extra.append(fd)
            if fd > number:
                return None
        return None
    finally:
        for fd in extra:
            os.close(fd)


def same_file(fd, stat_result):
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (stat_result.st_dev, stat_result.st_ino)


# ---------------------------------------------------------------------------
# Name resolution


class FakeResolver:
    """Make ``socket.getaddrinfo`` answer for made-up host names.

    Both the stdlib loop and uvcore resolve non-numeric host names with
    ``socket.getaddrinfo`` (uvcore calls it on libuv's thread pool), so
    patching it lets a test decide what a name resolves to.  Other names go
    to the real function.
    """

    def __init__(self, monkeypatch):
        self._real = socket.getaddrinfo
        self.answers = {}
        self.calls = []
        monkeypatch.setattr(socket, "getaddrinfo", self._getaddrinfo)

    def add(self, host, addresses):
        """``addresses``: list of (host, port) / (host, port, flow, scope)."""
        infos = []
        for addr in addresses:
            fam = family_of(addr[0])
            if fam == socket.AF_INET6 and len(addr) == 2:
                addr = (addr[0], addr[1], 0, 0)
            infos.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                          tuple(addr)))
        self.answers[host] = infos

    def _getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        key = host.decode() if isinstance(host, bytes) else host
        if key in self.answers:
            self.calls.append((key, port, family, type, proto, flags))
            return [info for info in self.answers[key]
                    if family in (0, socket.AF_UNSPEC) or info[0] == family]
        return self._real(host, port, family, type, proto, flags)


# ---------------------------------------------------------------------------
# Data


def pattern(size, seed=0):
    """``size`` bytes of a non-repeating-looking pattern (fast to make)."""
    block = bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(65521))
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]


# ---------------------------------------------------------------------------
# A connected pair of transports


class Pair:
    """A server, one client connection to it, and both protocols."""

    server = None
    side = None
    ctr = None      # client transport
    cproto = None   # client protocol
    sproto = None   # server-side protocol

    @classmethod
    async def tcp(cls, loop, host="127.0.0.1", client=Recorder, server=Echo,
                  **server_kw):
        self = cls()
        self.side = ServerSide(server)
        self.server = await loop.create_server(self.side, host, 0,
                                               **server_kw)
        self.ctr, self.cproto = await loop.create_connection(
            client, host, server_port(self.server))
        self.sproto = await self.side.first()
        return self

    @classmethod
    async def unix(cls, loop, path, client=Recorder, server=Echo, **server_kw):
        self = cls()
        self.side = ServerSide(server)
        self.server = await loop.create_unix_server(self.side, path,
                                                    **server_kw)
        self.ctr, self.cproto = await loop.create_unix_connection(client, path)
        self.sproto = await self.side.first()
        return self

    @property
    def stransport(self):
        """The server-side transport."""
        return self.sproto.transport

    async def aclose(self):
        for proto in (self.cproto, self.sproto):
            if proto is None or proto.transport is None:
                continue
            tr = proto.transport
            if not tr.is_closing():
                if tr.get_write_buffer_size():
                    tr.abort()
                else:
                    tr.close()
        for proto in (self.cproto, self.sproto):
            if proto is not None and proto.transport is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(proto.lost), 5)
                except asyncio.TimeoutError:
                    proto.transport.abort()
                    await asyncio.wait_for(asyncio.shield(proto.lost), 5)
        if self.server is not None:
            await close_server(self.server)
        await asyncio.sleep(0)
        for proto in (self.cproto, self.sproto, *self.side.protocols):
            assert not getattr(proto, "problems", None), proto.problems
