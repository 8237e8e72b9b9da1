"""set_exception_handler / get_exception_handler / call_exception_handler /
default_exception_handler."""

import asyncio
import gc
import logging

import pytest

from _helpers import run_briefly, run_until


def _asyncio_errors(caplog):
    return [r for r in caplog.records
            if r.name == "asyncio" and r.levelno >= logging.ERROR]


def test_default_handler_is_none(loop):
    assert loop.get_exception_handler() is None


def test_set_and_get_handler(loop):
    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


@pytest.mark.parametrize("bad", [1, "handler", object()])
def test_non_callable_handler_rejected(loop, bad):
    with pytest.raises(TypeError):
        loop.set_exception_handler(bad)
    assert loop.get_exception_handler() is None


def test_custom_handler_gets_loop_and_context(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append((lp, ctx)))
    exc = ValueError("v")

    def bad():
        raise exc

    h = loop.call_soon(bad)
    run_briefly(loop)
    assert len(got) == 1
    lp, ctx = got[0]
    assert lp is loop
    assert isinstance(ctx, dict)
    assert ctx["exception"] is exc
    assert ctx["handle"] is h
    assert isinstance(ctx["message"], str)


def test_call_exception_handler_passes_context_through(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))
    marker = object()
    loop.call_exception_handler({"message": "hello", "custom": marker})
    assert len(got) == 1
    assert got[0]["message"] == "hello"
    assert got[0]["custom"] is marker


def test_default_handler_logs_error_with_exc_info(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    exc = KeyError("logged")

    def bad():
        raise exc

    loop.call_soon(bad)
    run_briefly(loop)
    errors = _asyncio_errors(caplog)
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[1] is exc


def test_default_exception_handler_logs_message_and_extra_keys(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.default_exception_handler(
        {"message": "something odd happened", "extra_key_xyz": 12345})
    errors = _asyncio_errors(caplog)
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert "something odd happened" in text
    assert "extra_key_xyz" in text
    assert "12345" in text


def test_default_exception_handler_with_exception(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    try:
        raise OSError("disk on fire")
    except OSError as e:
        exc = e
    loop.default_exception_handler({"message": "msg here", "exception": exc})
    errors = _asyncio_errors(caplog)
    assert len(errors) == 1
    assert "msg here" in errors[0].getMessage()
    assert errors[0].exc_info[1] is exc


def test_call_exception_handler_without_custom_handler_logs(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.call_exception_handler({"message": "plain message"})
    errors = _asyncio_errors(caplog)
    assert len(errors) == 1
    assert "plain message" in errors[0].getMessage()


def test_handler_that_raises_is_logged_and_loop_continues(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    handler_exc = ZeroDivisionError("handler broke")

    def handler(lp, ctx):
        raise handler_exc

    loop.set_exception_handler(handler)
    calls = []

    def bad():
        raise ValueError("cb broke")

    loop.call_soon(bad)
    loop.call_soon(calls.append, "next")
    run_briefly(loop)
    assert calls == ["next"]
    errors = _asyncio_errors(caplog)
    assert len(errors) >= 1
    assert any(r.exc_info and r.exc_info[1] is handler_exc for r in errors)


def test_handler_raising_from_call_exception_handler(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")

    def handler(lp, ctx):
        raise RuntimeError("bad handler")

    loop.set_exception_handler(handler)
    # Must not raise to the caller.
    loop.call_exception_handler({"message": "m"})
    errors = _asyncio_errors(caplog)
    assert any(isinstance(r.exc_info[1], RuntimeError)
               for r in errors if r.exc_info)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_handler_base_exception_propagates(loop, exc_type):
    def handler(lp, ctx):
        raise exc_type()

    loop.set_exception_handler(handler)

    def bad():
        raise ValueError()

    loop.call_soon(bad)
    with pytest.raises(exc_type):
        run_briefly(loop)
    assert not loop.is_running()


def test_subclass_style_handler_can_delegate_to_default(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    seen = []

    def handler(lp, ctx):
        seen.append(ctx["message"])
        lp.default_exception_handler(ctx)

    loop.set_exception_handler(handler)
    loop.call_exception_handler({"message": "delegated"})
    assert seen == ["delegated"]
    assert any("delegated" in r.getMessage() for r in _asyncio_errors(caplog))


def test_handler_reset_to_default(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))
    loop.set_exception_handler(None)

    def bad():
        raise ValueError("back to default")

    loop.call_soon(bad)
    run_briefly(loop)
    assert got == []
    assert len(_asyncio_errors(caplog)) == 1


def test_never_retrieved_future_exception(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))
    exc = ValueError("never retrieved")

    def make():
        fut = loop.create_future()
        fut.set_exception(exc)

    make()
    gc.collect()
    run_briefly(loop)
    assert len(got) == 1
    assert got[0]["exception"] is exc
    assert "future" in got[0]


def test_never_retrieved_task_exception(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))

    async def failing():
        raise LookupError("task failed")

    def make():
        task = loop.create_task(failing())
        run_until(loop, task.done)

    make()
    gc.collect()
    run_briefly(loop)
    assert len(got) == 1
    assert isinstance(got[0]["exception"], LookupError)
    assert "task" in got[0] or "future" in got[0]


def test_exception_in_task_step_not_sent_to_handler_when_awaited(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))

    async def failing():
        raise LookupError()

    async def main():
        with pytest.raises(LookupError):
            await loop.create_task(failing())

    loop.run_until_complete(main())
    gc.collect()
    run_briefly(loop)
    assert got == []


def test_handler_called_in_loop_thread_for_reader_error(loop):
    import socket
    import threading

    got = []
    loop.set_exception_handler(
        lambda lp, ctx: got.append((threading.get_ident(), ctx)))
    a, b = socket.socketpair()
    try:
        def bad_reader():
            a.recv(10)
            raise ArithmeticError("reader failed")

        loop.add_reader(a, bad_reader)
        b.send(b"x")
        run_until(loop, lambda: got)
        loop.remove_reader(a)
    finally:
        a.close()
        b.close()
    ident, ctx = got[0]
    assert ident == threading.get_ident()
    assert isinstance(ctx["exception"], ArithmeticError)
    assert "handle" in ctx


def test_exception_handler_set_inside_run(impl):
    got = []

    async def background():
        await asyncio.sleep(0)
        raise ValueError("background task failure")

    async def main():
        asyncio.get_running_loop().set_exception_handler(
            lambda lp, ctx: got.append(ctx))
        t = asyncio.ensure_future(background())
        await asyncio.sleep(0.01)
        assert t.done()
        del t

    impl.run(main())
    gc.collect()
    # The unretrieved exception was reported while the loop was alive, or
    # at collection time through the same handler.
    assert any(isinstance(c.get("exception"), ValueError) for c in got)
