"""TCP connections and their transports: create_server, create_connection,
connect_accepted_socket over IPv4 and IPv6 loopback.

Every test runs on the stdlib loop too, which proves the expectation.
"""

import asyncio
import errno
import os
import pickle
import socket

import pytest

from _net_helpers import (
    LOOPBACK_HOSTS, Echo, FakeResolver, Pair, Recorder, ServerSide, blackhole,
    close_server, close_transport, connected_pair, family_of, free_port,
    listening_socket, recv_all, requires_linux, run, server_port,
    set_linger_zero, spin, wait_until,
)

pytestmark = pytest.mark.timeout(30)


def _v6(host, port):
    return (host, port, 0, 0)


# ---------------------------------------------------------------------------
# Round trips and transport basics


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_echo_round_trip(loop, host):
    async def main():
        pair = await Pair.tcp(loop, host)
        try:
            assert pair.server.sockets[0].family == family_of(host)
            pair.ctr.write(b"hello ")
            pair.ctr.write(b"world")
            assert await pair.cproto.wait_bytes(11) == b"hello world"
            assert bytes(pair.sproto.data) == b"hello world"
            assert pair.cproto.events == ["made", "data"]
        finally:
            await pair.aclose()
        assert pair.cproto.events[-1] == "lost"
        assert pair.cproto.lost_exc is None

    run(loop, main())


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_transport_type_and_addresses(loop, host):
    async def main():
        pair = await Pair.tcp(loop, host)
        try:
            ctr, stran = pair.ctr, pair.stransport
            for tr in (ctr, stran):
                assert isinstance(tr, asyncio.Transport)
                assert isinstance(tr, asyncio.ReadTransport)
                assert isinstance(tr, asyncio.WriteTransport)
                assert tr.get_extra_info("sockname") is not None
                assert tr.get_extra_info("peername") is not None
                assert tr.get_extra_info("no-such-key") is None
                assert tr.get_extra_info("no-such-key", "dflt") == "dflt"
                assert not tr.is_closing()
                assert tr.can_write_eof() is True
            port = server_port(pair.server)
            csock = ctr.get_extra_info("sockname")
            cpeer = ctr.get_extra_info("peername")
            if family_of(host) == socket.AF_INET6:
                assert cpeer == _v6(host, port)
                assert len(csock) == 4
            else:
                assert cpeer == (host, port)
                assert len(csock) == 2
            # Each side sees the other's address.
            assert stran.get_extra_info("peername") == csock
            assert stran.get_extra_info("sockname") == cpeer
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_tcp_nodelay_is_on_by_default(loop, host):
    async def main():
        pair = await Pair.tcp(loop, host)
        try:
            for tr in (pair.ctr, pair.stransport):
                sock = tr.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP,
                                       socket.TCP_NODELAY) != 0
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.parametrize("how", ["sock", "accepted"])
def test_tcp_nodelay_on_for_adopted_sockets(loop, how):
    # The stdlib only sets TCP_NODELAY on sockets whose proto is
    # IPPROTO_TCP (a plain socket.socket() has proto 0 and is left alone),
    # so build the pair with an explicit proto.
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                           socket.IPPROTO_TCP) as lsock:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen()
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                              socket.IPPROTO_TCP)
            c.connect(lsock.getsockname())
            s, _ = lsock.accept()
        assert s.proto == c.proto == socket.IPPROTO_TCP
        peer = s if how == "sock" else c
        mine = c if how == "sock" else s
        try:
            assert mine.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            if how == "sock":
                tr, proto = await loop.create_connection(Recorder, sock=mine)
            else:
                tr, proto = await loop.connect_accepted_socket(Recorder, mine)
            sock = tr.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            await close_transport(tr, proto)
        finally:
            peer.close()
            mine.close()

    run(loop, main())


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_transport_socket_behaves_like_transport_socket(loop, host):
    async def main():
        pair = await Pair.tcp(loop, host)
        try:
            tr = pair.ctr
            ts = tr.get_extra_info("socket")
            assert ts is not None
            assert isinstance(ts.fileno(), int) and ts.fileno() >= 0
            assert ts.family == family_of(host)
            assert ts.type == socket.SOCK_STREAM
            assert ts.getsockname() == tr.get_extra_info("sockname")
            assert ts.getpeername() == tr.get_extra_info("peername")
            assert ts.getsockopt(socket.SOL_SOCKET,
                                 socket.SO_TYPE) == socket.SOCK_STREAM
            ts.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            assert ts.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
            ts.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
            assert ts.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
            # Non-blocking, and cannot be made blocking.
            assert ts.gettimeout() == 0
            ts.settimeout(0)
            ts.setblocking(False)
            with pytest.raises(ValueError, match="only 0 timeout is allowed"):
                ts.settimeout(1.0)
            with pytest.raises(ValueError, match="cannot be blocking"):
                ts.setblocking(True)
            with pytest.raises(TypeError):
                pickle.dumps(ts)
            # The transport still works after all that.
            tr.write(b"still alive")
            assert await pair.cproto.wait_bytes(11) == b"still alive"
        finally:
            await pair.aclose()

    run(loop, main())


def test_transport_socket_close_is_refused(loop):
    """asyncio 3.11+ has no close() on a transport's socket (AttributeError);
    3.10 has one that warns (DeprecationWarning) before closing."""
    from asyncio import trsock

    stdlib_has_close = hasattr(trsock.TransportSocket, "close")

    async def main():
        pair = await Pair.tcp(loop)
        try:
            ts = pair.ctr.get_extra_info("socket")
            fd = ts.fileno()
            if not stdlib_has_close:
                with pytest.raises(AttributeError):
                    ts.close()
                for name in ("detach", "accept", "recv", "send", "sendall",
                             "connect", "bind", "listen", "makefile"):
                    assert not callable(getattr(ts, name, None)), name
                assert ts.fileno() == fd
                pair.ctr.write(b"ping")
                assert await pair.cproto.wait_bytes(4) == b"ping"
            else:
                with pytest.warns(DeprecationWarning):
                    ts.close()
                pair.ctr.abort()
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_server_side_peername_matches_client(loop, host):
    async def main():
        side = ServerSide(Echo)
        server = await loop.create_server(side, host, 0)
        c = socket.socket(family_of(host))
        c.settimeout(5)
        try:
            await loop.run_in_executor(
                None, c.connect, server.sockets[0].getsockname())
            sp = await side.first()
            assert sp.transport.get_extra_info("peername") == c.getsockname()
            assert sp.transport.get_extra_info("sockname") == c.getpeername()
        finally:
            c.close()
        await wait_until(lambda: sp.lost.done())
        await close_server(server)

    run(loop, main())


def test_write_accepts_bytes_like_objects(loop):
    async def main():
        pair = await Pair.tcp(loop)
        try:
            tr = pair.ctr
            tr.write(b"ab")
            tr.write(bytearray(b"cd"))
            tr.write(memoryview(b"xefx")[1:3])
            tr.write(b"")                  # nothing
            tr.write(bytearray())          # nothing
            tr.write(memoryview(b"gh"))
            assert await pair.cproto.wait_bytes(8) == b"abcdefgh"
            for bad in ("text", 42, None, [b"a"]):
                with pytest.raises(TypeError, match="data argument must be a "
                                                    "bytes-like object"):
                    tr.write(bad)
        finally:
            await pair.aclose()

    run(loop, main())


def test_write_type_error_message(loop):
    async def main():
        pair = await Pair.tcp(loop)
        try:
            with pytest.raises(TypeError) as ei:
                pair.ctr.write("text")
            assert str(ei.value) == ("data argument must be a bytes-like "
                                     "object, not 'str'")
        finally:
            await pair.aclose()

    run(loop, main())


def test_pause_and_resume_reading(loop):
    async def main():
        pair = await Pair.tcp(loop)
        try:
            tr, sp = pair.ctr, pair.sproto
            assert tr.is_reading()
            tr.pause_reading()
            assert not tr.is_reading()
            tr.pause_reading()             # idempotent
            assert not tr.is_reading()
            sp.transport.write(b"while paused")
            await asyncio.sleep(0.1)
            assert pair.cproto.data == b""
            tr.resume_reading()
            assert tr.is_reading()
            tr.resume_reading()            # idempotent
            assert await pair.cproto.wait_bytes(12) == b"while paused"
            tr.close()
            assert not tr.is_reading()
            tr.resume_reading()            # no-op once closing
            assert not tr.is_reading()
        finally:
            await pair.aclose()

    run(loop, main())


def test_get_and_set_protocol(loop):
    async def main():
        pair = await Pair.tcp(loop)
        try:
            tr = pair.ctr
            assert tr.get_protocol() is pair.cproto
            other = Recorder()
            other.transport = tr
            other.events.append("made")    # it takes over a live transport
            tr.set_protocol(other)
            assert tr.get_protocol() is other
            tr.write(b"to other")
            assert await other.wait_bytes(8) == b"to other"
            assert pair.cproto.data == b""
            pair.cproto = other
        finally:
            await pair.aclose()
        assert other.lost.done()

    run(loop, main())


def test_close_is_idempotent_and_reports_closing(loop):
    async def main():
        pair = await Pair.tcp(loop)
        tr = pair.ctr
        tr.close()
        assert tr.is_closing()
        tr.close()
        tr.abort()
        await asyncio.wait_for(pair.cproto.lost, 5)
        assert pair.cproto.events == ["made", "lost"]
        assert pair.cproto.lost_exc is None
        # The server side sees a plain EOF.
        await asyncio.wait_for(pair.sproto.lost, 5)
        assert pair.sproto.events == ["made", "eof", "lost"]
        assert pair.sproto.lost_exc is None
        await pair.aclose()

    run(loop, main())


def test_peer_close_gives_eof_then_connection_lost(loop):
    async def main():
        side = ServerSide(Recorder)
        server = await loop.create_server(side, "127.0.0.1", 0)
        c = socket.create_connection(("127.0.0.1", server_port(server)))
        try:
            sp = await side.first()
            c.sendall(b"last words")
            c.close()
            await asyncio.wait_for(sp.lost, 5)
            assert sp.events == ["made", "data", "eof", "lost"]
            assert sp.data == b"last words"
            assert sp.lost_exc is None
            assert sp.transport.is_closing()
        finally:
            c.close()
            await close_server(server)

    run(loop, main())


def test_peer_reset_gives_connection_reset_error(loop):
    async def main():
        handler_calls = []
        loop.set_exception_handler(lambda lp, ctx: handler_calls.append(ctx))
        side = ServerSide(Recorder)
        server = await loop.create_server(side, "127.0.0.1", 0)
        c = socket.create_connection(("127.0.0.1", server_port(server)))
        try:
            sp = await side.first()
            set_linger_zero(c)
            c.close()
            exc = await asyncio.wait_for(sp.lost, 5)
            assert isinstance(exc, ConnectionResetError), exc
            assert exc.errno == errno.ECONNRESET
            assert "eof" not in sp.events
            # A reset by the peer is not reported to the exception handler.
            assert handler_calls == []
        finally:
            c.close()
            await close_server(server)

    run(loop, main())


# ---------------------------------------------------------------------------
# connect_accepted_socket


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_connect_accepted_socket(loop, host):
    async def main():
        client, accepted = connected_pair(host)
        try:
            tr, proto = await loop.connect_accepted_socket(Recorder, accepted)
            assert accepted.gettimeout() == 0
            assert isinstance(tr, asyncio.Transport)
            assert tr.get_extra_info("peername") == client.getsockname()
            assert tr.get_extra_info("sockname") == client.getpeername()
            client.sendall(b"from client")
            assert await proto.wait_bytes(11) == b"from client"
            tr.write(b"from server")
            tr.write_eof()
            got = await loop.run_in_executor(None, recv_all, client)
            assert got == b"from server"
            client.close()
            await asyncio.wait_for(proto.lost, 5)
            assert proto.events == ["made", "data", "eof", "lost"]
        finally:
            client.close()
            accepted.close()

    run(loop, main())


def test_connect_accepted_socket_rejects_datagram_socket(loop):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            with pytest.raises(ValueError,
                               match="A Stream Socket was expected"):
                await loop.connect_accepted_socket(Recorder, u)

    run(loop, main())


def test_many_concurrent_connections(loop):
    async def main():
        side = ServerSide(Echo)
        server = await loop.create_server(side, "127.0.0.1", 0)
        port = server_port(server)
        try:
            conns = await asyncio.gather(*[
                loop.create_connection(Recorder, "127.0.0.1", port)
                for _ in range(50)])
            for i, (tr, _) in enumerate(conns):
                tr.write(b"%03d" % i)
            for i, (_, proto) in enumerate(conns):
                assert await proto.wait_bytes(3) == b"%03d" % i
            for tr, proto in conns:
                await close_transport(tr, proto)
            await wait_until(lambda: len(side.protocols) == 50 and all(
                p.lost.done() for p in side.protocols))
        finally:
            await close_server(server)

    run(loop, main())


@requires_linux
def test_cancelled_create_connection_leaves_nothing_behind(loop):
    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        with blackhole() as hole:
            await spin()
            before = open_fds()
            task = asyncio.ensure_future(
                loop.create_connection(Recorder, *hole))
            await asyncio.sleep(0.05)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await spin()
            # The socket create_connection made for the attempt is closed.
            assert open_fds() == before

    run(loop, main())


# ---------------------------------------------------------------------------
# More transport life-cycle details


class Greeter(Recorder):
    """Writes as soon as it is connected."""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(b"greetings from " + type(self).__name__.encode())


class ServerGreeter(Greeter):
    pass


def test_write_from_connection_made(loop):
    async def main():
        pair = await Pair.tcp(loop, client=Greeter, server=ServerGreeter)
        try:
            assert await pair.cproto.wait_bytes(28) == \
                b"greetings from ServerGreeter"
            assert await pair.sproto.wait_bytes(22) == \
                b"greetings from Greeter"
        finally:
            await pair.aclose()

    run(loop, main())


def test_close_from_connection_made(loop):
    class Closer(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"bye")
            transport.close()

    async def main():
        side = ServerSide(Closer)
        server = await loop.create_server(side, "127.0.0.1", 0)
        try:
            tr, proto = await loop.create_connection(
                Recorder, "127.0.0.1", server_port(server))
            await asyncio.wait_for(proto.lost, 5)
            assert proto.data == b"bye"
            assert proto.events == ["made", "data", "eof", "lost"]
            sp = side.protocols[0]
            await asyncio.wait_for(sp.lost, 5)
            assert sp.events == ["made", "lost"]
            assert not proto.problems and not sp.problems
        finally:
            await close_server(server)

    run(loop, main())


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_extra_info_is_kept_after_close(loop, host):
    async def main():
        pair = await Pair.tcp(loop, host)
        tr = pair.ctr
        sockname = tr.get_extra_info("sockname")
        peername = tr.get_extra_info("peername")
        await pair.aclose()
        assert tr.is_closing()
        assert tr.get_extra_info("sockname") == sockname
        assert tr.get_extra_info("peername") == peername

    run(loop, main())


@pytest.mark.parametrize("how", ["sock", "accepted"])
def test_data_sent_before_adoption_is_delivered(loop, how):
    async def main():
        c, s = connected_pair()
        mine, peer = (c, s) if how == "sock" else (s, c)
        try:
            peer.sendall(b"early bird")
            peer.shutdown(socket.SHUT_WR)
            await asyncio.sleep(0.02)
            if how == "sock":
                tr, proto = await loop.create_connection(Recorder, sock=mine)
            else:
                tr, proto = await loop.connect_accepted_socket(Recorder, mine)
            await asyncio.wait_for(proto.lost, 5)
            assert proto.data == b"early bird"
            assert proto.events == ["made", "data", "eof", "lost"]
            assert not proto.problems
        finally:
            peer.close()
            mine.close()

    run(loop, main())


def _open_fd_count():
    return len(os.listdir("/proc/self/fd"))


@requires_linux
def test_failed_create_server_leaks_no_socket(loop):
    async def main():
        with listening_socket("127.0.0.2") as busy:
            port = busy.getsockname()[1]
            await spin()
            before = _open_fd_count()
            for _ in range(3):
                with pytest.raises(OSError) as ei:
                    await loop.create_server(
                        Echo, ["127.0.0.1", "127.0.0.2"], port)
                assert ei.value.errno == errno.EADDRINUSE
            await spin()
            assert _open_fd_count() == before
            # The port on 127.0.0.1 was released again.
            server = await loop.create_server(Echo, "127.0.0.1", port)
            await close_server(server)

    run(loop, main())


@requires_linux
def test_failed_create_connection_leaks_no_socket(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    fake.add("refused.uvcore.invalid",
             [("127.0.0.1", free_port()), ("127.0.0.2", free_port())])

    async def main():
        await spin()
        before = _open_fd_count()
        for kw in ({}, {"happy_eyeballs_delay": 0.01}):
            for _ in range(3):
                with pytest.raises(OSError):
                    await loop.create_connection(
                        Recorder, "refused.uvcore.invalid", 1, **kw)
        await spin()
        assert _open_fd_count() == before

    run(loop, main())
