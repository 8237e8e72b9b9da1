"""A small Starlette app served by uvicorn in the integration tests
(not a test module itself)."""

import asyncio
import hashlib

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect


async def hello(request):
    return PlainTextResponse("hello from starlette")


async def loop_info(request):
    loop = asyncio.get_running_loop()
    return JSONResponse({"module": type(loop).__module__,
                         "name": type(loop).__name__})


async def echo(request):
    try:
        body = await request.body()
    except ClientDisconnect:
        return Response(status_code=400)
    return Response(body, media_type="application/octet-stream",
                    headers={"x-sha256": hashlib.sha256(body).hexdigest()})


async def sha(request):
    h = hashlib.sha256()
    n = 0
    async for chunk in request.stream():
        h.update(chunk)
        n += len(chunk)
    return JSONResponse({"sha256": h.hexdigest(), "length": n})


async def slow(request):
    await asyncio.sleep(float(request.query_params.get("s", "0.05")))
    return PlainTextResponse("slow " + request.query_params.get("i", ""))


async def ws_echo(websocket):
    await websocket.accept()
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await websocket.send_text(msg["text"])
            else:
                await websocket.send_bytes(msg["bytes"])
    except WebSocketDisconnect:
        return


app = Starlette(routes=[
    Route("/", hello),
    Route("/loop", loop_info),
    Route("/echo", echo, methods=["POST"]),
    Route("/sha", sha, methods=["POST"]),
    Route("/slow", slow),
    WebSocketRoute("/ws", ws_echo),
])
