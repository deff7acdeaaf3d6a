"""A pipeline run records its recovery points as Airflow asset events (dag.test on the embedded stack):
the EMR archive (a mapped task, through its kind's alias) emits one event per job on the job's asset,
with the point's id and state, and a DAG scheduled on that asset is queued by it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from support.services import unique_name

from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

JOBS = ("geo-enrich", "ranker_v2")


@pytest.fixture
def emr_jobs(embedded_stack: Any, example_config: dict[str, Any], write_config: Any) -> str:
    bucket = unique_name("assets").replace("_", "-")
    embedded_stack.create_buckets(bucket)
    example_config["emr_archive"]["jobs"] = [
        {"name": job, "source": f"s3://{bucket}/{job}/dt={{{{ ds }}}}/", "sensor_timeout": "3s"}
        for job in JOBS
    ]
    example_config["emr_archive"]["poke_interval"] = "1s"
    example_config["deadlines"].pop("emr_daily_output_archive", None)  # see tests/e2e/emr/test_dag.py
    write_config(example_config)
    return bucket


def _dag(path: str, dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def test_each_archived_job_is_an_asset_event_with_its_point(emr_jobs: str, s3: Any, tmp_path: Any) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from backup_pipelines import PROJECT_ROOT
    from backup_pipelines.dev.sample_data import seed_emr_outputs

    day = date(2026, 2, 17) + timedelta(days=hash(emr_jobs) % 300)  # a day no other test archives
    for job in JOBS:
        seed_emr_outputs(s3, bucket=emr_jobs, job=job, day=day, files=2, rows_per_file=20)
    # A downstream DAG scheduled on one job's asset, as README "Backups page" shows.
    consumer = tmp_path / "consumer.py"
    consumer.write_text(
        "from airflow.sdk import DAG\n"
        "from airflow.providers.standard.operators.empty import EmptyOperator\n"
        "from backup_pipelines.core.assets import recovery_point_asset\n"
        "with DAG('after_geo_enrich', schedule=recovery_point_asset('emr_output', 'geo-enrich')):\n"
        "    EmptyOperator(task_id='use_it')\n"
    )
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()

    sync_bag_to_db(DagBag(dag_folder=str(consumer)), "dags-folder", None)  # what the dag processor does
    from airflow.models.dag import DagModel

    with create_session() as session:
        session.get(DagModel, "after_geo_enrich").is_paused = False

    run = run_dag_in_process(
        _dag(str(PROJECT_ROOT / "dags" / "emr_daily_output_archive.py"), "emr_daily_output_archive"),
        logical_date=datetime(day.year, day.month, day.day, 3, tzinfo=UTC) + timedelta(days=1),
    )
    assert run.state == "success", run.state
    with create_session() as session:
        for job in JOBS:
            events = session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == f"backup://emr_output/{job}", AssetEvent.source_run_id == run.run_id)
            ).all()
            assert len(events) == 1, (job, events)
            extra = events[0].extra
            assert extra["recovery_point_id"] == f"dt={day.isoformat()}" and extra["state"] == "verified", (
                extra
            )
            assert extra["bytes"] > 0 and extra["manifest"].endswith(
                f"emr_output/{job}/dt={day.isoformat()}.json"
            )
            assert events[0].source_task_id == f"job_{job.replace('-', '_')}.archive"
        # The run queued the downstream DAG (it runs once the scheduler sees the queue).
        from airflow.models.asset import AssetDagRunQueue

        queued = session.scalars(
            select(AssetModel.uri)
            .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetDagRunQueue.target_dag_id == "after_geo_enrich")
        ).all()
        assert queued == ["backup://emr_output/geo-enrich"], queued
