# The sock_* methods: non-blocking socket operations awaited on the loop.
#
# Each tries the syscall at once and waits only if it would block. Waiting
# operations are queued per fd and direction on one _SockIO, served in FIFO
# order from one fd watcher, so two tasks reading one socket both finish, and
# a cancelled operation only leaves the queue (it has consumed nothing: the
# syscall runs only for an operation whose future is still pending).

from asyncio.base_events import _check_ssl_socket

cdef object _AGAIN = object()     # an operation made progress but is not done


@cython.auto_pickle(False)
cdef class _SockIO:
    cdef:
        BaseLoop loop
        int fd
        list readers        # [(future, operation)], FIFO
        list writers

    def __init__(self, *args, **kwargs):
        raise TypeError("_SockIO objects are created by the event loop")

    def _on_readable(self):
        self._serve(self.readers, False)

    def _on_writable(self):
        self._serve(self.writers, True)

    cdef _serve(self, list queue, bint writing):
        while queue:
            fut, op = queue[0]
            if fut.done():
                del queue[0]
                continue
            try:
                res = op()
            except (BlockingIOError, InterruptedError):
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                del queue[0]
                fut.set_exception(exc)
                continue
            if res is _AGAIN:
                return
            del queue[0]
            fut.set_result(res)
        self._idle(writing)

    cdef _idle(self, bint writing):
        cdef BaseLoop loop = self.loop
        if not loop._closed:
            _linger_watch(loop, self.fd, writing)
        if not self.readers and not self.writers:
            if loop._sockio.get(self.fd) is self:
                del loop._sockio[self.fd]

    def _cancelled_read(self, fut):
        self._forget(self.readers, fut, False)

    def _cancelled_write(self, fut):
        self._forget(self.writers, fut, True)

    cdef _forget(self, list queue, object fut, bint writing):
        cdef Py_ssize_t i
        for i in range(len(queue)):
            if queue[i][0] is fut:
                del queue[i]
                break
        if not queue:
            self._idle(writing)


cdef object _wait_io(BaseLoop loop, object sock, object op, bint writing):
    # Queue op (a callable retried until it returns something other than
    # _AGAIN, raising BlockingIOError meanwhile); returns the future.
    cdef int fd = sock.fileno()
    cdef _SockIO io
    _ensure_fd_no_transport(loop, fd)
    io = loop._sockio.get(fd)
    if io is None:
        io = _SockIO.__new__(_SockIO)
        io.loop = loop
        io.fd = fd
        io.readers = []
        io.writers = []
        loop._sockio[fd] = io
    fut = Future(loop=loop)
    queue = io.writers if writing else io.readers
    queue.append((fut, op))
    if len(queue) == 1:
        try:
            if writing:
                _add_watch(loop, fd, io._on_writable, (), True, sock)
            else:
                _add_watch(loop, fd, io._on_readable, (), False, sock)
        except BaseException:
            queue.pop()
            if not io.readers and not io.writers:
                del loop._sockio[fd]
            raise
    fut.add_done_callback(io._cancelled_write if writing else io._cancelled_read)
    return fut


cdef bint _waited_last_time(BaseLoop loop, object sock) except -1:
    # True if the last read on this very socket object had to wait and its
    # watch still lingers: in a request/response exchange the next read will
    # almost surely have to wait too, so it waits at once instead of paying
    # for a recv() that fails with EAGAIN. (Data already there is then read
    # on the next poll, one iteration later.)
    cdef FdWatcher w
    if not loop._lingering:
        return False
    w = loop._watchers.get(sock.fileno())
    return w is not None and w.lingering and w.sock_key is sock and \
        w.mask & uv.UV_READABLE


cdef int _check_nonblocking(BaseLoop loop, object sock) except -1:
    _check_ssl_socket(sock)
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    return 0


cdef class _SendAll:
    # sock_sendall's operation: send what is left, until nothing is.
    cdef object sock
    cdef object view
    cdef Py_ssize_t pos

    def __call__(self):
        n = self.sock.send(self.view[self.pos:])
        self.pos += n
        if self.pos < len(self.view):
            return _AGAIN
        return None


cdef class _Connect:
    cdef object sock
    cdef object address

    def __call__(self):
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, f'Connect call failed {self.address}')
        return None


cdef object _accept_nonblocking(object sock):
    conn, address = sock.accept()
    conn.setblocking(False)
    return conn, address


class SockMethods:
    """The sock_* methods of uvcore.Loop."""

    async def sock_recv(self, sock, n):
        cdef BaseLoop loop = self
        _check_nonblocking(loop, sock)
        if not _waited_last_time(loop, sock):
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError):
                pass
        return await _wait_io(loop, sock, partial(sock.recv, n), False)

    async def sock_recv_into(self, sock, buf):
        cdef BaseLoop loop = self
        _check_nonblocking(loop, sock)
        if not _waited_last_time(loop, sock):
            try:
                return sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                pass
        return await _wait_io(loop, sock, partial(sock.recv_into, buf), False)

    async def sock_recvfrom(self, sock, bufsize):
        cdef BaseLoop loop = self
        _check_nonblocking(loop, sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            pass
        return await _wait_io(loop, sock, partial(sock.recvfrom, bufsize), False)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        cdef BaseLoop loop = self
        _check_nonblocking(loop, sock)
        if not nbytes:
            nbytes = len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        return await _wait_io(loop, sock, partial(sock.recvfrom_into, buf, nbytes),
                              False)

    async def sock_sendall(self, sock, data):
        cdef BaseLoop loop = self
        cdef _SendAll op
        _check_nonblocking(loop, sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        op = _SendAll.__new__(_SendAll)
        op.sock = sock
        op.view = memoryview(data).cast('B')
        op.pos = n
        return await _wait_io(loop, sock, op, True)

    async def sock_sendto(self, sock, data, address):
        cdef BaseLoop loop = self
        _check_nonblocking(loop, sock)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        return await _wait_io(loop, sock, partial(sock.sendto, data, address), True)

    async def sock_connect(self, sock, address):
        cdef BaseLoop loop = self
        cdef _Connect op
        _check_nonblocking(loop, sock)
        if sock.family == socket.AF_INET or (
                _HAS_IPV6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto,
                loop=self)
            _, _, _, _, address = resolved[0]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        op = _Connect.__new__(_Connect)
        op.sock = sock
        op.address = address
        return await _wait_io(loop, sock, op, True)

    async def sock_accept(self, sock):
        cdef BaseLoop loop = self
        _check_nonblocking(loop, sock)
        sock.fileno()  # as asyncio: a broken socket object fails here first
        try:
            return _accept_nonblocking(sock)
        except (BlockingIOError, InterruptedError):
            pass
        return await _wait_io(loop, sock, partial(_accept_nonblocking, sock), False)


_HAS_IPV6 = hasattr(socket, 'AF_INET6')
