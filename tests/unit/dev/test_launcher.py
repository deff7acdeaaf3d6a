"""make airflow's settings: every address on 127.0.0.1, the Execution API on the chosen port, own ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_pipelines.dev.launcher import launcher_env, login_password
from backup_pipelines.dev.services import POSTGRES_ENV, Postgres


def test_any_port_gets_its_own_execution_api_url_hosts_and_log_ports(tmp_path: Path) -> None:
    env = launcher_env(tmp_path, port=18123, db_url="postgresql+psycopg2://postgres@127.0.0.1:5/airflow")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18123/execution/"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18123"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__API__PORT"] == "18123"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    other = launcher_env(tmp_path, port=18124, db_url="sqlite://")
    ports = {
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
        env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"],
    }
    assert "8793" not in ports and "8794" not in ports and len(ports) == 2
    assert other["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] not in ports


def test_the_login_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = login_password(tmp_path / "airflow")
    assert len(first) >= 12 and login_password(tmp_path / "airflow") == first
    assert (tmp_path / "airflow" / "passwords.json").stat().st_mode & 0o077 == 0


def test_a_postgres_named_by_the_environment_is_used_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(POSTGRES_ENV, "postgresql://admin@db.example:6543/postgres?sslmode=require")
    server = Postgres.from_env_or_start(tmp_path)
    assert server.server is None  # nothing started
    assert server.url("airflow") == "postgresql+psycopg2://admin@db.example:6543/airflow?sslmode=require"
    assert server.where == f"db.example:6543 (${POSTGRES_ENV})"
