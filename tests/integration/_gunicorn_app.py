"""A gunicorn worker class running uvicorn on uvcore (as the README shows),
and a minimal ASGI app, for test_gunicorn.py."""

import asyncio

from uvicorn.workers import UvicornWorker


class UvcoreWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvcore:new_event_loop", "http": "h11"}


class AsyncioWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "asyncio", "http": "h11"}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = type(asyncio.get_running_loop()).__module__.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
