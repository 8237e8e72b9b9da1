# cython: language_level=3, boundscheck=False, wraparound=True, cdivision=True, auto_pickle=False
"""uvcore's compiled core: one extension module, built from the rooms below.

libuv is linked statically into this module. It has process-wide state (the
signal pipe, the thread pool), so it must exist once per process: that is why
the rooms are included into one module rather than built as several modules
that would each carry their own copy of libuv.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_REFCNT
from cpython.mem cimport (PyMem_Malloc, PyMem_Realloc, PyMem_Free,
                          PyMem_RawMalloc, PyMem_RawCalloc, PyMem_RawFree)
from libc.math cimport ceil
from libc.limits cimport INT_MAX
from cpython.pyport cimport PY_SSIZE_T_MAX

from .includes cimport uv
from .includes.capi cimport (
    PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit,
    PyObject_Vectorcall, PY_VECTORCALL_ARGUMENTS_OFFSET, PySequence_Fast_ITEMS,
    Py_INCREF, Py_DECREF, PyErr_CheckSignals,
    uvc_loop_t, uvc_gil_ensure, uvc_gil_release, uvc_monotonic, uvc_reserve_watchers,
    UVC_METRICS, UVC_LAG_BUCKETS, UVC_LAG_WINDOWS, UVC_LAG_WINDOW_SECONDS,
    uint64_t, uvc_metrics_t, uvc_lag_window_t, uvc_ticks, uvc_clock_init,
    uvc_ticks_per_second, uvc_add, uvc_callback_done, uvc_lag_record,
    uvc_lag_bucket_low_us,
)
from libc.string cimport memset

import errno as errno_mod
import logging
import math as _math
import os
import socket
import sys
import threading
import warnings
import weakref

from asyncio import coroutines, events, format_helpers, futures, tasks
from asyncio import Future, Task, Transport, BufferedProtocol
from asyncio import DatagramTransport, ReadTransport, WriteTransport
from asyncio.constants import _SendfileMode
from asyncio.trsock import TransportSocket
from asyncio.transports import _FlowControlMixin
from functools import partial

_SSL_HANDSHAKE_TIMEOUT = getattr(__import__('asyncio.constants').constants,
                                 'SSL_HANDSHAKE_TIMEOUT', 60.0)
_SSL_SHUTDOWN_TIMEOUT = getattr(__import__('asyncio.constants').constants,
                                'SSL_SHUTDOWN_TIMEOUT', 30.0)

try:
    from asyncio.base_events import _format_handle
except ImportError:      # pragma: no cover
    _format_handle = repr

from asyncio.constants import DEBUG_STACK_DEPTH as _DEBUG_STACK_DEPTH

logger = logging.getLogger('asyncio')

# Every open loop, so that a forked child can give each its own kernel state.
_live_loops = weakref.WeakSet()


def libuv_version():
    """The version of the libuv that uvcore runs on, e.g. '1.50.0'."""
    return uv.uv_version_string().decode()


def uv_error(int err):
    """An OSError (of the errno's own subclass) for a libuv error code."""
    return OSError(-err, os.strerror(-err))


def _after_fork_in_child():
    for loop in list(_live_loops):
        loop._after_fork_in_child()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)


include "ready.pxi"
include "timers.pxi"
include "callbacks.pxi"
include "handles/base.pxi"
include "handles/poll.pxi"
include "handles/signal.pxi"
include "dns.pxi"
include "handles/stream.pxi"
include "tls.pxi"
include "handles/tcp.pxi"
include "handles/pipe.pxi"
include "handles/udp.pxi"
include "server.pxi"
include "sock.pxi"
include "metrics.pxi"
include "loop.pxi"
include "gc_support.pxi"
