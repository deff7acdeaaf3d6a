"""The dr_drill DAG end to end on the embedded stack: healthy backups pass, damaged ones fail loudly.

Recovery points are seeded the way the pipelines write them (archive files in GLACIER, manifests
in the catalog), then the whole DAG runs with ``dag.test()``. Every case checks what a user sees:
the run state, the report in S3 naming the object and the check, the email, the catalog's
verification state, and that no scratch topic or database is left behind.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_pipelines.dev.airflow import run_dag_in_process

pytestmark = pytest.mark.e2e

ARCHIVE_BUCKET = "analytics-archive"
BACKUP_BUCKET = "analytics-backups"
TOPIC = "drill-events"


def _config(example: dict[str, Any], **drill: Any) -> dict[str, Any]:
    cfg = dict(example)
    # Deadline alerts are the alerting issue's; dag.test() here checks the drill, not them.
    cfg["deadlines"] = {}
    cfg["clickhouse_snapshots"] = {**example["clickhouse_snapshots"], "datasets": []}
    cfg["emr_archive"] = {**example["emr_archive"], "jobs": []}
    cfg["deep_archive_exports"] = {**example["deep_archive_exports"], "exports": []}
    cfg["kafka_archive"] = {
        **example["kafka_archive"],
        "topics": [{"name": TOPIC, "objectives": {"rpo": "8d"}}],
    }
    cfg["dr_drill"] = {
        "schedule": "0 6 * * 6",
        "pick": "latest",
        "sample_objects": 10,
        "restore_tier": "Bulk",
        "restore_poll_interval": "1s",
        "replay_sample_messages": 50,
        **drill,
    }
    return cfg


def _seed_kafka_archive(s3: Any, tmp_path: Path, rp: str, captured_at: datetime) -> list[str]:
    """Two partitions, one GLACIER Parquet file each, and the manifest (written last)."""
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.manifest import Manifest, ObjectEntry, OffsetRange
    from backup_pipelines.kafka.parquet import ArchiveFile
    from backup_pipelines.kafka.writer import PartitionArchiveWriter

    prefix = f"kafka/{TOPIC}/{rp}/"
    objects, offsets, keys = [], [], []
    base_ms = int(captured_at.timestamp() * 1000) - 3_600_000
    for partition in (0, 1):
        files: list[ArchiveFile] = []
        writer = PartitionArchiveWriter(
            topic=TOPIC, partition=partition, on_file=files.append, spool_dir=tmp_path, row_group_rows=100
        )
        for offset in range(120):
            writer.add(
                offset,
                1,  # CreateTime, as every real producer sets
                base_ms + offset * 10,
                f"k{offset}".encode(),
                f'{{"p":{partition},"o":{offset}}}'.encode(),
                [("h", b"v")],
            )
        for f in writer.close():
            key = f"{prefix}{partition}/{f.name()}"
            s3.put_object(Bucket=ARCHIVE_BUCKET, Key=key, Body=f.path.read_bytes(), StorageClass="GLACIER")
            keys.append(key)
            objects.append(
                ObjectEntry(
                    key=key,
                    size=f.size,
                    sha256=f.sha256,
                    storage_class="GLACIER",
                    records=f.records,
                    partition=partition,
                    first_offset=f.first_offset,
                    last_offset=f.last_offset,
                )
            )
        offsets.append(OffsetRange(topic=TOPIC, partition=partition, start_offset=0, end_offset=120))
    Catalog.from_config(load_config()).write(
        Manifest(
            kind="kafka_archive",
            dataset=TOPIC,
            recovery_point_id=rp,
            captured_at=captured_at,
            location=f"s3://{ARCHIVE_BUCKET}/{prefix}",
            storage_class="GLACIER",
            objects=objects,
            offsets=offsets,
            message_count=240,
        )
    )
    return keys


def _clear(s3: Any) -> None:
    for bucket, prefix in (
        (BACKUP_BUCKET, "catalog/"),
        (BACKUP_BUCKET, "reports/"),
        (ARCHIVE_BUCKET, "kafka/"),
    ):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])


def _run_drill() -> tuple[str, dict[str, Any], str]:
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "dr_drill.py"))
    assert not bag.import_errors, bag.import_errors
    run = run_dag_in_process(bag.dags["dr_drill"])
    return str(run.state), {}, str(run.run_id)


def _report(s3: Any) -> tuple[dict[str, Any], str]:
    listing = s3.list_objects_v2(Bucket=BACKUP_BUCKET, Prefix="reports/dr-drill/")
    keys = sorted(o["Key"] for o in listing.get("Contents", []) if "/index." not in o["Key"])  # day index
    assert {k.rsplit("/", 1)[1] for k in keys} == {"report.json", "report.md", "report.html"}, keys
    prefix = keys[0].rsplit("/", 1)[0]
    report = json.loads(s3.get_object(Bucket=BACKUP_BUCKET, Key=f"{prefix}/report.json")["Body"].read())
    markdown = s3.get_object(Bucket=BACKUP_BUCKET, Key=f"{prefix}/report.md")["Body"].read().decode()
    return report, markdown


def _scratch_topics(stack: Any) -> list[str]:
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=10).topics
    return [t for t in topics if t.startswith("drill_")]


@pytest.fixture
def drill_env(
    embedded_stack: Any, s3: Any, write_config: Any, example_config: dict[str, Any], tmp_path: Path
):
    _clear(s3)
    write_config(_config(example_config))
    before = len(embedded_stack.mailbox())
    now = datetime.now(UTC)
    keys = _seed_kafka_archive(s3, tmp_path, "2026-w1", now - timedelta(hours=30))
    yield {"keys": keys, "mails_before": before, "stack": embedded_stack}
    _clear(s3)


def test_healthy_drill_passes_writes_the_report_and_verifies_the_point(
    drill_env: dict[str, Any], s3: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    state, _, run_id = _run_drill()
    assert state == "success"
    report, markdown = _report(s3)
    assert report["run_id"] == run_id and report["pick"] == "latest" and isinstance(report["seed"], int)
    (row,) = report["datasets"]
    assert row["recovery_point_id"] == "2026-w1"
    names = {c["name"] for c in row["checks"]}
    assert {
        "archive.restore_object",
        "archive.sha256",
        "kafka.offsets_contiguous",
        "kafka.replay_matches_archive",
    } <= names
    assert all(c["status"] == "passed" for c in row["checks"]), row["checks"]
    assert row["bytes_restored"] > 0 and 0 < row["rpo_seconds"] < 31 * 3600
    assert f"| kafka_archive/{TOPIC} | 2026-w1 (latest) |" in markdown and "| PASS |" in markdown
    # The GLACIER objects were really thawed through RestoreObject.
    head = s3.head_object(Bucket=ARCHIVE_BUCKET, Key=drill_env["keys"][0])
    assert head["StorageClass"] == "GLACIER" and 'ongoing-request="false"' in head.get("Restore", "")
    point = Catalog.from_config(load_config()).read("kafka_archive", TOPIC, "2026-w1")
    assert point.verification.state == "verified" and "archive.sha256" in point.verification.checks
    mails = drill_env["stack"].mailbox()[drill_env["mails_before"] :]
    assert any("DR drill" in str(m["Subject"]) and "PASSED" in str(m["Subject"]) for m in mails)
    assert _scratch_topics(drill_env["stack"]) == []
    # The first task (RecoveryPointFreshnessSensor) found no verified point and did not block.
    assert report["freshness_before"]["ok"] is False
    assert "RPO before the drill: NOT met" in markdown


def _assert_failed_naming(s3: Any, stack: Any, key: str, check: str) -> dict[str, Any]:
    state, _, _ = _run_drill()
    assert state == "failed"
    report, markdown = _report(s3)
    (row,) = report["datasets"]
    failed = [c for c in row["checks"] if c["status"] == "failed"]
    assert any(c["name"] == check and c["object"].endswith(key) for c in failed), failed
    assert key in markdown and check in markdown and "FAIL" in markdown
    assert _scratch_topics(stack) == []
    return report


def test_corrupted_archived_object_fails_the_drill_naming_object_and_check(
    drill_env: dict[str, Any], s3: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    key = drill_env["keys"][1]
    s3.restore_object(Bucket=ARCHIVE_BUCKET, Key=key, RestoreRequest={"Days": 1})
    data = bytearray(s3.get_object(Bucket=ARCHIVE_BUCKET, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3.put_object(Bucket=ARCHIVE_BUCKET, Key=key, Body=bytes(data), StorageClass="GLACIER")
    _assert_failed_naming(s3, drill_env["stack"], key, "archive.sha256")
    point = Catalog.from_config(load_config()).read("kafka_archive", TOPIC, "2026-w1")
    assert point.verification.state == "failed" and key in (point.verification.detail or "")
    mails = drill_env["stack"].mailbox()[drill_env["mails_before"] :]
    assert any("FAILED" in str(m["Subject"]) for m in mails)


def test_truncated_kafka_archive_fails_the_drill(drill_env: dict[str, Any], s3: Any) -> None:
    key = drill_env["keys"][0]
    s3.restore_object(Bucket=ARCHIVE_BUCKET, Key=key, RestoreRequest={"Days": 1})
    data = s3.get_object(Bucket=ARCHIVE_BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=ARCHIVE_BUCKET, Key=key, Body=data[: len(data) // 2], StorageClass="GLACIER")
    report = _assert_failed_naming(s3, drill_env["stack"], key, "kafka.offsets_contiguous")
    (row,) = report["datasets"]
    assert any(c["name"] == "archive.sha256" and c["status"] == "failed" for c in row["checks"])


# -- ClickHouse: a real snapshot chain restored by chDB -----------------------------------------------
CH_DATASET = "e2e_drill"
CH_DATABASE = "e2e_drill_src"


def _clickhouse_config(example: dict[str, Any]) -> dict[str, Any]:
    cfg = _config(example, clickhouse_restore_timeout="120s")
    cfg["kafka_archive"] = {**example["kafka_archive"], "topics": []}
    cfg["clickhouse_snapshots"] = {
        **example["clickhouse_snapshots"],
        "poll_interval": "1s",
        "datasets": [{"name": CH_DATASET, "database": CH_DATABASE, "tables": ["t"]}],
    }
    return cfg


def _seed_clickhouse_chain(client: Any) -> list[Any]:
    """A full and an incremental snapshot of one table, as the hourly DAG writes them (manifest last)."""
    from support.clickhouse import backup_chain, service

    client.command(f"DROP DATABASE IF EXISTS {CH_DATABASE} SYNC")
    client.command(f"CREATE DATABASE {CH_DATABASE}")
    client.command(f"CREATE TABLE {CH_DATABASE}.t (x UInt64) ENGINE = MergeTree ORDER BY x")

    def _insert(n: int) -> None:
        client.insert(f"{CH_DATABASE}.t", [(i,) for i in range(n * 700, (n + 1) * 700)], column_names=["x"])

    return backup_chain(
        service(),
        dataset=CH_DATASET,
        database=CH_DATABASE,
        tables=["t"],
        rp_ids=["20260105T0500Z", "20260105T0600Z"],
        before_each=_insert,
        minutes_apart=20,
    )


def _scratch_databases(client: Any) -> list[str]:
    rows = client.query("SELECT name FROM system.databases WHERE startsWith(name, 'drill_')").result_rows
    return [r[0] for r in rows]


@pytest.fixture
def ch_drill_env(
    embedded_stack: Any, clickhouse_client: Any, s3: Any, write_config: Any, example_config: dict[str, Any]
):
    _clear(s3)
    write_config(_clickhouse_config(example_config))
    before = len(embedded_stack.mailbox())
    chain = _seed_clickhouse_chain(clickhouse_client)
    yield {"chain": chain, "mails_before": before, "stack": embedded_stack}
    _clear(s3)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BACKUP_BUCKET, Prefix="clickhouse/"):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BACKUP_BUCKET, Key=obj["Key"])


def test_clickhouse_chain_drill_restores_counts_checks_and_verifies(
    ch_drill_env: dict[str, Any], s3: Any, clickhouse_client: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    state, _, _ = _run_drill()
    assert state == "success"
    report, markdown = _report(s3)
    (row,) = report["datasets"]
    assert row["kind"] == "clickhouse_snapshot" and row["recovery_point_id"] == "20260105T0600Z"
    statuses = {(c["name"], c["status"]) for c in row["checks"]}
    assert statuses == {
        ("clickhouse.chain_complete", "passed"),
        ("clickhouse.restore", "passed"),
        ("clickhouse.row_count", "passed"),
        ("clickhouse.check_table", "passed"),
    }, row["checks"]
    (count,) = [c for c in row["checks"] if c["name"] == "clickhouse.row_count"]
    assert count["detail"].startswith("1400 row(s) restored")
    assert 0 < row["rto_seconds"] < row["rto_objective_seconds"] and row["bytes_restored"] > 0
    assert 15 * 60 < row["rpo_seconds"] < row["rpo_objective_seconds"]
    assert f"| clickhouse_snapshot/{CH_DATASET} | 20260105T0600Z (latest) |" in markdown
    point = Catalog.from_config(load_config()).read("clickhouse_snapshot", CH_DATASET, "20260105T0600Z")
    assert point.verification.state == "verified"
    assert _scratch_databases(clickhouse_client) == []


def test_deleted_chain_member_fails_the_drill_naming_object_and_check(
    ch_drill_env: dict[str, Any], s3: Any, clickhouse_client: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    base = ch_drill_env["chain"][0]
    for obj in base.objects:  # the base backup's files are gone; its manifest is still there
        s3.delete_object(Bucket=BACKUP_BUCKET, Key=obj.key)
    key = next(o.key for o in base.objects if o.key.endswith("/.backup"))
    _, markdown = _report_after_failed_run(s3)
    assert "clickhouse.chain_complete" in markdown and key in markdown and "20260105T0500Z" in markdown
    point = Catalog.from_config(load_config()).read("clickhouse_snapshot", CH_DATASET, "20260105T0600Z")
    assert point.verification.state == "failed" and key in (point.verification.detail or "")
    mails = ch_drill_env["stack"].mailbox()[ch_drill_env["mails_before"] :]
    assert any("DR drill" in str(m["Subject"]) and "FAILED" in str(m["Subject"]) for m in mails)
    assert _scratch_databases(clickhouse_client) == []


def _report_after_failed_run(s3: Any) -> tuple[dict[str, Any], str]:
    state, _, _ = _run_drill()
    assert state == "failed"
    report, markdown = _report(s3)
    (row,) = report["datasets"]
    failed = [c for c in row["checks"] if c["status"] == "failed"]
    assert failed and all(c["name"] == "clickhouse.chain_complete" for c in failed), row["checks"]
    assert "| FAIL |" in markdown
    return report, markdown
