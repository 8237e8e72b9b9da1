"""uvcore.Loop: the compiled core plus the parts of asyncio's contract that are
not on a hot path."""

import asyncio
import os as _os
import warnings

from ._uvcore import BaseLoop, SockMethods
from .asyncgens import AsyncgenMixin
from .diagnostics import DiagnosticsMixin
from .exception_handler import ExceptionHandlerMixin
from .executors import ExecutorMixin
from .metrics_server import _serve_from_environment
from .network import NetworkMixin
from .processes import ProcessMixin


class Loop(BaseLoop, SockMethods, NetworkMixin, ProcessMixin, ExecutorMixin,
           AsyncgenMixin, ExceptionHandlerMixin, DiagnosticsMixin,
           asyncio.AbstractEventLoop):
    """An asyncio event loop running on libuv."""

    def __init__(self):
        self._init_asyncgens()
        # Unix server socket files to clean up (asyncio 3.13+'s
        # create_unix_server fills it; _stop_serving empties it).
        self._unix_server_sockets = {}
        self._child_pidfds = {}         # pidfd -> pid of a watched child
        self._trace_from_environment()  # UVCORE_SLOW_CALLBACK, UVCORE_WATCHDOG
        if _os.environ.get('UVCORE_METRICS_SOCKET'):
            _serve_from_environment()

    def close(self):
        super().close()
        self._close_child_watches()
        self._stop_tracing()

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()
