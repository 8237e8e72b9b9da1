"""Datagram endpoints: create_datagram_endpoint and its transport over UDP
(IPv4 and IPv6 loopback) and Unix datagram sockets.

Every test runs on the stdlib loop too, which proves the expectation.
"""

import asyncio
import inspect
import os
import socket
import sys

import pytest

from _net_helpers import (
    LOOPBACK_HOSTS, fd_is_open, family_of, pattern, requires_linux,
    requires_unix, run, spin, stdlib_accepts, wait_until,
)

pytestmark = [pytest.mark.timeout(30)]


# Whether the running stdlib's DatagramTransport.sendto silently drops an
# empty datagram (it did before Python 3.13, see gh-113812).
EMPTY_DROPPED = "if not data:" in inspect.getsource(
    asyncio.selector_events._SelectorDatagramTransport.sendto)
ACCEPTS_REUSE_ADDRESS = stdlib_accepts("create_datagram_endpoint",
                                       "reuse_address")


class Dgram(asyncio.DatagramProtocol):
    """A datagram protocol that records what happens to it."""

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.transport = None
        self.events = []        # 'made', 'pause', 'resume', 'lost', markers
        self.datagrams = []     # (data, addr)
        self.errors = []
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.lost_calls = 0
        self.lost_exc = "not called"
        self.problems = []

    def connection_made(self, transport):
        if self.events:
            self.problems.append("connection_made called twice or late")
        self.transport = transport
        self.events.append("made")
        self.made.set_result(transport)

    def datagram_received(self, data, addr):
        if "made" not in self.events:
            self.problems.append("datagram_received before connection_made")
        if "lost" in self.events:
            self.problems.append("datagram_received after connection_lost")
        if type(data) is not bytes:
            self.problems.append(f"datagram_received({type(data).__name__})")
        self.datagrams.append((data, addr))

    def error_received(self, exc):
        if "lost" in self.events:
            self.problems.append("error_received after connection_lost")
        self.errors.append(exc)

    def connection_lost(self, exc):
        self.lost_calls += 1
        if self.lost_calls > 1:
            self.problems.append("connection_lost called twice")
        self.events.append("lost")
        self.lost_exc = exc
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    @property
    def payloads(self):
        return [d for d, _ in self.datagrams]

    async def wait_count(self, n, timeout=5.0):
        await wait_until(lambda: len(self.datagrams) >= n, timeout,
                         f"{n} datagrams")
        return self.datagrams[:n]


class DgramEcho(Dgram):
    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.transport.sendto(data, addr)


async def endpoint(loop, proto=Dgram, **kw):
    tr, pr = await loop.create_datagram_endpoint(proto, **kw)
    assert pr.made.done(), "connection_made not called before returning"
    assert pr.transport is tr
    return tr, pr


async def server_client(loop, server=Dgram, host="127.0.0.1", connected=True):
    """A server endpoint and a client, connected to it or not."""
    st, sp = await endpoint(loop, server, local_addr=(host, 0))
    saddr = st.get_extra_info("sockname")
    if connected:
        ct, cp = await endpoint(loop, remote_addr=(host, saddr[1]))
    else:
        ct, cp = await endpoint(loop, local_addr=(host, 0))
    return st, sp, ct, cp, saddr


async def close_all(*protos):
    for p in protos:
        if p is not None and p.transport is not None:
            p.transport.close()
    for p in protos:
        if p is not None and p.transport is not None:
            await asyncio.wait_for(asyncio.shield(p.lost), 5)
            assert p.lost_exc is None
            assert not p.problems, p.problems


def _closed_udp_port(host="127.0.0.1"):
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def upath(tmp_path):
    def make(name):
        p = str(tmp_path / name)
        if len(os.fsencode(p)) > 100:   # pragma: no cover - odd tmp dirs
            pytest.skip("temporary directory path too long for AF_UNIX")
        return p
    return make


# ---------------------------------------------------------------------------
# Round trips and addresses


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_echo_connected_client(loop, host):
    async def main():
        st, sp, ct, cp, saddr = await server_client(loop, DgramEcho, host)
        try:
            caddr = ct.get_extra_info("sockname")
            if host == "::1":
                assert saddr == (host, saddr[1], 0, 0)
                assert caddr == (host, caddr[1], 0, 0)
            else:
                assert saddr == (host, saddr[1])
                assert caddr == (host, caddr[1])
            assert ct.get_extra_info("peername") == saddr
            assert st.get_extra_info("peername") is None
            ct.sendto(b"ping")
            ct.sendto(b"pong!")
            await cp.wait_count(2)
            assert sp.datagrams == [(b"ping", caddr), (b"pong!", caddr)]
            assert type(sp.datagrams[0][1]) is tuple
            assert cp.datagrams == [(b"ping", saddr), (b"pong!", saddr)]
            assert sp.errors == cp.errors == []
        finally:
            await close_all(cp, sp)

    run(loop, main())


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_echo_unconnected_client(loop, host):
    async def main():
        st, sp, ct, cp, saddr = await server_client(loop, DgramEcho, host,
                                                    connected=False)
        try:
            caddr = ct.get_extra_info("sockname")
            assert ct.get_extra_info("peername") is None
            assert caddr[0] == host and caddr[1] > 0
            ct.sendto(b"a", (host, saddr[1]))
            ct.sendto(b"bb", saddr)
            ct.sendto(b"ccc", saddr)
            await cp.wait_count(3)
            # Message boundaries are kept, the sender is the client.
            assert sp.datagrams == [(b"a", caddr), (b"bb", caddr),
                                    (b"ccc", caddr)]
            assert cp.datagrams == [(b"a", saddr), (b"bb", saddr),
                                    (b"ccc", saddr)]
        finally:
            await close_all(cp, sp)

    run(loop, main())


@requires_unix
def test_unix_dgram_echo(loop, upath):
    spath, cpath = upath("s.sock"), upath("c.sock")

    async def main():
        st, sp = await endpoint(loop, DgramEcho, family=socket.AF_UNIX,
                                local_addr=spath)
        ct, cp = await endpoint(loop, family=socket.AF_UNIX,
                                local_addr=cpath, remote_addr=spath)
        try:
            for tr in (st, ct):
                sock = tr.get_extra_info("socket")
                assert sock.family == socket.AF_UNIX
                assert sock.type == socket.SOCK_DGRAM
            assert st.get_extra_info("sockname") == spath
            assert ct.get_extra_info("sockname") == cpath
            assert ct.get_extra_info("peername") == spath
            ct.sendto(b"over unix")
            ct.sendto(b"second", spath)
            await cp.wait_count(2)
            want = [b"over unix", b"second"]
            assert sp.datagrams == [(d, cpath) for d in want]
            assert cp.datagrams == [(d, spath) for d in want]
        finally:
            await close_all(cp, sp)

    run(loop, main())


@requires_unix
def test_unix_dgram_unbound_sender(loop, upath):
    spath = upath("s.sock")
    # What the running Python reports for an unbound Unix sender.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as r, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as w:
        r.bind(upath("probe.sock"))
        w.sendto(b"?", r.getsockname())
        expected_addr = r.recvfrom(16)[1]
        expected_sockname = w.getsockname()

    async def main():
        st, sp = await endpoint(loop, family=socket.AF_UNIX, local_addr=spath)
        ct, cp = await endpoint(loop, family=socket.AF_UNIX, remote_addr=spath)
        try:
            assert ct.get_extra_info("sockname") == expected_sockname
            assert ct.get_extra_info("peername") == spath
            ct.sendto(b"anonymous")
            await sp.wait_count(1)
            assert sp.datagrams == [(b"anonymous", expected_addr)]
        finally:
            await close_all(cp, sp)

    run(loop, main())


def test_empty_datagram_is_received(loop):
    async def main():
        st, sp = await endpoint(loop, local_addr=("127.0.0.1", 0))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as w:
                w.bind(("127.0.0.1", 0))
                w.sendto(b"", st.get_extra_info("sockname"))
                w.sendto(b"after", st.get_extra_info("sockname"))
                await sp.wait_count(2)
                assert sp.datagrams == [(b"", w.getsockname()),
                                        (b"after", w.getsockname())]
        finally:
            await close_all(sp)

    run(loop, main())


# ---------------------------------------------------------------------------
# sendto()


def test_sendto_on_connected_transport_checks_address(loop):
    async def main():
        st, sp, ct, cp, saddr = await server_client(loop)
        try:
            with pytest.raises(ValueError):
                ct.sendto(b"x", ("127.0.0.1", saddr[1] + 1 if saddr[1] < 65535
                                 else saddr[1] - 1))
            with pytest.raises(ValueError):
                ct.sendto(b"x", ("127.0.0.2", saddr[1]))
            assert not ct.is_closing()
            ct.sendto(b"none", None)
            ct.sendto(b"same", saddr)
            ct.sendto(b"default")
            await sp.wait_count(3)
            assert sp.payloads == [b"none", b"same", b"default"]
        finally:
            await close_all(cp, sp)

    run(loop, main())


def test_sendto_data_types(loop):
    async def main():
        st, sp, ct, cp, saddr = await server_client(loop, connected=False)
        try:
            for bad in ("text", 123, None, [1, 2], object()):
                with pytest.raises(TypeError):
                    ct.sendto(bad, saddr)
            ba = bytearray(b"bytearray")
            ct.sendto(ba, saddr)
            ba[:] = b"CHANGED!!"      # must not change what was sent
            ct.sendto(memoryview(b"xxmemoryviewxx")[2:12], saddr)
            ct.sendto(b"bytes", saddr)
            await sp.wait_count(3)
            assert sp.payloads == [b"bytearray", b"memoryview", b"bytes"]
            assert not ct.is_closing()
        finally:
            await close_all(cp, sp)

    run(loop, main())


@pytest.mark.parametrize("connected", [True, False], ids=["conn", "unconn"])
def test_sendto_empty_data(loop, connected):
    async def main():
        st, sp, ct, cp, saddr = await server_client(loop, connected=connected)
        try:
            ct.sendto(b"", saddr)
            ct.sendto(bytearray(), saddr)
            ct.sendto(b"marker", saddr)
            await wait_until(lambda: b"marker" in sp.payloads)
            await asyncio.sleep(0.02)
            if EMPTY_DROPPED:
                assert sp.payloads == [b"marker"]
            else:
                assert sp.payloads == [b"", b"", b"marker"]
            assert ct.get_write_buffer_size() == 0
        finally:
            await close_all(cp, sp)

    run(loop, main())


def test_icmp_port_unreachable_goes_to_error_received(loop):
    async def main():
        port = _closed_udp_port()
        ct, cp = await endpoint(loop, remote_addr=("127.0.0.1", port))
        try:
            deadline = loop.time() + 5
            while not cp.errors:
                assert loop.time() < deadline, "no error_received"
                ct.sendto(b"anyone?")
                await asyncio.sleep(0.02)
            assert all(isinstance(e, ConnectionRefusedError)
                       for e in cp.errors), cp.errors
            # An ICMP error does not close the transport.
            assert not ct.is_closing()
            assert not cp.lost.done()
        finally:
            await close_all(cp)

    run(loop, main())


# ---------------------------------------------------------------------------
# Socket options and arguments


def test_allow_broadcast_sets_so_broadcast(loop):
    async def main():
        st, sp = await endpoint(loop, local_addr=("127.0.0.1", 0))
        saddr = st.get_extra_info("sockname")
        bt, bp = await endpoint(loop, remote_addr=saddr, allow_broadcast=True)
        try:
            bsock = bt.get_extra_info("socket")
            ssock = st.get_extra_info("socket")
            assert bsock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
            assert not ssock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
            bt.sendto(b"to all")
            await sp.wait_count(1)
            assert sp.payloads == [b"to all"]
            with pytest.raises(ValueError):
                bt.sendto(b"x", ("127.0.0.2", saddr[1]))
        finally:
            await close_all(bp, sp)

    run(loop, main())


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"),
                    reason="no SO_REUSEPORT")
def test_reuse_port(loop):
    async def main():
        t1, p1 = await endpoint(loop, local_addr=("127.0.0.1", 0),
                                reuse_port=True)
        port = t1.get_extra_info("sockname")[1]
        t2, p2 = await endpoint(loop, local_addr=("127.0.0.1", port),
                                reuse_port=True)
        try:
            for tr in (t1, t2):
                sock = tr.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
            assert t2.get_extra_info("sockname") == ("127.0.0.1", port)
            # Without reuse_port the port is taken.
            with pytest.raises(OSError):
                await loop.create_datagram_endpoint(
                    Dgram, local_addr=("127.0.0.1", port))
        finally:
            await close_all(p1, p2)

    run(loop, main())


def test_argument_errors(loop):
    async def main():
        create = loop.create_datagram_endpoint
        # reuse_address: refused since 3.8.1 (ValueError), gone in 3.11.
        with pytest.raises(ValueError if ACCEPTS_REUSE_ADDRESS else TypeError):
            await create(Dgram, local_addr=("127.0.0.1", 0),
                         reuse_address=True)
        with pytest.raises(ValueError):
            await create(Dgram)                       # no address, no family
        # (Python 3.10's asyncio checks the address with an assert.)
        bad_address = (TypeError, AssertionError) if sys.version_info < (3, 11) \
            else TypeError
        with pytest.raises(bad_address):
            await create(Dgram, local_addr=("127.0.0.1", 0, 0))
        with pytest.raises(bad_address):
            await create(Dgram, remote_addr="127.0.0.1:9")
        with pytest.raises(ValueError):               # v4 local, v6 remote
            await create(Dgram, local_addr=("127.0.0.1", 0),
                         remote_addr=("::1", 9))
        with pytest.raises(OSError):
            await create(Dgram, family=socket.AF_INET6,
                         local_addr=("127.0.0.1", 0))
        with pytest.raises(OSError):
            await create(Dgram, family=socket.AF_INET, local_addr=("::1", 0))
        if hasattr(socket, "AF_UNIX"):
            with pytest.raises(bad_address):
                await create(Dgram, family=socket.AF_UNIX,
                             local_addr=("127.0.0.1", 0))
        # A family alone makes an unbound, unconnected endpoint.
        tr, pr = await endpoint(loop, family=socket.AF_INET)
        assert tr.get_extra_info("socket").family == socket.AF_INET
        assert tr.get_extra_info("peername") is None
        await close_all(pr)

    run(loop, main())


@pytest.mark.parametrize("extra", [
    {"local_addr": ("127.0.0.1", 0)}, {"remote_addr": ("127.0.0.1", 9)},
    {"family": socket.AF_INET}, {"reuse_port": True},
    {"allow_broadcast": True}, {"stream": True},
], ids=["local_addr", "remote_addr", "family", "reuse_port", "broadcast",
        "stream_sock"])
def test_bad_sock_arguments_are_refused(loop, extra):
    async def main():
        kw = dict(extra)    # the param dict is shared by both loops
        kind = socket.SOCK_STREAM if kw.pop("stream", 0) else \
            socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind(("127.0.0.1", 0))
            with pytest.raises(ValueError):
                await loop.create_datagram_endpoint(Dgram, sock=sock, **kw)
            assert sock.fileno() != -1      # left to the caller
        finally:
            sock.close()

    run(loop, main())


@pytest.mark.parametrize("connect", [False, True], ids=["bound", "connected"])
def test_sock_argument(loop, connect):
    async def main():
        st, sp = await endpoint(loop, DgramEcho, local_addr=("127.0.0.1", 0))
        saddr = st.get_extra_info("sockname")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        if connect:
            sock.connect(saddr)
        fd = sock.fileno()
        ct, cp = await endpoint(loop, sock=sock)
        try:
            assert sock.gettimeout() == 0
            assert ct.get_extra_info("socket").fileno() == fd
            assert ct.get_extra_info("sockname") == sock.getsockname()
            assert ct.get_extra_info("peername") == (saddr if connect
                                                     else None)
            ct.sendto(b"via sock", None if connect else saddr)
            await cp.wait_count(1)
            assert cp.datagrams == [(b"via sock", saddr)]
            assert sp.datagrams == [(b"via sock", sock.getsockname())]
        finally:
            await close_all(cp, sp)
        # The transport owned the socket and closed it.
        assert sock.fileno() == -1
        assert not fd_is_open(fd)

    run(loop, main())


# ---------------------------------------------------------------------------
# Sizes and volume


def test_large_datagram(loop):
    size = 60000
    payload = pattern(size, seed=3)

    async def main():
        st, sp, ct, cp, _ = await server_client(loop, DgramEcho)
        try:
            ct.sendto(payload)
            await cp.wait_count(1)
            assert len(sp.datagrams) == 1 and len(cp.datagrams) == 1
            assert len(sp.payloads[0]) == size and sp.payloads[0] == payload
            assert len(cp.payloads[0]) == size and cp.payloads[0] == payload
        finally:
            await close_all(cp, sp)

    run(loop, main())


def test_burst_of_small_datagrams(loop):
    total, batch = 500, 50

    blob = pattern(60 * total, seed=5)
    dgrams = [i.to_bytes(4, "big") + blob[60 * i:60 * (i + 1)]
              for i in range(total)]

    async def main():
        st, sp, ct, cp, _ = await server_client(loop)
        try:
            for start in range(0, total, batch):
                for i in range(start, start + batch):
                    ct.sendto(dgrams[i])
                # Let the receiver catch up between bursts (until it has
                # everything or makes no progress for a while).
                last, since = -1, loop.time()
                while len(sp.datagrams) < start + batch:
                    n = len(sp.datagrams)
                    if n != last:
                        last, since = n, loop.time()
                    elif loop.time() - since > 0.2:
                        break
                    await asyncio.sleep(0)
            got = sp.payloads
            assert len(got) >= total * 0.9, f"only {len(got)} of {total}"
            seen = set()
            for d in got:
                i = int.from_bytes(d[:4], "big")
                assert 0 <= i < total and i not in seen
                assert d == dgrams[i]
                seen.add(i)
        finally:
            await close_all(cp, sp)

    run(loop, main())


# ---------------------------------------------------------------------------
# Transport API


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_extra_info(loop, host):
    async def main():
        st, sp, ct, cp, saddr = await server_client(loop, host=host)
        try:
            for tr in (st, ct):
                sock = tr.get_extra_info("socket")
                assert sock.family == family_of(host)
                assert sock.type == socket.SOCK_DGRAM
                assert sock.fileno() >= 0
                assert sock.getsockname() == tr.get_extra_info("sockname")
            assert st.get_extra_info("peername") is None
            assert ct.get_extra_info("peername") == saddr
            assert ct.get_extra_info("socket").getpeername() == saddr
            assert st.get_extra_info("no such key") is None
            assert st.get_extra_info("no such key", 42) == 42
            assert st.get_protocol() is sp
        finally:
            await close_all(cp, sp)

    run(loop, main())


def test_write_buffer_size_and_limits(loop):
    async def main():
        st, sp = await endpoint(loop, local_addr=("127.0.0.1", 0))
        try:
            size = st.get_write_buffer_size()
            assert type(size) is int and size == 0
            if not hasattr(st, "set_write_buffer_limits"):
                pytest.skip("transport has no set_write_buffer_limits")
            st.set_write_buffer_limits(high=4096, low=1024)
            assert st.get_write_buffer_limits() == (1024, 4096)
            st.set_write_buffer_limits(high=400)
            assert st.get_write_buffer_limits() == (100, 400)
            with pytest.raises(ValueError):
                st.set_write_buffer_limits(high=10, low=20)
            st.set_write_buffer_limits(high=0)
            assert st.get_write_buffer_limits() == (0, 0)
        finally:
            await close_all(sp)

    run(loop, main())


def test_pause_and_resume_writing_pair_up(loop):
    async def main():
        st, sp, ct, cp, _ = await server_client(loop)
        try:
            if hasattr(ct, "set_write_buffer_limits"):
                ct.set_write_buffer_limits(high=0)
            chunk = b"w" * 8192
            for _ in range(400):
                ct.sendto(chunk)
                assert ct.get_write_buffer_size() >= 0
            await wait_until(lambda: ct.get_write_buffer_size() == 0, 5,
                             "write buffer drained")
            await spin(5)
            flow = [e for e in cp.events if e in ("pause", "resume")]
            # Strict alternation, starting with a pause, ending resumed.
            assert flow == ["pause", "resume"] * (len(flow) // 2), flow
            assert cp.errors == []
        finally:
            await close_all(cp, sp)

    run(loop, main())


# ---------------------------------------------------------------------------
# close(), abort(), errors


def test_close_calls_connection_lost_once_after_pending_callbacks(loop):
    async def main():
        st, sp = await endpoint(loop, local_addr=("127.0.0.1", 0))
        w = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        w.sendto(b"too late", st.get_extra_info("sockname"))   # queued
        w.close()
        loop.call_soon(sp.events.append, "pending")
        assert not st.is_closing()
        st.close()
        assert st.is_closing()
        assert sp.lost_calls == 0          # not called from inside close()
        st.close()                          # a second close is harmless
        await asyncio.wait_for(asyncio.shield(sp.lost), 5)
        await spin(5)
        assert sp.events == ["made", "pending", "lost"]
        assert sp.lost_calls == 1 and sp.lost_exc is None
        assert sp.datagrams == []   # nothing delivered once closing
        assert st.is_closing()
        assert not sp.problems

    run(loop, main())


def test_sendto_after_close(loop):
    async def main():
        st, sp, ct, cp, saddr = await server_client(loop)
        ctx = []
        loop.set_exception_handler(lambda lp, c: ctx.append(c))
        try:
            ct.close()
            ct.sendto(b"after close")               # does not raise
            await asyncio.wait_for(cp.lost, 5)
            ct.sendto(b"after connection_lost")     # nor here
            ct.sendto(b"with addr", saddr)
            await asyncio.sleep(0.05)
            assert sp.datagrams == []
            assert cp.lost_calls == 1 and not cp.problems
            assert ctx == []
            # Unconnected: sendto right after close() does not raise either.
            ut, up = await endpoint(loop, local_addr=("127.0.0.1", 0))
            ut.close()
            ut.sendto(b"late", saddr)
            await asyncio.wait_for(up.lost, 5)
            assert up.lost_calls == 1 and up.lost_exc is None
        finally:
            loop.set_exception_handler(None)
            await close_all(sp)

    run(loop, main())


def test_abort(loop):
    async def main():
        st, sp, ct, cp, _ = await server_client(loop)
        ct.sendto(b"before abort")
        ct.abort()
        assert ct.is_closing()
        await asyncio.wait_for(asyncio.shield(cp.lost), 1)
        assert cp.lost_exc is None and cp.lost_calls == 1
        st.close()
        st.abort()                  # abort after close: still one call
        await asyncio.wait_for(asyncio.shield(sp.lost), 1)
        await spin(5)
        assert sp.lost_calls == 1 and sp.lost_exc is None
        assert not cp.problems and not sp.problems

    run(loop, main())


def test_exception_in_datagram_received_goes_to_handler(loop):
    class Boom(Dgram):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"boom":
                raise ZeroDivisionError("from datagram_received")

    async def main():
        ctx = []
        loop.set_exception_handler(lambda lp, c: ctx.append(c))
        st, sp = await endpoint(loop, Boom, local_addr=("127.0.0.1", 0))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as w:
                w.sendto(b"boom", st.get_extra_info("sockname"))
                await wait_until(lambda: ctx, 5, "exception handler call")
                assert len(ctx) == 1
                exc = ctx[0].get("exception")
                assert isinstance(exc, ZeroDivisionError)
                assert str(exc) == "from datagram_received"
                # As in the stdlib, the transport survives the error and
                # keeps delivering datagrams.
                await spin(5)
                assert not st.is_closing()
                assert not sp.lost.done()
                w.sendto(b"next", st.get_extra_info("sockname"))
                await sp.wait_count(2)
                assert sp.payloads == [b"boom", b"next"]
        finally:
            loop.set_exception_handler(None)
            await close_all(sp)

    run(loop, main())


@pytest.mark.parametrize("kind", ["inet", pytest.param(
    "unix", marks=requires_unix)])
def test_socket_is_closed_after_connection_lost(loop, kind, upath):
    async def main():
        if kind == "inet":
            tr, pr = await endpoint(loop, local_addr=("127.0.0.1", 0))
        else:
            tr, pr = await endpoint(loop, family=socket.AF_UNIX,
                                    local_addr=upath("x.sock"))
        sock = tr.get_extra_info("socket")
        fd = sock.fileno()
        assert fd >= 0 and fd_is_open(fd)
        tr.close()
        await asyncio.wait_for(pr.lost, 5)
        await spin(3)
        assert pr.lost_calls == 1 and not pr.problems
        assert not fd_is_open(fd)
        assert sock.fileno() == -1

    run(loop, main())


@requires_linux
def test_many_endpoints_leave_no_fd_behind(loop):
    def count_fds():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        st, sp = await endpoint(loop, local_addr=("127.0.0.1", 0))
        saddr = st.get_extra_info("sockname")
        # Warm up: anything the loop opens lazily is opened now.
        t, p = await endpoint(loop, remote_addr=saddr)
        t.sendto(b"warm")
        await close_all(p)
        await sp.wait_count(1)
        before = count_fds()
        for i in range(50):
            if i % 2:
                t, p = await endpoint(loop, remote_addr=saddr)
                t.sendto(b"%d" % i)
            else:
                t, p = await endpoint(loop, local_addr=("127.0.0.1", 0))
                t.sendto(b"%d" % i, saddr)
            await close_all(p)
        await sp.wait_count(51)
        opened = []
        for i in range(50):
            opened.append(await endpoint(loop, local_addr=("127.0.0.1", 0)))
        assert count_fds() >= before + 50
        await close_all(*[p for _, p in opened])
        await spin(5)
        assert count_fds() == before
        await close_all(sp)

    run(loop, main())
