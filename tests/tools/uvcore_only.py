"""pytest plugin (``-p uvcore_only``, with tests/tools on sys.path): keep only
the ``uvcore`` half of the tests parametrized by loop implementation; the
``asyncio`` half runs the standard library's loop, which the memory checks
(make valgrind, make refleak) have no business measuring.

Not a test module (pytest collects test_*.py only).
"""


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (drop if params.get("impl") == "asyncio" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
