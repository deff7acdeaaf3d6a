"""SLA deadlines from config, the SLA-miss callback (through Airflow's CallbackTrigger), failure emails."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.monitor import alerts

BUCKET = "unit-alerts-backups"


@pytest.fixture
def smtp_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EmailMessage]]:
    """An in-process SMTP server; connection ``smtp_unit`` points at it."""
    from aiosmtpd.controller import Controller

    from backup_pipelines.dev.processes import free_port

    received: list[EmailMessage] = []

    class _Store:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            received.append(msg)
            return "250 OK"

    port = free_port()
    controller = Controller(_Store(), hostname="127.0.0.1", port=port)
    controller.start()
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "x@example.com", "retry_limit": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_UNIT", json.dumps(conn))
    try:
        yield received
    finally:
        controller.stop()


@pytest.fixture
def catalog_s3(moto_s3: Any) -> Any:
    """In-process moto S3 with the catalog bucket; connection ``aws_unit``."""
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def _cfg(example_config: dict[str, Any], **deadlines: dict[str, str]) -> BackupConfig:
    raw = dict(example_config)
    raw["deadlines"] = {**example_config.get("deadlines", {}), **deadlines}
    raw["connections"] = {"aws": "aws_unit", "smtp": "smtp_unit"}
    raw["storage"] = {**example_config["storage"], "backup_bucket": BUCKET}
    raw["alerts"] = {"recipients": ["oncall@example.com", "dba@example.com"], "from_email": "bp@example.com"}
    return BackupConfig.model_validate(raw)


def _manifest(dataset: str, captured_at: datetime, *, verified: bool = True) -> Any:
    from backup_pipelines.core.manifest import Manifest, Verification

    return Manifest(
        kind="clickhouse_snapshot",
        dataset=dataset,
        recovery_point_id=f"{captured_at:%Y%m%dT%H%M%SZ}-full",
        captured_at=captured_at,
        location=f"s3://{BUCKET}/clickhouse/{dataset}/",
        storage_class="STANDARD",
        verification=Verification(state="verified" if verified else "unverified", verified_at=captured_at),
    )


def _write(client: Any, manifest: Any) -> None:
    from support.catalog import ClientS3Hook

    from backup_pipelines.core.catalog import Catalog

    hook = ClientS3Hook(client)

    Catalog(hook, bucket=BUCKET).write(manifest)


# -- deadlines from config ----------------------------------------------------------------------


def test_data_interval_end_deadline_is_logical_date_plus_interval_plus_after(example_config) -> None:
    from airflow.sdk.definitions.deadline import DeadlineReference

    cfg = _cfg(example_config)
    [hourly] = alerts.deadline_alerts(cfg, "clickhouse_hourly_snapshot")
    assert hourly.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert hourly.interval == timedelta(hours=1, minutes=45)  # 1h interval, then 45m after its end
    assert hourly.callback.path == "backup_pipelines.monitor.alerts.sla_miss_callback"
    kwargs = hourly.callback.kwargs
    assert kwargs["recipients"] == ["oncall@example.com", "dba@example.com"]
    assert kwargs["datasets"] == [["clickhouse_snapshot", "analytics", 3600.0]]
    json.dumps(kwargs)  # it is stored in the serialized DAG: plain JSON only

    [monthly] = alerts.deadline_alerts(cfg, "monthly_deep_archive_export")
    assert monthly.interval == timedelta(days=31) + timedelta(days=1)  # never early in a short month

    # The UI shows "Must complete within <interval> of logical date (<name>)": the name is the
    # configured promise, and says whether the UI's figure is exact for the schedule.
    assert hourly.name == (
        "promise: 45m after the data interval's end; counted as 1h 45m from the logical date (exact)"
    )
    assert monthly.name.startswith("promise: 1d after the data interval's end; counted as 32d from")
    assert monthly.name.endswith("(late by up to the gap in shorter intervals)")


def test_queued_at_deadline_and_dags_without_an_entry(example_config) -> None:
    from airflow.sdk.definitions.deadline import DeadlineReference

    cfg = _cfg(example_config)
    [drill] = alerts.deadline_alerts(cfg, "dr_drill")
    assert drill.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert drill.interval == timedelta(hours=2)
    assert drill.name == "promise: 2h after the run was queued"
    assert {k for k, _, _ in drill.callback.kwargs["datasets"]} == {
        "clickhouse_snapshot",
        "emr_output",
        "kafka_archive",
        "deep_archive_export",
    }
    assert alerts.deadline_alerts(cfg, "clickhouse_restore") == []


def test_data_interval_end_on_a_manual_dag_is_a_config_error(example_config) -> None:
    cfg = _cfg(example_config, clickhouse_restore={"reference": "data_interval_end", "after": "1h"})
    with pytest.raises(ConfigError, match=r"deadlines\.clickhouse_restore\.reference.*use queued_at"):
        alerts.deadline_alerts(cfg, "clickhouse_restore")
    # an explicit schedule (a DAG outside the config sections) is honoured
    [alert] = alerts.deadline_alerts(cfg, "clickhouse_restore", schedule="*/15 * * * *")
    assert alert.interval == timedelta(minutes=75)


def test_longest_interval() -> None:
    assert alerts.longest_interval("*/15 * * * *") == timedelta(minutes=15)
    assert alerts.longest_interval("0 3 * * *") == timedelta(days=1)
    assert alerts.longest_interval("0 4 * * 1") == timedelta(days=7)
    assert alerts.longest_interval("0 5 1 * *") == timedelta(days=31)
    assert alerts.longest_interval("0 3 * * 1-5") == timedelta(days=3)


def test_deadline_survives_dag_serialization(example_config) -> None:
    """What the scheduler stores: reference, interval and callback path + kwargs."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    from backup_pipelines.dagkit import dag_kwargs

    cfg = _cfg(example_config)
    with DAG(
        **dag_kwargs("clickhouse_hourly_snapshot", schedule="0 * * * *", doc_md="d" * 50, cfg=cfg)
    ) as dag:
        EmptyOperator(task_id="noop")
    text = json.dumps(DagSerialization.to_dict(dag))
    assert "backup_pipelines.monitor.alerts.sla_miss_callback" in text
    assert "oncall@example.com" in text
    assert "DagRunLogicalDateDeadline" in text


# -- the SLA-miss callback, through Airflow's CallbackTrigger -------------------------------------


def _context(run_type: str = "scheduled", *, deadline: datetime, queued_at: datetime) -> dict[str, Any]:
    return {
        "dag_run": {
            "dag_run_id": f"{run_type}__2026-03-02T10:00:00+00:00",
            "dag_id": "clickhouse_hourly_snapshot",
            "logical_date": "2026-03-02T09:00:00Z",
            "data_interval_start": "2026-03-02T09:00:00Z",
            "data_interval_end": "2026-03-02T10:00:00Z",
            "queued_at": queued_at.isoformat(),
            "run_type": run_type,
            "state": "running",
        },
        "deadline": {"id": "0190-aaaa", "deadline_time": deadline},
    }


def _run_callback_trigger(kwargs: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    from airflow.triggers.callback import CallbackTrigger

    trigger = CallbackTrigger(
        callback_path="backup_pipelines.monitor.alerts.sla_miss_callback",
        callback_kwargs={**kwargs, "context": context},
    )

    async def _collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(_collect())


def test_sla_miss_email_names_dag_run_deadline_dataset_and_age(
    example_config, smtp_sink, catalog_s3, monkeypatch
) -> None:
    from backup_pipelines.core import clock

    now = datetime(2026, 3, 2, 10, 50, tzinfo=UTC)
    monkeypatch.setattr(clock, "utcnow", lambda: now)
    _write(catalog_s3, _manifest("analytics", now - timedelta(hours=2, minutes=5)))
    _write(catalog_s3, _manifest("analytics", now - timedelta(minutes=20), verified=False))  # not counted
    cfg = _cfg(example_config)
    [alert] = alerts.deadline_alerts(cfg, "clickhouse_hourly_snapshot")
    deadline = datetime(2026, 3, 2, 10, 45, tzinfo=UTC)

    events = _run_callback_trigger(
        alert.callback.kwargs, _context(deadline=deadline, queued_at=deadline - timedelta(minutes=45))
    )

    assert [e["state"] for e in events] == ["running", "success"], events
    [msg] = smtp_sink
    subject = msg["Subject"]
    run_id = "scheduled__2026-03-02T10:00:00+00:00"
    assert subject.startswith(f"[SLA MISS] clickhouse_hourly_snapshot run {run_id}")
    assert "2026-03-02 10:45:00 UTC" in subject
    assert msg["To"] == "oncall@example.com, dba@example.com"
    body = msg.get_body(("html",)).get_content()
    assert "clickhouse_snapshot/analytics" in body
    assert "20260302T084500Z-full" in body  # the newest *verified* point, not the unverified one
    assert "age 2h 5m" in body and "RPO BREACHED" in body
    assert "promise: 45m after the data interval" in body


def test_backfill_runs_are_suppressed(example_config, smtp_sink, catalog_s3) -> None:
    cfg = _cfg(example_config)
    [alert] = alerts.deadline_alerts(cfg, "clickhouse_hourly_snapshot")
    deadline = datetime(2026, 1, 5, 10, 45, tzinfo=UTC)
    events = _run_callback_trigger(
        alert.callback.kwargs, _context("backfill", deadline=deadline, queued_at=datetime.now(UTC))
    )
    assert events[-1]["state"] == "success"
    assert events[-1]["body"].startswith("suppressed: the run is a backfill")
    assert smtp_sink == []


def test_manual_rerun_of_an_old_interval_is_suppressed_but_a_late_manual_run_is_not(
    example_config, smtp_sink, catalog_s3
) -> None:
    cfg = _cfg(example_config)
    [alert] = alerts.deadline_alerts(cfg, "clickhouse_hourly_snapshot")
    deadline = datetime(2026, 3, 2, 10, 45, tzinfo=UTC)
    rerun = _context("manual", deadline=deadline, queued_at=deadline + timedelta(days=3))
    assert _run_callback_trigger(alert.callback.kwargs, rerun)[-1]["body"].startswith("suppressed")
    assert smtp_sink == []
    late = _context("manual", deadline=deadline, queued_at=deadline - timedelta(minutes=50))
    assert _run_callback_trigger(alert.callback.kwargs, late)[-1]["body"].startswith("sent")
    assert len(smtp_sink) == 1


def test_unreadable_catalog_still_sends_the_email(example_config, smtp_sink, catalog_s3) -> None:
    catalog_s3.delete_bucket(Bucket=BUCKET)
    cfg = _cfg(example_config)
    [alert] = alerts.deadline_alerts(cfg, "clickhouse_hourly_snapshot")
    deadline = datetime(2026, 3, 2, 10, 45, tzinfo=UTC)
    _run_callback_trigger(alert.callback.kwargs, _context(deadline=deadline, queued_at=deadline))
    [msg] = smtp_sink
    body = msg.get_body(("html",)).get_content()
    assert "age unknown" in body and "NoSuchBucket" in body


def test_smtp_down_fails_the_callback_visibly(example_config, catalog_s3, monkeypatch) -> None:
    from backup_pipelines.dev.processes import free_port

    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_UNIT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": free_port(),
                "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 2},
            }
        ),
    )
    cfg = _cfg(example_config)
    [alert] = alerts.deadline_alerts(cfg, "clickhouse_hourly_snapshot")
    deadline = datetime(2026, 3, 2, 10, 45, tzinfo=UTC)
    events = _run_callback_trigger(alert.callback.kwargs, _context(deadline=deadline, queued_at=deadline))
    assert events[-1]["state"] == "failed"  # the scheduler records the callback as failed


# -- failure emails -------------------------------------------------------------------------------


def test_failure_email_names_task_error_and_log_link(example_config, smtp_sink) -> None:
    from types import SimpleNamespace

    cfg = _cfg(example_config)
    [notifier] = alerts.failure_callbacks(cfg)
    ti = SimpleNamespace(
        dag_id="clickhouse_hourly_snapshot",
        task_id="backup",
        try_number=3,
        log_url="http://airflow.example.com/dags/clickhouse_hourly_snapshot/runs/r1/tasks/backup?try_number=3",
    )
    context = {
        "ti": ti,
        "run_id": "scheduled__2026-03-02T10:00:00+00:00",
        "logical_date": "2026-03-02T09:00:00+00:00",
        "exception": RuntimeError("BACKUP failed: <Code: 243> not enough space"),
    }
    notifier(context)
    [msg] = smtp_sink
    assert msg["Subject"] == (
        "[FAILED] clickhouse_hourly_snapshot.backup failed (run scheduled__2026-03-02T10:00:00+00:00, try 3)"
    )
    body = msg.get_body(("html",)).get_content()
    assert ti.log_url in body
    assert "not enough space" in body and "&lt;Code: 243&gt;" in body  # escaped, not raw HTML
