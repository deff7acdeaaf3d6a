"""The catalog index: one small object per dataset with a summary entry per recovery point.

Manifests stay the truth; the index is what the hot paths read (the RPO monitor, base choice, the
drill's pick, retention, the Kafka archive's start offset), so their cost stops growing with a
dataset's history. It lives next to the manifests, at ``<catalog_prefix><kind>/<dataset>/_index.jsonl``.

Format: JSON Lines. The first line is the **head** (format, kind, dataset, counts and the newest
point whose effective state is verified); every further line is one point's entry, oldest first,
or one manifest that could not be used. The RPO monitor reads the head alone with one ranged GET,
so its cost is the same at 10 points or 10,000.

An entry satisfies ``core.chains.PointLike`` (``recovery_point_id``, ``base``, ``own_state``,
``own_detail``), so effective states are resolved from the index without reading a manifest; the
resolved state is stored in the entry too, for readers without this package (the CLI's ``--json``).
``revision`` orders the writes of one manifest (S3 metadata, raised by every conditional write)
and ``etag`` is the manifest's ETag, which a listing compares to find a stale entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backup_pipelines.core.chains import ChainState, resolve
from backup_pipelines.core.errors import ManifestError

if TYPE_CHECKING:
    from backup_pipelines.core.manifest import Manifest

INDEX_FORMAT = "backup-pipelines.catalog-index"
INDEX_VERSION = 1
INDEX_NAME = "_index.jsonl"
#: Bytes the monitor asks for to read the head; a larger head falls back to a whole GET.
HEAD_BYTES = 32 * 1024
#: What the head carries besides counts: the newest points, the newest verified ones (so a point
#: captured "in the future" by a skewed clock does not hide the one before) and the newest points
#: that broke a chain (what the RPO monitor warns about), each with its resolved chain state.
RECENT_POINTS, RECENT_VERIFIED, RECENT_FAILURES = 10, 4, 5
DERIVED = {"state", "state_reason", "broken_member", "root", "depth", "failed_with"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndexEntry(_Model):
    """The summary of one recovery point: what the hot paths need, without its object list."""

    recovery_point_id: str
    captured_at: datetime
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    base: str | None = None
    own_state: str = "unverified"
    own_detail: str | None = None
    verified_at: datetime | None = None
    state: Literal["verified", "unverified", "failed"] = "unverified"
    state_reason: str | None = None
    broken_member: str | None = None
    root: str | None = None
    depth: int = 0
    failed_with: int | None = Field(default=None, description="points failed through this one")
    location: str
    storage_class: str
    bytes: int = 0
    objects: int = 0
    rows: int | None = None
    messages: int | None = None
    retention_warning: str | None = None
    schema_version: int = 1
    etag: str | None = None
    revision: int = 0

    @classmethod
    def of(cls, manifest: Manifest, *, etag: str | None, revision: int) -> IndexEntry:
        """The entry of a manifest as stored with ``etag`` at ``revision``."""
        warning = manifest.details.get("retention_warning")
        return cls(
            recovery_point_id=manifest.recovery_point_id,
            captured_at=manifest.captured_at,
            interval_start=manifest.interval_start,
            interval_end=manifest.interval_end,
            base=manifest.base,
            own_state=manifest.verification.state,
            own_detail=manifest.verification.detail,
            verified_at=manifest.verification.verified_at,
            location=manifest.location,
            storage_class=manifest.storage_class,
            bytes=manifest.size_bytes,
            objects=manifest.object_total,
            rows=sum(manifest.row_counts.values()) if manifest.row_counts else None,
            messages=manifest.message_count,
            retention_warning=str(warning) if warning is not None else None,
            schema_version=manifest.schema_version,
            etag=etag,
            revision=revision,
        )

    def same_point(self, other: IndexEntry) -> bool:
        """Equal in everything a manifest decides (not the derived state, ETag or revision)."""
        skip = DERIVED | {"etag", "revision"}
        return self.model_dump(exclude=skip) == other.model_dump(exclude=skip)

    @property
    def usable(self) -> bool:
        return self.state == "verified"

    @property
    def chain_state(self) -> ChainState:
        """The chain state resolved when the index was written (``core.chains.ChainState``)."""
        return ChainState(
            self.recovery_point_id, self.root, self.depth, self.state, self.state_reason, self.broken_member
        )


class InvalidEntry(_Model):
    """A manifest key the index build could not use, with the reason (never a hot path's point)."""

    key: str
    reason: str
    etag: str | None = None


class IndexHead(_Model):
    """The first line of an index: enough for the RPO monitor."""

    format: str = INDEX_FORMAT
    version: int = INDEX_VERSION
    kind: str
    dataset: str
    updated_at: datetime
    points: int = 0
    invalid: int = 0
    latest_verified: IndexEntry | None = None
    recent: list[IndexEntry] = []


class DatasetIndex:
    """The entries of one dataset, oldest first; effective states resolved on every change."""

    def __init__(
        self,
        kind: str,
        dataset: str,
        entries: Iterable[IndexEntry] = (),
        invalid: Iterable[InvalidEntry] = (),
        *,
        updated_at: datetime,
    ) -> None:
        self.kind, self.dataset, self.updated_at = kind, dataset, updated_at
        self._entries = {e.recovery_point_id: e for e in entries}
        self._invalid = {i.key: i for i in invalid}
        self._resolve()

    # -- reading ---------------------------------------------------------------------------------
    @property
    def entries(self) -> list[IndexEntry]:
        return sorted(self._entries.values(), key=lambda e: (e.captured_at, e.recovery_point_id))

    @property
    def invalid(self) -> list[InvalidEntry]:
        return sorted(self._invalid.values(), key=lambda i: i.key)

    def get(self, recovery_point_id: str) -> IndexEntry | None:
        return self._entries.get(recovery_point_id)

    def latest_verified(self, *, at_or_before: datetime | None = None) -> IndexEntry | None:
        usable = [
            e for e in self.entries if e.usable and (at_or_before is None or e.captured_at <= at_or_before)
        ]
        return usable[-1] if usable else None

    def head(self) -> IndexHead:
        return IndexHead(
            kind=self.kind,
            dataset=self.dataset,
            updated_at=self.updated_at,
            points=len(self._entries),
            invalid=len(self._invalid),
            latest_verified=self.latest_verified(),
            recent=self.recent(),
        )

    def recent(self) -> list[IndexEntry]:
        """The head's points (``RECENT_*``), oldest first."""
        entries = self.entries
        chosen = {e.recovery_point_id: e for e in entries[-RECENT_POINTS:]}
        chosen |= {e.recovery_point_id: e for e in [e for e in entries if e.usable][-RECENT_VERIFIED:]}
        roots = [e for e in entries if e.failed_with is not None]
        roots.sort(key=lambda e: (e.verified_at or e.captured_at, e.recovery_point_id))
        chosen |= {e.recovery_point_id: e for e in roots[-RECENT_FAILURES:]}
        return sorted(chosen.values(), key=lambda e: (e.captured_at, e.recovery_point_id))

    # -- changing --------------------------------------------------------------------------------
    def upsert(self, entry: IndexEntry) -> bool:
        """Take ``entry`` unless the index holds a later revision of that point; True when changed.

        Revision 0 (a manifest written without one: by an older version, or by hand) is taken
        whenever its ETag differs, as it is what S3 holds now."""
        current = self._entries.get(entry.recovery_point_id)
        if current is not None:
            if current.etag == entry.etag and current.same_point(entry):
                return False
            if current.revision > entry.revision and entry.revision != 0:
                return False
        self._entries[entry.recovery_point_id] = entry
        self._invalid = {
            k: v for k, v in self._invalid.items() if not k.endswith(f"/{entry.recovery_point_id}.json")
        }
        self._resolve()
        return True

    def remove(self, recovery_point_id: str) -> bool:
        found = self._entries.pop(recovery_point_id, None) is not None
        if found:
            self._resolve()
        return found

    def replace(self, other: DatasetIndex) -> None:
        """Hold exactly what ``other`` holds (a rebuild)."""
        self._entries, self._invalid = dict(other._entries), dict(other._invalid)
        self._resolve()

    def set_invalid(self, item: InvalidEntry) -> None:
        self._invalid[item.key] = item

    def drop_invalid(self, key: str) -> None:
        self._invalid.pop(key, None)

    def _resolve(self) -> None:
        states = resolve(self._entries.values())
        broken: dict[str, int] = {}
        for point_id, chain in states.items():
            if chain.broken_member is not None and chain.broken_member != point_id:
                broken[chain.broken_member] = broken.get(chain.broken_member, 0) + 1
        for point_id, entry in self._entries.items():
            chain = states[point_id]
            own_break = chain.broken_member == point_id and entry.own_state == "failed"
            update = {
                "state": chain.state,
                "state_reason": chain.reason,
                "broken_member": chain.broken_member,
                "root": chain.root,
                "depth": chain.depth,
                "failed_with": broken.get(point_id, 0) if own_break else None,
            }
            if any(getattr(entry, name) != value for name, value in update.items()):
                self._entries[point_id] = entry.model_copy(update=update)

    # -- bytes -----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        lines = [self.head().model_dump_json()]
        lines += [e.model_dump_json(exclude_defaults=True) for e in self.entries]
        lines += [json.dumps({"invalid": i.model_dump(mode="json")}) for i in self.invalid]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, source: str) -> DatasetIndex:
        """Parse an index; any problem raises ``ManifestError`` naming ``source`` (then rebuild it)."""
        lines = raw.decode("utf-8", errors="replace").splitlines()
        head = parse_head(lines[0] if lines else "", source)
        entries, invalid = [], []
        try:
            for line in lines[1:]:
                if line.startswith('{"invalid"'):
                    invalid.append(InvalidEntry.model_validate(json.loads(line)["invalid"]))
                elif line.strip():
                    entries.append(IndexEntry.model_validate_json(line))
        except (ValidationError, ValueError, KeyError) as exc:
            raise ManifestError(f"catalog index {source} is corrupt: {_first_line(exc)}") from None
        if len(entries) != head.points:
            raise ManifestError(
                f"catalog index {source} is truncated: its head counts {head.points} points, "
                f"it holds {len(entries)}"
            )
        return cls(head.kind, head.dataset, entries, invalid, updated_at=head.updated_at)


def compare(stored: DatasetIndex, truth: DatasetIndex) -> list[str]:
    """Every way ``stored`` differs from ``truth`` (an index built from the manifests), one line each."""
    found = []
    for entry in truth.entries:
        point_id, held = entry.recovery_point_id, stored.get(entry.recovery_point_id)
        if held is None:
            found.append(f"{point_id}: has a manifest but no index entry")
            continue
        derived = DERIVED | {"etag", "revision"}  # chain states follow from the own fields
        mine, theirs = (
            held.model_dump(exclude=derived),
            entry.model_dump(exclude=derived),
        )
        fields = [name for name in theirs if mine[name] != theirs[name]]
        if fields:
            found.append(
                f"{point_id}: the index differs from the manifest in "
                + ", ".join(f"{name} ({mine[name]!r}, manifest {theirs[name]!r})" for name in fields)
            )
        elif held.etag != entry.etag:
            found.append(f"{point_id}: the index records ETag {held.etag}, the manifest is now {entry.etag}")
    for entry in stored.entries:
        if truth.get(entry.recovery_point_id) is None:
            found.append(f"{entry.recovery_point_id}: in the index, but no usable manifest")
    stored_invalid, truth_invalid = {i.key for i in stored.invalid}, {i.key for i in truth.invalid}
    found += [
        f"{key}: unusable manifest the index does not name" for key in sorted(truth_invalid - stored_invalid)
    ]
    found += [
        f"{key}: named unusable by the index, no longer so" for key in sorted(stored_invalid - truth_invalid)
    ]
    return found


def parse_head(line: str, source: str) -> IndexHead:
    """The head of an index from its first line; ``ManifestError`` naming ``source`` when unusable."""
    try:
        head = IndexHead.model_validate_json(line)
    except ValidationError as exc:
        raise ManifestError(f"catalog index {source} has no usable head: {_first_line(exc)}") from None
    if head.format != INDEX_FORMAT or head.version != INDEX_VERSION:
        raise ManifestError(
            f"catalog index {source} is {head.format} version {head.version}; this version reads "
            f"{INDEX_FORMAT} version {INDEX_VERSION} (it is rebuilt from the manifests)"
        )
    return head


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
