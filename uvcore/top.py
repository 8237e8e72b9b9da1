"""python -m uvcore top PID: live loop metrics of a running program.

The program must serve them: uvcore.serve_metrics() in its code, or
UVCORE_METRICS_SOCKET=1 in its environment (see metrics_server.py).
"""

import argparse
import datetime
import json
import socket
import sys
import time

from .metrics_server import default_socket_path

USAGE_HINT = ("is the program serving its metrics? Call uvcore.serve_metrics() "
              "in it, or start it with UVCORE_METRICS_SOCKET=1")


class MetricsClient:
    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except BaseException:
            self.sock.close()
            raise
        self._buf = b''

    def fetch(self):
        self.sock.sendall(b'metrics\n')
        while b'\n' not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('the program closed the metrics socket')
            self._buf += chunk
        line, self._buf = self._buf.split(b'\n', 1)
        return json.loads(line)

    def close(self):
        self.sock.close()


def _si(value, unit=''):
    for scale, prefix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(value) >= scale:
            return f'{value / scale:.1f} {prefix}{unit}'
    return f'{value:.0f} {unit}'.rstrip() if unit else f'{value:.0f}'


def _ms(seconds):
    if seconds >= 1:
        return f'{seconds:.2f} s'
    return f'{seconds * 1e3:.1f} ms'


def _rate(cur, prev, key, dt):
    if prev is None or dt <= 0:
        return None
    return (cur[key] - prev[key]) / dt


def render(snap, prev=None):
    """The text of one screen: snap and prev are snapshots (prev for rates)."""
    when = datetime.datetime.fromtimestamp(snap['time']).strftime('%H:%M:%S')
    lines = [f"uvcore top - pid {snap['pid']} - {when}"]
    prev_loops = {l['id']: l for l in prev['loops']} if prev else {}
    dt = snap['time'] - prev['time'] if prev else 0.0
    if not snap['loops']:
        lines.append('  no open uvcore loop')
    for entry in snap['loops']:
        m = entry['metrics']
        p = prev_loops.get(entry['id'], {}).get('metrics')
        state = 'running' if entry['running'] else 'not running'
        lines.append(f"loop {entry['id']}  thread {entry['thread_id']}  {state}")

        def rate(key, unit=''):
            r = _rate(m, p, key, dt)
            return '-' if r is None else _si(r, unit)

        util = m['loop_utilisation'] * 100
        if p is not None and dt > 0:
            run = m['run_seconds'] - p['run_seconds']
            wait = m['poll_wait_seconds'] - p['poll_wait_seconds']
            if run > 0:
                util = max(0.0, min(100.0, (1 - wait / run) * 100))
        lines.append(f"  busy {util:5.1f} %   run {m['run_seconds']:.1f} s"
                     f"   callbacks {m['callbacks_run']}   tasks {m['tasks_created']}")
        lines.append(f"  iterations/s {rate('loop_iterations')}"
                     f"   callbacks/s {rate('callbacks_run')}"
                     f"   io callbacks/s {rate('io_callbacks_run')}"
                     f"   tasks/s {rate('tasks_created')}")
        lines.append(f"  timer lag  p50 {_ms(m['timer_lag_p50_seconds'])}"
                     f"  p99 {_ms(m['timer_lag_p99_seconds'])}"
                     f"  max {_ms(m['timer_lag_max_seconds'])}"
                     f"  ({m['timer_lag_samples']} timers, last "
                     f"{m['timer_lag_window_seconds']:.0f} s)")
        now = m['current_callback_seconds']
        lines.append(f"  longest callback {_ms(m['longest_callback_seconds'])}"
                     f"   slow callbacks {m['slow_callbacks']}"
                     + (f"   RUNNING NOW FOR {_ms(now)}" if now >= 0.1 else ''))
        lines.append(f"  read {_si(m['bytes_read'], 'B')} ({rate('bytes_read', 'B')}/s)"
                     f"   written {_si(m['bytes_written'], 'B')} "
                     f"({rate('bytes_written', 'B')}/s)   datagrams in "
                     f"{m['datagrams_received']} out {m['datagrams_sent']}"
                     f"   accepted {m['connections_accepted']}")
        kinds = ('tcp', 'unix', 'udp', 'pipe', 'timer', 'process', 'signal', 'poll')
        lines.append('  alive  ' + '  '.join(
            f"{k} {m['handles_alive_' + k]}" for k in kinds)
            + f"   ready {m['callbacks_ready']}")
        reports = entry.get('slow_callbacks') or []
        if reports:
            lines.append('  recent slow callbacks:')
            for r in reports[-5:]:
                t = datetime.datetime.fromtimestamp(r['time']).strftime('%H:%M:%S')
                what = r['callback']
                if r.get('coroutine'):
                    what += f" ({r['coroutine']})"
                where = (f"{r['filename']}:{r['lineno']} in {r['function']}"
                         if r.get('filename') else '?')
                flag = ' (still running)' if r.get('in_progress') else ''
                lines.append(f"    {t} {r['duration']:8.3f} s  {what} at {where}{flag}")
        elif entry.get('slow_callback_threshold') is None:
            lines.append('  slow-callback tracing is off '
                         '(loop.trace_slow_callbacks() or UVCORE_SLOW_CALLBACK=seconds)')
    return '\n'.join(lines)


def main(argv):
    parser = argparse.ArgumentParser(
        prog='python -m uvcore top',
        description='Live event loop metrics of a running uvcore program.')
    parser.add_argument('pid', type=int, nargs='?',
                        help='process id (its socket is found by pid)')
    parser.add_argument('--socket', help='the metrics socket path instead of a pid')
    parser.add_argument('-n', '--interval', type=float, default=1.0,
                        help='seconds between updates (default 1)')
    parser.add_argument('--count', type=int, default=0,
                        help='stop after this many updates (default: until ^C)')
    parser.add_argument('--once', action='store_true', help='one update, no screen control')
    parser.add_argument('--json', action='store_true', help='print raw snapshots, one per line')
    args = parser.parse_args(argv)
    if args.socket is None and args.pid is None:
        parser.error('give a PID or --socket PATH')
    path = args.socket or default_socket_path(args.pid)
    try:
        client = MetricsClient(path)
    except OSError as exc:
        print(f'uvcore top: cannot connect to {path}: {exc.strerror or exc}; '
              f'{USAGE_HINT}', file=sys.stderr)
        return 1
    count = 1 if args.once else args.count
    interactive = sys.stdout.isatty() and not args.once and not args.json
    prev = None
    done = 0
    try:
        while True:
            snap = client.fetch()
            if args.json:
                print(json.dumps(snap), flush=True)
            else:
                text = render(snap, prev)
                if interactive:
                    sys.stdout.write('\x1b[H\x1b[2J')
                print(text, flush=True)
                if not interactive and not args.once:
                    print()
            prev = snap
            done += 1
            if count and done >= count:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f'uvcore top: {exc}', file=sys.stderr)
        return 1
    finally:
        client.close()
