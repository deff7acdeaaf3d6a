"""``mode: s3_replication``: the S3 Replication rules the package owns on its source buckets.

One rule per data prefix the package writes (ClickHouse backups, drill reports; EMR copies, Kafka
archives, exports), each to the DR bucket under the same key, with Replication Time Control (15
minutes) and its metrics, the replica's storage class from ``storage.replica.storage_classes``
(applied to the class the pipeline writes) and, with SSE-KMS, the DR region's key. The catalog is
not replicated by S3: the DR catalog is written by the replication pass once a point's objects are
checked in the replica (a manifest there means "present and checked"). Rules are merged by ID with
the bucket's other rules, as the lifecycle rules are (``core.lifecycle.merge_rules``): the
package's rules are replaced, every other rule is kept as it is, and nothing is written when the
bucket already holds the same rules. Both buckets must have versioning on (S3 Replication needs
it); a bucket without is refused with its name, never switched on behind the owner's back.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.core.lifecycle import managed_prefixes, merge_rules
from backup_pipelines.core.replica import bucket_map, replica_section
from backup_pipelines.core.s3 import BackupS3Hook, error_code

log = logging.getLogger(__name__)

NOT_REPLICATED = ("storage.catalog_prefix", "rpo_monitor.status_key")
RTC_MINUTES = 15


def pipeline_storage_class(cfg: BackupConfig, setting: str) -> str:
    return {
        "emr_archive.prefix": cfg.emr_archive.storage_class,
        "kafka_archive.prefix": cfg.kafka_archive.storage_class,
        "deep_archive_exports.prefix": cfg.deep_archive_exports.storage_class,
    }.get(setting, "STANDARD")


def replication_rules(cfg: BackupConfig) -> dict[str, list[dict[str, Any]]]:
    """The replication rules the package owns, by source bucket (pure, no I/O)."""
    replica = replica_section(cfg)
    buckets = bucket_map(cfg)
    rules: dict[str, list[dict[str, Any]]] = {}
    for area in managed_prefixes(cfg):
        if area.setting in NOT_REPLICATED:
            continue
        destination: dict[str, Any] = {
            "Bucket": f"arn:aws:s3:::{buckets[area.bucket]}",
            "StorageClass": replica.storage_class_for(pipeline_storage_class(cfg, area.setting)),
            "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": RTC_MINUTES}},
            "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": RTC_MINUTES}},
        }
        rule: dict[str, Any] = {
            "ID": f"{replica.replication_rule_id}-{area.setting.split('.')[0]}",
            "Status": "Enabled",
            "Filter": {"Prefix": area.prefix},
            "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": destination,
        }
        if cfg.storage.encryption.mode == "SSE-KMS":
            rule["SourceSelectionCriteria"] = {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
        if replica.encryption.mode == "SSE-KMS":
            destination["EncryptionConfiguration"] = {"ReplicaKmsKeyID": replica.encryption.kms_key_id}
        rules.setdefault(area.bucket, []).append(rule)
    return rules


class RulesResult(BaseModel):
    bucket: str
    changed: bool
    added: list[str]
    replaced: list[str]
    kept: list[str]


def _existing(s3: BackupS3Hook, bucket: str) -> tuple[str | None, list[dict[str, Any]]]:
    try:
        conf = s3.client.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
    except ClientError as exc:
        if error_code(exc) == "ReplicationConfigurationNotFoundError":
            return None, []
        raise
    return conf.get("Role"), list(conf.get("Rules", []))


def _check_versioning(s3: BackupS3Hook, bucket: str, role: str) -> None:
    status = s3.client.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise ConfigError(
            f"s3://{bucket} ({role}) has versioning {status or 'off'}; S3 Replication needs it on "
            "(turn it on, with a lifecycle rule for noncurrent versions, then run again)"
        )


def apply_replication_rules(cfg: BackupConfig, primary: BackupS3Hook, dr: BackupS3Hook) -> list[RulesResult]:
    """Merge the package's replication rules into each source bucket's configuration."""
    replica = replica_section(cfg)
    role = replica.replication_role_arn
    results = []
    for bucket, owned in replication_rules(cfg).items():
        _check_versioning(primary, bucket, "source")
        _check_versioning(dr, bucket_map(cfg)[bucket], "DR destination")
        current_role, existing = _existing(primary, bucket)
        foreign = [r for r in existing if r.get("ID") not in {o["ID"] for o in owned}]
        if foreign and current_role not in (None, role):
            raise ConfigError(
                f"s3://{bucket} replicates as role {current_role} for rules "
                f"{[r.get('ID') for r in foreign]}; "
                f"a bucket has one replication role, storage.replica.replication_role_arn is {role}"
            )
        taken = [int(r.get("Priority", 0)) for r in foreign]
        for n, rule in enumerate(owned, start=max(taken, default=0) + 1):
            rule["Priority"] = n
        merged = merge_rules(existing, owned)
        if merged.changed or current_role != role:
            primary.client.put_bucket_replication(
                Bucket=bucket, ReplicationConfiguration={"Role": role, "Rules": merged.rules}
            )
            log.info(
                "Replication rules of s3://%s: added %s, replaced %s, kept %s",
                bucket,
                merged.added,
                merged.replaced,
                merged.kept,
            )
        results.append(
            RulesResult(
                bucket=bucket,
                changed=merged.changed or current_role != role,
                added=merged.added,
                replaced=merged.replaced,
                kept=merged.kept,
            )
        )
    return results
