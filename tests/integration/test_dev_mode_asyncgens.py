"""Debug mode under `python -X dev` with async generators: source tracebacks
are captured for handles and tasks made from inside async generators, an
unfinished generator is finalized through the loop's asyncgen hooks, and
errors raised in callbacks are reported with their creation stack -- no crash
in stack capture (a uvloop complaint), the same output shape as asyncio."""

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.timeout(60)]

SCRIPT = """
import asyncio, gc, sys

events = []

async def ticker(n):
    try:
        for i in range(n):
            loop = asyncio.get_running_loop()
            # a handle and a task created inside the generator's frame
            loop.call_soon(events.append, ("soon", i))
            await asyncio.create_task(asyncio.sleep(0))
            yield i
    finally:
        events.append(("finally", n))

def broken():
    raise ValueError("from a callback")

async def main():
    loop = asyncio.get_running_loop()
    assert loop.get_debug()
    got = [i async for i in ticker(3)]
    assert got == [0, 1, 2], got
    unfinished = ticker(10)
    assert await unfinished.__anext__() == 0
    del unfinished
    gc.collect()
    errors = []
    loop.set_exception_handler(lambda l, ctx: errors.append(ctx))
    async def gen_with_error():
        loop.call_soon(broken)
        yield 1
    async for _ in gen_with_error():
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert len(errors) == 1, errors
    ctx = errors[0]
    assert isinstance(ctx["exception"], ValueError)
    assert ctx.get("source_traceback"), ctx.keys()
    assert any("gen_with_error" in str(fr) for fr in ctx["source_traceback"])
    print("EVENTS", sorted(e[0] for e in events))

run(main())
print("DONE")
"""


def test_dev_mode_with_async_generators(impl):
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", impl.child_prelude() + SCRIPT],
        env=impl.child_env(), capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DONE" in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    events = proc.stdout.split("EVENTS", 1)[1].splitlines()[0]
    # both generators ran their finally (the unfinished one via aclose)
    assert events.count("finally") == 2, events
