"""Throwaway PostgreSQL and Redis servers for the integration tests.

Both servers are session scoped: they are started once (on a free loopback
port, with their files in a temporary folder) and shared by the ``asyncio``
and ``uvcore`` halves of every test.  Teardown stops each server by its own
PID (SIGTERM, bounded wait, then SIGKILL) and removes its folder.

A machine without the server binaries (or, when running as root, without
an unprivileged user for PostgreSQL) skips these tests with a reason.
"""

import dataclasses
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

PG_BIN_CANDIDATES = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "<no log>"
    return data[-n:].decode("utf-8", "replace")


def _stop_process(proc, timeout=STOP_TIMEOUT):
    """Stop ``proc`` by its own PID: SIGTERM, bounded wait, SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout)


def _find_pg_bin():
    for d in PG_BIN_CANDIDATES:
        if all(os.access(os.path.join(d, b), os.X_OK)
               for b in ("initdb", "postgres")):
            return d
    for b in ("initdb", "postgres"):
        if shutil.which(b) is None:
            return None
    return os.path.dirname(shutil.which("postgres"))


@dataclasses.dataclass
class PgInfo:
    host: str
    port: int
    socket_dir: str
    user: str
    database: str
    ca_pem: str  # path of the CA that signed the server certificate

    def dsn_kwargs(self, **extra):
        kw = dict(host=self.host, port=self.port, user=self.user,
                  database=self.database)
        kw.update(extra)
        return kw


@dataclasses.dataclass
class RedisInfo:
    host: str
    port: int


def _make_cert(tmp, uid, gid):
    """Write a self-signed CA and a server certificate for 127.0.0.1 /
    localhost; return (cert_path, key_path, ca_path)."""
    cert_path = os.path.join(tmp, "server.crt")
    key_path = os.path.join(tmp, "server.key")
    ca_path = os.path.join(tmp, "ca.pem")
    try:
        import trustme
    except ImportError:
        trustme = None
    if trustme is not None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(key_path)
        cert.cert_chain_pems[0].write_to_path(cert_path)
        ca.cert_pem.write_to_path(ca_path)
    else:
        if shutil.which("openssl") is None:
            pytest.skip("neither trustme nor openssl is available to make "
                        "a certificate for PostgreSQL ssl=on")
        subprocess.run(
            ["openssl", "req", "-new", "-x509", "-nodes", "-days", "2",
             "-newkey", "rsa:2048", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", key_path, "-out", cert_path],
            check=True, capture_output=True, timeout=60)
        shutil.copy(cert_path, ca_path)
    for p in (cert_path, key_path, ca_path):
        os.chown(p, uid, gid)
    os.chmod(key_path, 0o600)
    return cert_path, key_path, ca_path


def _pg_ready(pg_bin, port, sock_dir):
    isready = os.path.join(pg_bin, "pg_isready")
    if os.access(isready, os.X_OK):
        r = subprocess.run(
            [isready, "-q", "-h", "127.0.0.1", "-p", str(port),
             "-U", "postgres", "-d", "postgres", "-t", "2"],
            capture_output=True, timeout=10)
        return r.returncode == 0
    # Fallback: both endpoints accept a connection.
    if not os.path.exists(os.path.join(sock_dir, f".s.PGSQL.{port}")):
        return False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server():
    pg_bin = _find_pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found")

    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to "
                        "run initdb/postgres as (they refuse root)")
        uid, gid = pw.pw_uid, pw.pw_gid
        run_as = dict(user=uid, group=gid, extra_groups=[])
        env = dict(os.environ, HOME=tempfile.gettempdir(), USER="postgres",
                   LOGNAME="postgres")
    else:
        uid, gid = os.geteuid(), os.getegid()
        run_as = {}
        env = dict(os.environ)
    for key in ("PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        env.pop(key, None)
    env["LC_ALL"] = "C"

    tmp = tempfile.mkdtemp(prefix="uvcore-pg-")
    proc = None
    try:
        os.chown(tmp, uid, gid)
        os.chmod(tmp, 0o700)
        data_dir = os.path.join(tmp, "data")
        sock_dir = os.path.join(tmp, "sock")
        os.mkdir(sock_dir, 0o755)
        os.chown(sock_dir, uid, gid)
        # The directory itself is 0700 for the server user; the test
        # process (root, or that same user) can still reach the socket.
        log_path = os.path.join(tmp, "postgres.log")

        r = subprocess.run(
            [os.path.join(pg_bin, "initdb"), "-D", data_dir, "-U", "postgres",
             "-A", "trust", "-E", "UTF8", "--no-sync"],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL, **run_as)
        if r.returncode != 0:
            pytest.fail(f"initdb failed ({r.returncode}):\n{r.stdout}\n"
                        f"{r.stderr}", pytrace=False)

        cert, key, ca = _make_cert(tmp, uid, gid)
        port = _free_port()
        with open(os.path.join(data_dir, "postgresql.conf"), "a") as f:
            f.write(
                "\n# uvcore integration tests\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{sock_dir}'\n"
                "ssl = on\n"
                f"ssl_cert_file = '{cert}'\n"
                f"ssl_key_file = '{key}'\n"
                "max_connections = 100\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "logging_collector = off\n"
            )
        # initdb -A trust already trusts local and host 127.0.0.1/32; be
        # explicit in case the defaults change.
        with open(os.path.join(data_dir, "pg_hba.conf"), "w") as f:
            f.write(
                "local all all trust\n"
                "host  all all 127.0.0.1/32 trust\n"
                "host  all all ::1/128 trust\n"
            )
        os.chown(os.path.join(data_dir, "pg_hba.conf"), uid, gid)

        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(
                [os.path.join(pg_bin, "postgres"), "-D", data_dir],
                cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, **run_as)
        finally:
            log.close()

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"postgres exited with {proc.returncode}:\n"
                            f"{_tail(log_path)}", pytrace=False)
            if _pg_ready(pg_bin, port, sock_dir):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"postgres not ready within {START_TIMEOUT} s:\n"
                            f"{_tail(log_path)}", pytrace=False)
            time.sleep(0.1)

        yield PgInfo(host="127.0.0.1", port=port, socket_dir=sock_dir,
                     user="postgres", database="postgres", ca_pem=ca)
    finally:
        if proc is not None:
            _stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _redis_ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server():
    exe = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK)
        else None)
    if exe is None:
        pytest.skip("redis-server not found")
    tmp = tempfile.mkdtemp(prefix="uvcore-redis-")
    proc = None
    try:
        port = _free_port()
        log_path = os.path.join(tmp, "redis.log")
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(
                [exe, "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", tmp],
                cwd=tmp, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}:\n"
                            f"{_tail(log_path)}", pytrace=False)
            if _redis_ready(port):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server not ready within {START_TIMEOUT} "
                            f"s:\n{_tail(log_path)}", pytrace=False)
            time.sleep(0.05)
        yield RedisInfo(host="127.0.0.1", port=port)
    finally:
        if proc is not None:
            _stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)
