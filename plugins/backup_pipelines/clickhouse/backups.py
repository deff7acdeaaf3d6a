"""The S3 side of ClickHouse backups: the ``.backup`` listings, a point's objects and folders.

Everything here reads or deletes through the one S3 gateway (``BackupS3Hook``); nothing here
talks to ClickHouse. Row counts of a backup come from its parts: ``system.parts`` knows the rows of
a part by name (a part is immutable), and a part merged away since (or a sharded backup) is read
from its ``count.txt`` in the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from backup_pipelines.clickhouse.backup_files import (
    BACKUP_METADATA_FILE,
    RECOVERY_POINT_FOLDER,
    BackupContents,
    BackupFile,
    parse_backup_metadata,
)
from backup_pipelines.core.errors import UnsafeOperationError, VerificationError
from backup_pipelines.core.manifest import Manifest, ObjectEntry
from backup_pipelines.core.s3 import BackupS3Hook, split_s3_url

log = logging.getLogger(__name__)

#: Where the bytes of each (size, checksum) live in a chain: -> (location, file name).
ChainIndex = dict[tuple[int, str | None], tuple[str, str]]


class BackupStore:
    """Backups as S3 objects: read listings and count files, list and delete point folders."""

    def __init__(self, s3: BackupS3Hook) -> None:
        self.s3 = s3

    def read_contents(self, location: str) -> BackupContents:
        bucket, prefix = split_s3_url(location)
        found = self.s3.get_bytes(bucket, prefix + BACKUP_METADATA_FILE)
        if found is None:
            raise VerificationError(
                f"backup {location} has no {BACKUP_METADATA_FILE} file: the backup is incomplete"
            )
        return parse_backup_metadata(found[0])

    def list_objects(self, location: str) -> list[ObjectEntry]:
        bucket, prefix = split_s3_url(location)
        return [
            ObjectEntry(
                key=obj.key,
                size=obj.size,
                etag=obj.etag.strip('"') or None,
                storage_class=obj.storage_class,
            )
            for obj in self.s3.iter_objects(bucket, prefix)
        ]

    def list_folders(self, s3_prefix: str) -> dict[str, datetime]:
        """Recovery-point folders under ``s3://bucket/<prefix><dataset>/`` -> newest object's time."""
        bucket, prefix = split_s3_url(s3_prefix)
        folders: dict[str, datetime] = {}
        for obj in self.s3.iter_objects(bucket, prefix):
            rest = obj.key[len(prefix) :]
            if "/" not in rest or obj.last_modified is None:
                continue
            folder = f"s3://{bucket}/{prefix}{rest.split('/', 1)[0]}/"
            if folder not in folders or obj.last_modified > folders[folder]:
                folders[folder] = obj.last_modified
        return folders

    def locked_objects(self, location: str, *, now: datetime) -> list[str]:
        """Objects of a location that S3 Object Lock keeps (retention in the future or legal hold)."""
        bucket, prefix = split_s3_url(location)
        return self.s3.locked_keys(bucket, (o.key for o in self.s3.iter_objects(bucket, prefix)), now=now)

    def delete_location(self, location: str) -> int:
        """Delete every object under a recovery-point folder; returns how many were deleted."""
        bucket, prefix = split_s3_url(location)
        folder = prefix.rstrip("/").rsplit("/", 1)[-1]
        if not prefix.endswith("/") or prefix.count("/") < 2 or not RECOVERY_POINT_FOLDER.match(folder):
            raise UnsafeOperationError(f"refusing to delete {location}: not a recovery point folder")
        keys = [o.key for o in self.s3.iter_objects(bucket, prefix)]
        if keys:
            self.s3.delete_keys(bucket, keys)
        return len(keys)

    def chain_index(self, chain_locations: Sequence[str]) -> ChainIndex:
        """Where the bytes of each (size, checksum) live in a chain: -> (location, file name).

        ClickHouse deduplicates by checksum: a file of an increment marked ``use_base`` is read from
        whichever base holds the same size and checksum, possibly under another name.
        """
        index: ChainIndex = {}
        for location in reversed(chain_locations):  # newest first
            for item in self.read_contents(location).files:
                if item.stored_here and not item.data_file:
                    index.setdefault((item.size, item.checksum), (location, item.name))
        return index

    def read_count_file(self, item: BackupFile, index: ChainIndex) -> int:
        found = index.get((item.size, item.checksum)) or index.get((item.base_size, item.checksum))
        if found is None:
            raise VerificationError(f"part file {item.name} is stored in no backup of the chain")
        location, name = found
        bucket, prefix = split_s3_url(location)
        body = self.s3.get_bytes(bucket, prefix + name)
        if body is None:
            raise VerificationError(f"part file {item.name} is missing from {location}")
        return int(body[0].strip())

    def rows_per_table(
        self,
        contents: BackupContents,
        known: Mapping[tuple[str, str], int],
        chain_locations: Sequence[str],
        index: ChainIndex | None = None,
    ) -> tuple[dict[str, int], dict[str, list[str]]]:
        """Rows per table and part names of a backup; ``known`` holds ``system.parts``'s part rows.

        ``index`` (from the chain's manifests, ``manifest_index``) finds the count files of parts
        ``system.parts`` no longer knows; the chain's ``.backup`` listings are read only when it
        cannot (a manifest without checksums)."""
        count_files = contents.part_count_files()
        row_counts = {table: 0 for table in contents.tables()}
        parts: dict[str, list[str]] = {}
        full_index: ChainIndex | None = None
        for (table, part), files in sorted(count_files.items()):
            for item in files:  # one per shard/replica path when ON CLUSTER
                rows_in_part = known.get((table, part)) if len(files) == 1 else None
                if rows_in_part is None:
                    if index is None or not _holds(index, item):
                        full_index = full_index or self.chain_index(chain_locations)
                    rows_in_part = self.read_count_file(item, full_index or index or {})
                row_counts[table] = row_counts.get(table, 0) + rows_in_part
            parts.setdefault(table, []).append(part)
        return row_counts, parts


def manifest_index(chain: Sequence[Manifest]) -> ChainIndex:
    """``chain_index`` from the chain's manifests (their objects' sizes and ClickHouse checksums),
    without reading a ``.backup`` listing: what verify needs of the bases, at the cost of nothing
    but the manifests it already has. Objects without a checksum are left out (see ``_holds``)."""
    index: ChainIndex = {}
    for member in reversed(chain):  # newest first, as chain_index
        _, prefix = split_s3_url(member.location)
        for obj in member.objects:
            if obj.checksum:
                index.setdefault((obj.size, obj.checksum), (member.location, obj.key[len(prefix) :]))
    return index


def _holds(index: ChainIndex, item: BackupFile) -> bool:
    return (item.size, item.checksum) in index or (item.base_size, item.checksum) in index
