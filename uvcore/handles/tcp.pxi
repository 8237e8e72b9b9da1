# TCP and Unix-socket stream transports: a UVStream on a uv_tcp_t or a
# uv_pipe_t opened on a connected socket's fd (the socket object stays the
# transport's, as in asyncio, and is detached before libuv closes the fd).

from asyncio.base_events import _set_nodelay


@cython.no_gc_clear
cdef class TCPTransport(UVStream):
    pass


@cython.no_gc_clear
cdef class UnixTransport(UVStream):
    pass


cdef object _make_stream_transport(BaseLoop loop, object sock, object protocol,
                                   object waiter, object extra, object server,
                                   bint adopted=False):
    # adopted: the caller made the socket and keeps a reference to it
    # (sock=...). libuv then gets a dup of its fd: the caller closing the
    # socket behind the transport's back must not close libuv's fd under it
    # (libuv aborts on an fd that vanishes from epoll). asyncio tolerates it.
    cdef UVStream t
    cdef int err
    cdef int fd, uv_fd
    loop._require_open()
    fd = sock.fileno()
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    if fd in loop._watchers:
        _drop_idle_watch(loop, fd)
    uv_fd = os.dup(fd) if adopted else fd
    try:
        t = _open_stream_handle(loop, sock, uv_fd)
    except BaseException:
        if adopted:
            os.close(uv_fd)
        raise
    t.uv_fd = uv_fd
    t._open_stream(loop, sock, protocol, waiter, extra, server)
    return t.proxy


cdef UVStream _open_stream_handle(BaseLoop loop, object sock, int fd):
    cdef UVStream t
    cdef int err
    _reserve_watchers(loop, fd)
    if sock.family == socket.AF_UNIX:
        t = UnixTransport.__new__(UnixTransport)
        t._alloc(loop, sizeof(uv.uv_pipe_t))
        err = uv.uv_pipe_init(loop.uvloop, <uv.uv_pipe_t*>t.handle, 0)
        if err < 0:
            t._init_failed(err)
        err = uv.uv_pipe_open(<uv.uv_pipe_t*>t.handle, fd)
    else:
        t = TCPTransport.__new__(TCPTransport)
        t._alloc(loop, sizeof(uv.uv_tcp_t))
        err = uv.uv_tcp_init(loop.uvloop, <uv.uv_tcp_t*>t.handle)
        if err < 0:
            t._init_failed(err)
        _set_nodelay(sock)
        err = uv.uv_tcp_open(<uv.uv_tcp_t*>t.handle, fd)
    if err < 0:
        t._close()          # the fd was not taken: it stays the socket's
        raise uv_error(err)
    return t
