"""getaddrinfo / getnameinfo on numeric hosts and "localhost".

The expected answer for each case is what the socket module returns (or
raises) for the same arguments, so the tests follow the machine's resolver
configuration instead of assuming one.
"""

import asyncio
import socket

import pytest


def _socket_answer(func, *args, **kwargs):
    try:
        return ("ok", func(*args, **kwargs))
    except Exception as exc:
        return ("error", exc)


def _loop_answer(loop, coro_func, *args, **kwargs):
    async def call():
        return await asyncio.wait_for(coro_func(*args, **kwargs), 10)

    try:
        return ("ok", loop.run_until_complete(call()))
    except Exception as exc:
        return ("error", exc)


def _ipv6_loopback_works():
    try:
        socket.getaddrinfo("::1", 80)
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback_works(),
                                reason="no IPv6 loopback resolution")


def _assert_same_as_socket(loop, host, port, **kw):
    expected = _socket_answer(socket.getaddrinfo, host, port, **kw)
    got = _loop_answer(loop, loop.getaddrinfo, host, port, **kw)
    if expected[0] == "ok":
        assert got[0] == "ok", got[1]
        assert sorted(got[1]) == sorted(expected[1])
        return got[1]
    assert got[0] == "error", f"expected {expected[1]!r}, got {got[1]!r}"
    assert type(got[1]) is type(expected[1])
    if isinstance(expected[1], socket.gaierror):
        assert got[1].errno == expected[1].errno
    return None


GETADDRINFO_CASES = [
    pytest.param("127.0.0.1", 80, {}, id="v4-int-port"),
    pytest.param("127.0.0.1", "80", {}, id="v4-str-port"),
    pytest.param("127.0.0.1", b"80", {}, id="v4-bytes-port"),
    pytest.param("127.0.0.1", None, {}, id="v4-no-port"),
    pytest.param("127.0.0.1", 0, {}, id="v4-port-0"),
    pytest.param(b"127.0.0.1", 443, {}, id="v4-bytes-host"),
    pytest.param("localhost", 8080, {}, id="localhost"),
    pytest.param("localhost", None, {}, id="localhost-no-port"),
    pytest.param("127.0.0.1", 80, {"family": socket.AF_INET}, id="family"),
    pytest.param("127.0.0.1", 80, {"type": socket.SOCK_STREAM}, id="type"),
    pytest.param("127.0.0.1", 80, {"type": socket.SOCK_DGRAM},
                 id="type-dgram"),
    pytest.param("127.0.0.1", 80, {"proto": socket.IPPROTO_TCP}, id="proto"),
    pytest.param("127.0.0.1", 80, {"type": socket.SOCK_STREAM,
                                   "proto": socket.IPPROTO_TCP},
                 id="type-proto"),
    pytest.param("localhost", 80, {"family": socket.AF_INET,
                                   "type": socket.SOCK_STREAM},
                 id="localhost-filtered"),
    pytest.param("127.0.0.1", 80, {"flags": socket.AI_NUMERICHOST},
                 id="numerichost"),
    pytest.param("localhost", 80, {"flags": socket.AI_CANONNAME,
                                   "type": socket.SOCK_STREAM},
                 id="canonname"),
    pytest.param(None, 80, {"flags": socket.AI_PASSIVE,
                            "family": socket.AF_INET}, id="passive"),
    pytest.param(None, 80, {"family": socket.AF_INET}, id="no-host"),
    pytest.param("127.0.0.1", "80", {"flags": socket.AI_NUMERICSERV},
                 id="numericserv"),
    # errors
    pytest.param("localhost", 80, {"flags": socket.AI_NUMERICHOST},
                 id="err-name-with-numerichost"),
    pytest.param("256.256.256.256", 80, {"flags": socket.AI_NUMERICHOST},
                 id="err-bad-numeric-host"),
    pytest.param("not a host", 80, {"flags": socket.AI_NUMERICHOST},
                 id="err-garbage-host"),
    pytest.param("bad..host", 80, {"flags": socket.AI_NUMERICHOST},
                 id="err-idna-empty-label"),
    pytest.param("b\u00fccher.example", 80, {"flags": socket.AI_NUMERICHOST},
                 id="err-idna-non-ascii"),
    pytest.param(None, None, {}, id="err-no-host-no-port"),
    pytest.param("127.0.0.1", "notaport", {"flags": socket.AI_NUMERICSERV},
                 id="err-bad-service"),
    pytest.param("127.0.0.1", 80, {"family": 12345}, id="err-bad-family"),
    pytest.param("127.0.0.1", 80, {"type": 12345}, id="err-bad-socktype"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("host,port,kw", GETADDRINFO_CASES)
def test_getaddrinfo_matches_socket_module(loop, host, port, kw):
    _assert_same_as_socket(loop, host, port, **kw)


@needs_ipv6
@pytest.mark.parametrize("host,port,kw", [
    pytest.param("::1", 80, {}, id="v6"),
    pytest.param("::1", "443", {"type": socket.SOCK_STREAM}, id="v6-stream"),
    pytest.param("::1", None, {"family": socket.AF_INET6}, id="v6-family"),
    pytest.param("::1", 80, {"family": socket.AF_INET,
                             "flags": socket.AI_NUMERICHOST},
                 id="err-v6-host-v4-family"),
])
def test_getaddrinfo_ipv6_matches_socket_module(loop, host, port, kw):
    _assert_same_as_socket(loop, host, port, **kw)


def test_getaddrinfo_result_shape(loop):
    infos = loop.run_until_complete(
        loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert isinstance(infos, list) and infos
    for family, type_, proto, canonname, sockaddr in infos:
        assert family == socket.AF_INET
        assert isinstance(family, socket.AddressFamily)
        assert type_ == socket.SOCK_STREAM
        assert isinstance(type_, socket.SocketKind)
        assert isinstance(proto, int)
        assert isinstance(canonname, str)
        assert sockaddr == ("127.0.0.1", 80)


def test_getaddrinfo_usable_for_connecting(loop):
    server = socket.socket()
    try:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        infos = loop.run_until_complete(
            loop.getaddrinfo("localhost", port, family=socket.AF_INET,
                             type=socket.SOCK_STREAM))
        family, type_, proto, _, addr = infos[0]
        with socket.socket(family, type_, proto) as client:
            client.settimeout(5)
            client.connect(addr)
            conn, _ = server.accept()
            conn.close()
    finally:
        server.close()


def test_getaddrinfo_bad_host_raises_gaierror(loop):
    with pytest.raises(socket.gaierror):
        loop.run_until_complete(loop.getaddrinfo(
            "999.1.1.1", 80, flags=socket.AI_NUMERICHOST))


@pytest.mark.timeout(20)
def test_getaddrinfo_many_concurrent(loop):
    async def main():
        hosts = ["127.0.0.1", "localhost"] * 50
        return await asyncio.gather(*(
            loop.getaddrinfo(h, 1000 + i, type=socket.SOCK_STREAM)
            for i, h in enumerate(hosts)))

    results = loop.run_until_complete(main())
    assert len(results) == 100
    for i, infos in enumerate(results):
        assert all(sa[1] == 1000 + i for *_, sa in infos)


def test_getaddrinfo_keyword_only(loop):
    coro = None
    with pytest.raises(TypeError):
        coro = loop.getaddrinfo("127.0.0.1", 80, socket.AF_INET)
        loop.run_until_complete(coro)
    if coro is not None and asyncio.iscoroutine(coro):
        coro.close()


GETNAMEINFO_CASES = [
    pytest.param(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV,
                 id="v4-numeric"),
    pytest.param(("127.0.0.1", 80), 0, id="v4-names"),
    pytest.param(("127.0.0.1", 8080), socket.NI_NUMERICSERV, id="v4-numserv"),
    pytest.param(("127.0.0.1", 53), socket.NI_DGRAM, id="v4-dgram"),
    pytest.param(("127.0.0.1", 80), socket.NI_NAMEREQD, id="v4-namereqd"),
    pytest.param(("127.0.0.1",), 0, id="err-short-tuple"),
    pytest.param("127.0.0.1", 0, id="err-not-a-tuple"),
    pytest.param(("127.0.0.1", "80"), 0, id="err-str-port"),
    pytest.param(("127.0.0.1", 80, 0, 0), 0, id="err-v4-four-tuple"),
    pytest.param(("localhost", 80), 0, id="err-name-not-address"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("sockaddr,flags", GETNAMEINFO_CASES)
def test_getnameinfo_matches_socket_module(loop, sockaddr, flags):
    expected = _socket_answer(socket.getnameinfo, sockaddr, flags)
    got = _loop_answer(loop, loop.getnameinfo, sockaddr, flags)
    if expected[0] == "ok":
        assert got == expected
    else:
        assert got[0] == "error", f"expected {expected[1]!r}, got {got[1]!r}"
        assert type(got[1]) is type(expected[1])


@needs_ipv6
@pytest.mark.parametrize("flags", [0, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV])
def test_getnameinfo_ipv6(loop, flags):
    sockaddr = ("::1", 80, 0, 0)
    expected = socket.getnameinfo(sockaddr, flags)
    assert loop.run_until_complete(loop.getnameinfo(sockaddr, flags)) == expected


def test_getnameinfo_default_flags(loop):
    sockaddr = ("127.0.0.1", 80)
    assert loop.run_until_complete(loop.getnameinfo(sockaddr)) == \
        socket.getnameinfo(sockaddr, 0)


def test_getnameinfo_numeric_result(loop):
    assert loop.run_until_complete(loop.getnameinfo(
        ("127.0.0.1", 8765),
        socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)) == ("127.0.0.1", "8765")
