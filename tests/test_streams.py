"""The asyncio streams API (open_connection, start_server,
open_unix_connection, start_unix_server) running on each loop."""

import asyncio
import socket

import pytest

from _net_helpers import (
    LOOPBACK_HOSTS, free_port, listening_socket, pattern, requires_unix, run,
    server_port, set_linger_zero,
)

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024


class Handlers:
    """client_connected_cb that records its tasks' outcomes."""

    def __init__(self, body):
        self.body = body
        self.results = []
        self.errors = []
        self.count = 0

    async def __call__(self, reader, writer):
        self.count += 1
        try:
            self.results.append(await self.body(reader, writer))
        except Exception as exc:          # reported by the test
            self.errors.append(exc)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def _upper_lines(reader, writer):
    lines = 0
    while True:
        line = await reader.readline()
        if not line:
            return lines
        writer.write(line.upper())
        await writer.drain()
        lines += 1


async def _close_writer(writer):
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except (ConnectionResetError, BrokenPipeError):
        pass


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_open_connection_and_start_server(loop, host):
    async def main():
        handlers = Handlers(_upper_lines)
        server = await asyncio.start_server(handlers, host, 0)
        try:
            assert isinstance(server, asyncio.AbstractServer)
            assert server.get_loop() is loop
            reader, writer = await asyncio.open_connection(
                host, server_port(server))
            assert writer.get_extra_info("peername")[:2] == (
                host, server_port(server))
            assert writer.transport.get_protocol() is not None
            for word in (b"alpha\n", b"beta\n", b"gamma\n"):
                writer.write(word)
                await writer.drain()
                assert await reader.readline() == word.upper()
            writer.write_eof()
            assert await reader.read() == b""
            assert reader.at_eof()
            await _close_writer(writer)
            assert writer.is_closing()
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert handlers.errors == []
        assert handlers.results == [3]

    run(loop, main())


def test_stream_reader_methods(loop):
    async def body(reader, writer):
        writer.write(b"line one\nAAAA|chunk-end;tail")
        await writer.drain()
        writer.write_eof()
        await reader.read()

    async def main():
        handlers = Handlers(body)
        server = await asyncio.start_server(handlers, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server_port(server))
            assert await reader.readline() == b"line one\n"
            assert await reader.readexactly(4) == b"AAAA"
            assert await reader.readuntil(b"|") == b"|"
            assert await reader.readuntil(b";") == b"chunk-end;"
            with pytest.raises(asyncio.IncompleteReadError) as ei:
                await reader.readexactly(10)
            assert ei.value.partial == b"tail"
            assert ei.value.expected == 10
            assert await reader.read(10) == b""
            assert reader.at_eof()
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert handlers.errors == []

    run(loop, main())


def test_stream_limit_overrun(loop):
    async def body(reader, writer):
        writer.write(b"x" * 100 + b"\n")
        await writer.drain()
        await reader.read()

    async def main():
        server = await asyncio.start_server(Handlers(body), "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server_port(server), limit=16)
            with pytest.raises(asyncio.LimitOverrunError):
                await reader.readuntil(b"\n")
            with pytest.raises(ValueError):
                await reader.readline()
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    run(loop, main())


@pytest.mark.timeout(60)
def test_streams_large_transfer_with_drain(loop):
    size = 16 * MiB
    blob = pattern(size, seed=41)

    async def body(reader, writer):
        # Echo in chunks, with drain() applying back-pressure.
        total = 0
        while True:
            chunk = await reader.read(256 * 1024)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
            total += len(chunk)
        writer.write_eof()
        return total

    async def main():
        handlers = Handlers(body)
        server = await asyncio.start_server(handlers, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server_port(server))

            async def send():
                for i in range(0, size, MiB):
                    writer.write(blob[i:i + MiB])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.ensure_future(send())
            got = await asyncio.wait_for(reader.read(-1), 30)
            await sender
            assert len(got) == size
            assert got == blob
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert handlers.results == [size]

    run(loop, main(), timeout=45)


def test_writelines_and_can_write_eof(loop):
    async def body(reader, writer):
        return await reader.read()

    async def main():
        handlers = Handlers(body)
        server = await asyncio.start_server(handlers, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server_port(server))
            assert writer.can_write_eof()
            writer.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
            await writer.drain()
            writer.write_eof()
            assert await reader.read() == b""
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert handlers.results == [b"abc"]

    run(loop, main())


def test_plain_function_callback(loop):
    seen = []

    def on_connect(reader, writer):
        seen.append(writer.get_extra_info("peername"))
        writer.write(b"hello from a plain function")
        writer.close()

    async def main():
        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server_port(server))
            assert await reader.read() == b"hello from a plain function"
            assert seen == [writer.get_extra_info("sockname")]
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    run(loop, main())


def test_streams_with_sock(loop):
    async def main():
        lsock = listening_socket()
        handlers = Handlers(_upper_lines)
        server = await asyncio.start_server(handlers, sock=lsock)
        try:
            c = socket.create_connection(lsock.getsockname())
            reader, writer = await asyncio.open_connection(sock=c)
            writer.write(b"via sock\n")
            assert await reader.readline() == b"VIA SOCK\n"
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert handlers.errors == []

    run(loop, main())


def test_open_connection_refused(loop):
    port = free_port()

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)

    run(loop, main())


def test_read_after_peer_reset(loop):
    async def main():
        with listening_socket() as lsock:
            task = asyncio.ensure_future(
                asyncio.open_connection(*lsock.getsockname()))
            conn, _ = await loop.run_in_executor(None, lsock.accept)
            reader, writer = await task
        try:
            set_linger_zero(conn)
            conn.close()
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(100), 5)
            with pytest.raises(ConnectionResetError):
                for _ in range(10):
                    writer.write(b"x" * 65536)
                    await writer.drain()
            await _close_writer(writer)
        finally:
            conn.close()

    run(loop, main())


def test_start_server_serve_forever_and_context_manager(loop):
    async def main():
        handlers = Handlers(_upper_lines)
        server = await asyncio.start_server(handlers, "127.0.0.1", 0,
                                            start_serving=False)
        async with server:
            assert not server.is_serving()
            forever = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
            assert server.is_serving()
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server_port(server))
            writer.write(b"x\n")
            assert await reader.readline() == b"X\n"
            await _close_writer(writer)
            forever.cancel()
            with pytest.raises(asyncio.CancelledError):
                await forever
            assert not server.is_serving()
        assert handlers.errors == []

    run(loop, main())


@requires_unix
def test_open_unix_connection_and_start_unix_server(loop, tmp_path):
    path = str(tmp_path / "stream.sock")

    async def main():
        handlers = Handlers(_upper_lines)
        server = await asyncio.start_unix_server(handlers, path)
        try:
            assert server.sockets[0].getsockname() == path
            reader, writer = await asyncio.open_unix_connection(path)
            assert writer.get_extra_info("peername") == path
            writer.write(b"unix line\n")
            await writer.drain()
            assert await reader.readline() == b"UNIX LINE\n"
            writer.write_eof()
            assert await reader.read() == b""
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert handlers.results == [1]

    run(loop, main())


@requires_unix
def test_unix_streams_with_sock(loop, tmp_path):
    path = str(tmp_path / "s")

    async def main():
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        handlers = Handlers(_upper_lines)
        server = await asyncio.start_unix_server(handlers, sock=lsock)
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            reader, writer = await asyncio.open_unix_connection(sock=c)
            writer.write(b"q\n")
            assert await reader.readline() == b"Q\n"
            await _close_writer(writer)
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    run(loop, main())


def test_many_stream_clients(loop):
    async def main():
        handlers = Handlers(_upper_lines)
        server = await asyncio.start_server(handlers, "127.0.0.1", 0)
        port = server_port(server)

        async def client(i):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"client %d\n" % i)
            line = await reader.readline()
            await _close_writer(writer)
            return line

        try:
            lines = await asyncio.gather(*[client(i) for i in range(30)])
            assert lines == [b"CLIENT %d\n" % i for i in range(30)]
        finally:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        assert handlers.errors == []

    run(loop, main())
