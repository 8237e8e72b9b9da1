"""Pipe transports: loop.connect_read_pipe and loop.connect_write_pipe on
real pipes, FIFOs, socketpairs, ptys and character devices.

Behaviour is what the standard library's _UnixReadPipeTransport and
_UnixWritePipeTransport (asyncio/unix_events.py) do:

* the transport owns the object passed in: it is closed (``pipe.close()``)
  right after connection_lost, and ``get_extra_info('pipe')`` returns it;
* only FIFOs, sockets and character devices are accepted; anything else
  raises ValueError before the object is touched (it stays open, blocking);
* a read pipe reports EOF as eof_received then connection_lost(None); EIO
  (a pty master whose slave side is gone) ends it with connection_lost(EIO)
  without going through the exception handler;
* a write pipe notices that the reading side went away without having to
  write: connection_lost(None) if nothing was buffered, BrokenPipeError if
  data was waiting; a failing write() ends it with connection_lost(error)
  instead of raising.
"""

import asyncio
import errno
import gc
import hashlib
import os
import socket
import stat
import threading
import tty

import pytest

from _helpers import run_python
from _net_helpers import (
    Recorder, fd_is_open, grab_fd, pattern, recv_all, requires_linux, run,
    same_file, spin, wait_until,
)

pytestmark = [pytest.mark.timeout(30)]

MiB = 1024 * 1024
DEVNULL_STAT = os.stat(os.devnull)


# ---------------------------------------------------------------------------
# Helpers


@pytest.fixture
def closing():
    """Collects file objects / sockets and closes whatever is still open at
    the end of the test (never raw fds: those could be reused)."""
    objs = []
    yield objs.append
    for obj in objs:
        try:
            obj.close()
        except OSError:
            pass


def make_pipe(closing):
    """An os.pipe() as two unbuffered file objects (read end, write end)."""
    r, w = os.pipe()
    rf = open(r, "rb", buffering=0)
    wf = open(w, "wb", buffering=0)
    closing(rf)
    closing(wf)
    return rf, wf


class ThreadReader:
    """Reads a blocking file object until EOF on a thread, once ``gate`` is
    set (at once unless ``start_paused``)."""

    def __init__(self, f, start_paused=False):
        self.gate = threading.Event()
        self.got = self.error = None
        if not start_paused:
            self.gate.set()

        def target():
            try:
                self.gate.wait(20)
                self.got = f.readall()
            except BaseException as exc:  # pragma: no cover - reported below
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    async def result(self, timeout=20):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.thread.join, timeout)
        assert not self.thread.is_alive(), "reader thread did not see EOF"
        assert self.error is None, self.error
        return self.got


def record_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    return errors


async def wait_lost(proto, timeout=5):
    exc = await asyncio.wait_for(asyncio.shield(proto.lost), timeout)
    await spin(3)
    assert not proto.problems, proto.problems
    assert proto.events.count("lost") == 1
    return exc


async def assert_closed_exactly_once(fd):
    """``fd`` was just closed by the transport: check nobody closes it
    again (take the number for /dev/null, let the loop run, collect)."""
    assert not fd_is_open(fd), f"fd {fd} was left open"
    grabbed = grab_fd(fd)
    if grabbed is None:  # pragma: no cover - taken by someone else
        return
    try:
        await spin(10)
        await asyncio.sleep(0.02)
        gc.collect()
        await spin(5)
        assert fd_is_open(fd) and same_file(fd, DEVNULL_STAT), (
            f"fd {fd} was closed a second time")
    finally:
        os.close(grabbed)


# ---------------------------------------------------------------------------
# Read pipes


def _is_reading(tr, unknown):
    """tr.is_reading(); ``unknown`` where the stdlib's read pipe transport
    does not have it (Python 3.10)."""
    try:
        return tr.is_reading()
    except NotImplementedError:
        return unknown


def test_read_pipe_data_then_eof(loop, closing):
    rf, wf = make_pipe(closing)

    async def main():
        errors = record_errors(loop)
        os.write(wf.fileno(), b"before ")   # already waiting in the pipe
        tr, proto = await loop.connect_read_pipe(Recorder, rf)
        assert proto.made.done()            # connection_made before return
        assert isinstance(tr, asyncio.ReadTransport)
        assert tr.get_extra_info("pipe") is rf
        assert tr.get_extra_info("no-such-key", "dflt") == "dflt"
        assert tr.get_protocol() is proto
        assert _is_reading(tr, True) and not tr.is_closing()
        assert await proto.wait_bytes(7) == b"before "

        t = threading.Thread(target=os.write, args=(wf.fileno(), b"thread "))
        t.start()
        t.join()
        assert await proto.wait_bytes(14) == b"before thread "
        os.write(wf.fileno(), b"last")
        wf.close()
        assert await wait_lost(proto) is None
        assert proto.data == b"before thread last"
        assert proto.events == ["made", "data", "eof", "lost"]
        assert tr.is_closing() and not _is_reading(tr, False)
        assert rf.closed
        assert not errors

    run(loop, main())


def test_read_pipe_pause_resume(loop, closing):
    rf, wf = make_pipe(closing)

    async def main():
        tr, proto = await loop.connect_read_pipe(Recorder, rf)
        tr.pause_reading()
        assert not _is_reading(tr, False)
        tr.pause_reading()                  # idempotent
        os.write(wf.fileno(), b"held back")
        await asyncio.sleep(0.05)
        await spin(5)
        assert proto.data_calls == 0 and proto.events == ["made"]

        tr.resume_reading()
        assert _is_reading(tr, True)
        tr.resume_reading()                 # idempotent
        assert await proto.wait_bytes(9) == b"held back"

        # EOF is not reported while paused either.
        tr.pause_reading()
        wf.close()
        await asyncio.sleep(0.05)
        assert proto.events == ["made", "data"]
        tr.resume_reading()
        assert await wait_lost(proto) is None
        assert proto.events == ["made", "data", "eof", "lost"]

    run(loop, main())


@pytest.mark.parametrize("paused", [False, True], ids=["reading", "paused"])
def test_read_pipe_close(loop, closing, paused):
    rf, wf = make_pipe(closing)
    fd = rf.fileno()

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_read_pipe(Recorder, rf)
        if paused:
            tr.pause_reading()
        os.write(wf.fileno(), b"unread")
        tr.close()
        assert tr.is_closing() and not _is_reading(tr, False)
        tr.close()                          # second close is a no-op
        assert await wait_lost(proto) is None
        assert proto.events == ["made", "lost"]
        assert rf.closed
        await assert_closed_exactly_once(fd)
        tr.close()
        tr.pause_reading()
        tr.resume_reading()
        await spin(5)
        assert proto.events == ["made", "lost"]
        assert not errors

    run(loop, main())
    # With the read end gone, writing to the pipe fails.
    with pytest.raises(BrokenPipeError):
        os.write(wf.fileno(), b"x")


@pytest.mark.timeout(60)
def test_read_pipe_large_throughput(loop, closing):
    size = 32 * MiB
    src = pattern(size, seed=3)
    rf, wf = make_pipe(closing)

    def writer():
        view = memoryview(src)
        for i in range(0, size, 256 * 1024):
            wf.write(view[i:i + 256 * 1024])
        wf.close()

    async def main():
        tr, proto = await loop.connect_read_pipe(Recorder, rf)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        assert await wait_lost(proto, timeout=45) is None
        t.join(5)
        assert len(proto.data) == size
        assert (hashlib.sha256(proto.data).hexdigest()
                == hashlib.sha256(src).hexdigest())
        assert proto.events == ["made", "data", "eof", "lost"]

    run(loop, main(), timeout=50)


# ---------------------------------------------------------------------------
# Write pipes


@pytest.mark.parametrize("closer", ["close", "write_eof"])
def test_write_pipe_transfer_and_flow_control(loop, closing, closer):
    rf, wf = make_pipe(closing)
    data = pattern(4 * MiB, seed=5)

    async def main():
        errors = record_errors(loop)
        reader = ThreadReader(rf, start_paused=True)
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        assert proto.made.done()
        assert isinstance(tr, asyncio.WriteTransport)
        assert tr.get_extra_info("pipe") is wf
        assert tr.can_write_eof() is True
        assert tr.get_write_buffer_size() == 0

        tr.write(data[:MiB])
        size1 = tr.get_write_buffer_size()
        # The pipe holds far less than 1 MiB: the rest waits in the buffer.
        assert 0 < size1 <= MiB
        assert proto.pauses == 1 and proto.resumes == 0
        tr.writelines([data[MiB:2 * MiB], bytearray(data[2 * MiB:3 * MiB])])
        assert tr.get_write_buffer_size() == size1 + 2 * MiB
        assert proto.pauses == 1

        reader.gate.set()
        await wait_until(lambda: tr.get_write_buffer_size() == 0, 10,
                         "write buffer drained")
        assert proto.resumes == 1

        tr.write(memoryview(data)[3 * MiB:])
        getattr(tr, closer)()
        assert tr.is_closing()
        assert await wait_lost(proto, timeout=10) is None
        assert await reader.result() == data
        assert proto.pauses == proto.resumes >= 1
        assert proto.events == ["made", "lost"]
        assert tr.get_write_buffer_size() == 0
        assert wf.closed
        assert not errors

    run(loop, main(), timeout=25)


def test_write_pipe_write_eof_small(loop, closing):
    rf, wf = make_pipe(closing)
    fd = wf.fileno()

    async def main():
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        tr.write(b"small")
        tr.write_eof()
        tr.write_eof()                      # no-op
        tr.close()                          # no-op
        assert await wait_lost(proto) is None
        assert wf.closed
        await assert_closed_exactly_once(fd)
        assert rf.read() == b"small"        # then EOF
        assert rf.read() == b""

    run(loop, main())


def test_write_pipe_reader_closes_nothing_buffered(loop, closing):
    rf, wf = make_pipe(closing)

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        tr.write(b"fits in the pipe")
        assert tr.get_write_buffer_size() == 0
        await spin(3)
        assert proto.events == ["made"]
        rf.close()
        # Noticed without another write.
        assert await wait_lost(proto) is None
        assert tr.is_closing()
        assert wf.closed
        assert not errors

    run(loop, main())


def test_write_pipe_reader_closes_with_data_buffered(loop, closing):
    rf, wf = make_pipe(closing)

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        tr.write(pattern(MiB))
        assert tr.get_write_buffer_size() > 0
        await spin(3)
        rf.close()
        exc = await wait_lost(proto)
        assert isinstance(exc, BrokenPipeError)
        assert tr.get_write_buffer_size() == 0
        assert wf.closed
        # OSErrors are not reported to the exception handler.
        assert not errors

    run(loop, main())


def test_write_pipe_write_after_reader_closed(loop, closing):
    rf, wf = make_pipe(closing)

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        rf.close()
        tr.write(b"nobody reads this")      # does not raise
        tr.write(b"nor this")
        exc = await wait_lost(proto)
        assert isinstance(exc, BrokenPipeError)
        tr.write(b"after connection_lost")  # silently dropped
        await spin(3)
        assert proto.events == ["made", "lost"]
        assert wf.closed
        assert not errors

    run(loop, main())


def test_write_pipe_abort_drops_buffer(loop, closing):
    rf, wf = make_pipe(closing)
    data = pattern(MiB, seed=7)

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.is_closing()
        assert await wait_lost(proto) is None
        assert tr.get_write_buffer_size() == 0
        assert wf.closed
        tr.write(b"dropped")                # no exception
        # The reader gets what had reached the pipe, then EOF.
        got = await loop.run_in_executor(None, rf.readall)
        assert len(got) < len(data)
        assert got == data[:len(got)]
        assert not errors

    run(loop, main())


def test_write_pipe_data_types(impl, loop, closing):
    rf, wf = make_pipe(closing)
    # The stdlib checks with an assert statement (AssertionError);
    # uvcore raises TypeError.
    bad_type = TypeError if impl.name == "uvcore" else (TypeError,
                                                        AssertionError)

    async def main():
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        for bad in ("text", 42, None, [b"list"]):
            with pytest.raises(bad_type):
                tr.write(bad)
        assert not tr.is_closing()
        tr.write(b"")                       # empty: no-op
        tr.write(b"b:")
        tr.write(bytearray(b"ba:"))
        tr.write(memoryview(b"xmv:")[1:])
        # A bytearray is copied when it has to wait in the buffer.
        tr.write(b"\0" * (256 * 1024))
        assert tr.get_write_buffer_size() > 0
        ba = bytearray(b"original")
        tr.write(ba)
        ba[:] = b"MUTATED!"
        tr.close()
        reader = ThreadReader(rf)
        assert await wait_lost(proto) is None
        got = await reader.result()
        assert got == b"b:ba:mv:" + b"\0" * (256 * 1024) + b"original"
        assert proto.events == ["made", "lost"]

    run(loop, main())


# ---------------------------------------------------------------------------
# FIFOs


@pytest.fixture
def fifo_path(tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    return path


@requires_linux
def test_fifo_read_pipe(loop, closing, fifo_path):
    rf = open(os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK), "rb",
              buffering=0)
    closing(rf)

    async def main():
        tr, proto = await loop.connect_read_pipe(Recorder, rf)
        assert stat.S_ISFIFO(os.fstat(rf.fileno()).st_mode)
        # No writer has opened the FIFO yet: that is not EOF.
        await asyncio.sleep(0.05)
        assert proto.events == ["made"]
        wfd = os.open(fifo_path, os.O_WRONLY)   # a reader exists: no block
        try:
            os.write(wfd, b"through the fifo")
            assert await proto.wait_bytes(16) == b"through the fifo"
        finally:
            os.close(wfd)
        assert await wait_lost(proto) is None
        assert proto.events == ["made", "data", "eof", "lost"]
        assert rf.closed

    run(loop, main())


def test_fifo_write_pipe(loop, closing, fifo_path):
    rfd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(rfd, True)
    rf = open(rfd, "rb", buffering=0)
    closing(rf)
    wf = open(os.open(fifo_path, os.O_WRONLY), "wb", buffering=0)
    closing(wf)
    data = pattern(512 * 1024, seed=9)

    async def main():
        reader = ThreadReader(rf)
        tr, proto = await loop.connect_write_pipe(Recorder, wf)
        tr.write(data)
        tr.write_eof()
        assert await wait_lost(proto) is None
        assert await reader.result() == data
        assert wf.closed

    run(loop, main())


# ---------------------------------------------------------------------------
# Sockets


def test_socketpair_as_read_pipe(loop, closing):
    a, b = socket.socketpair()
    closing(a)
    closing(b)

    async def main():
        tr, proto = await loop.connect_read_pipe(Recorder, a)
        assert tr.get_extra_info("pipe") is a
        b.sendall(b"socket data")
        assert await proto.wait_bytes(11) == b"socket data"
        b.close()
        assert await wait_lost(proto) is None
        assert proto.events == ["made", "data", "eof", "lost"]
        assert a.fileno() == -1             # closed by the transport

    run(loop, main())


@pytest.mark.parametrize("end", ["peer_closes", "write_eof"])
def test_socketpair_as_write_pipe(loop, closing, end):
    a, b = socket.socketpair()
    closing(a)
    closing(b)
    b.settimeout(5)

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_write_pipe(Recorder, a)
        assert tr.get_extra_info("pipe") is a
        tr.writelines([b"to the ", b"peer"])
        if end == "write_eof":
            tr.write_eof()
            assert await wait_lost(proto) is None
            assert await loop.run_in_executor(None, recv_all, b) == (
                b"to the peer")
        else:
            got = b""
            while len(got) < 11:
                got += await loop.run_in_executor(None, b.recv, 100)
            assert got == b"to the peer"
            b.close()                       # noticed without writing
            assert await wait_lost(proto) is None
        assert a.fileno() == -1             # closed by the transport
        assert not errors

    run(loop, main())


# ---------------------------------------------------------------------------
# What is refused


@pytest.mark.parametrize("direction", ["read", "write"])
def test_regular_file_is_refused(loop, tmp_path, closing, direction):
    path = tmp_path / "regular"
    path.write_bytes(b"content")
    f = open(path, "rb" if direction == "read" else "r+b", buffering=0)
    closing(f)
    connect = (loop.connect_read_pipe if direction == "read"
               else loop.connect_write_pipe)

    async def main():
        errors = record_errors(loop)
        with pytest.raises(ValueError, match="pipes"):
            await connect(Recorder, f)
        await spin(5)
        assert not errors
        # Left alone: still open, still blocking, still usable.
        assert not f.closed
        assert fd_is_open(f.fileno())
        assert os.get_blocking(f.fileno())
        assert f.read() == b"content"

    run(loop, main())


# ---------------------------------------------------------------------------
# Character devices and ptys


def test_dev_null_write_pipe(loop, closing):
    f = open(os.devnull, "wb", buffering=0)
    closing(f)
    fd = f.fileno()

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_write_pipe(Recorder, f)
        assert stat.S_ISCHR(os.fstat(fd).st_mode)
        tr.write(pattern(2 * MiB))
        await wait_until(lambda: tr.get_write_buffer_size() == 0)
        await asyncio.sleep(0.02)
        assert proto.events == ["made"]     # no spurious "peer closed"
        tr.close()
        assert await wait_lost(proto) is None
        assert f.closed
        await assert_closed_exactly_once(fd)
        assert not errors

    run(loop, main())


DEV_NULL_READ_CHILD = """
import asyncio

class P(asyncio.Protocol):
    def __init__(self):
        self.lost = asyncio.get_running_loop().create_future()
    def connection_lost(self, exc):
        self.lost.set_result(exc)

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda lp, ctx: print(
        "handler", type(ctx.get("exception")).__name__, flush=True))
    f = open("/dev/null", "rb", buffering=0)
    try:
        tr, proto = await loop.connect_read_pipe(P, f)
    except Exception as exc:
        print("refused", type(exc).__name__, f.closed, flush=True)
        f.read()
        return
    print("accepted", flush=True)
    await asyncio.sleep(0.05)
    tr.close()
    exc = await asyncio.wait_for(proto.lost, 5)
    print("lost", exc, f.closed, flush=True)

run(main())
print("done", flush=True)
"""


@requires_linux
def test_dev_null_read_pipe(impl):
    # /dev/null is a character device, so it passes the type check (no
    # ValueError), but it cannot be polled: epoll_ctl fails with EPERM.  The
    # stdlib accepts it anyway and reports the EPERM of its deferred
    # add_reader to the exception handler; refusing it at once with that
    # OSError, leaving the file open, is as good.  Run in a child: a poller
    # that cannot cope must not take the test process down.
    code = impl.child_prelude() + DEV_NULL_READ_CHILD
    proc = run_python(["-c", code], env=impl.child_env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "done", proc.stdout
    if impl.name == "asyncio" or "accepted" in lines:
        assert "accepted" in lines, proc.stdout
        assert "lost None True" in lines, proc.stdout
    else:
        assert "refused PermissionError False" in lines, proc.stdout
    if impl.name == "asyncio":
        assert "handler PermissionError" in lines, proc.stdout


def _openpty_raw():
    try:
        master, slave = os.openpty()
    except OSError as exc:  # pragma: no cover - no ptys here
        pytest.skip(f"no pty: {exc}")
    tty.setraw(slave)
    return master, slave


@requires_linux
def test_pty_master_read_pipe_eio(loop, closing):
    master, slave = _openpty_raw()
    mf = open(master, "rb", buffering=0)
    sf = open(slave, "wb", buffering=0)
    closing(mf)
    closing(sf)

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_read_pipe(Recorder, mf)
        assert stat.S_ISCHR(os.fstat(master).st_mode)
        sf.write(b"from the pty\n")
        assert await proto.wait_bytes(13) == b"from the pty\n"
        sf.close()
        # Reading the master once the slave is gone fails with EIO: the
        # transport closes with that error, no eof_received, no handler.
        exc = await wait_lost(proto)
        assert isinstance(exc, OSError) and exc.errno == errno.EIO, exc
        assert proto.events == ["made", "data", "lost"]
        assert mf.closed
        assert not errors

    run(loop, main())


@requires_linux
def test_pty_slave_read_pipe_eof(loop, closing):
    master, slave = _openpty_raw()
    mf = open(master, "wb", buffering=0)
    sf = open(slave, "rb", buffering=0)
    closing(mf)
    closing(sf)

    async def main():
        errors = record_errors(loop)
        tr, proto = await loop.connect_read_pipe(Recorder, sf)
        mf.write(b"typed")
        assert await proto.wait_bytes(5) == b"typed"
        mf.close()                          # hang-up: plain EOF on the slave
        assert await wait_lost(proto) is None
        assert proto.events == ["made", "data", "eof", "lost"]
        assert sf.closed
        assert not errors

    run(loop, main())


# ---------------------------------------------------------------------------
# Leaks


def _fd_count():
    return len(os.listdir("/proc/self/fd"))


@requires_linux
def test_no_fd_leak(loop, closing):
    if not os.path.isdir("/proc/self/fd"):  # pragma: no cover
        pytest.skip("no /proc/self/fd")

    async def one_round():
        rf, wf = make_pipe(closing)
        rtr, rproto = await loop.connect_read_pipe(Recorder, rf)
        wtr, wproto = await loop.connect_write_pipe(Recorder, wf)
        wtr.write(b"ping")
        assert await rproto.wait_bytes(4) == b"ping"
        wtr.close()
        rtr.close()
        await wait_lost(wproto)
        await wait_lost(rproto)
        assert rf.closed and wf.closed

    async def main():
        await one_round()                   # warm-up: lazily made loop fds
        await spin(5)
        gc.collect()
        before = _fd_count()
        for _ in range(50):
            await one_round()
        await spin(5)
        gc.collect()
        assert _fd_count() == before

    run(loop, main(), timeout=20)
