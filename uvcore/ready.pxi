# The ready queue: a ring buffer of owned Handle references, drained in FIFO
# order once per loop iteration (asyncio's `_ready` deque, without a deque).

cdef int ring_init(ReadyRing* r, Py_ssize_t cap) except -1:
    r.items = <PyObject**>PyMem_Malloc(cap * sizeof(PyObject*))
    if r.items == NULL:
        raise MemoryError()
    r.cap = cap
    r.head = 0
    r.count = 0
    return 0


cdef int ring_grow(ReadyRing* r) except -1:
    cdef Py_ssize_t newcap = r.cap * 2
    cdef PyObject** items = <PyObject**>PyMem_Malloc(newcap * sizeof(PyObject*))
    cdef Py_ssize_t i
    if items == NULL:
        raise MemoryError()
    for i in range(r.count):
        items[i] = r.items[(r.head + i) & (r.cap - 1)]
    PyMem_Free(r.items)
    r.items = items
    r.cap = newcap
    r.head = 0
    return 0


cdef inline int ring_push(ReadyRing* r, object item) except -1:
    if r.count == r.cap:
        ring_grow(r)
    Py_INCREF(<PyObject*>item)
    r.items[(r.head + r.count) & (r.cap - 1)] = <PyObject*>item
    r.count += 1
    return 0


cdef inline PyObject* ring_pop(ReadyRing* r) noexcept:
    # Returns the owned reference; the caller must release it.
    cdef PyObject* p = r.items[r.head]
    r.head = (r.head + 1) & (r.cap - 1)
    r.count -= 1
    return p


cdef void ring_clear(ReadyRing* r) noexcept:
    cdef PyObject* p
    while r.count:
        p = ring_pop(r)
        Py_DECREF(p)


cdef void ring_free(ReadyRing* r) noexcept:
    if r.items != NULL:
        ring_clear(r)
        PyMem_Free(r.items)
        r.items = NULL
        r.cap = 0


cdef int ring_shrink(ReadyRing* r, Py_ssize_t cap) except -1:
    # Give memory back after a burst; only when the queue is empty.
    cdef PyObject** items
    if r.count or r.cap <= cap:
        return 0
    items = <PyObject**>PyMem_Malloc(cap * sizeof(PyObject*))
    if items == NULL:
        return 0            # keep the larger buffer
    PyMem_Free(r.items)
    r.items = items
    r.cap = cap
    r.head = 0
    return 0
