"""The ``websockets`` library (server and client) and ``httpx`` (client
against a raw asyncio HTTP server and against uvicorn embedded in-process)
running on the loop under test."""

import asyncio
import logging
import os
import socket
import struct

import httpx
import pytest

from _helpers import run_coro
from _tls_helpers import certs  # noqa: F401  (fixture)

pytestmark = [pytest.mark.timeout(60)]

MiB = 1024 * 1024


def collect_loop_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


def ws_port(server):
    return next(iter(server.sockets)).getsockname()[1]


# ---------------------------------------------------------------------------
# websockets server + client


def test_ws_echo_text_and_binary(loop):
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    errors = collect_loop_errors(loop)

    async def echo(ws):
        async for msg in ws:
            await ws.send(msg)

    async def main():
        async with serve(echo, "127.0.0.1", 0, max_size=4 * MiB) as server:
            url = f"ws://127.0.0.1:{ws_port(server)}"
            async with connect(url, max_size=4 * MiB) as ws:
                for text in ["hello", "", "ünïcødé ✓", "x" * 100000]:
                    await ws.send(text)
                    got = await ws.recv()
                    assert isinstance(got, str)
                    assert got == text
                blob = os.urandom(MiB)
                await ws.send(blob)
                got = await ws.recv()
                assert isinstance(got, bytes)
                assert got == blob
                # Several 1 MiB messages in flight at once.
                blobs = [os.urandom(MiB) for _ in range(4)]
                for b in blobs:
                    await ws.send(b)
                for b in blobs:
                    assert await ws.recv() == b
                # Fragmented message.
                await ws.send([b"ab", b"cd", b"ef"])
                assert await ws.recv() == b"abcdef"
            assert ws.close_code == 1000

    run_coro(loop, main, timeout=30)
    assert errors == []


def test_ws_tls_echo(loop, certs):
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    errors = collect_loop_errors(loop)

    async def echo(ws):
        async for msg in ws:
            await ws.send(msg)

    async def main():
        async with serve(echo, "127.0.0.1", 0, ssl=certs.server_ctx(),
                         max_size=2 * MiB) as server:
            url = f"wss://localhost:{ws_port(server)}"
            async with connect(url, ssl=certs.client_ctx(),
                               max_size=2 * MiB) as ws:
                assert ws.transport.get_extra_info("ssl_object") is not None
                await ws.send("secure text")
                assert await ws.recv() == "secure text"
                blob = os.urandom(MiB)
                await ws.send(blob)
                assert await ws.recv() == blob
            assert ws.close_code == 1000

    run_coro(loop, main, timeout=30)
    assert errors == []


def test_ws_50_concurrent_clients(loop):
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    errors = collect_loop_errors(loop)

    async def echo(ws):
        async for msg in ws:
            await ws.send(msg)

    async def main():
        async with serve(echo, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{ws_port(server)}"

            async def client(i):
                async with connect(url) as ws:
                    for j in range(10):
                        await ws.send(f"{i}:{j}")
                        assert await ws.recv() == f"{i}:{j}"
                return ws.close_code

            codes = await asyncio.gather(*(client(i) for i in range(50)))
            assert codes == [1000] * 50

    run_coro(loop, main, timeout=30)
    assert errors == []


def test_ws_ping_pong(loop):
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    errors = collect_loop_errors(loop)
    server_pongs = []

    async def handler(ws):
        # Server-initiated ping, answered by the client automatically.
        waiter = await ws.ping(b"from-server")
        latency = await asyncio.wait_for(waiter, 10)
        server_pongs.append(latency)
        await ws.send("pinged")
        await ws.wait_closed()

    async def main():
        async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            url = f"ws://127.0.0.1:{ws_port(server)}"
            async with connect(url, ping_interval=None) as ws:
                assert await asyncio.wait_for(ws.recv(), 10) == "pinged"
                for i in range(5):
                    waiter = await ws.ping(struct.pack("!I", i))
                    latency = await asyncio.wait_for(waiter, 10)
                    assert latency >= 0
                # Automatic keepalive pings at a short interval.
            async with connect(url, ping_interval=0.05,
                               ping_timeout=5) as ws:
                assert await asyncio.wait_for(ws.recv(), 10) == "pinged"
                await asyncio.sleep(0.3)
                assert ws.latency >= 0
                assert ws.state.name == "OPEN"

    run_coro(loop, main, timeout=30)
    assert len(server_pongs) == 2
    assert errors == []


def test_ws_close_codes(loop):
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import (
        ConnectionClosedError, ConnectionClosedOK,
    )

    errors = collect_loop_errors(loop)
    seen_by_server = []

    async def handler(ws):
        path = ws.request.path
        if path == "/server-closes":
            await ws.close(4001, "bye from server")
            return
        if path == "/server-normal":
            await ws.close()
            return
        try:
            await ws.recv()
        except (ConnectionClosedOK, ConnectionClosedError) as exc:
            rcvd = exc.rcvd
            seen_by_server.append((ws.request.path, type(exc).__name__,
                                   rcvd.code if rcvd else None,
                                   rcvd.reason if rcvd else None))

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            base = f"ws://127.0.0.1:{ws_port(server)}"

            async with connect(base + "/server-closes") as ws:
                with pytest.raises(ConnectionClosedError) as info:
                    await asyncio.wait_for(ws.recv(), 10)
                assert info.value.rcvd.code == 4001
                assert info.value.rcvd.reason == "bye from server"
            assert ws.close_code == 4001
            assert ws.close_reason == "bye from server"

            async with connect(base + "/server-normal") as ws:
                with pytest.raises(ConnectionClosedOK):
                    await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1000

            async with connect(base + "/client-closes") as ws:
                await ws.close(4002, "bye from client")
            assert ws.close_code == 4002

            async with connect(base + "/client-normal") as ws:
                pass

            # Abrupt client disconnect: no close frame -> 1006 on server.
            ws = await connect(base + "/client-aborts")
            ws.transport.abort()
            await asyncio.wait_for(ws.wait_closed(), 10)

            for _ in range(200):
                if len(seen_by_server) == 3:
                    break
                await asyncio.sleep(0.01)

    run_coro(loop, main, timeout=30)
    assert sorted(seen_by_server) == [
        ("/client-aborts", "ConnectionClosedError", None, None),
        ("/client-closes", "ConnectionClosedError", 4002, "bye from client"),
        ("/client-normal", "ConnectionClosedOK", 1000, ""),
    ], seen_by_server
    assert errors == []


def test_ws_server_sends_after_client_disconnect(loop, caplog):
    """Client vanishes (RST); the handler keeps calling send(): websockets
    raises ConnectionClosed, nothing crashes, the loop reports no error."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    errors = collect_loop_errors(loop)
    outcome = []

    async def handler(ws):
        await ws.send("hi")
        sent = 0
        try:
            for _ in range(10000):
                await ws.send(b"z" * 4096)
                sent += 1
                await asyncio.sleep(0.001)
        except ConnectionClosed as exc:
            outcome.append(("closed", exc.rcvd is None))
        else:
            outcome.append(("no-error", sent))

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{ws_port(server)}"
            ws = await connect(url)
            assert await ws.recv() == "hi"
            # Reset the TCP connection under the client.
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            ws.transport.abort()
            for _ in range(1000):
                if outcome:
                    break
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR):
        run_coro(loop, main, timeout=30)
    assert outcome == [("closed", True)]
    assert errors == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        caplog.text


def test_stream_write_after_connection_reset(loop):
    """Raw streams: after the peer reset the connection, write() does not
    raise; drain() raises ConnectionResetError; close() is fine."""
    errors = collect_loop_errors(loop)
    result = {}

    async def main():
        finished = asyncio.get_running_loop().create_future()

        async def handler(reader, writer):
            try:
                try:
                    await reader.read(100)
                except ConnectionResetError:
                    result["read"] = "reset"
                else:
                    result["read"] = "eof"
                # Wait for the transport to be gone.
                for _ in range(100):
                    if writer.transport.is_closing():
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
                for _ in range(10):
                    writer.write(b"after reset")   # must not raise
                result["write"] = "ok"
                try:
                    await asyncio.wait_for(writer.drain(), 5)
                except ConnectionError as exc:
                    result["drain"] = type(exc).__name__
                else:
                    result["drain"] = "ok"
                writer.close()
                try:
                    await asyncio.wait_for(writer.wait_closed(), 5)
                except ConnectionError:
                    pass
            finally:
                finished.set_result(None)

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        await asyncio.sleep(0.05)
        s.close()   # RST
        await asyncio.wait_for(finished, 10)
        server.close()
        await server.wait_closed()

    run_coro(loop, main, timeout=20)
    assert result == {"read": "reset", "write": "ok",
                      "drain": "ConnectionResetError"}, result
    assert errors == []


# ---------------------------------------------------------------------------
# httpx against a raw asyncio HTTP server


async def _raw_http_handler(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = b""
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            payload = (f"{method} {path} ".encode() + body)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(payload)
                         + payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_httpx_against_raw_server_50_requests(loop):
    errors = collect_loop_errors(loop)
    connections = []

    async def handler(reader, writer):
        connections.append(writer.get_extra_info("peername"))
        await _raw_http_handler(reader, writer)

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:
                # 50 sequential requests on one keep-alive connection.
                for i in range(50):
                    r = await c.get(f"/seq/{i}")
                    assert r.status_code == 200
                    assert r.text == f"GET /seq/{i} "
                assert len(connections) == 1
                # 50 concurrent requests with bodies.
                rs = await asyncio.gather(*(
                    c.post(f"/c/{i}", content=b"b" * i) for i in range(50)))
                for i, r in enumerate(rs):
                    assert r.status_code == 200
                    assert r.content == f"POST /c/{i} ".encode() + b"b" * i
        finally:
            server.close()
            await server.wait_closed()

    run_coro(loop, main, timeout=30)
    assert errors == []


# ---------------------------------------------------------------------------
# httpx against uvicorn embedded in-process (Server.serve() as a task)


def _embedded_uvicorn(app):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning",
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config), sock


def test_httpx_against_embedded_uvicorn(loop, restore_signals):
    from integration._apps import app

    errors = collect_loop_errors(loop)
    server, sock = _embedded_uvicorn(app)
    port = sock.getsockname()[1]

    async def main():
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            assert server.started
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:
                r = await c.get("/loop")
                info = r.json()
                assert info["module"] == type(loop).__module__
                for i in range(50):
                    r = await c.get("/")
                    assert r.status_code == 200
                    assert r.text == "hello from starlette"
                rs = await asyncio.gather(*(
                    c.get("/slow", params={"i": i, "s": "0.01"})
                    for i in range(50)))
                assert [r.text for r in rs] == [f"slow {i}" for i in range(50)]
                blob = os.urandom(2 * MiB)
                r = await c.post("/echo", content=blob)
                assert r.content == blob
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)

    run_coro(loop, main, timeout=40)
    sock.close()
    assert errors == []


def test_embedded_uvicorn_shutdown_with_keepalive_client(loop,
                                                         restore_signals):
    """should_exit while an httpx keep-alive connection is open and idle:
    serve() returns in time and the client sees the connection closed."""
    from integration._apps import app

    errors = collect_loop_errors(loop)
    server, sock = _embedded_uvicorn(app)
    port = sock.getsockname()[1]

    async def main():
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            assert server.started
            async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
                assert (await c.get("/")).status_code == 200
                assert (await c.get("/")).status_code == 200
                server.should_exit = True
                t0 = loop.time()
                await asyncio.wait_for(asyncio.shield(task), 10)
                assert loop.time() - t0 < 5
                with pytest.raises(httpx.TransportError):
                    await c.get("/")
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)

    run_coro(loop, main, timeout=30)
    sock.close()
    assert errors == []
