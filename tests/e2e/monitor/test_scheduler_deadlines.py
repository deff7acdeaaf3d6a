"""SLA-miss emails from a real scheduler: Airflow 3 deadline alerts end to end, and no email for backfills.

The session's Postgres (tests/conftest.py) holds a fresh metadata DB; the scheduler (LocalExecutor),
dag-processor, triggerer and api-server (the Execution API the task processes talk to) run as
subprocesses on an embedded stack of their own (never the session's). The DAG is
``scheduler_dags/sla_probe.py``: every minute, 5 s SLA after the data interval's end, scheduled runs
sleep 30 s. The scheduler creates a deadline per run, sees it pass, and hands
``alerts.sla_miss_callback`` to the triggerer, which must send ``[SLA MISS]`` naming the DAG and the
run. A backfill over past minutes misses its (old) deadlines too; its callbacks must run and send
nothing.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.airflow_processes import AirflowProcesses
from support.services import fresh_database

from backup_pipelines.dev.airflow import airflow_env
from backup_pipelines.dev.processes import free_port, wait_for_port
from backup_pipelines.dev.services import Postgres
from backup_pipelines.dev.stack import EmbeddedStack

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]
DAGS = Path(__file__).resolve().parent / "scheduler_dags"
DAG_ID = "sla_probe"
RECIPIENT = "oncall-e2e@example.com"
BACKFILL_FROM, BACKFILL_TO = "2026-01-05T10:00:00", "2026-01-05T10:01:00"  # two one-minute runs


@pytest.fixture
def postgres_db(postgres: Postgres) -> Iterator[str]:
    """A fresh database for this test only, dropped afterwards."""
    with fresh_database(postgres, "sched") as (name, _):
        yield postgres.libpq_url(name)


@dataclass
class Airflow(AirflowProcesses):
    """The Airflow processes this test starts, and its metadata database."""

    database: str = ""  # libpq URL

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"Airflow processes exited early: {dead}\n" + self.tails()

    def tails(self, lines: int = 30) -> str:
        out = [f"import errors: {self.query('select filename, stacktrace from import_error')}"]
        out += [self.tail(name, lines) for name in self.procs]
        return "\n".join(out)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.database) as conn:
            return list(conn.execute(sql, params).fetchall())


def _config(base: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "include" / "config" / "backup.yaml").read_text())
    cfg["alerts"] = {"recipients": [RECIPIENT], "from_email": "backup-pipelines@example.com"}
    cfg["deadlines"] = {DAG_ID: {"reference": "data_interval_end", "after": "5s"}}
    path = base / "backup.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def airflow_deployment(tmp_path: Path, postgres_db: str) -> Iterator[tuple[Airflow, EmbeddedStack]]:
    base = tmp_path / "sched"
    (base / "logs").mkdir(parents=True)
    config = _config(base)
    stack = EmbeddedStack(base / "stack").start()
    deployment: Airflow | None = None
    try:
        from backup_pipelines.core.config import load_config

        cfg = load_config(config)
        stack.create_buckets(cfg.storage.backup_bucket, cfg.storage.archive_bucket)
        api_port = free_port()
        env = {
            **os.environ,
            **stack.env(),
            **airflow_env(
                base / "airflow",
                dags_folder=DAGS,
                sql_alchemy_conn=postgres_db.replace("postgresql://", "postgresql+psycopg2://", 1),
            ),
            "BACKUP_PIPELINES_CONFIG": str(config),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        deployment = Airflow(base, env, database=postgres_db)
        deployment.run("db", "migrate", timeout=180)
        deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port))
        deployment.start("dag-processor", "dag-processor")
        deployment.start("scheduler", "scheduler")
        deployment.start("triggerer", "triggerer")
        wait_for_port(api_port, name="airflow api-server", timeout=90, proc=deployment.procs["api-server"])
        yield deployment, stack
    finally:
        if deployment is not None:
            deployment.stop()
        stack.stop()


def _wait(what: str, deployment: Airflow, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deployment.check_alive()
        result = probe()
        if result:
            return result
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{deployment.tails()}")


def test_missed_deadline_sends_sla_email_and_backfill_sends_none(airflow_deployment) -> None:
    deployment, stack = airflow_deployment
    _wait(
        f"the dag-processor to serialize {DAG_ID}",
        deployment,
        lambda: deployment.query("select 1 from serialized_dag where dag_id = %s", DAG_ID),
        timeout=90,
    )
    # Past minutes, long before "now": their deadlines passed months ago.
    deployment.run(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", BACKFILL_FROM, "--to-date", BACKFILL_TO
    )

    def sla_emails() -> list[Any]:
        return [m for m in stack.mailbox() if str(m["Subject"]).startswith("[SLA MISS]")]

    emails = _wait("an [SLA MISS] email", deployment, sla_emails, timeout=150)
    scheduled = deployment.query(
        "select run_id from dag_run where dag_id = %s and run_type = 'scheduled' order by id", DAG_ID
    )
    assert scheduled, "the scheduler created no scheduled run"
    first_run = scheduled[0][0]
    mail = next((m for m in emails if first_run in str(m["Subject"])), None)
    assert mail is not None, f"no SLA email names {first_run}: {[m['Subject'] for m in emails]}"
    assert str(mail["Subject"]).startswith(f"[SLA MISS] {DAG_ID} run {first_run} missed its deadline")
    assert mail["To"] == RECIPIENT
    body = mail.get_body(("html",)).get_content()
    assert "clickhouse_snapshot/analytics" in body and "no verified recovery point" in body
    assert "promise: 5s after the data interval" in body

    # The backfill's deadlines were missed too, and their callbacks ran: suppressed, no email.
    def backfill_callbacks() -> list[tuple[Any, ...]]:
        rows = deployment.query(
            "select r.run_id, r.state, d.missed, c.state, c.output from deadline d"
            " join dag_run r on r.id = d.dagrun_id join callback c on c.id = d.callback_id"
            " where r.dag_id = %s and r.run_type = 'backfill'",
            DAG_ID,
        )
        done = [row for row in rows if row[3] in ("success", "failed")]
        return rows if len(done) == 2 else []

    rows = _wait("the backfill runs' deadline callbacks", deployment, backfill_callbacks, timeout=90)
    for run_id, _, missed, state, output in rows:
        assert missed is True, rows
        assert state == "success", rows
        assert "suppressed: the run is a backfill" in str(output), rows
        assert not any(run_id in str(m["Subject"]) for m in stack.mailbox()), run_id
    assert not any("backfill__" in str(m["Subject"]) for m in stack.mailbox())
