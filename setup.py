"""Build script for uvcore.

Project metadata lives in pyproject.toml; this file only describes the
extension module ``uvcore._uvcore`` and how libuv gets into it:

* By default libuv's Linux sources from vendor/libuv/ (fetched and verified by
  vendor/fetch_libuv.py, run automatically when missing) are compiled into a
  static archive in the build temp folder, cached across rebuilds, and linked
  into the extension with their symbols kept out of its export table.
* ``UVCORE_USE_SYSTEM_LIBUV=1`` links a system libuv found by pkg-config instead.
* ``UVCORE_DEBUG=1`` builds with -O0 -g and assertions on;
  ``UVCORE_ASAN=1`` adds -fsanitize=address,undefined.
* ``UVCORE_METRICS=0`` compiles the loop metrics out (loop.metrics() then
  reports zeros); that build exists to measure what they cost.
"""

import glob
import hashlib
import importlib.util
import json
import os
import shutil
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.sdist import sdist as _sdist

if int(setuptools.__version__.split(".")[0]) < 77:
    sys.exit(f"uvcore: building needs setuptools>=77 (found {setuptools.__version__}); "
             "use pip install . (it brings its own) or pip install -U 'setuptools>=77'")

ROOT = os.path.dirname(os.path.abspath(__file__))
if os.path.abspath(os.getcwd()) != ROOT:
    os.chdir(ROOT)

LIBUV_DIR = "vendor/libuv"
LIBUV_INCLUDE = LIBUV_DIR + "/include"

# Taken from libuv 1.50.0's CMakeLists.txt: the common sources, the unix
# ones, and those added for CMAKE_SYSTEM_NAME "Linux" (plus proctitle.c,
# added for Linux/Android/Apple).
LIBUV_SOURCES = [
    "src/fs-poll.c",
    "src/idna.c",
    "src/inet.c",
    "src/random.c",
    "src/strscpy.c",
    "src/strtok.c",
    "src/thread-common.c",
    "src/threadpool.c",
    "src/timer.c",
    "src/uv-common.c",
    "src/uv-data-getter-setters.c",
    "src/version.c",
    "src/unix/async.c",
    "src/unix/core.c",
    "src/unix/dl.c",
    "src/unix/fs.c",
    "src/unix/getaddrinfo.c",
    "src/unix/getnameinfo.c",
    "src/unix/loop-watcher.c",
    "src/unix/loop.c",
    "src/unix/pipe.c",
    "src/unix/poll.c",
    "src/unix/process.c",
    "src/unix/random-devurandom.c",
    "src/unix/signal.c",
    "src/unix/stream.c",
    "src/unix/tcp.c",
    "src/unix/thread.c",
    "src/unix/tty.c",
    "src/unix/udp.c",
    "src/unix/proctitle.c",
    "src/unix/linux.c",
    "src/unix/procfs-exepath.c",
    "src/unix/random-getrandom.c",
    "src/unix/random-sysctl-linux.c",
]
LIBUV_DEFINES = [
    ("_GNU_SOURCE", None),
    ("_POSIX_C_SOURCE", "200112"),
    ("_FILE_OFFSET_BITS", "64"),
    ("_LARGEFILE_SOURCE", None),
]
LIBUV_SYSTEM_LIBS = ["pthread", "dl", "rt"]

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
}


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false", "off")


USE_SYSTEM_LIBUV = _env_flag("UVCORE_USE_SYSTEM_LIBUV")
DEBUG = _env_flag("UVCORE_DEBUG")
ASAN = _env_flag("UVCORE_ASAN")
METRICS = os.environ.get("UVCORE_METRICS", "1").strip().lower() not in ("0", "no", "false", "off")


def _load_fetcher():
    path = os.path.join(ROOT, "vendor", "fetch_libuv.py")
    spec = importlib.util.spec_from_file_location("uvcore_fetch_libuv", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ensure_libuv_source():
    """Fetch vendor/libuv if absent, and verify it against the pin."""
    fetcher = _load_fetcher()
    try:
        fetcher.ensure(os.path.join(ROOT, LIBUV_DIR))
    except (fetcher.FetchError, fetcher.ChecksumMismatch, fetcher.TreeModified) as exc:
        sys.exit(f"uvcore: cannot get the libuv source: {exc}")


def _uvcore_deps():
    """Every Cython/C file the extension depends on, relative to ROOT."""
    deps = []
    for pattern in ("*.pyx", "*.pxi", "*.pxd", "*.h"):
        deps += glob.glob(os.path.join("uvcore", "**", pattern), recursive=True)
    # headers Cython itself writes next to a module (public/api declarations)
    generated = set()
    for pyx in glob.glob(os.path.join("uvcore", "**", "*.pyx"), recursive=True):
        generated |= {pyx[:-4] + ".h", pyx[:-4] + "_api.h"}
    return sorted(set(deps) - generated)


def _license_files():
    files = sorted(glob.glob("LICEN[CS]E*") + glob.glob("COPYING*"))
    if not USE_SYSTEM_LIBUV:
        files += [p for p in (LIBUV_DIR + "/LICENSE", LIBUV_DIR + "/LICENSE-extra")
                  if os.path.isfile(p)]
    return files


def _pkg_config(*args):
    try:
        proc = subprocess.run(["pkg-config", *args], capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("uvcore: UVCORE_USE_SYSTEM_LIBUV=1 needs pkg-config, which is not installed")
    return proc


def _system_libuv_flags():
    if _pkg_config("--exists", "libuv").returncode != 0:
        sys.exit(
            "uvcore: UVCORE_USE_SYSTEM_LIBUV=1 but pkg-config cannot find 'libuv'.\n"
            "Install libuv's development files (Debian: libuv1-dev) or point PKG_CONFIG_PATH\n"
            "at libuv.pc; unset UVCORE_USE_SYSTEM_LIBUV to build the vendored libuv instead.")
    version = _pkg_config("--modversion", "libuv").stdout.strip()
    flags = {
        "include_dirs": [], "define_macros": [], "extra_compile_args": [],
        "library_dirs": [], "libraries": [], "extra_link_args": [],
    }
    for tok in shlex.split(_pkg_config("--cflags", "libuv").stdout):
        if tok.startswith("-I"):
            flags["include_dirs"].append(tok[2:])
        elif tok.startswith("-D"):
            name, _, value = tok[2:].partition("=")
            flags["define_macros"].append((name, value or None))
        else:
            flags["extra_compile_args"].append(tok)
    for tok in shlex.split(_pkg_config("--libs", "libuv").stdout):
        if tok.startswith("-L"):
            flags["library_dirs"].append(tok[2:])
        elif tok.startswith("-l"):
            flags["libraries"].append(tok[2:])
        else:
            flags["extra_link_args"].append(tok)
    if "uv" not in flags["libraries"]:
        flags["libraries"].append("uv")
    return version, flags


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


class build_ext(_build_ext):
    """build_ext that compiles libuv into a static archive and cythonizes."""

    def _opt_flags(self):
        if DEBUG:
            flags = ["-O0", "-g", "-UNDEBUG"]
        else:
            flags = ["-O2"]
        if ASAN:
            flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        return flags

    def _link_flags(self):
        return ["-fsanitize=address,undefined"] if ASAN else []

    # -- libuv -------------------------------------------------------------

    def _build_libuv(self):
        """Compile libuv's sources (only the stale ones) into libuv.a."""
        cflags = ["-fPIC", "-fvisibility=hidden", "-fno-strict-aliasing",
                  "-Wno-unused-parameter", "-Wno-sign-compare"] + self._opt_flags()
        include_dirs = [LIBUV_INCLUDE, LIBUV_DIR + "/src"]
        key = hashlib.sha256(json.dumps({
            "compiler": getattr(self.compiler, "compiler_so", None),
            "cflags": cflags,
            "defines": LIBUV_DEFINES,
            "sources": LIBUV_SOURCES,
        }, sort_keys=True).encode()).hexdigest()[:12]
        out_dir = os.path.join(self.build_temp, "libuv-" + key)
        lib_dir = os.path.join(out_dir, "lib")
        archive = self.compiler.library_filename("uv", output_dir=lib_dir)

        sources = [LIBUV_DIR + "/" + s for s in LIBUV_SOURCES]
        missing = [s for s in sources if not os.path.isfile(s)]
        if missing:
            sys.exit(f"uvcore: libuv source files missing: {missing}")
        headers = glob.glob(LIBUV_INCLUDE + "/**/*.h", recursive=True)
        headers += glob.glob(LIBUV_DIR + "/src/**/*.h", recursive=True)
        newest_header = max(_mtime(h) for h in headers)
        objects = self.compiler.object_filenames(sources, output_dir=out_dir)
        stale = [
            (src, obj) for src, obj in zip(sources, objects)
            if _mtime(obj) < max(_mtime(src), newest_header)
        ]
        for _, obj in stale:
            os.makedirs(os.path.dirname(obj), exist_ok=True)
        if stale:
            jobs = self.parallel if isinstance(self.parallel, int) and self.parallel > 0 else (os.cpu_count() or 1)
            print(f"uvcore: compiling {len(stale)} of {len(sources)} libuv sources "
                  f"({jobs} jobs) into {out_dir}", flush=True)

            def compile_one(src):
                self.compiler.compile([src], output_dir=out_dir, macros=LIBUV_DEFINES,
                                      include_dirs=include_dirs, extra_postargs=cflags)

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for fut in [pool.submit(compile_one, s) for s, _ in stale]:
                    fut.result()
        else:
            print(f"uvcore: libuv objects up to date in {out_dir}", flush=True)
        if _mtime(archive) < max(_mtime(o) for o in objects):
            if os.path.exists(archive):
                os.remove(archive)
            self.compiler.create_static_lib(objects, "uv", output_dir=lib_dir)
        return archive

    # -- Cython ------------------------------------------------------------

    def _cythonize(self, ext):
        try:
            from Cython.Build import cythonize
        except ImportError:
            sys.exit("uvcore: building needs Cython>=3.0 (pip install 'Cython>=3.0,<4')")
        pyx = [s for s in ext.sources if s.endswith(".pyx")]
        deps = _uvcore_deps()
        force = self.force
        # Rebuild the C file when any .pyx/.pxi/.pxd/.h under uvcore/ is newer
        # than it (Cython's own tracking misses some of these, e.g. headers).
        for p in pyx:
            c_file = p[:-4] + ".c"
            if _mtime(c_file) < max([_mtime(d) for d in deps] + [_mtime(p)]):
                force = True
        new_ext = cythonize(
            [ext],
            compiler_directives=CYTHON_DIRECTIVES,
            include_path=["uvcore/includes"],
            force=force,
            quiet=False,
        )[0]
        ext.sources = new_ext.sources

    # -- main --------------------------------------------------------------

    def _config_stamp(self):
        return os.path.join(self.build_temp, "uvcore-build-config.json")

    def _config_changed(self, config):
        """True unless the last successful build used the same build mode."""
        try:
            with open(self._config_stamp(), encoding="utf-8") as f:
                return json.load(f) != config
        except (OSError, ValueError):
            return True

    def _record_config(self, config):
        os.makedirs(self.build_temp, exist_ok=True)
        with open(self._config_stamp(), "w", encoding="utf-8") as f:
            json.dump(config, f)

    def copy_extensions_to_source(self):
        # --inplace: replace the module with a new file (os.replace), never
        # overwrite it: a running process that has the old one mapped would
        # crash (SIGBUS) on a module rewritten under it.
        def copy_file(src, dst, *args, **kwargs):
            tmp = "%s.tmp-%d" % (dst, os.getpid())
            shutil.copyfile(src, tmp)
            shutil.copymode(src, tmp)
            os.replace(tmp, dst)
            return dst, 1
        self.copy_file = copy_file
        try:
            super().copy_extensions_to_source()
        finally:
            del self.copy_file

    def build_extensions(self):
        config = {"system_libuv": USE_SYSTEM_LIBUV, "debug": DEBUG, "asan": ASAN,
                  "metrics": METRICS}
        if self._config_changed(config):
            # the build mode changed (or is unknown): rebuild the extension
            self.force = True
        for ext in self.extensions:
            ext.include_dirs = ["uvcore/includes"] + list(ext.include_dirs)
            ext.extra_compile_args = list(ext.extra_compile_args) + self._opt_flags()
            if not METRICS:
                ext.define_macros = list(ext.define_macros or []) + [("UVC_METRICS", "0")]
            ext.extra_link_args = list(ext.extra_link_args) + self._link_flags()
            if USE_SYSTEM_LIBUV:
                version, flags = _system_libuv_flags()
                print(f"uvcore: linking the system libuv {version} (pkg-config)", flush=True)
                for k, v in flags.items():
                    setattr(ext, k, list(getattr(ext, k) or []) + v)
            else:
                ensure_libuv_source()
                archive = self._build_libuv()
                ext.include_dirs.append(LIBUV_INCLUDE)
                ext.extra_objects = list(ext.extra_objects or []) + [archive]
                ext.libraries = list(ext.libraries or []) + LIBUV_SYSTEM_LIBS
                # keep libuv's symbols out of the module's dynamic symbol table
                ext.extra_link_args.append("-Wl,--exclude-libs,ALL")
                ext.depends = list(ext.depends or []) + [archive]
            self._cythonize(ext)
        super().build_extensions()
        self._record_config(config)


class sdist(_sdist):
    """sdist that carries the verified libuv source, so installs need no network."""

    def run(self):
        ensure_libuv_source()
        super().run()

    def make_release_tree(self, base_dir, files):
        extra = [
            "vendor/libuv.pin",
            "vendor/fetch_libuv.py",
            "vendor/README.md",
            "uvcore/py.typed",
        ]
        extra += glob.glob(LIBUV_DIR + "/include/**/*", recursive=True)
        extra += glob.glob(LIBUV_DIR + "/src/**/*", recursive=True)
        extra += [LIBUV_DIR + "/" + name for name in
                  ("LICENSE", "LICENSE-extra", "AUTHORS", "CMakeLists.txt", ".uvcore-source.json")]
        extra += _uvcore_deps()
        extra += glob.glob("uvcore/**/*.pyi", recursive=True)
        extra += glob.glob("uvcore/**/*.py", recursive=True)
        extra += [f for f in glob.glob("tests/**/*", recursive=True) if "__pycache__" not in f]
        generated = {p[:-4] + ".c" for p in glob.glob("uvcore/**/*.pyx", recursive=True)}
        files = [f for f in files if f not in generated and not f.endswith((".so", ".pyc"))]
        seen = set(files)
        for f in extra:
            f = f.replace(os.sep, "/")
            if os.path.isfile(f) and f not in seen and "__pycache__" not in f:
                seen.add(f)
                files.append(f)
        super().make_release_tree(base_dir, files)


# Fetch libuv up front when it is missing, so that the metadata (licence files)
# and every later command see it.  The build verifies it again.
_NO_FETCH_COMMANDS = {"clean", "--help", "-h", "--help-commands", "--name", "--version"}
if (not USE_SYSTEM_LIBUV
        and not os.path.isfile(LIBUV_INCLUDE + "/uv.h")
        and not _NO_FETCH_COMMANDS.intersection(sys.argv[1:])):
    ensure_libuv_source()

setup(
    license_files=_license_files(),
    ext_modules=[
        Extension(
            "uvcore._uvcore",
            sources=["uvcore/_uvcore.pyx"],
            depends=_uvcore_deps(),
            language="c",
        )
    ],
    cmdclass={"build_ext": build_ext, "sdist": sdist},
)
