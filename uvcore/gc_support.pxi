# What the cyclic GC sees through Handles.
#
# Handles are not GC-tracked (see callbacks.pxi), so a reference cycle that
# runs through a pending handle -- a dropped loop whose sleeping task waits on
# a timer: loop -> timer heap -> TimerHandle -> future -> task -> loop -- would
# be invisible to the collector and leak. The owners of pending handles (the
# loop with its ready queue and timer heap, fd and signal watchers) therefore
# report the handles' contents as their own in tp_traverse. Handles the loop
# no longer holds have already dropped their contents.

from cpython.object cimport PyTypeObject, traverseproc, visitproc


cdef traverseproc _loop_traverse_base = NULL
cdef traverseproc _fdwatcher_traverse_base = NULL
cdef traverseproc _sigwatcher_traverse_base = NULL


cdef inline int _visit_handle(PyObject* p, visitproc visit, void* arg) except -1:
    cdef Handle h = <Handle>p
    cdef int r
    if h.cb is not None:
        r = visit(<PyObject*>h.cb, arg)
        if r:
            return r
    if h.nargs > 3:
        r = visit(<PyObject*>h.extra, arg)
        if r:
            return r
    elif h.nargs > 0:
        r = visit(<PyObject*>h.a0, arg)
        if r:
            return r
        if h.nargs > 1:
            r = visit(<PyObject*>h.a1, arg)
            if r:
                return r
        if h.nargs > 2:
            r = visit(<PyObject*>h.a2, arg)
            if r:
                return r
    if h.ctx is not None:
        r = visit(<PyObject*>h.ctx, arg)
        if r:
            return r
    return 0


cdef int _loop_traverse(PyObject* o, visitproc visit, void* arg) except -1:
    cdef int r = _loop_traverse_base(o, visit, arg)
    cdef BaseLoop loop
    cdef Py_ssize_t i
    if r:
        return r
    loop = <BaseLoop>o
    for i in range(loop.ready.count):
        r = _visit_handle(loop.ready.items[(loop.ready.head + i) & (loop.ready.cap - 1)],
                          visit, arg)
        if r:
            return r
    for i in range(loop.timers.size):
        r = _visit_handle(loop.timers.items[i].handle, visit, arg)
        if r:
            return r
    return 0


cdef int _fdwatcher_traverse(PyObject* o, visitproc visit, void* arg) except -1:
    cdef int r = _fdwatcher_traverse_base(o, visit, arg)
    cdef FdWatcher w
    if r:
        return r
    w = <FdWatcher>o
    if w.reader is not None:
        r = _visit_handle(<PyObject*>w.reader, visit, arg)
        if r:
            return r
    if w.writer is not None:
        r = _visit_handle(<PyObject*>w.writer, visit, arg)
    return r


cdef int _sigwatcher_traverse(PyObject* o, visitproc visit, void* arg) except -1:
    cdef int r = _sigwatcher_traverse_base(o, visit, arg)
    cdef SignalWatcher w
    if r:
        return r
    w = <SignalWatcher>o
    if w.callback is not None:
        r = _visit_handle(<PyObject*>w.callback, visit, arg)
    return r


cdef int _install_gc_support() except -1:
    global _loop_traverse_base, _fdwatcher_traverse_base, _sigwatcher_traverse_base
    cdef PyTypeObject* t
    t = <PyTypeObject*>BaseLoop
    _loop_traverse_base = t.tp_traverse
    t.tp_traverse = _loop_traverse
    t = <PyTypeObject*>FdWatcher
    _fdwatcher_traverse_base = t.tp_traverse
    t.tp_traverse = _fdwatcher_traverse
    t = <PyTypeObject*>SignalWatcher
    _sigwatcher_traverse_base = t.tp_traverse
    t.tp_traverse = _sigwatcher_traverse
    return 0


_install_gc_support()
