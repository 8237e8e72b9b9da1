"""Asynchronous generator tracking for uvcore.Loop (sys.set_asyncgen_hooks)."""

import asyncio
import warnings
import weakref


class AsyncgenMixin:
    """The asyncgen hooks that run_forever installs, and shutdown_asyncgens."""

    _asyncgens_shutdown_called = False

    def _init_asyncgens(self):
        self._asyncgens = weakref.WeakSet()

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self)
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    async def shutdown_asyncgens(self):
        """Close every asynchronous generator that is still open."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        agens = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(*[ag.aclose() for ag in agens],
                                       return_exceptions=True)
        for result, agen in zip(results, agens):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    'message': f'an error occurred during closing of '
                               f'asynchronous generator {agen!r}',
                    'exception': result,
                    'asyncgen': agen,
                })
