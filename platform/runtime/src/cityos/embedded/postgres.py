"""A PostgreSQL + PostGIS server in a data directory we own, driven by initdb and pg_ctl.

Used by the all-in-one runtime, ``devservices`` and the test fixtures. The server listens
on 127.0.0.1 only, trusts local connections (user ``postgres``, no password) and keeps its
Unix socket inside the data directory so it never collides with a system cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection

from cityos.embedded.ports import LOOPBACK, free_port, port_is_free
from cityos.embedded.process import (
    ContextManagedService,
    EmbeddedServiceError,
    log_tail,
    require_executable,
)

SERVER_USER = "postgres"
PREFERRED_MAJOR = 15
_PG_ROOT = Path("/usr/lib/postgresql")
_CONFIG_NAME = "cityos.conf"
_PORT_FILE = "cityos.port"
_LOG_NAME = "cityos-postgres.log"
_COMMAND_TIMEOUT = 120.0


def find_bin_dir() -> Path:
    """Return ``/usr/lib/postgresql/15/bin``, else the newest installed major's ``bin``."""
    majors = sorted(
        (int(entry.name) for entry in _PG_ROOT.glob("*") if entry.name.isdigit()),
        key=lambda major: (major == PREFERRED_MAJOR, major),
        reverse=True,
    )
    candidates = [_PG_ROOT / str(major) / "bin" / "initdb" for major in majors]
    if not candidates:
        candidates = [_PG_ROOT / str(PREFERRED_MAJOR) / "bin" / "initdb"]
    packages = f"postgresql-{PREFERRED_MAJOR} postgresql-{PREFERRED_MAJOR}-postgis-3"
    return require_executable(candidates, what="PostgreSQL server", packages=packages).parent


class EmbeddedPostgres(ContextManagedService):
    """One PostgreSQL cluster in ``data_dir``; runs as the ``postgres`` user when we are root.

    ``durable=False`` turns off fsync and synchronous commit: only for throwaway test data.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.data_dir = data_dir.absolute()
        self._requested_port = port
        self._durable = durable
        self._port: int | None = None
        self._bin_dir: Path | None = None

    # -- facts -------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.data_dir / _LOG_NAME

    @property
    def port(self) -> int:
        """The port of the running server (from ``postmaster.pid`` when we adopted it)."""
        if self._port is None and self.is_running():
            self._port = self._running_port()
        if self._port is None:
            raise EmbeddedServiceError(f"PostgreSQL in {self.data_dir} is not running")
        return self._port

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        status = self._run_tool("pg_ctl", "status", "-D", str(self.data_dir), check=False)
        return status.returncode == 0

    def url(self, database: str) -> str:
        """Return the URL of ``database``, creating it (with PostGIS) when missing."""
        self.create_database(database)
        return f"postgresql://{SERVER_USER}@{LOOPBACK}:{self.port}/{database}"

    # -- lifecycle ---------------------------------------------------------------------

    def ensure_initialized(self) -> None:
        """Run initdb unless the data directory already holds a cluster."""
        self._bin("initdb")  # a missing installation is the first thing worth reporting
        if self.is_initialized():
            return
        self._prepare_data_dir()
        sync = [] if self._durable else ["--no-sync"]
        self._run_tool(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SERVER_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
            *sync,
        )
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\n# Settings managed by cityos.embedded\ninclude = '{_CONFIG_NAME}'\n")

    def start(self, *, detach: bool = False, timeout: float = 60.0) -> None:
        """Start the server and return once it accepts connections.

        A server already running on this data directory is adopted as it is. Unless
        ``detach`` is set, a server we started is stopped at interpreter exit.
        """
        self.ensure_initialized()
        self._check_reachable()
        if self.is_running():
            self._port = self._running_port()
            return
        port = self._choose_port()
        self._write_settings(port)
        result = self._run_tool(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(int(timeout)),
            "-s",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedServiceError(
                f"PostgreSQL in {self.data_dir} did not start: {result.stdout.strip()}\n"
                f"--- {self.log_path} ---\n{log_tail(self.log_path)}"
            )
        self._port = port
        if not detach:
            atexit.register(self.stop)
        self._require_postgis()

    def stop(self) -> None:
        """Stop the server (fast shutdown: running transactions roll back); idempotent."""
        atexit.unregister(self.stop)
        self._port = None
        if not self.is_running():
            return
        result = self._run_tool(
            "pg_ctl", "stop", "-m", "fast", "-w", "-s", "-D", str(self.data_dir), check=False
        )
        if result.returncode != 0 and self.is_running():
            raise EmbeddedServiceError(
                f"PostgreSQL in {self.data_dir} did not stop: {result.stdout.strip()}\n"
                f"--- {self.log_path} ---\n{log_tail(self.log_path)}"
            )

    # -- databases ---------------------------------------------------------------------

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """Create ``name`` (from ``template`` if given) with the postgis extension; idempotent."""
        with self.connect("postgres") as conn, conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template is not None:
                    statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                with contextlib.suppress(psycopg2.errors.DuplicateDatabase):
                    cursor.execute(statement)
        with self.connect(name) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting its sessions; idempotent."""
        with self.connect("postgres") as conn, conn.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextlib.contextmanager
    def connect(self, database: str) -> Iterator[connection]:
        """Yield an autocommit psycopg2 connection to ``database``, closed afterwards."""
        conn = psycopg2.connect(
            host=LOOPBACK, port=self.port, user=SERVER_USER, dbname=database, connect_timeout=10
        )
        try:
            conn.autocommit = True
            yield conn
        finally:
            conn.close()

    # -- internals ---------------------------------------------------------------------

    def _bin(self, tool: str) -> str:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return str(self._bin_dir / tool)

    def _run_tool(
        self, tool: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self._bin(tool), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        try:
            result = subprocess.run(
                argv,
                cwd="/",
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServiceError(
                f"{tool} {' '.join(args)} took more than {_COMMAND_TIMEOUT:g} s\n"
                f"--- {self.log_path} ---\n{log_tail(self.log_path)}"
            ) from exc
        result.stdout += result.stderr
        if check and result.returncode != 0:
            raise EmbeddedServiceError(
                f"{tool} failed for {self.data_dir} (exit {result.returncode}):\n{result.stdout}"
            )
        return result

    def _prepare_data_dir(self) -> None:
        """Create the data directory, owned by ``postgres`` and reachable by it when root."""
        if os.geteuid() != 0:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return
        try:
            server_user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise EmbeddedServiceError(
                f"there is no '{SERVER_USER}' system user; install the Debian package "
                f"postgresql-{PREFERRED_MAJOR} (scripts/install-system-deps)"
            ) from None
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(self.data_dir, server_user.pw_uid, server_user.pw_gid)
        self.data_dir.chmod(0o700)
        self._check_reachable()

    def _check_reachable(self) -> None:
        """Fail fast (rather than hang or fail obscurely) when ``postgres`` cannot reach us."""
        if os.geteuid() != 0:
            return
        reachable = subprocess.run(
            ["runuser", "-u", SERVER_USER, "--", "test", "-w", str(self.data_dir)],
            cwd="/",
            check=False,
            timeout=_COMMAND_TIMEOUT,
        )
        if reachable.returncode != 0:
            raise EmbeddedServiceError(
                f"the '{SERVER_USER}' user cannot reach or write {self.data_dir}: a parent "
                "directory is not traversable by other users (for example /root or a 0700 "
                "temporary directory), or the directory belongs to another user. PostgreSQL "
                "refuses to run as root; choose a data directory under a path every user can "
                "traverse, such as /tmp or /var/lib."
            )

    def _choose_port(self) -> int:
        if self._requested_port is not None:
            if not port_is_free(self._requested_port):
                raise EmbeddedServiceError(
                    f"port {self._requested_port} requested for PostgreSQL is already in use"
                )
            port = self._requested_port
        else:
            stored = self._stored_port()
            port = stored if stored is not None and port_is_free(stored) else free_port()
        (self.data_dir / _PORT_FILE).write_text(f"{port}\n")
        return port

    def _stored_port(self) -> int | None:
        try:
            return int((self.data_dir / _PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def _running_port(self) -> int | None:
        """Read the port from ``postmaster.pid`` (its fourth line) of the running server."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    def _write_settings(self, port: int) -> None:
        durable = "on" if self._durable else "off"
        socket_dir = str(self.data_dir).replace("'", "''")
        settings = f"""\
# Written by cityos.embedded.postgres on every start; edits here are overwritten.
listen_addresses = '{LOOPBACK}'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 100
shared_buffers = 128MB
work_mem = 4MB
maintenance_work_mem = 64MB
effective_cache_size = 512MB
fsync = {durable}
synchronous_commit = {durable}
full_page_writes = {durable}
timezone = 'UTC'
log_timezone = 'UTC'
"""
        path = self.data_dir / _CONFIG_NAME
        path.write_text(settings, encoding="utf-8")
        if os.geteuid() == 0:
            server_user = pwd.getpwnam(SERVER_USER)
            for owned in (path, self.data_dir / _PORT_FILE):
                os.chown(owned, server_user.pw_uid, server_user.pw_gid)

    def _require_postgis(self) -> None:
        with self.connect("postgres") as conn, conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
            available = cursor.fetchone() is not None
        if not available:
            major = self._bin("postgres").split("/")[-3]
            raise EmbeddedServiceError(
                f"PostGIS is not installed for PostgreSQL {major}; install the Debian package "
                f"postgresql-{major}-postgis-3 (scripts/install-system-deps)"
            )
