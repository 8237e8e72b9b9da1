"""Child processes: loop.subprocess_exec / subprocess_shell with a
SubprocessProtocol, and asyncio.create_subprocess_exec / _shell on top.

Every test starts real processes (cat, true, sh, sleep, this Python) and
runs against both the stdlib loop and uvcore."""

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import threading

import pytest

from _net_helpers import fd_is_open, pattern, requires_linux, run

pytestmark = [pytest.mark.timeout(60)]

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
PY = sys.executable

HAS_PROCESS_GROUP = "process_group" in inspect.signature(
    subprocess.Popen).parameters


def py(code, *args):
    """Arguments for create_subprocess_exec running ``code`` in Python."""
    return (PY, "-c", code, *args)


def exec_(*args, **kw):
    return asyncio.create_subprocess_exec(*args, **kw)


def zombie_children():
    """Pids of zombie processes whose parent is this process."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] == b"Z" and int(fields[1]) == me:
            found.add(int(entry))
    return found


def sig_ignored(status_text, sig):
    """Whether ``sig`` is in the SigIgn mask of a /proc/<pid>/status text."""
    for line in status_text.splitlines():
        if line.startswith(b"SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    raise AssertionError("no SigIgn line")


def check_bytes(got, want):
    assert len(got) == len(want), (len(got), len(want))
    if got != want:
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        raise AssertionError(f"data differs first at offset {first}")


# ---------------------------------------------------------------------------
# Pipes through create_subprocess_exec


def test_cat_communicate_echoes(loop):
    async def main():
        proc = await exec_("cat", stdin=PIPE, stdout=PIPE)
        assert isinstance(proc.pid, int) and proc.pid > 0
        out, err = await proc.communicate(b"hello\x00world\n")
        return out, err, proc.returncode

    assert run(loop, main()) == (b"hello\x00world\n", None, 0)


def test_cat_8mib_round_trip(loop):
    data = pattern(8 << 20, seed=3)

    async def main():
        proc = await exec_("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(data)
        return out, proc.returncode

    out, rc = run(loop, main(), timeout=20)
    assert rc == 0
    check_bytes(out, data)


def test_large_stdout_and_stderr_together(loop):
    # Interleaved writes: the child blocks on whichever pipe is not read,
    # so both must be drained at the same time.
    code = (
        "import sys\n"
        "blk = bytes(range(256)) * 256\n"
        "o, e = sys.stdout.buffer, sys.stderr.buffer\n"
        "for i in range(256):\n"
        "    o.write(blk); e.write(blk[::-1])\n"
        "o.flush(); e.flush()\n"
    )

    async def main():
        proc = await exec_(*py(code), stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    out, err, rc = run(loop, main(), timeout=20)
    assert rc == 0
    blk = bytes(range(256)) * 256
    check_bytes(out, blk * 256)
    check_bytes(err, blk[::-1] * 256)


@pytest.mark.parametrize("how", ["close", "write_eof"])
def test_closing_stdin_ends_cat(loop, how):
    async def main():
        proc = await exec_("cat", stdin=PIPE, stdout=PIPE)
        proc.stdin.write(b"abc")
        await proc.stdin.drain()
        first = await proc.stdout.readexactly(3)
        proc.stdin.write(b"def")
        if how == "close":
            proc.stdin.close()
            await proc.stdin.wait_closed()
        else:
            assert proc.stdin.can_write_eof()
            proc.stdin.write_eof()
        rest = await proc.stdout.read()
        return first, rest, await proc.wait()

    assert run(loop, main()) == (b"abc", b"def", 0)


# ---------------------------------------------------------------------------
# Exit statuses and signals


@pytest.mark.parametrize("code, expected", [
    ("import sys; sys.exit(3)", 3),
    ("pass", 0),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
     -signal.SIGKILL),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
     -signal.SIGTERM),
], ids=["exit3", "exit0", "sigkill", "sigterm"])
def test_returncode(loop, code, expected):
    async def main():
        proc = await exec_(*py(code))
        assert proc.returncode is None
        rc = await proc.wait()
        return rc, proc.returncode

    assert run(loop, main()) == (expected, expected)


@pytest.mark.parametrize("method, expected", [
    ("kill", -signal.SIGKILL),
    ("terminate", -signal.SIGTERM),
])
def test_kill_and_terminate(loop, method, expected):
    async def main():
        proc = await exec_("sleep", "30")
        getattr(proc, method)()
        return await proc.wait()

    assert run(loop, main()) == expected


def test_send_signal_to_handling_child(loop):
    code = (
        "import signal, sys, time\n"
        "def h(signum, frame):\n"
        "    sys.stdout.write('got %d\\n' % signum); sys.stdout.flush()\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGUSR1, h)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )

    async def main():
        proc = await exec_(*py(code), stdout=PIPE)
        assert await proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGUSR1)
        rest = await proc.stdout.read()
        return rest, await proc.wait()

    assert run(loop, main()) == (b"got %d\n" % signal.SIGUSR1, 0)


def test_sigterm_ignoring_child_needs_kill(loop):
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )

    async def main():
        proc = await exec_(*py(code), stdout=PIPE)
        assert await proc.stdout.readline() == b"ready\n"
        proc.terminate()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 0.3)
        assert proc.returncode is None
        proc.kill()
        return await proc.wait()

    assert run(loop, main()) == -signal.SIGKILL


# ---------------------------------------------------------------------------
# Standard streams


def test_devnull_streams(loop):
    code = ("import os, sys\n"
            "sys.stderr.write(os.readlink('/proc/self/fd/0') + ' ' +"
            " os.readlink('/proc/self/fd/1'))\n")

    async def main():
        proc = await exec_(*py(code), stdin=DEVNULL, stdout=DEVNULL,
                           stderr=PIPE)
        assert proc.stdin is None and proc.stdout is None
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (None, b"/dev/null /dev/null", 0)


def test_stderr_to_stdout(loop):
    async def main():
        proc = await exec_("sh", "-c", "echo out; echo err >&2; echo out2",
                           stdout=PIPE, stderr=STDOUT)
        assert proc.stderr is None
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"out\nerr\nout2\n", None, 0)


@pytest.mark.parametrize("kind", ["fileobj", "fd"])
def test_stdin_from_file(loop, tmp_path, kind):
    path = tmp_path / "in.bin"
    data = pattern(200_000, seed=5)
    path.write_bytes(data)
    f = open(path, "rb")
    src = f if kind == "fileobj" else f.fileno()

    async def main():
        proc = await exec_("cat", stdin=src, stdout=PIPE)
        assert proc.stdin is None
        out, _ = await proc.communicate()
        return out, proc.returncode

    try:
        out, rc = run(loop, main())
        # The parent's descriptor is left open.
        assert not f.closed and fd_is_open(f.fileno())
    finally:
        f.close()
    assert rc == 0
    check_bytes(out, data)


@pytest.mark.parametrize("kind", ["fileobj", "fd"])
def test_stdout_to_file(loop, tmp_path, kind):
    path = tmp_path / "out.txt"

    async def main():
        with open(path, "wb") as f:
            dst = f if kind == "fileobj" else f.fileno()
            proc = await exec_("sh", "-c", "echo to-file; echo e >&2",
                               stdout=dst, stderr=dst)
            assert proc.stdout is None
            rc = await proc.wait()
            assert fd_is_open(f.fileno())
            return rc

    assert run(loop, main()) == 0
    assert path.read_bytes() == b"to-file\ne\n"


def test_none_streams_are_inherited(loop, capfd):
    capfd.readouterr()

    async def main():
        proc = await exec_("sh", "-c", "echo inherited-out; echo inherited-err >&2")
        assert (proc.stdin, proc.stdout, proc.stderr) == (None, None, None)
        return await proc.wait()

    assert run(loop, main()) == 0
    captured = capfd.readouterr()
    assert "inherited-out\n" in captured.out
    assert "inherited-err\n" in captured.err


# ---------------------------------------------------------------------------
# Popen options


def test_env_replaces_environment(loop, monkeypatch):
    monkeypatch.setenv("UVCORE_T_PARENT", "from-parent")
    script = 'printf "%s|%s" "${UVCORE_T_PARENT-unset}" "${UVCORE_T_CHILD-unset}"'

    async def main():
        inherited = await exec_("sh", "-c", script, stdout=PIPE)
        a, _ = await inherited.communicate()
        env = {"UVCORE_T_CHILD": "x y=z", "PATH": os.environ.get("PATH", "")}
        replaced = await exec_("sh", "-c", script, stdout=PIPE, env=env)
        b, _ = await replaced.communicate()
        return a, b

    assert run(loop, main()) == (b"from-parent|unset", b"unset|x y=z")


def test_cwd(loop, tmp_path):
    async def main():
        proc = await exec_(*py("import os; print(os.getcwd())"),
                           stdout=PIPE, cwd=tmp_path)
        out, _ = await proc.communicate()
        return out, proc.returncode

    out, rc = run(loop, main())
    assert rc == 0
    assert os.path.realpath(out.decode().strip()) == os.path.realpath(tmp_path)


@pytest.mark.parametrize("pass_fds, close_fds, expected", [
    ((), True, "closed"),
    (None, True, "open"),       # None: pass the fd itself
    ((), False, "open"),
], ids=["default", "pass_fds", "close_fds_false"])
def test_fd_inheritance(loop, pass_fds, close_fds, expected):
    code = (
        "import os, sys\n"
        "fd = int(sys.argv[1])\n"
        "try:\n"
        "    os.fstat(fd)\n"
        "except OSError:\n"
        "    print('closed')\n"
        "else:\n"
        "    os.write(fd, b'via-fd')\n"
        "    print('open')\n"
    )
    r, w = os.pipe()
    # Inheritable, so only close_fds keeps it out of the child.
    os.set_inheritable(w, True)

    async def main():
        kw = {"pass_fds": (w,) if pass_fds is None else pass_fds,
              "close_fds": close_fds}
        proc = await exec_(*py(code, str(w)), stdout=PIPE, **kw)
        out, _ = await proc.communicate()
        return out, proc.returncode

    try:
        out, rc = run(loop, main())
        os.close(w)
        w = None
        piped = b""
        while True:
            chunk = os.read(r, 100)
            if not chunk:
                break
            piped += chunk
    finally:
        if w is not None:
            os.close(w)
        os.close(r)
    assert rc == 0
    assert out.decode().strip() == expected
    assert piped == (b"via-fd" if expected == "open" else b"")


def test_start_new_session(loop):
    code = "import os; print(os.getpid(), os.getsid(0))"

    async def main():
        results = []
        for new in (False, True):
            proc = await exec_(*py(code), stdout=PIPE, start_new_session=new)
            out, _ = await proc.communicate()
            pid, sid = map(int, out.split())
            assert pid == proc.pid
            results.append((pid, sid))
        return results

    (pid0, sid0), (pid1, sid1) = run(loop, main())
    assert sid0 == os.getsid(0)
    assert sid1 == pid1 != os.getsid(0)


@pytest.mark.skipif(not HAS_PROCESS_GROUP,
                    reason="subprocess.Popen has no process_group (< 3.11)")
def test_process_group_zero(loop):
    code = "import os; print(os.getpid(), os.getpgid(0), os.getsid(0))"

    async def main():
        proc = await exec_(*py(code), stdout=PIPE, process_group=0)
        out, _ = await proc.communicate()
        return proc.pid, tuple(map(int, out.split()))

    pid, (cpid, pgid, sid) = run(loop, main())
    assert cpid == pid
    assert pgid == pid != os.getpgid(0)
    assert sid == os.getsid(0)     # a new group, not a new session


def test_umask(loop):
    code = "import os; print(os.umask(0))"
    parent = os.umask(0o022)
    os.umask(parent)

    async def main():
        a = await exec_(*py(code), stdout=PIPE, umask=0o027)
        out_a, _ = await a.communicate()
        b = await exec_(*py(code), stdout=PIPE)
        out_b, _ = await b.communicate()
        return int(out_a), int(out_b)

    assert run(loop, main()) == (0o027, parent)


@requires_linux
def test_restore_signals(loop):
    with open("/proc/self/status", "rb") as f:
        parent_status = f.read()
    parent_ignores = sig_ignored(parent_status, signal.SIGPIPE)

    async def main():
        res = []
        for kw in ({}, {"restore_signals": False}):
            proc = await exec_("cat", "/proc/self/status", stdout=PIPE, **kw)
            out, _ = await proc.communicate()
            assert proc.returncode == 0
            res.append(out)
        return res

    default, unrestored = run(loop, main())
    assert not sig_ignored(default, signal.SIGPIPE)
    assert not sig_ignored(default, signal.SIGXFSZ)
    # restore_signals=False leaves the parent's dispositions in place.
    assert sig_ignored(unrestored, signal.SIGPIPE) == parent_ignores


def test_preexec_fn_runs_in_child(loop, tmp_path):
    marker = tmp_path / "pre"

    def pre():
        with open(marker, "w") as f:
            f.write(str(os.getpid()))

    async def main():
        proc = await exec_("true", preexec_fn=pre)
        return proc.pid, await proc.wait()

    pid, rc = run(loop, main())
    assert rc == 0
    assert int(marker.read_text()) == pid != os.getpid()


@requires_linux
def test_preexec_fn_exception(loop):
    def pre():
        raise RuntimeError("boom in preexec_fn")

    before = zombie_children()

    async def main():
        with pytest.raises(subprocess.SubprocessError):
            await exec_("true", preexec_fn=pre)
        # The loop is still usable afterwards.
        proc = await exec_("true")
        return await proc.wait()

    assert run(loop, main()) == 0
    assert zombie_children() <= before


# ---------------------------------------------------------------------------
# Errors


@requires_linux
@pytest.mark.parametrize("program", ["/nonexistent/no-such-program",
                                     "no-such-program-8c1f2e"],
                         ids=["abspath", "path_lookup"])
def test_missing_program(loop, program):
    def nfds():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        warm = await exec_("true", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        await warm.communicate()
        before = nfds()
        for _ in range(5):
            with pytest.raises(FileNotFoundError):
                await exec_(program, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        return before, nfds()

    before, after = run(loop, main())
    assert after <= before      # no descriptor leaked by the failures


def test_missing_cwd(loop, tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await exec_("true", cwd=tmp_path / "missing")

    run(loop, main())


BAD_KWARGS = [
    ({"universal_newlines": True}, "universal_newlines must be False"),
    ({"text": True}, "text must be False"),
    ({"bufsize": 1}, "bufsize must be 0"),
    ({"encoding": "utf-8"}, "encoding must be None"),
    ({"errors": "strict"}, "errors must be None"),
]


@pytest.mark.parametrize("kwargs, message", BAD_KWARGS,
                         ids=[next(iter(k)) for k, _ in BAD_KWARGS])
@pytest.mark.parametrize("api", ["exec", "shell", "create_exec"])
def test_rejected_arguments(loop, api, kwargs, message):
    made = []

    def factory():
        made.append(1)
        return asyncio.SubprocessProtocol()

    async def main():
        with pytest.raises(ValueError) as info:
            if api == "exec":
                await loop.subprocess_exec(factory, "true", **kwargs)
            elif api == "shell":
                await loop.subprocess_shell(factory, "true", **kwargs)
            else:
                await exec_("true", **kwargs)
        return str(info.value)

    assert run(loop, main()) == message
    assert made == []


def test_shell_flag_mismatch(loop):
    proto = asyncio.SubprocessProtocol

    async def main():
        with pytest.raises(ValueError, match="^shell must be False$"):
            await loop.subprocess_exec(proto, "true", shell=True)
        with pytest.raises(ValueError, match="^shell must be True$"):
            await loop.subprocess_shell(proto, "true", shell=False)
        with pytest.raises(ValueError, match="^cmd must be a string$"):
            await loop.subprocess_shell(proto, ["echo", "x"])
        with pytest.raises(ValueError, match="^cmd must be a string$"):
            await asyncio.create_subprocess_shell(["echo", "x"])

    run(loop, main())


@pytest.mark.parametrize("cmd", ["echo 'a b'", b"echo 'a b'"],
                         ids=["str", "bytes"])
def test_shell_quoting(loop, cmd):
    async def main():
        proc = await asyncio.create_subprocess_shell(cmd, stdout=PIPE)
        out, _ = await proc.communicate()
        status = await asyncio.create_subprocess_shell(
            "echo x | cat >/dev/null; exit 7")
        return out, proc.returncode, await status.wait()

    assert run(loop, main()) == (b"a b\n", 0, 7)


# ---------------------------------------------------------------------------
# Low-level: loop.subprocess_exec with a SubprocessProtocol


class SubRecorder(asyncio.SubprocessProtocol):
    def __init__(self, loop):
        self.events = []
        self.transport = None
        self.data = {1: bytearray(), 2: bytearray()}
        self.exited = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))

    def pipe_data_received(self, fd, data):
        assert isinstance(data, bytes) and data
        self.events.append(("data", fd))
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self):
        self.events.append(("exited",))
        self.exited.set_result(None)

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


def check_order(events, fds):
    names = [e[0] for e in events]
    assert names[0] == "made" and names.count("made") == 1, events
    assert names.count("exited") == 1, events
    assert names.count("lost") == 1 and events[-1] == ("lost", None), events
    for fd in fds:
        lost_at = [i for i, e in enumerate(events) if e[:2] == ("pipe_lost", fd)]
        assert len(lost_at) == 1, (fd, events)
        data_at = [i for i, e in enumerate(events) if e == ("data", fd)]
        assert all(i < lost_at[0] for i in data_at), (fd, events)
    assert not [e for e in events if e[0] == "pipe_lost" and e[1] not in fds]


def test_protocol_callbacks_and_order(loop):
    code = ("import sys\n"
            "data = sys.stdin.buffer.read()\n"
            "sys.stdout.buffer.write(data); sys.stdout.flush()\n"
            "sys.stderr.write('err'); sys.stderr.flush()\n")
    protos = []

    def factory():
        protos.append(SubRecorder(loop))
        return protos[-1]

    async def main():
        tr, proto = await loop.subprocess_exec(factory, *py(code))
        assert protos == [proto] and proto.transport is tr
        pid = tr.get_pid()
        assert isinstance(pid, int) and pid > 0
        assert tr.get_returncode() is None
        assert not tr.is_closing()
        pipes = [tr.get_pipe_transport(fd) for fd in (0, 1, 2)]
        assert all(p is not None for p in pipes)
        pipes[0].write(b"hello")
        pipes[0].close()
        await asyncio.wait_for(asyncio.shield(proto.lost), 5)
        rc = tr.get_returncode()
        tr.close()
        assert tr.is_closing()
        return proto, rc

    proto, rc = run(loop, main())
    assert rc == 0
    assert proto.data == {1: b"hello", 2: b"err"}
    check_order(proto.events, (0, 1, 2))
    assert ("pipe_lost", 0, None) in proto.events


def test_protocol_with_devnull_pipes(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: SubRecorder(loop), "sh", "-c", "echo hi",
            stdin=DEVNULL, stderr=DEVNULL)
        assert tr.get_pipe_transport(0) is None
        assert tr.get_pipe_transport(1) is not None
        assert tr.get_pipe_transport(2) is None
        await asyncio.wait_for(asyncio.shield(proto.lost), 5)
        rc = tr.get_returncode()
        tr.close()
        return proto, rc

    proto, rc = run(loop, main())
    assert rc == 0
    assert proto.data[1] == b"hi\n"
    check_order(proto.events, (1,))


def test_protocol_nonzero_exit(loop):
    async def main():
        tr, proto = await loop.subprocess_shell(
            lambda: SubRecorder(loop), "echo e >&2; exit 5", stdin=DEVNULL)
        await asyncio.wait_for(asyncio.shield(proto.lost), 5)
        rc = tr.get_returncode()
        tr.close()
        return proto, rc

    proto, rc = run(loop, main())
    assert rc == 5
    assert proto.data == {1: b"", 2: b"e\n"}
    check_order(proto.events, (1, 2))


def test_transport_close_kills_running_child(loop):
    async def main():
        tr, proto = await loop.subprocess_exec(
            lambda: SubRecorder(loop), "sleep", "30", stderr=DEVNULL)
        assert tr.get_returncode() is None
        stdin, stdout = tr.get_pipe_transport(0), tr.get_pipe_transport(1)
        await asyncio.sleep(0.05)
        assert tr.get_returncode() is None and not proto.exited.done()
        tr.close()
        assert tr.is_closing()
        assert stdin.is_closing() and stdout.is_closing()
        await asyncio.wait_for(asyncio.shield(proto.lost), 5)
        return proto, tr.get_returncode()

    proto, rc = run(loop, main())
    assert rc == -signal.SIGKILL
    check_order(proto.events, (0, 1))


# ---------------------------------------------------------------------------
# Many children, threads, fork hooks


@requires_linux
def test_many_concurrent_children_are_reaped(loop):
    before = zombie_children()

    async def one(i):
        if i % 2:
            proc = await exec_("true", stdin=DEVNULL, stdout=DEVNULL,
                               stderr=DEVNULL)
            return proc.pid, await proc.wait()
        proc = await exec_("true", stdout=PIPE)
        out, _ = await proc.communicate()
        assert out == b""
        return proc.pid, proc.returncode

    results = run(loop, asyncio.gather(*(one(i) for i in range(200))),
                  timeout=30)
    pids = {pid for pid, _ in results}
    assert len(pids) == 200
    assert all(rc == 0 for _, rc in results)
    zombies = zombie_children()
    assert not zombies & pids
    assert zombies <= before


def test_loop_in_other_thread_spawns(loop_factory):
    result = {}

    async def main():
        proc = await exec_("sh", "-c", "echo from-thread; exit 4", stdout=PIPE)
        out, _ = await proc.communicate()
        return out, proc.returncode

    def target():
        lp = loop_factory()
        try:
            result["value"] = run(lp, main())
        except BaseException as exc:
            result["error"] = exc
        finally:
            lp.close()

    t = threading.Thread(target=target)
    t.start()
    t.join(20)
    assert not t.is_alive()
    if "error" in result:
        raise result["error"]
    assert result["value"] == (b"from-thread\n", 4)


_AT_FORK_FILE = None
_AT_FORK_REGISTERED = False


def _at_fork_in_child():
    path = _AT_FORK_FILE
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"%d\n" % os.getpid())
        finally:
            os.close(fd)


def test_at_fork_hooks_match_popen(loop, tmp_path):
    global _AT_FORK_FILE, _AT_FORK_REGISTERED
    if not _AT_FORK_REGISTERED:
        # Cannot be unregistered: the hook does nothing while the path is None.
        os.register_at_fork(after_in_child=_at_fork_in_child)
        _AT_FORK_REGISTERED = True
    path = tmp_path / "forks"
    path.touch()

    def hook_ran(pid):
        return str(pid) in path.read_text().split()

    async def main():
        plain = await exec_("true")
        await plain.wait()
        pre = await exec_("true", preexec_fn=lambda: None)
        await pre.wait()
        return hook_ran(plain.pid), hook_ran(pre.pid)

    _AT_FORK_FILE = str(path)
    try:
        p = subprocess.Popen(["true"])
        p.wait()
        popen_plain = hook_ran(p.pid)
        p = subprocess.Popen(["true"], preexec_fn=lambda: None)
        p.wait()
        popen_pre = hook_ran(p.pid)
        got = run(loop, main())
    finally:
        _AT_FORK_FILE = None
    assert got == (popen_plain, popen_pre)
