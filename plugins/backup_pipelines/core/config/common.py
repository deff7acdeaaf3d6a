"""Sections every pipeline shares: storage, connections, alerts, deadlines, defaults, objectives."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from backup_pipelines.core.config.types import BucketName, Duration, Prefix, StorageClass, Strict

#: The DR-region RPO's default margin over the RPO: a quarter of the RPO, at least 30 minutes.
DR_RPO_MIN_MARGIN = timedelta(minutes=30)


class Objectives(Strict):
    """Recovery objectives of one dataset: RPO is measured from its newest *verified* point.

    ``dr_rpo`` is the objective of the DR region's copy (its newest verified replica). Default: the
    RPO plus a quarter of it, at least 30 minutes: a point reaches the replica one replication run
    (every 15 minutes) plus its copy and check after it is verified, S3 Replication Time Control
    promises 15 minutes, and cold archives wait for a Bulk thaw before a copy (up to 12 h for
    GLACIER, 48 h for DEEP_ARCHIVE), which a quarter of their weekly or monthly RPO covers.
    """

    rpo: Duration
    rto: Duration = timedelta(minutes=30)
    dr_rpo: Duration | None = None

    @model_validator(mode="after")
    def _dr_rpo_not_below_rpo(self) -> Objectives:
        if self.dr_rpo is not None and self.dr_rpo < self.rpo:
            raise ValueError("dr_rpo is shorter than rpo: the replica is copied after the point is verified")
        return self

    @property
    def effective_dr_rpo(self) -> timedelta:
        return self.dr_rpo or self.rpo + max(DR_RPO_MIN_MARGIN, self.rpo / 4)


class Encryption(Strict):
    mode: Literal["SSE-S3", "SSE-KMS"] = "SSE-S3"
    kms_key_id: str | None = None

    @model_validator(mode="after")
    def _kms_needs_key(self) -> Encryption:
        if self.mode == "SSE-KMS" and not self.kms_key_id:
            raise ValueError("mode SSE-KMS needs kms_key_id (a KMS key id, ARN or alias)")
        return self

    def s3_extra_args(self) -> dict[str, str]:
        """The ExtraArgs every PutObject/CopyObject of this package sends."""
        if self.mode == "SSE-KMS":
            assert self.kms_key_id is not None
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}


class ObjectLockRetention(Strict):
    """Retention put on archived objects when the bucket has S3 Object Lock enabled."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    days: int = Field(gt=0)


class ReplicaStorage(Strict):
    """The DR region's copy of every recovery point (README "Regional outage").

    ``mode: copy`` copies each verified point (streamed between two endpoints, ``CopyObject`` when
    one endpoint serves both regions, as real S3 does across regions); ``mode: s3_replication`` puts
    S3 Replication rules (with Replication Time Control) on the source buckets and checks what
    arrived. Either way every object is checked in the replica and the DR catalog is written last.
    """

    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    backup_bucket: BucketName
    archive_bucket: BucketName
    aws_connection: str = "aws_dr"
    mode: Literal["copy", "s3_replication"] = "copy"
    encryption: Encryption = Encryption()
    storage_classes: dict[StorageClass, StorageClass] = {}
    schedule: str = "*/15 * * * *"
    concurrency: int = Field(default=8, ge=1, le=64)
    replication_role_arn: str | None = None
    replication_rule_id: str = Field(default="backup-pipelines-dr", pattern=r"^[A-Za-z0-9_.\-]{1,255}$")
    restore_tier: Literal["Expedited", "Standard", "Bulk"] = "Bulk"
    restore_days: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _replication_needs_role(self) -> ReplicaStorage:
        if self.mode == "s3_replication" and not (self.replication_role_arn or "").startswith("arn:"):
            raise ValueError("mode s3_replication needs replication_role_arn (the IAM role S3 replicates as)")
        return self

    def storage_class_for(self, primary_class: str | None) -> str:
        """The replica's class for an object stored in ``primary_class`` (mapped, else the same)."""
        source = primary_class or "STANDARD"
        return str(self.storage_classes.get(source, source))  # type: ignore[call-overload]


class Storage(Strict):
    backup_bucket: BucketName
    archive_bucket: BucketName
    catalog_prefix: Prefix = "catalog/"
    encryption: Encryption = Encryption()
    object_lock: ObjectLockRetention | None = None
    replica: ReplicaStorage | None = None

    @model_validator(mode="after")
    def _replica_buckets_are_other_buckets(self) -> Storage:
        if self.replica is None:
            return self
        primary = {self.backup_bucket, self.archive_bucket}
        for name in ("backup_bucket", "archive_bucket"):
            bucket = getattr(self.replica, name)
            if bucket in primary:
                raise ValueError(
                    f"replica.{name} {bucket!r} is a primary bucket; the DR region needs its own buckets"
                )
        if (self.backup_bucket == self.archive_bucket) != (
            self.replica.backup_bucket == self.replica.archive_bucket
        ):
            raise ValueError("replica buckets must be shared exactly when the primary buckets are")
        return self


class Connections(Strict):
    aws: str = "aws_default"
    clickhouse: str = "clickhouse_default"
    kafka: str = "kafka_default"
    smtp: str = "smtp_default"


class Alerts(Strict):
    recipients: list[str] = Field(min_length=1)
    from_email: str = "backup-pipelines@localhost"

    @field_validator("recipients")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.match(r"^[^@\s]+@[^@\s]+$", address):
                raise ValueError(f"{address!r} is not an email address")
        return value


class Deadline(Strict):
    """An SLA deadline: the run must finish within ``after`` of ``reference``."""

    reference: Literal["data_interval_end", "queued_at"] = "data_interval_end"
    after: Duration


class Defaults(Strict):
    owner: str = "data-platform"
    retries: int = Field(default=2, ge=2)
    retry_delay: Duration = timedelta(minutes=5)
    tags: list[str] = ["backup"]
