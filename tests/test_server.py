"""The Server object returned by create_server / create_unix_server:
sockets, serving state, serve_forever, close / wait_closed with live
clients, close_clients / abort_clients, async with, reuse_port, and an
accept loop that survives running out of file descriptors."""

import asyncio
import errno
import inspect
import select
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from _net_helpers import (
    Echo, Recorder, ServerSide, close_server, close_transport, pattern,
    requires_linux, requires_unix, run, server_port, spin,
)

pytestmark = pytest.mark.timeout(30)

HAS_CLIENT_CONTROL = hasattr(asyncio.base_events.Server, "close_clients")


def _stdlib_wait_closed_waits_for_clients():
    """3.12.1+: wait_closed() after close() waits for the connections to go;
    3.11 and before return at once once the server is closed."""
    src = inspect.getsource(asyncio.base_events.Server.wait_closed)
    return "self._sockets is None or" not in src


WAIT_CLOSED_WAITS = _stdlib_wait_closed_waits_for_clients()


async def _connect(loop, server, proto=Recorder):
    return await loop.create_connection(proto, "127.0.0.1",
                                        server_port(server))


async def _echo_check(tr, proto, payload):
    start = len(proto.data)
    tr.write(payload)
    data = await proto.wait_bytes(start + len(payload))
    assert data[start:] == payload


# ---------------------------------------------------------------------------
# Basics


def test_server_type_loop_and_sockets(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        try:
            assert isinstance(server, asyncio.AbstractServer)
            assert server.get_loop() is loop
            assert server.is_serving()
            socks = server.sockets
            assert type(socks) is tuple and len(socks) == 1
            assert socks[0].family == socket.AF_INET
            assert socks[0].getsockname()[0] == "127.0.0.1"
            # A new tuple each time, same sockets.
            assert server.sockets == socks or [
                s.fileno() for s in server.sockets] == [
                s.fileno() for s in socks]
        finally:
            await close_server(server)
        assert not server.is_serving()
        assert server.sockets == ()

    run(loop, main())


@requires_unix
def test_unix_server_type(loop, tmp_path):
    async def main():
        server = await loop.create_unix_server(Echo, str(tmp_path / "s"))
        try:
            assert isinstance(server, asyncio.AbstractServer)
            assert server.get_loop() is loop
            assert server.is_serving()
            assert type(server.sockets) is tuple
            assert server.sockets[0].family == socket.AF_UNIX
        finally:
            await close_server(server)
        assert server.sockets == ()

    run(loop, main())


def test_close_is_idempotent(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        server.close()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        await asyncio.wait_for(server.wait_closed(), 5)
        assert not server.is_serving()

    run(loop, main())


def test_close_stops_listening_and_refuses_new_connections(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server_port(server)
        await close_server(server)
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(Recorder, "127.0.0.1", port)

    run(loop, main())


def test_close_closes_every_listening_socket(loop):
    async def main():
        server = await loop.create_server(
            Echo, ["127.0.0.1", "127.0.0.2"], 0)
        ports = [s.getsockname() for s in server.sockets]
        assert len(ports) == 2
        await close_server(server)
        for host, port in ports:
            with pytest.raises(ConnectionRefusedError):
                await loop.create_connection(Recorder, host, port)

    run(loop, main())


def test_async_context_manager(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          start_serving=False)
        async with server as entered:
            assert entered is server
            # __aenter__ does not start serving by itself.
            assert not server.is_serving()
            await server.start_serving()
            tr, proto = await _connect(loop, server)
            await _echo_check(tr, proto, b"ctx")
            await close_transport(tr, proto)
        assert not server.is_serving()
        assert server.sockets == ()

    run(loop, main())


# ---------------------------------------------------------------------------
# start_serving / serve_forever


def test_start_serving_false(loop):
    async def main():
        side = ServerSide(Echo)
        server = await loop.create_server(side, "127.0.0.1", 0,
                                          start_serving=False)
        port = server_port(server)
        try:
            assert not server.is_serving()
            assert len(server.sockets) == 1
            # The stdlib does not even listen() before serving starts.
            with pytest.raises(ConnectionRefusedError):
                await loop.create_connection(Recorder, "127.0.0.1", port)
            assert side.protocols == []
            await server.start_serving()
            assert server.is_serving()
            await server.start_serving()          # idempotent
            assert server.is_serving()
            tr, proto = await _connect(loop, server)
            await _echo_check(tr, proto, b"serving")
            await close_transport(tr, proto)
            assert len(side.protocols) == 1
        finally:
            await close_server(server)

    run(loop, main())


def test_serve_forever_starts_serving_and_cancel_closes(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0,
                                          start_serving=False)
        port = server_port(server)
        task = asyncio.ensure_future(server.serve_forever())
        await spin()
        assert server.is_serving()
        tr, proto = await _connect(loop, server)
        await _echo_check(tr, proto, b"forever")
        await close_transport(tr, proto)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        assert server.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(Recorder, "127.0.0.1", port)

    run(loop, main())


def test_close_ends_serve_forever_as_cancelled(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        await spin()
        assert not task.done()
        server.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled()
        assert not server.is_serving()

    run(loop, main())


def test_serve_forever_twice_is_refused(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        await spin()
        try:
            with pytest.raises(RuntimeError, match="is already being awaited "
                                                   "on serve_forever"):
                await server.serve_forever()
            assert not task.done()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(loop, main())


def test_serve_forever_on_closed_server_is_refused(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        await close_server(server)
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    run(loop, main())


# ---------------------------------------------------------------------------
# Closing with live clients


def test_close_keeps_existing_connections(loop):
    async def main():
        side = ServerSide(Echo)
        server = await loop.create_server(side, "127.0.0.1", 0)
        tr, proto = await _connect(loop, server)
        await _echo_check(tr, proto, b"before")
        server.close()
        assert not server.is_serving()
        await spin()
        # The accepted connection is not touched by Server.close().
        await _echo_check(tr, proto, b"after")
        assert not side.protocols[0].lost.done()
        await close_transport(tr, proto)
        await asyncio.wait_for(side.protocols[0].lost, 5)
        await asyncio.wait_for(server.wait_closed(), 5)

    run(loop, main())


def test_wait_closed_before_close_waits_for_close_and_clients(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, proto = await _connect(loop, server)
        await _echo_check(tr, proto, b"x")
        waiter = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.05)
        assert not waiter.done()             # still serving
        server.close()
        await asyncio.sleep(0.05)
        assert not waiter.done()             # a client is still connected
        await close_transport(tr, proto)
        await asyncio.wait_for(waiter, 5)

    run(loop, main())


def test_wait_closed_after_close_with_live_client(loop):
    """3.12.1+ waits for the remaining connections; 3.10/3.11 return at
    once (documented stdlib history)."""

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, proto = await _connect(loop, server)
        await _echo_check(tr, proto, b"x")
        server.close()
        waiter = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.05)
        assert waiter.done() is (not WAIT_CLOSED_WAITS)
        await close_transport(tr, proto)
        await asyncio.wait_for(waiter, 5)

    run(loop, main())


def test_wait_closed_with_no_clients_returns_after_close(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, proto = await _connect(loop, server)
        await close_transport(tr, proto)
        await asyncio.sleep(0.05)
        server.close()
        await asyncio.wait_for(server.wait_closed(), 2)

    run(loop, main())


@pytest.mark.skipif(not HAS_CLIENT_CONTROL,
                    reason="close_clients()/abort_clients() are Python 3.13+")
def test_close_clients_flushes_and_closes(loop):
    size = 8 * 1024 * 1024
    blob = pattern(size)

    async def main():
        side = ServerSide(Recorder)
        server = await loop.create_server(side, "127.0.0.1", 0)
        conns = [await _connect(loop, server) for _ in range(3)]
        sps = await side.wait_count(3)
        conns[0][0].pause_reading()          # lets data pile up server-side
        sps[0].transport.write(blob)
        server.close()
        server.close_clients()
        for sp in sps:
            assert sp.transport.is_closing()
        conns[0][0].resume_reading()
        for tr, proto in conns:
            await asyncio.wait_for(proto.lost, 10)
            assert proto.lost_exc is None
            assert "eof" in proto.events
        assert conns[0][1].data == blob       # pending data was flushed
        await asyncio.wait_for(server.wait_closed(), 5)

    run(loop, main(), timeout=20)


@pytest.mark.skipif(not HAS_CLIENT_CONTROL,
                    reason="close_clients()/abort_clients() are Python 3.13+")
def test_abort_clients_drops_pending_data(loop):
    size = 32 * 1024 * 1024
    blob = pattern(size)

    async def main():
        side = ServerSide(Recorder)
        server = await loop.create_server(side, "127.0.0.1", 0)
        conns = [await _connect(loop, server) for _ in range(2)]
        sps = await side.wait_count(2)
        conns[0][0].pause_reading()
        sps[0].transport.write(blob)
        assert sps[0].transport.get_write_buffer_size() > 0
        server.close()
        server.abort_clients()
        for sp in sps:
            await asyncio.wait_for(sp.lost, 5)
            assert sp.lost_exc is None
        conns[0][0].resume_reading()
        for tr, proto in conns:
            await asyncio.wait_for(proto.lost, 10)
        assert len(conns[0][1].data) < size
        assert bytes(conns[0][1].data) == blob[:len(conns[0][1].data)]
        await asyncio.wait_for(server.wait_closed(), 5)

    run(loop, main(), timeout=20)


@pytest.mark.skipif(not HAS_CLIENT_CONTROL,
                    reason="close_clients()/abort_clients() are Python 3.13+")
def test_close_clients_on_open_server_keeps_serving(loop):
    async def main():
        side = ServerSide(Echo)
        server = await loop.create_server(side, "127.0.0.1", 0)
        tr, proto = await _connect(loop, server)
        await side.first()
        server.close_clients()
        await asyncio.wait_for(proto.lost, 5)
        assert server.is_serving()
        tr2, proto2 = await _connect(loop, server)
        await _echo_check(tr2, proto2, b"still here")
        await close_transport(tr2, proto2)
        await close_server(server)

    run(loop, main())


# ---------------------------------------------------------------------------
# reuse_port


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"),
                    reason="no SO_REUSEPORT")
def test_reuse_port_two_servers_share_a_port(loop):
    async def main():
        side1, side2 = ServerSide(Echo), ServerSide(Echo)
        s1 = await loop.create_server(side1, "127.0.0.1", 0, reuse_port=True)
        port = server_port(s1)
        s2 = await loop.create_server(side2, "127.0.0.1", port,
                                      reuse_port=True)
        try:
            assert server_port(s2) == port
            conns = []
            for i in range(64):
                tr, proto = await loop.create_connection(
                    Recorder, "127.0.0.1", port)
                conns.append((tr, proto))
                await _echo_check(tr, proto, b"%d" % i)
                if side1.protocols and side2.protocols:
                    break
            for tr, proto in conns:
                await close_transport(tr, proto)
            assert side1.protocols and side2.protocols, (
                "the kernel never spread connections over both servers")
            assert len(side1.protocols) + len(side2.protocols) == len(conns)
        finally:
            await close_server(s1)
            await close_server(s2)

    run(loop, main())


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"),
                    reason="no SO_REUSEPORT")
def test_without_reuse_port_second_bind_fails(loop):
    async def main():
        s1 = await loop.create_server(Echo, "127.0.0.1", 0, reuse_port=True)
        port = server_port(s1)
        try:
            with pytest.raises(OSError) as ei:
                await loop.create_server(Echo, "127.0.0.1", port)
            assert ei.value.errno == errno.EADDRINUSE
        finally:
            await close_server(s1)

    run(loop, main())


# ---------------------------------------------------------------------------
# Accept loop under descriptor exhaustion (child process)


_EMFILE_CHILD = """
import os, resource, socket, sys

FREE_FDS = {free_fds}

class Echo(asyncio.Protocol):
    live = 0
    peak = 0

    def connection_made(self, tr):
        self.tr = tr
        Echo.live += 1
        Echo.peak = max(Echo.peak, Echo.live)

    def data_received(self, data):
        self.tr.write(data)

    def connection_lost(self, exc):
        Echo.live -= 1

handler_messages = []

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(
        lambda lp, ctx: handler_messages.append(ctx.get("message")))
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=128)
    await asyncio.sleep(0.05)
    used = {{int(n) for n in os.listdir("/proc/self/fd")}}
    free = [n for n in range(100000) if n not in used][:FREE_FDS]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (free[-1] + 1, hard))
    print(server.sockets[0].getsockname()[1], flush=True)
    done = loop.create_future()

    def on_stdin():
        if not os.read(0, 100):
            loop.remove_reader(0)
            done.set_result(None)

    loop.add_reader(0, on_stdin)
    await asyncio.wait_for(done, 60)
    print("peak", Echo.peak, flush=True)
    print("handler", repr(handler_messages), flush=True)
    server.close()

run(main())
"""


@requires_linux
@pytest.mark.timeout(60)
def test_accept_loop_survives_emfile(impl):
    clients_total = 12
    free_fds = 4
    script = impl.child_prelude() + textwrap.dedent(_EMFILE_CHILD).format(
        free_fds=free_fds)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=impl.child_env())
    clients = {}
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), (line, proc.stderr.read())
        port = int(line)
        for i in range(clients_total):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(b"%02d" % i)
            clients[c] = i
        echoed = []
        dropped = []
        deadline = time.monotonic() + 30
        while clients and time.monotonic() < deadline:
            ready, _, _ = select.select(list(clients), [], [], 0.5)
            for c in ready:
                i = clients.pop(c)
                try:
                    data = c.recv(16)
                except OSError as exc:
                    data = exc
                if data == b"%02d" % i:
                    echoed.append(i)
                else:
                    dropped.append((i, data))
                c.close()          # relieves the descriptor pressure
        assert dropped == [], f"connections dropped by the server: {dropped}"
        assert not clients, f"never served: {sorted(clients.values())}"
        assert sorted(echoed) == list(range(clients_total))
        # Still serving afterwards.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"ok")
            assert c.recv(16) == b"ok"
        out, err = proc.communicate(b"", timeout=20)
        assert proc.returncode == 0, err
        lines = dict(ln.split(" ", 1) for ln in out.decode().splitlines())
        # The descriptor limit really was in the way.
        assert int(lines["peak"]) < clients_total, out
    finally:
        for c in clients:
            c.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
