"""A verified chain's manifests in one file, so the next point's chain costs one read, not two per member.

``_chains/<id>.json.gz`` in the dataset's catalog folder holds the manifests (object lists
included) of the chain ending at point ``id``, one JSON line per member (oldest first), each with
the revision the index recorded for it when the file was written. A member's ``details`` keep
their single values (ids, UUIDs, the backup type, counts) and leave out their lists and maps: a
ClickHouse point's list every table and part of the logical backup (about 40 KB a point, 90% of a
line), which no reader of a chain needs of a base (a restore, the drill and verify read those of
the point itself, from its manifest), and which made the file's read and parse grow with the
chain. Writes of a member go through ``ManifestStore.modify``, which changes the stored manifest,
never this copy. Gzip; a line loaded with the base's file is written again as it was, not
serialized again. Verify writes it once a point of a chain is verified; ``Catalog.chain`` reads
the base's file instead of every base's manifest and object list.

It is a cache, never the truth: it is used only when every member still has, in the index, the
revision it was cached at and the chain links the same points. A member re-marked since (its
revision moved on), a retake, a missing or unreadable file: the manifests are read as before.
The file goes with its point (``Catalog.delete_point``).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import MANIFEST_STORAGE_CLASS, Listing, Manifest, ObjectEntry

if TYPE_CHECKING:
    from backup_pipelines.core.manifest_store import ManifestStore

log = logging.getLogger(__name__)

CHAINS_FOLDER = "_chains/"
#: Kinds whose points have bases (chains); only their deletions remove a chain file.
CHAINED_KINDS = frozenset({DatasetKind.CLICKHOUSE_SNAPSHOT})


class _Line(BaseModel):
    """One member's line, parsed straight from its bytes (pydantic-core, no ``json.loads`` first)."""

    model_config = ConfigDict(extra="forbid")

    revision: int
    manifest: Manifest
    objects: list[ObjectEntry]


class ChainCache:
    """Reads and writes chain files beside the manifests, through the manifest store's gateway."""

    def __init__(self, manifests: ManifestStore) -> None:
        self.manifests = manifests
        self.s3 = manifests.s3
        self._lines: dict[tuple[str, str, str, int], bytes] = {}  # the last loaded file's, in order
        self._raw = b""  # that file's bytes as read

    def key(self, kind: str, dataset: str, recovery_point_id: str) -> str:
        return f"{self.manifests.folder(kind, dataset)}{CHAINS_FOLDER}{recovery_point_id}.json.gz"

    def remember(self, chain: list[Manifest], revisions: Mapping[str, int]) -> None:
        """Store ``chain`` (manifests with their objects, oldest first) under its last point, each
        member with its revision in the index (``revisions``); a member without one is not cached."""
        revs = [revisions.get(member.recovery_point_id, 0) for member in chain]
        unknown = next((m for m, revision in zip(chain, revs, strict=True) if revision <= 0), None)
        if unknown is not None:
            log.info(
                "chain of %s not cached: %s has no revision in the index", chain[-1].label, unknown.label
            )
            return
        body = self._body(chain, revs)
        last = chain[-1]
        key = self.key(last.kind, last.dataset, last.recovery_point_id)
        try:
            self.s3.put_encrypted(
                self.manifests.bucket,
                key,
                body,
                encryption=self.manifests.encryption,
                storage_class=MANIFEST_STORAGE_CLASS,
                content_type="application/gzip",
            )
        except (BotoCoreError, ClientError) as exc:  # a cache: the point stays verified without it
            log.warning(
                "chain of %s not cached at s3://%s/%s: %s", last.label, self.manifests.bucket, key, exc
            )

    def load(self, manifest: Manifest, listing: Listing) -> list[Manifest] | None:
        """The bases of ``manifest`` (oldest first) from its base's chain file, when every member
        is still what the index records; None to read the manifests instead."""
        if not manifest.base:
            return None
        key = self.key(manifest.kind, manifest.dataset, manifest.base)
        found = self.s3.get_bytes(self.manifests.bucket, key)
        if found is None:
            return None
        members: list[tuple[int, Manifest]] = []
        lines: dict[tuple[str, str, str, int], bytes] = {}
        try:
            for line in gzip.decompress(found[0]).splitlines():
                parsed = _Line.model_validate_json(line)
                member = parsed.manifest.model_copy(update={"objects": parsed.objects})
                members.append((parsed.revision, member))
                lines[(member.kind, member.dataset, member.recovery_point_id, parsed.revision)] = line
        except (OSError, EOFError, zlib.error, ValueError) as exc:  # gzip, deflate, JSON, the model
            log.warning(
                "chain file s3://%s/%s is unreadable (%s); reading the manifests",
                self.manifests.bucket,
                key,
                exc,
            )
            return None
        stale = self._stale(manifest, members, listing)
        if stale:
            log.info("chain file of %s not used: %s; reading the manifests", manifest.base, stale)
            return None
        self._lines, self._raw = lines, found[0]  # the next ``remember`` of this chain reuses them
        return [m for _, m in members]

    def _body(self, chain: list[Manifest], revs: list[int]) -> bytes:
        """The file's bytes. A chain that is the loaded file's plus one point is that file as read
        with one gzip member appended (gzip reads concatenated members as one stream), so the
        write costs the new line, not the whole chain compressed again."""
        keys = [(m.kind, m.dataset, m.recovery_point_id, r) for m, r in zip(chain, revs, strict=True)]
        if self._lines and keys[:-1] == list(self._lines):
            return self._raw + gzip.compress(
                b"\n" + self._line(revs[-1], chain[-1]), compresslevel=1, mtime=0
            )
        lines = [self._line(revision, member) for revision, member in zip(revs, chain, strict=True)]
        return gzip.compress(b"\n".join(lines), compresslevel=1, mtime=0)

    def _line(self, revision: int, member: Manifest) -> bytes:
        """One member's line: its manifest without objects and with its details' single values only,
        its objects without empty fields, and its revision; a line loaded with that revision of that
        point is reused byte for byte (a revision's manifest never changes: every write is a new one)."""
        key = (member.kind, member.dataset, member.recovery_point_id, revision)
        if key in self._lines:
            return self._lines[key]
        objects = ",".join(o.model_dump_json(exclude_none=True) for o in member.objects)
        manifest = member.model_dump_json(exclude={"objects": True, "details": _collections(member)})
        return f'{{"revision":{revision},"manifest":{manifest},"objects":[{objects}]}}'.encode()

    @staticmethod
    def _stale(manifest: Manifest, members: list[tuple[int, Manifest]], listing: Listing) -> str | None:
        """Why the cached members are not the chain the index holds now (None: they are)."""
        if not members or members[-1][1].recovery_point_id != manifest.base:
            return "it does not end with the base"
        previous = None
        for revision, member in members:
            if (member.kind, member.dataset) != (manifest.kind, manifest.dataset):
                return f"{member.label} is another dataset's"
            if member.base != previous:
                return f"{member.label} links base {member.base}, expected {previous}"
            entry = listing.entry(member.recovery_point_id)
            if entry is None or entry.revision != revision:
                now = "gone" if entry is None else f"at revision {entry.revision}"
                return f"{member.label} was cached at revision {revision}, the index has it {now}"
            previous = member.recovery_point_id
        return None


def _collections(member: Manifest) -> set[str]:
    """The member's details that are lists or maps (left out of its line, see the module's doc)."""
    return {key for key, value in member.details.items() if isinstance(value, (dict, list))}
