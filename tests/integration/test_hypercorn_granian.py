"""hypercorn and granian through their embedding APIs, each serving an ASGI
app from a task on the loop under test."""

import asyncio
import socket
import urllib.request

import pytest

pytestmark = [pytest.mark.timeout(60)]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reply = type(asyncio.get_running_loop()).__module__.encode() + b" " + \
        str(len(body)).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": reply})


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fetch(port, data):
    import time
    deadline = time.monotonic() + 20
    while True:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=data)
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _check(loop, impl, answers):
    for status, text in answers:
        module, size = text.split()
        assert status == 200
        assert module.startswith("uvcore") == (impl.name == "uvcore"), module
        assert int(size) == 100_000


def test_hypercorn_serve(loop, impl):
    hypercorn_asyncio = pytest.importorskip("hypercorn.asyncio")
    from hypercorn.config import Config

    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None

    async def main():
        stop = asyncio.Event()
        task = asyncio.ensure_future(
            hypercorn_asyncio.serve(app, config, shutdown_trigger=stop.wait))
        try:
            answers = []
            for _ in range(5):
                answers.append(await loop.run_in_executor(
                    None, _fetch, port, b"x" * 100_000))
            return answers
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

    _check(loop, impl, loop.run_until_complete(main()))


def test_granian_embedded(loop, impl):
    embed = pytest.importorskip("granian.server.embed")
    from granian.constants import Interfaces

    port = _free_port()

    async def main():
        server = embed.Server(app, address="127.0.0.1", port=port,
                              interface=Interfaces.ASGI, log_enabled=False)
        task = asyncio.ensure_future(server.serve())
        try:
            answers = []
            for _ in range(5):
                answers.append(await loop.run_in_executor(
                    None, _fetch, port, b"x" * 100_000))
            return answers
        finally:
            server.stop()
            await asyncio.wait_for(task, 15)

    _check(loop, impl, loop.run_until_complete(main()))
