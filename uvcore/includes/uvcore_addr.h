/* Socket addresses between C and Python, for the datagram transport.
 *
 * uvc_addr_to_py gives an address in the form Python's socket module gives
 * it (and so asyncio's datagram_received): (host, port) for IPv4,
 * (host, port, flowinfo, scope_id) for IPv6, the path for a Unix socket (str,
 * or bytes for an abstract name), None for no address.
 *
 * uvc_addr_from_py converts only the common, unambiguous forms -- a tuple
 * with a numeric host and an int port, a plain Unix path -- and answers 0 for
 * anything else, so that the caller hands that case to Python's own socket
 * module, whose parsing, name resolution and errors are then exactly
 * asyncio's.
 */
#ifndef UVCORE_ADDR_H
#define UVCORE_ADDR_H

#include <Python.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

typedef union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    struct sockaddr_storage ss;
} uvc_addr_t;

/* Bytes of the address that identify it (0: not cacheable). */
static inline size_t uvc_addr_key_len(const struct sockaddr* sa) {
    if (sa->sa_family == AF_INET)
        return sizeof(struct sockaddr_in);
    if (sa->sa_family == AF_INET6)
        return sizeof(struct sockaddr_in6);
    return 0;
}

static PyObject* uvc_addr_to_py(const struct sockaddr* sa) {
    char buf[INET6_ADDRSTRLEN];
    if (sa == NULL)
        Py_RETURN_NONE;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in* a = (const struct sockaddr_in*)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", buf, (int)ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6* a = (const struct sockaddr_in6*)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", buf, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        /* The kernel's address length is not known here: a path ends at its
         * NUL; an abstract name (leading NUL) ends at its last non-NUL byte;
         * an unbound sender has no name at all (''). */
        const struct sockaddr_un* a = (const struct sockaddr_un*)sa;
        size_t n = sizeof(a->sun_path);
        if (a->sun_path[0] == '\0') {
            while (n > 1 && a->sun_path[n - 1] == '\0')
                n--;
            if (n == 1)
                return PyUnicode_FromStringAndSize("", 0);
            return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)n);
        }
        n = strnlen(a->sun_path, n);
        return PyUnicode_DecodeFSDefaultAndSize(a->sun_path, (Py_ssize_t)n);
    }
    case AF_UNSPEC:
        Py_RETURN_NONE;
    default:
        return Py_BuildValue("(iy#)", (int)sa->sa_family, sa->sa_data,
                             (Py_ssize_t)sizeof(sa->sa_data));
    }
}

/* 1: *out holds addr; 0: not a form converted here (no exception set). */
static int uvc_addr_from_py(PyObject* addr, int family, uvc_addr_t* out) {
    memset(out, 0, sizeof(*out));
    if (family == AF_INET || family == AF_INET6) {
        PyObject *host, *port;
        const char* h;
        long p;
        Py_ssize_t n;
        if (!PyTuple_CheckExact(addr))
            return 0;
        n = PyTuple_GET_SIZE(addr);
        if (family == AF_INET ? n != 2 : (n < 2 || n > 4))
            return 0;
        host = PyTuple_GET_ITEM(addr, 0);
        port = PyTuple_GET_ITEM(addr, 1);
        if (!PyUnicode_CheckExact(host) || !PyLong_CheckExact(port))
            return 0;
        p = PyLong_AsLong(port);
        if (p < 0 || p > 65535) {
            PyErr_Clear();
            return 0;
        }
        h = PyUnicode_AsUTF8(host);
        if (h == NULL) {
            PyErr_Clear();
            return 0;
        }
        if (family == AF_INET) {
            if (inet_pton(AF_INET, h, &out->in4.sin_addr) != 1)
                return 0;
            out->in4.sin_family = AF_INET;
            out->in4.sin_port = htons((unsigned short)p);
            return 1;
        }
        if (inet_pton(AF_INET6, h, &out->in6.sin6_addr) != 1)
            return 0;
        if (n > 2) {
            PyObject* item = PyTuple_GET_ITEM(addr, 2);
            unsigned long v;
            if (!PyLong_CheckExact(item))
                return 0;
            v = PyLong_AsUnsignedLong(item);
            if (PyErr_Occurred() || v > 0xfffff) {
                PyErr_Clear();
                return 0;
            }
            out->in6.sin6_flowinfo = htonl((uint32_t)v);
        }
        if (n > 3) {
            PyObject* item = PyTuple_GET_ITEM(addr, 3);
            unsigned long v;
            if (!PyLong_CheckExact(item))
                return 0;
            v = PyLong_AsUnsignedLong(item);
            if (PyErr_Occurred() || v > 0xffffffffUL) {
                PyErr_Clear();
                return 0;
            }
            out->in6.sin6_scope_id = (uint32_t)v;
        }
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = htons((unsigned short)p);
        return 1;
    }
    if (family == AF_UNIX) {
        const char* path;
        Py_ssize_t n;
        PyObject* encoded = NULL;
        if (PyUnicode_CheckExact(addr)) {
            encoded = PyUnicode_EncodeFSDefault(addr);
            if (encoded == NULL) {
                PyErr_Clear();
                return 0;
            }
            path = PyBytes_AS_STRING(encoded);
            n = PyBytes_GET_SIZE(encoded);
        } else if (PyBytes_CheckExact(addr)) {
            path = PyBytes_AS_STRING(addr);
            n = PyBytes_GET_SIZE(addr);
        } else {
            return 0;
        }
        /* Paths only; abstract names (leading NUL) go through Python. */
        if (n == 0 || (size_t)n >= sizeof(out->un.sun_path) || path[0] == '\0' ||
                memchr(path, '\0', (size_t)n) != NULL) {
            Py_XDECREF(encoded);
            return 0;
        }
        memcpy(out->un.sun_path, path, (size_t)n);
        out->un.sun_family = AF_UNIX;
        Py_XDECREF(encoded);
        return 1;
    }
    return 0;
}

#endif
