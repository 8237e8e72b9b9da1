"""Shared fixtures for the uvcore test suite.

Behaviour tests are written once and run against two event loop
implementations: the standard library's asyncio loop (which proves that
each expectation is right) and uvcore's loop.  The ``impl`` fixture is
parametrized with the ids ``asyncio`` and ``uvcore``; ``loop_factory`` and
``loop`` are derived from it.

If uvcore cannot be imported, every ``uvcore`` test reports an error
instead of being skipped.  ``pytest -k asyncio`` runs the asyncio half only.
"""

import asyncio
import gc
import os
import signal
import sys
import threading
import warnings

import pytest

# Make the helper module importable whatever pytest's import mode is.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import _helpers  # noqa: E402

IMPL_NAMES = ["asyncio", "uvcore"]


def pytest_configure(config):
    # `timeout` comes from pytest-timeout; register it when the plugin is
    # missing so the marker never fails under --strict-markers.
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line(
            "markers",
            "timeout(seconds): per-test time limit (needs pytest-timeout)",
        )


class Impl:
    """One event loop implementation: asyncio or uvcore."""

    def __init__(self, name, module):
        self.name = name
        self.module = module

    def new_event_loop(self):
        if self.name == "asyncio":
            return asyncio.new_event_loop()
        return self.module.new_event_loop()

    def run(self, main, **kwargs):
        """asyncio.run or uvcore.run."""
        if self.name == "asyncio":
            return asyncio.run(main, **kwargs)
        return self.module.run(main, **kwargs)

    def child_prelude(self):
        """Python source that defines ``new_loop()`` and ``run(main, **kw)``
        for this implementation, for scripts run in a child process."""
        if self.name == "asyncio":
            return (
                "import asyncio\n"
                "new_loop = asyncio.new_event_loop\n"
                "run = asyncio.run\n"
            )
        return (
            "import asyncio\n"
            "import uvcore\n"
            "new_loop = uvcore.new_event_loop\n"
            "run = uvcore.run\n"
        )

    def child_env(self, **extra):
        """Environment for a child python that must import this impl."""
        return _helpers.child_env(self.module if self.name == "uvcore" else None,
                                  **extra)

    def __repr__(self):
        return f"<Impl {self.name}>"


def import_uvcore():
    try:
        import uvcore
    except ImportError as exc:  # pragma: no cover - depends on the build
        pytest.fail(f"uvcore cannot be imported: {exc!r}", pytrace=False)
    return uvcore


@pytest.fixture(params=IMPL_NAMES)
def impl(request):
    if request.param == "asyncio":
        return Impl("asyncio", asyncio)
    return Impl("uvcore", import_uvcore())


@pytest.fixture
def loop_factory(impl):
    """A callable returning a new, not running event loop of the impl."""
    return impl.new_event_loop


@pytest.fixture
def uvcore():
    """The uvcore module, for uvcore-only tests (errors if not importable)."""
    return import_uvcore()


def _reset_asyncio_state():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if hasattr(asyncio, "set_event_loop_policy"):
            asyncio.set_event_loop_policy(None)
        try:
            asyncio.set_event_loop(None)
        except Exception:
            pass


@pytest.fixture
def loop(loop_factory):
    """A fresh loop of the impl, set as the current loop, closed afterwards."""
    _reset_asyncio_state()
    lp = loop_factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        try:
            if not lp.is_closed() and not lp.is_running():
                # Give pending executor / asyncgen work a chance to finish
                # so the next test starts clean.
                try:
                    lp.run_until_complete(lp.shutdown_asyncgens())
                except Exception:
                    pass
                lp.close()
        finally:
            _reset_asyncio_state()
            gc.collect()


@pytest.fixture
def restore_signals():
    """Save and restore the Python-level handlers of signals that tests use,
    plus the signal wakeup fd."""
    assert threading.current_thread() is threading.main_thread()
    sigs = [signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP,
            signal.SIGCHLD]
    saved = {s: signal.getsignal(s) for s in sigs}
    old_wakeup = signal.set_wakeup_fd(-1)
    if old_wakeup != -1:
        signal.set_wakeup_fd(old_wakeup)
    # Tests assume the default Python SIGINT behaviour.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in saved.items():
            if h is None:
                h = signal.SIG_DFL
            signal.signal(s, h)
        try:
            signal.set_wakeup_fd(old_wakeup)
        except (ValueError, OSError):
            signal.set_wakeup_fd(-1)
