# Timers: a binary min-heap of (when, seq, TimerHandle) kept in C. One libuv
# timer per loop is armed for the earliest deadline only. Cancelling a timer is
# O(1): it is marked and skipped when it reaches the top; when cancelled entries
# outnumber live ones the heap is rebuilt without them.

cdef inline bint _entry_lt(TimerEntry* a, TimerEntry* b) noexcept:
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


cdef int heap_init(TimerHeap* h) except -1:
    h.cap = 64
    h.items = <TimerEntry*>PyMem_Malloc(h.cap * sizeof(TimerEntry))
    if h.items == NULL:
        raise MemoryError()
    h.size = 0
    h.seq = 0
    h.cancelled = 0
    return 0


cdef inline void _sift_up(TimerHeap* h, Py_ssize_t pos) noexcept:
    cdef TimerEntry item = h.items[pos]
    cdef Py_ssize_t parent
    while pos > 0:
        parent = (pos - 1) >> 1
        if _entry_lt(&item, &h.items[parent]):
            h.items[pos] = h.items[parent]
            pos = parent
        else:
            break
    h.items[pos] = item


cdef inline void _sift_down(TimerHeap* h, Py_ssize_t pos) noexcept:
    cdef TimerEntry item = h.items[pos]
    cdef Py_ssize_t child
    cdef Py_ssize_t n = h.size
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _entry_lt(&h.items[child + 1], &h.items[child]):
            child += 1
        if _entry_lt(&h.items[child], &item):
            h.items[pos] = h.items[child]
            pos = child
        else:
            break
    h.items[pos] = item


cdef inline int heap_push(TimerHeap* h, double when, object handle) except -1:
    cdef TimerEntry* items
    if h.size == h.cap:
        items = <TimerEntry*>PyMem_Realloc(h.items, 2 * h.cap * sizeof(TimerEntry))
        if items == NULL:
            raise MemoryError()
        h.items = items
        h.cap *= 2
    Py_INCREF(<PyObject*>handle)
    h.items[h.size].when = when
    h.items[h.size].seq = h.seq
    h.items[h.size].handle = <PyObject*>handle
    h.seq += 1
    h.size += 1
    _sift_up(h, h.size - 1)
    return 0


cdef inline PyObject* heap_pop(TimerHeap* h) noexcept:
    # Removes the top entry and returns its owned handle reference.
    cdef PyObject* p = h.items[0].handle
    h.size -= 1
    if h.size > 0:
        h.items[0] = h.items[h.size]
        _sift_down(h, 0)
    return p


cdef void heap_clear(TimerHeap* h) noexcept:
    cdef Py_ssize_t i
    cdef PyObject* p
    cdef Py_ssize_t n = h.size
    h.size = 0
    h.cancelled = 0
    for i in range(n):
        p = h.items[i].handle
        h.items[i].handle = NULL
        Py_DECREF(p)


cdef void heap_free(TimerHeap* h) noexcept:
    if h.items != NULL:
        heap_clear(h)
        PyMem_Free(h.items)
        h.items = NULL
        h.cap = 0


cdef int heap_shrink(TimerHeap* h) noexcept:
    # Give memory back once the heap uses less than a quarter of it: down to
    # twice what it holds.
    cdef TimerEntry* items
    cdef Py_ssize_t cap = 64
    if h.cap <= 1024 or h.size * 4 >= h.cap:
        return 0
    while cap < h.size * 2:
        cap *= 2
    items = <TimerEntry*>PyMem_Realloc(h.items, cap * sizeof(TimerEntry))
    if items != NULL:
        h.items = items
        h.cap = cap
    return 0
