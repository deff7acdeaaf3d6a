"""The catalog: one JSON manifest per recovery point, the single record of what can be restored.

Rules (DESIGN.md "The catalog"):

- A manifest is written *last*, after the data is complete: a recovery point without a manifest
  does not exist, so a crash mid-upload leaves only garbage for retention to sweep.
- Manifests are always STANDARD storage class, so the catalog is readable without a thaw.
- RPO is measured from the newest *verified* recovery point.
- A corrupt or partial manifest is reported with its key and reason and never used.

Layout: ``s3://<backup_bucket>/<catalog_prefix><kind>/<dataset>/<recovery_point_id>.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backup_pipelines.core.config import BackupConfig, DatasetKind, Encryption
from backup_pipelines.core.errors import BrokenChainError, ManifestError, RecoveryPointNotFoundError

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_STORAGE_CLASS = "STANDARD"
VerificationStateName = Literal["unverified", "verified", "failed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectEntry(_Model):
    """One stored object of a recovery point. Kafka archive files also carry their index fields."""

    key: str
    size: int = Field(ge=0)
    sha256: str | None = None
    checksum: str | None = Field(
        default=None, description="the engine's own checksum, when it wrote the file"
    )
    etag: str | None = None
    storage_class: str | None = None
    records: int | None = Field(default=None, ge=0)
    partition: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None


class OffsetRange(_Model):
    """Offsets ``[start_offset, end_offset)`` of one partition held by a Kafka archive."""

    topic: str
    partition: int = Field(ge=0)
    start_offset: int = Field(ge=0)
    end_offset: int = Field(ge=0)

    @property
    def count(self) -> int:
        return self.end_offset - self.start_offset


def redact_secrets(text: str | None) -> str | None:
    """Engine error text may quote a statement or a URL: mask known secrets before it is stored."""
    if not text:
        return text
    from airflow.sdk._shared.secrets_masker import redact

    return str(redact(text))


class Verification(_Model):
    state: VerificationStateName = "unverified"
    verified_at: datetime | None = None
    checks: list[str] = []
    detail: str | None = None

    @field_validator("detail")
    @classmethod
    def _redacted(cls, value: str | None) -> str | None:
        return redact_secrets(value)


class Manifest(_Model):
    """What a recovery point holds, where, how big, how it was checked, and what it depends on."""

    schema_version: int = SCHEMA_VERSION
    kind: DatasetKind
    dataset: str
    recovery_point_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-=]*$")
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    captured_at: datetime
    location: str
    storage_class: str
    objects: list[ObjectEntry] = []
    row_counts: dict[str, int] = {}
    message_count: int | None = None
    base: str | None = Field(default=None, description="recovery_point_id this one depends on")
    offsets: list[OffsetRange] = []
    software: dict[str, str] = {}
    producer: dict[str, str] = {}
    verification: Verification = Verification()
    details: dict[str, Any] = {}

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"schema_version {value} is not supported (this version reads {SCHEMA_VERSION})")
        return value

    @field_validator("captured_at", "interval_start", "interval_end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value

    @property
    def is_verified(self) -> bool:
        return self.verification.state == "verified"

    @property
    def size_bytes(self) -> int:
        return sum(obj.size for obj in self.objects)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes | str, source: str) -> Manifest:
        """Parse a manifest; any problem raises ``ManifestError`` naming ``source``."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(
                f"manifest {source} is not valid JSON (truncated or corrupt?): {exc}"
            ) from None
        if not isinstance(data, dict):
            raise ManifestError(f"manifest {source} is not a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
            raise ManifestError(f"manifest {source} is invalid: {problems}") from None


@dataclass(frozen=True)
class InvalidManifest:
    key: str
    reason: str


@dataclass
class Listing:
    """Valid recovery points of one dataset, oldest first, and the manifests that could not be used."""

    points: list[Manifest] = field(default_factory=list)
    invalid: list[InvalidManifest] = field(default_factory=list)

    def verified(self) -> list[Manifest]:
        return [p for p in self.points if p.is_verified]

    def by_id(self) -> dict[str, Manifest]:
        return {p.recovery_point_id: p for p in self.points}


def utcnow() -> datetime:
    """Wall clock for ``captured_at`` and ages; the one place tests shift time."""
    return datetime.now(UTC)


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3:// URL")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"{url!r} has no bucket")
    return bucket, key


class Catalog:
    """Reads and writes manifests in S3. All I/O goes through the given ``S3Hook``."""

    def __init__(
        self,
        s3_hook: S3Hook,
        *,
        bucket: str,
        prefix: str = "catalog/",
        encryption: Encryption | None = None,
    ) -> None:
        self.s3_hook = s3_hook
        self.bucket = bucket
        self.prefix = prefix
        self.encryption = encryption or Encryption()

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> Catalog:
        """The catalog of a config, reached through its AWS connection."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return cls(
            S3Hook(aws_conn_id=cfg.connections.aws),
            bucket=cfg.storage.backup_bucket,
            prefix=cfg.storage.catalog_prefix,
            encryption=cfg.storage.encryption,
        )

    @property
    def _client(self) -> Any:
        return self.s3_hook.get_conn()

    def key_for(self, kind: str, dataset: str, recovery_point_id: str) -> str:
        return f"{self.prefix}{kind}/{dataset}/{recovery_point_id}.json"

    def write(self, manifest: Manifest) -> str:
        """Store the manifest (STANDARD class, encrypted); call this only when the data is complete."""
        key = self.key_for(manifest.kind, manifest.dataset, manifest.recovery_point_id)
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=manifest.to_json(),
            ContentType="application/json",
            StorageClass=MANIFEST_STORAGE_CLASS,
            **self.encryption.s3_extra_args(),
        )
        log.info(
            "Catalog: wrote manifest s3://%s/%s (%s, %d objects, %d bytes, verification=%s)",
            self.bucket,
            key,
            manifest.kind,
            len(manifest.objects),
            manifest.size_bytes,
            manifest.verification.state,
        )
        return key

    def exists(self, kind: str, dataset: str, recovery_point_id: str) -> bool:
        return self.s3_hook.check_for_key(self.key_for(kind, dataset, recovery_point_id), self.bucket)

    def read(self, kind: str, dataset: str, recovery_point_id: str) -> Manifest:
        key = self.key_for(kind, dataset, recovery_point_id)
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            raise RecoveryPointNotFoundError(
                f"no recovery point {recovery_point_id!r} for {kind} dataset {dataset!r} "
                f"(s3://{self.bucket}/{key} does not exist)"
            ) from None
        return Manifest.from_json(body, f"s3://{self.bucket}/{key}")

    def get(self, kind: str, dataset: str, recovery_point_id: str) -> Manifest | None:
        try:
            return self.read(kind, dataset, recovery_point_id)
        except RecoveryPointNotFoundError:
            return None

    def _keys(self, prefix: str) -> Iterable[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def datasets(self, kind: str) -> list[str]:
        prefix = f"{self.prefix}{kind}/"
        names = {key[len(prefix) :].split("/", 1)[0] for key in self._keys(prefix)}
        return sorted(names)

    def list_points(self, kind: str, dataset: str) -> Listing:
        """Every recovery point of a dataset, oldest first; bad manifests are logged and set aside."""
        listing = Listing()
        for key in self._keys(f"{self.prefix}{kind}/{dataset}/"):
            if not key.endswith(".json"):
                continue
            source = f"s3://{self.bucket}/{key}"
            try:
                body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                manifest = Manifest.from_json(body, source)
                if (manifest.kind, manifest.dataset) != (kind, dataset) or key != self.key_for(
                    kind, dataset, manifest.recovery_point_id
                ):
                    raise ManifestError(
                        f"manifest {source} says it is {manifest.kind}/{manifest.dataset}/"
                        f"{manifest.recovery_point_id}, which does not match its key"
                    )
            except ManifestError as exc:
                log.warning("Catalog: skipping unusable manifest: %s", exc)
                listing.invalid.append(InvalidManifest(key=key, reason=str(exc)))
                continue
            listing.points.append(manifest)
        listing.points.sort(key=lambda m: (m.captured_at, m.recovery_point_id))
        return listing

    def latest_verified(
        self, kind: str, dataset: str, *, at_or_before: datetime | None = None
    ) -> Manifest | None:
        """The newest verified recovery point, optionally captured at or before a given time."""
        candidates = [
            p
            for p in self.list_points(kind, dataset).verified()
            if at_or_before is None or p.captured_at <= at_or_before
        ]
        return candidates[-1] if candidates else None

    def chain(self, manifest: Manifest, *, listing: Listing | None = None) -> list[Manifest]:
        """The recovery points needed to restore ``manifest``: its full base first, itself last."""
        known = (listing or self.list_points(manifest.kind, manifest.dataset)).by_id()
        chain = [manifest]
        seen = {manifest.recovery_point_id}
        while chain[0].base:
            base_id = chain[0].base
            if base_id in seen:
                raise BrokenChainError(f"recovery point {manifest.recovery_point_id}: base loop at {base_id}")
            base = known.get(base_id)
            if base is None:
                raise BrokenChainError(
                    f"recovery point {chain[0].recovery_point_id} of {manifest.kind} dataset "
                    f"{manifest.dataset!r} depends on base {base_id}, whose manifest is missing or unusable"
                )
            if base.verification.state == "failed":
                raise BrokenChainError(
                    f"recovery point {chain[0].recovery_point_id} depends on base {base_id}, "
                    f"which failed verification: {base.verification.detail}"
                )
            seen.add(base_id)
            chain.insert(0, base)
        return chain

    def mark_verification(
        self,
        manifest: Manifest,
        *,
        state: VerificationStateName,
        checks: list[str],
        detail: str | None = None,
        at: datetime | None = None,
    ) -> Manifest:
        updated = manifest.model_copy(
            update={
                "verification": Verification(
                    state=state, verified_at=at or utcnow(), checks=checks, detail=detail
                )
            }
        )
        self.write(updated)
        return updated

    def delete(self, manifest: Manifest) -> None:
        """Remove a manifest; callers delete the data first so a crash never orphans live data."""
        key = self.key_for(manifest.kind, manifest.dataset, manifest.recovery_point_id)
        self._client.delete_object(Bucket=self.bucket, Key=key)
        log.info("Catalog: deleted manifest s3://%s/%s", self.bucket, key)


def age_of_newest_verified(
    catalog: Catalog, kind: str, dataset: str, *, now: datetime | None = None
) -> float | None:
    """Seconds since the newest verified point of a dataset was captured, or None when there is none."""
    newest = catalog.latest_verified(kind, dataset)
    if newest is None:
        return None
    return ((now or utcnow()) - newest.captured_at).total_seconds()
