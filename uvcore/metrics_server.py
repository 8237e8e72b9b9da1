"""Live metrics for `python -m uvcore top PID`, over a Unix socket that a
program opts into: uvcore.serve_metrics(), or UVCORE_METRICS_SOCKET=1 (or a
path) in its environment.

The server is a thread, not a task: it answers while the loop is blocked,
which is when the answer matters most. Every request line gets one JSON line
back with a snapshot of every open uvcore loop in the process. The socket is
made in a directory only its user can enter (mode 0700) and is removed at
exit.
"""

import atexit
import errno
import json
import logging
import os
import socket
import stat
import tempfile
import threading
import time

_ENV_SOCKET = 'UVCORE_METRICS_SOCKET'
_MAX_REQUEST = 4096

_server = None
_server_lock = threading.Lock()


def default_socket_path(pid=None):
    """Where a process serves its metrics unless told otherwise."""
    if pid is None:
        pid = os.getpid()
    return os.path.join(tempfile.gettempdir(), f'uvcore-{os.getuid()}', f'{pid}.sock')


def snapshot():
    """A JSON-ready picture of every open uvcore loop in this process."""
    from ._uvcore import _live_loops
    for _ in range(10):
        try:
            loops = list(_live_loops)
            break
        except RuntimeError:        # the set changed while it was read
            continue
    else:
        loops = []
    result = []
    for loop in loops:
        if loop.is_closed():
            continue
        state = loop._watch_state()
        entry = {
            'id': f'{id(loop):#x}',
            'thread_id': state[4],
            'running': loop.is_running(),
            'metrics': loop.metrics(),
        }
        reports = getattr(loop, 'slow_callbacks', None)
        if reports is not None:
            entry['slow_callbacks'] = [r.as_dict() for r in reports()[-10:]]
            tracer = getattr(loop, '_tracer', None)
            entry['slow_callback_threshold'] = (tracer.threshold
                                                if tracer is not None else None)
        result.append(entry)
    return {'pid': os.getpid(), 'time': time.time(), 'loops': result}


class MetricsServer:
    """A thread answering metrics requests on a Unix socket."""

    def __init__(self, path):
        self.path = path
        self.pid = os.getpid()
        self._sock = None
        self._thread = None
        self._closed = threading.Event()

    def start(self):
        directory = os.path.dirname(self.path)
        if directory and self.path == default_socket_path():
            _private_dir(directory)
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise FileExistsError(
                    errno.EEXIST, 'not a socket, left alone', self.path)
            os.unlink(self.path)        # a stale socket of an earlier process
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o600)
            sock.listen(8)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name='uvcore-metrics')
        self._thread.start()
        return self

    def _serve(self):
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return                  # closed
            # One thread per client: a `top` left open must not lock out the
            # next one.
            threading.Thread(target=self._client, args=(conn,), daemon=True,
                             name='uvcore-metrics-client').start()

    def _client(self, conn):
        with conn:
            conn.settimeout(300)
            self._answer(conn)

    def _answer(self, conn):
        buf = b''
        while True:
            try:
                chunk = conn.recv(_MAX_REQUEST)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b'\n' in buf:
                _, buf = buf.split(b'\n', 1)
                try:
                    reply = json.dumps(snapshot(), default=str)
                except Exception as exc:          # keep serving
                    reply = json.dumps({'error': repr(exc)})
                try:
                    conn.sendall(reply.encode() + b'\n')
                except OSError:
                    return
            if len(buf) > _MAX_REQUEST:
                return

    def close(self):
        self._closed.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2)


def _private_dir(directory):
    # The default directory is shared /tmp: it must be ours and closed to
    # others, or the socket could be someone else's.
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid()
            or st.st_mode & 0o077):
        raise PermissionError(
            errno.EPERM, 'not a private directory of this user', directory)


def serve_metrics(path=None):
    """Serve this process's loop metrics on a Unix socket (for
    `python -m uvcore top PID`); returns the server (close() to stop).
    Calling it again returns the running server (ValueError if it runs on
    another path)."""
    global _server
    path = os.fspath(path) if path is not None else default_socket_path()
    with _server_lock:
        if (_server is not None and _server._sock is not None
                and _server.pid == os.getpid()):
            if _server.path != path:
                raise ValueError(f'metrics are already served on {_server.path}')
            return _server
        _server = MetricsServer(path).start()
        atexit.register(_server.close)
        return _server


def _serve_from_environment():
    # Called when a loop is made. "1": the default path of this pid, so each
    # process (gunicorn workers, children) serves its own. An explicit path
    # is this process's only: it is taken out of the environment, or every
    # child importing uvcore would take the socket over.
    value = os.environ.get(_ENV_SOCKET, '').strip()
    if not value or value == '0':
        return
    if value != '1':
        del os.environ[_ENV_SOCKET]
    try:
        serve_metrics(None if value == '1' else value)
    except (OSError, ValueError) as exc:
        # Observability must not stop the program from running.
        logging.getLogger('uvcore').warning(
            '%s=%r: cannot serve metrics: %s', _ENV_SOCKET, value, exc)
