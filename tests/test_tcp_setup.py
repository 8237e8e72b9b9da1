"""TCP set-up: create_server and create_connection (addresses, families,
errors, happy eyeballs) over IPv4 and IPv6 loopback.

Every test runs on the stdlib loop too, which proves the expectation.
"""

import errno
import shutil
import socket
import subprocess
import time

import pytest

from _net_helpers import (
    HAS_IPV6, LOOPBACK_HOSTS, Echo, FakeResolver, Pair, Recorder, ServerSide,
    blackhole, close_server, close_transport, free_port, listening_socket,
    requires_ipv6, run, server_port, stdlib_accepts,
)

pytestmark = pytest.mark.timeout(30)


def _refused_message(addr):
    return f"[Errno {errno.ECONNREFUSED}] Connect call failed {addr!r}"


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


