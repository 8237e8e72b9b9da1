"""pytest-asyncio's pytest_asyncio_loop_factories hook runs async tests on
uvcore (the README's example), in a child pytest run of its own."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pytest_asyncio")

pytestmark = [pytest.mark.timeout(60)]

CONFTEST = """
import asyncio
{import_line}

def pytest_asyncio_loop_factories(config, item):
    return {{"{name}": {factory}}}
"""

TESTS = """
import asyncio
import pytest

@pytest.mark.asyncio
async def test_loop_kind():
    loop = asyncio.get_running_loop()
    with open("loop-kind.txt", "w") as f:
        f.write(type(loop).__module__)

@pytest.mark.asyncio
async def test_sockets_and_tasks():
    async def handle(r, w):
        w.write(await r.read(100)); await w.drain(); w.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"ping")
    assert await r.read(100) == b"ping"
    w.close()
    server.close()
    await server.wait_closed()
"""


def test_loop_factories_hook(impl, tmp_path):
    if impl.name == "uvcore":
        conftest = CONFTEST.format(import_line="import uvcore", name="uvcore",
                                   factory="uvcore.new_event_loop")
    else:
        conftest = CONFTEST.format(import_line="", name="asyncio",
                                   factory="asyncio.new_event_loop")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    (tmp_path / "test_it.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "asyncio", str(tmp_path)],
        cwd=tmp_path, env=impl.child_env(), capture_output=True, text=True,
        timeout=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kind = (tmp_path / "loop-kind.txt").read_text()
    assert kind.startswith("uvcore") == (impl.name == "uvcore"), kind
