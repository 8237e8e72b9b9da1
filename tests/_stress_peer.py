"""The far end of tests/test_stress.py's many-connections test, run as a
child process so that the loop under test has the process's descriptors to
itself.  Plain blocking sockets and a selectors loop: no asyncio.

Two roles, driven by lines on stdin and answering with lines on stdout:

``clients HOST PORT N SIZE``
    Connects N sockets to HOST:PORT, all held open at once, and prints
    ``connected N SECONDS``.  Then sends each one its payload_for(i, SIZE),
    in batches, reads back as many bytes and compares them, and prints
    ``echoed N BAD SECONDS`` (BAD: connections whose echo differed).  Waits
    for ``close`` on stdin, closes every socket and prints
    ``closed N SECONDS``.

``server``
    Listens on 127.0.0.1 and prints ``listening PORT``; echoes whatever
    every accepted connection sends, closing its side on EOF.  ``stats`` on
    stdin prints ``stats ACCEPTED ACTIVE MAX_ACTIVE BYTES``; ``quit`` (or
    EOF) prints the stats line once more and exits.

Either way the soft RLIMIT_NOFILE is raised to the hard limit first.
"""

import os
import resource
import selectors
import socket
import sys
import time


def payload_for(i, size):
    # Distinct per connection, every byte position meaningful.
    seed = i.to_bytes(4, "big")
    block = bytes((j * 31 + i) & 0xFF for j in range(256))
    return (seed + block * (size // 256 + 1))[:size]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        b = sock.recv(n - len(buf))
        if not b:
            break
        buf += b
    return bytes(buf)


def clients(host, port, n, size, batch=500):
    t0 = time.monotonic()
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=60)
        socks.append(s)
    say("connected", len(socks), f"{time.monotonic() - t0:.3f}")

    t0 = time.monotonic()
    bad = 0
    # In batches: bounded kernel buffer use, every connection still open.
    for start in range(0, n, batch):
        part = range(start, min(start + batch, n))
        for i in part:
            socks[i].sendall(payload_for(i, size))
        for i in part:
            if recv_exactly(socks[i], size) != payload_for(i, size):
                bad += 1
    say("echoed", n, bad, f"{time.monotonic() - t0:.3f}")

    if sys.stdin.readline().strip() != "close":
        say("error", "expected close")
        return 1
    t0 = time.monotonic()
    for s in socks:
        s.close()
    say("closed", n, f"{time.monotonic() - t0:.3f}")
    return 0


def server():
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, "accept")
    sel.register(0, selectors.EVENT_READ, "stdin")
    pending = {}            # socket -> bytes not yet sent
    stats = {"accepted": 0, "active": 0, "max_active": 0, "bytes": 0}
    stdin_buf = b""

    def report():
        say("stats", stats["accepted"], stats["active"], stats["max_active"],
            stats["bytes"])

    def drop(conn):
        sel.unregister(conn)
        pending.pop(conn, None)
        conn.close()
        stats["active"] -= 1

    say("listening", lsock.getsockname()[1])
    while True:
        for key, events in sel.select():
            if key.data == "accept":
                while True:
                    try:
                        conn, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                    stats["accepted"] += 1
                    stats["active"] += 1
                    stats["max_active"] = max(stats["max_active"],
                                              stats["active"])
            elif key.data == "stdin":
                chunk = os.read(0, 4096)
                stdin_buf += chunk
                while b"\n" in stdin_buf or not chunk:
                    line, _, stdin_buf = stdin_buf.partition(b"\n")
                    cmd = line.strip().decode()
                    if cmd == "stats":
                        report()
                    elif cmd == "quit" or not chunk:
                        report()
                        return 0
            else:
                conn = key.fileobj
                if events & selectors.EVENT_WRITE:
                    try:
                        sent = conn.send(pending[conn])
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError:
                        drop(conn)
                        continue
                    rest = pending[conn][sent:]
                    if rest:
                        pending[conn] = rest
                    else:
                        del pending[conn]
                        sel.modify(conn, selectors.EVENT_READ, "conn")
                if events & selectors.EVENT_READ and conn not in pending:
                    try:
                        data = conn.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        drop(conn)
                        continue
                    stats["bytes"] += len(data)
                    try:
                        sent = conn.send(data)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    if sent < len(data):
                        pending[conn] = data[sent:]
                        sel.modify(conn, selectors.EVENT_READ |
                                   selectors.EVENT_WRITE, "conn")


def main(argv):
    raise_nofile()
    if argv[0] == "clients":
        host, port, n, size = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        return clients(host, port, n, size)
    if argv[0] == "server":
        return server()
    raise SystemExit(f"unknown role {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
