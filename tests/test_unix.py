"""Unix stream sockets: create_unix_server, create_unix_connection, socket
files (stale ones, cleanup), abstract names, sock= arguments."""

import asyncio
import errno
import os
import pathlib
import shutil
import socket
import stat
import subprocess
import uuid

import pytest

from _net_helpers import (
    Echo, Pair, Recorder, ServerSide, close_server, close_transport, pattern,
    recv_all, requires_linux, requires_unix, run, stdlib_accepts,
)

pytestmark = [pytest.mark.timeout(30), requires_unix]

HAS_CLEANUP_SOCKET = stdlib_accepts("create_unix_server", "cleanup_socket")


@pytest.fixture
def sock_path(tmp_path):
    # Keep it short: AF_UNIX paths are limited to ~107 bytes.
    p = tmp_path / "s.sock"
    if len(os.fsencode(str(p))) > 100:   # pragma: no cover - odd tmp dirs
        pytest.skip("temporary directory path too long for AF_UNIX")
    return str(p)


def _abstract_name():
    return "\0uvcore-test-" + uuid.uuid4().hex


def _is_socket_file(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("kind", ["str", "pathlike", "bytes"])
def test_unix_echo(loop, sock_path, kind):
    path = {"str": sock_path, "pathlike": pathlib.Path(sock_path),
            "bytes": os.fsencode(sock_path)}[kind]

    async def main():
        side = ServerSide(Echo)
        server = await loop.create_unix_server(side, path)
        try:
            assert _is_socket_file(sock_path)
            assert server.sockets[0].family == socket.AF_UNIX
            assert server.sockets[0].getsockname() == sock_path
            tr, proto = await loop.create_unix_connection(Recorder, path)
            tr.write(b"over unix")
            assert await proto.wait_bytes(9) == b"over unix"
            await close_transport(tr, proto)
            assert proto.lost_exc is None
        finally:
            await close_server(server)

    run(loop, main())


def test_unix_transport_extra_info(loop, sock_path):
    async def main():
        pair = await Pair.unix(loop, sock_path)
        try:
            ctr, stran = pair.ctr, pair.stransport
            for tr in (ctr, stran):
                assert isinstance(tr, asyncio.Transport)
                sock = tr.get_extra_info("socket")
                assert sock.family == socket.AF_UNIX
                assert sock.type == socket.SOCK_STREAM
                assert tr.can_write_eof() is True
            # A connected Unix socket's peername is never None: an unbound
            # client reports '' as its address.
            assert ctr.get_extra_info("peername") == sock_path
            assert ctr.get_extra_info("sockname") == ""
            assert stran.get_extra_info("sockname") == sock_path
            assert stran.get_extra_info("peername") == ""
        finally:
            await pair.aclose()

    run(loop, main())


def test_unix_half_close(loop, sock_path):
    async def main():
        pair = await Pair.unix(loop, sock_path, server=Recorder)
        pair.sproto.keep_open_on_eof = True
        try:
            pair.ctr.write(b"request")
            pair.ctr.write_eof()
            await asyncio.wait_for(pair.sproto.eof, 5)
            assert pair.sproto.data == b"request"
            assert not pair.stransport.is_closing()
            pair.stransport.write(b"response")
            pair.stransport.close()
            await asyncio.wait_for(pair.cproto.lost, 5)
            assert pair.cproto.data == b"response"
            assert pair.cproto.events == ["made", "data", "eof", "lost"]
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.timeout(60)
def test_unix_large_transfer_both_ways(loop, sock_path):
    size = 16 * 1024 * 1024
    up = pattern(size, seed=1)
    down = pattern(size, seed=2)

    async def main():
        pair = await Pair.unix(loop, sock_path, server=Recorder)
        try:
            pair.ctr.write(up)
            pair.stransport.write(down)
            got_down = await asyncio.wait_for(pair.cproto.wait_bytes(size), 30)
            got_up = await asyncio.wait_for(pair.sproto.wait_bytes(size), 30)
            assert len(got_up) == len(got_down) == size
            assert got_up == up
            assert got_down == down
        finally:
            await pair.aclose()

    run(loop, main(), timeout=45)


def test_connect_accepted_unix_socket(loop):
    async def main():
        a, b = socket.socketpair()
        try:
            tr, proto = await loop.connect_accepted_socket(Recorder, a)
            assert tr.get_extra_info("socket").family == socket.AF_UNIX
            b.sendall(b"pair")
            assert await proto.wait_bytes(4) == b"pair"
            tr.write(b"back")
            tr.write_eof()
            assert await loop.run_in_executor(None, recv_all, b) == b"back"
            b.close()
            await asyncio.wait_for(proto.lost, 5)
        finally:
            a.close()
            b.close()

    run(loop, main())


def test_create_connection_accepts_unix_sock(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(sock_path)
            tr, proto = await loop.create_connection(Recorder, sock=sock)
            tr.write(b"generic")
            assert await proto.wait_bytes(7) == b"generic"
            await close_transport(tr, proto)
        finally:
            sock.close()
            await close_server(server)

    run(loop, main())


# ---------------------------------------------------------------------------
# create_unix_server: sock=, arguments, backlog, start_serving


def test_unix_server_with_sock(loop, sock_path):
    async def main():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(sock_path)
        fd = sock.fileno()
        server = await loop.create_unix_server(Echo, sock=sock)
        try:
            assert server.sockets[0].fileno() == fd
            assert sock.gettimeout() == 0
            tr, proto = await loop.create_unix_connection(Recorder, sock_path)
            tr.write(b"x")
            assert await proto.wait_bytes(1) == b"x"
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


def test_unix_server_argument_errors(loop, sock_path):
    async def main():
        with pytest.raises(ValueError, match="path was not specified, and "
                                             "no sock specified"):
            await loop.create_unix_server(Echo)
        with socket.socket(socket.AF_UNIX) as s:
            with pytest.raises(ValueError, match="path and sock can not be "
                                                 "specified at the same "
                                                 "time"):
                await loop.create_unix_server(Echo, sock_path, sock=s)
        assert not os.path.exists(sock_path)
        for fam, typ in ((socket.AF_INET, socket.SOCK_STREAM),
                         (socket.AF_UNIX, socket.SOCK_DGRAM)):
            with socket.socket(fam, typ) as s:
                with pytest.raises(ValueError, match="A UNIX Domain Stream "
                                                     "Socket was expected"):
                    await loop.create_unix_server(Echo, sock=s)
                assert s.fileno() != -1
        with pytest.raises(TypeError, match="ssl argument must be an "
                                            "SSLContext or None"):
            await loop.create_unix_server(Echo, sock_path, ssl=True)

    run(loop, main())


def test_unix_connection_argument_errors(loop, sock_path):
    async def main():
        with pytest.raises(ValueError, match="no path and sock were "
                                             "specified"):
            await loop.create_unix_connection(Recorder)
        with socket.socket(socket.AF_UNIX) as s:
            with pytest.raises(ValueError, match="path and sock can not be "
                                                 "specified at the same "
                                                 "time"):
                await loop.create_unix_connection(Recorder, sock_path, sock=s)
        for fam, typ in ((socket.AF_INET, socket.SOCK_STREAM),
                         (socket.AF_UNIX, socket.SOCK_DGRAM)):
            with socket.socket(fam, typ) as s:
                with pytest.raises(ValueError, match="A UNIX Domain Stream "
                                                     "Socket was expected"):
                    await loop.create_unix_connection(Recorder, sock=s)
                assert s.fileno() != -1
        with pytest.raises(ValueError, match="server_hostname is only "
                                             "meaningful with ssl"):
            await loop.create_unix_connection(Recorder, sock_path,
                                              server_hostname="x")

    run(loop, main())


def test_unix_connection_to_missing_path(loop, tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError) as ei:
            await loop.create_unix_connection(Recorder,
                                              str(tmp_path / "missing"))
        assert ei.value.errno == errno.ENOENT

    run(loop, main())


def test_unix_connection_to_stale_socket_file(loop, sock_path):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(sock_path)            # closed without listening or unlinking

    async def main():
        with pytest.raises(ConnectionRefusedError) as ei:
            await loop.create_unix_connection(Recorder, sock_path)
        assert ei.value.errno == errno.ECONNREFUSED

    run(loop, main())


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss(8)")
@requires_linux
def test_unix_server_backlog(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(Echo, sock_path, backlog=7)
        try:
            out = subprocess.run(["ss", "-lxnH"], capture_output=True,
                                 text=True, timeout=10).stdout
            lines = [ln.split() for ln in out.splitlines()
                     if sock_path in ln.split()]
            if not lines:
                pytest.skip("ss(8) does not list Unix sockets here")
            assert int(lines[0][3]) == 7         # Send-Q: the backlog
        finally:
            await close_server(server)

    run(loop, main())


def test_unix_server_start_serving_false(loop, sock_path):
    async def main():
        side = ServerSide(Echo)
        server = await loop.create_unix_server(side, sock_path,
                                               start_serving=False)
        try:
            assert not server.is_serving()
            assert _is_socket_file(sock_path)
            # Not listening yet: a connect is refused.
            with pytest.raises(ConnectionRefusedError):
                await loop.create_unix_connection(Recorder, sock_path)
            await server.start_serving()
            assert server.is_serving()
            tr, proto = await loop.create_unix_connection(Recorder, sock_path)
            tr.write(b"now")
            assert await proto.wait_bytes(3) == b"now"
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


# ---------------------------------------------------------------------------
# Socket files: stale files, files in the way, cleanup


def test_stale_socket_file_is_replaced(loop, sock_path):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(sock_path)
    assert _is_socket_file(sock_path)

    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        try:
            assert _is_socket_file(sock_path)
            tr, proto = await loop.create_unix_connection(Recorder, sock_path)
            tr.write(b"fresh")
            assert await proto.wait_bytes(5) == b"fresh"
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())


def test_live_socket_file_is_replaced_too(loop, sock_path):
    """The stdlib removes any socket file in the way, even a live one."""

    async def main():
        first = ServerSide(Echo)
        second = ServerSide(Echo)
        s1 = await loop.create_unix_server(first, sock_path)
        s2 = await loop.create_unix_server(second, sock_path)
        try:
            tr, proto = await loop.create_unix_connection(Recorder, sock_path)
            tr.write(b"who")
            assert await proto.wait_bytes(3) == b"who"
            assert len(second.protocols) == 1
            assert first.protocols == []
            await close_transport(tr, proto)
        finally:
            await close_server(s1)
            await close_server(s2)

    run(loop, main())


def test_regular_file_in_the_way(loop, sock_path):
    with open(sock_path, "wb") as f:
        f.write(b"not a socket")

    async def main():
        with pytest.raises(OSError) as ei:
            await loop.create_unix_server(Echo, sock_path)
        assert ei.value.errno == errno.EADDRINUSE
        assert str(ei.value) == (f"[Errno {errno.EADDRINUSE}] Address "
                                 f"{sock_path!r} is already in use")

    run(loop, main())
    with open(sock_path, "rb") as f:
        assert f.read() == b"not a socket"


def test_missing_directory(loop, tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_server(Echo, str(tmp_path / "no" / "s"))

    run(loop, main())


def test_path_too_long(loop, tmp_path):
    async def main():
        with pytest.raises(OSError):
            await loop.create_unix_server(Echo, str(tmp_path / ("x" * 200)))

    run(loop, main())


def test_socket_file_after_close(loop, sock_path):
    """3.13+ (cleanup_socket=True by default) removes the file on close;
    earlier versions leave it."""

    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        assert _is_socket_file(sock_path)
        await close_server(server)
        assert os.path.exists(sock_path) is (not HAS_CLEANUP_SOCKET)

    run(loop, main())


@pytest.mark.skipif(not HAS_CLEANUP_SOCKET,
                    reason="cleanup_socket= is Python 3.13+")
def test_cleanup_socket_false_keeps_the_file(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(Echo, sock_path,
                                               cleanup_socket=False)
        await close_server(server)
        assert _is_socket_file(sock_path)

    run(loop, main())


@pytest.mark.skipif(not HAS_CLEANUP_SOCKET,
                    reason="cleanup_socket= is Python 3.13+")
def test_cleanup_socket_with_sock(loop, sock_path):
    async def main():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(sock_path)
        server = await loop.create_unix_server(Echo, sock=sock)
        await close_server(server)
        assert not os.path.exists(sock_path)

    run(loop, main())


@pytest.mark.skipif(not HAS_CLEANUP_SOCKET,
                    reason="cleanup_socket= is Python 3.13+")
def test_cleanup_leaves_a_replaced_file_alone(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        os.unlink(sock_path)
        with open(sock_path, "wb") as f:
            f.write(b"someone else's")
        await close_server(server)
        with open(sock_path, "rb") as f:
            assert f.read() == b"someone else's"

    run(loop, main())


# ---------------------------------------------------------------------------
# Abstract namespace


@requires_linux
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_abstract_namespace(loop, tmp_path, as_bytes):
    name = _abstract_name()
    path = name.encode() if as_bytes else name

    async def main():
        before = set(os.listdir(tmp_path))
        side = ServerSide(Echo)
        server = await loop.create_unix_server(side, path)
        try:
            assert server.sockets[0].getsockname() == name.encode()
            tr, proto = await loop.create_unix_connection(Recorder, name)
            assert tr.get_extra_info("peername") == name.encode()
            tr.write(b"abstract")
            assert await proto.wait_bytes(8) == b"abstract"
            await close_transport(tr, proto)
        finally:
            await close_server(server)
        assert set(os.listdir(tmp_path)) == before
        assert not os.path.exists(name[1:])

    run(loop, main())


@requires_linux
def test_abstract_name_in_use(loop):
    name = _abstract_name()

    async def main():
        server = await loop.create_unix_server(Echo, name)
        try:
            with pytest.raises(OSError) as ei:
                await loop.create_unix_server(Echo, name)
            assert ei.value.errno == errno.EADDRINUSE
            assert str(ei.value) == (f"[Errno {errno.EADDRINUSE}] Address "
                                     f"{name!r} is already in use")
        finally:
            await close_server(server)

    run(loop, main())


@requires_linux
def test_abstract_server_with_sock(loop):
    name = _abstract_name()

    async def main():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(name)
        server = await loop.create_unix_server(Echo, sock=sock)
        try:
            tr, proto = await loop.create_unix_connection(Recorder, name)
            tr.write(b"q")
            assert await proto.wait_bytes(1) == b"q"
            await close_transport(tr, proto)
        finally:
            await close_server(server)

    run(loop, main())
