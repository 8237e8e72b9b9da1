"""Child processes for uvcore.Loop: subprocess_exec and subprocess_shell.

- Spawning is Python's own subprocess.Popen (CPython's fork_exec: vfork where
  it can), so every Popen option -- pass_fds, close_fds, preexec_fn, user,
  group, umask, process_group, restore_signals -- has Popen's semantics and
  errors, and os.register_at_fork hooks run exactly where Popen runs them.
  Measured here, spawn-and-wait of `true`: Popen 1050/s, uvloop's uv_spawn
  (which forks) 438/s; see docs/architecture.md.
- The transport, with its ordering of process_exited, pipe_data_received and
  pipe_connection_lost, is asyncio's own _UnixSubprocessTransport; its pipes
  are uvcore's pipe transports (libuv).
- A child's exit is watched through a pidfd polled by the loop: no SIGCHLD
  handler, nothing process-wide, no waitpid(-1) that would reap other
  libraries' children; it works in any thread. Where the kernel has no pidfd,
  a thread waits for that one child (as asyncio's ThreadedChildWatcher).
"""

import logging
import os
import threading
from asyncio import base_events, unix_events

logger = logging.getLogger('asyncio')

_BASE = base_events.BaseEventLoop


class ProcessMixin:
    """subprocess_exec / subprocess_shell over Popen, pidfds and pipe transports."""

    subprocess_exec = _BASE.subprocess_exec
    subprocess_shell = _BASE.subprocess_shell
    _log_subprocess = _BASE._log_subprocess

    async def _make_subprocess_transport(self, protocol, args, shell,
                                         stdin, stdout, stderr, bufsize,
                                         extra=None, **kwargs):
        waiter = self.create_future()
        transp = unix_events._UnixSubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs)
        self._watch_child(transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    def _watch_child(self, transp):
        pid = transp.get_pid()
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._watch_child_in_thread(pid, transp)
            return
        try:
            self.add_reader(pidfd, self._on_child_exit, pidfd, pid, transp)
        except BaseException:
            os.close(pidfd)
            raise
        self._child_pidfds[pidfd] = pid

    def _on_child_exit(self, pidfd, pid, transp):
        self.remove_reader(pidfd)
        if self._child_pidfds.pop(pidfd, None) is not None:
            os.close(pidfd)
        self._child_exited(pid, transp, _reap(pid, transp))

    def _child_exited(self, pid, transp, returncode):
        # As asyncio: one more loop iteration first, so that what the
        # child's pipes delivered meanwhile is handled before process_exited.
        self.call_soon(self.call_soon, transp._process_exited, returncode)

    def _watch_child_in_thread(self, pid, transp):
        def wait():
            returncode = _reap(pid, transp)
            try:
                self.call_soon_threadsafe(self._child_exited, pid, transp,
                                          returncode)
            except RuntimeError:
                pass        # the loop is closed: nobody is waiting any more
        threading.Thread(target=wait, name=f'uvcore-waitpid-{pid}',
                         daemon=True).start()

    def _close_child_watches(self):
        # The loop closes: its pidfds go (an unfinished child is left to
        # whoever still holds its Popen object, as with asyncio).
        for pidfd in list(self._child_pidfds):
            del self._child_pidfds[pidfd]
            try:
                os.close(pidfd)
            except OSError:
                pass


def _reap(pid, transp):
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        # Someone else reaped it: Popen.poll() (asyncio's transport.close()
        # calls it) knows the status; otherwise it is lost, as in asyncio.
        returncode = getattr(transp._proc, 'returncode', None)
        if returncode is None:
            logger.warning("child process pid %d exit status already read: "
                           "will report returncode 255", pid)
            returncode = 255
        return returncode
    return os.waitstatus_to_exitcode(status)
