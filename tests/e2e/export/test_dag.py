"""The monthly_deep_archive_export DAG end to end: a backfill of three months gives three exports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

# Months after the DAGs' start_date (2026-01-01) and far from the last-40-days window the demo and
# other tests seed into analytics.events, so the counts stay ours.
RUN_ENDS = [datetime(2026, m, 1, 5, tzinfo=UTC) for m in (3, 4, 5)]  # -> exports of 2026-02, -03, -04
MONTHS = ["month=2026-02", "month=2026-03", "month=2026-04"]


@pytest.fixture(scope="module")
def seeded_events(embedded_stack: Any, clickhouse_client: Any) -> None:
    from backup_pipelines.dev.sample_data import seed_clickhouse

    client = clickhouse_client
    client.command("CREATE DATABASE IF NOT EXISTS analytics")
    exists = client.query("EXISTS TABLE analytics.events").result_rows[0][0]
    if exists:
        count = client.query(
            "SELECT count() FROM analytics.events "
            "WHERE event_time >= '2026-02-01' AND event_time < '2026-05-01'"
        ).result_rows[0][0]
        if count:
            return
    seed_clickhouse(
        client, start=datetime(2026, 2, 1, tzinfo=UTC), end=datetime(2026, 4, 30, tzinfo=UTC), rows=6_000
    )


def _dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "monthly_deep_archive_export.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["monthly_deep_archive_export"]


def test_backfill_of_three_months_gives_three_verified_deep_archive_exports(
    seeded_events: None, clickhouse_client: Any, s3: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.export.month import Month

    # dag.test() of a DAG with a DeadlineAlert fails in Airflow 3.3 when the run succeeds
    # (DeadlineAlertModel.get_by_id is handed a dict); the deadline itself is not under test here.
    example_config["deadlines"].pop("monthly_deep_archive_export", None)
    write_config(example_config)
    cfg = load_config()
    dag = _dag()
    for end in RUN_ENDS:
        run = run_dag_in_process(dag, logical_date=end)
        assert str(run.state).endswith("success"), f"run for {end:%Y-%m} ended {run.state}"

    catalog = Catalog.from_config(cfg)
    bucket = cfg.storage.archive_bucket
    for export in cfg.deep_archive_exports.exports:
        points = catalog.list_points("deep_archive_export", export.name).points
        ids = sorted(p.recovery_point_id for p in points)
        assert [i for i in ids if i in MONTHS] == MONTHS
        sql = export.read_sql()
        for point in points:
            if point.recovery_point_id not in MONTHS:
                continue
            month = Month.parse(point.recovery_point_id.removeprefix("month="))
            expected = clickhouse_client.query(
                f"SELECT count() FROM ({sql}\n)", parameters=month.parameters()
            ).result_rows[0][0]
            assert expected > 0
            assert point.row_counts["rows"] == expected == sum(o.records or 0 for o in point.objects)
            assert point.is_verified and point.producer["dag_id"] == "monthly_deep_archive_export"
            prefix = f"{cfg.deep_archive_exports.prefix}{export.name}/{point.recovery_point_id}/"
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
            assert sorted(o["Key"] for o in listed) == sorted(o.key for o in point.objects)
            assert {o["StorageClass"] for o in listed} == {"DEEP_ARCHIVE"}
