"""Integration tests: aiohttp's web server and client on the loop under test.

Every scenario runs on the stdlib asyncio loop and on uvcore's loop with the
same expected outcome.  Only loopback (127.0.0.1) sockets are used.
"""

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from _net_helpers import run, wait_until  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]

MiB = 1024 * 1024


# ---------------------------------------------------------------------------
# Helpers


def _fd_count():
    return len(os.listdir("/proc/self/fd"))


def _socket_fds():
    """The (fd, 'socket:[inode]') pairs of this process's sockets."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add((int(name), target))
    return out


requires_proc_fd = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")


@contextlib.asynccontextmanager
async def serve(app):
    """Run ``app`` on 127.0.0.1:<ephemeral>; yield its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(runner.cleanup(), 10)


def _pattern(n):
    """Deterministic, non-repeating-looking payload of ``n`` bytes."""
    block = hashlib.sha256(b"uvcore").digest() * 2048   # 64 KiB
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]


def _check_loop(loop, impl):
    """The code under test really runs on the impl's loop."""
    running = asyncio.get_running_loop()
    assert running is loop
    if impl.name == "uvcore":
        assert isinstance(running, impl.module.Loop) or \
            type(running).__module__.startswith("uvcore")
    else:
        assert type(running).__module__.startswith("asyncio")


# ---------------------------------------------------------------------------
# Plain requests


def test_get_post_json(loop, impl):
    async def hello(request):
        return web.json_response({"hello": request.query.get("name", "?"),
                                  "method": request.method})

    async def echo(request):
        body = await request.json()
        return web.json_response({"got": body, "n": len(body["items"])},
                                 status=201)

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)

    async def main():
        _check_loop(loop, impl)
        async with serve(app) as url:
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/hello",
                                       params={"name": "uv"}) as resp:
                    assert resp.status == 200
                    assert resp.content_type == "application/json"
                    assert await resp.json() == {"hello": "uv",
                                                 "method": "GET"}
                payload = {"items": list(range(1000)), "s": "é" * 100}
                async with session.post(url + "/echo", json=payload) as resp:
                    assert resp.status == 201
                    assert await resp.json() == {"got": payload, "n": 1000}
                # Keep-alive: many sequential requests over the pool.
                for i in range(50):
                    async with session.get(url + "/hello",
                                           params={"name": str(i)}) as resp:
                        assert (await resp.json())["hello"] == str(i)
                # And concurrent ones.
                async def one(i):
                    async with session.post(url + "/echo",
                                            json={"items": [i] * i}) as r:
                        return (await r.json())["n"]
                got = await asyncio.gather(*(one(i) for i in range(40)))
                assert got == list(range(40))
                async with session.get(url + "/missing") as resp:
                    assert resp.status == 404

    run(loop, main(), timeout=30)


# ---------------------------------------------------------------------------
# Static file: loop.sendfile


def test_static_file_sendfile(loop, impl, tmp_path, monkeypatch):
    data = os.urandom(4 * MiB)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    # Record any fallback: aiohttp's own (when loop.sendfile raises
    # NotImplementedError) and the loop's (when native sendfile is not
    # available for the transport).
    fallbacks = []
    orig_aiohttp_fallback = web.FileResponse._sendfile_fallback

    async def aiohttp_fallback(self, *args, **kwargs):
        fallbacks.append("aiohttp")
        return await orig_aiohttp_fallback(self, *args, **kwargs)

    monkeypatch.setattr(web.FileResponse, "_sendfile_fallback",
                        aiohttp_fallback)

    orig_loop_fallback = type(loop)._sendfile_fallback

    async def loop_fallback(self, *args, **kwargs):
        fallbacks.append("loop")
        return await orig_loop_fallback(self, *args, **kwargs)

    monkeypatch.setattr(type(loop), "_sendfile_fallback", loop_fallback)

    transports = []
    native_calls = []
    orig_native = type(loop)._sendfile_native

    async def native(self, transp, *args, **kwargs):
        native_calls.append(transp)
        return await orig_native(self, transp, *args, **kwargs)

    monkeypatch.setattr(type(loop), "_sendfile_native", native)

    async def static(request):
        transports.append(request.transport)
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/blob", static)

    async def main():
        async with serve(app) as url:
            async with aiohttp.ClientSession(
                    auto_decompress=False) as session:
                for _ in range(3):
                    async with session.get(url + "/blob") as resp:
                        assert resp.status == 200
                        assert resp.content_length == len(data)
                        assert "Content-Encoding" not in resp.headers
                        body = await resp.read()
                    assert len(body) == len(data)
                    assert body == data
                # A range request goes through sendfile with an offset.
                async with session.get(
                        url + "/blob",
                        headers={"Range": "bytes=1000-1999999"}) as resp:
                    assert resp.status == 206
                    assert await resp.read() == data[1000:2000000]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(loop, main(), timeout=30)

    assert fallbacks == []
    assert len(native_calls) == 4
    assert transports and all(
        getattr(t, "_sendfile_compatible", None) is not None
        for t in transports)
    from asyncio import constants
    for t in transports:
        assert t._sendfile_compatible == constants._SendfileMode.TRY_NATIVE
    assert not [w for w in caught if "sendfile" in str(w.message).lower()]


# ---------------------------------------------------------------------------
# Streaming upload and download


def test_streaming_upload(loop, impl):
    total = 8 * MiB
    chunk = 64 * 1024
    data = _pattern(total)
    expected = hashlib.sha256(data).hexdigest()

    async def upload(request):
        h = hashlib.sha256()
        n = 0
        chunks = 0
        async for part in request.content.iter_chunked(32 * 1024):
            h.update(part)
            n += len(part)
            chunks += 1
        return web.json_response({"sha256": h.hexdigest(), "n": n,
                                  "chunks": chunks})

    app = web.Application(client_max_size=total * 2)
    app.router.add_post("/upload", upload)

    async def body():
        for i in range(0, total, chunk):
            yield data[i:i + chunk]
            if i % (16 * chunk) == 0:
                await asyncio.sleep(0)

    async def main():
        async with serve(app) as url:
            async with aiohttp.ClientSession() as session:
                async with session.post(url + "/upload", data=body()) as resp:
                    assert resp.status == 200
                    got = await resp.json()
        assert got["n"] == total
        assert got["sha256"] == expected
        assert got["chunks"] >= total // (32 * 1024)

    run(loop, main(), timeout=40)


def test_streaming_download(loop, impl):
    total = 8 * MiB
    data = _pattern(total)
    expected = hashlib.sha256(data).hexdigest()

    async def download(request):
        resp = web.StreamResponse()
        resp.content_type = "application/octet-stream"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        step = 100_000          # not a power of two on purpose
        for i in range(0, total, step):
            await resp.write(data[i:i + step])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/download", download)

    async def main():
        async with serve(app) as url:
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/download") as resp:
                    assert resp.status == 200
                    assert resp.headers.get("Transfer-Encoding") == "chunked"
                    h = hashlib.sha256()
                    n = 0
                    async for part in resp.content.iter_chunked(50_000):
                        assert 0 < len(part) <= 50_000
                        h.update(part)
                        n += len(part)
        assert n == total
        assert h.hexdigest() == expected

    run(loop, main(), timeout=40)


# ---------------------------------------------------------------------------
# WebSockets


def test_websocket_echo(loop, impl):
    server_closed = []

    async def ws_handler(request):
        ws = web.WebSocketResponse(max_msg_size=4 * MiB)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close":
                    await ws.close(code=4000, message=b"bye")
                else:
                    await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        server_closed.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    blob = os.urandom(MiB)

    async def main():
        async with serve(app) as url:
            async with aiohttp.ClientSession() as session:
                # Client-initiated close.
                async with session.ws_connect(
                        url + "/ws", max_msg_size=4 * MiB) as ws:
                    await ws.send_str("hello")
                    msg = await asyncio.wait_for(ws.receive(), 5)
                    assert msg.type == aiohttp.WSMsgType.TEXT
                    assert msg.data == "echo:hello"
                    await ws.send_bytes(blob)
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    assert msg.type == aiohttp.WSMsgType.BINARY
                    assert msg.data == blob[::-1]
                    for i in range(100):
                        await ws.send_str(str(i))
                    for i in range(100):
                        msg = await asyncio.wait_for(ws.receive(), 5)
                        assert msg.data == f"echo:{i}"
                    await ws.close()
                    assert ws.closed
                    assert ws.close_code == aiohttp.WSCloseCode.OK
                await wait_until(lambda: len(server_closed) == 1,
                                 what="server side close")
                # Server-initiated close.
                async with session.ws_connect(url + "/ws") as ws:
                    await ws.send_str("close")
                    msg = await asyncio.wait_for(ws.receive(), 5)
                    assert msg.type == aiohttp.WSMsgType.CLOSE
                    assert msg.data == 4000
                    assert msg.extra == "bye"
                    msg = await asyncio.wait_for(ws.receive(), 5)
                    assert msg.type == aiohttp.WSMsgType.CLOSED
                    assert ws.closed
                    assert ws.close_code == 4000
                await wait_until(lambda: len(server_closed) == 2,
                                 what="second server side close")

    run(loop, main(), timeout=30)
    # The server's close_code is the code of the close frame it received:
    # the client's 1000 in both cases (aiohttp's behaviour, same on both).
    assert server_closed == [aiohttp.WSCloseCode.OK, aiohttp.WSCloseCode.OK]


# ---------------------------------------------------------------------------
# Client timeouts


@requires_proc_fd
def test_client_timeout_no_fd_leak(loop, impl):
    sleeping = []

    async def slow(request):
        sleeping.append(1)
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def fast(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)

    async def main():
        async with serve(app) as url:
            listening = _socket_fds()
            # Warm up with one request on a throwaway session first: libuv
            # opens its reserved EMFILE fd (/dev/null) when the loop's first
            # stream handle is made and keeps it until the loop closes,
            # which is not a leak.
            async with aiohttp.ClientSession() as warm:
                async with warm.get(url + "/fast") as resp:
                    assert await resp.text() == "ok"
            await wait_until(lambda: _socket_fds() == listening, timeout=5,
                             what="warm-up sockets closed")
            # Baseline: server listening, no client connection.
            baseline = _fd_count()
            errors = []
            session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=0.3))
            try:
                for _ in range(3):
                    t0 = time.monotonic()
                    with pytest.raises(asyncio.TimeoutError) as ei:
                        async with session.get(url + "/slow") as resp:
                            await resp.read()
                    elapsed = time.monotonic() - t0
                    assert 0.25 <= elapsed < 1.5, elapsed
                    errors.append(type(ei.value))
                # The server keeps serving (same session, new connection).
                async with session.get(url + "/fast") as resp:
                    assert resp.status == 200
                    assert await resp.text() == "ok"
                # And a per-request timeout override that is long enough.
                async with session.get(
                        url + "/slow",
                        timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    assert await resp.text() == "late"
            finally:
                await session.close()
            assert len(sleeping) == 4
            # The session's sockets (and the server's side of them) go.
            await wait_until(lambda: _fd_count() <= baseline, timeout=5,
                             what=f"fd count back to {baseline}")
            assert _socket_fds() == listening
            # On 3.14, the timeout is an aiohttp.ServerTimeoutError
            # (a subclass of asyncio.TimeoutError) or a plain
            # TimeoutError/ConnectionTimeoutError: the same on both loops.
            return errors

    errors = run(loop, main(), timeout=30)
    assert all(issubclass(e, asyncio.TimeoutError) for e in errors)


def test_client_timeout_error_type_same(impl):
    """The exception type raised by a total timeout is identical for both
    impls (asyncio.TimeoutError; on aiohttp 3.x ServerTimeoutError or
    ConnectionTimeoutError are subclasses)."""
    async def slow(request):
        await asyncio.sleep(2)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", slow)

    async def main():
        async with serve(app) as url:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=0.3)) as session:
                try:
                    async with session.get(url + "/slow") as resp:
                        await resp.read()
                except asyncio.TimeoutError as exc:
                    return type(exc).__name__, isinstance(
                        exc, aiohttp.ServerTimeoutError)
        return None

    async def bounded():
        return await asyncio.wait_for(main(), 20)

    got = impl.run(bounded())
    # Same outcome on both impls: an asyncio.TimeoutError, and the class
    # aiohttp picks only depends on where the timeout hit (here: not
    # during the connect), so it is not a ServerTimeoutError.
    assert got is not None
    assert got == ("TimeoutError", False)


# ---------------------------------------------------------------------------
# web.run_app in a child process


CHILD_SCRIPT = """
import asyncio, os, signal, sys
from aiohttp import web

async def hello(request):
    return web.Response(text="hello from " + type(
        asyncio.get_running_loop()).__module__)

async def on_shutdown(app):
    print("SHUTDOWN", flush=True)

async def on_cleanup(app):
    print("CLEANUP", flush=True)

def make_app():
    app = web.Application()
    app.router.add_get("/", hello)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app

import socket
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]

async def announce(app):
    print("READY", port, flush=True)

app = make_app()
app.on_startup.append(announce)
loop = new_loop()
asyncio.set_event_loop(loop)
web.run_app(app, sock=sock, loop=loop, print=None, handle_signals=True,
            shutdown_timeout=2)
print("EXITED", loop.is_closed(), flush=True)
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_run_app_child(impl, signame):
    """web.run_app(loop=<impl loop>) in a child; GET it; stop it by signal.

    The port is known before startup (run_app(sock=...)); on_startup prints
    READY once the app is starting, and the parent polls until it serves.
    """
    script = impl.child_prelude() + textwrap.dedent(CHILD_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=impl.child_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _readline_bounded(proc, 20)
        assert line.startswith("READY"), (line, proc.stderr.read()
                                          if proc.poll() is not None else "")
        port = int(line.split()[1])

        async def client():
            deadline = time.monotonic() + 10
            async with aiohttp.ClientSession() as session:
                while True:
                    try:
                        async with session.get(
                                f"http://127.0.0.1:{port}/") as resp:
                            return resp.status, await resp.text()
                    except aiohttp.ClientConnectionError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.05)

        async def bounded():
            return await asyncio.wait_for(client(), 15)

        status, text = asyncio.run(bounded())
        assert status == 200
        expected_mod = "uvcore" if impl.name == "uvcore" else "asyncio"
        assert text.startswith("hello from " + expected_mod), text

        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    # run_app turns SIGINT (KeyboardInterrupt) and SIGTERM (GracefulExit)
    # into a normal return: exit code 0, cleanup hooks ran, loop closed.
    assert proc.returncode == 0, (proc.returncode, out, err)
    assert "SHUTDOWN" in out and "CLEANUP" in out, out
    assert out.rstrip().endswith("EXITED True"), out
    assert "Traceback" not in err, err


def _readline_bounded(proc, timeout):
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"child printed nothing within {timeout} s")
        return proc.stdout.readline()
    finally:
        sel.close()
