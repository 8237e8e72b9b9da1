"""Debug mode: set_debug/get_debug, slow callbacks, handle reprs,
thread-safety checks, environment switches and unclosed-loop warnings."""

import asyncio
import gc
import logging
import os
import re
import threading
import time
import warnings

import pytest

from _helpers import run_briefly, run_python


def test_set_and_get_debug(loop):
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_debug_visible_inside_running_loop(loop):
    loop.set_debug(True)

    async def main():
        return asyncio.get_running_loop().get_debug()

    assert loop.run_until_complete(main()) is True


def test_slow_callback_duration_default(loop):
    assert loop.slow_callback_duration == pytest.approx(0.1)


def _slow_records(caplog):
    return [r for r in caplog.records
            if r.name == "asyncio" and r.levelno == logging.WARNING
            and "took" in r.getMessage()]


def test_slow_callback_logged_with_duration(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05

    def slow_callback_for_test():
        time.sleep(0.12)

    loop.call_soon(slow_callback_for_test)
    run_briefly(loop)
    records = _slow_records(caplog)
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "slow_callback_for_test" in msg
    m = re.search(r"took (\d+(?:\.\d+)?) seconds", msg)
    assert m, msg
    assert 0.12 <= float(m.group(1)) + 0.0005 < 5


def test_fast_callback_not_logged(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.5
    loop.call_soon(time.sleep, 0.01)
    run_briefly(loop)
    assert _slow_records(caplog) == []


def test_slow_callback_not_logged_without_debug(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(False)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.05)
    run_briefly(loop)
    assert _slow_records(caplog) == []


def test_slow_timer_and_task_step_logged(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.03

    async def slow_coroutine_step():
        time.sleep(0.06)

    loop.call_later(0.001, time.sleep, 0.06)
    loop.run_until_complete(slow_coroutine_step())
    loop.run_until_complete(asyncio.sleep(0.01))
    records = _slow_records(caplog)
    assert len(records) >= 2
    assert any("slow_coroutine_step" in r.getMessage() for r in records)


def test_handle_repr_in_debug_mode(loop):
    loop.set_debug(True)

    def some_debug_callback():
        pass

    h = loop.call_soon(some_debug_callback)
    th = loop.call_later(10, some_debug_callback)
    for handle in (h, th):
        r = repr(handle)
        assert "some_debug_callback" in r
        assert "created at" in r
        assert os.path.basename(__file__) in r
    th.cancel()
    run_briefly(loop)


def test_handle_repr_without_debug(loop):
    loop.set_debug(False)

    def plain_callback():
        pass

    h = loop.call_soon(plain_callback)
    assert "plain_callback" in repr(h)
    assert "created at" not in repr(h)
    run_briefly(loop)


def test_exception_context_has_source_traceback_in_debug(loop):
    loop.set_debug(True)
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append(ctx))

    def bad():
        raise ValueError()

    loop.call_soon(bad)
    run_briefly(loop)
    assert len(got) == 1
    tb = got[0].get("source_traceback")
    assert tb, "debug mode should record where the handle was created"
    assert any(os.path.basename(__file__) in str(frame.filename)
               for frame in tb)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_non_threadsafe_call_from_other_thread_in_debug(loop, method):
    loop.set_debug(True)
    errors = []
    done = loop.create_future()

    def other_thread():
        try:
            if method == "call_soon":
                loop.call_soon(lambda: None)
            elif method == "call_later":
                loop.call_later(0.01, lambda: None)
            else:
                loop.call_at(loop.time() + 0.01, lambda: None)
        except RuntimeError as exc:
            errors.append(exc)
        finally:
            loop.call_soon_threadsafe(done.set_result, None)

    async def main():
        t = threading.Thread(target=other_thread)
        t.start()
        await asyncio.wait_for(done, 5)
        t.join()

    loop.run_until_complete(main())
    assert len(errors) == 1
    assert "Non-thread-safe operation" in str(errors[0])


def test_threadsafe_call_allowed_in_debug(loop):
    loop.set_debug(True)
    calls = []
    done = loop.create_future()

    def other_thread():
        loop.call_soon_threadsafe(calls.append, 1)
        loop.call_soon_threadsafe(done.set_result, None)

    async def main():
        t = threading.Thread(target=other_thread)
        t.start()
        await asyncio.wait_for(done, 5)
        t.join()

    loop.run_until_complete(main())
    assert calls == [1]


def test_unclosed_loop_resource_warning(loop_factory):
    lp = loop_factory()
    with pytest.warns(ResourceWarning):
        del lp
        gc.collect()


def test_closed_loop_no_resource_warning(loop_factory):
    lp = loop_factory()
    lp.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# --- debug switches in a child process -----------------------------------

CHILD_CODE = """
import sys
{prelude}

async def main():
    return asyncio.get_running_loop().get_debug()

print("run", run(main()))
lp = new_loop()
print("new", lp.get_debug())
lp.close()
"""


def _child_debug(impl, args=(), **env):
    code = CHILD_CODE.format(prelude=impl.child_prelude())
    proc = run_python([*args, "-c", code], env=impl.child_env(**env))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split() for line in proc.stdout.splitlines()
                 if line.startswith(("run ", "new ")))
    return lines["run"], lines["new"]


@pytest.mark.timeout(60)
def test_child_debug_off_by_default(impl):
    assert _child_debug(impl) == ("False", "False")


@pytest.mark.timeout(60)
def test_child_debug_env_var_turns_debug_on(impl):
    assert _child_debug(impl, PYTHONASYNCIODEBUG="1") == ("True", "True")


@pytest.mark.timeout(60)
def test_child_dev_mode_turns_debug_on(impl):
    assert _child_debug(impl, args=("-X", "dev")) == ("True", "True")


@pytest.mark.timeout(60)
def test_child_ignore_environment_disables_env_switch(impl):
    env = impl.child_env(PYTHONASYNCIODEBUG="1")
    code = CHILD_CODE.format(prelude=impl.child_prelude())
    # -E ignores PYTHON* variables, PYTHONPATH included, so pass the path
    # to uvcore through sys.path in the code itself.
    path = env.get("PYTHONPATH", "")
    code = f"import sys; sys.path[:0] = {path.split(os.pathsep)!r}\n" + code
    proc = run_python(["-E", "-c", code], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "run False" in proc.stdout
    assert "new False" in proc.stdout


@pytest.mark.timeout(60)
def test_child_run_debug_argument(impl):
    code = impl.child_prelude() + """
async def main():
    return asyncio.get_running_loop().get_debug()
print(run(main(), debug=True), run(main(), debug=False))
"""
    proc = run_python(["-c", code], env=impl.child_env(PYTHONASYNCIODEBUG="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]
