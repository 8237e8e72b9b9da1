# The CPython C API that uvcore's hot paths call directly.
from cpython.object cimport PyObject

cdef extern from "Python.h":
    # contextvars: run a callback inside its Context without going through ctx.run()
    object PyContext_CopyCurrent()
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1

    # vectorcall: call with a C array of arguments, no tuple
    PyObject* PyObject_Vectorcall(PyObject* callable, PyObject** args,
                                  size_t nargsf, PyObject* kwnames)
    size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    PyObject** PySequence_Fast_ITEMS(object seq)
    void Py_DECREF(PyObject*)
    void Py_INCREF(PyObject*)
    void Py_XDECREF(PyObject*)

    int PyErr_CheckSignals() except -1

cdef extern from "uvcore_loop.h" nogil:
    # The loop's C state: uv_loop_t first, then the loop's own handles and the
    # thread state saved while the loop sleeps without the GIL.
    ctypedef struct uvc_loop_t:
        pass
    void uvc_gil_ensure(void* uvloop)
    void uvc_gil_release(void* uvloop)
    double uvc_monotonic()
