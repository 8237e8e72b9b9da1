"""Stream transport behaviour over TCP: write flow control, BufferedProtocol,
half-close, writes after the connection is lost, writelines, close versus
abort with pending data, large transfers, set_protocol, protocol errors."""

import asyncio
import hashlib
import logging

import pytest

from _net_helpers import (
    Echo, HalfOpenRecorder, Pair, connected_pair, Recorder, pattern, run, set_linger_zero, spin,
    wait_until,
)

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024


class FlowRecorder(Recorder):
    """Records the write-buffer size seen at each pause/resume call."""

    def __init__(self):
        super().__init__()
        self.pause_sizes = []
        self.resume_sizes = []

    def pause_writing(self):
        super().pause_writing()
        self.pause_sizes.append(self.transport.get_write_buffer_size())

    def resume_writing(self):
        super().resume_writing()
        self.resume_sizes.append(self.transport.get_write_buffer_size())


class Sink(asyncio.BufferedProtocol):
    """A BufferedProtocol that checks how the transport uses its buffer."""

    def __init__(self, bufsize=64 * 1024):
        loop = asyncio.get_running_loop()
        self.buf = bytearray(bufsize)
        self.received = bytearray()
        self.transport = None
        self.get_buffer_calls = 0
        self.sizehints = set()
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.events = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        self.made.set_result(transport)

    def get_buffer(self, sizehint):
        self.get_buffer_calls += 1
        self.sizehints.add(sizehint)
        return self.buf

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        self.received += self.buf[:nbytes]
        if not self.events or self.events[-1] != "data":
            self.events.append("data")

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def _handler_log(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    return calls


# ---------------------------------------------------------------------------
# Write buffer limits and flow control


def test_write_buffer_limits(loop):
    async def main():
        pair = await Pair.tcp(loop)
        try:
            tr = pair.ctr
            assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            assert tr.get_write_buffer_size() == 0
            tr.set_write_buffer_limits(high=64)
            assert tr.get_write_buffer_limits() == (16, 64)
            tr.set_write_buffer_limits(low=10)
            assert tr.get_write_buffer_limits() == (10, 40)
            tr.set_write_buffer_limits(high=100, low=10)
            assert tr.get_write_buffer_limits() == (10, 100)
            tr.set_write_buffer_limits(high=0)
            assert tr.get_write_buffer_limits() == (0, 0)
            tr.set_write_buffer_limits()
            assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            with pytest.raises(ValueError) as ei:
                tr.set_write_buffer_limits(high=1, low=2)
            assert str(ei.value) == "high (1) must be >= low (2) must be >= 0"
            with pytest.raises(ValueError):
                tr.set_write_buffer_limits(high=-1)
            # A refused setting leaves the old one.
            assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.parametrize("limits", [None, (256 * 1024, 32 * 1024), (0, 0)],
                         ids=["default", "custom", "zero"])
def test_pause_and_resume_writing_once_at_the_water_marks(loop, limits):
    size = 16 * MiB
    blob = pattern(size)

    async def main():
        pair = await Pair.tcp(loop, client=FlowRecorder, server=Recorder)
        try:
            tr, cp = pair.ctr, pair.cproto
            if limits is not None:
                tr.set_write_buffer_limits(*limits)
            low, high = tr.get_write_buffer_limits()
            pair.stransport.pause_reading()
            tr.write(blob[:size // 2])
            assert cp.pauses == 1
            assert cp.pause_sizes[0] > high
            assert tr.get_write_buffer_size() > high
            tr.write(blob[size // 2:])           # already paused: no 2nd call
            assert cp.pauses == 1
            await asyncio.sleep(0.05)
            assert cp.resumes == 0
            pair.stransport.resume_reading()
            await asyncio.wait_for(pair.sproto.wait_bytes(size), 20)
            await wait_until(lambda: tr.get_write_buffer_size() == 0)
            assert (cp.pauses, cp.resumes) == (1, 1)
            assert cp.resume_sizes[0] <= low
            assert pair.sproto.data == blob
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_lowering_high_water_pauses_at_once(loop):
    async def main():
        pair = await Pair.tcp(loop, client=FlowRecorder, server=Recorder)
        try:
            tr, cp = pair.ctr, pair.cproto
            tr.set_write_buffer_limits(high=1 << 30)
            pair.stransport.pause_reading()
            tr.write(pattern(16 * MiB))
            buffered = tr.get_write_buffer_size()
            assert buffered > 0
            assert cp.pauses == 0
            tr.set_write_buffer_limits(high=buffered - 1)
            assert cp.pauses == 1                 # synchronously
            assert tr.get_write_buffer_limits() == (
                (buffered - 1) // 4, buffered - 1)
            pair.stransport.resume_reading()
            await asyncio.wait_for(pair.sproto.wait_bytes(16 * MiB), 20)
            await wait_until(lambda: cp.resumes == 1)
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_small_writes_do_not_pause(loop):
    async def main():
        pair = await Pair.tcp(loop, client=FlowRecorder)
        try:
            for i in range(200):
                pair.ctr.write(b"%04d" % i)
            await pair.cproto.wait_bytes(800)
            assert pair.cproto.pauses == 0
            assert pair.ctr.get_write_buffer_size() == 0
        finally:
            await pair.aclose()

    run(loop, main())


class FailingFlow(Recorder):
    def pause_writing(self):
        raise ZeroDivisionError("pause")

    def resume_writing(self):
        raise KeyError("resume")


def test_errors_in_pause_and_resume_writing_go_to_the_handler(loop):
    async def main():
        calls = _handler_log(loop)
        pair = await Pair.tcp(loop, client=FailingFlow, server=Recorder)
        try:
            pair.stransport.pause_reading()
            pair.ctr.write(pattern(16 * MiB))
            assert [c["message"] for c in calls] == [
                "protocol.pause_writing() failed"]
            assert isinstance(calls[0]["exception"], ZeroDivisionError)
            assert calls[0]["transport"] is pair.ctr
            assert calls[0]["protocol"] is pair.cproto
            pair.stransport.resume_reading()
            await asyncio.wait_for(pair.sproto.wait_bytes(16 * MiB), 20)
            await wait_until(lambda: len(calls) == 2)
            assert calls[1]["message"] == "protocol.resume_writing() failed"
            assert isinstance(calls[1]["exception"], KeyError)
            # The transport carries on.
            assert not pair.ctr.is_closing()
            pair.ctr.write(b"!")
            await pair.sproto.wait_bytes(16 * MiB + 1)
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


# ---------------------------------------------------------------------------
# Large transfers and ordering


@pytest.mark.timeout(60)
def test_large_transfer_both_ways_byte_for_byte(loop):
    size = 16 * MiB
    up = pattern(size, seed=3)
    down = pattern(size, seed=4)

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            # Several write sizes, so some writes are partial.
            pos = 0
            for n in (1, 999, 65536, 3 * MiB + 7, size):
                pair.ctr.write(up[pos:pos + n])
                pos += n
                if pos >= size:
                    break
            pair.stransport.write(memoryview(down))
            got_up = await asyncio.wait_for(pair.sproto.wait_bytes(size), 30)
            got_down = await asyncio.wait_for(pair.cproto.wait_bytes(size),
                                              30)
            assert len(got_up) == size and len(got_down) == size
            assert hashlib.sha256(got_up).digest() == \
                hashlib.sha256(up).digest()
            assert got_down == down
        finally:
            await pair.aclose()

    run(loop, main(), timeout=45)


@pytest.mark.timeout(60)
def test_large_echo(loop):
    size = 32 * MiB
    blob = pattern(size, seed=5)

    async def main():
        pair = await Pair.tcp(loop, server=Echo)
        try:
            pair.ctr.write(blob)
            got = await asyncio.wait_for(pair.cproto.wait_bytes(size), 40)
            assert got == blob
        finally:
            await pair.aclose()

    run(loop, main(), timeout=50)


def test_order_kept_across_buffered_and_direct_writes(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.stransport.pause_reading()
            parts = []
            for i in range(300):
                parts.append(b"<%d>" % i)
                if i % 100 == 50:
                    parts.append(pattern(2 * MiB, seed=i))
            for p in parts:
                pair.ctr.write(p)
            expected = b"".join(parts)
            await asyncio.sleep(0.02)
            pair.stransport.resume_reading()
            got = await asyncio.wait_for(
                pair.sproto.wait_bytes(len(expected)), 20)
            assert got == expected
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# writelines


def test_writelines(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            tr = pair.ctr
            tr.writelines([b"a", bytearray(b"bc"), memoryview(b"def")])
            tr.writelines([])
            tr.writelines(iter([b"g", b"h"]))
            tr.writelines(b"%d," % i for i in range(3))
            expected = b"abcdefgh0,1,2,"
            assert await pair.sproto.wait_bytes(len(expected)) == expected
        finally:
            await pair.aclose()

    run(loop, main())


def test_writelines_large_items_keep_order(loop):
    items = [pattern(3 * MiB, seed=i) for i in range(4)] + [b"tail"]
    expected = b"".join(items)

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.ctr.writelines(items)
            pair.ctr.write(b"+after")
            got = await asyncio.wait_for(
                pair.sproto.wait_bytes(len(expected) + 6), 20)
            assert got == expected + b"+after"
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# Half-close


def test_write_eof_with_half_open_peer(loop):
    async def main():
        pair = await Pair.tcp(loop, server=HalfOpenRecorder)
        try:
            ctr, stran = pair.ctr, pair.stransport
            assert ctr.can_write_eof()
            ctr.write(b"question")
            ctr.write_eof()
            ctr.write_eof()                      # second call is a no-op
            assert not ctr.is_closing()
            with pytest.raises(RuntimeError) as ei:
                ctr.write(b"more")
            assert str(ei.value) == "Cannot call write() after write_eof()"
            with pytest.raises(RuntimeError, match=r"after write_eof\(\)"):
                ctr.writelines([b"more"])
            await asyncio.wait_for(pair.sproto.eof, 5)
            assert pair.sproto.data == b"question"
            # eof_received() returned True: the server side stays open.
            await asyncio.sleep(0.05)
            assert not stran.is_closing()
            assert not pair.sproto.lost.done()
            stran.write(b"answer")
            assert await pair.cproto.wait_bytes(6) == b"answer"
            stran.close()
            await asyncio.wait_for(pair.cproto.lost, 5)
            assert pair.cproto.events == ["made", "data", "eof", "lost"]
            assert pair.cproto.lost_exc is None
            assert pair.sproto.events == ["made", "data", "eof", "lost"]
        finally:
            await pair.aclose()

    run(loop, main())


def test_eof_received_false_closes_the_transport(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.ctr.write_eof()
            await asyncio.wait_for(pair.sproto.lost, 5)
            assert pair.sproto.events == ["made", "eof", "lost"]
            assert pair.sproto.lost_exc is None
            assert pair.stransport.is_closing()
            await asyncio.wait_for(pair.cproto.lost, 5)
            assert pair.cproto.events == ["made", "eof", "lost"]
        finally:
            await pair.aclose()

    run(loop, main())


def test_write_eof_flushes_pending_data_first(loop):
    size = 16 * MiB
    blob = pattern(size, seed=9)

    async def main():
        pair = await Pair.tcp(loop, server=HalfOpenRecorder)
        try:
            pair.stransport.pause_reading()
            pair.ctr.write(blob)
            assert pair.ctr.get_write_buffer_size() > 0
            pair.ctr.write_eof()
            await asyncio.sleep(0.05)
            assert not pair.sproto.eof.done()
            pair.stransport.resume_reading()
            await asyncio.wait_for(pair.sproto.eof, 20)
            assert pair.sproto.data == blob
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_paused_reader_sees_data_and_eof_after_resume(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.ctr.pause_reading()
            pair.stransport.write(b"bye")
            pair.stransport.close()
            await asyncio.wait_for(pair.sproto.lost, 5)
            await asyncio.sleep(0.05)
            assert pair.cproto.events == ["made"]
            pair.ctr.resume_reading()
            await asyncio.wait_for(pair.cproto.lost, 5)
            assert pair.cproto.events == ["made", "data", "eof", "lost"]
            assert pair.cproto.data == b"bye"
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# Writes after the connection is lost


def _send_warnings(caplog):
    return [r for r in caplog.records
            if r.name == "asyncio" and r.levelno == logging.WARNING
            and r.getMessage() == "socket.send() raised exception."]


@pytest.mark.parametrize("how", ["close", "abort", "peer-eof", "peer-reset"])
def test_writes_after_loss_are_dropped_then_logged(loop, caplog, how):
    caplog.set_level(logging.WARNING, logger="asyncio")

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            tr = pair.ctr
            if how == "close":
                tr.close()
            elif how == "abort":
                tr.abort()
            elif how == "peer-eof":
                pair.stransport.close()
            else:
                set_linger_zero(pair.stransport.get_extra_info("socket"))
                pair.stransport.close()
            await asyncio.wait_for(pair.cproto.lost, 5)
            caplog.clear()
            for _ in range(4):
                tr.write(b"into the void")      # silently dropped
            assert _send_warnings(caplog) == []
            tr.write(b"fifth")
            assert len(_send_warnings(caplog)) == 1
            tr.write(b"sixth")
            assert len(_send_warnings(caplog)) == 2
            # Empty writes are ignored entirely.
            tr.write(b"")
            assert len(_send_warnings(caplog)) == 2
            await spin()
            assert "data" not in pair.sproto.events
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# close() versus abort() with pending data


def test_close_flushes_pending_data_before_connection_lost(loop):
    size = 16 * MiB
    blob = pattern(size, seed=11)

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.stransport.pause_reading()
            pair.ctr.write(blob)
            assert pair.ctr.get_write_buffer_size() > 0
            pair.ctr.close()
            assert pair.ctr.is_closing()
            await asyncio.sleep(0.1)
            assert not pair.cproto.lost.done()     # still flushing
            pair.stransport.resume_reading()
            await asyncio.wait_for(pair.cproto.lost, 20)
            assert pair.cproto.lost_exc is None
            assert pair.ctr.get_write_buffer_size() == 0
            await asyncio.wait_for(pair.sproto.lost, 20)
            assert pair.sproto.data == blob
            assert pair.sproto.events == ["made", "data", "eof", "lost"]
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_abort_discards_pending_data(loop):
    size = 32 * MiB
    blob = pattern(size, seed=12)

    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.stransport.pause_reading()
            pair.ctr.write(blob)
            assert pair.ctr.get_write_buffer_size() > 0
            pair.ctr.abort()
            assert pair.ctr.is_closing()
            assert pair.ctr.get_write_buffer_size() == 0
            exc = await asyncio.wait_for(pair.cproto.lost, 5)
            assert exc is None
            assert pair.cproto.events == ["made", "lost"]
            pair.stransport.resume_reading()
            exc = await asyncio.wait_for(pair.sproto.lost, 20)
            assert exc is None or isinstance(exc, ConnectionResetError)
            got = bytes(pair.sproto.data)
            assert len(got) < size
            assert got == blob[:len(got)]
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_abort_after_close_drops_the_flush(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.stransport.pause_reading()
            pair.ctr.write(pattern(32 * MiB))
            pair.ctr.close()
            await asyncio.sleep(0.02)
            assert not pair.cproto.lost.done()
            pair.ctr.abort()
            assert await asyncio.wait_for(pair.cproto.lost, 5) is None
            assert pair.cproto.events == ["made", "lost"]
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# BufferedProtocol


@pytest.mark.parametrize("bufsize", [1, 7, 64 * 1024, 1 * MiB])
def test_buffered_protocol_receives_everything(loop, bufsize):
    size = 4 * MiB if bufsize >= 1024 else 64 * 1024
    blob = pattern(size, seed=bufsize)

    async def main():
        pair = await Pair.tcp(loop, client=Recorder,
                              server=lambda: Sink(bufsize))
        try:
            sink = pair.sproto
            assert isinstance(sink, asyncio.BufferedProtocol)
            pair.ctr.write(blob)
            pair.ctr.write_eof()
            await asyncio.wait_for(sink.eof, 20)
            assert bytes(sink.received) == blob
            assert sink.get_buffer_calls >= size // bufsize
            assert all(isinstance(h, int) for h in sink.sizehints)
            await asyncio.wait_for(sink.lost, 5)
            assert sink.events == ["made", "data", "eof", "lost"]
        finally:
            await pair.aclose()

    run(loop, main(), timeout=25)


def test_buffered_protocol_memoryview_buffer(loop):
    class ViewSink(Sink):
        def get_buffer(self, sizehint):
            super().get_buffer(sizehint)
            return memoryview(self.buf)[:100]

    async def main():
        pair = await Pair.tcp(loop, server=ViewSink)
        try:
            pair.ctr.write(b"x" * 1000)
            await wait_until(lambda: len(pair.sproto.received) >= 1000)
            assert pair.sproto.received == b"x" * 1000
            assert pair.sproto.get_buffer_calls >= 10
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.parametrize("failure", ["empty", "raise-get", "raise-updated"])
def test_buffered_protocol_errors_are_fatal(loop, failure):
    class Bad(Sink):
        def get_buffer(self, sizehint):
            if failure == "empty":
                return bytearray()
            if failure == "raise-get":
                raise ZeroDivisionError("get_buffer")
            return super().get_buffer(sizehint)

        def buffer_updated(self, nbytes):
            if failure == "raise-updated":
                raise ZeroDivisionError("buffer_updated")
            super().buffer_updated(nbytes)

    async def main():
        calls = _handler_log(loop)
        pair = await Pair.tcp(loop, server=Bad)
        try:
            pair.ctr.write(b"data")
            exc = await asyncio.wait_for(pair.sproto.lost, 5)
            assert len(calls) == 1
            ctx = calls[0]
            if failure == "empty":
                assert isinstance(exc, RuntimeError)
                assert str(exc) == "get_buffer() returned an empty buffer"
                assert ctx["message"] == ("Fatal error: protocol.get_buffer() "
                                          "call failed.")
            elif failure == "raise-get":
                assert isinstance(exc, ZeroDivisionError)
                assert ctx["message"] == ("Fatal error: protocol.get_buffer() "
                                          "call failed.")
            else:
                assert isinstance(exc, ZeroDivisionError)
                assert ctx["message"] == ("Fatal error: protocol."
                                          "buffer_updated() call failed.")
            assert ctx["exception"] is exc
            assert ctx["transport"] is pair.stransport
            assert ctx["protocol"] is pair.sproto
            await asyncio.wait_for(pair.cproto.lost, 5)
        finally:
            await pair.aclose()

    run(loop, main())


@pytest.mark.parametrize("where", ["data_received", "eof_received"])
def test_protocol_errors_are_fatal(loop, where):
    class Bad(Recorder):
        def data_received(self, data):
            if where == "data_received":
                raise ZeroDivisionError(where)
            super().data_received(data)

        def eof_received(self):
            if where == "eof_received":
                raise ZeroDivisionError(where)
            return super().eof_received()

    async def main():
        calls = _handler_log(loop)
        pair = await Pair.tcp(loop, server=Bad)
        try:
            pair.ctr.write(b"data")
            pair.ctr.write_eof()
            exc = await asyncio.wait_for(pair.sproto.lost, 5)
            assert isinstance(exc, ZeroDivisionError)
            assert len(calls) == 1
            assert calls[0]["message"] == (f"Fatal error: protocol.{where}() "
                                           f"call failed.")
            assert calls[0]["exception"] is exc
            assert calls[0]["protocol"] is pair.sproto
            assert calls[0]["transport"] is pair.stransport
            assert pair.stransport.is_closing()
        finally:
            await pair.aclose()

    run(loop, main())


# ---------------------------------------------------------------------------
# set_protocol


def test_switch_from_protocol_to_buffered_protocol(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Recorder)
        try:
            pair.ctr.write(b"first")
            await pair.sproto.wait_bytes(5)
            sink = Sink(16)
            sink.transport = pair.stransport
            pair.stransport.set_protocol(sink)
            assert pair.stransport.get_protocol() is sink
            pair.ctr.write(b"second part, buffered")
            await wait_until(lambda: len(sink.received) >= 21)
            assert sink.received == b"second part, buffered"
            assert pair.sproto.data == b"first"
            pair.ctr.close()
            await asyncio.wait_for(sink.lost, 5)
            assert sink.events[-2:] == ["eof", "lost"]
            pair.sproto = None
        finally:
            await pair.aclose()

    run(loop, main())


def test_switch_from_buffered_protocol_to_protocol(loop):
    async def main():
        pair = await Pair.tcp(loop, server=Sink)
        try:
            pair.ctr.write(b"buffered")
            await wait_until(lambda: len(pair.sproto.received) >= 8)
            rec = Recorder()
            rec.transport = pair.stransport
            rec.events.append("made")      # it takes over a live transport
            pair.stransport.set_protocol(rec)
            pair.ctr.write(b"plain")
            assert await rec.wait_bytes(5) == b"plain"
            assert pair.sproto.received == b"buffered"
            pair.ctr.close()
            await asyncio.wait_for(rec.lost, 5)
            pair.sproto = None
        finally:
            await pair.aclose()

    run(loop, main())


def test_peer_reset_while_writing_reports_the_error(loop):
    async def main():
        calls = _handler_log(loop)
        c, s = connected_pair()
        try:
            tr, proto = await loop.create_connection(Recorder, sock=c)
            tr.pause_reading()             # only the write side can notice
            tr.write(pattern(16 * MiB))
            assert tr.get_write_buffer_size() > 0
            set_linger_zero(s)
            s.close()
            exc = await asyncio.wait_for(proto.lost, 5)
            assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), \
                exc
            assert tr.is_closing()
            assert tr.get_write_buffer_size() == 0
            # An OSError from the socket is not reported to the handler.
            assert calls == []
            assert not proto.problems
        finally:
            s.close()
            c.close()

    run(loop, main())
