# Declarations of uvcore's extension types. The implementations live in the
# .pxi rooms that _uvcore.pyx includes; this file lets each room use the others'
# types regardless of the order they are included in.
from cpython.object cimport PyObject
from .includes cimport uv
from .includes.capi cimport uvc_loop_t, uvc_metrics_t, uint64_t
from .includes.addr cimport uvc_addr_t


cdef struct ReadyRing:
    PyObject** items
    Py_ssize_t cap       # always a power of two
    Py_ssize_t head
    Py_ssize_t count


cdef struct TimerEntry:
    double when
    unsigned long long seq
    PyObject* handle     # owned reference to a TimerHandle


cdef struct TimerHeap:
    TimerEntry* items
    Py_ssize_t size
    Py_ssize_t cap
    unsigned long long seq
    Py_ssize_t cancelled   # entries in the heap whose handle is cancelled


cdef class Handle:
    cdef:
        object cb
        object a0
        object a1
        object a2
        tuple extra           # all arguments, when there are more than three
        Py_ssize_t nargs
        object ctx
        PyObject* loop        # borrowed: set only while the loop holds the handle
        bint is_cancelled
        bint persistent       # run on every event (readers, signals), not once
        object tb             # source traceback (debug mode)
        object repr_cache
        object __weakref__

    cdef int _call(self) except -1
    cdef tuple _args_tuple(self)


cdef class TimerHandle(Handle):
    cdef:
        double deadline
        bint in_heap          # still referenced by the loop's timer heap


cdef struct LoopHandles:
    uv.uv_idle_t idle        # active while callbacks are ready: poll does not block
    uv.uv_check_t check      # after poll: due timers, then the ready queue
    uv.uv_prepare_t prepare  # before poll: arm the timer, let go of the GIL
    uv.uv_timer_t timer      # armed for the earliest deadline
    uv.uv_async_t wake       # call_soon_threadsafe wakes the loop


cdef class BaseLoop:
    cdef:
        uv.uv_loop_t* uvloop
        LoopHandles* h
        ReadyRing ready
        TimerHeap timers
        double _armed_when
        bint _closed
        bint _stopping
        bint _running
        bint _idle_active
        bint _debug
        bint _forked
        object _thread_id
        object _raise_after_run     # a SystemExit/KeyboardInterrupt from a callback
        readonly object _current_handle   # the handle being run, in debug mode
        object _task_factory
        dict _watchers              # fd -> FdWatcher (add_reader/add_writer)
        dict _transports            # fd -> transport proxy, for open stream transports
        dict _sockio                # fd -> _SockIO: sock_* operations waiting
        list _flush_list            # stream transports with writes to hand to libuv
        char* read_buffer           # where stream reads land (one per loop)
        char* dgram_buffer          # where batched UDP reads land (made on first use)
        list _dirty_watchers        # watches changed since the last poll
        list _lingering             # idle sock_* watchers, stopped when stale
        unsigned long iteration     # loop iterations run so far
        dict _signal_handlers       # signum -> SignalWatcher
        object _wakeup              # SignalWakeup: Python signal handlers while asleep
        set _work                   # WorkRequests in libuv's thread pool
        object __weakref__
        public double slow_callback_duration
        uvc_metrics_t m             # counters and timings: loop.metrics()
        object _slow_tracer         # diagnostics.SlowCallbackTracer, or None
        double _check_now           # monotonic time when due timers were last taken

    cdef inline int _require_open(self) except -1
    cdef int _require_loop_thread(self) except -1
    cdef int _require_callable(self, object callback, str method) except -1
    cdef Handle _make_handle(self, object callback, tuple args, object context)
    cdef inline int _push_ready(self, Handle handle) except -1
    cdef int _ensure_idle(self) except -1
    cdef TimerHandle _schedule_timer(self, double when, object callback, tuple args, object context)
    cdef int _on_check(self) except -1
    cdef int _before_poll(self) except -1
    cdef inline bint _may_block(self) noexcept
    cdef int _run_ready(self, Py_ssize_t n) except -1
    cdef int _run_debug(self, Handle h) except -1
    cdef int _report_callback_error(self, Handle h, object exc) except -1
    cdef int _slow_callback(self, object what, object protocol, uint64_t started,
                            uint64_t ticks) except -1
    cdef int _compact_timers(self) except -1
    cdef int _close_uv(self, bint dealloc) except -1
    cdef int _drop_ready(self) except -1
    cdef int _drop_timers(self) except -1
    cdef int _run_uv(self) except -1
    cdef int _stop_with(self, object exc) except -1
    cdef int _flush_writes(self) except -1


cdef class UVHandle:
    # A libuv handle owned by a Python object. While the handle is open the
    # object holds a reference to itself, so it cannot go while libuv points at
    # it; uv_close's callback frees the memory and drops that reference.
    cdef:
        uv.uv_handle_t* handle
        BaseLoop loop

    cdef int _alloc(self, BaseLoop loop, size_t size) except -1
    cdef int _init_failed(self, int err) except -1
    cdef int _close(self) except -1


cdef class FdWatcher(UVHandle):
    cdef:
        int fd
        int mask
        bint dirty
        bint lingering        # idle, kept registered for the next sock_* wait
        unsigned long idle_since
        object sock_key       # the socket object whose waits it serves
        Handle reader
        Handle writer

    @staticmethod
    cdef FdWatcher new(BaseLoop loop, int fd)
    cdef int _update(self) except -1
    cdef int _on_events(self, int status, int events) except -1
    cdef int _verify_fd(self) except -1
    cdef int _unregister(self) except -1


cdef class SignalWatcher(UVHandle):
    cdef:
        int signum
        Handle callback

    cdef int _fire(self) except -1


cdef class _SignalWakeup(UVHandle):
    cdef:
        object rsock
        object wsock
        object old_fd
        bint installed

    cdef int _on_readable(self) except -1


cdef class TLSProtocol


cdef class UVStream(UVHandle):
    # A TCP or Unix stream connection (handles/stream.pxi).
    cdef:
        TLSProtocol tls          # the protocol, when it is uvcore's TLS layer
        bint discard_on_close    # read away unread input before closing (TLS)
        object sock              # the socket object; detached before uv_close
        int fd                   # sock's fd (the key in loop._transports)
        int uv_fd                # the fd libuv works on: fd, or a dup of it
        object protocol
        object proxy             # the asyncio.Transport the protocol sees
        dict extra
        object server
        bint buffered            # protocol is a BufferedProtocol
        bint protocol_connected
        bint protocol_paused     # pause_writing() was called
        bint closing
        bint eof
        bint paused              # pause_reading()
        bint reading             # uv_read_start is active
        bint started             # connection_made has run
        bint alive               # the libuv handle is open
        bint flush_scheduled
        bint view_held
        int conn_lost
        Py_ssize_t high_water
        Py_ssize_t low_water
        list wq                  # bytes objects not yet handed to libuv
        Py_ssize_t wq_bytes
        Py_ssize_t wq_head_offset
        Py_ssize_t inflight_bytes
        Py_buffer view           # a BufferedProtocol's buffer during a read
        object read_error
        object empty_waiter
        object data_received     # the protocol's bound methods, looked up once
        object buffer_updated
        object get_buffer

    cdef int _open_stream(self, BaseLoop loop, object sock, object protocol,
                          object waiter, object extra, object server) except -1
    cdef int _set_protocol(self, object protocol) except -1
    cdef int _start_reading(self) except -1
    cdef int _stop_reading(self) except -1
    cdef int _alloc_read_buffer(self, uv.uv_buf_t* buf) except -1
    cdef int _release_view(self) except -1
    cdef int _on_read(self, ssize_t nread) except -1
    cdef int _deliver(self, BaseLoop loop, ssize_t nread) except -1
    cdef int _on_eof(self) except -1
    cdef int _write(self, object data) except -1
    cdef int _schedule_flush(self) except -1
    cdef int _flush(self) except -1
    cdef int _on_write_done(self, int status, Py_ssize_t nbytes) except -1
    cdef int _queue_drained(self) except -1
    cdef int _shutdown_write(self) except -1
    cdef int _maybe_pause_protocol(self) except -1
    cdef int _maybe_resume_protocol(self) except -1
    cdef int _fatal_error(self, object exc, str message) except -1
    cdef int _force_close(self, object exc) except -1
    cdef int _release(self) except -1


cdef class UDPTransport(UVHandle):
    # A datagram endpoint on a uv_udp_t (handles/udp.pxi).
    cdef:
        object sock              # the socket object; detached before uv_close
        int fd
        int family
        object protocol
        object proxy
        dict extra
        object address           # asyncio's remote address (remote_addr=)
        bint connected           # the socket has a peer: sends carry no address
        bint closing
        bint alive
        bint reading
        bint protocol_paused
        bint batched             # recvmmsg: reads land in the loop's dgram_buffer
        int conn_lost
        Py_ssize_t high_water
        Py_ssize_t low_water
        Py_ssize_t queued        # bytes in libuv's send queue (asyncio's count)
        Py_ssize_t queued_reqs
        object datagram_received
        object error_received
        object recv_addr         # the last sender's address object ...
        uvc_addr_t recv_key      # ... and its sockaddr
        object send_addr         # the last destination object ...
        uvc_addr_t send_key      # ... and its sockaddr

    cdef int _start_reading(self) except -1
    cdef int _stop_reading(self) except -1
    cdef int _on_alloc(self, uv.uv_buf_t* buf) except -1
    cdef int _on_recv(self, ssize_t nread, const uv.uv_buf_t* buf,
                      const uv.sockaddr* addr) except -1
    cdef int _deliver(self, BaseLoop loop, ssize_t nread, const uv.uv_buf_t* buf,
                      const uv.sockaddr* addr) except -1
    cdef object _peer_address(self, const uv.sockaddr* addr)
    cdef int _send_queued(self, object data, const uv.sockaddr* addr) except -1
    cdef int _on_send_done(self, int status, Py_ssize_t size) except -1
    cdef int _maybe_pause_protocol(self) except -1
    cdef int _maybe_resume_protocol(self) except -1
    cdef int _fatal_error(self, object exc, str message) except -1
    cdef int _force_close(self, object exc) except -1
    cdef int _release(self) except -1


cdef class PipeTransport(UVStream):
    # connect_read_pipe / connect_write_pipe (handles/pipe.pxi).
    cdef:
        object pipe              # the caller's pipe object, closed at the end
        bint writing
        bint watch_hangup        # watch fd for the reader going away
        bint hangup_watched
        Py_ssize_t grow_at       # a read pipe: grow it when a read is this big

    cdef int _open_pipe(self, BaseLoop loop, object pipe, object protocol,
                        object waiter, object extra, bint writing) except -1
    cdef int _set_protocol(self, object protocol) except -1
    cdef int _fatal_error(self, object exc, str message) except -1
    cdef int _release(self) except -1


cdef class ReadPipeTransport(PipeTransport):
    cdef int _on_read(self, ssize_t nread) except -1
    cdef int _deliver(self, BaseLoop loop, ssize_t nread) except -1
    cdef int _on_eof(self) except -1


cdef class WritePipeTransport(PipeTransport):
    pass


cdef class TLSProtocol:
    # TLS between a stream transport and the application (tls.pxi).
    cdef:
        BaseLoop loop
        object transport         # the wire transport (a proxy)
        UVStream wire            # its uvcore stream, None for other transports
        object app_protocol
        readonly object app_transport
        bint app_buffered
        object waiter
        dict extra
        object sslobj
        object sslobj_read
        object sslobj_write
        object sslobj_pending
        object incoming_write
        object outgoing_read
        object incoming          # ssl.MemoryBIO: records from the wire
        object outgoing          # ssl.MemoryBIO: records to the wire
        int state
        int app_state
        bint server_side
        bint eof                 # the wire saw EOF
        bint app_closed
        bint closing_wire
        bint lingering           # our close_notify is out: wait for the peer's
        bint discarding          # ... throwing away whatever else comes
        bint wire_paused         # the wire transport asked us to pause writing
        bint wire_reading_paused
        bint app_reading_paused
        bint app_writing_paused
        int conn_lost
        list backlog             # application data waiting for the handshake
        Py_ssize_t backlog_size
        Py_ssize_t read_high
        Py_ssize_t read_low
        Py_ssize_t write_high
        Py_ssize_t write_low
        object handshake_timeout
        object shutdown_timeout
        object handshake_timer
        object shutdown_timer
        double handshake_started
        object wire_buffer       # get_buffer() for non-uvcore transports
        object __weakref__

    cdef int _set_app_protocol(self, object app_protocol) except -1
    cdef int _wire_data(self, char* data, Py_ssize_t n) except -1
    cdef int _on_incoming(self) except -1
    cdef int _start_handshake(self) except -1
    cdef int _do_handshake(self) except -1
    cdef int _wakeup_waiter(self, object exc) except -1
    cdef int _start_shutdown(self) except -1
    cdef int _do_flush(self) except -1
    cdef int _do_shutdown(self) except -1
    cdef int _linger(self) except -1
    cdef int _linger_input(self) except -1
    cdef int _on_shutdown_complete(self, object exc) except -1
    cdef int _abort(self) except -1
    cdef int _cancel_timers(self) except -1
    cdef int _app_write(self, object data) except -1
    cdef int _do_write(self) except -1
    cdef int _process_outgoing(self) except -1
    cdef int _control_app_writing(self) except -1
    cdef int _do_read(self) except -1
    cdef int _read_copied(self) except -1
    cdef int _read_buffered(self) except -1
    cdef int _call_eof_received(self) except -1
    cdef int _control_wire_reading(self) except -1
    cdef int _force_close_wire(self, object exc) except -1
