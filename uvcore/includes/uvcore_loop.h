/* C helpers for uvcore's loop: GIL hand-off around the poll phase, clock. */
#ifndef UVCORE_LOOP_H
#define UVCORE_LOOP_H

#include <Python.h>
#include <time.h>
#include "uv.h"

/* Every uv_loop_t that uvcore creates is the first member of this struct, so any
   libuv handle's ->loop can be turned back into it. */
typedef struct {
    uv_loop_t uv;
    /* Non-NULL while the loop thread sleeps in poll without the GIL. The first
       libuv callback after the poll takes the GIL back (uvc_gil_ensure); the GIL
       then stays held until the next poll that would block. */
    PyThreadState *saved;
} uvc_loop_t;

static inline void uvc_gil_ensure(void *l) {
    uvc_loop_t *c = (uvc_loop_t *)l;
    if (c->saved != NULL) {
        PyThreadState *t = c->saved;
        c->saved = NULL;
        PyEval_RestoreThread(t);
    }
}

static inline void uvc_gil_release(void *l) {
    uvc_loop_t *c = (uvc_loop_t *)l;
    if (c->saved == NULL)
        c->saved = PyEval_SaveThread();
}

/* time.monotonic() at full resolution (the same clock libuv and Python use). */
static inline double uvc_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
