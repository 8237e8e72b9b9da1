"""redis-py's asyncio client against a throwaway redis-server, on the loop
under test.

Every scenario runs on the stdlib loop too, which proves the expectation.
"""

import asyncio
import time
import uuid

import pytest

redis = pytest.importorskip("redis")
import redis.asyncio  # noqa: E402
import redis.exceptions  # noqa: E402
from redis.asyncio.retry import Retry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402

from _helpers import run_coro  # noqa: E402
from integration._checks import _assert_no_fd_leak, _fd_baseline  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def loop_errors(loop):
    """Fail a test whose loop reported an error to its exception handler."""
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    yield errors
    assert errors == []


def _client(info, **kw):
    kw.setdefault("socket_connect_timeout", 10)
    kw.setdefault("socket_timeout", 10)
    return redis.asyncio.Redis(host=info.host, port=info.port, **kw)


def _key(name, impl):
    # Both impls share one server: keep their keys apart.
    return f"uvcore-test:{impl.name}:{name}:{uuid.uuid4().hex}"


def test_get_set(loop, impl, redis_server):
    key = _key("getset", impl)

    async def main():
        r = _client(redis_server)
        try:
            assert await r.ping() is True
            assert await r.get(key) is None
            assert await r.set(key, "value-1") is True
            assert await r.get(key) == b"value-1"
            assert await r.set(key, b"\x00\xffbinary", ex=60) is True
            assert await r.get(key) == b"\x00\xffbinary"
            big = b"y" * 1_000_000
            await r.set(key, big)
            assert await r.get(key) == big
            assert await r.incr(key + ":n") == 1
            assert await r.delete(key, key + ":n") == 2
        finally:
            await r.aclose()

    run_coro(loop, main, timeout=30)


def test_pipeline_1000_commands(loop, impl, redis_server):
    key = _key("pipe", impl)

    async def main():
        r = _client(redis_server, decode_responses=True)
        try:
            async with r.pipeline(transaction=False) as pipe:
                for i in range(500):
                    pipe.set(f"{key}:{i}", i)
                for i in range(500):
                    pipe.incrby(f"{key}:{i}", i)
                results = await pipe.execute()
            assert len(results) == 1000
            assert results[:500] == [True] * 500
            assert results[500:] == [2 * i for i in range(500)]
            values = await r.mget([f"{key}:{i}" for i in range(500)])
            assert values == [str(2 * i) for i in range(500)]
            assert await r.delete(*(f"{key}:{i}" for i in range(500))) == 500
        finally:
            await r.aclose()

    run_coro(loop, main, timeout=30)


def test_pubsub(loop, impl, redis_server):
    channel = _key("chan", impl)

    async def next_message(ps, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = await ps.get_message(ignore_subscribe_messages=True,
                                       timeout=0.5)
            if msg is not None:
                return msg
        raise AssertionError(f"no pub/sub message within {timeout} s")

    async def main():
        sub = _client(redis_server)
        pub = _client(redis_server)
        ps = sub.pubsub()
        try:
            await ps.subscribe(channel)
            # Wait for the subscription to be confirmed by the server.
            confirm = await ps.get_message(timeout=10)
            assert confirm is not None and confirm["type"] == "subscribe"
            assert await pub.publish(channel, "hello") == 1
            msg = await next_message(ps)
            assert msg["type"] == "message"
            assert msg["channel"] == channel.encode()
            assert msg["data"] == b"hello"
            for i in range(100):
                await pub.publish(channel, f"m{i}")
            got = [(await next_message(ps))["data"] for _ in range(100)]
            assert got == [f"m{i}".encode() for i in range(100)]
            await ps.unsubscribe(channel)
        finally:
            await ps.aclose()
            await sub.aclose()
            await pub.aclose()

    run_coro(loop, main, timeout=40)


def test_blpop_server_timeout(loop, impl, redis_server):
    """BLPOP whose server-side timeout expires returns None."""
    key = _key("blpop-server", impl)

    async def main():
        r = _client(redis_server, socket_timeout=5)
        try:
            t0 = time.monotonic()
            assert await r.blpop([key], timeout=0.5) is None
            assert 0.3 < time.monotonic() - t0 < 4
            assert await r.ping() is True
        finally:
            await r.aclose()

    run_coro(loop, main, timeout=30)


def test_blpop_socket_timeout(loop, impl, redis_server):
    """BLPOP blocking longer than the client's socket_timeout raises
    redis TimeoutError; the client is usable afterwards."""
    key = _key("blpop-socket", impl)

    async def main():
        # No retries: redis-py's default policy retries a TimeoutError three
        # times with exponential backoff (about 8 s in all).
        fds = await _fd_baseline()
        r = _client(redis_server, socket_timeout=0.5,
                    retry=Retry(NoBackoff(), 0))
        try:
            t0 = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                await r.blpop([key], timeout=5)
            elapsed = time.monotonic() - t0
            assert 0.3 < elapsed < 4, elapsed
            # The timed out connection was dropped; a new one works.
            assert await r.set(key, "after") is True
            assert await r.get(key) == b"after"
            await r.rpush(key + ":l", "item")
            assert await r.blpop([key + ":l"], timeout=1) == (
                (key + ":l").encode(), b"item")
            await r.delete(key)
        finally:
            await r.aclose()
        await _assert_no_fd_leak(fds)

    run_coro(loop, main, timeout=30)


def test_concurrent_commands_pool(loop, impl, redis_server):
    """300 concurrent commands over a bounded connection pool."""
    key = _key("conc", impl)

    async def main():
        fds = await _fd_baseline()
        pool = redis.asyncio.BlockingConnectionPool(
            host=redis_server.host, port=redis_server.port, max_connections=20,
            timeout=10, socket_timeout=10)
        r = redis.asyncio.Redis(connection_pool=pool)
        try:
            await asyncio.gather(
                *(r.set(f"{key}:{i}", i) for i in range(300)))
            got = await asyncio.gather(
                *(r.get(f"{key}:{i}") for i in range(300)))
            assert got == [str(i).encode() for i in range(300)]
            await r.delete(*(f"{key}:{i}" for i in range(300)))
        finally:
            await r.aclose()
            await pool.aclose()
        await _assert_no_fd_leak(fds)

    run_coro(loop, main, timeout=30)


def test_server_kills_client(loop, impl, redis_server):
    """CLIENT KILL from another client: the next command on the killed
    connection fails with ConnectionError (no retry), then a new
    connection works."""
    async def main():
        fds = await _fd_baseline()
        victim = _client(redis_server, retry=Retry(NoBackoff(), 0),
                         single_connection_client=True)
        admin = _client(redis_server)
        try:
            assert await victim.ping() is True
            cid = await victim.client_id()
            assert await admin.client_kill_filter(_id=cid) == 1
            with pytest.raises(redis.exceptions.ConnectionError):
                await victim.ping()
            assert await victim.ping() is True
            assert await victim.client_id() != cid
        finally:
            await victim.aclose()
            await admin.aclose()
        await _assert_no_fd_leak(fds)

    run_coro(loop, main, timeout=30)
