/* Loop metrics kept in C: counters, a cheap clock for callback timing, and
   the timer-lag histogram. See docs/architecture.md, "Metrics".

   Building with UVCORE_METRICS=0 (setup.py defines UVC_METRICS=0) compiles
   every counter update and clock read out: that build exists to measure what
   the metrics cost (benchmarks/overhead.py). */
#ifndef UVCORE_METRICS_H
#define UVCORE_METRICS_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#ifndef UVC_METRICS
#define UVC_METRICS 1
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define UVC_HAVE_TSC 1
#else
#define UVC_HAVE_TSC 0
#endif

/* Lag histogram: buckets of microseconds. 0..3 are exact; above, four
   buckets per power of two (at most 25% wide). UVC_LAG_WINDOWS windows of
   UVC_LAG_WINDOW_SECONDS each make the sliding window. */
#define UVC_LAG_BUCKETS 128
#define UVC_LAG_WINDOWS 6
#define UVC_LAG_WINDOW_SECONDS 10.0

typedef struct {
    int64_t epoch;                       /* which 10 s window this slot holds */
    uint64_t total;
    double max;                          /* seconds */
    uint32_t counts[UVC_LAG_BUCKETS];
} uvc_lag_window_t;

typedef struct {
    uint64_t callbacks_run;              /* ready-queue callbacks (incl. timers, task steps) */
    uint64_t io_callbacks_run;           /* protocol callbacks made straight from I/O */
    uint64_t timers_fired;
    uint64_t tasks_created;
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t datagrams_received;
    uint64_t datagrams_sent;
    uint64_t connections_accepted;
    uint64_t slow_callbacks;             /* callbacks over the tracing threshold */
    uint64_t callback_ticks;             /* time spent in callbacks */
    uint64_t longest_callback_ticks;
    uint64_t run_ticks;                  /* time spent inside run_forever */
    uint64_t run_started;                /* ticks when the current run began; 0 if not running */
    uint64_t current_started;            /* ticks when the running callback began; 0 between */
    uint64_t slow_ticks;                 /* tracing threshold; UINT64_MAX when off */
    uvc_lag_window_t lag[UVC_LAG_WINDOWS];
} uvc_metrics_t;

/* -- the clock ------------------------------------------------------------ */

static int uvc_tsc_usable = 0;          /* set once at import: invariant TSC */
static uint64_t uvc_ticks_origin = 0;
static uint64_t uvc_ns_origin = 0;
static double uvc_ticks_per_second_cached = 0.0;

static inline uint64_t uvc_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t uvc_ticks(void) {
#if !UVC_METRICS
    return 0;
#elif UVC_HAVE_TSC
    /* rdtsc is about 10 ns here against 21 ns for clock_gettime, and the
       timing of every callback makes it count. */
    if (uvc_tsc_usable)
        return __rdtsc();
    return uvc_clock_ns();
#else
    return uvc_clock_ns();
#endif
}

static void uvc_clock_init(int tsc_usable) {
#if UVC_HAVE_TSC
    uvc_tsc_usable = tsc_usable;
#else
    (void)tsc_usable;
#endif
    uvc_ticks_origin = uvc_ticks();
    uvc_ns_origin = uvc_clock_ns();
}

/* Ticks per second: 1e9 for the clock_gettime fallback; for the TSC,
   measured against CLOCK_MONOTONIC over the time since import (at least
   20 ms, waited for if need be; fixed once a second has passed). */
static double uvc_ticks_per_second(void) {
    uint64_t t, ns;
    double r;
    if (!UVC_METRICS || !uvc_tsc_usable)
        return 1e9;
    if (uvc_ticks_per_second_cached > 0.0)
        return uvc_ticks_per_second_cached;
    do {
        ns = uvc_clock_ns();
        t = uvc_ticks();
    } while (ns - uvc_ns_origin < 20000000u);
    r = (double)(t - uvc_ticks_origin) * 1e9 / (double)(ns - uvc_ns_origin);
    if (ns - uvc_ns_origin >= 1000000000u)
        uvc_ticks_per_second_cached = r;
    return r;
}

static inline void uvc_add(uint64_t *counter, uint64_t n) {
#if UVC_METRICS
    *counter += n;
#else
    (void)counter; (void)n;
#endif
}

/* One callback is over: account for its time, keep the longest; returns
   non-zero when it went over the tracing threshold. */
static inline int uvc_callback_done(uvc_metrics_t *m, uint64_t started, uint64_t now) {
#if UVC_METRICS
    uint64_t d = now - started;
    m->callback_ticks += d;
    if (d > m->longest_callback_ticks)
        m->longest_callback_ticks = d;
    return d > m->slow_ticks;
#else
    (void)m; (void)started; (void)now;
    return 0;
#endif
}

/* -- timer lag -------------------------------------------------------------- */

static inline int uvc_lag_bucket(double lag) {
    uint64_t us;
    int msb, idx;
    if (!(lag > 0.0))
        return 0;
    if (lag >= 1e9)
        return UVC_LAG_BUCKETS - 1;
    us = (uint64_t)(lag * 1e6);
    if (us < 4)
        return (int)us;
    msb = 63 - __builtin_clzll(us);
    idx = 4 + (msb - 2) * 4 + (int)((us >> (msb - 2)) & 3);
    return idx < UVC_LAG_BUCKETS ? idx : UVC_LAG_BUCKETS - 1;
}

/* The lowest lag (microseconds) that falls into a bucket. */
static inline double uvc_lag_bucket_low_us(int idx) {
    int msb;
    if (idx < 4)
        return (double)idx;
    msb = (idx - 4) / 4 + 2;
    return (double)((uint64_t)(4 + (idx - 4) % 4) << (msb - 2));
}

static inline void uvc_lag_record(uvc_metrics_t *m, double now, double lag) {
#if UVC_METRICS
    int64_t epoch = (int64_t)(now / UVC_LAG_WINDOW_SECONDS);
    uvc_lag_window_t *w = &m->lag[epoch % UVC_LAG_WINDOWS];
    if (w->epoch != epoch) {
        memset(w, 0, sizeof(*w));
        w->epoch = epoch;
    }
    w->counts[uvc_lag_bucket(lag)]++;
    w->total++;
    if (lag > w->max)
        w->max = lag;
#else
    (void)m; (void)now; (void)lag;
#endif
}

#endif
