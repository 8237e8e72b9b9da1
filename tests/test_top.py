"""`python -m uvcore top`, the metrics socket and `python -m uvcore
--serve-metrics --slow-callbacks S script.py`, against real child processes.

The child (tests/_top_child.py) serves TCP echo to itself, runs one slow
callback named deliberately_slow_callback, prints "READY <pid>" and then
takes "block SECONDS" / "exit" lines on stdin.
"""

import json
import re
import os
import selectors
import socket
import stat
import subprocess
import sys
import time

import pytest

from _helpers import child_env, run_python

pytestmark = pytest.mark.timeout(30)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(TESTS_DIR, '_top_child.py')


class Child:
    """A running _top_child.py; always killed by the fixture."""

    def __init__(self, args, env, cwd=None):
        self.proc = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b''
        line = self.expect('READY', timeout=10)
        self.pid = int(line.split()[1])
        assert self.pid == self.proc.pid

    def expect(self, prefix, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            while b'\n' in self._buf:
                line, self._buf = self._buf.split(b'\n', 1)
                if line.decode().startswith(prefix):
                    return line.decode()
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                self.kill()
                raise AssertionError(f'no {prefix!r} from the child; stderr: '
                                     f'{self.proc.stderr.read().decode()[-2000:]}')
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f'child ended before {prefix!r}: '
                                     f'{self.proc.stderr.read().decode()[-2000:]}')
            self._buf += chunk

    def send(self, line):
        self.proc.stdin.write(line.encode() + b'\n')
        self.proc.stdin.flush()

    def exit(self, timeout=5):
        self.send('exit')
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def kill(self):
        # Politely first (its socket is removed at exit), then for sure.
        if self.proc.poll() is None:
            try:
                self.exit(timeout=3)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        stale = socket_of(self.proc.pid)
        if os.path.exists(stale):
            os.unlink(stale)
        self._sel.close()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def spawn(uvcore):
    children = []

    def start(*args, env=None, cwd=None):
        c = Child(args, child_env(uvcore, **(env or {})), cwd=cwd)
        children.append(c)
        return c

    try:
        yield start
    finally:
        for c in children:
            c.kill()


def top(uvcore, *args, timeout=15, env=None):
    return run_python(['-m', 'uvcore', 'top', *map(str, args)],
                      env=env or child_env(uvcore), timeout=timeout)


def socket_of(pid):
    from uvcore.metrics_server import default_socket_path
    return default_socket_path(pid)


def metric_keys(uvcore):
    loop = uvcore.new_event_loop()
    try:
        return set(loop.metrics())
    finally:
        loop.close()


def check_snapshot(snap, pid, uvcore, threshold=0.05):
    assert snap['pid'] == pid
    assert abs(snap['time'] - time.time()) < 30
    loops = snap['loops']
    assert isinstance(loops, list) and len(loops) == 1, loops
    entry = loops[0]
    assert entry['running'] is True and isinstance(entry['thread_id'], int)
    m = entry['metrics']
    assert set(m) == metric_keys(uvcore)
    # 5 echo round trips of 1000 bytes, both ends in the child's loop.
    assert m['bytes_read'] >= 10_000 and m['bytes_written'] >= 10_000, m
    assert m['connections_accepted'] == 1
    assert m['handles_alive_tcp'] == 2 and m['tasks_created'] >= 1
    assert m['callbacks_run'] > 0 and m['loop_iterations'] > 0
    # (On a loaded machine some other step may go over 50 ms too.)
    assert m['slow_callbacks'] >= 1
    assert m['longest_callback_seconds'] >= 0.12
    assert entry['slow_callback_threshold'] == threshold
    [report] = [r for r in entry['slow_callbacks']
                if r['function'] == 'deliberately_slow_callback']
    assert report['function'] == 'deliberately_slow_callback'
    assert report['callback'] == 'deliberately_slow_callback'
    assert os.path.basename(report['filename']) == '_top_child.py'
    assert report['duration'] >= 0.12 and report['in_progress'] is False
    return m


# -- a program that serves its own metrics ------------------------------------------

def test_top_once_prints_the_figures(uvcore, spawn):
    child = spawn(CHILD, 'self')
    proc = top(uvcore, child.pid, '--once')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f'uvcore top - pid {child.pid} - ')
    assert 'loop 0x' in out and ' running' in out
    assert 'accepted 1' in out
    assert 'alive  tcp 2  unix 0  udp 0  pipe 0' in out
    assert re.search(r'slow callbacks [1-9]', out), out
    assert 'recent slow callbacks:' in out
    assert 'deliberately_slow_callback at ' in out
    assert '_top_child.py:' in out
    assert 'timer lag  p50 ' in out
    assert '\x1b[' not in out                  # no screen control with --once
    assert child.exit() == 0


def test_top_json_count_two(uvcore, spawn):
    child = spawn(CHILD, 'self')
    t0 = time.monotonic()
    proc = top(uvcore, child.pid, '--json', '--count', '2', '-n', '0.2')
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 >= 0.2
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout
    snaps = [json.loads(line) for line in lines]
    first = check_snapshot(snaps[0], child.pid, uvcore)
    second = check_snapshot(snaps[1], child.pid, uvcore)
    assert snaps[1]['time'] - snaps[0]['time'] >= 0.15
    assert second['run_seconds'] > first['run_seconds']
    assert second['loop_iterations'] >= first['loop_iterations']
    assert child.exit() == 0


def test_top_by_socket_path_and_rates(uvcore, spawn):
    child = spawn(CHILD, 'self')
    proc = top(uvcore, '--socket', socket_of(child.pid), '--count', '2', '-n', '0.2')
    assert proc.returncode == 0, proc.stderr
    screens = proc.stdout.split('uvcore top - pid ')
    assert len(screens) == 3, proc.stdout      # '' and two screens
    assert 'callbacks/s -' in screens[1]        # no rate without a previous one
    assert 'callbacks/s -' not in screens[2] and 'iterations/s ' in screens[2]


def test_socket_is_private_and_removed_on_exit(uvcore, spawn):
    child = spawn(CHILD, 'self')
    path = socket_of(child.pid)
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    dir_st = os.stat(os.path.dirname(path))
    assert stat.S_IMODE(dir_st.st_mode) & 0o077 == 0, oct(dir_st.st_mode)
    assert child.exit() == 0
    assert not os.path.exists(path)


def test_answers_while_the_loop_is_blocked(uvcore, spawn):
    child = spawn(CHILD, 'self')
    child.send('block 2.5')
    child.expect('BLOCKING')
    time.sleep(0.3)
    t0 = time.monotonic()
    proc = top(uvcore, child.pid, '--json', '--once')
    asked = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)['loops'][0]['metrics']
    assert 0.3 <= m['current_callback_seconds'] < 2.5
    assert asked < 2.0                          # it did not wait for the loop
    text = top(uvcore, child.pid, '--once')
    assert 'RUNNING NOW FOR' in text.stdout
    child.expect('UNBLOCKED')


# -- python -m uvcore --serve-metrics --slow-callbacks 0.05 script.py -----------------

def test_command_line_options(uvcore, spawn):
    # A relative script path, as a user would type it.
    c = spawn('-m', 'uvcore', '--serve-metrics', '--slow-callbacks', '0.05',
              '_top_child.py', 'cli', cwd=TESTS_DIR)
    proc = top(uvcore, c.pid, '--json', '--once')
    assert proc.returncode == 0, proc.stderr
    check_snapshot(json.loads(proc.stdout), c.pid, uvcore, threshold=0.05)
    path = socket_of(c.pid)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert c.exit() == 0
    assert not os.path.exists(path)
    # The default handler logged the slow callback on stderr.
    err = c.proc.stderr.read().decode()
    assert 'slow callback: deliberately_slow_callback took' in err, err


def test_command_line_without_serve_metrics_serves_nothing(uvcore, spawn):
    c = spawn('-m', 'uvcore', '--slow-callbacks', '0.05', CHILD, 'cli')
    assert not os.path.exists(socket_of(c.pid))
    proc = top(uvcore, c.pid, '--once')
    assert proc.returncode == 1
    assert c.exit() == 0


# -- errors --------------------------------------------------------------------------

def test_top_without_a_serving_process(uvcore):
    # A pid that surely has no socket: a child that has already exited.
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait(10)
    proc = top(uvcore, gone.pid, '--once')
    assert proc.returncode == 1
    assert proc.stdout == ''
    err = proc.stderr
    assert f'{gone.pid}.sock' in err and 'cannot connect' in err
    assert 'serve_metrics()' in err and 'UVCORE_METRICS_SOCKET=1' in err
    assert 'Traceback' not in err


def test_top_stale_socket_of_a_killed_program(uvcore, spawn):
    child = spawn(CHILD, 'self')
    child.proc.kill()
    child.proc.wait(5)
    path = socket_of(child.pid)
    try:
        assert os.path.exists(path)        # SIGKILL: no atexit clean-up
        proc = top(uvcore, child.pid, '--once')
        assert proc.returncode == 1
        assert 'cannot connect' in proc.stderr and 'Traceback' not in proc.stderr
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_top_usage_errors(uvcore):
    proc = top(uvcore)
    assert proc.returncode == 2 and 'give a PID or --socket PATH' in proc.stderr
    proc = top(uvcore, 'notapid')
    assert proc.returncode == 2 and 'invalid int value' in proc.stderr


# -- the server, in process ----------------------------------------------------------

def test_snapshot_in_process(uvcore):
    from uvcore.metrics_server import snapshot
    loop = uvcore.new_event_loop()
    try:
        loop.trace_slow_callbacks(0.01, handler=lambda r: None)
        loop.call_soon(time.sleep, 0.02)
        loop.call_soon(loop.stop)
        loop.run_forever()
        snap = json.loads(json.dumps(snapshot(), default=str))
        [entry] = [e for e in snap['loops'] if e['id'] == f'{id(loop):#x}']
        assert entry['running'] is False and entry['thread_id'] is None
        assert entry['metrics']['slow_callbacks'] == 1
        assert entry['slow_callback_threshold'] == 0.01
        assert entry['slow_callbacks'][0]['duration'] >= 0.02
    finally:
        loop.close()
    assert all(e['id'] != f'{id(loop):#x}' for e in snapshot()['loops'])


def test_two_clients_at_once(uvcore, spawn):
    child = spawn(CHILD, 'self')
    path = socket_of(child.pid)
    with socket.socket(socket.AF_UNIX) as first, socket.socket(socket.AF_UNIX) as second:
        first.settimeout(2)
        first.connect(path)
        first.sendall(b'metrics\n')
        assert json.loads(first.makefile().readline())['pid'] == child.pid
        second.settimeout(1)
        second.connect(path)
        second.sendall(b'metrics\n')
        assert json.loads(second.makefile().readline())['pid'] == child.pid


def test_explicit_socket_path_not_stolen_by_children(uvcore, spawn, tmp_path):
    path = str(tmp_path / 'metrics.sock')
    child = spawn(CHILD, 'env', env={'UVCORE_METRICS_SOCKET': path})
    assert os.path.exists(path)
    proc = top(uvcore, '--socket', path, '--json', '--once',
               env=child_env(uvcore, UVCORE_METRICS_SOCKET=path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)['pid'] == child.pid
    assert os.path.exists(path)


def test_serve_metrics_does_not_delete_a_regular_file(uvcore, tmp_path):
    path = tmp_path / 'precious.txt'
    path.write_text('keep me')
    server = None
    try:
        server = uvcore.serve_metrics(str(path))
    except OSError:
        pass
    finally:
        if server is not None:
            server.close()
    assert path.exists() and path.read_text() == 'keep me'
