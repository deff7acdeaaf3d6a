"""``mode: s3_replication`` on the embedded stack: the rules merged into the source buckets, and the
checks of what arrived in the replica. moto stores replication rules but never replicates, so the
test copies the objects into the DR moto itself, as S3 Replication would (same keys, same bytes)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::111122223333:role/backup-pipelines-replication"


@pytest.fixture
def cfg(embedded_stack: Any, write_config: Any, example_config: dict[str, Any]) -> Any:
    from backup_pipelines.core.config import load_config

    raw = json.loads(json.dumps(example_config))
    raw["storage"].update({"backup_bucket": "srr-b", "archive_bucket": "srr-a"})
    raw["storage"]["replica"].update(
        {
            "backup_bucket": "srr-b-dr",
            "archive_bucket": "srr-a-dr",
            "mode": "s3_replication",
            "replication_role_arn": ROLE,
        }
    )
    raw["clickhouse_snapshots"]["datasets"] = []
    raw["emr_archive"]["jobs"] = []
    raw["deep_archive_exports"]["exports"] = []
    raw["kafka_archive"]["topics"] = [{"name": "srr-events", "objectives": {"rpo": "8d"}}]
    write_config(raw)
    embedded_stack.create_buckets("srr-b", "srr-a")
    embedded_stack.create_buckets("srr-b-dr", "srr-a-dr", region="dr")
    return load_config()


def _versioning(client: Any, *buckets: str) -> None:
    for bucket in buckets:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def test_rules_are_merged_by_id_keeping_foreign_rules_and_versioning_is_required(
    cfg: Any, embedded_stack: Any, s3: Any
) -> None:
    from backup_pipelines.core.errors import ConfigError
    from backup_pipelines.core.regions import region_hook
    from backup_pipelines.replica.rules import apply_replication_rules

    primary, dr = region_hook(cfg, "primary"), region_hook(cfg, "dr")
    with pytest.raises(ConfigError, match=r"s3://srr-\w+ \(source\) has versioning off"):
        apply_replication_rules(cfg, primary, dr)
    _versioning(s3, "srr-b", "srr-a")
    _versioning(embedded_stack.s3_client("dr"), "srr-b-dr", "srr-a-dr")
    foreign = {
        "ID": "analytics-team-copy",
        "Priority": 7,
        "Status": "Enabled",
        "Filter": {"Prefix": "team/"},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": "arn:aws:s3:::srr-b-dr"},
    }
    s3.put_bucket_replication(Bucket="srr-b", ReplicationConfiguration={"Role": ROLE, "Rules": [foreign]})

    first = {r.bucket: r for r in apply_replication_rules(cfg, primary, dr)}
    assert first["srr-b"].kept == ["analytics-team-copy"] and first["srr-b"].changed
    rules = s3.get_bucket_replication(Bucket="srr-b")["ReplicationConfiguration"]["Rules"]
    by_id = {r["ID"]: r for r in rules}
    # moto keeps IDs, priorities, status and destinations, not filters or RTC (the rules' content is
    # tested in tests/unit/replica/test_config_and_rules.py)
    assert by_id["analytics-team-copy"]["Priority"] == 7
    assert set(by_id) == {
        "analytics-team-copy",
        "backup-pipelines-dr-clickhouse_snapshots",
        "backup-pipelines-dr-dr_drill",
    }
    ours = by_id["backup-pipelines-dr-clickhouse_snapshots"]
    assert ours["Priority"] > 7 and ours["Destination"]["Bucket"] == "arn:aws:s3:::srr-b-dr"
    archive = s3.get_bucket_replication(Bucket="srr-a")["ReplicationConfiguration"]
    assert archive["Role"] == ROLE
    assert {r["Destination"]["Bucket"] for r in archive["Rules"]} == {"arn:aws:s3:::srr-a-dr"}
    assert len(archive["Rules"]) == 3  # emr, kafka, exports


def test_a_point_waits_until_s3_replicated_it_then_its_replica_is_checked(
    cfg: Any, embedded_stack: Any, s3: Any
) -> None:
    from support.catalog import manifest

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.errors import ReplicaError
    from backup_pipelines.core.manifest import ObjectEntry
    from backup_pipelines.core.regions import region_catalog
    from backup_pipelines.replica.service import ReplicaService

    def point(rp_id: str, body: bytes) -> Any:
        key = f"kafka/srr-events/{rp_id}/0.parquet"
        s3.put_object(Bucket="srr-a", Key=key, Body=body)
        entry = ObjectEntry(key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest())
        made = manifest(
            rp_id,
            kind="kafka_archive",
            dataset="srr-events",
            captured_at=datetime.now(UTC) - timedelta(hours=len(rp_id)),
            location=f"s3://srr-a/kafka/srr-events/{rp_id}/",
            objects=[entry],
        )
        Catalog.from_config(cfg).write(made)
        return key

    key = point("w1", b"\x00records\xff" * 100)
    waiting = ReplicaService.from_config(cfg).replicate()
    assert waiting.datasets[0].thawing == ["w1 (1 object(s) pending, e.g. kafka/srr-events/w1/0.parquet)"]
    assert region_catalog(cfg, "dr").list_points("kafka_archive", "srr-events").points == []

    dr_client = embedded_stack.s3_client("dr")
    dr_client.put_object(
        Bucket="srr-a-dr", Key=key, Body=b"\x00records\xff" * 100, ChecksumAlgorithm="SHA256"
    )
    done = ReplicaService.from_config(cfg).replicate()
    assert done.datasets[0].replicated == ["w1"] and done.objects_copied == 0  # S3 copied, we checked
    (replica,) = region_catalog(cfg, "dr").list_points("kafka_archive", "srr-events").points
    assert replica.replica is not None and replica.replica.mode == "s3_replication"
    assert replica.location == "s3://srr-a-dr/kafka/srr-events/w1/"

    bad = point("w22", b"good bytes")
    dr_client.put_object(Bucket="srr-a-dr", Key=bad, Body=b"bad bytes!", ChecksumAlgorithm="SHA256")
    with pytest.raises(
        ReplicaError, match=r"replica s3://srr-a-dr/kafka/srr-events/w22/0\.parquet .*SHA-256"
    ):
        ReplicaService.from_config(cfg).replicate()
