"""Recovery points as Airflow Assets: which outlet an event goes to, what its extra says, and the DAG
files' declarations (every task that writes recovery points has its dataset's asset or its alias)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from support.catalog import manifest

from backup_pipelines.core.assets import (
    EmitsRecoveryPoints,
    asset_uri,
    recovery_point_asset,
    recovery_points_alias,
)
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.core.manifest import ObjectEntry
from backup_pipelines.dagkit import node_id


class _Writer(EmitsRecoveryPoints):
    def __init__(self, outlets: list[Any]) -> None:
        self.outlets = outlets
        self.task_id = "write"


def _context() -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"outlet_events": OutletEventAccessors()}


POINT = manifest(
    "20270101T0100Z",
    dataset="ledger.eu",
    base="20270101T0000Z",
    storage_class="STANDARD",
    objects=[ObjectEntry(key="a", size=10), ObjectEntry(key="b", size=0)],
)


def test_a_declared_asset_gets_the_points_id_and_state() -> None:
    asset = recovery_point_asset("clickhouse_snapshot", "ledger.eu")
    assert (
        asset.uri == asset_uri("clickhouse_snapshot", "ledger.eu") == "backup://clickhouse_snapshot/ledger.eu"
    )
    context = _context()
    _Writer([asset]).emit_recovery_point(context, POINT)
    extra = context["outlet_events"][asset].extra
    assert extra["recovery_point_id"] == "20270101T0100Z" and extra["state"] == "verified"
    assert (extra["bytes"], extra["base"], extra["storage_class"]) == (10, "20270101T0000Z", "STANDARD")
    assert extra["manifest"].endswith("catalog/clickhouse_snapshot/ledger.eu/20270101T0100Z.json")


def test_through_the_alias_the_event_names_its_datasets_asset() -> None:
    alias = recovery_points_alias("clickhouse_snapshot")
    context = _context()
    _Writer([alias]).emit_recovery_point(context, POINT)
    (event,) = context["outlet_events"][alias].asset_alias_events
    assert event.dest_asset_key.uri == "backup://clickhouse_snapshot/ledger.eu"
    assert event.extra["recovery_point_id"] == "20270101T0100Z"


def test_a_task_without_the_outlet_fails_naming_what_to_declare() -> None:
    expected = (
        "write: wrote clickhouse_snapshot/ledger.eu/20270101T0100Z but declares neither outlet "
        "backup://clickhouse_snapshot/ledger.eu nor alias backup-clickhouse_snapshot"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        _Writer([recovery_point_asset("clickhouse_snapshot", "other")]).emit_recovery_point(_context(), POINT)


def test_every_task_that_writes_recovery_points_declares_its_outlets(dagbag: Any) -> None:
    from backup_pipelines.core.config import load_config

    cfg = load_config()
    writers = {
        ("clickhouse_hourly_snapshot", f"dataset_{d.name}.verify"): [
            recovery_point_asset("clickhouse_snapshot", d.name)
        ]
        for d in cfg.clickhouse_snapshots.datasets
    }
    for job in cfg.emr_archive.jobs:  # declared, not an alias: see dags/emr_daily_output_archive.py
        group = node_id("job", job.name)
        writers[("emr_daily_output_archive", f"{group}.archive")] = [
            recovery_point_asset("emr_output", job.name)
        ]
    writers[("kafka_weekly_glacier_archive", "write_manifest")] = [
        recovery_point_asset("kafka_archive", t.name) for t in cfg.kafka_archive.topics
    ]
    for export in cfg.deep_archive_exports.exports:  # declared too
        task_id = node_id("export", export.name)
        writers[("monthly_deep_archive_export", task_id)] = [
            recovery_point_asset("deep_archive_export", export.name)
        ]
    for (dag_id, task_id), outlets in writers.items():
        task = dagbag.dags[dag_id].get_task(task_id)
        assert isinstance(task, EmitsRecoveryPoints) or issubclass(task.operator_class, EmitsRecoveryPoints)
        assert list(task.outlets) == outlets, (dag_id, task_id, task.outlets)
