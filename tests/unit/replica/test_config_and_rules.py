"""storage.replica and objectives.dr_rpo; the replication rules; the .backup base URL rewrite."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.config.common import Objectives
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.core.replica import replica_location, rewrite_base_url


def _cfg(example_config: dict[str, Any], **replica: Any) -> BackupConfig:
    raw = copy.deepcopy(example_config)
    raw["storage"]["replica"].update(replica)
    return BackupConfig.model_validate(raw)


def test_dr_rpo_defaults_to_the_rpo_plus_a_quarter_at_least_30_minutes() -> None:
    assert Objectives(rpo=timedelta(hours=1)).effective_dr_rpo == timedelta(hours=1, minutes=30)
    assert Objectives(rpo=timedelta(days=8)).effective_dr_rpo == timedelta(days=10)
    assert Objectives(rpo=timedelta(hours=1), dr_rpo=timedelta(hours=4)).effective_dr_rpo == timedelta(
        hours=4
    )
    with pytest.raises(ValueError, match="dr_rpo is shorter than rpo"):
        Objectives(rpo=timedelta(hours=2), dr_rpo=timedelta(hours=1))


def test_replica_config_is_refused_with_the_field_named(example_config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="replica.backup_bucket 'analytics-backups' is a primary bucket"):
        _cfg(example_config, backup_bucket="analytics-backups")
    with pytest.raises(ValueError, match="mode s3_replication needs replication_role_arn"):
        _cfg(example_config, mode="s3_replication")
    with pytest.raises(ValueError, match="region"):
        _cfg(example_config, region="mars")


def test_locations_map_bucket_for_bucket_and_keep_the_key(example_config: dict[str, Any]) -> None:
    cfg = _cfg(example_config)
    assert (
        replica_location(cfg, "s3://analytics-archive/kafka/events/w1/")
        == "s3://analytics-archive-dr/kafka/events/w1/"
    )
    with pytest.raises(ConfigError, match="s3://elsewhere/x is in no configured primary bucket"):
        replica_location(cfg, "s3://elsewhere/x")


def test_replication_rules_one_per_data_prefix_with_rtc_and_mapped_classes(
    example_config: dict[str, Any],
) -> None:
    from backup_pipelines.replica.rules import replication_rules

    cfg = _cfg(
        example_config,
        mode="s3_replication",
        replication_role_arn="arn:aws:iam::123456789012:role/bp-replication",
        storage_classes={"GLACIER": "DEEP_ARCHIVE"},
        encryption={"mode": "SSE-KMS", "kms_key_id": "arn:aws:kms:us-west-2:1:key/dr"},
    )
    rules = replication_rules(cfg)
    prefixes = {b: sorted(r["Filter"]["Prefix"] for r in rs) for b, rs in rules.items()}
    assert prefixes == {
        "analytics-backups": ["clickhouse/", "reports/dr-drill/"],
        "analytics-archive": ["emr/", "exports/", "kafka/"],
    }
    kafka = next(r for r in rules["analytics-archive"] if r["Filter"]["Prefix"] == "kafka/")
    assert kafka["Destination"]["Bucket"] == "arn:aws:s3:::analytics-archive-dr"
    assert kafka["Destination"]["StorageClass"] == "DEEP_ARCHIVE"
    assert kafka["Destination"]["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert kafka["Destination"]["EncryptionConfiguration"] == {
        "ReplicaKmsKeyID": "arn:aws:kms:us-west-2:1:key/dr"
    }


def test_the_backup_file_names_the_replicas_base_and_refuses_another_base() -> None:
    body = (
        b"<config><version>1</version><base_backup>S3('http://p:1/b/ch/d/r1/')</base_backup>"
        b"<contents/></config>"
    )
    out = rewrite_base_url(body, "http://p:1/b/ch/d/r1/", "http://q:2/b-dr/ch/d/r1/")
    assert out == body.replace(b"http://p:1/b/", b"http://q:2/b-dr/")
    assert rewrite_base_url(b"<config><contents/></config>", "x", "y") == b"<config><contents/></config>"
    with pytest.raises(ConfigError, match="names base .*r0"):
        rewrite_base_url(body.replace(b"r1", b"r0"), "http://p:1/b/ch/d/r1/", "http://q:2/b-dr/ch/d/r1/")
