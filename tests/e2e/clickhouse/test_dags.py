"""clickhouse_hourly_snapshot and clickhouse_restore end to end on the embedded stack (dag.test()).

Each test uses its own database and dataset names (``snap_e2e_<n>``) and its own config, so it
does not collide with the other engineers' tests on the session-wide chDB.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import recovery as rec

from backup_pipelines.core.runs import hour_floor
from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

KIND = "clickhouse_snapshot"


def _config(example_config: dict[str, Any], dataset: str, **section: Any) -> dict[str, Any]:
    cfg = json.loads(json.dumps(example_config))
    # dag.test() of a DAG with a DeadlineAlert fails in Airflow 3.3 once the run succeeds
    # (seen by the export tests too); deadlines are not under test here.
    cfg["deadlines"] = {}
    cfg["defaults"]["retry_delay"] = "1s"
    # No DR region: retention in step would keep every point the DR region has not received.
    cfg["storage"]["replica"] = None
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": "clickhouse-e2e/",
            "s3_credentials": "connection",
            "datasets": [{"name": dataset, "database": dataset, "tables": ["events", "users"]}],
            **section,
        }
    )
    return cfg


def _create_tables(client: Any, db: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.events (id UInt64, at DateTime('UTC'), payload String) "
        "ENGINE = MergeTree ORDER BY id"
    )
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.users (id UInt64, name String) ENGINE = MergeTree ORDER BY id"
    )


def _insert(client: Any, db: str, first: int, count: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    client.insert(
        f"{db}.events",
        [(i, now, f"event-{i}") for i in range(first, first + count)],
        column_names=["id", "at", "payload"],
    )
    client.insert(f"{db}.users", [(first, f"user-{first}")], column_names=["id", "name"])


def _states(run: Any) -> dict[str, str]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
        for ti in run.get_task_instances()
    }


def _conf(**values: Any) -> dict[str, Any]:
    """A full restore form: dag.test() in one process keeps params of an earlier run_conf."""
    return {
        "tables": [],
        "target_time": "",
        "target_database": "",
        "recovery_point_id": None,
        "confirm_overwrite": None,
        "dry_run": False,
        **values,
    }


def _ok(run: Any) -> None:
    assert str(run.state).endswith("success"), f"run {run.run_id} ended {run.state}: {_states(run)}"


@pytest.fixture
def chain_env(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> Any:
    def _make(n: int, **section: Any) -> tuple[str, Any]:
        from backup_pipelines.core.config import load_config

        db = f"snap_e2e_{n}"
        _create_tables(clickhouse_client, db)
        write_config(_config(example_config, db, **section))
        return db, load_config()

    return _make


def test_three_hourly_runs_build_a_chain_that_restores_every_row(
    chain_env: Any, clickhouse_client: Any, s3: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog

    db, cfg = chain_env(1)
    dags = rec.dags()
    hourly, restore = dags["clickhouse_hourly_snapshot"], dags["clickhouse_restore"]
    catalog = Catalog.from_config(cfg)
    last = hour_floor(datetime.now(UTC))
    slots = [last - timedelta(hours=h) for h in (2, 1, 0)]

    inserted = 0
    captured: list[int] = []
    for n, slot in enumerate(slots):
        _insert(clickhouse_client, db, inserted, 1000 * (n + 1))
        inserted += 1000 * (n + 1)
        captured.append(inserted)
        _ok(run_dag_in_process(hourly, logical_date=slot))

    points = catalog.list_points(KIND, db).points
    assert [p.recovery_point_id for p in points] == [s.strftime("%Y%m%dT%H%MZ") for s in slots]
    full, inc1, inc2 = points
    assert full.base is None and inc1.base == full.recovery_point_id and inc2.base == inc1.recovery_point_id
    assert all(p.is_verified for p in points)
    assert [p.row_counts["events"] for p in points] == captured
    assert inc2.details["backup_type"] == "incremental" and inc2.software["clickhouse"]
    assert inc1.details["new_data_bytes"] < inc1.details["logical_bytes"]  # the base part is not copied
    assert all(p.interval_end and p.captured_at > p.interval_end - timedelta(hours=1) for p in points)
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket="analytics-backups", Prefix=f"clickhouse-e2e/{db}/")["Contents"]
    ]
    assert any(k.endswith(f"{inc2.recovery_point_id}/.backup") for k in keys)

    # A re-run of a captured, verified slot is a no-op: same manifest, same capture time.
    _ok(run_dag_in_process(hourly, logical_date=slots[-1]))
    again = catalog.read(KIND, db, inc2.recovery_point_id)
    assert again.captured_at == inc2.captured_at and again.verification == inc2.verification

    # Restore of the last increment returns every row inserted before its capture.
    _ok(run_dag_in_process(restore, run_conf=_conf(dataset=db, target_database=f"{db}_latest")))
    assert clickhouse_client.query(f"SELECT count() FROM {db}_latest.events").result_rows[0][0] == captured[2]
    assert (
        clickhouse_client.query(f"SELECT max(id) FROM {db}_latest.events").result_rows[0][0]
        == captured[2] - 1
    )

    # A target time between two captures picks the older point: rows of the first two hours only.
    between = inc1.captured_at + (inc2.captured_at - inc1.captured_at) / 2
    conf = {
        "dataset": db,
        "target_time": between.isoformat(),
        "target_database": f"{db}_pit",
        "tables": ["events"],
    }
    _ok(run_dag_in_process(restore, run_conf=_conf(**conf)))
    assert clickhouse_client.query(f"SELECT count() FROM {db}_pit.events").result_rows[0][0] == captured[1]
    assert not clickhouse_client.query(f"EXISTS TABLE {db}_pit.users").result_rows[0][0]

    # Restoring over the live database without confirm_overwrite is refused, and changes nothing.
    before = clickhouse_client.query(f"SELECT count() FROM {db}.events").result_rows[0][0]
    run = run_dag_in_process(restore, run_conf=_conf(dataset=db, target_database=db))
    assert str(run.state).endswith("failed")
    assert clickhouse_client.query(f"SELECT count() FROM {db}.events").result_rows[0][0] == before

    # With confirm_overwrite, a corrupted live table is replaced by the restored one.
    clickhouse_client.command(f"TRUNCATE TABLE {db}.events")
    _ok(
        run_dag_in_process(
            restore, run_conf=_conf(dataset=db, target_database=db, confirm_overwrite=db, tables=["events"])
        )
    )
    assert clickhouse_client.query(f"SELECT count() FROM {db}.events").result_rows[0][0] == captured[2]

    # Dry run: a plan, nothing restored.
    _ok(run_dag_in_process(restore, run_conf=_conf(dataset=db, target_database=f"{db}_dry", dry_run=True)))
    assert not clickhouse_client.query(f"EXISTS DATABASE {db}_dry").result_rows[0][0]


def test_a_crashed_backup_leaves_no_manifest_and_the_next_run_recovers(
    chain_env: Any, clickhouse_client: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backup_pipelines.clickhouse.snapshot import SnapshotService
    from backup_pipelines.core.catalog import Catalog

    db, cfg = chain_env(2)
    hourly = rec.dags()["clickhouse_hourly_snapshot"]
    catalog = Catalog.from_config(cfg)
    slot = hour_floor(datetime.now(UTC)) - timedelta(hours=5)
    rp_id = slot.strftime("%Y%m%dT%H%MZ")
    _insert(clickhouse_client, db, 0, 500)

    def _crash(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("worker killed after BACKUP, before the manifest")

    with monkeypatch.context() as patch:
        patch.setattr(SnapshotService, "describe", _crash)
        run = run_dag_in_process(hourly, logical_date=slot)
    assert not str(run.state).endswith("success")
    assert catalog.get(KIND, db, rp_id) is None, "a crashed backup must leave no manifest"
    leftovers = s3.list_objects_v2(Bucket="analytics-backups", Prefix=f"clickhouse-e2e/{db}/{rp_id}/")
    assert leftovers.get("KeyCount", 0) > 0, "the crash should have left the backup's files behind"

    _ok(run_dag_in_process(hourly, logical_date=slot))
    point = catalog.read(KIND, db, rp_id)
    assert point.is_verified and point.row_counts["events"] == 500


def test_missing_table_and_unreachable_s3_fail_clearly_and_delete_nothing(
    chain_env: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any], capfd: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog

    db, cfg = chain_env(3)
    hourly = rec.dags()["clickhouse_hourly_snapshot"]
    catalog = Catalog.from_config(cfg)
    slot = hour_floor(datetime.now(UTC)) - timedelta(hours=1)
    _insert(clickhouse_client, db, 0, 100)
    _ok(run_dag_in_process(hourly, logical_date=slot))
    before = [p.recovery_point_id for p in catalog.list_points(KIND, db).points]
    assert len(before) == 1

    # A table the dataset names does not exist: the run fails naming it; the catalog is unchanged.
    bad = _config(example_config, db)
    bad["clickhouse_snapshots"]["datasets"][0]["tables"] = ["events", "no_such_table"]
    write_config(bad)
    hourly = rec.dags()["clickhouse_hourly_snapshot"]
    capfd.readouterr()
    run = run_dag_in_process(hourly, logical_date=slot + timedelta(hours=1))
    assert str(run.state).endswith("failed")
    assert f"table {db}.no_such_table does not exist" in "".join(capfd.readouterr())
    assert [p.recovery_point_id for p in catalog.list_points(KIND, db).points] == before

    # S3 unreachable: a clear failure, and no deletion anywhere.
    dead = _config(example_config, db)
    dead["connections"]["aws"] = "aws_dead"
    conn = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    conn["extra"]["endpoint_url"] = "http://127.0.0.1:9"
    conn["extra"]["config_kwargs"] = {"retries": {"max_attempts": 1}, "connect_timeout": 1}
    os.environ["AIRFLOW_CONN_AWS_DEAD"] = json.dumps(conn)
    try:
        write_config(dead)
        hourly = rec.dags()["clickhouse_hourly_snapshot"]
        run = run_dag_in_process(hourly, logical_date=slot + timedelta(hours=2))
    finally:
        del os.environ["AIRFLOW_CONN_AWS_DEAD"]
    assert str(run.state).endswith("failed")
    assert "backup bucket s3://analytics-backups is not reachable" in "".join(capfd.readouterr())
    assert [p.recovery_point_id for p in catalog.list_points(KIND, db).points] == before


def test_explicit_credentials_never_leak_to_logs_xcom_or_the_metadata_db(
    chain_env: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any], capfd: Any
) -> None:
    sentinel = "SENTINEL-s3cr3t-9f8e7d6c5b4a"
    conn = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    conn["password"] = sentinel  # moto accepts any secret; ClickHouse gets it as S3 credentials
    os.environ["AIRFLOW_CONN_AWS_SENTINEL"] = json.dumps(conn)
    try:
        db, _ = chain_env(4)
        cfg = _config(example_config, db)
        cfg["connections"]["aws"] = "aws_sentinel"
        write_config(cfg)
        dags = rec.dags()
        slot = hour_floor(datetime.now(UTC)) - timedelta(hours=3)
        _insert(clickhouse_client, db, 0, 200)
        _ok(run_dag_in_process(dags["clickhouse_hourly_snapshot"], logical_date=slot))
        _insert(clickhouse_client, db, 200, 200)
        _ok(run_dag_in_process(dags["clickhouse_hourly_snapshot"], logical_date=slot + timedelta(hours=1)))
        _ok(
            run_dag_in_process(
                dags["clickhouse_restore"], run_conf=_conf(dataset=db, target_database=f"{db}_r")
            )
        )
    finally:
        del os.environ["AIRFLOW_CONN_AWS_SENTINEL"]
    assert clickhouse_client.query(f"SELECT count() FROM {db}_r.events").result_rows[0][0] == 400

    out, err = capfd.readouterr()
    assert sentinel not in out and sentinel not in err
    log_dir = Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    hits = [p for p in log_dir.rglob("*") if p.is_file() and sentinel.encode() in p.read_bytes()]
    assert not hits, f"secret found in task logs: {hits}"
    db_path = Path(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
    for path in db_path.parent.glob(db_path.name + "*"):  # the DB file and any -wal / -journal
        assert sentinel.encode() not in path.read_bytes(), f"secret found in {path.name}"
    with sqlite3.connect(db_path) as metadata:
        for table in ("xcom", "rendered_task_instance_fields", "task_instance", "trigger"):
            rows = metadata.execute(f"SELECT * FROM {table}").fetchall()
            assert sentinel not in repr(rows), f"secret found in {table}"
        assert metadata.execute("SELECT count(*) FROM xcom").fetchone()[0] > 0


def _objects(s3: Any, bucket: str, location: str) -> list[str]:
    prefix = location.split(f"s3://{bucket}/", 1)[1]
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_retention_dry_run_from_the_form_deletes_nothing(
    chain_env: Any, clickhouse_client: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backup_pipelines.core import clock
    from backup_pipelines.core.catalog import Catalog

    db, cfg = chain_env(7, retention_days=1, min_verified=1, full_every="1h")
    hourly = rec.dags()["clickhouse_hourly_snapshot"]
    catalog = Catalog.from_config(cfg)
    bucket = cfg.storage.backup_bucket
    base = hour_floor(datetime.now(UTC)) - timedelta(hours=5)
    for n, slot in enumerate((base, base + timedelta(hours=1))):
        _insert(clickhouse_client, db, n * 100, 100)
        _ok(run_dag_in_process(hourly, logical_date=slot, run_conf={"retention_dry_run": False}))
    old = catalog.list_points(KIND, db).points[0]
    assert _objects(s3, bucket, old.location)

    # Three days later the first point is past retention_days and covered by newer verified ones.
    later = clock.utcnow() + timedelta(days=3)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    _insert(clickhouse_client, db, 1000, 100)
    slot = base + timedelta(hours=2)
    _ok(run_dag_in_process(hourly, logical_date=slot, run_conf={"retention_dry_run": True}))
    assert catalog.get(KIND, db, old.recovery_point_id) is not None, "the dry run deleted a manifest"
    assert _objects(s3, bucket, old.location), "the dry run deleted backup files"

    _ok(run_dag_in_process(hourly, logical_date=slot, run_conf={"retention_dry_run": False}))
    assert catalog.get(KIND, db, old.recovery_point_id) is None, "the real run should apply retention"


def test_retaking_a_failed_slot_keeps_the_failed_copy_and_refuses_under_increments(
    chain_env: Any, clickhouse_client: Any, s3: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog

    db, cfg = chain_env(8)
    hourly = rec.dags()["clickhouse_hourly_snapshot"]
    catalog = Catalog.from_config(cfg)
    bucket = cfg.storage.backup_bucket
    first = hour_floor(datetime.now(UTC)) - timedelta(hours=3)

    # A lone point that failed verification: a re-run captures the slot again in a new folder and
    # leaves the failed copy in place for retention.
    _insert(clickhouse_client, db, 0, 100)
    _ok(run_dag_in_process(hourly, logical_date=first, run_conf={"retention_dry_run": True}))
    failed = catalog.mark_verification(
        catalog.list_points(KIND, db).points[0], state="failed", checks=[], detail="drill: CHECK TABLE"
    )
    _ok(run_dag_in_process(hourly, logical_date=first, run_conf={"retention_dry_run": True}))
    retaken = catalog.read(KIND, db, failed.recovery_point_id)
    assert retaken.is_verified and ".retake-" in retaken.location
    assert _objects(s3, bucket, failed.location), "the failed copy was deleted"

    # An increment now depends on the retaken point; if that point fails, a re-run must refuse.
    _insert(clickhouse_client, db, 100, 100)
    _ok(
        run_dag_in_process(
            hourly, logical_date=first + timedelta(hours=1), run_conf={"retention_dry_run": True}
        )
    )
    increment = catalog.list_points(KIND, db).points[-1]
    assert increment.base == retaken.recovery_point_id
    catalog.mark_verification(retaken, state="failed", checks=[], detail="drill: CHECK TABLE")
    run = run_dag_in_process(hourly, logical_date=first, run_conf={"retention_dry_run": True})
    assert not str(run.state).endswith("success")
    kept = catalog.read(KIND, db, retaken.recovery_point_id)
    assert kept.verification.state == "failed" and kept.location == retaken.location
    assert _objects(s3, bucket, retaken.location), "a base that increments depend on was deleted"


def test_a_misspelt_param_through_conf_fails_the_restore_before_anything_is_created(
    chain_env: Any, clickhouse_client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    db, _cfg = chain_env(9)
    before = {r[0] for r in clickhouse_client.query("SELECT name FROM system.databases").result_rows}
    restore = rec.dags()["clickhouse_restore"]
    run = run_dag_in_process(
        restore, run_conf=_conf(dataset=db, target_database=None, target_tme="2000-01-01T00:00:00Z")
    )
    assert str(run.state).endswith("failed")
    out, err = capfd.readouterr()
    assert "unknown param(s) 'target_tme'; clickhouse_restore takes: confirm_overwrite, dataset" in out + err
    after = {r[0] for r in clickhouse_client.query("SELECT name FROM system.databases").result_rows}
    assert after == before
