"""TLS workloads of the net suite (``tls_echo_1k``, ``tls_echo_100k``,
``tls_handshake``), side by side on every loop.

* Server: ``net_servers.py --style tls``: the ``protocol`` echo server
  (``data_received`` -> ``transport.write``) behind ``loop.create_server(...,
  ssl=ctx)``, ``ctx`` a server ``SSLContext`` (TLS 1.3 minimum, default cipher
  suites, groups and session tickets) with a self-signed EC P-256 certificate.
* Certificate: made once per bench run by ``openssl req -x509 -newkey ec
  -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost`` into
  ``benchmarks/.build/tls-<pid>/`` (removed at the end of the run).
* Client: ``loadgen_tls.c`` (OpenSSL, compiled like loadgen.c, plus ``-lssl
  -lcrypto``): the same concurrency model and command line as loadgen.c.
  Echo: every connection completes its handshake before the clock starts,
  then ping-pongs S-byte messages inside TLS (all bytes checked).
  ``--handshake``: each of the N slots repeatedly connects, completes a full
  TLS 1.3 handshake (no session cache, no resumption: a resumed session is an
  error), sends one 64-byte message, reads and checks its echo and closes the
  socket (no close_notify); one operation = one such connection.

This module only describes the workloads and prepares the client and the
certificate; net.py runs them like the other echo workloads (fresh server per
cell, priming, pinning, /proc readings).  There is no C ceiling for TLS.
"""

import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_DIR = os.path.join(HERE, ".build")

HANDSHAKE_MSG = 64          # bytes echoed once per handshake

_SERVER = ("TLS 1.3 server (ssl= SSLContext, default ciphers, P-256 cert) in front of the "
           "Protocol echo: data_received -> transport.write")

WORKLOADS = {
    "tls_echo_1k": {
        "kind": "tls_echo", "style": "tls", "size": 1024, "unit": "round trips/s",
        "label": "TLS echo Protocol 1 KiB",
        "description": "echo ping-pong inside TLS, 1024-byte messages (loadgen_tls.c); "
                       "server: " + _SERVER,
        "ceiling": None,
    },
    "tls_echo_100k": {
        "kind": "tls_echo", "style": "tls", "size": 102400, "unit": "round trips/s",
        "label": "TLS echo Protocol 100 KiB",
        "description": "echo ping-pong inside TLS, 102400-byte messages (loadgen_tls.c); "
                       "server: " + _SERVER,
        "ceiling": None,
    },
    "tls_handshake": {
        "kind": "tls_handshake", "style": "tls", "size": HANDSHAKE_MSG, "unit": "handshakes/s",
        "label": "TLS handshake+echo",
        "description": "per connection: TCP connect, full TLS 1.3 handshake (no resumption), "
                       "one %d-byte echo, close (loadgen_tls.c --handshake); server: %s"
                       % (HANDSHAKE_MSG, _SERVER),
        "ceiling": None,
    },
}
ORDER = ["tls_echo_1k", "tls_echo_100k", "tls_handshake"]

# uvcore / uvloop, ratio of medians that uvcore must reach
TARGETS = {
    "tls_echo_1k": 1.3,
    "tls_echo_100k": 1.3,
    "tls_handshake": 1.0,
}


def is_tls(wl):
    return wl["kind"] in ("tls_echo", "tls_handshake")


def openssl_cli():
    """(path of the openssl program or None, its version line)."""
    exe = shutil.which("openssl")
    if not exe:
        return None, None
    try:
        r = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=10)
        return exe, r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return exe, "?"


def make_cert(exe, directory):
    """Self-signed EC P-256 certificate + key (PEM) in directory; returns
    (certfile, keyfile).  Raises RuntimeError with openssl's output."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    cmd = [exe, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0 or not (os.path.exists(cert) and os.path.exists(key)):
        raise RuntimeError("%s failed (exit %s): %s" % (" ".join(cmd), r.returncode,
                                                        (r.stderr or r.stdout)[-1000:]))
    return cert, key


def _remove_stale_dirs():
    """Certificate directories of runs that are gone (killed before cleanup)."""
    try:
        names = os.listdir(BUILD_DIR)
    except OSError:
        return
    for n in names:
        if n.startswith("tls-") and n[4:].isdigit():
            pid = int(n[4:])
            if pid != os.getpid() and not os.path.exists("/proc/%d" % pid):
                shutil.rmtree(os.path.join(BUILD_DIR, n), ignore_errors=True)


def prepare(ctx, meta, compile_c):
    """Build loadgen_tls and make the certificate: sets ctx["tls"] and
    meta["tls"].  Returns None, or the reason the TLS workloads cannot run.
    compile_c(name, libs) -> path of the executable (net.compile_c)."""
    if ctx.get("tls"):
        return None
    exe, ver = openssl_cli()
    info = {"openssl_cli": ver, "certificate": "self-signed, EC P-256, CN=localhost, "
                                              "made by openssl req at set-up",
            "server": "ssl.SSLContext(PROTOCOL_TLS_SERVER), minimum_version TLSv1_3, "
                      "load_cert_chain; defaults otherwise",
            "client": "loadgen_tls.c: TLS 1.3 only, default cipher suites and groups, "
                      "SSL_VERIFY_NONE, no session cache, read-ahead"}
    try:
        import ssl
        info["python_ssl"] = ssl.OPENSSL_VERSION
    except ImportError:
        return "the interpreter has no ssl module"
    meta["tls"] = info
    if not exe:
        return "the openssl program is not installed (apt-get install openssl): needed to make " \
               "the certificate"
    try:
        client = compile_c("loadgen_tls", ["-lssl", "-lcrypto"])
    except Exception as e:           # net.CellError: compiler output in .detail
        detail = getattr(e, "detail", None)
        return "%s (OpenSSL headers: apt-get install libssl-dev)%s" % (
            e, (": " + detail.strip().splitlines()[-1][:300]) if detail and detail.strip()
            else "")
    try:
        info["loadgen_openssl"] = subprocess.run(
            [client, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    _remove_stale_dirs()
    d = os.path.join(BUILD_DIR, "tls-%d" % os.getpid())
    try:
        cert, key = make_cert(exe, d)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return "making the certificate failed: %s" % e
    ctx["tls"] = {"loadgen": client, "certfile": cert, "keyfile": key, "dir": d}
    return None


def server_args(ctx):
    t = ctx["tls"]
    return ["--certfile", t["certfile"], "--keyfile", t["keyfile"]]


def client_cmd(ctx, wl):
    """The load generator and its mode arguments for a TLS workload."""
    cmd = [ctx["tls"]["loadgen"]]
    if wl["kind"] == "tls_handshake":
        cmd.append("--handshake")
    return cmd


def cleanup(ctx):
    t = ctx.get("tls") if ctx else None
    if t:
        shutil.rmtree(t["dir"], ignore_errors=True)
