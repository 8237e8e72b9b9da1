"""Child program for tests/test_top.py (not a test module).

    python _top_child.py self     uvcore.run(), serve_metrics() and
                                  trace_slow_callbacks(0.05) in the code
    python _top_child.py env      the same without serve_metrics(): the
                                  socket comes from UVCORE_METRICS_SOCKET
    python -m uvcore --serve-metrics --slow-callbacks 0.05 _top_child.py cli
                                  asyncio.run(); uvcore, the metrics socket
                                  and the tracing come from the command line

It serves TCP echo on loopback, makes ECHO_ROUNDS round trips to itself over
it, runs one deliberately slow callback, prints "READY <pid>" and then obeys
lines on stdin:
    block SECONDS   a callback that blocks the loop (prints "BLOCKING" first)
    exit            leave normally (exit status 0)
"""

import asyncio
import os
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else 'self'
ECHO_ROUNDS = 5
PAYLOAD = b'x' * 1000
SLOW_SECONDS = 0.12


def say(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def deliberately_slow_callback():
    time.sleep(SLOW_SECONDS)


def blocking_callback(seconds):
    say('BLOCKING')
    time.sleep(seconds)
    say('UNBLOCKED')


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main():
    loop = asyncio.get_running_loop()
    import uvcore
    assert isinstance(loop, uvcore.Loop), type(loop)
    if MODE == 'self':
        uvcore.serve_metrics()
    if MODE in ('self', 'env'):
        loop.trace_slow_callbacks(0.05, handler=lambda report: None)
    server = await loop.create_server(Echo, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    for _ in range(ECHO_ROUNDS):
        writer.write(PAYLOAD)
        await reader.readexactly(len(PAYLOAD))
    done = loop.create_future()
    loop.call_soon(deliberately_slow_callback)
    await asyncio.sleep(0.01)

    def on_stdin():
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:
            lines = [b'exit']
        else:
            lines = data.splitlines()
        for line in lines:
            words = line.decode().split()
            if words and words[0] == 'exit':
                if not done.done():
                    done.set_result(None)
            elif words and words[0] == 'block':
                loop.call_soon(blocking_callback, float(words[1]))

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    say(f'READY {os.getpid()}')
    try:
        await asyncio.wait_for(done, 30)
    finally:
        loop.remove_reader(sys.stdin.fileno())
        writer.close()
        server.close()
        await server.wait_closed()


if __name__ == '__main__':
    if MODE in ('self', 'env'):
        import uvcore
        uvcore.run(main())
    else:
        asyncio.run(main())
