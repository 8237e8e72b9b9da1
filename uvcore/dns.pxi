# getaddrinfo / getnameinfo on libuv's thread pool. The lookup itself is
# Python's socket.getaddrinfo (same results, same socket.gaierror), run from a
# uv_work_t so that the loop never blocks and needs no executor. An IP literal
# with a numeric port is resolved at once, without a thread.

cdef void _work_run(uv.uv_work_t* req) noexcept nogil:
    with gil:
        (<_WorkRequest>req.data)._run()


cdef void _work_done(uv.uv_work_t* req, int status) noexcept nogil:
    uvc_gil_ensure(req.loop)
    with gil:
        (<_WorkRequest>req.data)._done(status)
        Py_DECREF(<PyObject*>req.data)      # the reference taken in _submit
    PyMem_RawFree(req)


@cython.auto_pickle(False)
cdef class _WorkRequest:
    cdef:
        BaseLoop loop
        object func
        tuple args
        object result
        object exc
        object future

    def __init__(self, *args, **kwargs):
        raise TypeError("_WorkRequest objects are created by the event loop")

    def _run(self):
        # In a thread-pool thread, with the GIL.
        if self.func is None:
            return
        try:
            self.result = self.func(*self.args)
        except BaseException as exc:
            self.exc = exc

    def _done(self, int status):
        cdef BaseLoop loop = self.loop
        if loop is None:
            return
        loop._work.discard(self)
        fut = self.future
        self.future = None
        if loop._closed or fut is None or fut.done():
            return
        if status == uv.UV_ECANCELED:
            fut.cancel()
        elif self.exc is not None:
            fut.set_exception(self.exc)
        else:
            fut.set_result(self.result)
        self.exc = None


cdef object _pool_pid = None       # the process whose pool is known to start


cdef int _check_pool_can_start() except -1:
    # libuv starts its thread pool (UV_THREADPOOL_SIZE threads, 4 by default)
    # on first use and abort()s the process if a thread cannot be created
    # (out of memory, RLIMIT_NPROC). Starting as many Python threads first
    # turns that into asyncio's RuntimeError("can't start new thread").
    global _pool_pid
    if _pool_pid == os.getpid():
        return 0
    try:
        n = int(os.environ.get('UV_THREADPOOL_SIZE', '4'))
    except ValueError:
        n = 4
    n = min(max(n, 1), 1024)
    gate = threading.Event()
    started = []
    try:
        for _ in range(n):
            t = threading.Thread(target=gate.wait, name='uvcore-pool-check')
            t.start()
            started.append(t)
    finally:
        gate.set()
        for t in started:
            t.join()
    _pool_pid = os.getpid()
    return 0


cdef object _submit(BaseLoop loop, object func, tuple args):
    # Run func(*args) in libuv's thread pool; return a Future of its result.
    cdef _WorkRequest w = _WorkRequest.__new__(_WorkRequest)
    cdef uv.uv_work_t* req
    cdef int err
    loop._require_open()
    if _pool_pid is None or _pool_pid != os.getpid():
        _check_pool_can_start()
    w.loop = loop
    w.func = func
    w.args = args
    w.future = Future(loop=loop)
    req = <uv.uv_work_t*>PyMem_RawCalloc(1, sizeof(uv.uv_work_t))
    if req == NULL:
        raise MemoryError()
    req.data = <void*>w
    err = uv.uv_queue_work(loop.uvloop, req, _work_run, _work_done)
    if err < 0:
        PyMem_RawFree(req)
        raise uv_error(err)
    Py_INCREF(<PyObject*>w)
    loop._work.add(w)
    return w.future


cdef int _wait_for_work(BaseLoop loop) except -1:
    # Closing: wait for lookups still running in the pool (their results are
    # dropped), so no thread calls back into a freed loop.
    while loop._work:
        uv.uv_run(loop.uvloop, uv.UV_RUN_ONCE)
        uvc_gil_ensure(loop.uvloop)
    return 0


cdef bint _is_ip_literal(object host):
    if isinstance(host, bytes):
        try:
            host = host.decode('ascii')
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str):
        return False
    try:
        socket.inet_pton(socket.AF_INET, host)
        return True
    except (OSError, ValueError):
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host.partition('%')[0])
        return True
    except (OSError, ValueError):
        return False


cdef bint _is_numeric_port(object port):
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, bytes):
        return port.isdigit()
    return isinstance(port, str) and port.isdigit()


async def _resolve_now(func, args):
    return func(*args)


cdef object _getaddrinfo(BaseLoop loop, object host, object port, object family,
                         object type, object proto, object flags):
    # The arguments go to socket.getaddrinfo as they are, so that a wrong
    # type fails there with asyncio's error, when the result is awaited.
    args = (host, port, family, type, proto, flags)
    if (host is None or _is_ip_literal(host)) and _is_numeric_port(port):
        loop._require_open()
        return _resolve_now(socket.getaddrinfo, args)
    return _submit(loop, socket.getaddrinfo, args)


cdef object _getnameinfo(BaseLoop loop, object sockaddr, int flags):
    return _submit(loop, socket.getnameinfo, (sockaddr, flags))
