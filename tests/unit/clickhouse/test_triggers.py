"""The deferrable wait on a server-side backup, run with a mocked ClickHouse client (chDB cannot defer)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import pytest

from backup_pipelines.clickhouse import triggers as trigger_module
from backup_pipelines.clickhouse.triggers import ClickHouseBackupTrigger


def _collect(trigger: ClickHouseBackupTrigger) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(run())


def _client_answering(*states: str) -> mock.Mock:
    answers = iter(states)
    client = mock.Mock()
    client.query.side_effect = lambda sql, parameters=None: mock.Mock(
        result_rows=[(parameters["id"], next(answers), "", 12, 3456, 4000, None, None)]
    )
    return client


def test_serialises_to_plain_json() -> None:
    trigger = ClickHouseBackupTrigger(
        clickhouse_conn_id="ch", backup_id="bp-1", poll_interval=2, timeout_at=9.0
    )
    path, kwargs = trigger.serialize()
    assert path == "backup_pipelines.clickhouse.triggers.ClickHouseBackupTrigger"
    assert kwargs == {"clickhouse_conn_id": "ch", "backup_id": "bp-1", "poll_interval": 2, "timeout_at": 9.0}


def test_polls_system_backups_until_the_backup_is_created(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client_answering("CREATING_BACKUP", "CREATING_BACKUP", "BACKUP_CREATED")
    monkeypatch.setattr(
        "backup_pipelines.clickhouse.engine.ClickHouseEngine.client", property(lambda self: client)
    )
    events = _collect(ClickHouseBackupTrigger(clickhouse_conn_id="ch", backup_id="bp-1", poll_interval=0))
    assert len(events) == 1
    assert events[0]["status"] == "BACKUP_CREATED" and events[0]["total_size"] == 3456
    assert events[0]["polls"] == 3
    sql = client.query.call_args.args[0]
    assert "FROM system.backups" in sql and client.query.call_args.kwargs["parameters"] == {"id": "bp-1"}


def test_failed_backup_and_timeout_and_errors_end_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client_answering("BACKUP_FAILED")
    monkeypatch.setattr(
        "backup_pipelines.clickhouse.engine.ClickHouseEngine.client", property(lambda self: client)
    )
    assert (
        _collect(ClickHouseBackupTrigger(clickhouse_conn_id="ch", backup_id="b"))[0]["status"]
        == "BACKUP_FAILED"
    )

    client = _client_answering("CREATING_BACKUP")
    monkeypatch.setattr(
        "backup_pipelines.clickhouse.engine.ClickHouseEngine.client", property(lambda self: client)
    )
    timed_out = _collect(ClickHouseBackupTrigger(clickhouse_conn_id="ch", backup_id="b", timeout_at=0.0))
    assert timed_out[0]["status"] == "timeout"

    def boom(*args: Any) -> Any:
        raise ConnectionError("server unreachable")

    monkeypatch.setattr(trigger_module, "fetch_status", boom)
    errored = _collect(ClickHouseBackupTrigger(clickhouse_conn_id="ch", backup_id="b"))
    assert errored[0]["status"] == "error" and "server unreachable" in errored[0]["error"]


def test_operator_defers_on_a_server_and_finishes_from_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a ClickHouse server (not chDB) the snapshot task starts the backup and defers."""
    from datetime import UTC, datetime

    from airflow.sdk.exceptions import TaskDeferred

    from backup_pipelines.clickhouse import operators as ops
    from backup_pipelines.clickhouse.snapshot import SnapshotService
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.errors import BackupFailedError
    from backup_pipelines.core.manifest import Listing

    hook = mock.Mock(is_embedded=False)
    hook.running_backup.return_value = None
    hook.resolve_tables.return_value = ["events", "users"]
    hook.start_backup.return_value = "bp-analytics-20261123T1400Z-ab12"
    hook.query_file.return_value = []  # no part is masked by a lightweight DELETE
    catalog = mock.Mock()
    catalog.get.return_value = None
    catalog.list_points.return_value = Listing()
    service = SnapshotService(load_config(), hook, catalog)
    service.store = mock.Mock()
    service.store.delete_location.return_value = 0
    monkeypatch.setattr(SnapshotService, "from_config", classmethod(lambda cls, cfg: service))

    op = ops.ClickHouseSnapshotOperator(task_id="snapshot", dataset="analytics")
    end = datetime(2026, 11, 23, 14, tzinfo=UTC)
    context: Any = {"data_interval_start": end.replace(hour=13), "data_interval_end": end}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, ClickHouseBackupTrigger)
    assert trigger.backup_id == "bp-analytics-20261123T1400Z-ab12"
    assert deferred.value.method_name == "execute_complete"
    plan = deferred.value.kwargs["plan"]
    assert (
        plan["rp_id"] == "20261123T1400Z"
        and plan["base_id"] is None
        and plan["tables"] == ["events", "users"]
    )
    assert hook.start_backup.call_args.kwargs["base_location"] is None  # first point: a full backup

    with pytest.raises(BackupFailedError, match="ended BACKUP_FAILED: S3 access denied"):
        op.execute_complete({}, {"status": "BACKUP_FAILED", "id": "bp-1", "error": "S3 access denied"}, plan)
