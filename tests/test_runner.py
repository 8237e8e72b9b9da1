"""run() / asyncio.Runner with a loop factory; uvcore's install(),
EventLoopPolicy, new_event_loop() and ``python -m uvcore``."""

import asyncio
import gc
import json
import sys
import textwrap
import threading
import time
import warnings

import pytest

from _helpers import child_env, run_python

needs_runner = pytest.mark.skipif(sys.version_info < (3, 11),
                                  reason="asyncio.Runner is 3.11+")


# --- run(): asyncio.run semantics, for both implementations ----------------------

def test_run_returns_value(impl):
    async def main(x):
        await asyncio.sleep(0)
        return x * 2

    assert impl.run(main(21)) == 42


def test_run_propagates_exception(impl):
    class Boom(Exception):
        pass

    async def main():
        raise Boom()

    with pytest.raises(Boom):
        impl.run(main())


def test_run_uses_a_fresh_loop_and_closes_it(impl):
    loops = []

    async def main():
        loops.append(asyncio.get_running_loop())

    impl.run(main())
    impl.run(main())
    assert loops[0] is not loops[1]
    assert all(lp.is_closed() for lp in loops)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_run_loop_type(impl):
    async def main():
        return type(asyncio.get_running_loop())

    loop_type = impl.run(main())
    assert issubclass(loop_type, asyncio.AbstractEventLoop)
    if impl.name == "uvcore":
        assert loop_type is impl.module.Loop


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug_argument(impl, debug):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert impl.run(main(), debug=debug) is debug


def test_run_inside_running_loop_is_refused(impl):
    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError):
                impl.run(coro)
        finally:
            coro.close()
        return "refused"

    # Refusing must not leave anything behind: no stray loop, no coroutine
    # of the refused run left un-awaited.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert impl.run(main()) == "refused"
        gc.collect()
    assert [str(w.message) for w in caught
            if issubclass(w.category, (RuntimeWarning, ResourceWarning))] == []


def test_run_cancels_leftover_tasks(impl):
    events = []

    async def background():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def main():
        asyncio.ensure_future(background())
        await asyncio.sleep(0.01)
        return "main done"

    t0 = time.monotonic()
    assert impl.run(main()) == "main done"
    assert events == ["cancelled"]
    assert time.monotonic() - t0 < 2


def test_run_finalizes_async_generators(impl):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    keep = []

    async def main():
        g = agen()
        keep.append(g)
        await g.__anext__()

    impl.run(main())
    assert events == ["agen closed"]


@pytest.mark.timeout(10)
def test_run_waits_for_executor_jobs(impl):
    done = []

    def job():
        time.sleep(0.2)
        done.append(threading.current_thread().name)

    async def main():
        asyncio.get_running_loop().run_in_executor(None, job)
        await asyncio.sleep(0)

    impl.run(main())
    assert len(done) == 1


def test_run_requires_a_coroutine(impl):
    fut_loop = asyncio.new_event_loop()
    try:
        with pytest.raises((ValueError, TypeError)):
            impl.run(123)
    finally:
        fut_loop.close()


def test_run_in_a_thread(impl):
    results = []

    async def main():
        await asyncio.sleep(0.01)
        return threading.get_ident()

    def worker():
        results.append((impl.run(main()), threading.get_ident()))

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert len(results) == 1
    assert results[0][0] == results[0][1]


# --- asyncio.Runner(loop_factory=...) ----------------------------------------------

@needs_runner
def test_runner_with_loop_factory(impl):
    async def main(x):
        return x, asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=impl.new_event_loop) as runner:
        lp = runner.get_loop()
        r1, l1 = runner.run(main(1))
        r2, l2 = runner.run(main(2))
        assert (r1, r2) == (1, 2)
        assert l1 is lp and l2 is lp
        if impl.name == "uvcore":
            assert isinstance(lp, impl.module.Loop)
    assert lp.is_closed()


@needs_runner
def test_runner_debug(impl):
    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(debug=True, loop_factory=impl.new_event_loop) as r:
        assert r.run(main()) is True


@needs_runner
def test_runner_context(impl):
    import contextvars

    var = contextvars.ContextVar("runner_var", default="none")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "from ctx")

    async def main():
        return var.get()

    with asyncio.Runner(loop_factory=impl.new_event_loop) as runner:
        assert runner.run(main(), context=ctx) == "from ctx"
        assert runner.run(main()) == "none"


@needs_runner
def test_runner_close_cleans_up(impl):
    events = []

    async def background():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def main():
        asyncio.ensure_future(background())
        await asyncio.sleep(0)

    runner = asyncio.Runner(loop_factory=impl.new_event_loop)
    runner.run(main())
    lp = runner.get_loop()
    assert not lp.is_closed()
    runner.close()
    assert lp.is_closed()
    assert events == ["cancelled"]


# --- uvcore only ---------------------------------------------------------------

def test_new_event_loop_type(uvcore):
    lp = uvcore.new_event_loop()
    try:
        assert isinstance(lp, uvcore.Loop)
        assert isinstance(lp, asyncio.AbstractEventLoop)
        assert not lp.is_running()
        assert not lp.is_closed()
    finally:
        lp.close()


def test_new_event_loop_gives_distinct_loops(uvcore):
    a, b = uvcore.new_event_loop(), uvcore.new_event_loop()
    try:
        assert a is not b
    finally:
        a.close()
        b.close()


def test_uvcore_run_with_runner_kwargs(uvcore):
    async def main():
        return type(asyncio.get_running_loop())

    assert uvcore.run(main()) is uvcore.Loop
    assert uvcore.run(main(), debug=True) is uvcore.Loop


def test_version_attribute(uvcore):
    assert isinstance(uvcore.__version__, str)
    assert uvcore.__version__[0].isdigit()


POLICIES_GONE = sys.version_info >= (3, 16)


def _policy_warnings_ignored():
    cm = warnings.catch_warnings()
    cm.__enter__()
    warnings.simplefilter("ignore", DeprecationWarning)
    return cm


@pytest.mark.skipif(POLICIES_GONE, reason="no event loop policies")
def test_install_makes_uvcore_the_default(uvcore):
    cm = _policy_warnings_ignored()
    try:
        uvcore.install()
        assert isinstance(asyncio.get_event_loop_policy(),
                          uvcore.EventLoopPolicy)
        lp = asyncio.new_event_loop()
        try:
            assert isinstance(lp, uvcore.Loop)
        finally:
            lp.close()

        async def main():
            return type(asyncio.get_running_loop())

        assert asyncio.run(main()) is uvcore.Loop
    finally:
        asyncio.set_event_loop_policy(None)
        cm.__exit__(None, None, None)
    lp = asyncio.new_event_loop()
    try:
        assert not isinstance(lp, uvcore.Loop)
    finally:
        lp.close()


@pytest.mark.skipif(POLICIES_GONE, reason="no event loop policies")
def test_event_loop_policy_class(uvcore):
    cm = _policy_warnings_ignored()
    try:
        policy = uvcore.EventLoopPolicy()
        assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
        lp = policy.new_event_loop()
        try:
            assert isinstance(lp, uvcore.Loop)
        finally:
            lp.close()
    finally:
        cm.__exit__(None, None, None)


@pytest.mark.skipif(not POLICIES_GONE, reason="policies still exist")
@pytest.mark.parametrize("name", ["install", "EventLoopPolicy"])
def test_policy_api_points_to_run_when_gone(uvcore, name):
    with pytest.raises(AttributeError, match=r"uvcore\.run"):
        getattr(uvcore, name)


# --- python -m uvcore --------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import asyncio
    import json
    import sys

    async def main():
        return type(asyncio.get_running_loop()).__module__

    module = asyncio.run(main())
    print(json.dumps({"argv": sys.argv, "module": module,
                      "name": __name__}))
""")


@pytest.mark.timeout(60)
def test_python_m_uvcore_runs_script_with_args(uvcore, tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    proc = run_python(["-m", "uvcore", str(script), "first", "second arg"],
                      env=child_env(uvcore), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["argv"][1:] == ["first", "second arg"]
    assert out["argv"][0].endswith("prog.py")
    assert out["module"].split(".")[0] == "uvcore"
    assert out["name"] == "__main__"


@pytest.mark.timeout(60)
def test_python_m_uvcore_script_exit_code(uvcore, tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import sys\nsys.exit(3)\n")
    proc = run_python(["-m", "uvcore", str(script)], env=child_env(uvcore),
                      cwd=str(tmp_path))
    assert proc.returncode == 3


@pytest.mark.timeout(60)
def test_python_m_uvcore_script_error(uvcore, tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(
        "import asyncio\n"
        "async def main():\n"
        "    raise ValueError('boom from script')\n"
        "asyncio.run(main())\n")
    proc = run_python(["-m", "uvcore", str(script)], env=child_env(uvcore),
                      cwd=str(tmp_path))
    assert proc.returncode != 0
    assert "boom from script" in proc.stderr


@pytest.mark.timeout(60)
def test_python_m_uvcore_script_imports_sibling(uvcore, tmp_path):
    (tmp_path / "sibling_mod_xyz.py").write_text("VALUE = 'sibling'\n")
    script = tmp_path / "uses_sibling.py"
    script.write_text("import sibling_mod_xyz\nprint(sibling_mod_xyz.VALUE)\n")
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    proc = run_python(["-m", "uvcore", str(script)], env=child_env(uvcore),
                      cwd=str(other_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "sibling"


@pytest.mark.timeout(60)
def test_python_m_uvcore_new_event_loop_in_script(uvcore, tmp_path):
    script = tmp_path / "newloop.py"
    script.write_text(
        "import asyncio\n"
        "lp = asyncio.new_event_loop()\n"
        "print(type(lp).__module__)\n"
        "lp.close()\n")
    proc = run_python(["-m", "uvcore", str(script)], env=child_env(uvcore),
                      cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().split(".")[0] == "uvcore"


@pytest.mark.timeout(60)
def test_python_m_uvcore_version(uvcore):
    proc = run_python(["-m", "uvcore", "--version"], env=child_env(uvcore))
    assert proc.returncode == 0, proc.stderr
    assert uvcore.__version__ in proc.stdout
    assert uvcore.libuv_version() in proc.stdout
