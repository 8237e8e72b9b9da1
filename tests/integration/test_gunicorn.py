"""gunicorn with a uvicorn worker whose CONFIG_KWARGS name the loop: the
listening sockets are gunicorn's, handed to each worker's loop; serving works
and shutdown closes nothing twice (no EBADF / "Bad file descriptor" noise)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("gunicorn")
pytest.importorskip("uvicorn")

pytestmark = [pytest.mark.timeout(60)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port, deadline):
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.status, r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_gunicorn_uvicorn_worker(impl):
    port = _free_port()
    worker = "UvcoreWorker" if impl.name == "uvcore" else "AsyncioWorker"
    env = impl.child_env()
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "tests"),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "integration._gunicorn_app:app",
         "-k", f"integration._gunicorn_app.{worker}", "-w", "2",
         "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        deadline = time.monotonic() + 30
        answers = {_get(port, deadline) for _ in range(20)}
        expected = "uvcore._uvcore" if impl.name == "uvcore" else "asyncio"
        assert all(status == 200 for status, _ in answers)
        assert {module.split(".")[0] for _, module in answers} == {expected.split(".")[0]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert "Bad file descriptor" not in out and "EBADF" not in out, out
    assert "Traceback" not in out, out
