"""The loop's low-level socket methods: sock_recv, sock_recv_into,
sock_sendall, sock_connect, sock_accept, sock_sendto, sock_recvfrom,
sock_recvfrom_into; refusal of blocking and SSL sockets; cancellation and
racing waiters."""

import asyncio
import errno
import socket
import ssl

import pytest

from _net_helpers import (
    LOOPBACK_HOSTS, FakeResolver, blackhole, family_of, free_port,
    listening_socket, pattern, requires_unix, run, set_linger_zero, spin,
)

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024

HAS_DATAGRAM_METHODS = hasattr(asyncio.AbstractEventLoop, "sock_recvfrom")
requires_datagram_methods = pytest.mark.skipif(
    not HAS_DATAGRAM_METHODS,
    reason="sock_sendto/sock_recvfrom(_into) are Python 3.11+")


@pytest.fixture
def tcp_pair():
    """Two connected non-blocking TCP sockets."""
    with listening_socket() as lsock:
        a = socket.create_connection(lsock.getsockname())
        b, _ = lsock.accept()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def udp_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


# ---------------------------------------------------------------------------
# recv / recv_into / sendall


def test_sock_sendall_and_recv(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        assert await loop.sock_sendall(a, b"hello") is None
        assert await loop.sock_recv(b, 100) == b"hello"
        assert await loop.sock_sendall(a, bytearray(b"ba")) is None
        assert await loop.sock_sendall(a, memoryview(b"xyz")[1:]) is None
        assert await loop.sock_sendall(a, b"") is None
        data = b""
        while len(data) < 4:
            data += await loop.sock_recv(b, 100)
        assert data == b"bayz"

    run(loop, main())


def test_sock_recv_waits_for_data(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(b, 100))
        await asyncio.sleep(0.05)
        assert not task.done()
        a.send(b"late")
        assert await asyncio.wait_for(task, 5) == b"late"

    run(loop, main())


def test_sock_recv_respects_size(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        a.send(b"0123456789")
        await asyncio.sleep(0.01)
        assert await loop.sock_recv(b, 4) == b"0123"
        assert await loop.sock_recv(b, 100) == b"456789"

    run(loop, main())


def test_sock_recv_at_eof(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(b, 100))
        await spin()
        a.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(task, 5) == b""
        assert await loop.sock_recv(b, 100) == b""

    run(loop, main())


def test_sock_recv_reset_by_peer(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(b, 100))
        await spin()
        set_linger_zero(a)
        a.close()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(task, 5)

    run(loop, main())


def test_sock_recv_into(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        buf = bytearray(10)
        task = asyncio.ensure_future(loop.sock_recv_into(b, buf))
        await asyncio.sleep(0.02)
        assert not task.done()
        a.send(b"abc")
        assert await asyncio.wait_for(task, 5) == 3
        assert buf[:3] == b"abc"
        a.send(b"defgh")
        await asyncio.sleep(0.01)
        view = memoryview(buf)[3:6]
        assert await loop.sock_recv_into(b, view) == 3
        assert bytes(buf[:6]) == b"abcdef"
        assert await loop.sock_recv_into(b, buf) == 2
        assert buf[:2] == b"gh"
        a.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv_into(b, buf) == 0

    run(loop, main())


@pytest.mark.timeout(60)
def test_sock_sendall_large_with_concurrent_reader(loop, tcp_pair):
    a, b = tcp_pair
    size = 16 * MiB
    blob = pattern(size, seed=21)

    async def reader():
        got = bytearray()
        buf = bytearray(256 * 1024)
        while len(got) < size:
            n = await loop.sock_recv_into(b, buf)
            assert n > 0
            got += buf[:n]
        return bytes(got)

    async def main():
        rtask = asyncio.ensure_future(reader())
        assert await loop.sock_sendall(a, blob) is None
        got = await asyncio.wait_for(rtask, 30)
        assert got == blob

    run(loop, main(), timeout=45)


def test_sock_sendall_waits_for_a_slow_reader(loop, tcp_pair):
    a, b = tcp_pair
    size = 16 * MiB
    blob = pattern(size, seed=22)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, blob))
        await asyncio.sleep(0.05)
        assert not task.done()          # the kernel buffers are full
        got = bytearray()
        while len(got) < size:
            got += await loop.sock_recv(b, 1 << 20)
        await asyncio.wait_for(task, 10)
        assert got == blob

    run(loop, main(), timeout=25)


def test_sock_sendall_to_reset_peer(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        set_linger_zero(b)
        b.close()
        await asyncio.sleep(0.02)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(10):
                await loop.sock_sendall(a, pattern(1 * MiB))

    run(loop, main())


def test_sock_recv_on_closed_socket(loop):
    async def main():
        s = socket.socket()
        s.setblocking(False)
        s.close()
        with pytest.raises(OSError):
            await loop.sock_recv(s, 10)

    run(loop, main())


# ---------------------------------------------------------------------------
# connect / accept


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_sock_connect_and_accept(loop, host):
    async def main():
        lsock = listening_socket(host, blocking=False)
        c = socket.socket(family_of(host))
        c.setblocking(False)
        try:
            accept = asyncio.ensure_future(loop.sock_accept(lsock))
            await spin()
            assert not accept.done()
            assert await loop.sock_connect(c, lsock.getsockname()) is None
            conn, addr = await asyncio.wait_for(accept, 5)
            try:
                assert addr == c.getsockname()
                assert conn.gettimeout() == 0          # non-blocking
                assert conn.family == lsock.family
                await loop.sock_sendall(c, b"hi")
                assert await loop.sock_recv(conn, 10) == b"hi"
            finally:
                conn.close()
        finally:
            c.close()
            lsock.close()

    run(loop, main())


def test_sock_connect_resolves_host_names(loop):
    async def main():
        with listening_socket(blocking=False) as lsock:
            port = lsock.getsockname()[1]
            c = socket.socket(socket.AF_INET)
            c.setblocking(False)
            try:
                await loop.sock_connect(c, ("localhost", port))
                assert c.getpeername() == ("127.0.0.1", port)
            finally:
                c.close()

    run(loop, main())


def test_sock_connect_resolves_with_the_socket_family(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)

    async def main():
        with listening_socket(blocking=False) as lsock:
            port = lsock.getsockname()[1]
            fake.add("dual.uvcore.invalid", [("::1", 9), ("127.0.0.1", port)])
            c = socket.socket(socket.AF_INET)
            c.setblocking(False)
            try:
                await loop.sock_connect(c, ("dual.uvcore.invalid", port))
                assert c.getpeername() == ("127.0.0.1", port)
                key, _, fam, typ, proto, _ = fake.calls[-1]
                assert fam == socket.AF_INET
                assert typ == socket.SOCK_STREAM
            finally:
                c.close()

    run(loop, main())


def test_sock_connect_refused(loop):
    port = free_port()

    async def main():
        c = socket.socket()
        c.setblocking(False)
        try:
            with pytest.raises(ConnectionRefusedError) as ei:
                await loop.sock_connect(c, ("127.0.0.1", port))
            assert ei.value.errno == errno.ECONNREFUSED
            assert str(ei.value) == (f"[Errno {errno.ECONNREFUSED}] Connect "
                                     f"call failed ('127.0.0.1', {port})")
        finally:
            c.close()

    run(loop, main())


def test_sock_connect_bad_host(loop):
    async def main():
        c = socket.socket()
        c.setblocking(False)
        try:
            with pytest.raises(socket.gaierror):
                await loop.sock_connect(c, ("no-such-host.invalid", 80))
        finally:
            c.close()

    run(loop, main())


@requires_unix
def test_sock_connect_unix(loop, tmp_path):
    path = str(tmp_path / "s")

    async def main():
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        lsock.listen()
        lsock.setblocking(False)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            await loop.sock_connect(c, path)
            conn, addr = await loop.sock_accept(lsock)
            assert addr == ""
            await loop.sock_sendall(conn, b"unix")
            assert await loop.sock_recv(c, 10) == b"unix"
            conn.close()
            with pytest.raises(FileNotFoundError):
                c2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c2.setblocking(False)
                try:
                    await loop.sock_connect(c2, str(tmp_path / "missing"))
                finally:
                    c2.close()
        finally:
            c.close()
            lsock.close()

    run(loop, main())


def test_sock_connect_datagram(loop, udp_pair):
    a, b = udp_pair

    async def main():
        await loop.sock_connect(a, b.getsockname())
        assert a.getpeername() == b.getsockname()
        await loop.sock_sendall(a, b"dgram")
        assert await loop.sock_recv(b, 100) == b"dgram"

    run(loop, main())


def test_sock_accept_several(loop):
    async def main():
        with listening_socket(blocking=False) as lsock:
            clients = [socket.create_connection(lsock.getsockname())
                       for _ in range(5)]
            try:
                accepted = [await loop.sock_accept(lsock) for _ in clients]
                assert sorted(addr for _, addr in accepted) == sorted(
                    c.getsockname() for c in clients)
                for conn, _ in accepted:
                    conn.close()
            finally:
                for c in clients:
                    c.close()

    run(loop, main())


# ---------------------------------------------------------------------------
# Datagram methods


@requires_datagram_methods
def test_sock_sendto_and_recvfrom(loop, udp_pair):
    a, b = udp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
        await spin()
        assert not task.done()
        n = await loop.sock_sendto(a, b"datagram", b.getsockname())
        assert n == 8
        data, addr = await asyncio.wait_for(task, 5)
        assert data == b"datagram"
        assert addr == a.getsockname()
        # Size limit truncates the datagram.
        await loop.sock_sendto(a, b"0123456789", b.getsockname())
        data, addr = await loop.sock_recvfrom(b, 4)
        assert data == b"0123"

    run(loop, main())


@requires_datagram_methods
def test_sock_recvfrom_into(loop, udp_pair):
    a, b = udp_pair

    async def main():
        buf = bytearray(16)
        task = asyncio.ensure_future(loop.sock_recvfrom_into(b, buf))
        await spin()
        await loop.sock_sendto(a, b"abc", b.getsockname())
        nbytes, addr = await asyncio.wait_for(task, 5)
        assert (nbytes, addr) == (3, a.getsockname())
        assert buf[:3] == b"abc"
        await loop.sock_sendto(a, b"0123456789", b.getsockname())
        await asyncio.sleep(0.01)
        nbytes, addr = await loop.sock_recvfrom_into(b, buf, 5)
        assert nbytes == 5
        assert buf[:5] == b"01234"

    run(loop, main())


@requires_datagram_methods
def test_sock_sendto_resolves_nothing_for_numeric_addresses(loop, udp_pair):
    a, b = udp_pair

    async def main():
        host, port = b.getsockname()
        for payload in (b"x", bytearray(b"yy"), memoryview(b"zzz")):
            assert await loop.sock_sendto(a, payload, (host, port)) == len(
                payload)
            data, _ = await loop.sock_recvfrom(b, 10)
            assert data == bytes(payload)

    run(loop, main())


# ---------------------------------------------------------------------------
# Refusals


def _blocking_cases(loop, tmp_file):
    """(name, coroutine factory) for every sock_* method on a blocking
    socket."""
    def tcp():
        return socket.socket()

    def udp():
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    cases = [
        ("sock_recv", tcp, lambda s: loop.sock_recv(s, 10)),
        ("sock_recv_into", tcp, lambda s: loop.sock_recv_into(
            s, bytearray(10))),
        ("sock_sendall", tcp, lambda s: loop.sock_sendall(s, b"x")),
        ("sock_connect", tcp, lambda s: loop.sock_connect(
            s, ("127.0.0.1", 9))),
        ("sock_accept", tcp, lambda s: loop.sock_accept(s)),
        ("sock_sendfile", tcp, lambda s: loop.sock_sendfile(s, tmp_file)),
    ]
    if HAS_DATAGRAM_METHODS:
        cases += [
            ("sock_sendto", udp, lambda s: loop.sock_sendto(
                s, b"x", ("127.0.0.1", 9))),
            ("sock_recvfrom", udp, lambda s: loop.sock_recvfrom(s, 10)),
            ("sock_recvfrom_into", udp, lambda s: loop.sock_recvfrom_into(
                s, bytearray(10))),
        ]
    return cases


def test_blocking_sockets_are_refused_in_debug_mode(loop, tmp_path):
    """The stdlib checks for a blocking socket in debug mode only."""
    path = tmp_path / "f"
    path.write_bytes(b"data")

    async def main():
        loop.set_debug(True)
        with open(path, "rb") as f:
            for name, make, call in _blocking_cases(loop, f):
                with make() as s:
                    assert s.gettimeout() is None
                    with pytest.raises(ValueError) as ei:
                        await call(s)
                    assert str(ei.value) == "the socket must be non-blocking", \
                        name
                    assert s.fileno() != -1

    run(loop, main())


def _ssl_socket():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False)


def test_ssl_sockets_are_refused(loop, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"data")

    async def main():
        s = _ssl_socket()
        s.setblocking(False)
        calls = [
            lambda: loop.sock_recv(s, 10),
            lambda: loop.sock_recv_into(s, bytearray(10)),
            lambda: loop.sock_sendall(s, b"x"),
            lambda: loop.sock_connect(s, ("127.0.0.1", 9)),
            lambda: loop.sock_accept(s),
        ]
        try:
            for call in calls:
                with pytest.raises(TypeError) as ei:
                    await call()
                assert str(ei.value) == "Socket cannot be of type SSLSocket"
            with pytest.raises(TypeError, match="Socket cannot be of type "
                                                "SSLSocket"):
                await loop.create_connection(asyncio.Protocol, sock=s)
        finally:
            s.close()

    run(loop, main())


def test_sock_methods_refuse_a_transport_socket(loop):
    async def main():
        with listening_socket() as lsock:
            c = socket.create_connection(lsock.getsockname())
            peer, _ = lsock.accept()
        try:
            tr, _ = await loop.create_connection(asyncio.Protocol, sock=c)
            # Nothing to read: the call would have to wait on the fd the
            # transport is using.
            with pytest.raises(RuntimeError, match="is used by transport"):
                await loop.sock_recv(c, 10)
            with pytest.raises(RuntimeError, match="is used by transport"):
                await loop.sock_recv_into(c, bytearray(10))
            tr.close()
            await spin()
        finally:
            peer.close()
            c.close()

    run(loop, main())


# ---------------------------------------------------------------------------
# Cancellation


def test_cancelled_sock_recv_leaves_no_watcher_and_loses_no_data(
        loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(b, 100))
        await spin()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await spin()
        # No reader was left registered for the socket ...
        assert loop.remove_reader(b) is False
        # ... and a new one can be added and removed.
        fired = []
        loop.add_reader(b, fired.append, 1)
        a.send(b"payload")
        for _ in range(200):
            if fired:
                break
            await asyncio.sleep(0.005)
        assert fired
        assert loop.remove_reader(b) is True
        # The data is still there for the next sock_recv.
        assert await loop.sock_recv(b, 100) == b"payload"

    run(loop, main())


def test_sock_recv_cancelled_as_data_arrives_loses_nothing(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(b, 100))
        await spin()
        a.send(b"racing")
        task.cancel()                  # before the loop saw the data
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.wait_for(loop.sock_recv(b, 100), 5) == b"racing"
        assert loop.remove_reader(b) is False

    run(loop, main())


def test_cancelled_sock_recv_into_leaves_no_watcher(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        buf = bytearray(10)
        task = asyncio.ensure_future(loop.sock_recv_into(b, buf))
        await spin()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await spin()
        assert loop.remove_reader(b) is False
        a.send(b"next")
        assert await asyncio.wait_for(loop.sock_recv_into(b, buf), 5) == 4
        assert buf[:4] == b"next"

    run(loop, main())


def test_racing_sock_recv_delivers_each_byte_once(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        t1 = asyncio.ensure_future(loop.sock_recv(b, 100))
        t2 = asyncio.ensure_future(loop.sock_recv(b, 100))
        await spin()
        a.send(b"only once")
        done, pending = await asyncio.wait([t1, t2], timeout=5,
                                           return_when=asyncio.FIRST_COMPLETED)
        assert done
        await asyncio.sleep(0.05)
        got = b"".join(t.result() for t in (t1, t2) if t.done())
        assert got == b"only once"
        for t in (t1, t2):
            if not t.done():
                t.cancel()
        await asyncio.gather(t1, t2, return_exceptions=True)

    run(loop, main())


def test_racing_sock_recv_both_finish(request, impl, loop, tcp_pair):
    if impl.name == "asyncio":
        request.applymarker(pytest.mark.xfail(
            strict=True,
            reason="the stdlib selector loop replaces the first waiter's "
                   "reader with the second's: the first sock_recv never "
                   "completes"))
    a, b = tcp_pair

    async def main():
        t1 = asyncio.ensure_future(loop.sock_recv(b, 5))
        t2 = asyncio.ensure_future(loop.sock_recv(b, 5))
        await spin()
        a.send(b"0123456789")
        done, pending = await asyncio.wait([t1, t2], timeout=1)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        assert not pending, "a racing sock_recv never finished"
        assert sorted([t1.result(), t2.result()]) == [b"01234", b"56789"]

    run(loop, main())


@pytest.mark.timeout(20)
def test_cancelled_sock_connect_is_clean(loop):
    async def main():
        with blackhole() as hole:
            c = socket.socket()
            c.setblocking(False)
            try:
                task = asyncio.ensure_future(loop.sock_connect(c, hole))
                await asyncio.sleep(0.05)
                assert not task.done()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await spin()
                assert loop.remove_writer(c) is False
                assert c.fileno() != -1       # still the caller's socket
                fired = []
                loop.add_writer(c, fired.append, 1)
                assert loop.remove_writer(c) is True
            finally:
                c.close()

    run(loop, main())


def test_cancelled_sock_accept_is_clean(loop):
    async def main():
        with listening_socket(blocking=False) as lsock:
            task = asyncio.ensure_future(loop.sock_accept(lsock))
            await spin()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await spin()
            assert loop.remove_reader(lsock) is False
            c = socket.create_connection(lsock.getsockname())
            try:
                conn, addr = await asyncio.wait_for(loop.sock_accept(lsock), 5)
                assert addr == c.getsockname()
                conn.close()
            finally:
                c.close()

    run(loop, main())


def test_cancelled_sock_sendall_leaves_no_watcher(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, pattern(16 * MiB)))
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await spin()
        assert loop.remove_writer(a) is False

    run(loop, main())
