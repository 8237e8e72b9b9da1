"""Build properties of the uvcore extension (uvcore only)."""

import glob
import os
import shutil
import subprocess

import pytest


def _extension_files(uvcore):
    pkg_dir = os.path.dirname(os.path.abspath(uvcore.__file__))
    return sorted(glob.glob(os.path.join(pkg_dir, "**", "*.so"),
                            recursive=True))


def test_libuv_version(uvcore):
    assert uvcore.libuv_version() == "1.50.0"


def test_version_is_a_string(uvcore):
    assert isinstance(uvcore.__version__, str) and uvcore.__version__


def test_core_extension_module_is_compiled(uvcore):
    import uvcore._uvcore as ext

    assert ext.__file__.endswith(".so")
    assert os.path.abspath(ext.__file__) in _extension_files(uvcore)


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd")
def test_core_extension_not_linked_to_shared_libuv(uvcore):
    import uvcore._uvcore as ext

    out = subprocess.run(["ldd", ext.__file__], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "libuv" not in out.stdout
    assert "not found" not in out.stdout


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd")
def test_no_extension_links_shared_libuv(uvcore):
    files = _extension_files(uvcore)
    assert files
    for path in files:
        out = subprocess.run(["ldd", path], capture_output=True, text=True,
                             timeout=30)
        assert "libuv" not in out.stdout, path


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm (binutils)")
def test_libuv_symbols_are_defined_inside_the_extension(uvcore):
    import uvcore._uvcore as ext

    out = subprocess.run(["nm", "-D", "--undefined-only", ext.__file__],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    undefined = [line.split()[-1] for line in out.stdout.splitlines()
                 if line.strip()]
    assert not [s for s in undefined if s.startswith("uv_")]

