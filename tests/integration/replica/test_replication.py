"""The DR replication pass on the embedded stack: two moto servers are two regions.

Real ClickHouse chains (chDB -> the primary moto), real archive objects with SHA-256s in their
manifests, real drill reports; the pass copies them to the DR moto (streamed: two endpoints), and
the DR region alone restores the chain (its ``.backup`` files name the replica's bases).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CH = "clickhouse_snapshot"


@pytest.fixture
def cfg(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> Any:
    from backup_pipelines.core.config import load_config

    raw = json.loads(json.dumps(example_config))
    raw["storage"].update({"backup_bucket": "rep-it-backups", "archive_bucket": "rep-it-archive"})
    raw["storage"]["replica"].update(
        {"backup_bucket": "rep-it-backups-dr", "archive_bucket": "rep-it-archive-dr", "concurrency": 3}
    )
    raw["clickhouse_snapshots"].update(
        {
            "prefix": "ch-rep/",
            "s3_credentials": "connection",
            "datasets": [
                {"name": "rep_it", "database": "rep_it", "tables": ["*"], "objectives": {"rpo": "1h"}}
            ],
        }
    )
    raw["kafka_archive"]["topics"] = [{"name": "rep-events", "objectives": {"rpo": "8d"}}]
    raw["emr_archive"]["jobs"] = []
    raw["deep_archive_exports"]["exports"] = []
    write_config(raw)
    embedded_stack.create_buckets("rep-it-backups", "rep-it-archive")
    embedded_stack.create_buckets("rep-it-backups-dr", "rep-it-archive-dr", region="dr")
    clickhouse_client.command("DROP DATABASE IF EXISTS rep_it")
    clickhouse_client.command("CREATE DATABASE rep_it")
    clickhouse_client.command(
        "CREATE TABLE rep_it.events (id UInt64, payload String, day Date) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(day) ORDER BY id"
    )
    return load_config()


def _chain(cfg: Any, clickhouse_client: Any) -> list[Any]:
    """Full + two increments over many partitions, with empty and binary payloads; all verified."""
    from support.clickhouse import backup_chain, service

    def insert(n: int) -> None:
        clickhouse_client.command(
            f"INSERT INTO rep_it.events SELECT number + {n * 1000}, "
            "if(number % 7 = 0, '', unhex(hex(cityHash64(number)))), "
            f"toDate('2024-01-01') + (number * 37 % 400) FROM numbers({200 + n * 50})"
        )

    snapshots = service(cfg)
    chain = backup_chain(
        snapshots,
        dataset="rep_it",
        database="rep_it",
        tables=["events"],
        rp_ids=["p0", "p1", "p2"],
        before_each=insert,
    )
    return [snapshots.catalog.mark_verification(m, state="verified", checks=["test"]) for m in chain]


def _archive_point(cfg: Any, s3: Any, rp_id: str, payloads: list[bytes], *, days_ago: int) -> Any:
    """A Kafka-archive-like point: objects in the archive bucket (GLACIER), SHA-256s in the manifest."""
    from support.catalog import manifest

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.manifest import ObjectEntry

    entries = []
    for n, body in enumerate(payloads):
        key = f"kafka/rep-events/{rp_id}/part-{n:03d}.parquet"
        s3.put_object(Bucket=cfg.storage.archive_bucket, Key=key, Body=body, StorageClass="GLACIER")
        entries.append(
            ObjectEntry(
                key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest(), storage_class="GLACIER"
            )
        )
    point = manifest(
        rp_id,
        kind="kafka_archive",
        dataset="rep-events",
        captured_at=datetime.now(UTC) - timedelta(days=days_ago),
        location=f"s3://{cfg.storage.archive_bucket}/kafka/rep-events/{rp_id}/",
        storage_class="GLACIER",
        objects=entries,
    )
    Catalog.from_config(cfg).write(point)
    return point


def _dr_keys(embedded_stack: Any, bucket: str) -> list[str]:
    client = embedded_stack.s3_client("dr")
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_every_point_reaches_the_dr_region_checked_and_the_chain_restores_from_it_alone(
    cfg: Any, embedded_stack: Any, clickhouse_client: Any, s3: Any
) -> None:
    from backup_pipelines.clickhouse.params import RestoreParams
    from backup_pipelines.clickhouse.restore import RestoreService
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.regions import region_catalog
    from backup_pipelines.replica.service import ReplicaService

    chain = _chain(cfg, clickhouse_client)
    _archive_point(cfg, s3, "w1", [b"", b"\x00\xff" * 5000, b"plain"], days_ago=3)
    s3.put_object(
        Bucket=cfg.storage.backup_bucket, Key="reports/dr-drill/2026-11-28/run1/report.json", Body=b'{"ok":1}'
    )

    summary = ReplicaService.from_config(cfg).replicate()

    by_dataset = {d.dataset: d for d in summary.datasets}
    assert by_dataset["rep_it"].replicated == ["p0", "p1", "p2"]
    assert by_dataset["rep-events"].replicated == ["w1"]
    assert summary.reports_copied == 1
    dr = region_catalog(cfg, "dr")
    dr_points = dr.list_points(CH, "rep_it")
    assert [p.recovery_point_id for p in dr_points.verified()] == ["p0", "p1", "p2"]
    newest = dr_points.points[-1]
    assert newest.location == "s3://rep-it-backups-dr/ch-rep/rep_it/p2/"
    assert newest.replica is not None and newest.replica.primary_location == chain[-1].location
    recorded = Catalog.from_config(cfg).read(CH, "rep_it", "p2").replica
    assert recorded is not None and recorded.location == newest.location and recorded.region == "us-west-2"
    assert "base_url_rewritten" in newest.verification.checks
    assert all(o.sha256 and o.storage_class == "STANDARD_IA" for o in newest.objects)
    # every ClickHouse object arrived byte for byte, except the increments' .backup (its base URL)
    dr_client = embedded_stack.s3_client("dr")
    for obj in chain[0].objects:
        assert (
            dr_client.get_object(Bucket="rep-it-backups-dr", Key=obj.key)["Body"].read()
            == s3.get_object(Bucket="rep-it-backups", Key=obj.key)["Body"].read()
        )
    backup_file = dr_client.get_object(Bucket="rep-it-backups-dr", Key="ch-rep/rep_it/p2/.backup")[
        "Body"
    ].read()
    assert f"{embedded_stack.s3_dr_endpoint}/rep-it-backups-dr/ch-rep/rep_it/p1/".encode() in backup_file
    assert embedded_stack.s3_endpoint.encode() not in backup_file
    archive = dr.list_points("kafka_archive", "rep-events").points[0]
    assert archive.storage_class == "GLACIER" and archive.location.startswith("s3://rep-it-archive-dr/")
    cold = {"Bucket": "rep-it-archive-dr", "Key": "kafka/rep-events/w1/part-001.parquet"}
    assert dr_client.head_object(**cold)["StorageClass"] == "GLACIER"
    dr_client.restore_object(**cold, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}})
    assert dr_client.get_object(**cold)["Body"].read() == b"\x00\xff" * 5000
    assert (
        _dr_keys(embedded_stack, "rep-it-backups-dr").count("reports/dr-drill/2026-11-28/run1/report.json")
        == 1
    )

    # the primary's copy of the chain is gone: the DR region alone restores it, row for row
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="rep-it-backups", Prefix="ch-rep/")["Contents"]]
    s3.delete_objects(Bucket="rep-it-backups", Delete={"Objects": [{"Key": k} for k in keys]})
    restore = RestoreService.from_config(cfg, source="dr")  # clickhouse_restore's source: dr
    plan = restore.plan(RestoreParams(dataset="rep_it", target_database="rep_it_from_dr", source="dr"))
    assert plan.chain == ["p0", "p1", "p2"]
    result = restore.run(plan, tables_given=False)
    assert result["ok"], result
    assert result["rows"] == {"events": 200 + 250 + 300}
    same = clickhouse_client.query(
        "SELECT count() FROM rep_it.events AS a INNER JOIN rep_it_from_dr.events AS b "
        "ON a.id = b.id AND a.payload = b.payload AND a.day = b.day"
    ).result_rows[0][0]
    assert same == 750


def test_a_second_run_copies_nothing_and_a_damaged_primary_object_is_refused_by_name(
    cfg: Any, embedded_stack: Any, s3: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.errors import ReplicaError
    from backup_pipelines.core.regions import region_catalog
    from backup_pipelines.replica.service import ReplicaService

    _archive_point(cfg, s3, "v1", [b"a" * 100, b"b" * 10], days_ago=2)
    first = ReplicaService.from_config(cfg).replicate()
    assert first.objects_copied == 2
    before = _dr_keys(embedded_stack, "rep-it-archive-dr")

    again = ReplicaService.from_config(cfg).replicate()
    assert again.objects_copied == 0 and all(not d.replicated for d in again.datasets)
    assert _dr_keys(embedded_stack, "rep-it-archive-dr") == before

    damaged = _archive_point(cfg, s3, "v2", [b"c" * 64], days_ago=0)
    s3.put_object(
        Bucket="rep-it-archive",
        Key="kafka/rep-events/v2/part-000.parquet",
        Body=b"x" * 64,
        StorageClass="GLACIER",
    )
    with pytest.raises(ReplicaError, match=r"kafka_archive/rep-events: .*part-000\.parquet.*damaged"):
        ReplicaService.from_config(cfg).replicate()
    held = [
        p.recovery_point_id
        for p in region_catalog(cfg, "dr").list_points("kafka_archive", "rep-events").points
    ]
    assert "v1" in held and "v2" not in held
    assert "kafka/rep-events/v2/part-000.parquet" not in _dr_keys(embedded_stack, "rep-it-archive-dr")
    Catalog.from_config(cfg).delete(damaged)  # out of the way of the next test


def test_retention_in_step_the_primary_keeps_what_dr_lacks_and_dr_drops_what_the_primary_removed(
    cfg: Any, embedded_stack: Any, s3: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.regions import held_for_dr, region_catalog
    from backup_pipelines.replica.service import ReplicaService

    topic = "rep-events"
    old = _archive_point(cfg, s3, "r1", [b"old" * 10], days_ago=30)
    _archive_point(cfg, s3, "r2", [b"mid" * 10], days_ago=20)
    ReplicaService.from_config(cfg).replicate()
    newest = _archive_point(cfg, s3, "r3", [b"new" * 10], days_ago=5)
    primary = Catalog.from_config(cfg)
    held = held_for_dr(cfg, "kafka_archive", topic, primary.list_points("kafka_archive", topic))
    assert "r3" in held and "r1" not in held and "r2" not in held

    # primary retention removed r1 (data, then manifest): the next pass drops it from the DR region
    s3.delete_object(Bucket=cfg.storage.archive_bucket, Key=old.objects[0].key)
    primary.delete(old)
    summary = ReplicaService.from_config(cfg).replicate()
    events = next(d for d in summary.datasets if d.dataset == topic)
    assert events.dropped == ["r1"] and "r3" in events.replicated
    dr_ids = [
        p.recovery_point_id for p in region_catalog(cfg, "dr").list_points("kafka_archive", topic).points
    ]
    assert "r1" not in dr_ids and {"r2", "r3"} <= set(dr_ids)
    assert "kafka/rep-events/r1/part-000.parquet" not in _dr_keys(embedded_stack, "rep-it-archive-dr")
    assert newest.objects[0].key in _dr_keys(embedded_stack, "rep-it-archive-dr")
