"""Several processes, one loop each, serving one port through reuse_port=True:
the kernel hands connections to all of them (the README's "every core")."""

import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT"),
]

SERVER = """
import asyncio, os, sys
async def handle(reader, writer):
    await reader.read(100)
    writer.write(str(os.getpid()).encode())
    await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]),
                                        reuse_port=True)
    print("READY", type(asyncio.get_running_loop()).__module__, flush=True)
    async with server:
        await server.serve_forever()
run(main())
"""


def _free_port():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"who")
        return int(c.recv(100))


def test_processes_share_a_port(impl):
    port = _free_port()
    procs = []
    try:
        for _ in range(2):
            p = subprocess.Popen(
                [sys.executable, "-c", impl.child_prelude() + SERVER, str(port)],
                stdout=subprocess.PIPE, text=True, env=impl.child_env())
            procs.append(p)
            line = p.stdout.readline().split()
            assert line[:1] == ["READY"], line
            assert ("uvcore" in line[1]) == (impl.name == "uvcore"), line
        pids = {p.pid for p in procs}
        seen = set()
        deadline = time.monotonic() + 20
        while seen != pids and time.monotonic() < deadline:
            seen.add(_ask(port))
        assert seen == pids, f"answered: {seen}, servers: {pids}"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
