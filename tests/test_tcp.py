"""TCP connections and their transports: create_server, create_connection,
connect_accepted_socket over IPv4 and IPv6 loopback.

Every test runs on the stdlib loop too, which proves the expectation.
"""

import asyncio
import errno
import os
import pickle
import shutil
import socket
import subprocess
import time

import pytest

from _net_helpers import (
    HAS_IPV6, LOOPBACK_HOSTS, Echo, FakeResolver, Pair, Recorder, ServerSide,
    blackhole, close_server, close_transport, connected_pair, family_of,
    free_port, listening_socket, recv_all, requires_ipv6, requires_linux, run,
    server_port, set_linger_zero, spin, stdlib_accepts, wait_until,
)

pytestmark = pytest.mark.timeout(30)


def _refused_message(addr):
    return f"[Errno {errno.ECONNREFUSED}] Connect call failed {addr!r}"


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
# create_server


def _listening(sock):
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0


def _connect_to(sock_addr, family):
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.create_connection((host, sock_addr[1]), timeout=5) as c:
        c.sendall(b"x")
        assert c.recv(1) == b"x"


@pytest.mark.parametrize("host", [None, ""], ids=["none", "empty"])
def test_create_server_all_interfaces(loop, host):
    async def main():
        server = await loop.create_server(Echo, host, 0)
        try:
            socks = server.sockets
            assert isinstance(socks, tuple)
            assert socks
            expected = {info[0] for info in socket.getaddrinfo(
                None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)}
            if not HAS_IPV6:
                expected.discard(socket.AF_INET6)
            assert {s.family for s in socks} == expected
            for s in socks:
                assert _listening(s)
                assert s.getsockname()[1] != 0
                if s.family == socket.AF_INET:
                    assert s.getsockname()[0] == "0.0.0.0"
                else:
                    assert s.getsockname()[0] == "::"
                    # The stdlib makes its IPv6 sockets IPv6-only.
                    assert s.getsockopt(socket.IPPROTO_IPV6,
                                        socket.IPV6_V6ONLY) != 0
                if s.family == socket.AF_INET or HAS_IPV6:
                    await loop.run_in_executor(
                        None, _connect_to, s.getsockname(), s.family)
        finally:
            await close_server(server)

    run(loop, main())


def test_create_server_host_list(loop):
    hosts = ["127.0.0.1", "::1"] if HAS_IPV6 else ["127.0.0.1"]

    async def main():
        server = await loop.create_server(Echo, hosts, 0)
        try:
            socks = server.sockets
            assert sorted(s.getsockname()[0] for s in socks) == sorted(hosts)
            for s in socks:
                assert _listening(s)
                await loop.run_in_executor(
                    None, _connect_to, s.getsockname(), s.family)
        finally:
            await close_server(server)

    run(loop, main())


def test_create_server_host_list_duplicates_are_merged(loop):
    async def main():
        server = await loop.create_server(
            Echo, ["127.0.0.1", "127.0.0.1"], 0)
        try:
            assert len(server.sockets) == 1
        finally:
            await close_server(server)

    run(loop, main())


def test_create_server_family_filters_addresses(loop):
    async def main():
        server = await loop.create_server(Echo, None, 0,
                                          family=socket.AF_INET)
        try:
            assert server.sockets
            assert {s.family for s in server.sockets} == {socket.AF_INET}
        finally:
            await close_server(server)

    run(loop, main())


def test_create_server_flags_reach_the_resolver(loop):
    async def main():
        with pytest.raises(socket.gaierror):
            await loop.create_server(Echo, "localhost", 0,
                                     flags=socket.AI_NUMERICHOST)

    run(loop, main())


def test_create_server_empty_resolution(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    fake.add("nothing.uvcore.invalid", [])

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_server(Echo, "nothing.uvcore.invalid", 0)
        assert str(ei.value) == ("getaddrinfo('nothing.uvcore.invalid') "
                                 "returned empty list")

    run(loop, main())


def test_create_server_resolves_names(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    fake.add("srv.uvcore.invalid", [("127.0.0.1", 0)])

    async def main():
        server = await loop.create_server(Echo, "srv.uvcore.invalid", 0)
        try:
            assert [s.getsockname()[0] for s in server.sockets] == [
                "127.0.0.1"]
            assert fake.calls and fake.calls[0][0] == "srv.uvcore.invalid"
            assert fake.calls[0][5] & socket.AI_PASSIVE
        finally:
            await close_server(server)

    run(loop, main())


def test_create_server_port_in_use(loop):
    async def main():
        with listening_socket() as busy:
            port = busy.getsockname()[1]
            with pytest.raises(OSError) as ei:
                await loop.create_server(Echo, "127.0.0.1", port)
            assert ei.value.errno == errno.EADDRINUSE
            assert str(ei.value).startswith(
                f"[Errno {errno.EADDRINUSE}] error while attempting to bind "
                f"on address ('127.0.0.1', {port}): ")
            assert "address already in use" in str(ei.value)

    run(loop, main())


def test_create_server_reuse_address(loop):
    async def main():
        default = await loop.create_server(Echo, "127.0.0.1", 0)
        off = await loop.create_server(Echo, "127.0.0.1", 0,
                                       reuse_address=False)
        try:
            assert default.sockets[0].getsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
            assert off.sockets[0].getsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        finally:
            await close_server(default)
            await close_server(off)

    run(loop, main())


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"),
                    reason="no SO_REUSEPORT")
def test_create_server_reuse_port_option(loop):
    async def main():
        on = await loop.create_server(Echo, "127.0.0.1", 0, reuse_port=True)
        default = await loop.create_server(Echo, "127.0.0.1", 0)
        try:
            assert on.sockets[0].getsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
            assert default.sockets[0].getsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        finally:
            await close_server(on)
            await close_server(default)

    run(loop, main())


@pytest.mark.skipif(not stdlib_accepts("create_server", "keep_alive"),
                    reason="create_server(keep_alive=) is Python 3.13+")
@pytest.mark.parametrize("keep_alive", [True, False, None])
def test_create_server_keep_alive(loop, keep_alive):
    async def main():
        kw = {} if keep_alive is None else {"keep_alive": keep_alive}
        pair = await Pair.tcp(loop, **kw)
        try:
            sock = pair.stransport.get_extra_info("socket")
            value = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            assert bool(value) is bool(keep_alive)
        finally:
            await pair.aclose()

    run(loop, main())


def _listen_backlog(port):
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"],
                         capture_output=True, text=True, timeout=10).stdout
    fields = out.split()
    if len(fields) < 3:
        return None
    return int(fields[2])      # Send-Q of a listening socket is the backlog


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss(8)")
@pytest.mark.parametrize("backlog", [5, 100])
def test_create_server_backlog(loop, backlog):
    async def main():
        kw = {} if backlog == 100 else {"backlog": backlog}
        server = await loop.create_server(Echo, "127.0.0.1", 0, **kw)
        try:
            got = _listen_backlog(server_port(server))
            if got is None:
                pytest.skip("ss(8) shows no listening sockets here")
            assert got == backlog
        finally:
            await close_server(server)

    run(loop, main())


def test_create_server_with_sock(loop):
    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        assert sock.gettimeout() is None
        fd = sock.fileno()
        side = ServerSide(Echo)
        server = await loop.create_server(side, sock=sock)
        try:
            assert len(server.sockets) == 1
            assert server.sockets[0].fileno() == fd
            assert sock.gettimeout() == 0          # made non-blocking
            assert _listening(sock)
            await loop.run_in_executor(None, _connect_to,
                                       sock.getsockname(), socket.AF_INET)
            await side.first()
        finally:
            await close_server(server)

    run(loop, main())


def test_create_server_argument_errors(loop):
    async def main():
        with pytest.raises(ValueError, match="Neither host/port nor sock "
                                             "were specified"):
            await loop.create_server(Echo)
        with socket.socket() as s:
            with pytest.raises(ValueError, match="host/port and sock can not "
                                                 "be specified at the same "
                                                 "time"):
                await loop.create_server(Echo, "127.0.0.1", 0, sock=s)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            with pytest.raises(ValueError,
                               match="A Stream Socket was expected"):
                await loop.create_server(Echo, sock=u)
            assert u.fileno() != -1            # left to its owner

    run(loop, main())


# ---------------------------------------------------------------------------
# create_connection


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_create_connection_with_sock(loop, host):
    async def main():
        server = await loop.create_server(Echo, host, 0)
        sock = socket.create_connection((host, server_port(server)))
        assert sock.gettimeout() is None
        try:
            tr, proto = await loop.create_connection(Recorder, sock=sock)
            assert sock.gettimeout() == 0      # made non-blocking
            assert tr.get_extra_info("socket").fileno() == sock.fileno()
            assert tr.get_extra_info("peername") == sock.getpeername()
            tr.write(b"via sock")
            assert await proto.wait_bytes(8) == b"via sock"
            await close_transport(tr, proto)
        finally:
            sock.close()
            await close_server(server)

    run(loop, main())


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_create_connection_local_addr(loop, host):
    async def main():
        server = await loop.create_server(Echo, host, 0)
        lport = free_port(host)
        try:
            tr, proto = await loop.create_connection(
                Recorder, host, server_port(server), local_addr=(host, lport))
            assert tr.get_extra_info("sockname")[:2] == (host, lport)
            tr.write(b"ok")
            assert await proto.wait_bytes(2) == b"ok"
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


def test_create_connection_local_addr_in_use(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        try:
            with listening_socket() as busy:
                lport = busy.getsockname()[1]
                with pytest.raises(OSError) as ei:
                    await loop.create_connection(
                        Recorder, "127.0.0.1", server_port(server),
                        local_addr=("127.0.0.1", lport))
                assert ei.value.errno == errno.EADDRINUSE
                assert (f"error while attempting to bind on address "
                        f"('127.0.0.1', {lport}): ") in str(ei.value)
        finally:
            await close_server(server)

    run(loop, main())


@requires_ipv6
def test_create_connection_local_addr_family_mismatch(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        try:
            with pytest.raises(OSError) as ei:
                await loop.create_connection(
                    Recorder, "127.0.0.1", server_port(server),
                    local_addr=("::1", 0))
            assert str(ei.value) == (
                f"no matching local address with family={socket.AF_INET!r} "
                f"found")
        finally:
            await close_server(server)

    run(loop, main())


def test_create_connection_refused_single_address(loop):
    port = free_port()

    async def main():
        with pytest.raises(ConnectionRefusedError) as ei:
            await loop.create_connection(Recorder, "127.0.0.1", port)
        assert ei.value.errno == errno.ECONNREFUSED
        assert str(ei.value) == _refused_message(("127.0.0.1", port))

    run(loop, main())


def test_create_connection_flags_reach_the_resolver(loop):
    async def main():
        with pytest.raises(socket.gaierror):
            await loop.create_connection(Recorder, "localhost", 80,
                                         flags=socket.AI_NUMERICHOST)

    run(loop, main())


def test_create_connection_proto(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        try:
            tr, proto = await loop.create_connection(
                Recorder, "127.0.0.1", server_port(server),
                proto=socket.IPPROTO_TCP)
            assert tr.get_extra_info("socket").proto == socket.IPPROTO_TCP
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


@requires_ipv6
def test_create_connection_family_reaches_the_resolver(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)

    async def main():
        s4 = await loop.create_server(Echo, "127.0.0.1", 0)
        s6 = await loop.create_server(Echo, "::1", 0)
        fake.add("both.uvcore.invalid",
                 [("::1", server_port(s6)), ("127.0.0.1", server_port(s4))])
        try:
            for fam, host in ((socket.AF_INET, "127.0.0.1"),
                              (socket.AF_INET6, "::1")):
                tr, proto = await loop.create_connection(
                    Recorder, "both.uvcore.invalid", 4242, family=fam)
                assert tr.get_extra_info("peername")[0] == host
                assert fake.calls[-1][2] == fam
                await close_transport(tr, proto)
        finally:
            await close_server(s4)
            await close_server(s6)

    run(loop, main())


def test_create_connection_tries_every_address(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        refused = [("127.0.0.1", free_port()), ("127.0.0.2", free_port())]
        fake.add("multi.uvcore.invalid",
                 refused + [("127.0.0.1", server_port(server))])
        try:
            tr, proto = await loop.create_connection(
                Recorder, "multi.uvcore.invalid", 1)
            assert tr.get_extra_info("peername") == (
                "127.0.0.1", server_port(server))
            tr.write(b"third time lucky")
            assert await proto.wait_bytes(16) == b"third time lucky"
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


def test_create_connection_all_refused_combined_error(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    a = ("127.0.0.1", free_port())
    b = ("127.0.0.2", free_port("127.0.0.2"))
    fake.add("refused.uvcore.invalid", [a, b])

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_connection(Recorder, "refused.uvcore.invalid", 1)
        exc = ei.value
        assert type(exc) is OSError
        assert exc.errno is None
        assert str(exc) == "Multiple exceptions: {}, {}".format(
            _refused_message(a), _refused_message(b))

    run(loop, main())


def test_create_connection_same_errors_raise_the_first(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    a = ("127.0.0.1", free_port())
    fake.add("twice.uvcore.invalid", [a, a])

    async def main():
        with pytest.raises(ConnectionRefusedError) as ei:
            await loop.create_connection(Recorder, "twice.uvcore.invalid", 1)
        assert str(ei.value) == _refused_message(a)

    run(loop, main())


def test_create_connection_empty_resolution(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    fake.add("nothing.uvcore.invalid", [])

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_connection(Recorder, "nothing.uvcore.invalid", 1)
        assert type(ei.value) is OSError
        assert str(ei.value) == "getaddrinfo() returned empty list"

    run(loop, main())


@pytest.mark.skipif(not stdlib_accepts("create_connection", "all_errors"),
                    reason="create_connection(all_errors=) is Python 3.12+")
def test_create_connection_all_errors(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    a = ("127.0.0.1", free_port())
    b = ("127.0.0.2", free_port("127.0.0.2"))
    fake.add("refused.uvcore.invalid", [a, b])

    async def main():
        with pytest.raises(ExceptionGroup) as ei:  # noqa: F821 (3.11+)
            await loop.create_connection(Recorder, "refused.uvcore.invalid",
                                         1, all_errors=True)
        group = ei.value
        assert group.message == "create_connection failed"
        assert [type(e) for e in group.exceptions] == [
            ConnectionRefusedError, ConnectionRefusedError]
        assert [str(e) for e in group.exceptions] == [
            _refused_message(a), _refused_message(b)]
        # A single failure is still a group with all_errors=True.
        fake.add("one.uvcore.invalid", [a])
        with pytest.raises(ExceptionGroup) as ei:  # noqa: F821
            await loop.create_connection(Recorder, "one.uvcore.invalid", 1,
                                         all_errors=True)
        assert len(ei.value.exceptions) == 1

    run(loop, main())


@pytest.mark.timeout(20)
def test_create_connection_happy_eyeballs_passes_a_stalled_address(
        loop, monkeypatch):
    fake = FakeResolver(monkeypatch)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        try:
            with blackhole() as hole:
                fake.add("he.uvcore.invalid",
                         [hole, ("127.0.0.1", server_port(server))])
                t0 = time.monotonic()
                tr, proto = await loop.create_connection(
                    Recorder, "he.uvcore.invalid", 1,
                    happy_eyeballs_delay=0.1)
                elapsed = time.monotonic() - t0
                assert tr.get_extra_info("peername") == (
                    "127.0.0.1", server_port(server))
                # Well before the first SYN retransmission (1 s).
                assert elapsed < 0.9, elapsed
                tr.write(b"he")
                assert await proto.wait_bytes(2) == b"he"
                await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


def test_create_connection_happy_eyeballs_all_refused(loop, monkeypatch):
    fake = FakeResolver(monkeypatch)
    a = ("127.0.0.1", free_port())
    b = ("127.0.0.2", free_port("127.0.0.2"))
    fake.add("refused.uvcore.invalid", [a, b])

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_connection(Recorder, "refused.uvcore.invalid",
                                         1, happy_eyeballs_delay=0.05)
        assert str(ei.value) == "Multiple exceptions: {}, {}".format(
            _refused_message(a), _refused_message(b))

    run(loop, main())


@requires_ipv6
@pytest.mark.parametrize("delay", [None, 0.05], ids=["sequential", "he"])
def test_create_connection_interleave_orders_by_family(loop, monkeypatch,
                                                       delay):
    fake = FakeResolver(monkeypatch)
    a = ("127.0.0.1", free_port())
    b = ("127.0.0.2", free_port("127.0.0.2"))
    c = ("::1", free_port("::1"), 0, 0)
    fake.add("mixed.uvcore.invalid", [a, b, c])

    async def main():
        kw = {"interleave": 1}
        if delay is not None:
            kw["happy_eyeballs_delay"] = delay
        with pytest.raises(OSError) as ei:
            await loop.create_connection(Recorder, "mixed.uvcore.invalid", 1,
                                         **kw)
        # Attempted in the order a, c, b: families take turns.
        assert str(ei.value) == "Multiple exceptions: {}, {}, {}".format(
            _refused_message(a), _refused_message(c), _refused_message(b))
        # Without interleaving (and without happy eyeballs) the resolver's
        # order is kept.
        with pytest.raises(OSError) as ei:
            await loop.create_connection(Recorder, "mixed.uvcore.invalid", 1)
        assert str(ei.value) == "Multiple exceptions: {}, {}, {}".format(
            _refused_message(a), _refused_message(b), _refused_message(c))

    run(loop, main())


def test_create_connection_argument_errors(loop):
    async def main():
        with pytest.raises(ValueError, match="host and port was not "
                                             "specified and no sock "
                                             "specified"):
            await loop.create_connection(Recorder)
        with socket.socket() as s:
            with pytest.raises(ValueError, match="host/port and sock can not "
                                                 "be specified at the same "
                                                 "time"):
                await loop.create_connection(Recorder, "127.0.0.1", 1,
                                             sock=s)
            assert s.fileno() != -1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            with pytest.raises(ValueError,
                               match="A Stream Socket was expected"):
                await loop.create_connection(Recorder, sock=u)
            assert u.fileno() != -1
        with pytest.raises(ValueError, match="server_hostname is only "
                                             "meaningful with ssl"):
            await loop.create_connection(Recorder, "127.0.0.1", 1,
                                         server_hostname="x")

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
