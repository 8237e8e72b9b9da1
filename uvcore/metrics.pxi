# loop.metrics(): the counters and timings the loop keeps in C (uvc_metrics_t
# in includes/uvcore_metrics.h), turned into a mapping on demand.
#
# What is counted where:
#   callbacks_run, timers_fired, the callback clock: BaseLoop._run_ready and
#       _on_check (loop.pxi); one TSC read per callback.
#   io_callbacks_run, bytes_read, datagrams_received: the stream and UDP read
#       callbacks, which call protocols straight from libuv.
#   bytes_written, datagrams_sent: wherever the kernel took bytes.
#   connections_accepted: server.pxi. tasks_created: create_task.
#   poll wait: libuv's own idle-time metric (UV_METRICS_IDLE_TIME).
#   handles alive: counted when asked (uv_walk), nothing kept per handle.


def _tsc_is_invariant():
    # The TSC is a usable clock when it ticks at a constant rate through
    # frequency changes and sleep states; the kernel says so in cpuinfo.
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = line.split()
                    return 'constant_tsc' in flags and 'nonstop_tsc' in flags
    except OSError:
        pass
    return False


uvc_clock_init(1 if _tsc_is_invariant() else 0)

METRICS_COMPILED_IN = bool(UVC_METRICS)


cdef double _ticks_to_seconds(uint64_t ticks):
    return <double>ticks / uvc_ticks_per_second()


cdef struct _HandleCounts:
    Py_ssize_t tcp
    Py_ssize_t unix_stream
    Py_ssize_t pipe
    Py_ssize_t udp
    Py_ssize_t signal


cdef void _count_handle(uv.uv_handle_t* handle, void* arg) noexcept nogil:
    # Called by uv_walk, with the GIL held (metrics() runs on it).
    cdef _HandleCounts* c = <_HandleCounts*>arg
    if uv.uv_is_closing(handle) or handle.data == NULL:
        return
    if handle.type == uv.UV_TCP:
        c.tcp += 1
    elif handle.type == uv.UV_UDP:
        c.udp += 1
    elif handle.type == uv.UV_SIGNAL:
        c.signal += 1
    elif handle.type == uv.UV_NAMED_PIPE:
        with gil:
            if isinstance(<object>handle.data, UnixTransport):
                c.unix_stream += 1
            else:
                c.pipe += 1


cdef dict _lag_summary(BaseLoop loop):
    # p50/p99/max of timer lag over the last UVC_LAG_WINDOWS windows.
    cdef unsigned long long counts[128]
    cdef uint64_t total = 0, seen, want
    cdef double mx = 0.0, p50 = 0.0, p99 = 0.0
    cdef long long epoch = <long long>(uvc_monotonic() / UVC_LAG_WINDOW_SECONDS)
    cdef uvc_lag_window_t* w
    cdef int i, b
    for b in range(UVC_LAG_BUCKETS):
        counts[b] = 0
    for i in range(UVC_LAG_WINDOWS):
        w = &loop.m.lag[i]
        if w.total == 0 or w.epoch <= epoch - UVC_LAG_WINDOWS or w.epoch > epoch:
            continue
        total += w.total
        if w.max > mx:
            mx = w.max
        for b in range(UVC_LAG_BUCKETS):
            counts[b] += w.counts[b]
    if total:
        p50 = _lag_percentile(counts, total, 0.50, mx)
        p99 = _lag_percentile(counts, total, 0.99, mx)
    return {
        'timer_lag_samples': total,
        'timer_lag_p50_seconds': p50,
        'timer_lag_p99_seconds': p99,
        'timer_lag_max_seconds': mx,
        'timer_lag_window_seconds': UVC_LAG_WINDOWS * UVC_LAG_WINDOW_SECONDS,
    }


cdef double _lag_percentile(unsigned long long* counts, uint64_t total, double q,
                            double mx):
    # The upper edge of the bucket holding the q-quantile (never above the
    # largest lag seen): at most 25% above the true value.
    cdef uint64_t want = <uint64_t>ceil(q * total)
    cdef uint64_t seen = 0
    cdef int b
    cdef double upper
    for b in range(UVC_LAG_BUCKETS):
        seen += counts[b]
        if seen >= want:
            break
    if b < 4:
        upper = (b + 1) * 1e-6
    else:
        upper = uvc_lag_bucket_low_us(b + 1) * 1e-6
    return upper if upper < mx else mx


cdef dict _loop_metrics(BaseLoop loop):
    cdef uvc_metrics_t* m = &loop.m
    cdef _HandleCounts hc
    cdef uv.uv_metrics_t um
    cdef uint64_t now = uvc_ticks()
    cdef uint64_t run_ticks = m.run_ticks
    cdef double run_s, wait_s = 0.0
    cdef unsigned long long events = 0
    hc.tcp = hc.unix_stream = hc.pipe = hc.udp = hc.signal = 0
    if m.run_started:
        run_ticks += now - m.run_started
    if loop.uvloop != NULL and not loop._closed:
        uv.uv_walk(loop.uvloop, _count_handle, &hc)
        if UVC_METRICS:
            wait_s = uv.uv_metrics_idle_time(loop.uvloop) * 1e-9
            if uv.uv_metrics_info(loop.uvloop, &um) == 0:
                events = um.events
    run_s = _ticks_to_seconds(run_ticks)
    timers_alive = loop.timers.size - loop.timers.cancelled
    children = getattr(loop, '_child_pidfds', None)
    result = {
        'metrics_compiled_in': METRICS_COMPILED_IN,
        'loop_iterations': loop.iteration,
        'callbacks_run': m.callbacks_run,
        'io_callbacks_run': m.io_callbacks_run,
        'timers_fired': m.timers_fired,
        'tasks_created': m.tasks_created,
        'callbacks_ready': loop.ready.count,
        'io_events': events,
        'bytes_read': m.bytes_read,
        'bytes_written': m.bytes_written,
        'datagrams_received': m.datagrams_received,
        'datagrams_sent': m.datagrams_sent,
        'connections_accepted': m.connections_accepted,
        'run_seconds': run_s,
        'poll_wait_seconds': wait_s,
        'callback_seconds': _ticks_to_seconds(m.callback_ticks),
        'loop_utilisation': (1.0 - wait_s / run_s) if run_s > 0 and wait_s <= run_s else 0.0,
        'longest_callback_seconds': _ticks_to_seconds(m.longest_callback_ticks),
        'current_callback_seconds': (_ticks_to_seconds(now - m.current_started)
                                     if m.current_started else 0.0),
        'slow_callbacks': m.slow_callbacks,
        'handles_alive_tcp': hc.tcp,
        'handles_alive_unix': hc.unix_stream,
        'handles_alive_udp': hc.udp,
        'handles_alive_pipe': hc.pipe,
        'handles_alive_timer': timers_alive,
        'handles_alive_process': len(children) if children is not None else 0,
        'handles_alive_signal': hc.signal,
        'handles_alive_poll': len(loop._watchers),
    }
    result.update(_lag_summary(loop))
    return result


cdef int _set_slow_threshold(BaseLoop loop, object seconds) except -1:
    # None: tracing off (no callback can exceed the threshold).
    if seconds is None:
        loop.m.slow_ticks = <uint64_t>-1
    else:
        loop.m.slow_ticks = <uint64_t>(seconds * uvc_ticks_per_second())
    return 0


cdef tuple _watch_state(BaseLoop loop):
    # For the watchdog thread: (callbacks started so far, ticks when the
    # running callback began or 0, ticks now, ticks per second, the thread
    # running the loop or None).
    return (loop.m.callbacks_run + loop.m.io_callbacks_run, loop.m.current_started,
            uvc_ticks(), uvc_ticks_per_second(), loop._thread_id)
