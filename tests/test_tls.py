"""TLS transports: ssl= on create_connection/create_server/create_unix_*/
connect_accepted_socket and the streams API, against peers on the same
loop, blocking ``ssl`` sockets in threads and a stdlib loop in a thread.

uvcore closes a TLS connection right after sending close_notify (the stdlib
waits for the peer's): the tests assert what both guarantee, plus one
uvcore-only test for the prompt close.
"""

import asyncio
import gc
import socket
import sys
import ssl
import threading
import time
import warnings

import pytest

from _net_helpers import (
    LOOPBACK_HOSTS, Echo, Recorder, close_server, close_transport,
    connected_pair, listening_socket, pattern, requires_unix, run,
    server_port, stdlib_accepts, wait_until,
)
from _tls_helpers import (
    MiB, BufferedSink, HandlerLog, LoopThread, ThreadedServer, Writer,
    blocking_echo, certs, client_hello_prefix, close_writer,  # noqa: F401
    call_without_ssl, echo_client, fd_baseline, open_fds, recv_exactly,
    recv_until_eof, served, serving, sock_path_for, start_echo_server,
    stop_server, stream_round_trip, stream_serving, subject, tls_pair,
)

pytestmark = [pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _stdlib_reference_is_311_tls(request):
    # Before 3.11 the stdlib loop had the older SSL layer (no shutdown timeout,
    # other close semantics): the reference these tests check is 3.11's.
    if sys.version_info < (3, 11) and "loop" in request.fixturenames:
        if request.getfixturevalue("impl").name == "asyncio":
            pytest.skip("the stdlib's SSL layer before Python 3.11 differs")

HAS_SHUTDOWN_TIMEOUT = stdlib_accepts("create_connection",
                                      "ssl_shutdown_timeout")
requires_shutdown_timeout = pytest.mark.skipif(
    not HAS_SHUTDOWN_TIMEOUT, reason="ssl_shutdown_timeout is 3.11+")


# ---------------------------------------------------------------------------
# Round trips on one loop


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_tls_echo_round_trip_and_large_transfer(loop, certs, host):
    payload = pattern(8 * MiB, seed=3)

    async def main():
        pair = await tls_pair(loop, certs, host)
        try:
            tr = pair.ctr
            assert isinstance(tr, asyncio.Transport)
            assert not tr.is_closing()
            assert tr.can_write_eof() is False
            with pytest.raises(NotImplementedError):
                tr.write_eof()
            tr.write(b"hello ")
            tr.write(bytearray(b"TLS "))
            tr.writelines([b"wor", memoryview(b"ld")])
            assert await pair.cproto.wait_bytes(15) == b"hello TLS world"
            assert bytes(pair.sproto.data) == b"hello TLS world"
            assert pair.cproto.events == ["made", "data"]
            assert pair.sproto.events == ["made", "data"]
            view = memoryview(payload)
            for i in range(0, len(payload), 64 * 1024):
                tr.write(view[i:i + 64 * 1024])
            got = await pair.cproto.wait_bytes(15 + len(payload))
            assert len(got) == 15 + len(payload)
            assert got[15:] == payload
            assert bytes(pair.sproto.data[15:]) == payload
        finally:
            await pair.aclose()
        assert pair.cproto.events[-1] == "lost"
        assert pair.cproto.lost_exc is None

    run(loop, main(), timeout=25)


def test_tls_streams_echo_and_large_transfer(loop, certs):
    payload = pattern(8 * MiB, seed=5)

    async def main():
        async with stream_serving(certs.server_ctx()) as port:
            reader, writer = await asyncio.open_connection(
                "localhost", port, ssl=certs.client_ctx(),
                family=socket.AF_INET)
            assert writer.get_extra_info("ssl_object") is not None
            for line in (b"one\n", b"two\n", b"three\n"):
                writer.write(line)
                await writer.drain()
                assert await reader.readline() == line
            assert await stream_round_trip(reader, writer, payload) == payload
            await close_writer(writer)

    run(loop, main(), timeout=25)


def test_tls_buffered_protocol_both_sides(loop, certs):
    payload = pattern(2 * MiB, seed=7)

    async def main():
        async with serving(loop, certs.server_ctx(),
                           lambda: BufferedSink(5000, echo=True)) as (side, p):
            tr, proto = await loop.create_connection(
                lambda: BufferedSink(3000), "127.0.0.1", p,
                ssl=certs.client_ctx())
            tr.write(payload)
            await wait_until(lambda: len(proto.data) >= len(payload), 15,
                             "echo of 2 MiB")
            assert bytes(proto.data) == payload
            assert bytes(side.protocols[0].data) == payload
            assert proto.calls >= len(payload) // 3000   # small buffers
            tr.close()
            await asyncio.wait_for(proto.lost, 5)
            await asyncio.wait_for(side.protocols[0].lost, 5)

    run(loop, main(), timeout=25)


@requires_unix
def test_tls_unix_echo(loop, certs, tmp_path):
    path = sock_path_for(tmp_path)
    payload = pattern(1 * MiB, seed=9)

    async def main():
        server = await loop.create_unix_server(Echo, path,
                                               ssl=certs.server_ctx())
        try:
            tr, proto = await loop.create_unix_connection(
                Recorder, path, ssl=certs.client_ctx(),
                server_hostname="localhost")
            assert tr.get_extra_info("ssl_object").server_hostname == \
                "localhost"
            tr.write(payload)
            assert await proto.wait_bytes(len(payload)) == payload
            await close_transport(tr, proto)
            reader, writer = await asyncio.open_unix_connection(
                path, ssl=certs.client_ctx(), server_hostname="localhost")
            writer.write(b"unix line\n")
            assert await reader.readline() == b"unix line\n"
            await close_writer(writer)
        finally:
            await close_server(server)

    run(loop, main())


def test_tls_connect_accepted_socket_server_side(loop, certs):
    async def main():
        c, s = connected_pair()
        try:
            (stran, sproto), (ctr, cproto) = await asyncio.gather(
                loop.connect_accepted_socket(Echo, s, ssl=certs.server_ctx()),
                loop.create_connection(Recorder, sock=c,
                                       ssl=certs.client_ctx(),
                                       server_hostname="localhost"))
            assert stran.get_extra_info("ssl_object").server_side is True
            assert ctr.get_extra_info("ssl_object").server_side is False
            ctr.write(b"accepted and wrapped")
            assert await cproto.wait_bytes(20) == b"accepted and wrapped"
            await close_transport(ctr, cproto)
            await asyncio.wait_for(sproto.lost, 5)
        finally:
            c.close()
            s.close()

    run(loop, main())


# ---------------------------------------------------------------------------
# Peers in other threads: blocking ssl sockets, a stdlib loop


def test_tls_client_vs_blocking_ssl_server(loop, certs):
    payload = pattern(8 * MiB, seed=11)

    async def main():
        with ThreadedServer(blocking_echo, certs.server_ctx()) as srv:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", srv.port, ssl=certs.client_ctx())
            writer.write(b"ping\n")
            assert await reader.readline() == b"ping\n"
            assert await stream_round_trip(reader, writer, payload) == payload
            await close_writer(writer)
            await wait_until(lambda: srv.results or srv.errors, 5)
            assert not srv.errors, srv.errors
            assert srv.results == [len(payload) + 5]

    run(loop, main(), timeout=25)


def test_tls_server_vs_blocking_ssl_client(loop, certs):
    payload = pattern(8 * MiB, seed=13)
    ctx = certs.client_ctx()

    def client(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"hello\n")
                assert recv_exactly(s, 6) == b"hello\n"
                got, chunk = bytearray(), 256 * 1024
                for i in range(0, len(payload), chunk):
                    s.sendall(payload[i:i + chunk])
                    got += recv_exactly(s, len(payload[i:i + chunk]))
                return bytes(got), s.getpeercert()

    async def main():
        async with stream_serving(certs.server_ctx()) as port:
            got, cert = await loop.run_in_executor(None, client, port)
            assert got == payload
            assert subject(cert)["commonName"] == "localhost"

    run(loop, main(), timeout=25)


@pytest.mark.parametrize("here", ["client", "server"])
def test_tls_vs_stdlib_loop_in_thread(loop, certs, here):
    """One side on the loop under test, the other on a stdlib loop."""
    payload = pattern(2 * MiB, seed=15)
    sctx, cctx = certs.server_ctx(), certs.client_ctx()

    async def main():
        with LoopThread() as other:
            if here == "client":
                server, port = await other.run(start_echo_server(sctx))
                try:
                    got = await echo_client(port, cctx, payload)
                finally:
                    await other.run(stop_server(server))
            else:
                server, port = await start_echo_server(sctx)
                try:
                    got = await other.run(echo_client(port, cctx, payload), 20)
                finally:
                    await stop_server(server)
        assert got == payload

    run(loop, main(), timeout=25)


# ---------------------------------------------------------------------------
# server_hostname and argument checks


@pytest.mark.parametrize("host,server_hostname,cert", [
    ("localhost", None, "server"), ("127.0.0.1", None, "server"),
    ("127.0.0.1", "", "wrong_name"),
])
def test_ssl_true_server_hostname_rules(loop, certs, monkeypatch, host,
                                        server_hostname, cert):
    """ssl=True (the default context, made to trust the test CA here) uses
    the host as server_hostname; server_hostname='' turns the name check
    off (the chain is still verified)."""
    monkeypatch.setenv("SSL_CERT_FILE", certs.ca_file)

    async def main():
        sctx = certs.server_ctx(getattr(certs, cert))
        async with serving(loop, sctx) as (_, port):
            if server_hostname == "":
                with pytest.raises(ssl.SSLCertVerificationError):
                    await loop.create_connection(Recorder, host, port,
                                                 ssl=True)
            tr, proto = await loop.create_connection(
                Recorder, host, port, ssl=True, family=socket.AF_INET,
                server_hostname=server_hostname)
            expected = None if server_hostname == "" else host
            assert tr.get_extra_info("ssl_object").server_hostname == expected
            assert tr.get_extra_info("sslcontext").check_hostname is \
                (server_hostname is None)
            tr.write(b"default context")
            assert await proto.wait_bytes(15) == b"default context"
            await close_transport(tr, proto)

    run(loop, main())


_METHODS = ["create_connection", "create_server", "open_connection",
            "start_server", "create_unix_connection", "create_unix_server",
            "connect_accepted_socket"]
ARG_CASES = [(m, "server_hostname") for m in (
    "create_connection", "open_connection", "create_unix_connection")]
ARG_CASES += [(m, "ssl_handshake_timeout") for m in _METHODS]
if HAS_SHUTDOWN_TIMEOUT:
    ARG_CASES += [(m, "ssl_shutdown_timeout") for m in _METHODS]


@pytest.mark.parametrize("method,arg", ARG_CASES)
def test_tls_argument_without_ssl_is_rejected(loop, tmp_path, method, arg):
    value = "localhost" if arg == "server_hostname" else 1.0
    c, s = connected_pair()

    async def main():
        with pytest.raises(ValueError,
                           match=f"{arg} is only meaningful with ssl"):
            await call_without_ssl(loop, sock_path_for(tmp_path), method,
                                   s, {arg: value})

    try:
        run(loop, main())
    finally:
        c.close()
        s.close()


def test_ssl_without_host_needs_server_hostname(loop, certs, tmp_path):
    c, s = connected_pair()

    async def main():
        with pytest.raises(ValueError, match="You must set server_hostname "
                                             "when using ssl without a host"):
            await loop.create_connection(Recorder, sock=c,
                                         ssl=certs.client_ctx())
        with pytest.raises(ValueError, match="you have to pass "
                                             "server_hostname when using ssl"):
            await loop.create_unix_connection(
                Recorder, str(tmp_path / "x"), ssl=certs.client_ctx())

    try:
        run(loop, main())
    finally:
        c.close()
        s.close()


@pytest.mark.parametrize("arg", [
    "ssl_handshake_timeout",
    pytest.param("ssl_shutdown_timeout", marks=requires_shutdown_timeout),
])
@pytest.mark.parametrize("value", [0, -1.5])
def test_ssl_timeouts_must_be_positive(loop, certs, arg, value):
    async def main():
        with listening_socket() as lsock:
            with pytest.raises(ValueError,
                               match=f"{arg} should be a positive number"):
                await loop.create_connection(
                    Recorder, *lsock.getsockname(), ssl=certs.client_ctx(),
                    server_hostname="localhost", **{arg: value})
        gc.collect()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        run(loop, main())


@requires_shutdown_timeout
def test_ssl_shutdown_timeout_is_accepted(loop, certs):
    async def main():
        pair = await tls_pair(loop, certs, ssl_shutdown_timeout=2.5,
                              ssl_handshake_timeout=3.0,
                              server_kw=dict(ssl_shutdown_timeout=1.5,
                                             ssl_handshake_timeout=2.0))
        try:
            pair.ctr.write(b"timeouts")
            assert await pair.cproto.wait_bytes(8) == b"timeouts"
        finally:
            await pair.aclose()
        async with stream_serving(certs.server_ctx(),
                                  ssl_shutdown_timeout=0.5) as port:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=certs.client_ctx(),
                ssl_shutdown_timeout=0.5)
            writer.write(b"x\n")
            assert await reader.readline() == b"x\n"
            await close_writer(writer)

    run(loop, main())


# ---------------------------------------------------------------------------
# get_extra_info


def test_tls_extra_info(loop, certs):
    cctx, sctx = certs.client_ctx(), certs.server_ctx()

    async def main():
        pair = await tls_pair(loop, certs, server_ctx=sctx, client_ctx=cctx)
        try:
            ctr, stran = pair.ctr, pair.stransport
            port = server_port(pair.server)
            assert ctr.get_extra_info("sslcontext") is cctx
            assert stran.get_extra_info("sslcontext") is sctx
            for tr in (ctr, stran):
                obj = tr.get_extra_info("ssl_object")
                assert isinstance(obj, ssl.SSLObject)
                assert obj.version() in ("TLSv1.2", "TLSv1.3")
                cipher = tr.get_extra_info("cipher")
                assert isinstance(cipher, tuple) and len(cipher) == 3
                assert cipher == obj.cipher()
                assert tr.get_extra_info("compression") is None
                sock = tr.get_extra_info("socket")
                assert sock.family == socket.AF_INET
                assert sock.getsockname() == tr.get_extra_info("sockname")
                assert tr.get_extra_info("no-such-key", "dflt") == "dflt"
            assert ctr.get_extra_info("peername") == ("127.0.0.1", port)
            assert stran.get_extra_info("sockname") == ("127.0.0.1", port)
            assert stran.get_extra_info("peername") == \
                ctr.get_extra_info("sockname")
            peercert = ctr.get_extra_info("peercert")
            assert subject(peercert)["commonName"] == "localhost"
            assert ("DNS", "localhost") in peercert["subjectAltName"]
            assert ("IP Address", "127.0.0.1") in peercert["subjectAltName"]
            # The host is the default server_hostname.
            assert ctr.get_extra_info("ssl_object").server_hostname == \
                "127.0.0.1"
            assert stran.get_extra_info("peercert") is None  # not asked for
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# Verification failures and mutual TLS


@pytest.mark.parametrize("case,code", [
    ("untrusted_ca", 20),               # unable to get local issuer
    ("wrong_server_hostname", 62),      # hostname mismatch
    ("wrong_cert", 64),                 # IP address mismatch
])
def test_verification_failure_leaks_nothing(loop, certs, case, code):
    server_cert = certs.wrong_name if case == "wrong_cert" else certs.server
    ctx = certs.client_ctx(trust=certs.other_ca if case == "untrusted_ca"
                           else None)
    kw = {"server_hostname": "other.example"} \
        if case == "wrong_server_hostname" else {}

    async def main():
        log = HandlerLog(loop)
        async with serving(loop, certs.server_ctx(server_cert)) as (side, p):
            before = await fd_baseline(loop)
            for _ in range(3):
                with pytest.raises(ssl.SSLCertVerificationError) as info:
                    await loop.create_connection(Recorder, "127.0.0.1", p,
                                                 ssl=ctx, **kw)
                assert info.value.verify_code == code
            gc.collect()
            await wait_until(lambda: open_fds() <= before, 5,
                             "descriptors of failed connections closed")
            assert open_fds() == before
            # The server never completed a handshake, and keeps serving.
            assert not any(pr.made.done() for pr in side.protocols)
            tr, proto = await loop.create_connection(
                Recorder, "127.0.0.1", p, ssl=certs.client_ctx(),
                server_hostname="wrong.example" if server_cert is
                certs.wrong_name else None)
            tr.write(b"ok")
            assert await proto.wait_bytes(2) == b"ok"
            await close_transport(tr, proto)
        assert log.contexts == []

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(loop, main())
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] \
        == []


@pytest.mark.parametrize("version", [
    pytest.param(None, id="with_cert"),
    pytest.param(ssl.TLSVersion.TLSv1_2, id="no_cert_tls12"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="no_cert_tls13"),
])
def test_mutual_tls(loop, certs, version):
    async def main():
        log = HandlerLog(loop)
        sctx = certs.server_ctx(require_client=True, max_version=version)
        async with serving(loop, sctx) as (side, port):
            if version is None:
                tr, proto = await loop.create_connection(
                    Recorder, "127.0.0.1", port,
                    ssl=certs.client_ctx(with_cert=True))
                tr.write(b"mutual")
                assert await proto.wait_bytes(6) == b"mutual"
                sproto = await side.first()
                peer = sproto.transport.get_extra_info("peercert")
                assert subject(peer)["commonName"] == "client.example"
                await close_transport(tr, proto)
                return
            try:
                tr, proto = await loop.create_connection(
                    Recorder, "127.0.0.1", port,
                    ssl=certs.client_ctx(max_version=version))
            except (ssl.SSLError, ConnectionError) as exc:
                # TLS 1.2: the handshake itself fails.
                assert version == ssl.TLSVersion.TLSv1_2, exc
            else:
                # TLS 1.3: the client finishes first, then the server ends
                # the connection: uvcore sends its alert first
                # (connection_lost(SSLError)), the stdlib just closes the
                # socket (eof_received, connection_lost(None)).
                assert version == ssl.TLSVersion.TLSv1_3
                tr.write(b"anyone there?")
                exc = await asyncio.wait_for(proto.lost, 5)
                if exc is None:
                    assert proto.events == ["made", "eof", "lost"]
                else:
                    assert isinstance(exc, ssl.SSLError), exc
                    assert "CERTIFICATE_REQUIRED" in str(exc)
                assert bytes(proto.data) == b""
            await asyncio.sleep(0.05)
            assert not any(p.made.done() for p in side.protocols)
        assert log.contexts == []

    run(loop, main())


# ---------------------------------------------------------------------------
# Handshake timeouts and peers that vanish


def test_client_handshake_timeout(loop, certs):
    async def main():
        with listening_socket() as lsock:       # never accepts, never talks
            before = await fd_baseline(loop)
            t0 = time.monotonic()
            with pytest.raises(ConnectionAbortedError,
                               match="SSL handshake is taking longer"):
                await loop.create_connection(
                    Recorder, *lsock.getsockname(), ssl=certs.client_ctx(),
                    server_hostname="localhost", ssl_handshake_timeout=0.5)
            assert 0.4 <= time.monotonic() - t0 < 2.0
            await wait_until(lambda: open_fds() <= before, 5, "fd closed")

    run(loop, main())


def test_server_handshake_timeout_aborts_silent_client(loop, certs):
    async def main():
        log = HandlerLog(loop)
        async with serving(loop, certs.server_ctx(),
                           ssl_handshake_timeout=0.5) as (side, port):
            with socket.socket() as silent:
                silent.setblocking(False)
                t0 = time.monotonic()
                await loop.sock_connect(silent, ("127.0.0.1", port))
                proto = await served(loop, certs, port)    # meanwhile
                try:
                    data = await asyncio.wait_for(
                        loop.sock_recv(silent, 100), 5)
                except ConnectionResetError:
                    data = b""
                assert data == b""
                assert 0.4 <= time.monotonic() - t0 < 3.0
            await served(loop, certs, port, proto)         # afterwards
            await close_transport(proto.transport, proto)
            assert sum(p.made.done() for p in side.protocols) == 1
            assert not any(p.lost.done() and not p.made.done()
                           for p in side.protocols)
        assert log.contexts == []

    run(loop, main())


@pytest.mark.parametrize("how", ["garbage", "close", "reset", "half_hello"])
def test_server_survives_client_vanishing_mid_handshake(loop, certs, how):
    async def main():
        log = HandlerLog(loop)
        async with serving(loop, certs.server_ctx()) as (side, port):
            for _ in range(3):
                raw = socket.socket()
                raw.setblocking(False)
                await loop.sock_connect(raw, ("127.0.0.1", port))
                if how == "garbage":
                    await loop.sock_sendall(raw, b"GET / HTTP/1.0\r\n\r\n" * 4)
                elif how == "half_hello":
                    await loop.sock_sendall(raw, client_hello_prefix())
                elif how == "reset":
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   b"\x01\0\0\0\0\0\0\0")
                await asyncio.sleep(0.05)
                raw.close()
            await asyncio.sleep(0.1)
            proto = await served(loop, certs, port)
            await close_transport(proto.transport, proto)
            assert sum(p.made.done() for p in side.protocols) == 1
        # Neither loop reports these outside debug mode (they are OSErrors:
        # ssl.SSLError, ConnectionResetError).
        assert log.contexts == []

    run(loop, main())


@pytest.mark.parametrize("how", ["garbage", "close"])
def test_client_sees_server_vanishing_mid_handshake(loop, certs, how):
    def handler(conn):
        conn.recv(100)                      # a part of the ClientHello
        if how == "garbage":
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" * 4)
        conn.close()

    async def main():
        log = HandlerLog(loop)
        with ThreadedServer(handler) as srv:
            before = await fd_baseline(loop)
            expected = ssl.SSLError if how == "garbage" else ConnectionError
            with pytest.raises(expected):
                await loop.create_connection(
                    Recorder, "127.0.0.1", srv.port, ssl=certs.client_ctx(),
                    server_hostname="localhost")
            await wait_until(lambda: open_fds() <= before, 5, "fd closed")
        assert log.contexts == []

    run(loop, main())


# ---------------------------------------------------------------------------
# close, abort, write after close


def test_close_after_write_delivers_everything_then_eof(loop, certs):
    payload = pattern(2 * MiB, seed=19)

    async def main():
        pair = await tls_pair(loop, certs, server=Recorder)
        try:
            pair.ctr.write(payload)
            pair.ctr.close()
            assert pair.ctr.is_closing()
            await asyncio.wait_for(pair.sproto.lost, 10)
            assert bytes(pair.sproto.data) == payload
            assert pair.sproto.events == ["made", "data", "eof", "lost"]
            assert await asyncio.wait_for(pair.cproto.lost, 10) is None
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.parametrize("case", ["client", "client_peer_talks", "server"])
def test_close_after_write_vs_blocking_peer(loop, certs, case):
    """The side on the loop writes 1 MiB and closes at once; the blocking
    peer gets all of it, then close_notify.  In "client_peer_talks" the
    peer (slow to read) sends some data of its own meanwhile: the stdlib
    loop reports it as connection_lost(SSLError), but what it wrote before
    close() must still arrive intact."""
    payload = pattern(1 * MiB, seed=21)
    done = {}

    def reader(conn):
        if case == "client_peer_talks":
            time.sleep(0.2)
            try:
                conn.sendall(b"late\n")
            except OSError:             # (the data check says what failed)
                pass
        done["got"], done["clean"] = recv_until_eof(conn)
        conn.close()

    class WriteAndClose(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(payload)
            transport.close()

    async def main():
        if case != "server":
            with ThreadedServer(reader, certs.server_ctx(),
                                suppress_ragged_eofs=False) as srv:
                tr, proto = await loop.create_connection(
                    WriteAndClose, "127.0.0.1", srv.port,
                    ssl=certs.client_ctx())
                await asyncio.wait_for(proto.lost, 10)
                await wait_until(lambda: "clean" in done or srv.errors, 10)
                assert not srv.errors, srv.errors
        else:
            ctx = certs.client_ctx()

            def client(port):
                with socket.create_connection(("127.0.0.1", port),
                                              timeout=10) as r:
                    reader(ctx.wrap_socket(r, server_hostname="localhost",
                                           suppress_ragged_eofs=False))

            async with serving(loop, certs.server_ctx(),
                               WriteAndClose) as (_, port):
                await loop.run_in_executor(None, client, port)
        assert len(done["got"]) == len(payload)
        assert done["got"] == payload
        assert done["clean"] is True

    run(loop, main())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_close_or_abort_then_write_is_ignored(loop, certs, how):
    """abort(): the peer sees the end without close_notify; writes after
    close()/abort() are dropped without an exception."""

    async def main():
        pair = await tls_pair(loop, certs, server=Recorder)
        try:
            tr = pair.ctr
            tr.write(b"before")
            await wait_until(lambda: len(pair.sproto.data) == 6)
            getattr(tr, how)()
            assert tr.is_closing()
            tr.write(b"ignored")
            tr.writelines([b"also ", b"ignored"])
            getattr(tr, how)()                      # twice is fine
            assert await asyncio.wait_for(pair.cproto.lost, 10) is None
            await asyncio.wait_for(pair.sproto.lost, 10)
            assert bytes(pair.sproto.data) == b"before"
            with pytest.raises(TypeError):
                tr.write("str is never data")
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# Flow control


def test_tls_write_flow_control(loop, certs):
    async def main():
        pair = await tls_pair(loop, certs, client=Writer, server=Recorder)
        try:
            tr = pair.ctr
            tr.set_write_buffer_limits(high=2000, low=100)
            assert tr.get_write_buffer_limits() == (100, 2000)
            with pytest.raises(ValueError):
                tr.set_write_buffer_limits(high=10, low=100)
            tr.set_write_buffer_limits()            # the defaults again
            pair.stransport.pause_reading()
            await asyncio.sleep(0.01)
            written = pair.cproto.fill(cap=256 * MiB)
            assert pair.cproto.pauses == 1, written
            assert tr.get_write_buffer_size() > 0
            assert pair.cproto.resumes == 0
            # The peer reads again: everything drains, writing resumes.
            pair.stransport.resume_reading()
            await wait_until(lambda: pair.cproto.resumes == 1, 10,
                             "resume_writing")
            await wait_until(lambda: len(pair.sproto.data) == written, 10,
                             "all data at the peer")
            assert tr.get_write_buffer_size() == 0
            assert bytes(pair.sproto.data) == \
                Writer.block * (written // len(Writer.block))
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_tls_pause_and_resume_reading(loop, certs):
    async def main():
        pair = await tls_pair(loop, certs, server=Recorder)
        try:
            assert pair.ctr.is_reading()
            pair.ctr.pause_reading()
            assert not pair.ctr.is_reading()
            pair.stransport.write(b"held back")
            await asyncio.sleep(0.2)
            assert pair.cproto.data_calls == 0
            pair.ctr.resume_reading()
            assert pair.ctr.is_reading()
            assert await pair.cproto.wait_bytes(9) == b"held back"
            # Paused again: more data and the peer's close wait, then come
            # in order.
            pair.ctr.pause_reading()
            pair.stransport.write(b"+more")
            pair.stransport.close()
            await asyncio.sleep(0.1)
            assert bytes(pair.cproto.data) == b"held back"
            assert pair.cproto.events == ["made", "data"]
            pair.ctr.resume_reading()
            await asyncio.wait_for(pair.cproto.lost, 5)
            assert bytes(pair.cproto.data) == b"held back+more"
            assert pair.cproto.events == ["made", "data", "eof", "lost"]
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# Many connections


def test_many_concurrent_tls_clients(loop, certs):
    n, size = 100, 16 * 1024
    cctx = certs.client_ctx()

    async def handler(reader, writer):
        try:
            writer.write(await reader.readexactly(size))
            await writer.drain()
        finally:
            await close_writer(writer)

    async def client(port, i):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=cctx)
        payload = pattern(size, seed=i)
        writer.write(payload)
        got = await reader.readexactly(size)
        await close_writer(writer)
        return got == payload

    async def main():
        async with stream_serving(certs.server_ctx(), handler,
                                  backlog=200) as port:
            results = await asyncio.gather(
                *(client(port, i) for i in range(n)))
            assert results == [True] * n

    run(loop, main(), timeout=25)


# ---------------------------------------------------------------------------
# uvcore's deliberate difference: close does not wait for the peer


def test_uvcore_close_does_not_wait_for_peer_close_notify(loop, impl, certs):
    if impl.name != "uvcore":
        pytest.skip("the stdlib waits for the peer's close_notify "
                    "(up to ssl_shutdown_timeout)")
    release = threading.Event()

    def silent(conn):           # handshake done, then never reads again
        release.wait(10)
        conn.close()

    async def main():
        with ThreadedServer(silent, certs.server_ctx()) as srv:
            try:
                tr, proto = await loop.create_connection(
                    Recorder, "127.0.0.1", srv.port, ssl=certs.client_ctx())
                tr.write(b"unread")
                t0 = time.monotonic()
                tr.close()
                assert await asyncio.wait_for(proto.lost, 1.0) is None
                assert time.monotonic() - t0 < 1.0
            finally:
                release.set()

    run(loop, main())
