"""Sections every pipeline shares: storage, connections, alerts, deadlines, defaults, objectives."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from backup_pipelines.core.config.types import BucketName, Duration, Prefix, Strict


class Objectives(Strict):
    """Recovery objectives of one dataset: RPO is measured from its newest *verified* point."""

    rpo: Duration
    rto: Duration = timedelta(minutes=30)


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


class Storage(Strict):
    backup_bucket: BucketName
    archive_bucket: BucketName
    catalog_prefix: Prefix = "catalog/"
    encryption: Encryption = Encryption()
    object_lock: ObjectLockRetention | None = None


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
