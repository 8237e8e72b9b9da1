#!/usr/bin/env python3
"""Fetch the pinned libuv release into vendor/libuv/ and verify it.

Standard library only.  Usage::

    python vendor/fetch_libuv.py            # fetch if needed, verify
    python vendor/fetch_libuv.py --check    # verify only, never fetch
    python vendor/fetch_libuv.py --force    # replace vendor/libuv/ even if modified
    python vendor/fetch_libuv.py --compute PATH   # print the tree checksum of a
                                                  # libuv directory or tarball

The pin (version, tree checksum, download URLs, Debian source package) lives
in vendor/libuv.pin.  The checksum is computed over the files the build
compiles; see vendor/README.md for its exact definition.

Routes, tried in order until one yields a tarball (each result is checked
against the same pinned checksum; a mismatch is fatal, never skipped):

  tarball   a local tarball named by the UVCORE_LIBUV_TARBALL environment variable
  download  the upstream release URLs from the pin, failing fast when offline
  debian    Debian's source package, fetched with apt-get through a private
            source list derived from this machine's apt configuration

UVCORE_LIBUV_ROUTES (or --routes) picks and orders routes, e.g. "debian" or
"tarball,debian".
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request

VENDOR_DIR = os.path.dirname(os.path.abspath(__file__))
PIN_FILE = os.path.join(VENDOR_DIR, "libuv.pin")
LIBUV_DIR = os.path.join(VENDOR_DIR, "libuv")

# The folders whose every file goes into the checksum (and into the build).
CHECKED_DIRS = ("include", "src")
# Extra top-level files kept next to them (licence texts, the upstream build
# description the source list in setup.py was taken from).  Not checksummed.
EXTRA_FILES = ("LICENSE", "LICENSE-extra", "AUTHORS", "CMakeLists.txt")
# Written by this script into vendor/libuv/ after a successful install.
PROVENANCE_FILE = ".uvcore-source.json"

ALL_ROUTES = ("tarball", "download", "debian")
CONNECT_DEADLINE = 5.0      # seconds per URL to get a response (offline: fail fast)
DOWNLOAD_DEADLINE = 120.0   # seconds for a started download to finish
APT_TIMEOUT = 300           # seconds for one apt-get invocation


class FetchError(Exception):
    """A route could not produce a tarball (try the next one)."""


class ChecksumMismatch(Exception):
    """Source obtained but its content is not the pinned one (fatal)."""


class TreeModified(Exception):
    """vendor/libuv exists, does not match the pin and was not fetched by us."""


_quiet = False


def log(msg: str) -> None:
    if not _quiet:
        print("fetch_libuv: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Pin file and checksum
# --------------------------------------------------------------------------

def load_pin(path: str = PIN_FILE) -> dict:
    """Parse the ``key = value`` pin file. Repeated keys collect into lists."""
    pin: dict = {"url": [], "debian_suite": []}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise SystemExit(f"{path}:{lineno}: expected 'key = value'")
            key, value = key.strip(), value.strip()
            if isinstance(pin.get(key), list):
                pin[key].append(value)
            else:
                pin[key] = value
    for key in ("version", "tree_sha256", "debian_source"):
        if not pin.get(key):
            raise SystemExit(f"{path}: missing '{key}'")
    return pin


def tree_checksum(root: str) -> str:
    """Checksum of every file under ``root``/include and ``root``/src.

    One line per regular file: ``<path> NUL <sha256 hex of content> LF``,
    where <path> is relative to ``root`` with '/' separators (for example
    ``include/uv.h``).  Lines are sorted by the UTF-8 bytes of the path and
    the result is the sha256 hex digest of their concatenation.  Anything
    other than a regular file or a directory (a symlink, say) is an error.
    """
    lines = []
    for top in CHECKED_DIRS:
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            raise FileNotFoundError(f"{base} is missing")
        for dirpath, dirnames, filenames in os.walk(base):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    raise ValueError(f"unexpected symlink {full}")
            for name in filenames:
                full = os.path.join(dirpath, name)
                if not os.path.isfile(full):
                    raise ValueError(f"unexpected non-regular file {full}")
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                lines.append(rel.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
    if not lines:
        raise ValueError(f"no files under {root}/include and {root}/src")
    lines.sort()
    return hashlib.sha256(b"".join(lines)).hexdigest()


def _checksum_or_none(root: str):
    try:
        return tree_checksum(root)
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# Tarball extraction
# --------------------------------------------------------------------------

def _wanted(rel: str) -> bool:
    return rel.split("/", 1)[0] in CHECKED_DIRS or rel in EXTRA_FILES


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def extract_tarball(tarball: str, dest: str) -> str:
    """Extract the libuv parts of ``tarball`` into a new folder ``dest``.

    The tarball must have a single top-level folder (whatever its name:
    libuv-v1.50.0/, libuv-1.50.0/, libuv1-1.50.0/ ...).  Only include/, src/
    and EXTRA_FILES are extracted; links, devices and unsafe paths are refused.
    """
    try:
        tf = tarfile.open(tarball, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise FetchError(f"cannot open {tarball}: {exc}") from exc
    with tf:
        members = tf.getmembers()
        tops = {_norm(m.name).split("/", 1)[0] for m in members if _norm(m.name) not in ("", ".")}
        if len(tops) != 1:
            raise FetchError(f"{tarball}: expected one top-level folder, found {sorted(tops)[:5]}")
        top = tops.pop()
        os.makedirs(dest)
        count = 0
        for m in members:
            name = _norm(m.name)
            if not name.startswith(top + "/"):
                continue
            rel = name[len(top) + 1:].rstrip("/")
            if not rel or not _wanted(rel):
                continue
            parts = rel.split("/")
            if rel.startswith("/") or ".." in parts or "" in parts:
                raise FetchError(f"{tarball}: unsafe member path {m.name!r}")
            target = os.path.join(dest, *parts)
            if m.isdir():
                os.makedirs(target, exist_ok=True)
            elif m.isfile():
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = tf.extractfile(m)
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(target, 0o644)
                count += 1
            else:
                raise FetchError(f"{tarball}: refusing non-regular member {m.name!r}")
    if not os.path.isfile(os.path.join(dest, "include", "uv.h")):
        raise FetchError(f"{tarball}: no include/uv.h inside, not a libuv source tarball")
    log(f"extracted {count} files from {os.path.basename(tarball)}")
    return dest


# --------------------------------------------------------------------------
# Routes: each returns the path of a tarball in ``workdir`` or raises FetchError
# --------------------------------------------------------------------------

def route_tarball(pin: dict, workdir: str) -> str:
    path = os.environ.get("UVCORE_LIBUV_TARBALL", "")
    if not path:
        raise FetchError("UVCORE_LIBUV_TARBALL is not set")
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise FetchError(f"UVCORE_LIBUV_TARBALL={path} does not exist")
    return path


def _download(url: str, dest: str) -> None:
    """Download ``url`` to ``dest``; give up fast when nothing answers."""
    state: dict = {}
    answered = threading.Event()

    def worker():
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "uvcore-fetch-libuv"})
            with urllib.request.urlopen(req, timeout=CONNECT_DEADLINE) as resp:
                answered.set()
                with open(dest, "wb") as out:
                    shutil.copyfileobj(resp, out, 1 << 16)
            state["ok"] = True
        except BaseException as exc:  # reported by the caller
            state["error"] = exc
        finally:
            answered.set()

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    # Name resolution is not bound by the socket timeout: bound it here.
    if not answered.wait(CONNECT_DEADLINE):
        raise FetchError(f"{url}: no answer within {CONNECT_DEADLINE:.0f} s")
    t.join(DOWNLOAD_DEADLINE)
    if t.is_alive():
        raise FetchError(f"{url}: download did not finish within {DOWNLOAD_DEADLINE:.0f} s")
    if "error" in state:
        raise FetchError(f"{url}: {state['error']}")


def route_download(pin: dict, workdir: str) -> str:
    errors = []
    for i, url in enumerate(pin["url"]):
        dest = os.path.join(workdir, f"download-{i}-" + os.path.basename(urllib.parse.urlsplit(url).path))
        log(f"downloading {url}")
        try:
            _download(url, dest)
            return dest
        except FetchError as exc:
            log(f"  failed: {exc}")
            errors.append(str(exc))
    if not errors:
        raise FetchError("no url in the pin")
    raise FetchError(f"none of the {len(errors)} URLs worked:\n    " + "\n    ".join(errors))


def _apt_config_paths():
    """Where apt reads its source lists from (honours Dir::Etc settings)."""
    main, parts = "/etc/apt/sources.list", "/etc/apt/sources.list.d"
    try:
        out = subprocess.run(
            ["apt-config", "shell", "SL", "Dir::Etc::SourceList/f", "SP", "Dir::Etc::SourceParts/d"],
            capture_output=True, text=True, timeout=30, check=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition("=")
            val = val.strip().strip("'\"")
            if key == "SL" and val:
                main = val
            elif key == "SP" and val:
                parts = val.rstrip("/")
    except (OSError, subprocess.SubprocessError):
        pass
    return main, parts


def _parse_one_line(path: str):
    entries = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return entries
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options = {}
        if "[" in line and "]" in line:
            before, _, rest = line.partition("[")
            opts, _, after = rest.partition("]")
            for opt in opts.split():
                k, _, v = opt.partition("=")
                options[k.strip().lower()] = v.strip()
            line = before + " " + after
        tokens = line.split()
        if len(tokens) < 3 or tokens[0] not in ("deb", "deb-src"):
            continue
        entries.append({
            "file": path,
            "types": [tokens[0]],
            "uris": [tokens[1]],
            "suites": [tokens[2]],
            "components": tokens[3:],
            "signed_by": options.get("signed-by", "").replace(",", " ").split() or None,
        })
    return entries


def _parse_deb822(path: str):
    entries = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return entries
    stanzas, fields, key = [], {}, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
            continue
        if raw[0] in " \t" and key:
            fields[key] += "\n" + raw.strip()
            continue
        k, sep, v = raw.partition(":")
        if sep:
            key = k.strip().lower()
            fields[key] = v.strip()
    for st in stanzas:
        if st.get("enabled", "yes").lower() == "no":
            continue
        signed = st.get("signed-by", "").strip()
        if "BEGIN PGP" in signed:
            signed_by = {"inline": signed}
        else:
            signed_by = signed.split() or None
        entries.append({
            "file": path,
            "types": st.get("types", "").split(),
            "uris": st.get("uris", "").split(),
            "suites": st.get("suites", "").split(),
            "components": st.get("components", "").split(),
            "signed_by": signed_by,
        })
    return entries


DEBIAN_SUITE_NAMES = {
    "stable", "testing", "unstable", "sid", "oldstable", "oldoldstable",
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke",
}


def _os_codename() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k == "VERSION_CODENAME":
                    return v.strip().strip('"')
    except OSError:
        pass
    return ""


def debian_archive_candidates():
    """(uri, signed_by) pairs for the machine's main Debian archive, best first.

    Reads the apt source lists (one-line and deb822).  An entry qualifies when
    it has the 'main' component and a plain Debian suite (no -security,
    -updates, -backports, /updates ...), and its Signed-By, if it names a
    keyring file, names a Debian archive keyring (third-party repositories use
    their own keyrings).
    """
    main, parts = _apt_config_paths()
    entries = _parse_one_line(main)
    if os.path.isdir(parts):
        names = sorted(os.listdir(parts))
        for name in names:
            full = os.path.join(parts, name)
            if name.endswith(".list"):
                entries += _parse_one_line(full)
            elif name.endswith(".sources"):
                entries += _parse_deb822(full)
    codename = _os_codename()
    suites_ok = DEBIAN_SUITE_NAMES | ({codename} if codename else set())
    scored = []
    for order, e in enumerate(entries):
        if "main" not in e["components"]:
            continue
        if not any(s in suites_ok for s in e["suites"]):
            continue
        signed = e["signed_by"]
        score = 0
        if isinstance(signed, list):
            if not all("debian-archive" in os.path.basename(p) for p in signed):
                continue
            score += 2
        elif signed is None:
            score += 1
        for uri in e["uris"]:
            if not uri.startswith(("http://", "https://")):
                continue
            segs = urllib.parse.urlsplit(uri).path.split("/")
            s = score + (1 if "debian" in segs else 0)
            # a dated snapshot is a poorer source for another suite
            s -= 1 if any(seg[:8].isdigit() and "T" in seg for seg in segs) else 0
            scored.append((-s, order, uri.rstrip("/"), signed))
    result, seen = [], set()
    for _, _, uri, signed in sorted(scored, key=lambda x: (x[0], x[1])):
        if uri not in seen:
            seen.add(uri)
            result.append((uri, signed))
    return result


def _apt_version_key(a: str, b: str) -> int:
    for op, res in (("lt", -1), ("gt", 1)):
        try:
            if subprocess.run(["dpkg", "--compare-versions", a, op, b], timeout=30).returncode == 0:
                return res
        except (OSError, subprocess.SubprocessError):
            return (a > b) - (a < b)
    return 0


def _run_apt(cmd, cwd, what):
    log("  $ " + " ".join(cmd[:1] + [c for c in cmd[1:] if not c.startswith("-o") and "::" not in c]))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              timeout=APT_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise FetchError(f"{cmd[0]} not found (not a Debian-like system)")
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what} took more than {APT_TIMEOUT} s")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise FetchError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _debian_try(pin: dict, workdir: str, uri: str, signed_by, suite: str) -> str:
    pkg, version = pin["debian_source"], pin["version"]
    base = tempfile.mkdtemp(prefix="apt-", dir=workdir)
    lists = os.path.join(base, "lists")
    parts = os.path.join(base, "parts")
    dl = os.path.join(base, "download")
    for d in (os.path.join(lists, "partial"), parts, dl):
        os.makedirs(d)
    for d in (base, lists, dl):
        os.chmod(d, 0o755)
    src = os.path.join(base, "private.sources")
    stanza = [
        "Types: deb-src",
        f"URIs: {uri}",
        f"Suites: {suite}",
        "Components: main",
    ]
    if isinstance(signed_by, dict):
        body = signed_by["inline"].splitlines()
        stanza.append("Signed-By: " + body[0])
        stanza += [" " + (ln if ln.strip() else ".") for ln in body[1:]]
    elif signed_by:
        stanza.append("Signed-By: " + " ".join(signed_by))
    elif os.path.isfile("/usr/share/keyrings/debian-archive-keyring.gpg"):
        stanza.append("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg")
    with open(src, "w", encoding="utf-8") as f:
        f.write("\n".join(stanza) + "\n")
    opts = [
        "-o", f"Dir::Etc::SourceList={src}",
        "-o", f"Dir::Etc::SourceParts={parts}",
        "-o", f"Dir::State::Lists={lists}",
        # do not rewrite the machine's package caches from our private lists
        "-o", "Dir::Cache::pkgcache=",
        "-o", "Dir::Cache::srcpkgcache=",
        "-o", "Acquire::Retries=1",
        "-o", "Acquire::http::Timeout=30",
        "-o", "Acquire::https::Timeout=30",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        opts += ["-o", "APT::Sandbox::User=root"]
    _run_apt(["apt-get", "-q"] + opts + ["update"], base, f"apt-get update ({suite})")
    out = _run_apt(["apt-cache"] + opts + ["showsrc", "--only-source", pkg], base, "apt-cache showsrc")
    versions, current = [], None
    for line in out.splitlines():
        if line.startswith("Package:"):
            current = line.split(":", 1)[1].strip()
        elif line.startswith("Version:") and current == pkg:
            v = line.split(":", 1)[1].strip()
            upstream = v.split(":", 1)[-1].rsplit("-", 1)[0]
            if upstream == version:
                versions.append(v)
    if not versions:
        raise FetchError(f"source package {pkg} {version}-* is not in {suite} (found other versions or none)")
    best = sorted(set(versions), key=functools.cmp_to_key(_apt_version_key))[-1]
    log(f"  found {pkg} {best} in {suite}")
    _run_apt(["apt-get", "-q"] + opts + ["source", "--download-only", f"{pkg}={best}"],
             dl, f"apt-get source {pkg}={best}")
    for name in sorted(os.listdir(dl)):
        if name.startswith(f"{pkg}_{version}.orig.tar."):
            return os.path.join(dl, name)
    raise FetchError(f"apt-get source gave no {pkg}_{version}.orig.tar.* in {os.listdir(dl)}")


def route_debian(pin: dict, workdir: str) -> str:
    candidates = debian_archive_candidates()
    if not candidates:
        raise FetchError("no Debian archive entry found in the apt source lists")
    errors = []
    for uri, signed_by in candidates[:3]:
        for suite in pin["debian_suite"] or ["trixie"]:
            log(f"trying Debian source package {pin['debian_source']} from {uri} suite {suite}")
            try:
                return _debian_try(pin, workdir, uri, signed_by, suite)
            except FetchError as exc:
                log(f"  failed: {exc}")
                errors.append(f"{uri} {suite}: {exc}")
    raise FetchError("; ".join(errors))


ROUTES = {"tarball": route_tarball, "download": route_download, "debian": route_debian}


# --------------------------------------------------------------------------
# Install
# --------------------------------------------------------------------------

def _read_provenance(dest: str) -> dict:
    try:
        with open(os.path.join(dest, PROVENANCE_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _install(tree: str, dest: str) -> None:
    old = None
    if os.path.exists(dest):
        old = dest + ".old-" + str(os.getpid())
        os.rename(dest, old)
    os.rename(tree, dest)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def check(dest: str = LIBUV_DIR, pin: dict | None = None) -> bool:
    pin = pin or load_pin()
    return _checksum_or_none(dest) == pin["tree_sha256"]


def ensure(dest: str = LIBUV_DIR, routes=None, force: bool = False, quiet: bool = False) -> str:
    """Make ``dest`` hold the pinned libuv source; return ``dest``.

    Raises ChecksumMismatch, TreeModified or FetchError (all routes failed).
    """
    global _quiet
    _quiet = quiet
    pin = load_pin()
    expected = pin["tree_sha256"]
    if os.path.exists(dest):
        got = _checksum_or_none(dest)
        if got == expected:
            log(f"{_rel(dest)} holds libuv {pin['version']} (checksum verified)")
            return dest
        recorded = _read_provenance(dest).get("tree_sha256")
        if got is not None and recorded == got:
            log(f"{_rel(dest)} holds an earlier fetch (libuv {_read_provenance(dest).get('version')}, "
                f"checksum {got[:16]}...) that the pin no longer names: replacing it")
        elif not force:
            raise TreeModified(
                f"{_rel(dest)} exists but does not match the pin and was changed since it was fetched\n"
                f"  expected tree checksum {expected}\n"
                f"  got                    {got or '(incomplete tree)'}\n"
                f"Delete {_rel(dest)} or run 'python vendor/fetch_libuv.py --force' to replace it.")
        else:
            log(f"{_rel(dest)} does not match the pin: replacing it (--force)")

    if routes is None:
        env_routes = os.environ.get("UVCORE_LIBUV_ROUTES", "")
        routes = [r.strip() for r in env_routes.split(",") if r.strip()] or list(ALL_ROUTES)
    for r in routes:
        if r not in ROUTES:
            raise SystemExit(f"unknown route {r!r} (choose from {', '.join(ALL_ROUTES)})")

    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    failures = []
    with tempfile.TemporaryDirectory(prefix=".fetch-libuv-", dir=parent) as work:
        for name in routes:
            log(f"route '{name}': libuv {pin['version']}")
            t0 = time.monotonic()
            try:
                tarball = ROUTES[name](pin, work)
                tree = extract_tarball(tarball, os.path.join(work, "tree-" + name))
            except FetchError as exc:
                log(f"route '{name}' unavailable ({time.monotonic() - t0:.1f} s): "
                    + str(exc).splitlines()[0])
                failures.append(f"  {name}: {exc}")
                continue
            got = tree_checksum(tree)
            if got != expected:
                raise ChecksumMismatch(
                    f"checksum mismatch for libuv {pin['version']} obtained by route '{name}' "
                    f"from {tarball}\n"
                    f"  expected tree checksum {expected} (vendor/libuv.pin)\n"
                    f"  got                    {got}\n"
                    f"Refusing to use it; {_rel(dest)} was left unchanged.")
            with open(os.path.join(tree, PROVENANCE_FILE), "w", encoding="utf-8") as f:
                json.dump({
                    "version": pin["version"],
                    "tree_sha256": got,
                    "route": name,
                    "source": os.path.basename(tarball),
                    "tarball_sha256": _file_sha256(tarball),
                    "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }, f, indent=2)
                f.write("\n")
            _install(tree, dest)
            log(f"installed libuv {pin['version']} into {_rel(dest)} via route '{name}' "
                f"(checksum {got[:16]}... verified, {time.monotonic() - t0:.1f} s)")
            return dest
    raise FetchError("could not obtain libuv " + pin["version"] + "; every route failed:\n"
                     + "\n".join(failures))


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _rel(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def compute(path: str) -> str:
    if os.path.isdir(path):
        return tree_checksum(path)
    with tempfile.TemporaryDirectory() as work:
        return tree_checksum(extract_tarball(path, os.path.join(work, "tree")))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--check", action="store_true", help="only verify vendor/libuv, never fetch")
    p.add_argument("--force", action="store_true", help="replace vendor/libuv even if locally modified")
    p.add_argument("--routes", help="comma-separated routes to try, in order "
                   f"(default: $UVCORE_LIBUV_ROUTES or {','.join(ALL_ROUTES)})")
    p.add_argument("--dest", default=LIBUV_DIR, help="target folder (default: vendor/libuv)")
    p.add_argument("--compute", metavar="PATH", help="print the tree checksum of a libuv folder or tarball")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.compute:
            print(compute(args.compute))
            return 0
        if args.check:
            pin = load_pin()
            got = _checksum_or_none(args.dest)
            if got == pin["tree_sha256"]:
                print(f"{_rel(args.dest)}: libuv {pin['version']} OK ({got})")
                return 0
            print(f"{_rel(args.dest)}: does not match the pin\n  expected {pin['tree_sha256']}\n"
                  f"  got      {got or '(missing or incomplete)'}", file=sys.stderr)
            return 1
        routes = [r.strip() for r in args.routes.split(",") if r.strip()] if args.routes else None
        ensure(args.dest, routes=routes, force=args.force, quiet=args.quiet)
        return 0
    except ChecksumMismatch as exc:
        print(f"fetch_libuv: ERROR: {exc}", file=sys.stderr)
        return 2
    except (TreeModified, FetchError) as exc:
        print(f"fetch_libuv: ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
