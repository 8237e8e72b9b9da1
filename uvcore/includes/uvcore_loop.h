/* C helpers for uvcore's loop: GIL hand-off around the poll phase, clock. */
#ifndef UVCORE_LOOP_H
#define UVCORE_LOOP_H

#include <Python.h>
#include <fcntl.h>
#include <stdlib.h>
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

/* libuv keeps an fd-indexed array of watchers and grows it with realloc
   when a handle starts on a higher fd; if that fails it calls abort(). Check
   first that an array of the size it will ask for can be had: 0 if so, -1 if
   not (the caller raises MemoryError, as asyncio would). */
static inline int uvc_reserve_watchers(uv_loop_t *loop, int fd) {
    size_t len = (size_t)fd + 1, n = 1;
    void *p;
    if (fd < 0 || len <= loop->nwatchers)
        return 0;
    if (fcntl(fd, F_GETFD) == -1)
        return 0;       /* not open: libuv refuses it with EBADF, no growth */
    while (n < len + 2)
        n <<= 1;
    p = malloc(n * sizeof(loop->watchers[0]));
    if (p == NULL)
        return -1;
    free(p);
    return 0;
}

#endif
