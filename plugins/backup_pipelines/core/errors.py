"""Every domain error of the package, in one place.

Errors a retry cannot fix (bad config, checksum mismatch, broken chain, lost offsets) derive from
``AirflowFailException`` so Airflow fails the task at once instead of burning its retries.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class BackupPipelinesError(AirflowException):
    """Base of every error raised by this package; retryable unless a subclass says otherwise."""


class PermanentBackupError(BackupPipelinesError, AirflowFailException):
    """Base of the errors a retry cannot fix."""


class ConfigError(PermanentBackupError):
    """The YAML config is missing, unreadable or invalid; the message names file and field."""


class ManifestError(PermanentBackupError):
    """A manifest in the catalog is corrupt, partial or of an unknown schema version."""


class RecoveryPointNotFoundError(PermanentBackupError):
    """No recovery point matches what was asked for (dataset, time, id)."""


class BrokenChainError(PermanentBackupError):
    """An incremental recovery point depends on a base that is missing or not usable."""


class ChecksumMismatchError(PermanentBackupError):
    """An object's bytes do not match the checksum recorded for it."""


class VerificationError(PermanentBackupError):
    """A recovery point failed a verification check (restore, row counts, CHECK TABLE, offsets)."""


class OffsetGapError(PermanentBackupError):
    """Kafka archives of a partition are not contiguous, or offsets were deleted before archiving."""


class LifecyclePolicyError(PermanentBackupError):
    """A lifecycle rule breaks S3's storage-class order or minimum storage durations."""


class UnsafeOperationError(PermanentBackupError):
    """A destructive action was asked for without its explicit confirmation flag."""


class BackupFailedError(BackupPipelinesError):
    """The engine reported a failed backup or restore; retryable (the next attempt starts clean)."""


class ArchiveCopyError(BackupPipelinesError):
    """An S3 archive copy, delete or lookup failed; retryable (copies are idempotent)."""


class SourceChangedError(PermanentBackupError):
    """A source object changed or vanished between listing and copying; archiving it would be a guess."""


class ObjectNotRestoredError(PermanentBackupError):
    """An object in GLACIER/DEEP_ARCHIVE was read before a restore made it readable."""


class MarkerTimeoutError(PermanentBackupError):
    """A job's success marker (or EMR step) did not appear in time; the message names job and date."""


class ExportSqlError(PermanentBackupError):
    """An export's SQL file is invalid or ClickHouse rejected it; the message names the file."""


class ExportReconciliationError(VerificationError):
    """An export's files do not match its query (row counts, schema, storage class or checksums)."""


class SourceNotFoundError(PermanentBackupError):
    """A database or table a dataset names does not exist on the ClickHouse server."""


class StorageUnreachableError(BackupPipelinesError):
    """The backup storage (S3) could not be reached; retryable, and nothing was written or deleted."""


class DrillInfrastructureError(BackupPipelinesError):
    """A DR-drill check could not run (engine or storage unreachable); retryable, the point is unchanged.

    ``result`` carries the dataset's finding so far (JSON) for the report.
    """

    result: dict[str, Any] | None = None


class ParamError(PermanentBackupError):
    """A manual run's params are unknown or invalid; the message names the param and what is allowed."""


class CatalogIndexError(BackupPipelinesError):
    """A catalog index could not be written (conditional writes kept losing); the manifests stand."""


class ReplicaError(BackupPipelinesError):
    """A recovery point could not be copied to, or checked in, the DR region (retried next run)."""
