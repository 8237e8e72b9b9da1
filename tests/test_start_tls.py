"""loop.start_tls and StreamWriter.start_tls: plain connections upgraded to
TLS on either side, against peers on the same loop and blocking ``ssl``
sockets in threads; argument checks, closed transports, handshake failures
and timeouts.  Certificates come from trustme (see _tls_helpers)."""

import asyncio
import socket
import sys
import ssl
import time

import pytest

from _net_helpers import (
    Recorder, ServerSide, close_server, close_transport, pattern, run,
    server_port, wait_until,
)
from _tls_helpers import (
    MiB, ThreadedServer, blocking_echo, certs,  # noqa: F401
    close_writer, recv_exactly, stream_round_trip,
)

pytestmark = [pytest.mark.timeout(30)]


@pytest.fixture(autouse=True)
def _stdlib_reference_is_311_tls(request):
    # Before 3.11 the stdlib loop had the older SSL layer (no shutdown timeout,
    # other close semantics): the reference these tests check is 3.11's.
    if sys.version_info < (3, 11) and "loop" in request.fixturenames:
        if request.getfixturevalue("impl").name == "asyncio":
            pytest.skip("the stdlib's SSL layer before Python 3.11 differs")


class Upgrading(Recorder):
    """Echoes plain data; on b"STARTTLS\\n" answers b"OK\\n", upgrades
    with start_tls(server_side=True), greets, then echoes over TLS."""

    def __init__(self, ctx, greeting=b"WELCOME\n", **tls_kw):
        super().__init__()
        self.ctx = ctx
        self.greeting = greeting
        self.tls_kw = tls_kw
        self.plain_transport = None
        self.upgrade = None             # the task running start_tls
        self.tls_transport = None
        self.held = bytearray()         # TLS data before start_tls returned

    def data_received(self, data):
        super().data_received(data)
        if self.upgrade is None:
            if data.endswith(b"STARTTLS\n"):
                self.plain_transport = self.transport
                self.transport.pause_reading()
                self.transport.write(b"OK\n")
                self.upgrade = self.loop.create_task(self._upgrade())
            else:
                self.transport.write(data)
        elif self.tls_transport is None:
            self.held += data
        else:
            self.tls_transport.write(data)

    async def _upgrade(self):
        tr = await self.loop.start_tls(self.transport, self, self.ctx,
                                       server_side=True, **self.tls_kw)
        self.tls_transport = self.transport = tr
        if self.greeting:
            tr.write(self.greeting)
        if self.held:
            tr.write(bytes(self.held))
        return tr


async def _plain_then_starttls(loop, port, proto_cls=Recorder):
    """Connect in plain, echo one line, send STARTTLS, wait for OK."""
    tr, proto = await loop.create_connection(proto_cls, "127.0.0.1", port)
    tr.write(b"plain hello\n")
    await proto.wait_bytes(12)
    tr.write(b"STARTTLS\n")
    await proto.wait_bytes(15)
    assert bytes(proto.data) == b"plain hello\nOK\n"
    return tr, proto


# ---------------------------------------------------------------------------
# Upgrades that work


def test_start_tls_upgrade_both_sides(loop, certs):
    payload = pattern(1 * MiB, seed=31)

    async def main():
        side = ServerSide(lambda: Upgrading(certs.server_ctx()))
        server = await loop.create_server(side, "127.0.0.1", 0)
        try:
            tr, proto = await _plain_then_starttls(loop, server_port(server))
            assert tr.get_extra_info("ssl_object") is None
            ctx = certs.client_ctx()
            tls = await loop.start_tls(tr, proto, ctx,
                                       server_hostname="localhost")
            assert tls is not tr
            assert isinstance(tls, asyncio.Transport)
            assert tls.get_protocol() is proto
            assert tls.get_extra_info("sslcontext") is ctx
            obj = tls.get_extra_info("ssl_object")
            assert isinstance(obj, ssl.SSLObject)
            assert obj.server_hostname == "localhost"
            peer = dict(i for rdn in tls.get_extra_info("peercert")["subject"]
                        for i in rdn)
            assert peer["commonName"] == "localhost"
            assert tls.get_extra_info("peername") == tr.get_extra_info(
                "peername")
            # The server's greeting right after its handshake is not lost.
            await proto.wait_bytes(15 + 8)
            tls.write(payload)
            got = await proto.wait_bytes(23 + len(payload))
            assert got == b"plain hello\nOK\nWELCOME\n" + payload
            sproto = side.protocols[0]
            stls = await asyncio.wait_for(sproto.upgrade, 5)
            assert stls.get_extra_info("ssl_object").server_side is True
            assert sproto.plain_transport.get_extra_info("ssl_object") is None
            assert bytes(sproto.data) == b"plain hello\nSTARTTLS\n" + payload
            tls.close()
            await asyncio.wait_for(proto.lost, 10)
            await asyncio.wait_for(sproto.lost, 10)
            assert proto.problems == [] and sproto.problems == []
        finally:
            await close_server(server)

    run(loop, main())


def _blocking_starttls_server(ctx):
    def handler(conn):
        buf = b""
        while not buf.endswith(b"STARTTLS\n"):
            data = conn.recv(1024)
            if not data:
                return -1
            if not data.endswith(b"STARTTLS\n"):
                conn.sendall(data)
            buf += data
        conn.sendall(b"OK\n")
        return blocking_echo(ctx.wrap_socket(conn, server_side=True))
    return handler


def test_start_tls_client_vs_blocking_server(loop, certs):
    payload = pattern(2 * MiB, seed=33)

    async def main():
        handler = _blocking_starttls_server(certs.server_ctx())
        with ThreadedServer(handler) as srv:
            tr, proto = await _plain_then_starttls(loop, srv.port)
            tls = await loop.start_tls(tr, proto, certs.client_ctx(),
                                       server_hostname="localhost")
            tls.write(payload)
            got = await proto.wait_bytes(15 + len(payload))
            assert got[15:] == payload
            await close_transport(tls, proto)
            await wait_until(lambda: srv.results or srv.errors, 5)
            assert not srv.errors, srv.errors
            assert srv.results == [len(payload)]

    run(loop, main())


def test_start_tls_server_side_vs_blocking_client(loop, certs):
    payload = pattern(2 * MiB, seed=35)
    ctx = certs.client_ctx()

    def client(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"plain hello\n")
            assert recv_exactly(raw, 12) == b"plain hello\n"
            raw.sendall(b"STARTTLS\n")
            assert recv_exactly(raw, 3) == b"OK\n"
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                assert recv_exactly(s, 8) == b"WELCOME\n"
                got = bytearray()
                chunk = 256 * 1024
                for i in range(0, len(payload), chunk):
                    s.sendall(payload[i:i + chunk])
                    got += recv_exactly(s, len(payload[i:i + chunk]))
                return bytes(got)

    async def main():
        side = ServerSide(lambda: Upgrading(certs.server_ctx()))
        server = await loop.create_server(side, "127.0.0.1", 0)
        try:
            got = await loop.run_in_executor(None, client,
                                             server_port(server))
            assert got == payload
            sproto = side.protocols[0]
            await asyncio.wait_for(sproto.lost, 10)
            assert bytes(sproto.data) == b"plain hello\nSTARTTLS\n" + payload
        finally:
            await close_server(server)

    run(loop, main(), timeout=25)


@pytest.mark.skipif(not hasattr(asyncio.StreamWriter, "start_tls"),
                    reason="StreamWriter.start_tls is 3.11+")
def test_stream_writer_start_tls(loop, certs):
    payload = pattern(2 * MiB, seed=37)
    results = []

    async def handler(reader, writer):
        try:
            assert await reader.readline() == b"hi\n"
            writer.write(b"hi there\n")
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(certs.server_ctx())
            results.append(writer.get_extra_info("ssl_object").server_side)
            while True:
                data = await reader.read(256 * 1024)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except Exception as exc:            # reported by the test
            results.append(exc)
        finally:
            await close_writer(writer)

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server_port(server))
            writer.write(b"hi\n")
            assert await reader.readline() == b"hi there\n"
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"OK\n"
            assert writer.get_extra_info("ssl_object") is None
            await writer.start_tls(certs.client_ctx(),
                                   server_hostname="localhost")
            obj = writer.get_extra_info("ssl_object")
            assert obj is not None and obj.server_side is False
            assert writer.transport.get_extra_info("ssl_object") is obj
            assert await stream_round_trip(reader, writer, payload) == payload
            await close_writer(writer)
            await wait_until(lambda: results, 5)
            assert results == [True]
        finally:
            await close_server(server)

    run(loop, main(), timeout=25)


def test_start_tls_inside_tls(loop, certs):
    """TLS in TLS: start_tls on a transport that is itself TLS."""

    async def main():
        side = ServerSide(lambda: Upgrading(certs.server_ctx(),
                                            greeting=None))
        server = await loop.create_server(side, "127.0.0.1", 0,
                                          ssl=certs.server_ctx())
        try:
            tr, proto = await loop.create_connection(
                Recorder, "127.0.0.1", server_port(server),
                ssl=certs.client_ctx())
            tr.write(b"STARTTLS\n")
            await proto.wait_bytes(3)
            inner = await loop.start_tls(tr, proto, certs.client_ctx(),
                                         server_hostname="localhost")
            outer_obj = tr.get_extra_info("ssl_object")
            inner_obj = inner.get_extra_info("ssl_object")
            assert inner_obj is not None and inner_obj is not outer_obj
            payload = pattern(256 * 1024, seed=39)
            inner.write(payload)
            assert await proto.wait_bytes(3 + len(payload)) == \
                b"OK\n" + payload
            inner.close()
            await asyncio.wait_for(proto.lost, 10)
        finally:
            await close_server(server)

    run(loop, main())


# ---------------------------------------------------------------------------
# Arguments and transports start_tls refuses


async def _plain_pair(loop):
    side = ServerSide(Recorder)
    server = await loop.create_server(side, "127.0.0.1", 0)
    tr, proto = await loop.create_connection(Recorder, "127.0.0.1",
                                             server_port(server))
    sproto = await side.first()
    return server, tr, proto, sproto


async def _still_plain(tr, sproto, n):
    tr.write(b"still plain")
    await wait_until(lambda: bytes(sproto.data).endswith(b"still plain"), 5)
    assert len(sproto.data) == n + 11


@pytest.mark.parametrize("bad", [True, None, "context", object()],
                         ids=["True", "None", "str", "object"])
def test_start_tls_needs_an_ssl_context(loop, bad):
    async def main():
        server, tr, proto, sproto = await _plain_pair(loop)
        try:
            with pytest.raises(TypeError, match="sslcontext is expected to "
                                                "be an instance of "
                                                "ssl.SSLContext"):
                await loop.start_tls(tr, proto, bad)
            assert not tr.is_closing()
            await _still_plain(tr, sproto, 0)
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


@pytest.mark.parametrize("arg,value", [
    ("ssl_handshake_timeout", 0), ("ssl_handshake_timeout", -1),
    ("ssl_shutdown_timeout", 0), ("ssl_shutdown_timeout", -2.5),
])
def test_start_tls_timeouts_must_be_positive(loop, certs, arg, value):
    async def main():
        server, tr, proto, sproto = await _plain_pair(loop)
        try:
            with pytest.raises(ValueError, match="should be a positive "
                                                 "number"):
                await loop.start_tls(tr, proto, certs.client_ctx(),
                                     server_hostname="localhost",
                                     **{arg: value})
            # Refused before anything happened to the transport.
            assert not tr.is_closing()
            await _still_plain(tr, sproto, 0)
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_start_tls_on_closed_transport_never_succeeds(loop, certs, how):
    """Neither loop gives a working TLS transport for a closed transport
    (the stdlib's start_tls waits forever: it is bounded here)."""

    async def main():
        server, tr, proto, sproto = await _plain_pair(loop)
        try:
            getattr(tr, how)()
            await asyncio.wait_for(proto.lost, 5)
            with pytest.raises((asyncio.TimeoutError, ConnectionError,
                                RuntimeError)):
                await asyncio.wait_for(
                    loop.start_tls(tr, proto, certs.client_ctx(),
                                   server_hostname="localhost",
                                   ssl_handshake_timeout=0.5), 1.0)
            assert tr.is_closing()
            await asyncio.wait_for(sproto.lost, 5)
        finally:
            await close_server(server)

    run(loop, main())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_transport_closed_during_start_tls(loop, certs, how):
    """Closing the plain transport while the handshake waits ends start_tls
    promptly; the stdlib returns None, never a usable transport."""

    async def main():
        server, tr, proto, sproto = await _plain_pair(loop)
        try:
            loop.call_later(0.1, getattr(tr, how))
            t0 = time.monotonic()
            try:
                result = await asyncio.wait_for(
                    loop.start_tls(tr, proto, certs.client_ctx(),
                                   server_hostname="localhost"), 5)
            except (ConnectionError, ssl.SSLError):
                result = None
            assert time.monotonic() - t0 < 2.0
            assert result is None or result.is_closing()
            assert tr.is_closing()
            await asyncio.wait_for(sproto.lost, 5)
            # What the server got is the start of a ClientHello.
            assert sproto.data[:1] == b"\x16"
        finally:
            await close_server(server)

    run(loop, main())


# ---------------------------------------------------------------------------
# Failures during the upgrade


def test_start_tls_handshake_failure_closes_transport(loop, certs):
    async def main():
        side = ServerSide(lambda: Upgrading(certs.server_ctx()))
        server = await loop.create_server(side, "127.0.0.1", 0)
        try:
            tr, proto = await _plain_then_starttls(loop, server_port(server))
            with pytest.raises(ssl.SSLCertVerificationError):
                await loop.start_tls(
                    tr, proto, certs.client_ctx(trust=certs.other_ca),
                    server_hostname="localhost")
            assert tr.is_closing()
            sproto = side.protocols[0]
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(sproto.upgrade, 5)
            assert sproto.plain_transport.is_closing()
            assert sproto.tls_transport is None
        finally:
            await close_server(server)

    run(loop, main())


def test_start_tls_client_handshake_timeout(loop, certs):
    async def main():
        server, tr, proto, sproto = await _plain_pair(loop)
        try:
            t0 = time.monotonic()
            with pytest.raises(ConnectionAbortedError,
                               match="SSL handshake is taking longer"):
                await loop.start_tls(tr, proto, certs.client_ctx(),
                                     server_hostname="localhost",
                                     ssl_handshake_timeout=0.5)
            assert 0.4 <= time.monotonic() - t0 < 2.0
            assert tr.is_closing()
            await asyncio.wait_for(sproto.lost, 5)
            assert sproto.data[:1] == b"\x16"      # a TLS handshake record
        finally:
            await close_server(server)

    run(loop, main())


def test_start_tls_server_handshake_timeout(loop, certs):
    async def main():
        side = ServerSide(lambda: Upgrading(certs.server_ctx(),
                                            ssl_handshake_timeout=0.5))
        server = await loop.create_server(side, "127.0.0.1", 0)
        try:
            # The client asks for TLS but never sends a ClientHello.
            tr, proto = await _plain_then_starttls(loop, server_port(server))
            t0 = time.monotonic()
            sproto = side.protocols[0]
            with pytest.raises(ConnectionAbortedError,
                               match="SSL handshake is taking longer"):
                await asyncio.wait_for(sproto.upgrade, 5)
            assert 0.4 <= time.monotonic() - t0 < 2.0
            assert sproto.plain_transport.is_closing()
            await asyncio.wait_for(proto.lost, 5)
            assert bytes(proto.data) == b"plain hello\nOK\n"
        finally:
            await close_server(server)

    run(loop, main())
