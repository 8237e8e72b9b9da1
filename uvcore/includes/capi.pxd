# The CPython C API that uvcore's hot paths call directly.
from cpython.object cimport PyObject
from . cimport uv

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
    int uvc_reserve_watchers(uv.uv_loop_t* loop, int fd)

cdef extern from "uvcore_metrics.h" nogil:
    # Loop metrics (see the header): counters, the callback clock, timer lag.
    int UVC_METRICS
    int UVC_LAG_BUCKETS
    int UVC_LAG_WINDOWS
    double UVC_LAG_WINDOW_SECONDS
    ctypedef unsigned long long uint64_t
    ctypedef long long int64_t
    ctypedef struct uvc_lag_window_t:
        int64_t epoch
        uint64_t total
        double max
        unsigned int counts[128]
    ctypedef struct uvc_metrics_t:
        uint64_t callbacks_run
        uint64_t io_callbacks_run
        uint64_t timers_fired
        uint64_t tasks_created
        uint64_t bytes_read
        uint64_t bytes_written
        uint64_t datagrams_received
        uint64_t datagrams_sent
        uint64_t connections_accepted
        uint64_t slow_callbacks
        uint64_t callback_ticks
        uint64_t longest_callback_ticks
        uint64_t run_ticks
        uint64_t run_started
        uint64_t current_started
        uint64_t slow_ticks
        uvc_lag_window_t lag[6]
    uint64_t uvc_ticks()
    void uvc_clock_init(int tsc_usable)
    double uvc_ticks_per_second()
    void uvc_add(uint64_t* counter, uint64_t n)
    int uvc_callback_done(uvc_metrics_t* m, uint64_t started, uint64_t now)
    void uvc_lag_record(uvc_metrics_t* m, double now, double lag)
    double uvc_lag_bucket_low_us(int idx)
