# The lifecycle shared by every libuv handle that a Python object owns.
#
# `handle` is non-NULL from a successful uv_*_init until _close(). _close()
# hands the memory to libuv: the owner takes a reference to itself that the
# close callback drops, after freeing the memory. An owner that is
# deallocated with its handle still open (a loop dropped without close())
# closes it with a callback that only frees the memory.

cdef void _on_uvhandle_closed(uv.uv_handle_t* handle) noexcept nogil:
    uvc_gil_ensure(handle.loop)
    if handle.data != NULL:
        with gil:
            Py_DECREF(<PyObject*>handle.data)   # the reference taken in _close
    PyMem_RawFree(handle)


cdef void _close_stray(uv.uv_handle_t* handle, void* arg) noexcept nogil:
    # uv_walk callback used while closing a loop: whatever is still open.
    if uv.uv_is_closing(handle):
        return
    if handle.data != NULL:
        with gil:
            (<UVHandle>handle.data)._close()
    else:
        uv.uv_close(handle, _on_uvhandle_closed)


@cython.no_gc_clear
cdef class UVHandle:

    def __init__(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} objects are created by the "
                        f"event loop, not directly")

    cdef int _alloc(self, BaseLoop loop, size_t size) except -1:
        self.handle = <uv.uv_handle_t*>PyMem_RawCalloc(1, size)
        if self.handle == NULL:
            raise MemoryError()
        self.handle.data = <void*>self
        self.loop = loop
        return 0

    cdef int _init_failed(self, int err) except -1:
        PyMem_RawFree(self.handle)
        self.handle = NULL
        raise uv_error(err)

    cdef int _close(self) except -1:
        # Safe to call more than once.
        cdef uv.uv_handle_t* h = self.handle
        if h == NULL:
            return 0
        self.handle = NULL
        h.data = <void*>self
        Py_INCREF(<PyObject*>self)
        uv.uv_close(h, _on_uvhandle_closed)
        # The owner lives on until the close callback; it must not keep the
        # loop alive meanwhile (the loop frees the handle when it is freed).
        self.loop = None
        return 0

    def __dealloc__(self):
        cdef uv.uv_handle_t* h = self.handle
        if h != NULL:
            self.handle = NULL
            h.data = NULL
            uv.uv_close(h, _on_uvhandle_closed)


cdef Py_ssize_t _limit_to_size(object value):
    # A validated flow-control limit as a byte count. asyncio accepts any real
    # number; comparing integer buffer sizes with it is the same as comparing
    # with its floor, and anything beyond Py_ssize_t can never be reached.
    if value >= PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    return int(_math.floor(value))


cdef tuple _flow_limits(object high, object low, Py_ssize_t kb):
    # (high, low) in bytes, with asyncio's defaults and its check.
    if high is None:
        high = kb * 1024 if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
    return _limit_to_size(high), _limit_to_size(low)


cdef int _reserve_watchers(BaseLoop loop, int fd) except -1:
    # Before a libuv handle starts on fd (see uvc_reserve_watchers).
    if uvc_reserve_watchers(loop.uvloop, fd) < 0:
        raise MemoryError(f"no memory to watch file descriptor {fd}")
    return 0
