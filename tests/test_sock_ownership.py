"""Who closes a socket handed to the loop with sock= (or to
connect_accepted_socket), and that its descriptor is closed exactly once.

The "closed exactly once" checks free the descriptor, immediately take the
same number again for /dev/null, keep the loop running, collect garbage,
and then check that the number still refers to /dev/null: a second close
by the loop (or by a socket object that still thought it owned the number)
would have closed it.
"""

import asyncio
import gc
import os
import socket

import pytest

from _net_helpers import (
    Echo, Recorder, ServerSide, close_server, fd_is_open, grab_fd,
    listening_socket, requires_linux, requires_unix, run, same_file,
    server_port, set_linger_zero, spin,
)

pytestmark = [pytest.mark.timeout(30), requires_linux]

DEVNULL_STAT = os.stat(os.devnull)


async def _assert_closed_exactly_once(fd):
    """``fd`` was just closed by the loop: check nobody closes it again."""
    assert not fd_is_open(fd), f"fd {fd} was left open"
    grabbed = grab_fd(fd)
    assert grabbed == fd, f"could not take fd {fd} again"
    try:
        await spin(10)
        await asyncio.sleep(0.02)
        gc.collect()
        await spin(5)
        assert fd_is_open(fd) and same_file(fd, DEVNULL_STAT), (
            f"fd {fd} was closed a second time")
    finally:
        os.close(grabbed)


def _tcp_pair():
    with listening_socket() as lsock:
        c = socket.create_connection(lsock.getsockname())
        s, _ = lsock.accept()
    return c, s


def _unix_pair(tmp_path):
    path = str(tmp_path / "own.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as lsock:
        lsock.bind(path)
        lsock.listen()
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        s, _ = lsock.accept()
    return c, s


def _adopt(loop, kind, sock):
    if kind == "create_connection":
        return loop.create_connection(Recorder, sock=sock)
    if kind == "connect_accepted_socket":
        return loop.connect_accepted_socket(Recorder, sock)
    if kind == "create_unix_connection":
        return loop.create_unix_connection(Recorder, sock=sock)
    raise AssertionError(kind)


def _make_pair(kind, tmp_path):
    """(mine, peer): ``mine`` is the socket given to the loop."""
    if kind == "create_unix_connection":
        c, s = _unix_pair(tmp_path)
        return c, s
    c, s = _tcp_pair()
    if kind == "connect_accepted_socket":
        return s, c
    return c, s


KINDS = ["create_connection", "connect_accepted_socket",
         pytest.param("create_unix_connection", marks=requires_unix)]


# ---------------------------------------------------------------------------
# After the transport is done with it


ENDINGS = [
    pytest.param(kind, ending, id=f"{kind}-{ending}", marks=(
        [requires_unix] if kind == "create_unix_connection" else []))
    for kind in ("create_connection", "connect_accepted_socket",
                 "create_unix_connection")
    for ending in ("close", "abort", "peer-eof", "peer-reset")
    # A Unix socket has no reset.
    if not (kind == "create_unix_connection" and ending == "peer-reset")
]


@pytest.mark.parametrize("kind,ending", ENDINGS)
def test_adopted_socket_is_closed_once_with_the_transport(
        loop, tmp_path, kind, ending):
    async def main():
        mine, peer = _make_pair(kind, tmp_path)
        fd = mine.fileno()
        try:
            tr, proto = await _adopt(loop, kind, mine)
            assert tr.get_extra_info("socket").fileno() == fd
            tr.write(b"hello")
            assert await loop.run_in_executor(None, peer.recv, 5) == b"hello"
            if ending == "close":
                tr.close()
            elif ending == "abort":
                tr.abort()
            elif ending == "peer-eof":
                peer.close()
            else:
                set_linger_zero(peer)
                peer.close()
            await asyncio.wait_for(proto.lost, 5)
            await spin()
            assert mine.fileno() == -1
            await _assert_closed_exactly_once(fd)
            # Dropping the caller's socket object does not close it either.
            del tr, proto
        finally:
            peer.close()
        return mine

    mine = run(loop, main())
    assert mine.fileno() == -1
    mine.close()                    # harmless on a closed socket


@pytest.mark.parametrize("family", ["tcp", pytest.param(
    "unix", marks=requires_unix)])
def test_listening_socket_is_closed_once_with_the_server(
        loop, tmp_path, family):
    async def main():
        if family == "tcp":
            lsock = listening_socket()
            server = await loop.create_server(Echo, sock=lsock)
        else:
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            lsock.bind(str(tmp_path / "l.sock"))
            server = await loop.create_unix_server(Echo, sock=lsock)
        fd = lsock.fileno()
        assert server.sockets[0].fileno() == fd
        await close_server(server)
        await spin()
        assert lsock.fileno() == -1
        await _assert_closed_exactly_once(fd)

    run(loop, main())


def test_loop_owned_sockets_are_closed_once(loop):
    async def main():
        side = ServerSide(Echo)
        server = await loop.create_server(side, "127.0.0.1", 0)
        tr, proto = await loop.create_connection(
            Recorder, "127.0.0.1", server_port(server))
        sp = await side.first()
        fds = [server.sockets[0].fileno(),
               tr.get_extra_info("socket").fileno(),
               sp.transport.get_extra_info("socket").fileno()]
        assert len(set(fds)) == 3
        tr.close()
        await asyncio.wait_for(proto.lost, 5)
        await asyncio.wait_for(sp.lost, 5)
        await close_server(server)
        await spin()
        for fd in sorted(fds):
            assert not fd_is_open(fd), fd
        grabbed = []
        try:
            for fd in sorted(fds):
                g = grab_fd(fd)
                assert g == fd
                grabbed.append(g)
            await spin(10)
            await asyncio.sleep(0.02)
            gc.collect()
            for fd in grabbed:
                assert same_file(fd, DEVNULL_STAT), fd
        finally:
            for g in grabbed:
                os.close(g)

    run(loop, main())


# ---------------------------------------------------------------------------
# When adopting the socket fails


@pytest.mark.parametrize("kind", KINDS)
def test_protocol_factory_error_leaves_the_socket_to_the_caller(
        loop, tmp_path, kind):
    def factory():
        raise ZeroDivisionError("no protocol")

    async def main():
        mine, peer = _make_pair(kind, tmp_path)
        try:
            if kind == "create_connection":
                coro = loop.create_connection(factory, sock=mine)
            elif kind == "connect_accepted_socket":
                coro = loop.connect_accepted_socket(factory, mine)
            else:
                coro = loop.create_unix_connection(factory, sock=mine)
            with pytest.raises(ZeroDivisionError):
                await coro
            await spin()
            # Not closed: still the caller's, and still connected.
            assert mine.fileno() != -1
            mine.setblocking(True)
            mine.sendall(b"still mine")
            assert peer.recv(10) == b"still mine"
        finally:
            mine.close()
            peer.close()

    run(loop, main())


def test_connection_made_error_goes_to_the_handler(loop):
    class Bad(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            raise KeyError("connection_made")

    async def main():
        calls = []
        loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
        mine, peer = _tcp_pair()
        fd = mine.fileno()
        try:
            tr, proto = await loop.create_connection(Bad, sock=mine)
            await spin()
            assert len(calls) == 1
            assert isinstance(calls[0]["exception"], KeyError)
            # The transport was set up all the same.
            assert not tr.is_closing()
            tr.close()
            await asyncio.wait_for(proto.lost, 5)
            await spin()
            assert mine.fileno() == -1
            await _assert_closed_exactly_once(fd)
        finally:
            peer.close()

    run(loop, main())


def test_wrong_socket_type_is_left_open(loop):
    async def main():
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError):
                await loop.create_connection(Recorder, sock=u)
            with pytest.raises(ValueError):
                await loop.connect_accepted_socket(Recorder, u)
            with pytest.raises(ValueError):
                await loop.create_server(Recorder, sock=u)
            assert u.fileno() != -1
            assert fd_is_open(u.fileno())
        finally:
            u.close()

    run(loop, main())


def test_already_closed_socket_is_refused(loop):
    async def main():
        s = socket.socket()
        s.close()
        with pytest.raises(OSError):
            await loop.create_connection(Recorder, sock=s)

    run(loop, main())


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("kind", KINDS)
def test_cancelled_adoption_closes_once_or_leaves_open(
        loop, tmp_path, kind, steps):
    async def main():
        mine, peer = _make_pair(kind, tmp_path)
        fd = mine.fileno()
        try:
            task = asyncio.ensure_future(_adopt(loop, kind, mine))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                result = await task
            except asyncio.CancelledError:
                result = None
            await spin(5)
            if steps == 0:
                # Cancelled before it ran: the socket was never touched.
                assert result is None
                assert mine.fileno() == fd
            if result is not None:
                tr, proto = result
                tr.close()
                await asyncio.wait_for(proto.lost, 5)
                await spin()
            if mine.fileno() == -1:
                await _assert_closed_exactly_once(fd)
            else:
                # Left to the caller: open, connected and usable.
                assert mine.fileno() == fd and fd_is_open(fd)
                mine.setblocking(True)
                mine.sendall(b"ok")
                assert peer.recv(2) == b"ok"
        finally:
            mine.close()
            peer.close()

    run(loop, main())
