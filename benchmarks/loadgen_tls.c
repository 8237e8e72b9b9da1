/*
 * loadgen_tls: TLS load generator for the uvcore network benchmarks (the TLS
 * counterpart of loadgen.c, same options and the same JSON line).
 *
 * Echo mode (default): N connections (default 50) to a TCP host:port or a Unix
 * socket path; each one first completes its TLS handshake (all of them before
 * the clock starts), then sends one message of S bytes and waits for the
 * complete S-byte echo before it sends the next one (ping-pong), all inside
 * TLS.  Every echoed byte is compared with what was sent; the message carries
 * the connection id and a sequence number at both ends, so stale, duplicated,
 * reordered or corrupted data is caught.  After a warm-up of W seconds the
 * round trips completed in the next D seconds are counted.
 *
 * Handshake mode (--handshake): N slots, each repeatedly connects (a new TCP
 * connection), completes a full TLS 1.3 handshake (no session resumption: the
 * client keeps no session cache and never offers a ticket; a resumed session
 * is an error), sends one S-byte message (use a small S, e.g. 64), reads and
 * checks its echo, and closes the socket (no close_notify).  "round_trips"
 * then counts completed connections, i.e. handshakes.
 *
 * TLS: OpenSSL, TLS 1.3 only, default cipher suites and groups (the server
 * picks), no certificate chain verification (SSL_VERIFY_NONE; the server's
 * CertificateVerify signature is still checked, TLS 1.3 requires it).
 * read-ahead on, so a socket read takes as many records as are there.  The
 * client's handshake costs about as much CPU as a Python server's, so it is
 * kept lean: the certificate's EC key is decoded by OpenSSL's legacy code
 * instead of the 3.0 provider decoders (register_legacy_ec; -28 % CPU per
 * handshake; --no-legacy-ec turns it off), no chain building, no
 * ERR_clear_error() before every call.
 *
 * With --server-pid / --cpus: server CPU time and the busy time of those CPUs
 * around the measured window, as loadgen.c.
 *
 * Prints one JSON object on stdout, e.g.
 *   {"round_trips": 12345, "seconds": 2.0001, "errors": 0, "mode": "tls_echo", ...}
 * Exit status 0 when errors == 0, 1 otherwise, 2 on bad usage.
 *
 * Build: cc -O2 -o loadgen_tls loadgen_tls.c -lssl -lcrypto   (Linux: epoll, /proc)
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#ifndef OPENSSL_NO_ENGINE
#include <openssl/engine.h>
/* the ENGINE API (register_legacy_ec) is deprecated in OpenSSL 3 */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#define MAGIC 0x42435655u           /* "UVCB" little endian */
#define HDR 16                      /* seq (8) + conn id (4) + magic (4) */
#define TRAILER 8                   /* seq ^ TRAILER_XOR */
#define TRAILER_XOR 0xA5A5A5A55A5A5A5AULL
#define RBUF_SIZE (256 * 1024)
#define MAX_CPUS 64

enum { ST_IDLE, ST_HANDSHAKE, ST_RUN };

struct conn {
    int fd;
    int id;
    int state;
    unsigned events;                /* epoll events registered (0: not registered) */
    SSL *ssl;
    uint64_t seq;                   /* sequence number of the message in flight */
    size_t sent, recvd;             /* bytes of the message in flight */
    uint64_t done;                  /* completed round trips / handshakes (total) */
    uint64_t done_at_start;         /* ... when the measured window began */
    unsigned char *msg;             /* the message in flight (S bytes) */
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
static int opt_handshake = 0;
static int opt_legacy_ec = 1;
static int legacy_ec = 0;           /* registered (see register_legacy_ec) */
static int opt_server_pid = 0;
static int opt_cpus[MAX_CPUS];
static int opt_ncpus = 0;

static int epfd;
static SSL_CTX *sctx;
static unsigned char *rbuf;
static uint64_t n_errors = 0;
static char first_error[512] = "";
static int live = 0;                /* connections open (or slots running) */
static uint64_t n_handshakes = 0;   /* TLS handshakes completed (total) */
static char tls_version[32] = "", tls_cipher[64] = "", tls_group[32] = "";
static struct addrinfo *addr;       /* TCP: the resolved server address */

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

/* the reason of a failed SSL call, for error messages */
static const char *ssl_reason(int err)
{
    static char buf[256];
    unsigned long e = ERR_get_error();
    if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
        ERR_clear_error();
        return buf;
    }
    if (err == SSL_ERROR_SYSCALL)
        return errno ? strerror(errno) : "unexpected EOF";
    if (err == SSL_ERROR_ZERO_RETURN)
        return "server sent close_notify";
    snprintf(buf, sizeof buf, "SSL error %d", err);
    return buf;
}

/* Close the connection (or the slot's current connection). */
static void conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);               /* also leaves the epoll set (never dup'ed) */
        c->fd = -1;
    }
    c->events = 0;
    if (c->state != ST_IDLE) {
        c->state = ST_IDLE;
        live--;
    }
}

static void set_events(struct conn *c, unsigned ev)
{
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) < 0) {
        error_at(c, "epoll_ctl: %s", strerror(errno));
        conn_close(c);
        return;
    }
    c->events = ev;
}

/* ---- /proc readers (as loadgen.c) -------------------------------------- */

static double clk_tck;

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
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
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

/* ---- messages ----------------------------------------------------------- */

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

static void stamp_message(struct conn *c)
{
    put64(c->msg, c->seq);
    put32(c->msg + 8, (uint32_t)c->id);
    put32(c->msg + 12, MAGIC);
    put64(c->msg + opt_size - TRAILER, c->seq ^ TRAILER_XOR);
}

/* ---- connections -------------------------------------------------------- */

/* A new non-blocking socket, connected or connecting (connect() may not have
 * completed yet).  -1 on failure (error recorded). */
static int open_socket(struct conn *c)
{
    int fd;
    if (opt_unix) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(opt_unix) >= sizeof sa.sun_path) {
            error_at(c, "unix socket path too long");
            return -1;
        }
        strcpy(sa.sun_path, opt_unix);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            if (errno == EINPROGRESS)
                return fd;
            error_at(c, "connect %s: %s", opt_unix, strerror(errno));
            close(fd);
            return -1;
        }
    } else {
        fd = socket(addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(fd, addr->ai_addr, addr->ai_addrlen) < 0) {
                if (errno == EINPROGRESS)
                    return fd;
                error_at(c, "connect %s:%d: %s", opt_host, opt_port, strerror(errno));
                close(fd);
                return -1;
            }
        }
    }
    if (fd < 0)
        error_at(c, "socket: %s", strerror(errno));
    return fd;
}

/* Start a connection: socket, connect, SSL object; the caller drives it.
 * The handshake starts at once, connected or not: while connect() is still
 * in progress, sending the ClientHello fails with EAGAIN, OpenSSL says
 * SSL_ERROR_WANT_WRITE and the connection waits for EPOLLOUT (a failed
 * connect shows up as the send's error).  On loopback the connection is
 * nearly always up by then, which saves a wait per handshake. */
static int conn_start(struct conn *c)
{
    c->fd = open_socket(c);
    if (c->fd < 0)
        return -1;
    c->ssl = SSL_new(sctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        error_at(c, "SSL_new: %s", ssl_reason(0));
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    SSL_set_connect_state(c->ssl);
    live++;
    c->sent = c->recvd = 0;
    c->state = ST_HANDSHAKE;
    set_events(c, EPOLLIN);
    return c->state == ST_HANDSHAKE ? 0 : -1;
}

/* An SSL call failed with err: wait for the socket (1) or give up (0). */
static int ssl_wait(struct conn *c, int err, const char *what, int stopping)
{
    if (err == SSL_ERROR_WANT_READ) {
        set_events(c, EPOLLIN);
        return 1;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        set_events(c, EPOLLIN | EPOLLOUT);
        return 1;
    }
    if (!stopping) {
        if (c->state == ST_RUN && c->recvd < opt_size &&
            (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && !errno && !ERR_peek_error())))
            error_at(c, "%s: server closed the connection (%zu of %zu bytes echoed)", what,
                     c->recvd, opt_size);
        else
            error_at(c, "%s: %s", what, ssl_reason(err));
    }
    ERR_clear_error();
    conn_close(c);
    return 0;
}

static void start_next(struct conn *c)
{
    c->seq++;
    c->sent = c->recvd = 0;
    stamp_message(c);
}

static void handshake_done(struct conn *c)
{
    n_handshakes++;
    if (SSL_version(c->ssl) != TLS1_3_VERSION) {
        error_at(c, "negotiated %s, not TLS 1.3", SSL_get_version(c->ssl));
        conn_close(c);
        return;
    }
    if (SSL_session_reused(c->ssl)) {
        error_at(c, "session was resumed");
        conn_close(c);
        return;
    }
    if (!tls_version[0]) {
        snprintf(tls_version, sizeof tls_version, "%s", SSL_get_version(c->ssl));
        snprintf(tls_cipher, sizeof tls_cipher, "%s", SSL_get_cipher_name(c->ssl));
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        int g = SSL_get_negotiated_group(c->ssl);
        const char *gn = g ? OBJ_nid2sn(g & ~TLSEXT_nid_unknown) : NULL;
        snprintf(tls_group, sizeof tls_group, "%s", gn ? gn : "?");
#endif
    }
    c->state = ST_RUN;
    start_next(c);
}

/* Echo: write what is left of the message, then read what is there.  Returns
 * 1 when the whole echo arrived, 0 otherwise (waiting, or closed on error). */
static int run_io(struct conn *c, int stopping)
{
    /* no ERR_clear_error() before each call: it costs ~4 % of the client's
     * CPU at 1 KiB; the error queue is emptied after every failure instead */
    while (c->sent < opt_size) {
        int n = SSL_write(c->ssl, c->msg + c->sent, (int)(opt_size - c->sent));
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_WRITE) {
            set_events(c, EPOLLIN | EPOLLOUT);
            break;
        }
        if (err == SSL_ERROR_WANT_READ)
            break;
        ssl_wait(c, err, "SSL_write", stopping);
        return 0;
    }
    if (c->sent == opt_size && c->state == ST_RUN)
        set_events(c, EPOLLIN);
    for (;;) {
        errno = 0;
        int n = SSL_read(c->ssl, rbuf, RBUF_SIZE);
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_READ)
                return 0;
            if (err == SSL_ERROR_WANT_WRITE) {
                set_events(c, EPOLLIN | EPOLLOUT);
                return 0;
            }
            ssl_wait(c, err, "SSL_read", stopping);
            return 0;
        }
        if ((size_t)n > opt_size - c->recvd || c->recvd + n > c->sent) {
            error_at(c, "server sent %d bytes, only %zu expected (%zu sent, %zu echoed)", n,
                     c->sent - c->recvd, c->sent, c->recvd);
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
        c->recvd += (size_t)n;
        if (c->recvd == opt_size) {
            c->done++;
            return 1;
        }
    }
}

/* total completed round trips / handshakes, for the main loop */
static uint64_t total = 0;
static int progressed = 0;

/* Move the connection on as far as it goes without blocking. */
static void drive(struct conn *c)
{
    for (;;) {
        if (c->state == ST_HANDSHAKE) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_do_handshake(c->ssl);
            if (r != 1) {
                ssl_wait(c, SSL_get_error(c->ssl, r), "TLS handshake", 0);
                return;
            }
            handshake_done(c);
            if (c->state != ST_RUN)
                return;
            if (!opt_handshake) {       /* echo mode: wait for the start signal */
                set_events(c, EPOLLIN);
                return;
            }
        }
        if (c->state != ST_RUN)
            return;
        if (!run_io(c, 0))
            return;
        total++;
        progressed = 1;
        if (opt_handshake) {
            /* one handshake + one echo done: close, and start over */
            conn_close(c);
            if (conn_start(c) < 0)
                return;
            continue;                   /* on with the new handshake */
        }
        start_next(c);
    }
}

/* ---- set-up ------------------------------------------------------------- */

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host H] [--port P | --unix PATH] [-c CONNS] [-s SIZE]\n"
            "          [-d SECONDS] [-w WARMUP] [--stall SECONDS] [--handshake] [--no-legacy-ec]\n"
            "          [--server-pid PID] [--cpus 0,1] | --version\n",
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

/* OpenSSL 3.0 decodes the public key of every certificate it parses through
 * its provider decoders: setting up an OSSL_DECODER_CTX took ~25 % of this
 * client's CPU per handshake.  X.509 parsing skips that and takes the legacy
 * decoder when an ENGINE claims the key type, so an engine that hands back
 * OpenSSL's own built-in EC method is registered for EC keys: the server's
 * certificate is still parsed and its CertificateVerify signature checked
 * (ECDSA, same code), only the 3.0 decoder set-up is skipped.  Returns 1 if
 * registered.  --no-legacy-ec turns this off. */
#ifndef OPENSSL_NO_ENGINE
static int legacy_ec_pmeths(ENGINE *e, EVP_PKEY_METHOD **pmeth, const int **nids, int nid)
{
    static const int ids[] = {EVP_PKEY_EC};
    (void)e;
    if (!pmeth) {
        *nids = ids;
        return 1;
    }
    *pmeth = nid == EVP_PKEY_EC ? (EVP_PKEY_METHOD *)EVP_PKEY_meth_find(EVP_PKEY_EC) : NULL;
    return *pmeth != NULL;
}

static int register_legacy_ec(void)
{
    ENGINE *e = ENGINE_new();
    if (!e)
        return 0;
    int ok = ENGINE_set_id(e, "loadgen-legacy-ec") &&
             ENGINE_set_name(e, "built-in EC method, legacy key decoding") &&
             ENGINE_set_pkey_meths(e, legacy_ec_pmeths) && ENGINE_register_pkey_meths(e);
    /* e stays allocated: the registration table keeps a bare pointer to it */
    ERR_clear_error();
    return ok;
}
#else
static int register_legacy_ec(void)
{
    return 0;
}
#endif

static int accept_any_cert(X509_STORE_CTX *store, void *arg)
{
    (void)store;
    (void)arg;
    return 1;
}

static SSL_CTX *make_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* not even the chain building of SSL_VERIFY_NONE (X509_verify_cert) */
    SSL_CTX_set_cert_verify_callback(ctx, accept_any_cert, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
    return ctx;
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
        else if (!strcmp(a, "--handshake"))
            opt_handshake = 1;
        else if (!strcmp(a, "--no-legacy-ec"))
            opt_legacy_ec = 0;
        else if (!strcmp(a, "--version")) {
            printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
            return 0;
        }
        else
            usage(argv[0]);
#undef ARG
    }
    if (opt_conns < 1 || opt_duration <= 0 || opt_warmup < 0 || (!opt_unix && !opt_port))
        usage(argv[0]);
    if (opt_size < HDR + TRAILER || opt_size > (1u << 30)) {
        fprintf(stderr, "--size must be between %d and 2^30\n", HDR + TRAILER);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    clk_tck = (double)sysconf(_SC_CLK_TCK);

    if (!opt_unix) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        char port[16];
        snprintf(port, sizeof port, "%d", opt_port);
        int rc = getaddrinfo(opt_host, port, &hints, &addr);
        if (rc) {
            fprintf(stderr, "getaddrinfo %s: %s\n", opt_host, gai_strerror(rc));
            return 2;
        }
    }
    if (opt_legacy_ec)
        legacy_ec = register_legacy_ec();
    sctx = make_ctx();
    rbuf = malloc(RBUF_SIZE);
    struct conn *conns = calloc(opt_conns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!sctx || !rbuf || !conns || epfd < 0) {
        fprintf(stderr, "set-up failed: %s\n", sctx ? strerror(errno) : ssl_reason(0));
        return 1;
    }
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        c->fd = -1;
        c->id = i;
        c->msg = malloc(opt_size);
        if (!c->msg) {
            perror("malloc");
            return 1;
        }
        for (size_t k = 0; k < opt_size; k++)
            c->msg[k] = (unsigned char)((k * 131u + (unsigned)i * 7u + 13u) >> 1);
    }

    struct epoll_event evs[256];
    double t0 = now();
    int stalled = 0;

    /* echo mode: every connection completes its handshake before the clock
     * starts; handshake mode: the slots start right away */
    for (int i = 0; i < opt_conns; i++)
        if (conn_start(&conns[i]) == 0)
            drive(&conns[i]);
    if (!opt_handshake) {
        while (live > 0) {
            int ready = 0;
            for (int i = 0; i < opt_conns; i++)
                ready += conns[i].state == ST_RUN;
            if (ready == live)
                break;
            if (now() - t0 > opt_stall) {
                error_at(NULL, "TLS handshakes not done after %.1f s (%d of %d connections)",
                         opt_stall, ready, opt_conns);
                stalled = 1;
                break;
            }
            int n = epoll_wait(epfd, evs, 256, 100);
            /* a connection done early may start its ping-pong (on the
             * session tickets' EPOLLIN): harmless, the warm-up follows */
            for (int i = 0; i < n; i++) {
                struct conn *c = evs[i].data.ptr;
                if (c->state != ST_IDLE)
                    drive(c);
            }
        }
        t0 = now();
        for (int i = 0; i < opt_conns && !stalled; i++)
            if (conns[i].state == ST_RUN)
                drive(&conns[i]);
    }

    double t_start = t0 + opt_warmup, t_end = t_start + opt_duration;
    int measuring = opt_warmup <= 0;
    struct snap s0, s1;
    uint64_t total_at_start = 0, hs_at_start = 0;
    if (measuring)
        take_snap(&s0);
    double last_progress = now();

    while (live > 0 && !stalled) {
        double t = now();
        if (!measuring && t >= t_start) {
            take_snap(&s0);
            measuring = 1;
            total_at_start = total;
            hs_at_start = n_handshakes;
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
        progressed = 0;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state != ST_IDLE)
                drive(c);
        }
        if (progressed)
            last_progress = now();
    }
    if (!measuring) {
        take_snap(&s0);
        total_at_start = total;
        hs_at_start = n_handshakes;
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
        if (c->state != ST_IDLE && d == 0)
            idle_conns++;
    }
    if (stalled && !n_errors)
        error_at(NULL, "stalled: nothing completed for %.1f s (%d connection(s) open)",
                 opt_stall, live);
    else if (idle_conns && s1.t - s0.t >= 0.5)
        error_at(NULL, "%d connection(s) completed no %s in the %.2f s measured", idle_conns,
                 opt_handshake ? "handshake" : "round trip", s1.t - s0.t);
    if (live == 0 && !n_errors)
        error_at(NULL, "no connection left");

    /* close without close_notify; echo mode: with data possibly in flight,
     * so the kernel may send RST, as loadgen.c */
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
        if (c->ssl) {
            SSL_free(c->ssl);
            c->ssl = NULL;
        }
    }

    double secs = s1.t - s0.t;
    printf("{\"round_trips\": %llu, \"seconds\": %.6f, \"errors\": %llu",
           (unsigned long long)(total - total_at_start), secs, (unsigned long long)n_errors);
    printf(", \"warmup_round_trips\": %llu, \"connections\": %d, \"size\": %zu, \"mode\": \"%s\"",
           (unsigned long long)total_at_start, opt_conns, opt_size,
           opt_handshake ? "tls_handshake" : "tls_echo");
    printf(", \"handshakes\": %llu, \"handshakes_total\": %llu",
           (unsigned long long)(n_handshakes - hs_at_start), (unsigned long long)n_handshakes);
    printf(", \"tls_version\": ");
    json_str(tls_version);
    printf(", \"tls_cipher\": ");
    json_str(tls_cipher);
    printf(", \"tls_group\": ");
    json_str(tls_group);
    printf(", \"openssl\": ");
    json_str(OpenSSL_version(OPENSSL_VERSION));
    printf(", \"legacy_ec\": %s", legacy_ec ? "true" : "false");
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
