"""python -m uvcore script.py [args]: run an asyncio program on uvcore.

Also: python -m uvcore -m module [args], python -m uvcore -c code [args],
and python -m uvcore --version.
"""

import asyncio
import runpy
import sys

import uvcore

USAGE = """usage: python -m uvcore script.py [args ...]
       python -m uvcore -m module [args ...]
       python -m uvcore -c code [args ...]
       python -m uvcore --version
Runs an asyncio program with uvcore as its event loop."""


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
