"""uvcore: a fast asyncio event loop for CPython, on libuv.

    import uvcore
    uvcore.run(main())                                  # like asyncio.run
    asyncio.Runner(loop_factory=uvcore.new_event_loop)  # or any loop factory hook
"""

import asyncio as _asyncio

from ._uvcore import libuv_version
from .diagnostics import SlowCallback
from .loop import Loop
from .metrics_server import serve_metrics

__version__ = '0.1.0'

__all__ = ('new_event_loop', 'run', 'Loop', 'libuv_version',
           'install', 'EventLoopPolicy', 'serve_metrics', 'SlowCallback')



def new_event_loop():
    """A new uvcore event loop."""
    return Loop()


def run(main, *, debug=None, **run_kwargs):
    """Run the coroutine main on a new uvcore loop and return its result,
    with asyncio.run()'s semantics and cleanup."""
    if _asyncio._get_running_loop() is not None:
        raise RuntimeError(
            "uvcore.run() cannot be called from a running event loop")
    run_kwargs.setdefault('loop_factory', new_event_loop)
    if hasattr(_asyncio, 'Runner'):
        with _asyncio.Runner(debug=debug, **run_kwargs) as runner:
            return runner.run(main)
    from ._runner310 import run as _run310     # Python 3.10
    return _run310(main, debug=debug, **run_kwargs)


_POLICIES_GONE = (
    "event loop policies are gone from this Python's asyncio; "
    "use uvcore.run(main) or asyncio.Runner(loop_factory=uvcore.new_event_loop)")


def _make_policy_class():
    base = getattr(_asyncio, 'DefaultEventLoopPolicy', None)
    if base is None:
        return None

    class EventLoopPolicy(base):
        """An asyncio event loop policy whose loops are uvcore loops."""

        def _loop_factory(self):
            return new_event_loop()

        def __repr__(self):
            return '<uvcore.EventLoopPolicy>'

    EventLoopPolicy.__module__ = __name__
    return EventLoopPolicy


def _install():
    """Make uvcore the loop of asyncio's default policy."""
    policy_class = globals().get('EventLoopPolicy') or __getattr__('EventLoopPolicy')
    _asyncio.set_event_loop_policy(policy_class())


def __getattr__(name):
    # The policy API is created on first use, so that importing uvcore never
    # touches asyncio's (deprecated) policy machinery.
    if name == 'EventLoopPolicy':
        cls = _make_policy_class()
        if cls is None:
            raise AttributeError(f"uvcore.EventLoopPolicy: {_POLICIES_GONE}")
        globals()['EventLoopPolicy'] = cls
        return cls
    if name == 'install':
        if not hasattr(_asyncio, 'set_event_loop_policy'):
            raise AttributeError(f"uvcore.install: {_POLICIES_GONE}")
        globals()['install'] = _install
        return _install
    raise AttributeError(f"module 'uvcore' has no attribute {name!r}")
