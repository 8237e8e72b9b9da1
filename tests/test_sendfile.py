"""loop.sendfile(transport, ...) and loop.sock_sendfile(sock, ...): data,
offset / count, the file position afterwards, the read-and-send fallback
for objects that are not regular files, and argument checks."""

import asyncio
import io
import socket

import pytest

from _net_helpers import Pair, Recorder, listening_socket, pattern, run, spin

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024
SIZE = 4 * MiB
DATA = pattern(SIZE, seed=31)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as f:
        yield f


@pytest.fixture
def tcp_pair():
    with listening_socket() as lsock:
        a = socket.create_connection(lsock.getsockname())
        b, _ = lsock.accept()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


async def _recv_exactly(loop, sock, n):
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            break
        got += chunk
    return bytes(got)


class NoFileno(io.RawIOBase):
    """A readable binary object without a file descriptor."""

    def __init__(self, data):
        self._bio = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, b):
        return self._bio.readinto(b)

    def seek(self, pos, whence=0):
        return self._bio.seek(pos, whence)

    def tell(self):
        return self._bio.tell()


# ---------------------------------------------------------------------------
# loop.sendfile over a transport


OFFSET_COUNT_CASES = [
    pytest.param(0, None, id="whole"),
    pytest.param(1000, None, id="offset"),
    pytest.param(0, 12345, id="count"),
    pytest.param(777, 65536 * 3 + 1, id="offset-count"),
    pytest.param(SIZE - 10, 100, id="count-past-eof"),
]


@pytest.mark.parametrize("offset,count", OFFSET_COUNT_CASES)
def test_sendfile_over_transport(loop, data_file, offset, count):
    end = SIZE if count is None else min(SIZE, offset + count)
    expected = DATA[offset:end]

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            sent = await loop.sendfile(pair.ctr, data_file, offset, count)
            assert sent == len(expected)
            assert data_file.tell() == offset + sent
            got = await asyncio.wait_for(
                pair.sproto.wait_bytes(len(expected)), 20)
            assert got == expected
            # The transport is usable afterwards, reading included.
            assert pair.ctr.is_reading()
            pair.ctr.write(b"+tail")
            got = await pair.sproto.wait_bytes(len(expected) + 5)
            assert got[len(expected):] == b"+tail"
            pair.stransport.write(b"reply")
            assert await pair.cproto.wait_bytes(5) == b"reply"
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_sendfile_empty_file(loop, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            with open(path, "rb") as f:
                assert await loop.sendfile(pair.ctr, f) == 0
                assert f.tell() == 0
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.timeout(60)
def test_sendfile_large_file_to_a_slow_reader(loop, tmp_path):
    size = 24 * MiB
    blob = pattern(size, seed=32)
    path = tmp_path / "big"
    path.write_bytes(blob)

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.stransport.pause_reading()
            with open(path, "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.ctr, f))
                await asyncio.sleep(0.05)
                assert not task.done()
                pair.stransport.resume_reading()
                assert await asyncio.wait_for(task, 30) == size
                assert f.tell() == size
            got = await asyncio.wait_for(pair.sproto.wait_bytes(size), 30)
            assert got == blob
        finally:
            await pair.aclose()

    run(loop, main(), timeout=45)


def test_sendfile_after_pending_writes_keeps_order(loop, data_file):
    head = pattern(8 * MiB, seed=33)

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.stransport.pause_reading()
            pair.ctr.write(head)
            assert pair.ctr.get_write_buffer_size() > 0
            task = asyncio.ensure_future(loop.sendfile(pair.ctr, data_file))
            await asyncio.sleep(0.02)
            pair.stransport.resume_reading()
            assert await asyncio.wait_for(task, 20) == SIZE
            got = await asyncio.wait_for(
                pair.sproto.wait_bytes(len(head) + SIZE), 20)
            assert got == head + DATA
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_write_during_sendfile_is_refused(loop, tmp_path):
    size = 16 * MiB
    path = tmp_path / "big"
    path.write_bytes(pattern(size, seed=34))

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.stransport.pause_reading()
            with open(path, "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(pair.ctr, f))
                await asyncio.sleep(0.05)
                assert not task.done()
                with pytest.raises(RuntimeError) as ei:
                    pair.ctr.write(b"x")
                assert str(ei.value) == ("unable to write; sendfile is in "
                                         "progress")
                pair.stransport.resume_reading()
                assert await asyncio.wait_for(task, 20) == size
            pair.ctr.write(b"after")
            await asyncio.wait_for(pair.sproto.wait_bytes(size + 5), 20)
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


@pytest.mark.parametrize("kind", ["bytesio", "no-fileno"])
def test_sendfile_fallback_for_non_regular_files(loop, kind):
    offset, count = 100, 200000

    async def main():
        f = io.BytesIO(DATA) if kind == "bytesio" else NoFileno(DATA)
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            sent = await loop.sendfile(pair.ctr, f, offset, count)
            assert sent == count
            assert f.tell() == offset + count
            got = await pair.sproto.wait_bytes(count)
            assert got == DATA[offset:offset + count]
            f.seek(0)
            sent = await loop.sendfile(pair.ctr, f)
            assert sent == SIZE
            got = await asyncio.wait_for(
                pair.sproto.wait_bytes(count + SIZE), 20)
            assert got[count:] == DATA
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_sendfile_without_fallback_refuses_non_regular_files(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await loop.sendfile(pair.ctr, io.BytesIO(b"abc"),
                                    fallback=False)
            # Nothing was sent and the transport still works.
            pair.ctr.write(b"ok")
            assert await pair.sproto.wait_bytes(2) == b"ok"
        finally:
            await pair.aclose()

    run(loop, main())


def test_sendfile_argument_checks(loop, tmp_path, data_file):
    text_path = tmp_path / "text.txt"
    text_path.write_text("text")

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            tr = pair.ctr
            with open(text_path, "r") as tf:
                with pytest.raises(ValueError) as ei:
                    await loop.sendfile(tr, tf)
                assert str(ei.value) == "file should be opened in binary mode"
            with pytest.raises(ValueError) as ei:
                await loop.sendfile(tr, data_file, 0, 0)
            assert str(ei.value) == "count must be a positive integer (got 0)"
            with pytest.raises(ValueError) as ei:
                await loop.sendfile(tr, data_file, -1)
            assert str(ei.value) == ("offset must be a non-negative integer "
                                     "(got -1)")
            with pytest.raises(TypeError):
                await loop.sendfile(tr, data_file, "1")
            with pytest.raises(TypeError):
                await loop.sendfile(tr, data_file, 0, 1.5)
            # Still usable.
            assert await loop.sendfile(tr, data_file, 0, 10) == 10
            assert await pair.sproto.wait_bytes(10) == DATA[:10]
            tr.close()
            with pytest.raises(RuntimeError) as ei:
                await loop.sendfile(tr, data_file)
            assert str(ei.value) == "Transport is closing"
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# loop.sock_sendfile


@pytest.mark.parametrize("offset,count", OFFSET_COUNT_CASES)
@pytest.mark.parametrize("fallback", [True, False], ids=["fb", "nofb"])
def test_sock_sendfile(loop, tcp_pair, data_file, offset, count, fallback):
    a, b = tcp_pair
    end = SIZE if count is None else min(SIZE, offset + count)
    expected = DATA[offset:end]

    async def main():
        reader = asyncio.ensure_future(_recv_exactly(loop, b, len(expected)))
        sent = await loop.sock_sendfile(a, data_file, offset, count,
                                        fallback=fallback)
        assert sent == len(expected)
        assert data_file.tell() == offset + sent
        assert await asyncio.wait_for(reader, 20) == expected
        # The socket carries on normally.
        await loop.sock_sendall(a, b"next")
        assert await _recv_exactly(loop, b, 4) == b"next"

    run(loop, main(), timeout=25)


def test_sock_sendfile_empty_file(loop, tcp_pair, tmp_path):
    a, b = tcp_pair
    path = tmp_path / "empty"
    path.write_bytes(b"")

    async def main():
        with open(path, "rb") as f:
            assert await loop.sock_sendfile(a, f) == 0

    run(loop, main())


@pytest.mark.parametrize("kind", ["bytesio", "no-fileno"])
def test_sock_sendfile_fallback(loop, tcp_pair, kind):
    a, b = tcp_pair
    offset, count = 5, 300000

    async def main():
        f = io.BytesIO(DATA) if kind == "bytesio" else NoFileno(DATA)
        reader = asyncio.ensure_future(_recv_exactly(loop, b, count))
        assert await loop.sock_sendfile(a, f, offset, count) == count
        assert f.tell() == offset + count
        assert await asyncio.wait_for(reader, 20) == DATA[offset:offset + count]

    run(loop, main())


def test_sock_sendfile_without_fallback(loop, tcp_pair):
    a, b = tcp_pair

    async def main():
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sock_sendfile(a, io.BytesIO(b"abc"), fallback=False)
        await spin()
        await loop.sock_sendall(a, b"clean")
        assert await _recv_exactly(loop, b, 5) == b"clean"

    run(loop, main())


def test_sock_sendfile_argument_checks(loop, tcp_pair, tmp_path, data_file):
    a, b = tcp_pair
    text_path = tmp_path / "text.txt"
    text_path.write_text("text")

    async def main():
        with open(text_path, "r") as tf:
            with pytest.raises(ValueError) as ei:
                await loop.sock_sendfile(a, tf)
            assert str(ei.value) == "file should be opened in binary mode"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.setblocking(False)
            with pytest.raises(ValueError) as ei:
                await loop.sock_sendfile(u, data_file)
            assert str(ei.value) == ("only SOCK_STREAM type sockets are "
                                     "supported")
        with pytest.raises(ValueError) as ei:
            await loop.sock_sendfile(a, data_file, 0, 0)
        assert str(ei.value) == "count must be a positive integer (got 0)"
        with pytest.raises(ValueError) as ei:
            await loop.sock_sendfile(a, data_file, -5)
        assert str(ei.value) == ("offset must be a non-negative integer "
                                 "(got -5)")
        with pytest.raises(TypeError) as ei:
            await loop.sock_sendfile(a, data_file, 0, "10")
        assert str(ei.value) == ("count must be a positive integer "
                                 "(got '10')")
        assert data_file.tell() == 0

    run(loop, main())


@pytest.mark.timeout(60)
def test_sock_sendfile_large_file(loop, tcp_pair, tmp_path):
    a, b = tcp_pair
    size = 24 * MiB
    blob = pattern(size, seed=35)
    path = tmp_path / "big"
    path.write_bytes(blob)

    async def main():
        with open(path, "rb") as f:
            reader = asyncio.ensure_future(_recv_exactly(loop, b, size))
            assert await loop.sock_sendfile(a, f) == size
            assert f.tell() == size
            assert await asyncio.wait_for(reader, 30) == blob

    run(loop, main(), timeout=45)
