"""Checks shared by the integration tests (not a test module)."""

import asyncio
import os
import socket
import time


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


async def _assert_no_fd_leak(baseline, timeout=5.0):
    """Wait (bounded) until the process has no more fds than ``baseline``:
    transports close their sockets a loop iteration after close()."""
    if baseline is None:
        return
    deadline = time.monotonic() + timeout
    while _open_fds() > baseline:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{_open_fds() - baseline} fd(s) still open after {timeout} s")
        await asyncio.sleep(0.01)


async def _fd_baseline():
    """The process's fd count, taken after the running loop has had one
    stream transport: a libuv loop keeps one fd (its reserve fd for EMFILE
    handling, /dev/null) from its first stream until loop.close(), which is
    not a leak of the code under test."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    loop = asyncio.get_running_loop()
    lost = loop.create_future()

    class Proto(asyncio.Protocol):
        def connection_lost(self, exc):
            if not lost.done():
                lost.set_result(None)

    a, b = socket.socketpair()
    try:
        tr, _ = await loop.create_unix_connection(Proto, sock=a)
        tr.close()
        await asyncio.wait_for(lost, 5)
        await asyncio.sleep(0)
    finally:
        b.close()
    return _open_fds()
