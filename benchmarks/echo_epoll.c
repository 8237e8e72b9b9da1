/*
 * echo_epoll: reference echo server on raw epoll, the ceiling row of the
 * uvcore network benchmarks.  Single thread, level-triggered, non-blocking.
 *
 *   echo_epoll [--host H] [--port P | --unix PATH] [--http]
 *
 * Listens, prints "READY <port>" (port 0 picks a free one; "READY 0" for a
 * Unix socket) and serves until killed.  Echo mode writes back what it reads;
 * if the socket does not take everything, it stops reading that connection
 * until the rest is written.  With --http it answers every request (a header
 * block ending in CRLF CRLF; no request bodies) with the same fixed
 * "Hello, World!" response as the Python HTTP server.
 *
 * Build: cc -O2 -o echo_epoll echo_epoll.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)   /* like asyncio and uvloop: up to 256 KiB per read */

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, World!";

struct conn {
    int fd;
    int want_out;                   /* waiting for EPOLLOUT, not reading */
    int crlf;                       /* http: how much of "\r\n\r\n" matched */
    size_t off, len;                /* pending output: out[off..len) */
    size_t cap;
    char *out;
};

static int epfd, lfd, http_mode;

static void conn_free(struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

static int set_events(struct conn *c, int out)
{
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    c->want_out = out;
    return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write c->out[off..len); returns -1 if the connection is gone. */
static int flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n > 0) {
            c->off += n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out && set_events(c, 1) < 0)
                return -1;
            return 0;
        } else {
            return -1;
        }
    }
    c->off = c->len = 0;
    if (c->want_out && set_events(c, 0) < 0)
        return -1;
    return 0;
}

static int append(struct conn *c, const char *p, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n)
            cap *= 2;
        char *q = realloc(c->out, cap);
        if (!q)
            return -1;
        c->out = q;
        c->cap = cap;
    }
    memcpy(c->out + c->len, p, n);
    c->len += n;
    return 0;
}

static int on_readable(struct conn *c)
{
    static char buf[BUF_SIZE];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    if (!http_mode) {
        /* try to send straight from the read buffer; keep only the rest */
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return -1;
            w = 0;
        }
        if (w == n)
            return 0;
        c->off = c->len = 0;
        if (append(c, buf + w, n - w) < 0)
            return -1;
        return flush(c);
    }
    static const char end[] = "\r\n\r\n";
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == end[c->crlf]) {
            if (++c->crlf == 4) {
                c->crlf = 0;
                if (append(c, RESPONSE, sizeof RESPONSE - 1) < 0)
                    return -1;
            }
        } else {
            c->crlf = buf[i] == '\r' ? 1 : 0;
        }
    }
    return flush(c);
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;                 /* EAGAIN, or a transient error */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* fails on AF_UNIX: fine */
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *unix_path = NULL;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--unix") && i + 1 < argc)
            unix_path = argv[++i];
        else if (!strcmp(argv[i], "--http"))
            http_mode = 1;
        else {
            fprintf(stderr, "usage: %s [--host H] [--port P | --unix PATH] [--http]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    if (unix_path) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof sa.sun_path) {
            fprintf(stderr, "unix socket path too long\n");
            return 1;
        }
        strcpy(sa.sun_path, unix_path);
        unlink(unix_path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            perror("bind");
            return 1;
        }
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE};
        struct addrinfo *res;
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        int rc = getaddrinfo(host, ps, &hints, &res);
        if (rc) {
            fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
            return 1;
        }
        lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (lfd < 0 || bind(lfd, res->ai_addr, res->ai_addrlen) < 0) {
            perror("bind");
            return 1;
        }
        freeaddrinfo(res);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(lfd, (struct sockaddr *)&ss, &sl);
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    }
    if (listen(lfd, 1024) < 0) {
        perror("listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    printf("READY %d\n", unix_path ? 0 : port);
    fflush(stdout);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(epfd, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                on_accept();
                continue;
            }
            int rc;
            if (c->want_out)
                rc = (evs[i].events & (EPOLLERR | EPOLLHUP)) && !(evs[i].events & EPOLLOUT)
                         ? -1 : flush(c);
            else
                rc = on_readable(c);
            if (rc < 0)
                conn_free(c);
        }
    }
}
