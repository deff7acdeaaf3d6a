"""The DR drill's ClickHouse check against the embedded stack: a real chain in S3, restored by chDB.

Each test builds a full + incremental snapshot chain with ``support.clickhouse`` (the way the
hourly snapshot DAG does), writes the manifests to the catalog, and runs the drill's operators
(plan, ClickHouse drill, clean-up) the way a DAG run would. What is asserted is what a user sees:
the checks and the objects they name, the rows restored, the catalog's verification state, and
that no scratch database is left in ``system.databases``.
"""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import load_config
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.drill.results import DatasetResult

pytestmark = pytest.mark.integration

BUCKET = "analytics-backups"
KIND = "clickhouse_snapshot"


class _TaskInstance:
    """Stands in for the running task instance: only XCom pushes are needed by these operators."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))  # what XCom would store: JSON


def _context(run_id: str) -> Any:
    return {
        "dag_run": SimpleNamespace(run_id=run_id, run_after=None, conf={}),
        "ti": _TaskInstance(),
        "params": {"pick": "latest"},
    }


def _config(example: dict[str, Any], dataset: str, database: str, **connections: str) -> dict[str, Any]:
    cfg = dict(example)
    cfg["deadlines"] = {}
    cfg["connections"] = {**example.get("connections", {}), **connections}
    cfg["clickhouse_snapshots"] = {
        **example["clickhouse_snapshots"],
        "poll_interval": "1s",
        "datasets": [{"name": dataset, "database": database, "tables": ["t", "u"]}],
    }
    cfg["emr_archive"] = {**example["emr_archive"], "jobs": []}
    cfg["kafka_archive"] = {**example["kafka_archive"], "topics": []}
    cfg["deep_archive_exports"] = {**example["deep_archive_exports"], "exports": []}
    cfg["dr_drill"] = {**example["dr_drill"], "clickhouse_restore_timeout": "60s"}
    return cfg


def _chain(client: Any, dataset: str, database: str) -> list[Manifest]:
    """Full backup (1000 + 10 rows), 500 more rows, incremental backup; manifests in the catalog."""
    from support.clickhouse import backup_chain, service

    client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    client.command(f"CREATE DATABASE {database}")
    client.command(f"CREATE TABLE {database}.t (x UInt64, s String) ENGINE = MergeTree ORDER BY x")
    client.command(f"CREATE TABLE {database}.u (x UInt64) ENGINE = MergeTree ORDER BY x")
    client.insert(f"{database}.t", [(i, "a") for i in range(1000)], column_names=["x", "s"])
    client.insert(f"{database}.u", [(i,) for i in range(10)], column_names=["x"])

    def _more(n: int) -> None:
        if n:
            client.insert(f"{database}.t", [(i, "b") for i in range(1000, 1500)], column_names=["x", "s"])

    return backup_chain(
        service(),
        dataset=dataset,
        database=database,
        tables=["t", "u"],
        rp_ids=["20260101T0100Z", "20260101T0200Z"],
        before_each=_more,
        newest_minutes_ago=10,
    )


def _drill(dataset: str, run_id: str) -> tuple[DatasetResult, dict[str, Any]]:
    from backup_pipelines.drill.operators import ClickHouseDrillOperator, DrillPlanOperator

    context = _context(run_id)
    plan = DrillPlanOperator(task_id="plan").execute(context)
    operator = ClickHouseDrillOperator(task_id=f"drill_{dataset}", kind=KIND, dataset=dataset, plan=plan)
    return DatasetResult.model_validate(operator.execute(context)), plan


def _databases(client: Any, prefix: str) -> list[str]:
    rows = client.query(
        "SELECT name FROM system.databases WHERE startsWith(name, {p:String})", parameters={"p": prefix}
    ).result_rows
    return [r[0] for r in rows]


def _point(dataset: str, rp: str = "20260101T0200Z") -> Manifest:
    return Catalog.from_config(load_config()).read(KIND, dataset, rp)


@pytest.fixture
def chdrill(
    embedded_stack: Any,
    clickhouse_client: Any,
    write_config: Any,
    example_config: dict[str, Any],
    request: Any,
) -> dict[str, Any]:
    name = request.node.name.split("[")[0].removeprefix("test_")[:24]
    dataset, database = f"drl_{name}", f"src_{name}"
    write_config(_config(example_config, dataset, database))
    return {"dataset": dataset, "database": database, "chain": _chain(clickhouse_client, dataset, database)}


def test_healthy_chain_restores_with_manifest_row_counts_and_marks_the_point_verified(
    chdrill: dict[str, Any], clickhouse_client: Any
) -> None:
    result, plan = _drill(chdrill["dataset"], "manual__healthy")
    assert result.recovery_point_id == "20260101T0200Z"
    assert result.passed, result.failures()
    by_name: dict[str, list[Any]] = {}
    for check in result.checks:
        by_name.setdefault(check.name, []).append(check)
    assert [c.status for c in by_name["clickhouse.chain_complete"]] == ["passed"]
    assert "20260101T0100Z <- 20260101T0200Z" in by_name["clickhouse.chain_complete"][0].detail
    rows = {c.object.rsplit(".", 1)[1]: c.detail for c in by_name["clickhouse.row_count"]}
    assert rows["t"].startswith("1500 row(s) restored") and "says 1500" in rows["t"]
    assert rows["u"].startswith("10 row(s) restored") and "says 10" in rows["u"]
    assert {c.status for c in by_name["clickhouse.check_table"]} == {"passed"}
    assert len(by_name["clickhouse.check_table"]) == 2
    assert result.rto_seconds is not None and 0 < result.rto_seconds < result.rto_objective_seconds
    assert result.bytes_restored == sum(m.size_bytes for m in chdrill["chain"])
    point = _point(chdrill["dataset"])
    assert point.verification.state == "verified"
    assert "clickhouse.row_count" in point.verification.checks
    # Its base, never verified on its own, is proven by the chain's restore.
    base = Catalog.from_config(load_config()).read(KIND, chdrill["dataset"], "20260101T0100Z")
    assert base.verification.state == "verified" and base.verification.checks == ["chain_restored"]
    # Verified just now: the achieved RPO is the age of this point (captured 20 minutes ago).
    assert result.rpo_seconds is not None and 19 * 60 < result.rpo_seconds < 25 * 60
    assert _databases(clickhouse_client, "drill_" + plan["drill_id"]) == []


def test_deleted_base_object_fails_naming_object_and_point(
    chdrill: dict[str, Any], clickhouse_client: Any, s3: Any
) -> None:
    base = chdrill["chain"][0]
    victim = next(o.key for o in base.objects if o.key.endswith("/data.bin"))
    s3.delete_object(Bucket=BUCKET, Key=victim)
    result, plan = _drill(chdrill["dataset"], "manual__deleted_object")
    assert not result.passed
    failed = [c for c in result.checks if c.status == "failed"]
    assert [c.name for c in failed] == ["clickhouse.chain_complete"]
    assert failed[0].object == f"s3://{BUCKET}/{victim}"
    assert "chain member 20260101T0100Z" in failed[0].detail and "missing" in failed[0].detail
    # The restore never started: the chain was known to be broken.
    assert not any(c.name == "clickhouse.restore" for c in result.checks)
    point = _point(chdrill["dataset"])
    assert point.verification.state == "failed" and victim in (point.verification.detail or "")
    # The member that lost the object is failed too, not only the point drilled.
    member = Catalog.from_config(load_config()).read(KIND, chdrill["dataset"], "20260101T0100Z")
    assert member.verification.state == "failed" and victim in (member.verification.detail or "")
    assert _databases(clickhouse_client, "drill_" + plan["drill_id"]) == []


def test_deleted_base_manifest_fails_naming_the_missing_recovery_point(
    chdrill: dict[str, Any], clickhouse_client: Any
) -> None:
    catalog = Catalog.from_config(load_config())
    catalog.delete(chdrill["chain"][0])
    result, plan = _drill(chdrill["dataset"], "manual__deleted_manifest")
    # The increment's chain is broken (effective state failed): the drill does not pick it, and says why.
    (check,) = result.checks
    assert check.name == "pick_recovery_point" and check.status == "failed"
    assert "20260101T0200Z: depends on base 20260101T0100Z, whose manifest is missing" in check.detail
    state = catalog.list_points(KIND, chdrill["dataset"]).state_of("20260101T0200Z")
    assert state.state == "failed" and state.broken_member == "20260101T0100Z"
    assert catalog.latest_verified(KIND, chdrill["dataset"]) is None
    assert _databases(clickhouse_client, "drill_" + plan["drill_id"]) == []


def test_corrupted_base_part_fails_in_the_engine_and_marks_the_point_failed(
    chdrill: dict[str, Any], clickhouse_client: Any, s3: Any
) -> None:
    """Same size, other bytes, and a manifest that records the new ETag (bit rot S3's listing cannot
    see): the presence check passes, ClickHouse's own checksums catch it in the restore."""
    base = chdrill["chain"][0]
    victim = next(o.key for o in base.objects if o.key.endswith("/t/all_1_1_0/data.bin"))
    data = bytearray(s3.get_object(Bucket=BUCKET, Key=victim)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    etag = s3.put_object(Bucket=BUCKET, Key=victim, Body=bytes(data))["ETag"].strip('"')
    catalog = Catalog.from_config(load_config())
    stored = catalog.read(KIND, chdrill["dataset"], base.recovery_point_id)
    objects = [o.model_copy(update={"etag": etag}) if o.key == victim else o for o in stored.objects]
    catalog.write(stored.model_copy(update={"objects": objects}))
    result, plan = _drill(chdrill["dataset"], "manual__corrupted_part")
    assert not result.passed
    assert any(c.name == "clickhouse.chain_complete" and c.status == "passed" for c in result.checks)
    failed = [c for c in result.checks if c.status == "failed"]
    assert failed and {c.name for c in failed} <= {
        "clickhouse.restore",
        "clickhouse.row_count",
        "clickhouse.check_table",
    }, result.checks
    assert any(c.object and c.object.endswith(".t") for c in failed), failed  # the damaged table
    assert not any(c.status == "error" for c in result.checks)
    assert _point(chdrill["dataset"]).verification.state == "failed"
    assert _databases(clickhouse_client, "drill_" + plan["drill_id"]) == []


def test_replaced_base_object_of_the_same_size_fails_the_chain_check_by_its_etag(
    chdrill: dict[str, Any], clickhouse_client: Any, s3: Any
) -> None:
    """Same size, other bytes: the listing's ETag differs from the manifest's, so the drill names the
    object and fails the member holding it before any restore."""
    base = chdrill["chain"][0]
    victim = next(o.key for o in base.objects if o.key.endswith("/t/all_1_1_0/data.bin"))
    data = bytearray(s3.get_object(Bucket=BUCKET, Key=victim)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=victim, Body=bytes(data))
    result, plan = _drill(chdrill["dataset"], "manual__replaced_part")
    failed = [c for c in result.checks if c.status == "failed"]
    assert [c.name for c in failed] == ["clickhouse.chain_complete"]
    assert failed[0].object == f"s3://{BUCKET}/{victim}" and "replaced" in failed[0].detail
    assert not any(c.name == "clickhouse.restore" for c in result.checks)
    member = Catalog.from_config(load_config()).read(KIND, chdrill["dataset"], base.recovery_point_id)
    assert member.verification.state == "failed" and victim in (member.verification.detail or "")
    assert _databases(clickhouse_client, "drill_" + plan["drill_id"]) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_clickhouse_is_an_error_that_leaves_the_point_unchanged(
    chdrill: dict[str, Any],
    example_config: dict[str, Any],
    write_config: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outage is not a finding about the data: the task raises (retried), the point keeps its state."""
    from backup_pipelines.core.errors import DrillInfrastructureError
    from backup_pipelines.drill.operators import ClickHouseDrillOperator, DrillPlanOperator

    catalog = Catalog.from_config(load_config())
    catalog.mark_verification(chdrill["chain"][1], state="verified", checks=["snapshot"], detail="hourly")
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DOWN",
        json.dumps({"conn_type": "clickhouse", "host": "127.0.0.1", "port": _closed_port()}),
    )
    write_config(
        _config(example_config, chdrill["dataset"], chdrill["database"], clickhouse="clickhouse_down")
    )
    context = _context("manual__outage")
    plan = DrillPlanOperator(task_id="plan").execute(context)
    operator = ClickHouseDrillOperator(
        task_id="drill", kind=KIND, dataset=chdrill["dataset"], plan=plan, retries=2
    )
    with pytest.raises(DrillInfrastructureError, match="RESTORE of 20260101T0200Z"):
        operator.execute(context)
    recorded = DatasetResult.model_validate(context["ti"].xcom["drill_result"])
    assert not recorded.passed
    (error,) = [c for c in recorded.checks if c.status == "error"]
    assert error.name == "clickhouse.restore" and error.detail.startswith("check could not run")
    assert not any(c.status == "failed" for c in recorded.checks)
    point = _point(chdrill["dataset"])
    assert point.verification.state == "verified" and point.verification.detail == "hourly"


def test_cleanup_drops_this_runs_scratch_databases_only(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from backup_pipelines.drill.operators import DrillCleanupOperator
    from backup_pipelines.drill.plan import drill_id_for

    write_config(_config(example_config, "drl_cleanup", "src_cleanup"))
    mine, other = "drill_" + drill_id_for("manual__cleanup"), "drill_" + drill_id_for("manual__other")
    for database in (f"{mine}_a", f"{mine}_b", f"{other}_a"):
        clickhouse_client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    checks = DrillCleanupOperator(task_id="cleanup").execute(_context("manual__cleanup"))
    database_check = next(c for c in checks if c["object"].startswith("database"))
    assert database_check["status"] == "passed" and "removed 2 database(s)" in database_check["detail"]
    assert _databases(clickhouse_client, mine) == []
    assert _databases(clickhouse_client, other) == [f"{other}_a"]
    clickhouse_client.command(f"DROP DATABASE {other}_a SYNC")
