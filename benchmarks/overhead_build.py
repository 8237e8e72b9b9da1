"""Building the overhead suite's uvcore variants (see overhead.py): both
from one snapshot of the sources, cached in build/overhead/<key>/ by a hash of
the sources and the toolchain, with UVCORE_METRICS=1 resp. 0."""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD_ROOT = os.path.join(REPO, "build", "overhead")
ENV_DROP = ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "PYTHONMALLOCSTATS",
            "PYTHONPROFILEIMPORTTIME", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
            "UVCORE_SLOW_CALLBACK", "UVCORE_WATCHDOG", "UVCORE_DEBUG", "UVCORE_ASAN",
            "UVCORE_USE_SYSTEM_LIBUV", "UVCORE_METRICS")


# =============================================================================
# building the variants
# =============================================================================

class BuildError(Exception):
    def __init__(self, msg, detail=None):
        super().__init__(msg)
        self.detail = detail


def _is_generated(rel):
    """Files under uvcore/ that the build makes (see .gitignore)."""
    name = os.path.basename(rel)
    if "__pycache__" in rel.split(os.sep) or name.endswith((".pyc", ".pyo", ".o", ".a")):
        return True
    if ".so" in name or name.endswith(".html") or ".tmp" in name:
        return True
    if os.path.dirname(rel) == "uvcore" and (name.endswith(".c") or
                                             name in ("_uvcore.h", "_uvcore_api.h")):
        return True
    return False


def _source_files():
    """Paths (relative to REPO) that go into the snapshot and the cache key.
    vendor/libuv/ is copied too but keyed by its pin (setup.py verifies it)."""
    files = [f for f in ("setup.py", "pyproject.toml", "README.md", "vendor/fetch_libuv.py",
                         "vendor/libuv.pin") if os.path.isfile(os.path.join(REPO, f))]
    files += [os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "LICEN[CS]E*"))]
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, "uvcore")):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, f), REPO)
            if not _is_generated(rel):
                files.append(rel)
    return files


def _toolchain():
    """What else decides the build: interpreter, Cython, setuptools, C compiler."""
    out = {"python": sys.version, "executable": os.path.realpath(sys.executable)}
    r = subprocess.run([sys.executable, "-c",
                        "import Cython, setuptools; print(Cython.__version__, "
                        "setuptools.__version__)"], capture_output=True, text=True)
    out["cython_setuptools"] = r.stdout.strip() or ("error: " + r.stderr.strip()[-200:])
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or "cc"
    try:
        out["cc"] = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                   timeout=30).stdout.splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        out["cc"] = "?"
    return out


def _cache_key(files, toolchain):
    h = hashlib.sha256()
    for rel in files:
        with open(os.path.join(REPO, rel), "rb") as f:
            data = f.read()
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    h.update(json.dumps(toolchain, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _lib_dir(key, build):
    return os.path.join(BUILD_ROOT, key, build, "lib")


VERIFY = r"""
import json, os, sys
import uvcore, uvcore._uvcore
loop = uvcore.new_event_loop()
try:
    m = loop.metrics()
finally:
    loop.close()
print(json.dumps({"file": os.path.realpath(uvcore.__file__),
                  "so": os.path.realpath(uvcore._uvcore.__file__),
                  "compiled_in": bool(m["metrics_compiled_in"])}))
"""


def _variant_env(lib, base=None):
    env = dict(base if base is not None else os.environ)
    for k in ENV_DROP:
        env.pop(k, None)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONPATH"] = lib
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _verify_lib(lib, compiled_in):
    """Import uvcore from lib in a fresh interpreter (cwd outside the repo);
    raise BuildError if it is not that one or not the right build."""
    r = subprocess.run([sys.executable, "-c", VERIFY], capture_output=True, text=True,
                       env=_variant_env(lib), cwd=BUILD_ROOT, timeout=120)
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BuildError("cannot import uvcore from %s" % lib, (r.stderr or r.stdout)[-2000:])
    real = os.path.realpath(lib) + os.sep
    if not info["file"].startswith(real) or not info["so"].startswith(real):
        raise BuildError("PYTHONPATH=%s imported uvcore from %s (%s), not from the cache"
                         % (lib, info["file"], info["so"]))
    if info["compiled_in"] != compiled_in:
        raise BuildError("%s: metrics_compiled_in is %s, expected %s"
                         % (lib, info["compiled_in"], compiled_in))
    return info


def ensure_builds(log=print, force=False):
    """Return {"on": lib dir, "off": lib dir, ...info}; builds what is missing
    or stale (see the module docstring).  Raises BuildError."""
    import fcntl
    os.makedirs(BUILD_ROOT, exist_ok=True)
    t0 = time.monotonic()
    files = _source_files()
    toolchain = _toolchain()
    key = _cache_key(files, toolchain)
    stamp = os.path.join(BUILD_ROOT, key, "build.json")
    with open(os.path.join(BUILD_ROOT, ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log("overhead: waiting for another build in %s ..." % BUILD_ROOT)
            fcntl.flock(lock, fcntl.LOCK_EX)
        info = None
        if not force and os.path.isfile(stamp):
            try:
                with open(stamp) as f:
                    info = json.load(f)
                for b, want in (("on", True), ("off", False)):
                    _verify_lib(_lib_dir(key, b), want)
            except (OSError, ValueError, BuildError) as e:
                log("overhead: cached build %s unusable (%s): rebuilding" % (key, e))
                info = None
        if info is None:
            info = _build(key, files, toolchain, log)
            with open(stamp + ".tmp", "w") as f:
                json.dump(info, f, indent=1)
            os.replace(stamp + ".tmp", stamp)
            for old in os.listdir(BUILD_ROOT):     # drop builds of older sources
                p = os.path.join(BUILD_ROOT, old)
                if old != key and len(old) == 16 and os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
            info["built_now"] = True
        else:
            info["built_now"] = False
    info.update(key=key, on=_lib_dir(key, "on"), off=_lib_dir(key, "off"),
                check_s=round(time.monotonic() - t0, 1))
    return info


def _build(key, files, toolchain, log):
    src = os.path.join(BUILD_ROOT, "src-%s-%d" % (key, os.getpid()))
    shutil.rmtree(src, ignore_errors=True)
    t0 = time.monotonic()
    log("overhead: building the uvcore variants (metrics on and UVCORE_METRICS=0) from a "
        "copy of the sources into %s (key %s; takes a few minutes) ..."
        % (os.path.relpath(os.path.join(BUILD_ROOT, key), REPO), key))
    try:
        for rel in files:
            dst = os.path.join(src, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(REPO, rel), dst)
        if os.path.isdir(os.path.join(REPO, "vendor", "libuv")):
            shutil.copytree(os.path.join(REPO, "vendor", "libuv"),
                            os.path.join(src, "vendor", "libuv"), symlinks=True)
        builds = {}
        for b, flag in (("on", "1"), ("off", "0")):
            lib = _lib_dir(key, b)
            shutil.rmtree(os.path.dirname(lib), ignore_errors=True)
            os.makedirs(lib)
            tmp = os.path.join(BUILD_ROOT, "tmp-" + b)    # libuv objects survive rebuilds
            env = _variant_env(lib)
            del env["PYTHONPATH"]
            env["UVCORE_METRICS"] = flag
            logf = os.path.join(os.path.dirname(lib), "build.log")
            tb = time.monotonic()
            with open(logf, "w") as out:
                r = subprocess.run([sys.executable, "setup.py", "build_ext", "--build-lib", lib,
                                    "--build-temp", tmp], cwd=src, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            with open(logf) as f:
                text = f.read()
            if r.returncode != 0:
                raise BuildError("UVCORE_METRICS=%s setup.py build_ext failed (exit %d), log: %s"
                                 % (flag, r.returncode, logf), text[-3000:])
            # the package: the snapshot's Python files next to the new extension
            for f in os.listdir(os.path.join(src, "uvcore")):
                if f.endswith((".py", ".pyi")) or f == "py.typed":
                    shutil.copy2(os.path.join(src, "uvcore", f), os.path.join(lib, "uvcore", f))
            v = _verify_lib(lib, flag == "1")
            builds[b] = {"UVCORE_METRICS": flag, "seconds": round(time.monotonic() - tb, 1),
                         "so": v["so"], "log": logf,
                         "compile_line": next((l for l in text.splitlines()
                                               if "_uvcore.c" in l and " -c " in l), None)}
            log("overhead: built UVCORE_METRICS=%s in %.0f s" % (flag, builds[b]["seconds"]))
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return {"key": key, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.monotonic() - t0, 1), "toolchain": toolchain,
            "n_source_files": len(files), "builds": builds}
