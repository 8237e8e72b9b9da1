"""asyncpg against a throwaway PostgreSQL server, on the loop under test.

Every scenario runs on the stdlib loop too, which proves the expectation.
"""

import asyncio
import hashlib
import socket
import ssl
import time

import pytest

asyncpg = pytest.importorskip("asyncpg")

from _helpers import run_coro  # noqa: E402
from integration._checks import _assert_no_fd_leak, _fd_baseline  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def loop_errors(loop):
    """Fail a test whose loop reported an error to its exception handler
    (e.g. an exception in a protocol callback or a destroyed pending task)."""
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    yield errors
    assert errors == []


async def _connect(pg, **kw):
    kw.setdefault("ssl", False)
    return await asyncpg.connect(**pg.dsn_kwargs(**kw), timeout=10)


async def _ssl_in_use(con):
    return await con.fetchval(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")


# ---------------------------------------------------------------------------
# Connecting


def test_connect_tcp(loop, pg_server):
    async def main():
        con = await _connect(pg_server)
        try:
            assert await con.fetchval("SELECT 1 + 1") == 2
            assert await _ssl_in_use(con) is False
            addr = await con.fetchval("SELECT inet_client_addr()::text")
            assert addr.split("/")[0] == "127.0.0.1"
            peer = con._transport.get_extra_info("peername")
            assert peer[:2] == ("127.0.0.1", pg_server.port)
        finally:
            await con.close(timeout=5)
        assert con.is_closed()

    run_coro(loop, main, timeout=30)


def test_connect_unix_socket(loop, pg_server):
    async def main():
        con = await _connect(pg_server, host=pg_server.socket_dir)
        try:
            assert await con.fetchval("SELECT 40 + 2") == 42
            # NULL client address means a Unix-domain connection.
            assert await con.fetchval("SELECT inet_client_addr()") is None
            sock = con._transport.get_extra_info("socket")
            assert sock.family == socket.AF_UNIX
        finally:
            await con.close(timeout=5)

    run_coro(loop, main, timeout=30)


def test_connect_ssl_require(loop, pg_server):
    async def main():
        con = await _connect(pg_server, ssl="require")
        try:
            assert await con.fetchval("SELECT 7 * 6") == 42
            assert await _ssl_in_use(con) is True
            sslobj = con._transport.get_extra_info("ssl_object")
            assert sslobj is not None
            assert sslobj.version().startswith("TLS")
            # Bigger payloads go through the TLS layer in several records.
            big = await con.fetchval("SELECT repeat('x', 200000)")
            assert big == "x" * 200000
        finally:
            await con.close(timeout=5)

    run_coro(loop, main, timeout=30)


def test_connect_ssl_verified_context(loop, pg_server):
    ctx = ssl.create_default_context(cafile=pg_server.ca_pem)

    async def main():
        con = await _connect(pg_server, ssl=ctx)
        try:
            assert await _ssl_in_use(con) is True
            sslobj = con._transport.get_extra_info("ssl_object")
            assert sslobj.getpeercert()["subjectAltName"]
        finally:
            await con.close(timeout=5)

    run_coro(loop, main, timeout=30)


# ---------------------------------------------------------------------------
# Pool, COPY, cancellation, LISTEN/NOTIFY


def test_pool_concurrent_queries(loop, pg_server):
    async def main():
        fds = await _fd_baseline()
        pool = await asyncpg.create_pool(
            **pg_server.dsn_kwargs(), ssl=False, min_size=5, max_size=20,
            timeout=10)
        try:
            results = await asyncio.gather(
                *(pool.fetchval("SELECT $1::int + 1", i) for i in range(500)))
            assert results == [i + 1 for i in range(500)]
            assert pool.get_size() <= 20
            assert pool.get_size() >= 5
        finally:
            await asyncio.wait_for(pool.close(), 10)
        await _assert_no_fd_leak(fds)

    run_coro(loop, main, timeout=45)


def test_copy_records_to_table(loop, pg_server):
    n = 50_000
    records = [(i, f"row-{i}") for i in range(n)]
    expected_md5 = hashlib.md5(
        "".join(r[1] for r in sorted(records, key=lambda r: r[0]))
        .encode()).hexdigest()

    async def main():
        con = await _connect(pg_server)
        try:
            await con.execute(
                "CREATE TEMP TABLE copy_t (id int PRIMARY KEY, name text)")
            status = await con.copy_records_to_table(
                "copy_t", records=records, columns=["id", "name"])
            assert status == f"COPY {n}"
            count, total, md5 = await con.fetchrow(
                "SELECT count(*), sum(id), "
                "md5(string_agg(name, '' ORDER BY id)) FROM copy_t")
            assert count == n
            assert total == n * (n - 1) // 2
            assert md5 == expected_md5
        finally:
            await con.close(timeout=5)

    run_coro(loop, main, timeout=45)


def test_cancel_running_query(loop, pg_server):
    async def main():
        fds = await _fd_baseline()
        con = await _connect(pg_server)
        try:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    con.fetchval("SELECT pg_sleep(10)"), timeout=0.3)
            assert time.monotonic() - t0 < 5
            # The connection stays usable after the cancellation.
            assert await con.fetchval("SELECT 123") == 123
            assert not con.is_in_transaction()
            assert await con.fetchval("SELECT $1::int * 2", 21) == 42
        finally:
            await con.close(timeout=5)
        # Includes the extra connection asyncpg opened for the cancel request.
        await _assert_no_fd_leak(fds)

    run_coro(loop, main, timeout=30)


def test_listen_notify(loop, pg_server):
    async def main():
        listener = await _connect(pg_server)
        sender = await _connect(pg_server)
        got = asyncio.get_running_loop().create_future()

        def on_notify(conn, pid, channel, payload):
            if not got.done():
                got.set_result((pid, channel, payload))

        try:
            await listener.add_listener("uvcore_chan", on_notify)
            await sender.execute("NOTIFY uvcore_chan, 'hello there'")
            pid, channel, payload = await asyncio.wait_for(got, 10)
            assert channel == "uvcore_chan"
            assert payload == "hello there"
            assert pid == sender.get_server_pid()
            await listener.remove_listener("uvcore_chan", on_notify)
        finally:
            await listener.close(timeout=5)
            await sender.close(timeout=5)

    run_coro(loop, main, timeout=30)


def test_transport_socket_options(loop, pg_server):
    async def main():
        con = await _connect(pg_server)
        try:
            sock = con._transport.get_extra_info("socket")
            assert sock is not None
            assert sock.family == socket.AF_INET
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == \
                socket.SOCK_STREAM
            # asyncpg enables TCP_NODELAY on TCP connections.
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) \
                in (0, 1)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 0
            assert sock.getsockname()[0] == "127.0.0.1"
            assert sock.getpeername() == ("127.0.0.1", pg_server.port)
            assert await con.fetchval("SELECT 'ok'") == "ok"
        finally:
            await con.close(timeout=5)

    run_coro(loop, main, timeout=30)


def test_ssl_pool_and_cancel(loop, pg_server):
    """A pool of TLS connections (start_tls on every one), concurrent
    queries through it, then a cancelled query on a TLS connection."""
    async def main():
        pool = await asyncpg.create_pool(
            **pg_server.dsn_kwargs(), ssl="require", min_size=5, max_size=10,
            timeout=10)
        try:
            results = await asyncio.gather(
                *(pool.fetchval("SELECT $1::int + 1", i) for i in range(200)))
            assert results == [i + 1 for i in range(200)]
            async with pool.acquire() as con:
                assert await _ssl_in_use(con) is True
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(
                        con.fetchval("SELECT pg_sleep(10)"), timeout=0.3)
                assert await con.fetchval("SELECT 5") == 5
        finally:
            await asyncio.wait_for(pool.close(), 10)

    run_coro(loop, main, timeout=45)


def test_copy_out_over_ssl(loop, pg_server):
    """COPY ... TO STDOUT of several MB read through the TLS transport."""
    async def main():
        con = await _connect(pg_server, ssl="require")
        chunks = []

        async def sink(data):
            chunks.append(data)

        try:
            status = await con.copy_from_query(
                "SELECT i, md5(i::text) FROM generate_series(1, 100000) i",
                output=sink)
            assert status == "COPY 100000"
            data = b"".join(chunks)
            lines = data.splitlines()
            assert len(lines) == 100000
            assert lines[0] == b"1\t" + hashlib.md5(b"1").hexdigest().encode()
            assert lines[-1] == (b"100000\t" +
                                 hashlib.md5(b"100000").hexdigest().encode())
        finally:
            await con.close(timeout=5)

    run_coro(loop, main, timeout=45)


@pytest.mark.parametrize("use_ssl", [False, True], ids=["plain", "tls"])
def test_server_terminates_connection(loop, pg_server, use_ssl):
    """The server ends a connection (pg_terminate_backend): the next query
    fails with asyncpg's error and the connection reports closed."""
    async def main():
        fds = await _fd_baseline()
        victim = await _connect(pg_server, ssl="require" if use_ssl else False)
        admin = await _connect(pg_server)
        try:
            assert await admin.fetchval(
                "SELECT pg_terminate_backend($1)",
                victim.get_server_pid()) is True
            deadline = time.monotonic() + 10
            while not victim.is_closed() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert victim.is_closed()
            with pytest.raises(asyncpg.exceptions.InterfaceError):
                await victim.fetchval("SELECT 1")
        finally:
            victim.terminate()
            await admin.close(timeout=5)
        await _assert_no_fd_leak(fds)

    run_coro(loop, main, timeout=30)
