"""Small helpers shared by the test modules (not a test module itself)."""

import asyncio
import os
import subprocess
import sys
import time


def run_briefly(loop, n=1):
    """Run ``n`` iterations of ``loop``: callbacks ready now (and timers
    already due) run; callbacks they schedule are left for later."""
    for _ in range(n):
        loop.call_soon(loop.stop)
        loop.run_forever()


def run_until(loop, predicate, timeout=5.0):
    """Run ``loop`` until ``predicate()`` is true; fail after ``timeout``."""

    async def waiter():
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not reached within {timeout} s")
            await asyncio.sleep(0.001)

    loop.run_until_complete(waiter())


def run_coro(loop, coro_func, *args, timeout=10.0):
    """Run ``coro_func(*args)`` on ``loop`` with an upper time bound."""

    async def bounded():
        return await asyncio.wait_for(coro_func(*args), timeout)

    return loop.run_until_complete(bounded())


def child_env(uvcore_module=None, **extra):
    """os.environ for a child python, with the directory holding the
    imported uvcore package put first on PYTHONPATH."""
    env = dict(os.environ)
    for key in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONWARNINGS"):
        env.pop(key, None)
    if uvcore_module is not None:
        pkg_parent = os.path.dirname(
            os.path.dirname(os.path.abspath(uvcore_module.__file__)))
        parts = [pkg_parent]
        if env.get("PYTHONPATH"):
            parts.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(parts)
    env.update(extra)
    return env


def run_python(args, env, timeout=30, cwd=None):
    """Run ``sys.executable *args``; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def stdlib_run_forever_cleanup_bug():
    """True when this Python's asyncio resets its running-loop state after
    *refusing* to run (CPython 3.13.0: run_forever() calls its cleanup even
    when its setup raised), which breaks what follows a refused run."""
    outer = asyncio.new_event_loop()
    other = asyncio.new_event_loop()
    try:
        async def probe():
            try:
                other.run_forever()
            except RuntimeError:
                pass
            return asyncio._get_running_loop() is outer

        return not outer.run_until_complete(probe())
    finally:
        other.close()
        outer.close()


def stdlib_shutdown_executor_honours_timeout():
    """False for asyncio versions (e.g. 3.12.1) whose
    shutdown_default_executor(timeout) waits for the executor anyway."""
    import inspect

    try:
        src = inspect.getsource(asyncio.BaseEventLoop.shutdown_default_executor)
    except (OSError, TypeError):
        return True
    return "timeouts.timeout(" in src or "wait_for(" in src
