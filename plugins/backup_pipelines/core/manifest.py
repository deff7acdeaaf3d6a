"""The manifest: what one recovery point holds, where, how big, how it was checked, what it needs.

Pure models (pydantic) and their JSON form; the catalog (``core.catalog``) stores them in S3. The
schema is the catalog's contract with every version of this package that reads it: unknown keys
are refused, and ``schema_version`` must be one this version reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backup_pipelines.core.chains import ChainState, resolve
from backup_pipelines.core.errors import ManifestError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.replica import ReplicaRecord

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
    replica: ReplicaRecord | None = Field(default=None, description="its copy in the DR region, as checked there")

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
        """Its own verification passed (its chain may still be broken: see ``core.chains``)."""
        return self.verification.state == "verified"

    @property
    def own_state(self) -> str:
        return self.verification.state

    @property
    def own_detail(self) -> str | None:
        return self.verification.detail

    @property
    def size_bytes(self) -> int:
        return sum(obj.size for obj in self.objects)

    @property
    def label(self) -> str:
        """``<kind>/<dataset>/<id>``: how logs, errors and reports name a point."""
        return f"{self.kind}/{self.dataset}/{self.recovery_point_id}"

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
    """Valid recovery points of one dataset, oldest first, and the manifests that could not be used.

    ``verified()`` is what a restore may use: points whose *effective* state is verified (they and
    their whole chain verified, see ``core.chains``).
    """

    points: list[Manifest] = field(default_factory=list)
    invalid: list[InvalidManifest] = field(default_factory=list)
    _states: dict[str, ChainState] | None = field(default=None, repr=False, compare=False)

    def states(self) -> dict[str, ChainState]:
        if self._states is None:
            self._states = resolve(self.points)
        return self._states

    def state_of(self, recovery_point_id: str) -> ChainState:
        return self.states()[recovery_point_id]

    def verified(self) -> list[Manifest]:
        states = self.states()
        return [p for p in self.points if states[p.recovery_point_id].usable]

    def by_id(self) -> dict[str, Manifest]:
        return {p.recovery_point_id: p for p in self.points}
