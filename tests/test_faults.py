"""Fault injection, network side (issue 7, "Faults"): peers that reset,
half-close, never read or read one byte at a time, unreachable addresses and
failing name resolution, and protocol callbacks that raise.  Real sockets on
loopback, no mocks; every test runs against the stdlib loop and uvcore.  For
each fault: no crash, no hang, the error reaches the caller (or the loop's
exception handler) as with asyncio, and surviving connections lose no data.
Process, signal and resource faults are in test_faults_process.py.

Faults already covered elsewhere (not repeated here):
- one peer reset while we write: test_stream_transport.py::
  test_peer_reset_while_writing_reports_the_error; while idle: test_tcp.py::
  test_peer_reset_gives_connection_reset_error; reads after a reset:
  test_streams.py::test_read_after_peer_reset
- write_eof towards a half-open peer, and the flush before the FIN:
  test_stream_transport.py::test_write_eof_with_half_open_peer,
  ::test_write_eof_flushes_pending_data_first; eof_received() returning
  false closes: ::test_eof_received_false_closes_the_transport
- flow-control water marks with a transport peer: test_stream_transport.py::
  test_pause_and_resume_writing_once_at_the_water_marks
- connection refused: test_tcp_setup.py::
  test_create_connection_refused_single_address, test_streams.py::
  test_open_connection_refused; a black-holed address given up on by a
  timeout: test_tcp.py::test_cancelled_create_connection_leaves_nothing_behind
- exceptions from data_received / eof_received: test_stream_transport.py::
  test_protocol_errors_are_fatal; get_buffer / buffer_updated:
  ::test_buffered_protocol_errors_are_fatal; pause_writing / resume_writing:
  ::test_errors_in_pause_and_resume_writing_go_to_the_handler;
  datagram_received: test_udp.py::
  test_exception_in_datagram_received_goes_to_handler
- KeyboardInterrupt / SystemExit from a call_soon callback: test_call_soon.py::
  test_base_exceptions_propagate_out_of_run_forever
"""

import asyncio
import errno
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from _net_helpers import (
    Echo, HalfOpenRecorder, Recorder, ServerSide, close_server,
    connected_pair, fd_is_open, pattern, requires_ipv6, run, same_file,
    server_port, set_linger_zero, wait_until,
)

pytestmark = pytest.mark.timeout(30)

KiB = 1024
MiB = 1024 * 1024


def uvcore_bug(request, impl, reason):
    """Mark this test an expected (strict) failure for the uvcore param
    only: asyncio proves the expectation, uvcore does not meet it yet."""
    if impl.name == "uvcore":
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


def handler_log(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    return calls


def check_bytes(got, want, what="data"):
    got = bytes(got)
    assert len(got) == len(want), (what, len(got), len(want))
    if got != want:
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        raise AssertionError(f"{what} differs first at offset {first}")


def outcome_of(exc):
    """What a caller sees of an exception: type, errno, message."""
    return type(exc), getattr(exc, "errno", None), str(exc)


def stdlib_outcome(make_coro, timeout=10):
    """Run ``make_coro(loop)`` on a fresh stdlib loop: the reference."""
    lp = asyncio.new_event_loop()
    try:
        try:
            lp.run_until_complete(asyncio.wait_for(make_coro(lp), timeout))
        except Exception as exc:
            return outcome_of(exc)
        return None
    finally:
        lp.close()


def in_thread(loop, func, *args):
    """Run a blocking peer function in a thread of its own (not the
    executor: tests may fill it) and return a future of its result."""
    fut = loop.create_future()

    def target():
        try:
            res = func(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            loop.call_soon_threadsafe(
                lambda e=exc: fut.done() or fut.set_exception(e))
        else:
            loop.call_soon_threadsafe(
                lambda: fut.done() or fut.set_result(res))

    threading.Thread(target=target, daemon=True).start()
    return fut


def raw_client(port, rcvbuf=None):
    """A blocking client socket of the test (the faulty peer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    return s


def recv_until_eof(sock, step=1 << 20):
    chunks = []
    while True:
        b = sock.recv(step)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


class Producer(Recorder):
    """Writes ``total`` bytes in ``chunk`` pieces, stops while paused (as a
    well-behaved protocol does), closes when all is written."""

    total = 8 * MiB
    chunk = 64 * KiB
    high = 256 * KiB
    low = 64 * KiB

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=self.high, low=self.low)
        self.blob = pattern(self.total, seed=7)
        self.sent = 0
        self.paused = False
        self.flow = []              # "pause" / "resume", in order
        self.max_buffered = 0
        self.pump()

    def pump(self):
        tr = self.transport
        while not self.paused and self.sent < self.total:
            if tr.is_closing():
                return
            tr.write(self.blob[self.sent:self.sent + self.chunk])
            self.sent += self.chunk
            self.max_buffered = max(self.max_buffered,
                                    tr.get_write_buffer_size())
        if self.sent >= self.total and not tr.is_closing():
            tr.close()

    def pause_writing(self):
        super().pause_writing()
        self.paused = True
        self.flow.append("pause")

    def resume_writing(self):
        super().resume_writing()
        self.paused = False
        self.flow.append("resume")
        self.loop.call_soon(self.pump)


# ---------------------------------------------------------------------------
# Peer reset in the middle of a large write


def test_peer_reset_mid_write_spares_other_connections(loop):
    class Blaster(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(pattern(16 * MiB, seed=3))

    async def main():
        calls = handler_log(loop)
        echo_side = ServerSide(Echo)
        echo_srv = await loop.create_server(echo_side, "127.0.0.1", 0)
        blast_side = ServerSide(Blaster)
        blast_srv = await loop.create_server(blast_side, "127.0.0.1", 0)
        victims, clients = [], []
        try:
            for _ in range(4):
                clients.append(await loop.create_connection(
                    Recorder, "127.0.0.1", server_port(echo_srv)))
            blobs = [pattern(2 * MiB, seed=10 + i) for i in range(4)]
            for (tr, _), blob in zip(clients, blobs):
                tr.write(blob[:MiB])
            victims = [raw_client(server_port(blast_srv)) for _ in range(3)]
            blasters = await blast_side.wait_count(3)
            await wait_until(lambda: all(
                b.transport.get_write_buffer_size() > 0 for b in blasters))
            for s in victims:           # RST while megabytes are queued
                set_linger_zero(s)
                s.close()
            excs = await asyncio.wait_for(
                asyncio.gather(*(b.lost for b in blasters)), 5)
            for b, exc in zip(blasters, excs):
                assert isinstance(exc, (ConnectionResetError,
                                        BrokenPipeError)), exc
                assert b.transport.is_closing()
                assert b.transport.get_write_buffer_size() == 0
                assert b.events[-1] == "lost" and not b.problems
            # The other connections carry on, byte for byte.
            for (tr, _), blob in zip(clients, blobs):
                tr.write(blob[MiB:])
            for i, ((tr, proto), blob) in enumerate(zip(clients, blobs)):
                got = await asyncio.wait_for(proto.wait_bytes(len(blob)), 20)
                check_bytes(got, blob, f"echo {i}")
                assert not tr.is_closing()
            # A reset peer is not reported to the exception handler.
            assert calls == []
        finally:
            for s in victims:
                s.close()
            for tr, proto in clients:
                tr.close()
                await asyncio.wait_for(proto.lost, 5)
            await close_server(echo_srv)
            await close_server(blast_srv)

    run(loop, main(), timeout=25)


def test_peer_reset_fails_a_pending_drain(loop):
    async def main():
        c, s = connected_pair()
        reader, writer = await asyncio.open_connection(sock=c)
        try:
            writer.write(pattern(16 * MiB))
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.sleep(0.05)
            assert not drain.done()     # the peer reads nothing
            set_linger_zero(s)
            s.close()
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(drain, 5)
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(reader.read(), 5)
            assert writer.transport.is_closing()
            writer.close()
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(writer.wait_closed(), 5)
        finally:
            s.close()
            writer.close()

    run(loop, main())


# ---------------------------------------------------------------------------
# The caller closes the socket it handed to a transport that is closing


_CLOSE_UNDER_TRANSPORT = """
import socket, sys

async def main():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
    tr.write(b"x" * (4 << 20))     # more than the socket takes: queued
    await asyncio.sleep(0.01)      # the loop polls with the write pending
    assert tr.get_write_buffer_size() > 0
    getattr(tr, sys.argv[1])()
    a.close()                      # the caller closes "its" socket too
    await asyncio.sleep(0.05)
    b.close()
    print("survived", flush=True)

run(main())
"""


@pytest.mark.parametrize("how", ["close", "abort"])
def test_adopted_socket_closed_under_a_closing_transport(request, impl, how):
    # In a child: the failure mode is the whole process dying.
    proc = subprocess.run(
        [sys.executable, "-c", impl.child_prelude() + textwrap.dedent(
            _CLOSE_UNDER_TRANSPORT), how],
        capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL, env=impl.child_env())
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == "survived\n"


# ---------------------------------------------------------------------------
# Half-close in both directions


def test_peer_shutdown_wr_leaves_us_writable(loop):
    answer = pattern(4 * MiB, seed=5)

    class Responder(HalfOpenRecorder):
        def eof_received(self):
            keep = super().eof_received()
            self.loop.call_soon(self.respond)
            return keep

        def respond(self):
            # After our eof_received returned True: still open and writable.
            self.closing_after_eof = self.transport.is_closing()
            for i in range(0, len(answer), 256 * KiB):
                self.transport.write(answer[i:i + 256 * KiB])
            self.transport.close()

    def peer(port):
        with raw_client(port) as s:
            s.sendall(b"request")
            s.shutdown(socket.SHUT_WR)
            return recv_until_eof(s)

    async def main():
        side = ServerSide(Responder)
        srv = await loop.create_server(side, "127.0.0.1", 0)
        try:
            got = await asyncio.wait_for(
                in_thread(loop, peer, server_port(srv)), 20)
            check_bytes(got, answer)
            sp = await side.first()
            exc = await asyncio.wait_for(sp.lost, 5)
            assert exc is None
            assert sp.closing_after_eof is False
            assert sp.events == ["made", "data", "eof", "lost"]
            assert sp.data == b"request"
            assert not sp.problems
        finally:
            await close_server(srv)

    run(loop, main(), timeout=25)


def test_our_write_eof_peer_keeps_sending(loop):
    blob = pattern(4 * MiB, seed=6)

    def peer(s):
        request = recv_until_eof(s)         # until our FIN
        s.sendall(blob)
        s.close()
        return request

    async def main():
        c, s = connected_pair()
        s.settimeout(20)
        try:
            tr, proto = await loop.create_connection(Recorder, sock=c)
            peer_done = in_thread(loop, peer, s)
            tr.write(b"req")
            tr.write(b"uest")
            assert tr.can_write_eof()
            tr.write_eof()
            assert not tr.is_closing()
            assert await asyncio.wait_for(peer_done, 10) == b"request"
            exc = await asyncio.wait_for(proto.lost, 20)
            assert exc is None
            check_bytes(proto.data, blob)
            assert proto.events == ["made", "data", "eof", "lost"]
            assert not proto.problems
        finally:
            s.close()

    run(loop, main(), timeout=25)


def test_both_directions_half_closed_then_closed(loop):
    up, down = pattern(MiB, seed=1), pattern(MiB, seed=2)

    class Answerer(HalfOpenRecorder):
        def eof_received(self):
            keep = super().eof_received()
            self.transport.write(down)
            self.transport.write_eof()
            return keep

    async def main():
        side = ServerSide(Answerer)
        srv = await loop.create_server(side, "127.0.0.1", 0)
        try:
            tr, proto = await loop.create_connection(
                HalfOpenRecorder, "127.0.0.1", server_port(srv))
            tr.write(up)
            tr.write_eof()
            sp = await side.first()
            await asyncio.wait_for(proto.eof, 10)
            await asyncio.wait_for(sp.eof, 10)
            check_bytes(proto.data, down, "downstream")
            check_bytes(sp.data, up, "upstream")
            # Both directions shut, both eof_received() returned True: the
            # transports stay open until closed.
            await asyncio.sleep(0.05)
            assert not tr.is_closing() and not sp.transport.is_closing()
            assert not proto.lost.done() and not sp.lost.done()
            tr.close()
            assert await asyncio.wait_for(proto.lost, 5) is None
            # The server side sees no more than the end it already had.
            sp.transport.close()
            assert await asyncio.wait_for(sp.lost, 5) is None
            assert proto.events == sp.events == ["made", "data", "eof", "lost"]
            assert not proto.problems and not sp.problems
        finally:
            await close_server(srv)

    run(loop, main(), timeout=25)


# ---------------------------------------------------------------------------
# A peer that never reads, and one that reads a byte at a time


def test_peer_that_never_reads_pauses_the_writer(loop):
    async def main():
        side = ServerSide(Producer)
        srv = await loop.create_server(side, "127.0.0.1", 0)
        s = raw_client(server_port(srv), rcvbuf=16 * KiB)
        try:
            prod = await side.first()
            await wait_until(lambda: prod.paused, 5, "pause_writing")
            sent, buffered = prod.sent, prod.transport.get_write_buffer_size()
            assert sent < prod.total
            await asyncio.sleep(0.3)
            # Paused and stopped: nothing more queued while the peer sleeps.
            assert prod.paused and prod.sent == sent
            assert prod.transport.get_write_buffer_size() == buffered
            assert buffered <= prod.high + prod.chunk
            assert prod.max_buffered <= prod.high + prod.chunk
            assert prod.flow == ["pause"]
            # The peer starts reading: resume, and everything arrives.
            got = await asyncio.wait_for(in_thread(loop, recv_until_eof, s),
                                         20)
            check_bytes(got, prod.blob)
            assert await asyncio.wait_for(prod.lost, 5) is None
            assert prod.flow[0] == "pause" and len(prod.flow) >= 2
            assert all(a != b for a, b in zip(prod.flow, prod.flow[1:])), \
                prod.flow               # strictly alternating
            assert prod.max_buffered <= prod.high + prod.chunk
            assert not prod.problems
        finally:
            s.close()
            await close_server(srv)

    run(loop, main(), timeout=25)


@pytest.mark.parametrize("direction", ["peer-reads", "peer-writes"])
def test_slow_loris_one_byte_at_a_time(loop, direction):
    size = 128 * KiB
    blob = pattern(size, seed=8)

    class Sender(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(blob)
            transport.close()           # flushes first

    def slow_reader(s):
        got = bytearray()
        while True:
            b = s.recv(1)
            if not b:
                return bytes(got)
            got += b
            if len(got) % (4 * KiB) == 0:
                time.sleep(0.002)

    def slow_writer(s):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        small = blob[:8 * KiB]
        for i in range(len(small)):
            s.send(small[i:i + 1])
            if i % 64 == 0:
                time.sleep(0.002)
        s.shutdown(socket.SHUT_WR)
        return small

    async def main():
        side = ServerSide(Sender if direction == "peer-reads" else Recorder)
        srv = await loop.create_server(side, "127.0.0.1", 0)
        echo_side = ServerSide(Echo)
        echo_srv = await loop.create_server(echo_side, "127.0.0.1", 0)
        s = raw_client(server_port(srv), rcvbuf=4 * KiB)
        etr, eproto = await loop.create_connection(
            Recorder, "127.0.0.1", server_port(echo_srv))
        lateness = []
        ticking = [True]

        def tick(due):
            lateness.append(loop.time() - due)
            if ticking[0]:
                loop.call_at(due + 0.01, tick, due + 0.01)

        try:
            loop.call_at(loop.time() + 0.01, tick, loop.time() + 0.01)
            peer = in_thread(loop, slow_reader if direction == "peer-reads"
                             else slow_writer, s)
            # Meanwhile an ordinary connection keeps doing round trips.
            rounds = 0
            while not peer.done():
                msg = b"%08d" % rounds
                etr.write(msg)
                n = len(eproto.data) + len(msg)
                got = await asyncio.wait_for(eproto.wait_bytes(n), 5)
                assert got.endswith(msg)
                rounds += 1
                await asyncio.sleep(0.005)
            result = await peer
            sp = await side.first()
            if direction == "peer-reads":
                check_bytes(result, blob)
                assert await asyncio.wait_for(sp.lost, 5) is None
            else:
                await asyncio.wait_for(sp.eof, 5)
                check_bytes(sp.data, result)
                assert sp.data_calls > 1
            assert rounds >= 5, rounds
            assert len(lateness) >= 5, lateness
            assert max(lateness) < 0.5, max(lateness)
            assert not sp.problems and not eproto.problems
        finally:
            ticking[0] = False
            s.close()
            etr.close()
            await asyncio.wait_for(eproto.lost, 5)
            await close_server(srv)
            await close_server(echo_srv)

    run(loop, main(), timeout=25)


# ---------------------------------------------------------------------------
# Unreachable addresses and name resolution failures


def _immediate_connect_error(family, addr):
    """The errno a non-blocking connect() to ``addr`` fails with at once,
    or None when it would go on (and hang a test)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setblocking(False)
        try:
            err = s.connect_ex(addr)
        except OSError as exc:
            err = exc.errno
    if err in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
        return None
    return err


# A TCP connect to a multicast address fails at once with ENETUNREACH on
# Linux, with no packet on the wire: an unreachable address that needs no
# network (a TEST-NET address may be routed, or even be the gateway).
UNREACHABLE = [
    pytest.param(socket.AF_INET, "224.0.0.1", id="v4"),
    pytest.param(socket.AF_INET6, "ff02::1", id="v6", marks=requires_ipv6),
]

CONNECT_CALLS = {
    "create_connection": lambda lp, host, port: lp.create_connection(
        asyncio.Protocol, host, port),
    "open_connection": lambda lp, host, port: asyncio.open_connection(
        host, port),
    "sock_connect": None,   # built in the test: needs a socket
}


@pytest.mark.parametrize("family,host", UNREACHABLE)
@pytest.mark.parametrize("call", sorted(CONNECT_CALLS))
def test_unreachable_address_same_error_as_asyncio(loop, family, host, call):
    err = _immediate_connect_error(family, (host, 9))
    if err is None:
        pytest.skip(f"connect() to {host} does not fail at once here")

    def make(lp):
        if call != "sock_connect":
            return CONNECT_CALLS[call](lp, host, 9)

        async def via_sock():
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setblocking(False)
                await lp.sock_connect(s, (host, 9))
        return via_sock()

    expected = stdlib_outcome(make)
    assert expected is not None and expected[1] == err, expected

    async def main():
        with pytest.raises(OSError) as ei:
            await make(loop)
        return outcome_of(ei.value)

    assert run(loop, main()) == expected
    # The loop is fine afterwards.
    assert run(loop, asyncio.sleep(0, "ok")) == "ok"


INVALID_NAME = "no-such-host.invalid"    # RFC 6761: never resolves

DNS_CALLS = {
    "create_connection": lambda lp: lp.create_connection(
        asyncio.Protocol, INVALID_NAME, 80),
    "open_connection": lambda lp: asyncio.open_connection(INVALID_NAME, 80),
    "create_server": lambda lp: lp.create_server(
        asyncio.Protocol, INVALID_NAME, 0),
    "datagram_remote": lambda lp: lp.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=(INVALID_NAME, 53)),
    "getaddrinfo": lambda lp: lp.getaddrinfo(INVALID_NAME, 80),
    "getnameinfo_namereqd": lambda lp: lp.getnameinfo(
        ("192.0.2.55", 9), socket.NI_NAMEREQD),
}


@pytest.mark.parametrize("call", sorted(DNS_CALLS))
def test_name_resolution_failure_same_error_as_asyncio(loop, call):
    try:
        expected = stdlib_outcome(DNS_CALLS[call], timeout=10)
    except asyncio.TimeoutError:
        pytest.skip("the resolver does not answer in this environment")
    if expected is None or not issubclass(expected[0], socket.gaierror):
        pytest.skip(f"{INVALID_NAME} does not fail to resolve here: "
                    f"{expected}")

    async def main():
        with pytest.raises(socket.gaierror) as ei:
            await DNS_CALLS[call](loop)
        return outcome_of(ei.value)

    assert run(loop, main(), timeout=15) == expected
    assert run(loop, asyncio.sleep(0, "ok")) == "ok"


# ---------------------------------------------------------------------------
# Exceptions raised from protocol callbacks


@pytest.mark.parametrize("side", ["client", "server"])
def test_exception_in_connection_made(loop, side):
    class Bad(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            raise ZeroDivisionError("connection_made")

    async def main():
        calls = handler_log(loop)
        sside = ServerSide(Bad if side == "server" else Echo)
        srv = await loop.create_server(sside, "127.0.0.1", 0)
        try:
            # As asyncio: connection_made is a plain callback;
            # create_connection still succeeds.
            tr, proto = await loop.create_connection(
                Bad if side == "client" else Recorder,
                "127.0.0.1", server_port(srv))
            sp = await sside.first()
            await wait_until(lambda: calls, 5, "exception handler call")
            assert len(calls) == 1
            assert isinstance(calls[0]["exception"], ZeroDivisionError)
            assert calls[0]["message"].startswith("Exception in callback")
            # The transport is not closed: data still flows both ways.
            bad = proto if side == "client" else sp
            assert not bad.transport.is_closing()
            tr.write(b"ping")
            await wait_until(lambda: bytes(sp.data) == b"ping")
            if side == "server":
                sp.transport.write(b"pong")
                await wait_until(lambda: bytes(proto.data) == b"pong")
            else:
                await wait_until(lambda: bytes(proto.data) == b"ping")
            tr.close()
            await asyncio.wait_for(proto.lost, 5)
            await asyncio.wait_for(sp.lost, 5)
        finally:
            await close_server(srv)

    run(loop, main())


@pytest.mark.parametrize("side", ["client", "server"])
def test_exception_in_connection_lost(loop, side):
    class Bad(Recorder):
        def connection_lost(self, exc):
            super().connection_lost(exc)
            raise ZeroDivisionError("connection_lost")

    async def main():
        calls = handler_log(loop)
        sside = ServerSide(Bad if side == "server" else Echo)
        srv = await loop.create_server(sside, "127.0.0.1", 0)
        try:
            tr, proto = await loop.create_connection(
                Bad if side == "client" else Recorder,
                "127.0.0.1", server_port(srv))
            sp = await sside.first()
            bad = proto if side == "client" else sp
            fd = bad.transport.get_extra_info("socket").fileno()
            st = os.fstat(fd)
            tr.close()
            await asyncio.wait_for(bad.lost, 5)
            await wait_until(lambda: calls, 5, "exception handler call")
            await asyncio.sleep(0.02)
            assert len(calls) == 1
            assert isinstance(calls[0]["exception"], ZeroDivisionError)
            assert calls[0]["message"].startswith("Exception in callback")
            # The socket is closed all the same.
            await wait_until(
                lambda: not fd_is_open(fd) or not same_file(fd, st),
                5, "socket closed")
            # The loop carries on: a new connection echoes.
            tr2, p2 = await loop.create_connection(
                Recorder, "127.0.0.1", server_port(srv))
            tr2.write(b"again")
            if side == "client":
                assert await p2.wait_bytes(5) == b"again"
            tr2.close()
        finally:
            await close_server(srv)

    run(loop, main())


def test_exception_in_error_received(loop):
    class Bad(asyncio.DatagramProtocol):
        def __init__(self):
            self.errors = []
            self.datagrams = []

        def error_received(self, exc):
            self.errors.append(exc)
            raise ZeroDivisionError("error_received")

        def datagram_received(self, data, addr):
            self.datagrams.append(data)

    async def main():
        calls = handler_log(loop)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        tr, proto = await loop.create_datagram_endpoint(
            Bad, remote_addr=("127.0.0.1", closed_port))
        try:
            tr.sendto(b"anyone?")       # ICMP port unreachable comes back
            await wait_until(lambda: calls, 5, "exception handler call")
            assert isinstance(proto.errors[0], ConnectionRefusedError)
            assert isinstance(calls[0]["exception"], ZeroDivisionError)
            # (The context's message and keys differ: asyncio's is
            # "Exception in callback _SelectorDatagramTransport._read_ready()"
            # with the handle, uvcore's names the protocol and transport.)
            assert calls[0]["message"].startswith("Exception in")
            # As in asyncio, the endpoint stays open and usable.
            assert not tr.is_closing()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind(("127.0.0.1", closed_port))
                tr.sendto(b"now")
                assert peer.recvfrom(100)[0] == b"now"
        finally:
            tr.close()
            await asyncio.sleep(0.01)

    run(loop, main())


@pytest.mark.parametrize("where", ["data_received", "eof_received"])
def test_exception_in_read_pipe_protocol(request, impl, loop, where):

    class Bad(Recorder):
        def data_received(self, data):
            super().data_received(data)
            if where == "data_received" and data == b"boom":
                raise ZeroDivisionError(where)

        def eof_received(self):
            super().eof_received()
            if where == "eof_received":
                raise ZeroDivisionError(where)

    async def main():
        calls = handler_log(loop)
        r, w = os.pipe()
        try:
            tr, proto = await loop.connect_read_pipe(
                Bad, open(r, "rb", buffering=0))
            os.write(w, b"boom")
            await wait_until(lambda: proto.data, 5)
            await asyncio.sleep(0.02)
            os.write(w, b"next")        # EPIPE if the pipe was closed
            await wait_until(lambda: proto.data == b"boomnext", 5)
            os.close(w)
            w = None
            exc = await asyncio.wait_for(proto.lost, 5)
            assert exc is None
            assert [type(c["exception"]) for c in calls] == [ZeroDivisionError]
            assert calls[0]["message"].startswith("Exception in callback")
            assert proto.events == ["made", "data", "eof", "lost"]
        finally:
            if w is not None:
                os.close(w)

    run(loop, main())


def test_keyboard_interrupt_from_data_received(loop):
    class Interrupting(Echo):
        raised = False

        def data_received(self, data):
            if not Interrupting.raised:
                Interrupting.raised = True
                raise KeyboardInterrupt
            super().data_received(data)

    async def setup():
        side = ServerSide(Interrupting)
        srv = await loop.create_server(side, "127.0.0.1", 0)
        tr, proto = await loop.create_connection(
            Recorder, "127.0.0.1", server_port(srv))
        return srv, side, tr, proto

    calls = handler_log(loop)
    srv, side, tr, proto = run(loop, setup())
    tr.write(b"first")
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(asyncio.sleep(5))
    assert not loop.is_running()
    assert calls == []
    # As asyncio: the interrupted transport is left open, the loop runs
    # again and the connection goes on.
    sp = side.protocols[0]
    assert not sp.transport.is_closing()
    tr.write(b"second")
    assert run(loop, proto.wait_bytes(6)) == b"second"
    tr.close()
    run(loop, asyncio.wait_for(proto.lost, 5))
    run(loop, close_server(srv))
    loop.close()
    assert loop.is_closed()


# ---------------------------------------------------------------------------
# Subprocess protocol callbacks that raise


@pytest.mark.parametrize("where", [
    "connection_made", "pipe_data_received", "pipe_connection_lost",
    "process_exited", "connection_lost"])
def test_exception_in_subprocess_protocol_callback(loop, where):
    events = []

    class Bad(asyncio.SubprocessProtocol):
        def __init__(self):
            self.lost = loop.create_future()

        def connection_made(self, transport):
            events.append("made")
            if where == "connection_made":
                raise ZeroDivisionError(where)

        def pipe_data_received(self, fd, data):
            events.append(("data", fd, data))
            if where == "pipe_data_received":
                raise ZeroDivisionError(where)

        def pipe_connection_lost(self, fd, exc):
            events.append(("pipe_lost", fd))
            if where == "pipe_connection_lost":
                raise ZeroDivisionError(where)

        def process_exited(self):
            events.append("exited")
            if where == "process_exited":
                raise ZeroDivisionError(where)

        def connection_lost(self, exc):
            events.append("lost")
            self.lost.set_result(exc)
            if where == "connection_lost":
                raise ZeroDivisionError(where)

    async def main():
        calls = []
        loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
        tr, proto = await loop.subprocess_exec(
            Bad, sys.executable, "-c", "import sys; sys.stdout.write("
            "sys.stdin.read()[::-1])", stderr=subprocess.DEVNULL)
        try:
            tr.get_pipe_transport(0).write(b"hello")
            tr.get_pipe_transport(0).close()
            assert await asyncio.wait_for(asyncio.shield(proto.lost), 10) \
                is None
            await asyncio.sleep(0.02)
            assert tr.get_returncode() == 0
        finally:
            tr.close()
        # Every raise reached the handler (pipe_connection_lost raises for
        # stdin and stdout), nothing else did, and the protocol saw it all.
        n = 2 if where == "pipe_connection_lost" else 1
        assert [type(c.get("exception")) for c in calls] == \
            [ZeroDivisionError] * n, calls
        assert all(c["message"].startswith("Exception in callback")
                   for c in calls)
        assert events[0] == "made" and events[-1] == "lost"
        assert events.count("exited") == 1
        assert ("data", 1, b"olleh") in events
        assert {("pipe_lost", 0), ("pipe_lost", 1)} <= set(events)
        # The loop goes on.
        assert await loop.run_in_executor(None, sum, [1, 2]) == 3

    run(loop, main(), timeout=20)
