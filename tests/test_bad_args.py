"""Bad arguments raise the same exception types as asyncio's loop."""

import asyncio
import concurrent.futures
import signal
import sys

import pytest


def _cb():
    pass


async def _coro_func():
    pass


class _NotCallable:
    pass


def _with_coro(method_name):
    """Call ``loop.<method_name>(coroutine)`` and close the coroutine."""
    def call(loop):
        coro = _coro_func()
        try:
            getattr(loop, method_name)(coro)
        finally:
            coro.close()
    return call


# (id, debug mode, action(loop), expected exception type)
CASES = [
    # call_soon & co. check their callback in debug mode
    ("call_soon-int-debug", True, lambda lp: lp.call_soon(1), TypeError),
    ("call_soon-object-debug", True,
     lambda lp: lp.call_soon(_NotCallable()), TypeError),
    ("call_soon-coroutine-function-debug", True,
     lambda lp: lp.call_soon(_coro_func), TypeError),
    ("call_soon-coroutine-debug", True, _with_coro("call_soon"), TypeError),
    ("call_soon-keyword-arg", False,
     lambda lp: lp.call_soon(_cb, arg=1), TypeError),
    ("call_soon-no-callback", False, lambda lp: lp.call_soon(), TypeError),
    ("call_soon_threadsafe-int-debug", True,
     lambda lp: lp.call_soon_threadsafe(1), TypeError),
    ("call_soon_threadsafe-coroutine-function-debug", True,
     lambda lp: lp.call_soon_threadsafe(_coro_func), TypeError),
    ("call_later-non-callable-debug", True,
     lambda lp: lp.call_later(1, 1), TypeError),
    ("call_later-coroutine-function-debug", True,
     lambda lp: lp.call_later(1, _coro_func), TypeError),
    ("call_at-non-callable-debug", True,
     lambda lp: lp.call_at(lp.time() + 1, "x"), TypeError),
    # delays
    ("call_later-None-delay", False,
     lambda lp: lp.call_later(None, _cb), TypeError),
    ("call_later-str-delay", False,
     lambda lp: lp.call_later("1", _cb), TypeError),
    ("call_later-list-delay", False,
     lambda lp: lp.call_later([1], _cb), TypeError),
    ("call_later-no-callback", False, lambda lp: lp.call_later(1), TypeError),
    # running
    ("run_until_complete-int", False,
     lambda lp: lp.run_until_complete(123), TypeError),
    ("run_until_complete-None", False,
     lambda lp: lp.run_until_complete(None), TypeError),
    ("run_until_complete-function", False,
     lambda lp: lp.run_until_complete(_coro_func), TypeError),
    ("create_task-int", False, lambda lp: lp.create_task(123), TypeError),
    ("create_task-coroutine-function", False,
     lambda lp: lp.create_task(_coro_func), TypeError),
    # signals
    ("add_signal_handler-str", False,
     lambda lp: lp.add_signal_handler("x", _cb), TypeError),
    ("add_signal_handler-float", False,
     lambda lp: lp.add_signal_handler(float(signal.SIGUSR1), _cb), TypeError),
    ("add_signal_handler-zero", False,
     lambda lp: lp.add_signal_handler(0, _cb), ValueError),
    ("add_signal_handler-too-big", False,
     lambda lp: lp.add_signal_handler(signal.NSIG + 10, _cb), ValueError),
    ("add_signal_handler-SIGKILL", False,
     lambda lp: lp.add_signal_handler(signal.SIGKILL, _cb), RuntimeError),
    ("add_signal_handler-coroutine-function", False,
     lambda lp: lp.add_signal_handler(signal.SIGUSR1, _coro_func), TypeError),
    ("remove_signal_handler-str", False,
     lambda lp: lp.remove_signal_handler("x"), TypeError),
    ("remove_signal_handler-zero", False,
     lambda lp: lp.remove_signal_handler(0), ValueError),
    # handlers and factories
    ("set_exception_handler-int", False,
     lambda lp: lp.set_exception_handler(1), TypeError),
    ("set_exception_handler-str", False,
     lambda lp: lp.set_exception_handler("handler"), TypeError),
    ("set_task_factory-int", False,
     lambda lp: lp.set_task_factory(1), TypeError),
    ("call_exception_handler-no-arg", False,
     lambda lp: lp.call_exception_handler(), TypeError),
    # executors
    ("run_in_executor-coroutine-function-debug", True,
     lambda lp: lp.run_in_executor(None, _coro_func), TypeError),
    ("run_in_executor-no-func", False,
     lambda lp: lp.run_in_executor(None), TypeError),
    # readers and writers
    ("add_reader-str", False, lambda lp: lp.add_reader("abc", _cb),
     ValueError),
    ("add_reader-negative-fd", False, lambda lp: lp.add_reader(-1, _cb),
     ValueError),
    ("add_writer-None", False, lambda lp: lp.add_writer(None, _cb),
     ValueError),
    ("remove_reader-float", False, lambda lp: lp.remove_reader(1.5),
     ValueError),
    ("remove_writer-negative-fd", False, lambda lp: lp.remove_writer(-5),
     ValueError),
    ("add_reader-no-callback", False, lambda lp: lp.add_reader(0), TypeError),
]

if sys.version_info >= (3, 11):
    CASES += [
        ("call_at-None", False, lambda lp: lp.call_at(None, _cb), TypeError),
        ("call_at-None-debug", True, lambda lp: lp.call_at(None, _cb),
         TypeError),
        ("set_default_executor-object", False,
         lambda lp: lp.set_default_executor(object()), TypeError),
        ("set_default_executor-process-pool", False,
         lambda lp: _process_pool_default(lp), TypeError),
    ]


def _process_pool_default(loop):
    ex = concurrent.futures.ProcessPoolExecutor(max_workers=1)
    try:
        loop.set_default_executor(ex)
    finally:
        ex.shutdown(wait=True)


@pytest.mark.usefixtures("restore_signals")
@pytest.mark.parametrize("debug,action,exc_type",
                         [pytest.param(d, a, e, id=i) for i, d, a, e in CASES])
def test_bad_argument(loop, debug, action, exc_type):
    loop.set_debug(debug)
    with pytest.raises(exc_type):
        action(loop)
    assert not loop.is_running()
    # The loop is still usable after the error.
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_non_callable_call_soon_without_debug_fails_at_run(loop):
    """Without debug mode the check is skipped; the call fails when run and
    the error reaches the exception handler."""
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))
    loop.set_debug(False)
    loop.call_soon(1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(got) == 1
    assert isinstance(got[0]["exception"], TypeError)


def test_coroutine_passed_to_run_until_complete_after_failure(loop):
    """A TypeError from run_until_complete does not leave the loop in a
    running state."""
    with pytest.raises(TypeError):
        loop.run_until_complete(object())
    assert not loop.is_running()

    async def main():
        return 1

    assert loop.run_until_complete(main()) == 1
