/*
 * loadgen: ping-pong load generator for the uvcore network benchmarks.
 *
 * N connections (default 50) to a TCP host:port or a Unix socket path.  Each
 * connection sends one message of S bytes and waits for the complete S-byte
 * echo before it sends the next one (ping-pong).  Every echoed byte is
 * compared with what was sent; the message carries the connection id and a
 * sequence number at both ends, so stale, duplicated, reordered or corrupted
 * data is caught.  After a warm-up of W seconds the round trips completed in
 * the next D seconds are counted.
 *
 * With --http the connections send "GET / HTTP/1.1" requests instead and wait
 * for a complete response (status 200, Content-Length body); the runner uses
 * this to prime HTTP servers (wrk does the measuring).
 *
 * With --server-pid the server's CPU time (utime + stime from /proc/PID/stat)
 * is read at the start and end of the measured window; with --cpus, the busy
 * time of those CPUs from /proc/stat too, so the runner can tell how much CPU
 * other processes used meanwhile.
 *
 * Prints one JSON object on stdout, e.g.
 *   {"round_trips": 123456, "seconds": 3.0001, "errors": 0, ...}
 * Exit status 0 when errors == 0, 1 otherwise, 2 on bad usage.
 *
 * Build: cc -O2 -o loadgen loadgen.c   (Linux only: epoll, /proc)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x42435655u           /* "UVCB" little endian */
#define HDR 16                      /* seq (8) + conn id (4) + magic (4) */
#define TRAILER 8                   /* seq ^ TRAILER_XOR */
#define TRAILER_XOR 0xA5A5A5A55A5A5A5AULL
#define RBUF_SIZE (256 * 1024)
#define HTTP_BUF 8192
#define MAX_CPUS 64

struct conn {
    int fd;
    int id;
    int out_armed;                  /* EPOLLOUT registered */
    uint64_t seq;                   /* sequence number of the message in flight */
    size_t sent, recvd;             /* bytes of the message in flight */
    uint64_t done;                  /* completed round trips (total) */
    uint64_t done_at_start;         /* ... when the measured window began */
    unsigned char *msg;             /* echo: the message in flight (S bytes) */
    char *hbuf;                     /* http: response being received */
};

/* options */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static const char *opt_unix = NULL;
static int opt_conns = 50;
static size_t opt_size = 1024;
static double opt_duration = 3.0;
static double opt_warmup = 0.5;
static double opt_stall = 5.0;
static int opt_http = 0;
static int opt_server_pid = 0;
static int opt_cpus[MAX_CPUS];
static int opt_ncpus = 0;

static const char http_req_fmt[] = "GET / HTTP/1.1\r\nHost: %s\r\n\r\n";
static char http_req[512];
static size_t http_req_len;

static int epfd;
static unsigned char *rbuf;
static uint64_t n_errors = 0;
static char first_error[512] = "";
static int live = 0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void error_at(struct conn *c, const char *fmt, ...)
{
    n_errors++;
    if (!first_error[0]) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (c)
            snprintf(first_error, sizeof first_error, "conn %d, message %llu: %s",
                     c->id, (unsigned long long)c->seq, msg);
        else
            snprintf(first_error, sizeof first_error, "%s", msg);
    }
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        live--;
    }
}

/* ---- /proc readers ---------------------------------------------------- */

static double clk_tck;

/* utime + stime of a process, in seconds; -1 on failure */
static double proc_cpu(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');      /* the command name may hold spaces */
    if (!p)
        return -1;
    p++;
    /* after ')': field 3 (state) ... field 14 utime, field 15 stime */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            return (ut + st) / clk_tck;
        }
    }
    return -1;
}

/* busy (user+nice+system+irq+softirq) and steal seconds of the --cpus */
static int cpus_busy(double *busy, double *steal)
{
    if (!opt_ncpus)
        return -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[512];
    unsigned long long b = 0, s = 0;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8] = {0};
        if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9')
            continue;
        if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 8)
            continue;
        for (int i = 0; i < opt_ncpus; i++)
            if (opt_cpus[i] == cpu) {
                b += v[0] + v[1] + v[2] + v[5] + v[6];
                s += v[7];
                found++;
            }
    }
    fclose(f);
    *busy = b / clk_tck;
    *steal = s / clk_tck;
    return found ? 0 : -1;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

struct snap {
    double t, server, self, busy, steal;
    int have_server, have_busy;
};

static void take_snap(struct snap *s)
{
    s->t = now();
    s->have_server = 0;
    if (opt_server_pid) {
        s->server = proc_cpu(opt_server_pid);
        s->have_server = s->server >= 0;
    }
    s->have_busy = cpus_busy(&s->busy, &s->steal) == 0;
    s->self = self_cpu();
}

/* ---- messages --------------------------------------------------------- */

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Write the header (and trailer) of message c->seq into c->msg.  The body
 * between them is a fixed per-connection pattern, written once. */
static void stamp_message(struct conn *c)
{
    unsigned char hdr[HDR];
    put64(hdr, c->seq);
    put32(hdr + 8, (uint32_t)c->id);
    put32(hdr + 12, MAGIC);
    memcpy(c->msg, hdr, opt_size < HDR ? opt_size : HDR);
    if (opt_size >= HDR + TRAILER)
        put64(c->msg + opt_size - TRAILER, c->seq ^ TRAILER_XOR);
}

static void set_out(struct conn *c, int on)
{
    if (c->out_armed == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        error_at(c, "epoll_ctl: %s", strerror(errno));
        conn_close(c);
        return;
    }
    c->out_armed = on;
}

static void do_write(struct conn *c)
{
    const unsigned char *data = opt_http ? (const unsigned char *)http_req : c->msg;
    size_t len = opt_http ? http_req_len : opt_size;
    while (c->sent < len) {
        ssize_t n = send(c->fd, data + c->sent, len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(c, 1);
            return;
        }
        error_at(c, "send: %s", n < 0 ? strerror(errno) : "returned 0");
        conn_close(c);
        return;
    }
    set_out(c, 0);
}

static void start_next(struct conn *c)
{
    c->seq++;
    c->sent = c->recvd = 0;
    if (!opt_http)
        stamp_message(c);
    do_write(c);
}

/* http: is the response in c->hbuf[0..recvd) complete?  1 yes, 0 not yet,
 * -1 malformed (error recorded). */
static int http_complete(struct conn *c)
{
    char *h = c->hbuf;
    h[c->recvd] = 0;
    char *end = strstr(h, "\r\n\r\n");
    if (!end)
        return c->recvd >= HTTP_BUF - 1 ? (error_at(c, "response header too long"), -1) : 0;
    if (strncmp(h, "HTTP/1.1 200 ", 13) && strncmp(h, "HTTP/1.0 200 ", 13)) {
        char *eol = strstr(h, "\r\n");
        error_at(c, "bad status line: %.*s", eol ? (int)(eol - h) : 40, h);
        return -1;
    }
    long clen = -1;
    for (char *p = strstr(h, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n"))
        if (!strncasecmp(p + 2, "content-length:", 15))
            clen = strtol(p + 17, NULL, 10);
    if (clen < 0) {
        error_at(c, "response without Content-Length");
        return -1;
    }
    size_t total = (size_t)(end + 4 - h) + (size_t)clen;
    if (total >= HTTP_BUF) {
        error_at(c, "response too long (%zu bytes)", total);
        return -1;
    }
    if (c->recvd < total)
        return 0;
    if (c->recvd > total) {
        error_at(c, "%zu unexpected bytes after the response", c->recvd - total);
        return -1;
    }
    return 1;
}

/* Returns 1 when the connection completed a round trip. */
static int do_read(struct conn *c, int stopping)
{
    for (;;) {
        ssize_t n;
        if (opt_http)
            n = recv(c->fd, c->hbuf + c->recvd, HTTP_BUF - 1 - c->recvd, 0);
        else
            n = recv(c->fd, rbuf, RBUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (!stopping)
                error_at(c, "recv: %s", strerror(errno));
            conn_close(c);
            return 0;
        }
        if (n == 0) {
            if (!stopping)
                error_at(c, "server closed the connection (%zu of %zu bytes echoed)", c->recvd,
                         opt_http ? (size_t)0 : opt_size);
            conn_close(c);
            return 0;
        }
        if (opt_http) {
            c->recvd += n;
            int r = http_complete(c);
            if (r < 0) {
                conn_close(c);
                return 0;
            }
            if (r == 0)
                continue;
            if (c->sent < http_req_len) {
                error_at(c, "response before the whole request was sent");
                conn_close(c);
                return 0;
            }
            c->done++;
            return 1;
        }
        size_t want = opt_size - c->recvd;
        if ((size_t)n > want || c->recvd + n > c->sent) {
            error_at(c, "server sent %zd bytes, only %zu expected (%zu sent, %zu echoed)", n,
                     (c->sent - c->recvd), c->sent, c->recvd);
            conn_close(c);
            return 0;
        }
        if (memcmp(rbuf, c->msg + c->recvd, n)) {
            size_t i = 0;
            while (rbuf[i] == c->msg[c->recvd + i])
                i++;
            error_at(c, "echo differs at byte %zu of %zu (got 0x%02x, sent 0x%02x)",
                     c->recvd + i, opt_size, rbuf[i], c->msg[c->recvd + i]);
            conn_close(c);
            return 0;
        }
        c->recvd += n;
        if (c->recvd == opt_size) {
            c->done++;
            return 1;
        }
    }
}

/* ---- set-up ----------------------------------------------------------- */

static int connect_one(void)
{
    int fd;
    if (opt_unix) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(opt_unix) >= sizeof sa.sun_path) {
            error_at(NULL, "unix socket path too long");
            return -1;
        }
        strcpy(sa.sun_path, opt_unix);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            error_at(NULL, "connect %s: %s", opt_unix, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        char port[16];
        snprintf(port, sizeof port, "%d", opt_port);
        int rc = getaddrinfo(opt_host, port, &hints, &res);
        if (rc) {
            error_at(NULL, "getaddrinfo %s: %s", opt_host, gai_strerror(rc));
            return -1;
        }
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
            error_at(NULL, "connect %s:%d: %s", opt_host, opt_port, strerror(errno));
            if (fd >= 0)
                close(fd);
            freeaddrinfo(res);
            return -1;
        }
        freeaddrinfo(res);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host H] [--port P | --unix PATH] [-c CONNS] [-s SIZE]\n"
            "          [-d SECONDS] [-w WARMUP] [--stall SECONDS] [--http]\n"
            "          [--server-pid PID] [--cpus 0,1]\n",
            argv0);
    exit(2);
}

static void parse_cpus(const char *s)
{
    while (*s && opt_ncpus < MAX_CPUS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s)
            break;
        opt_cpus[opt_ncpus++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
        if (ARG("--host"))
            opt_host = v;
        else if (ARG("--port") || ARG("-p"))
            opt_port = atoi(v);
        else if (ARG("--unix"))
            opt_unix = v;
        else if (ARG("-c") || ARG("--connections"))
            opt_conns = atoi(v);
        else if (ARG("-s") || ARG("--size"))
            opt_size = (size_t)strtoull(v, NULL, 10);
        else if (ARG("-d") || ARG("--duration"))
            opt_duration = atof(v);
        else if (ARG("-w") || ARG("--warmup"))
            opt_warmup = atof(v);
        else if (ARG("--stall"))
            opt_stall = atof(v);
        else if (ARG("--server-pid"))
            opt_server_pid = atoi(v);
        else if (ARG("--cpus"))
            parse_cpus(v);
        else if (!strcmp(a, "--http"))
            opt_http = 1;
        else
            usage(argv[0]);
#undef ARG
    }
    if (opt_conns < 1 || opt_duration <= 0 || opt_warmup < 0 || (!opt_unix && !opt_port))
        usage(argv[0]);
    if (!opt_http && opt_size < HDR + TRAILER) {
        fprintf(stderr, "--size must be at least %d\n", HDR + TRAILER);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    clk_tck = (double)sysconf(_SC_CLK_TCK);
    http_req_len = (size_t)snprintf(http_req, sizeof http_req, http_req_fmt,
                                    opt_unix ? "localhost" : opt_host);

    rbuf = malloc(RBUF_SIZE);
    struct conn *conns = calloc(opt_conns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!rbuf || !conns || epfd < 0) {
        perror("set-up");
        return 1;
    }
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        c->fd = -1;
        c->id = i;
        if (opt_http) {
            c->hbuf = malloc(HTTP_BUF);
        } else {
            c->msg = malloc(opt_size);
            if (c->msg)
                for (size_t k = 0; k < opt_size; k++)
                    c->msg[k] = (unsigned char)((k * 131u + (unsigned)i * 7u + 13u) >> 1);
        }
        if (!c->hbuf && !c->msg) {
            perror("malloc");
            return 1;
        }
    }

    /* connect everything first, then start all connections at once */
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        c->fd = connect_one();
        if (c->fd < 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        live++;
    }
    double t0 = now();
    for (int i = 0; i < opt_conns; i++)
        if (conns[i].fd >= 0)
            start_next(&conns[i]);

    double t_start = t0 + opt_warmup, t_end = t_start + opt_duration;
    int measuring = opt_warmup <= 0;
    struct snap s0, s1;
    if (measuring)
        take_snap(&s0);
    uint64_t total = 0, total_at_start = 0;
    double last_progress = t0;
    int stalled = 0;
    struct epoll_event evs[256];

    while (live > 0) {
        double t = now();
        if (!measuring && t >= t_start) {
            take_snap(&s0);
            measuring = 1;
            total_at_start = total;
            for (int i = 0; i < opt_conns; i++)
                conns[i].done_at_start = conns[i].done;
        }
        if (measuring && t >= t_end)
            break;
        if (t - last_progress > opt_stall) {
            stalled = 1;
            break;
        }
        double next = measuring ? t_end : t_start;
        int timeout = (int)((next - t) * 1000.0) + 1;
        if (timeout > 100)
            timeout = 100;
        int n = epoll_wait(epfd, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            error_at(NULL, "epoll_wait: %s", strerror(errno));
            break;
        }
        int progressed = 0;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[i].events & EPOLLOUT)
                do_write(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                if (do_read(c, 0)) {
                    total++;
                    progressed = 1;
                    start_next(c);
                }
            }
        }
        if (progressed)
            last_progress = now();
    }
    if (!measuring) {               /* ended (errors, stall) before the window */
        take_snap(&s0);
        total_at_start = total;
    }
    take_snap(&s1);

    int idle_conns = 0;
    uint64_t min_c = UINT64_MAX, max_c = 0;
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        uint64_t d = c->done - c->done_at_start;
        if (d < min_c)
            min_c = d;
        if (d > max_c)
            max_c = d;
        if (c->fd >= 0 && d == 0)
            idle_conns++;
    }
    if (stalled)
        error_at(NULL, "stalled: no round trip completed for %.1f s (%d connection(s) open)",
                 opt_stall, live);
    else if (idle_conns && s1.t - s0.t >= 0.5)
        error_at(NULL, "%d connection(s) completed no round trip in the %.2f s measured",
                 idle_conns, s1.t - s0.t);
    if (live == 0 && !n_errors)
        error_at(NULL, "no connection left");

    for (int i = 0; i < opt_conns; i++)
        if (conns[i].fd >= 0) {
            /* closing with data unread makes the kernel send RST; servers see
             * a reset rather than EOF, which every loop must cope with */
            close(conns[i].fd);
            conns[i].fd = -1;
        }

    double secs = s1.t - s0.t;
    printf("{\"round_trips\": %llu, \"seconds\": %.6f, \"errors\": %llu",
           (unsigned long long)(total - total_at_start), secs, (unsigned long long)n_errors);
    printf(", \"warmup_round_trips\": %llu, \"connections\": %d, \"size\": %zu, \"mode\": \"%s\"",
           (unsigned long long)total_at_start, opt_conns, opt_http ? http_req_len : opt_size,
           opt_http ? "http" : "echo");
    printf(", \"per_conn_min\": %llu, \"per_conn_max\": %llu",
           (unsigned long long)(min_c == UINT64_MAX ? 0 : min_c), (unsigned long long)max_c);
    printf(", \"client_cpu\": %.6f", s1.self - s0.self);
    if (s0.have_server && s1.have_server)
        printf(", \"server_cpu\": %.4f", s1.server - s0.server);
    else
        printf(", \"server_cpu\": null");
    if (s0.have_busy && s1.have_busy)
        printf(", \"cpus_busy\": %.4f, \"cpus_steal\": %.4f", s1.busy - s0.busy,
               s1.steal - s0.steal);
    else
        printf(", \"cpus_busy\": null, \"cpus_steal\": null");
    printf(", \"clk_tck\": %.0f, \"error\": ", clk_tck);
    if (first_error[0])
        json_str(first_error);
    else
        printf("null");
    printf("}\n");
    fflush(stdout);
    return n_errors ? 1 : 0;
}
