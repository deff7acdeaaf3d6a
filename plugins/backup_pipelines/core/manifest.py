"""The manifest: what one recovery point holds, where, how big, how it was checked, what it needs.

Pure models (pydantic) and their JSON form; the catalog (``core.catalog``) stores them in S3. The
schema is the catalog's contract with every version of this package that reads it: unknown keys
are refused, and ``schema_version`` must be one this version reads.

Schema 2 stores a point's object list in a file of its own (``objects_file``, with
``object_count`` and ``total_bytes`` in the manifest), read only by what needs the objects
(verify, restore, the drill); ``core.manifest_store`` writes and reads both. Schema 1 manifests
(objects inside) are read as they are. In memory a manifest read through the catalog always has
its objects; ``summary()`` is the stored form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backup_pipelines.core.chains import ChainState, resolve
from backup_pipelines.core.errors import ManifestError
from backup_pipelines.core.index import IndexEntry
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.replica import ReplicaRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
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
    replica: ReplicaRecord | None = Field(
        default=None, description="its copy in the DR region, as checked there"
    )
    objects_file: str | None = Field(default=None, description="schema 2: the object list's file")
    object_count: int | None = Field(default=None, ge=0)
    total_bytes: int | None = Field(default=None, ge=0)

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value not in READABLE_SCHEMAS:
            readable = ", ".join(str(v) for v in READABLE_SCHEMAS)
            raise ValueError(f"schema_version {value} is not supported (this version reads {readable})")
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
        if not self.objects and self.total_bytes is not None:
            return self.total_bytes
        return sum(obj.size for obj in self.objects)

    @property
    def object_total(self) -> int:
        """How many objects the point holds (loaded or, in a stored summary, counted)."""
        return len(self.objects) if self.objects or self.object_count is None else self.object_count

    def summary(self, *, objects_file: str | None) -> Manifest:
        """The stored form (schema 2): no object list, its file, count and total size instead."""
        return self.model_copy(
            update={
                "schema_version": SCHEMA_VERSION,
                "objects": [],
                "objects_file": objects_file,
                "object_count": self.object_total,
                "total_bytes": self.size_bytes,
            }
        )

    def with_objects(self, objects: list[ObjectEntry]) -> Manifest:
        """The in-memory form of a stored summary: its objects loaded."""
        return self.model_copy(
            update={"objects": objects, "objects_file": None, "object_count": None, "total_bytes": None}
        )

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


class Listing:
    """The recovery points of one dataset, oldest first, and the manifests that could not be used.

    ``entries`` are the points' index summaries (``core.index``): the hot paths decide on them, and
    effective states (``states()``, ``verified()``: a point and its whole chain verified, see
    ``core.chains``) are resolved from them without reading a manifest. A whole manifest is read
    only when asked for: ``manifest(id)`` for one, ``points`` for all (the old cost, for callers
    that need every point's objects). A listing built from manifests holds them all already.
    """

    def __init__(
        self,
        points: Sequence[Manifest] | None = None,
        invalid: Iterable[InvalidManifest] = (),
        *,
        entries: Sequence[IndexEntry] | None = None,
        loader: Callable[[list[str]], dict[str, Manifest]] | None = None,
        resolved: bool = False,
    ) -> None:
        self.invalid = list(invalid)
        self._manifests = {p.recovery_point_id: p for p in points or []}
        self._loader = loader
        if entries is None:
            entries = [IndexEntry.of(p, etag=None, revision=0) for p in points or []]
        self.entries = list(entries)
        self._entry_by_id = {e.recovery_point_id: e for e in self.entries}
        self._states: dict[str, ChainState] | None = None
        if resolved:  # some points of a dataset (an index head): their states as the index resolved them
            self._states = {e.recovery_point_id: e.chain_state for e in self.entries}

    @property
    def points(self) -> list[Manifest]:
        """Every point's whole manifest (read now when the listing came from the index)."""
        self._load([e.recovery_point_id for e in self.entries])
        return [
            self._manifests[e.recovery_point_id]
            for e in self.entries
            if e.recovery_point_id in self._manifests
        ]

    def _load(self, ids: list[str]) -> None:
        missing = [i for i in ids if i not in self._manifests]
        if missing and self._loader is not None:
            self._manifests.update(self._loader(missing))

    def manifest(self, recovery_point_id: str) -> Manifest:
        """One point's whole manifest (read once, then kept); ``KeyError`` when it cannot be read."""
        self._load([recovery_point_id])
        return self._manifests[recovery_point_id]

    def preload(self, recovery_point_ids: Iterable[str]) -> None:
        """Read these points' whole manifests in one batch (in parallel), for ``manifest`` to serve."""
        self._load(list(recovery_point_ids))

    def entry(self, recovery_point_id: str) -> IndexEntry | None:
        return self._entry_by_id.get(recovery_point_id)

    def states(self) -> dict[str, ChainState]:
        if self._states is None:
            self._states = resolve(self.entries)
        return self._states

    def state_of(self, recovery_point_id: str) -> ChainState:
        return self.states()[recovery_point_id]

    def failed_with(self, recovery_point_id: str) -> int:
        """How many points failed through this one (it broke their chain)."""
        entry = self.entry(recovery_point_id)
        if entry is not None and entry.failed_with is not None:
            return entry.failed_with
        return sum(
            1
            for point_id, state in self.states().items()
            if state.broken_member == recovery_point_id and point_id != recovery_point_id
        )

    def verified_entries(self) -> list[IndexEntry]:
        states = self.states()
        return [e for e in self.entries if states[e.recovery_point_id].usable]

    def verified(self) -> list[Manifest]:
        """Whole manifests of the points whose effective state is verified (reads only those)."""
        ids = [e.recovery_point_id for e in self.verified_entries()]
        self._load(ids)
        return [self._manifests[i] for i in ids if i in self._manifests]

    def by_id(self) -> dict[str, Manifest]:
        return {p.recovery_point_id: p for p in self.points}
