"""Importing one event loop by name (uvcore, uvloop, asyncio): shared by the
micro suite's child (micro_child.py) and the net suite's servers
(net_servers.py), so both measure the very same loop."""

import os
import platform
import sys

from constants import REPO


def _import_loop(name):
    """Return (factory, info) for loop `name`; raises on failure."""
    import asyncio
    info = {"python": platform.python_version()}
    if name == "asyncio":
        info["version"] = platform.python_version()
        return asyncio.new_event_loop, info
    if name == "uvloop":
        import uvloop
        info["version"] = getattr(uvloop, "__version__", "?")
        try:
            from uvloop import loop as _l
            v = _l.libuv_get_version()
            info["libuv"] = "%d.%d.%d" % (v >> 16, (v >> 8) & 0xFF, v & 0xFF)
        except Exception:
            pass
        info["path"] = os.path.dirname(uvloop.__file__)
        return uvloop.new_event_loop, info
    if name == "uvcore":
        try:
            import uvcore
        except ModuleNotFoundError as e:
            # Not installed: try the source tree (an in-place build).
            if e.name != "uvcore" or not os.path.isdir(os.path.join(REPO, "uvcore")):
                raise
            sys.path.insert(0, REPO)
            try:
                import uvcore
            except ImportError as e2:
                raise ImportError("uvcore is not installed, and the source tree %s is not "
                                  "built: %s: %s" % (os.path.join(REPO, "uvcore"),
                                                     type(e2).__name__, e2)) from None
        info["path"] = os.path.dirname(uvcore.__file__)
        info["version"] = str(getattr(uvcore, "__version__", "?"))
        lv = getattr(uvcore, "libuv_version", None)
        if callable(lv):
            try:
                info["libuv"] = str(lv())
            except Exception as e:     # noqa: BLE001
                info["libuv"] = "error: %r" % (e,)
        factory = getattr(uvcore, "new_event_loop", None)
        if factory is None:
            raise ImportError("uvcore (%s) has no new_event_loop()" % info["path"])
        return factory, info
    raise ValueError("unknown loop %r" % name)
