# Declarations of the parts of libuv's API that uvcore uses (libuv 1.50).
from libc.stdint cimport uint64_t, int64_t

cdef extern from "uv.h" nogil:
    ctypedef int uv_os_sock_t
    ctypedef int uv_os_fd_t

    ctypedef enum uv_run_mode:
        UV_RUN_DEFAULT
        UV_RUN_ONCE
        UV_RUN_NOWAIT

    ctypedef enum uv_handle_type:
        UV_UNKNOWN_HANDLE
        UV_TIMER
        UV_POLL
        UV_SIGNAL
        UV_TCP
        UV_UDP
        UV_NAMED_PIPE

    ctypedef enum uv_poll_event:
        UV_READABLE
        UV_WRITABLE
        UV_DISCONNECT
        UV_PRIORITIZED

    cdef int UV_EBADF
    cdef int UV_EAGAIN
    cdef int UV_EOF
    cdef int UV_ENOBUFS
    cdef int UV_ENOSYS
    cdef int UV_EBUSY
    cdef int UV_EINVAL
    cdef int UV_ENOMEM
    cdef int UV_EEXIST
    cdef int UV_ECANCELED
    cdef int UV_EAI_ADDRFAMILY
    cdef int UV_EAI_AGAIN
    cdef int UV_EAI_BADFLAGS
    cdef int UV_EAI_BADHINTS
    cdef int UV_EAI_CANCELED
    cdef int UV_EAI_FAIL
    cdef int UV_EAI_FAMILY
    cdef int UV_EAI_MEMORY
    cdef int UV_EAI_NODATA
    cdef int UV_EAI_NONAME
    cdef int UV_EAI_OVERFLOW
    cdef int UV_EAI_PROTOCOL
    cdef int UV_EAI_SERVICE
    cdef int UV_EAI_SOCKTYPE

    ctypedef struct uv_loop_t:
        void* data

    ctypedef struct uv_handle_t:
        void* data
        uv_loop_t* loop
        uv_handle_type type

    ctypedef struct uv_timer_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_idle_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_check_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_prepare_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_async_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_poll_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_signal_t:
        void* data
        uv_loop_t* loop
        int signum

    ctypedef struct uv_req_t:
        void* data

    ctypedef struct uv_buf_t:
        char* base
        size_t len

    ctypedef struct uv_stream_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_tcp_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_pipe_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_udp_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_udp_send_t:
        void* data
        uv_udp_t* handle

    struct sockaddr:
        unsigned short sa_family

    enum uv_udp_flags:
        UV_UDP_PARTIAL
        UV_UDP_MMSG_CHUNK
        UV_UDP_MMSG_FREE
        UV_UDP_RECVMMSG

    ctypedef struct uv_write_t:
        void* data
        uv_stream_t* handle

    ctypedef struct uv_shutdown_t:
        void* data
        uv_stream_t* handle

    ctypedef struct uv_work_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_getaddrinfo_t:
        void* data
        uv_loop_t* loop

    ctypedef struct uv_getnameinfo_t:
        void* data
        uv_loop_t* loop

    ctypedef void (*uv_close_cb)(uv_handle_t* handle) noexcept
    ctypedef void (*uv_timer_cb)(uv_timer_t* handle) noexcept
    ctypedef void (*uv_idle_cb)(uv_idle_t* handle) noexcept
    ctypedef void (*uv_check_cb)(uv_check_t* handle) noexcept
    ctypedef void (*uv_prepare_cb)(uv_prepare_t* handle) noexcept
    ctypedef void (*uv_async_cb)(uv_async_t* handle) noexcept
    ctypedef void (*uv_poll_cb)(uv_poll_t* handle, int status, int events) noexcept
    ctypedef void (*uv_signal_cb)(uv_signal_t* handle, int signum) noexcept
    ctypedef void (*uv_work_cb)(uv_work_t* req) noexcept
    ctypedef void (*uv_after_work_cb)(uv_work_t* req, int status) noexcept
    ctypedef void (*uv_alloc_cb)(uv_handle_t* handle, size_t suggested_size, uv_buf_t* buf) noexcept
    ctypedef void (*uv_read_cb)(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept
    ctypedef void (*uv_write_cb)(uv_write_t* req, int status) noexcept
    ctypedef void (*uv_shutdown_cb)(uv_shutdown_t* req, int status) noexcept
    ctypedef void (*uv_udp_send_cb)(uv_udp_send_t* req, int status) noexcept
    ctypedef void (*uv_udp_recv_cb)(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                                    const sockaddr* addr, unsigned flags) noexcept
    ctypedef void (*uv_walk_cb)(uv_handle_t* handle, void* arg) noexcept

    const char* uv_version_string()
    unsigned int uv_version()
    const char* uv_strerror(int err)
    const char* uv_err_name(int err)
    int uv_translate_sys_error(int sys_errno)

    int uv_loop_init(uv_loop_t* loop)

    # Loop metrics (libuv >= 1.45): time blocked in the poller, events seen.
    ctypedef enum uv_loop_option:
        UV_METRICS_IDLE_TIME
    int uv_loop_configure(uv_loop_t* loop, uv_loop_option option, ...)
    ctypedef struct uv_metrics_t:
        unsigned long long loop_count
        unsigned long long events
        unsigned long long events_waiting
    int uv_metrics_info(uv_loop_t* loop, uv_metrics_t* metrics)
    unsigned long long uv_metrics_idle_time(uv_loop_t* loop)
    int uv_loop_close(uv_loop_t* loop)
    int uv_loop_alive(const uv_loop_t* loop)
    int uv_loop_fork(uv_loop_t* loop)
    int uv_run(uv_loop_t*, uv_run_mode mode)
    void uv_stop(uv_loop_t*)
    uint64_t uv_now(const uv_loop_t*)
    void uv_update_time(uv_loop_t*)
    uint64_t uv_hrtime()
    int uv_backend_timeout(const uv_loop_t*)
    void uv_walk(uv_loop_t* loop, uv_walk_cb walk_cb, void* arg)

    void uv_close(uv_handle_t* handle, uv_close_cb close_cb)
    int uv_is_closing(const uv_handle_t* handle)
    int uv_is_active(const uv_handle_t* handle)
    void uv_ref(uv_handle_t*)
    void uv_unref(uv_handle_t*)

    int uv_timer_init(uv_loop_t*, uv_timer_t* handle)
    int uv_timer_start(uv_timer_t* handle, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
    int uv_timer_stop(uv_timer_t* handle)

    int uv_idle_init(uv_loop_t*, uv_idle_t* idle)
    int uv_idle_start(uv_idle_t* idle, uv_idle_cb cb)
    int uv_idle_stop(uv_idle_t* idle)

    int uv_check_init(uv_loop_t*, uv_check_t* check)
    int uv_check_start(uv_check_t* check, uv_check_cb cb)
    int uv_check_stop(uv_check_t* check)

    int uv_prepare_init(uv_loop_t*, uv_prepare_t* prepare)
    int uv_prepare_start(uv_prepare_t* prepare, uv_prepare_cb cb)
    int uv_prepare_stop(uv_prepare_t* prepare)

    int uv_async_init(uv_loop_t*, uv_async_t* async_, uv_async_cb async_cb)
    int uv_async_send(uv_async_t* async_)

    int uv_poll_init(uv_loop_t* loop, uv_poll_t* handle, int fd)
    int uv_poll_init_socket(uv_loop_t* loop, uv_poll_t* handle, uv_os_sock_t socket)
    int uv_poll_start(uv_poll_t* handle, int events, uv_poll_cb cb)
    int uv_poll_stop(uv_poll_t* handle)

    int uv_signal_init(uv_loop_t* loop, uv_signal_t* handle)
    int uv_signal_start(uv_signal_t* handle, uv_signal_cb signal_cb, int signum)
    int uv_signal_stop(uv_signal_t* handle)

    # DNS
    struct addrinfo:
        int ai_flags
        int ai_family
        int ai_socktype
        int ai_protocol
        size_t ai_addrlen
        void* ai_addr
        char* ai_canonname
        addrinfo* ai_next

    ctypedef void (*uv_getaddrinfo_cb)(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept
    ctypedef void (*uv_getnameinfo_cb)(uv_getnameinfo_t* req, int status, const char* hostname, const char* service) noexcept

    int uv_getaddrinfo(uv_loop_t* loop, uv_getaddrinfo_t* req, uv_getaddrinfo_cb getaddrinfo_cb,
                       const char* node, const char* service, const addrinfo* hints)
    void uv_freeaddrinfo(addrinfo* ai)
    int uv_getnameinfo(uv_loop_t* loop, uv_getnameinfo_t* req, uv_getnameinfo_cb getnameinfo_cb,
                       const void* addr, int flags)
    int uv_cancel(uv_req_t* req)
    int uv_queue_work(uv_loop_t* loop, uv_work_t* req, uv_work_cb work_cb, uv_after_work_cb after_work_cb)

    # streams (TCP and pipes)
    uv_buf_t uv_buf_init(char* base, unsigned int len)
    int uv_read_start(uv_stream_t*, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
    int uv_read_stop(uv_stream_t*)
    int uv_try_write(uv_stream_t* handle, const uv_buf_t bufs[], unsigned int nbufs)
    int uv_write(uv_write_t* req, uv_stream_t* handle, const uv_buf_t bufs[],
                 unsigned int nbufs, uv_write_cb cb)
    int uv_shutdown(uv_shutdown_t* req, uv_stream_t* handle, uv_shutdown_cb cb)
    size_t uv_stream_get_write_queue_size(const uv_stream_t* stream)
    int uv_is_writable(const uv_stream_t* handle)
    int uv_fileno(const uv_handle_t* handle, uv_os_fd_t* fd)

    int uv_tcp_init(uv_loop_t*, uv_tcp_t* handle)
    int uv_tcp_open(uv_tcp_t* handle, uv_os_sock_t sock)
    int uv_tcp_nodelay(uv_tcp_t* handle, int enable)

    int uv_pipe_init(uv_loop_t*, uv_pipe_t* handle, int ipc)
    int uv_pipe_open(uv_pipe_t*, uv_os_fd_t file)

    # UDP
    int uv_udp_init_ex(uv_loop_t*, uv_udp_t* handle, unsigned int flags)
    int uv_udp_open(uv_udp_t* handle, uv_os_sock_t sock)
    int uv_udp_recv_start(uv_udp_t* handle, uv_alloc_cb alloc_cb, uv_udp_recv_cb recv_cb)
    int uv_udp_recv_stop(uv_udp_t* handle)
    int uv_udp_try_send(uv_udp_t* handle, const uv_buf_t bufs[], unsigned int nbufs,
                        const sockaddr* addr)
    int uv_udp_send(uv_udp_send_t* req, uv_udp_t* handle, const uv_buf_t bufs[],
                    unsigned int nbufs, const sockaddr* addr, uv_udp_send_cb send_cb)
    int uv_udp_using_recvmmsg(const uv_udp_t* handle)
