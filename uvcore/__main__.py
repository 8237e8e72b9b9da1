"""python -m uvcore script.py [args]: run an asyncio program on uvcore.

Also: python -m uvcore -m module [args], python -m uvcore -c code [args],
python -m uvcore --version, and python -m uvcore top PID (live metrics of a
running program). Options before the program: --slow-callbacks SECONDS,
--watchdog, --serve-metrics.
"""

import asyncio
import os
import runpy
import sys

import uvcore

USAGE = """usage: python -m uvcore [options] script.py [args ...]
       python -m uvcore [options] -m module [args ...]
       python -m uvcore [options] -c code [args ...]
       python -m uvcore top PID           (live metrics of a running program)
       python -m uvcore --version
Runs an asyncio program with uvcore as its event loop.
options:
  --slow-callbacks SECONDS  report callbacks that run longer (a warning on
                            the 'uvcore' logger, with task and source line)
  --watchdog                also sample the stack of a slow callback while
                            it still runs
  --serve-metrics           serve live metrics for `python -m uvcore top`"""

# Options for the program's loops, passed on through the environment so that
# every loop it makes (and its children's) gets them.
_OPTIONS = {'--slow-callbacks': ('UVCORE_SLOW_CALLBACK', True),
            '--watchdog': ('UVCORE_WATCHDOG', False),
            '--serve-metrics': ('UVCORE_METRICS_SOCKET', False)}


def _use_uvcore():
    # asyncio.run() and asyncio.new_event_loop() create loops through the
    # policy while Python has policies; without them, through new_event_loop.
    if hasattr(asyncio, 'set_event_loop_policy'):
        asyncio.set_event_loop_policy(uvcore.EventLoopPolicy())
    else:
        asyncio.new_event_loop = uvcore.new_event_loop
        asyncio.events.new_event_loop = uvcore.new_event_loop


def main(argv):
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == '--version':
        print(f"uvcore {uvcore.__version__} (libuv {uvcore.libuv_version()})")
        return 0
    if argv[0] == 'top':
        from .top import main as top_main
        return top_main(argv[1:])
    while argv and argv[0] in _OPTIONS:
        env, takes_value = _OPTIONS[argv[0]]
        if takes_value:
            if len(argv) < 2:
                print(f"{argv[0]} needs a value\n{USAGE}", file=sys.stderr)
                return 2
            os.environ[env] = argv[1]
            argv = argv[2:]
        else:
            os.environ[env] = '1'
            argv = argv[1:]
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    _use_uvcore()
    if argv[0] == '-m' and len(argv) > 1:
        sys.argv = [argv[1]] + argv[2:]
        runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
    elif argv[0] == '-c' and len(argv) > 1:
        sys.argv = ['-c'] + argv[2:]
        exec(compile(argv[1], '<string>', 'exec'), {'__name__': '__main__'})
    else:
        sys.argv = list(argv)
        sys.path.insert(0, __import__('os').path.dirname(
            __import__('os').path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
