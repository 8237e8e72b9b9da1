"""add_reader / remove_reader / add_writer / remove_writer on real fds."""

import asyncio
import errno
import os
import socket
import threading
import time

import pytest

from _helpers import run_briefly, run_until


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_reader_fires_on_data(loop, pair):
    a, b = pair
    received = []

    def on_readable(sock, tag):
        received.append((tag, sock.recv(100)))

    assert loop.add_reader(a, on_readable, a, "tag") is None
    run_briefly(loop, 3)
    assert received == []  # nothing to read yet
    b.send(b"hello")
    run_until(loop, lambda: received)
    assert received == [("tag", b"hello")]
    assert loop.remove_reader(a) is True


def test_reader_with_int_fd(loop, pair):
    a, b = pair
    received = []
    loop.add_reader(a.fileno(), lambda: received.append(a.recv(10)))
    b.send(b"x")
    run_until(loop, lambda: received)
    assert received == [b"x"]
    assert loop.remove_reader(a.fileno()) is True


def test_reader_with_fileobj_having_fileno(loop, pair):
    a, b = pair

    class Wrapper:
        def fileno(self):
            return a.fileno()

    received = []
    w = Wrapper()
    loop.add_reader(w, lambda: received.append(a.recv(10)))
    b.send(b"y")
    run_until(loop, lambda: received)
    assert received == [b"y"]
    # The same fd can be removed through another object for it.
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(w) is False


def test_reader_on_a_pipe(loop):
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        received = []
        loop.add_reader(r, lambda: received.append(os.read(r, 100)))
        os.write(w, b"pipe data")
        run_until(loop, lambda: received)
        assert received == [b"pipe data"]
        assert loop.remove_reader(r) is True
    finally:
        os.close(r)
        os.close(w)


def test_reader_is_level_triggered(loop, pair):
    a, b = pair
    calls = []
    loop.add_reader(a, lambda: calls.append(1))  # never reads the data
    b.send(b"z")
    run_until(loop, lambda: len(calls) >= 3)
    loop.remove_reader(a)
    n = len(calls)
    run_briefly(loop, 3)
    assert len(calls) == n


def test_remove_reader_returns_bool(loop, pair):
    a, b = pair
    assert loop.remove_reader(a) is False
    loop.add_reader(a, lambda: None)
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_removed_reader_not_called(loop, pair):
    a, b = pair
    calls = []
    loop.add_reader(a, calls.append, 1)
    loop.remove_reader(a)
    b.send(b"data")
    run_briefly(loop, 5)
    time.sleep(0.02)
    run_briefly(loop, 2)
    assert calls == []


def test_replacing_a_reader(loop, pair):
    a, b = pair
    calls = []

    def first():
        calls.append("first")

    def second():
        calls.append(("second", a.recv(10)))

    loop.add_reader(a, first)
    loop.add_reader(a, second)
    b.send(b"1")
    run_until(loop, lambda: calls)
    run_briefly(loop, 2)
    assert calls == [("second", b"1")]
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_writer_fires_when_writable(loop, pair):
    a, b = pair
    calls = []

    def on_writable(tag):
        calls.append(tag)
        loop.remove_writer(a)

    loop.add_writer(a, on_writable, "w")
    run_until(loop, lambda: calls)
    assert calls == ["w"]
    assert loop.remove_writer(a) is False


def test_writer_waits_for_buffer_space(loop, pair):
    a, b = pair
    # Fill a's send buffer.
    chunk = b"x" * 65536
    try:
        while True:
            a.send(chunk)
    except BlockingIOError:
        pass
    calls = []
    loop.add_writer(a, lambda: calls.append("writable"))
    run_briefly(loop, 3)
    time.sleep(0.02)
    run_briefly(loop, 2)
    assert calls == []

    # Drain from the other side: a becomes writable again.
    def drain():
        try:
            while True:
                if not b.recv(1 << 20):
                    break
        except BlockingIOError:
            pass

    loop.add_reader(b, drain)
    run_until(loop, lambda: calls)
    loop.remove_reader(b)
    assert loop.remove_writer(a) is True


def test_remove_writer_returns_bool(loop, pair):
    a, b = pair
    assert loop.remove_writer(a) is False
    loop.add_writer(a, lambda: None)
    assert loop.remove_writer(a) is True
    assert loop.remove_writer(a) is False


def test_reader_and_writer_on_same_fd(loop, pair):
    a, b = pair
    events = []

    def on_read():
        events.append(("r", a.recv(10)))

    def on_write():
        events.append("w")
        loop.remove_writer(a)

    loop.add_reader(a, on_read)
    loop.add_writer(a, on_write)
    run_until(loop, lambda: "w" in events)
    b.send(b"rw")
    run_until(loop, lambda: ("r", b"rw") in events)
    # Removing the writer kept the reader.
    assert loop.remove_writer(a) is False
    assert loop.remove_reader(a) is True


def test_remove_reader_keeps_writer(loop, pair):
    a, b = pair
    w_calls = []
    loop.add_reader(a, lambda: None)
    loop.add_writer(a, lambda: w_calls.append(1))
    assert loop.remove_reader(a) is True
    run_until(loop, lambda: w_calls)
    assert loop.remove_writer(a) is True


def test_several_fds(loop):
    pairs = [socket.socketpair() for _ in range(20)]
    try:
        received = {}
        for i, (a, b) in enumerate(pairs):
            a.setblocking(False)
            loop.add_reader(a, lambda i=i, a=a: received.setdefault(
                i, a.recv(100)))
        for i, (a, b) in enumerate(reversed(pairs)):
            b.send(str(len(pairs) - 1 - i).encode())
        run_until(loop, lambda: len(received) == len(pairs))
        assert received == {i: str(i).encode() for i in range(len(pairs))}
        for a, b in pairs:
            assert loop.remove_reader(a) is True
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_reader_sees_eof(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a, lambda: got.append(a.recv(10)))
    b.close()
    run_until(loop, lambda: got)
    loop.remove_reader(a)
    assert got[0] == b""


@pytest.mark.timeout(10)
def test_reader_woken_by_other_thread_write(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a, lambda: got.append(time.monotonic()))
    sent = []

    def writer():
        time.sleep(0.2)
        sent.append(time.monotonic())
        b.send(b"!")

    t = threading.Thread(target=writer)
    t.start()

    async def main():
        while not got:
            await asyncio.sleep(0.5)  # the loop must wake for the fd anyway

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 5))
    finally:
        t.join()
        loop.remove_reader(a)
    assert got[0] - sent[0] < 0.4


def test_fd_reused_after_remove_and_close(loop):
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    assert loop.remove_reader(a) is True
    a.close()
    b.close()
    # New sockets very likely get the same fd numbers back.
    c, d = socket.socketpair()
    try:
        got = []
        loop.add_reader(c, lambda: got.append(c.recv(10)))
        d.send(b"reuse")
        run_until(loop, lambda: got)
        assert got == [b"reuse"]
        assert loop.remove_reader(c) is True
    finally:
        c.close()
        d.close()


def test_reader_callback_removes_itself_and_closes(loop):
    a, b = socket.socketpair()
    calls = []

    def once():
        calls.append(a.recv(10))
        loop.remove_reader(a)
        a.close()

    loop.add_reader(a, once)
    b.send(b"bye")
    run_until(loop, lambda: calls)
    run_briefly(loop, 3)
    b.close()
    assert calls == [b"bye"]


def test_reader_exception_goes_to_handler(loop, pair):
    a, b = pair
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))

    def bad():
        a.recv(10)
        raise ValueError("reader")

    loop.add_reader(a, bad)
    b.send(b"1")
    run_until(loop, lambda: got)
    loop.remove_reader(a)
    assert isinstance(got[0]["exception"], ValueError)


def test_reader_on_closed_int_fd(loop):
    a, b = socket.socketpair()
    fd = a.fileno()
    a.close()
    b.close()
    try:
        with pytest.raises(OSError) as info:
            loop.add_reader(fd, lambda: None)
        assert info.value.errno == errno.EBADF
    finally:
        loop.remove_reader(fd)
    assert loop.remove_reader(fd) is False


def test_reader_on_closed_socket_object(loop):
    a, b = socket.socketpair()
    a.close()
    b.close()
    # A closed socket's fileno() is -1.
    with pytest.raises(ValueError):
        loop.add_reader(a, lambda: None)
    with pytest.raises(ValueError):
        loop.add_writer(a, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_reader(a)
    with pytest.raises(ValueError):
        loop.remove_writer(a)


@pytest.mark.parametrize("bad", ["abc", -1, 1.5, None, object()])
def test_invalid_file_objects(loop, bad):
    with pytest.raises(ValueError):
        loop.add_reader(bad, lambda: None)
    with pytest.raises(ValueError):
        loop.add_writer(bad, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_reader(bad)
    with pytest.raises(ValueError):
        loop.remove_writer(bad)


def test_remove_after_close_returns_false(loop, pair):
    a, b = pair
    loop.add_reader(a, lambda: None)
    loop.add_writer(a, lambda: None)
    loop.close()
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False


def test_sock_recv_style_future_pattern(loop, pair):
    """The classic pattern: a future completed from a reader callback."""
    a, b = pair

    async def recv_once():
        fut = loop.create_future()

        def on_read():
            loop.remove_reader(a)
            fut.set_result(a.recv(100))

        loop.add_reader(a, on_read)
        return await fut

    loop.call_later(0.01, b.send, b"payload")
    assert loop.run_until_complete(
        asyncio.wait_for(recv_once(), 5)) == b"payload"
