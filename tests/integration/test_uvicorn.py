"""uvicorn + Starlette in a child process, on the loop under test.

The child runs ``python -m uvicorn tests.integration._apps:app`` with
``--loop asyncio`` (stdlib) or ``--loop uvcore:new_event_loop`` (uvicorn
0.54 accepts any ``module:callable`` as a loop factory: a name that is not
one of its builtin choices is imported and used as the
``asyncio.Runner(loop_factory=...)`` directly).  The test process talks to
it over real sockets with httpx and the ``websockets`` client.
"""

import asyncio
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from _tls_helpers import certs  # noqa: F401  (fixture)

pytestmark = [pytest.mark.timeout(60)]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# What a uvicorn child exits with after a SIGTERM-triggered clean shutdown.
# uvicorn (>= 0.29) re-raises the captured signal once the server has shut
# down, with the default handler restored, so the process dies *of* SIGTERM:
# Popen.returncode == -SIGTERM.  Verified with the stdlib loop; the uvcore
# run must give exactly the same.
SIGTERM_EXIT = -signal.SIGTERM
# After SIGINT uvicorn re-raises it too, into Python's default SIGINT
# handler; uvicorn's main() swallows the KeyboardInterrupt: exit code 0
# (verified with the stdlib loop).
SIGINT_EXIT = 0

BAD_LOG_MARKERS = ("Traceback", "Exception in callback", "Task was destroyed",
                   "ERROR:", "never retrieved", "ResourceWarning")


def assert_clean_log(log):
    for marker in BAD_LOG_MARKERS:
        assert marker not in log, f"{marker!r} in uvicorn log:\n{log}"

READY_TIMEOUT = 20.0
EXIT_TIMEOUT = 10.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loop_arg(impl):
    return "asyncio" if impl.name == "asyncio" else "uvcore:new_event_loop"


class UvicornProc:
    def __init__(self, proc, port, log_path, scheme):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.scheme = scheme
        self.base = f"{scheme}://127.0.0.1:{port}"
        self.ws_base = ("wss" if scheme == "https" else "ws") + \
            f"://127.0.0.1:{port}"

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return "<no log>"

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"uvicorn exited early ({self.proc.returncode}):\n"
                    + self.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"uvicorn not ready in {timeout} s:\n"
                             + self.log())

    def terminate_and_wait(self, timeout=EXIT_TIMEOUT, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"uvicorn did not exit {timeout} s after SIGTERM:\n"
                + self.log())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass


@pytest.fixture
def start_uvicorn(impl, tmp_path):
    """Factory: start a uvicorn child for the impl, wait until it listens.
    Every child is killed (by its own pid) at teardown."""
    procs = []

    def start(tls_certs=None, extra_args=()):
        port = free_port()
        args = [sys.executable, "-m", "uvicorn", "tests.integration._apps:app",
                "--loop", loop_arg(impl), "--host", "127.0.0.1",
                "--port", str(port), "--lifespan", "off",
                "--timeout-graceful-shutdown", "5",
                # the same HTTP implementation on every machine (httptools is
                # installed only with the bench extra)
                "--http", "h11", *extra_args]
        scheme = "http"
        if tls_certs is not None:
            keyfile = tmp_path / "key.pem"
            certfile = tmp_path / "cert.pem"
            tls_certs.server.private_key_pem.write_to_path(str(keyfile))
            tls_certs.server.cert_chain_pems[0].write_to_path(str(certfile))
            args += ["--ssl-keyfile", str(keyfile),
                     "--ssl-certfile", str(certfile)]
            scheme = "https"
        env = impl.child_env()
        env["PYTHONPATH"] = os.pathsep.join(
            [REPO_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                           else []))
        fd, log_path = tempfile.mkstemp(prefix="uvicorn-", suffix=".log",
                                        dir=str(tmp_path))
        with os.fdopen(fd, "wb") as logf:
            proc = subprocess.Popen(args, env=env, cwd=REPO_ROOT,
                                    stdin=subprocess.DEVNULL,
                                    stdout=logf, stderr=subprocess.STDOUT)
        up = UvicornProc(proc, port, log_path, scheme)
        procs.append(up)
        up.wait_ready()
        return up

    try:
        yield start
    finally:
        for up in procs:
            up.kill()


def check_loop(impl, server, **client_kw):
    r = httpx.get(server.base + "/loop", timeout=10, **client_kw)
    assert r.status_code == 200
    info = r.json()
    if impl.name == "uvcore":
        assert info["module"].split(".")[0] == "uvcore", info
    else:
        assert info["module"].split(".")[0] == "asyncio", info
    return info


# ---------------------------------------------------------------------------


def test_uvicorn_reports_loop_module(impl, start_uvicorn):
    server = start_uvicorn()
    check_loop(impl, server)
    assert "Started server process" in server.log() or \
        "Uvicorn running" in server.log()


def test_uvicorn_get(impl, start_uvicorn):
    server = start_uvicorn()
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for _ in range(3):   # same keep-alive connection
            r = client.get("/")
            assert r.status_code == 200
            assert r.text == "hello from starlette"
            assert r.headers["content-type"].startswith("text/plain")
        r = client.get("/nope")
        assert r.status_code == 404


def test_uvicorn_5mb_post_echo(impl, start_uvicorn):
    server = start_uvicorn()
    payload = os.urandom(5 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    with httpx.Client(base_url=server.base, timeout=30) as client:
        r = client.post("/echo", content=payload)
        assert r.status_code == 200
        assert len(r.content) == len(payload)
        assert r.content == payload
        assert r.headers["x-sha256"] == digest

        # Streamed (chunked) upload, only the digest comes back.
        def gen():
            view = memoryview(payload)
            for i in range(0, len(view), 65536):
                yield bytes(view[i:i + 65536])

        r = client.post("/sha", content=gen())
        assert r.status_code == 200
        assert r.json() == {"sha256": digest, "length": len(payload)}


def test_uvicorn_200_concurrent_requests(impl, start_uvicorn):
    server = start_uvicorn()

    async def main():
        limits = httpx.Limits(max_connections=200,
                              max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=server.base, limits=limits,
                                     timeout=30) as client:
            async def one(i):
                r = await client.get("/slow", params={"i": i, "s": "0.05"})
                return r.status_code, r.text

            return await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(200))), 45)

    results = asyncio.run(main())
    assert len(results) == 200
    for i, (status, text) in enumerate(results):
        assert status == 200
        assert text == f"slow {i}"


def test_uvicorn_websocket_echo(impl, start_uvicorn):
    from websockets.asyncio.client import connect

    server = start_uvicorn()

    async def main():
        async with connect(server.ws_base + "/ws", open_timeout=10,
                           max_size=None) as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 10) == "hello"
            blob = os.urandom(1024 * 1024)
            await ws.send(blob)
            assert await asyncio.wait_for(ws.recv(), 10) == blob
            for i in range(20):
                await ws.send(f"msg {i}")
            for i in range(20):
                assert await asyncio.wait_for(ws.recv(), 10) == f"msg {i}"
            pong = await ws.ping()
            await asyncio.wait_for(pong, 10)
        return ws.close_code

    assert asyncio.run(main()) == 1000


def test_uvicorn_https(impl, start_uvicorn, certs):
    server = start_uvicorn(tls_certs=certs)
    ctx = certs.client_ctx()
    with httpx.Client(base_url=server.base, verify=ctx, timeout=10) as client:
        r = client.get("/")
        assert r.status_code == 200
        assert r.text == "hello from starlette"
        payload = os.urandom(1024 * 1024)
        r = client.post("/echo", content=payload)
        assert r.status_code == 200
        assert r.content == payload
    check_loop(impl, server, verify=ctx)

    # A client that does not trust the CA is refused.
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base + "/", timeout=10, verify=ssl.create_default_context())

    # WebSocket over TLS.
    from websockets.asyncio.client import connect

    async def main():
        async with connect(server.ws_base + "/ws", ssl=ctx,
                           open_timeout=10) as ws:
            await ws.send("secure")
            return await asyncio.wait_for(ws.recv(), 10)

    assert asyncio.run(main()) == "secure"


def test_uvicorn_sigterm_clean_shutdown(impl, start_uvicorn):
    server = start_uvicorn()
    assert httpx.get(server.base + "/", timeout=10).status_code == 200
    t0 = time.monotonic()
    rc = server.terminate_and_wait()
    elapsed = time.monotonic() - t0
    log = server.log()
    assert rc == SIGTERM_EXIT, (rc, log)
    assert elapsed < EXIT_TIMEOUT
    assert "Shutting down" in log, log
    assert "Finished server process" in log, log
    assert_clean_log(log)
    # The port is released.
    with pytest.raises(OSError):
        with socket.create_connection(("127.0.0.1", server.port), timeout=2):
            pass


def test_uvicorn_sigterm_with_open_keepalive_client(impl, start_uvicorn):
    """Shutdown while an httpx keep-alive connection is idle but open:
    uvicorn closes idle connections and exits in time."""
    server = start_uvicorn()
    with httpx.Client(base_url=server.base, timeout=10) as client:
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 200   # keep-alive in use
        t0 = time.monotonic()
        rc = server.terminate_and_wait()
        elapsed = time.monotonic() - t0
        log = server.log()
        assert rc == SIGTERM_EXIT, (rc, log)
        assert elapsed < EXIT_TIMEOUT
        assert_clean_log(log)
        # The pooled connection is dead now; a new request fails cleanly.
        with pytest.raises(httpx.TransportError):
            client.get("/")


def test_uvicorn_sigterm_with_open_websocket(impl, start_uvicorn):
    """Shutdown with a live WebSocket: the client sees a close frame
    (1012 service restart from uvicorn) and the process exits in time."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    server = start_uvicorn()

    async def main():
        async with connect(server.ws_base + "/ws", open_timeout=10) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 10) == "x"
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), EXIT_TIMEOUT)
            return ws.close_code

    t0 = time.monotonic()
    code = asyncio.run(main())
    try:
        rc = server.proc.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("no exit after SIGTERM:\n" + server.log())
    assert time.monotonic() - t0 < EXIT_TIMEOUT + 2
    assert rc == SIGTERM_EXIT, (rc, server.log())
    assert code == 1012, (code, server.log())
    assert_clean_log(server.log())


def test_uvicorn_client_disconnect_mid_response(impl, start_uvicorn):
    """A client that drops the connection while the app is still working:
    the server keeps serving others and logs no traceback."""
    server = start_uvicorn()
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"GET /slow?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
    # A half-sent body, then disconnect.
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
              b"\r\n" + b"a" * 1000)
    s.close()
    time.sleep(0.6)
    r = httpx.get(server.base + "/", timeout=10)
    assert r.status_code == 200
    rc = server.terminate_and_wait()
    log = server.log()
    assert rc == SIGTERM_EXIT, (rc, log)
    assert_clean_log(log)


def test_uvicorn_sigint_clean_shutdown(impl, start_uvicorn):
    server = start_uvicorn()
    assert httpx.get(server.base + "/", timeout=10).status_code == 200
    rc = server.terminate_and_wait(sig=signal.SIGINT)
    log = server.log()
    assert rc == SIGINT_EXIT, (rc, log)
    assert "Finished server process" in log, log
    assert_clean_log(log)


def test_uvicorn_sigterm_lets_inflight_request_finish(impl, start_uvicorn):
    """Graceful shutdown: a request being processed when SIGTERM arrives
    still gets its full response, then the process exits."""
    server = start_uvicorn()

    async def main():
        async with httpx.AsyncClient(base_url=server.base,
                                     timeout=15) as client:
            req = asyncio.ensure_future(
                client.get("/slow", params={"i": "late", "s": "1.0"}))
            await asyncio.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            r = await asyncio.wait_for(req, 15)
            return r.status_code, r.text

    t0 = time.monotonic()
    status, text = asyncio.run(main())
    assert (status, text) == (200, "slow late")
    # (whether the response says "Connection: close" is the HTTP
    # implementation's choice: httptools does, h11 does not)
    try:
        rc = server.proc.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("no exit after SIGTERM:\n" + server.log())
    assert time.monotonic() - t0 < EXIT_TIMEOUT
    log = server.log()
    assert rc == SIGTERM_EXIT, (rc, log)
    assert_clean_log(log)
