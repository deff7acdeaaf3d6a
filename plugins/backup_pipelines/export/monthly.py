"""Monthly exports: ClickHouse writes Parquet to S3 itself, the worker only checks and files it.

Flow of one export of one month (``MonthlyExport.run``), each step's I/O in this module:

1. ``count()`` of the query in ClickHouse, with the month's bounds bound as query parameters.
2. ``INSERT INTO FUNCTION s3(<staging>/part-{_partition_id}.parquet, ..., 'Parquet')
   PARTITION BY intDiv(rowNumberInAllBlocks(), max_rows_per_file) <query>``: ClickHouse writes
   zstd Parquet straight to a STANDARD staging prefix, one file per ``max_rows_per_file`` rows.
   No row passes through the worker.
3. Reconciliation on the staging copy (still readable): each file's Parquet footer is read with
   ranged GETs (a few KiB per file), its schema must equal the query's and the footers' row
   counts must add up to step 1's count.
4. Server-side copy (``BackupS3Hook.copy_verified``) of each file to
   ``<prefix><name>/month=YYYY-MM/<generation>-part-NNNNN.parquet`` in the target storage class
   (DEEP_ARCHIVE) with the configured encryption and an S3-computed SHA-256; staging is removed.
5. The manifest (query hash, parameters, rows, files, sizes, checksums) is written *last*; only
   then are the files of earlier runs of the same month deleted, so a re-run replaces a month
   atomically: readers see the old manifest and files, or the new ones, never a mix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.clock import utcnow
from backup_pipelines.core.errors import ExportReconciliationError, ExportSqlError, UnsafeOperationError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification
from backup_pipelines.export.engine import COMPRESSION, FORMAT, ExportEngine, FooterInfo
from backup_pipelines.export.month import Month

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig, Export

log = logging.getLogger(__name__)

KIND: Final = DatasetKind.DEEP_ARCHIVE_EXPORT
STAGING_DIR = "_staging"


@dataclass
class ExportResult:
    manifest: Manifest
    removed_keys: list[str] = field(default_factory=list)


def query_sha256(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


class MonthlyExport:
    """One export of one month, start to finish; see the module docstring for the steps."""

    def __init__(self, hook: ExportEngine, catalog: Catalog, cfg: BackupConfig, export: Export) -> None:
        self.hook = hook
        self.catalog = catalog
        self.cfg = cfg
        self.export = export
        self.section = cfg.deep_archive_exports
        self.bucket = cfg.storage.archive_bucket
        self.label = f"include/sql/{export.sql}"

    def final_prefix(self, month: Month) -> str:
        return f"{self.section.prefix}{self.export.name}/{month.recovery_point_id}/"

    def staging_prefix(self, month: Month) -> str:
        return f"{self.section.prefix}{STAGING_DIR}/{self.export.name}/{month.recovery_point_id}/"

    def run(
        self, month: Month, *, producer: dict[str, str] | None = None, allow_fewer_rows: bool = False
    ) -> ExportResult:
        try:
            sql = self.export.read_sql()
        except ValueError as exc:
            raise ExportSqlError(str(exc)) from None
        params = month.parameters()
        log.info(
            "export %s %s: %s with start=%s end=%s",
            self.export.name,
            month.label,
            self.label,
            month.start,
            month.end,
        )
        columns = self.hook.describe(sql, params, label=self.label)
        expected = self.hook.count(sql, params, label=self.label)
        log.info(
            "export %s %s: the query returns %d rows in ClickHouse", self.export.name, month.label, expected
        )
        previous = self.catalog.get(KIND, self.export.name, month.recovery_point_id)
        self._check_rows(month, expected, previous, allow_fewer_rows=allow_fewer_rows)
        generation = f"{utcnow():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self._remove_stale_staging(month)
        manifest, archived = self._archive_and_catalog(
            month, sql, params, columns, expected, generation=generation, producer=producer, previous=previous
        )
        return ExportResult(
            manifest=manifest, removed_keys=self._remove_replaced(month, generation, archived, previous)
        )

    def _archive_and_catalog(
        self,
        month: Month,
        sql: str,
        params: dict[str, Any],
        columns: list[tuple[str, str]],
        expected: int,
        *,
        generation: str,
        producer: dict[str, str] | None,
        previous: Manifest | None,
    ) -> tuple[Manifest, list[ObjectEntry]]:
        """Write, reconcile and archive the files, then the manifest; clean up after a failure."""
        archived: list[ObjectEntry] = []
        try:
            if expected:
                staging = f"{self.staging_prefix(month)}{generation}/"
                archived = self._write_and_archive(
                    sql=sql,
                    params=params,
                    month=month,
                    generation=generation,
                    staging=staging,
                    columns=columns,
                    expected=expected,
                )
            manifest = self._manifest(
                month=month,
                sql=sql,
                columns=columns,
                rows=expected,
                objects=archived,
                generation=generation,
                producer=producer,
                previous=previous,
            )
            self.catalog.write(manifest)
        except BaseException:
            # Never leave unlisted DEEP_ARCHIVE objects behind a failed attempt, but never delete
            # what a manifest lists either: the manifest PUT may have landed before the error.
            if archived and not self._catalog_holds(month, generation):
                log.warning(
                    "export %s %s: removing %d file(s) of this failed attempt",
                    self.export.name,
                    month.label,
                    len(archived),
                )
                self.hook.s3.delete_keys(self.bucket, [o.key for o in archived])
            raise
        return manifest, archived

    def _check_rows(
        self, month: Month, expected: int, previous: Manifest | None, *, allow_fewer_rows: bool
    ) -> None:
        """Refuse a re-run that would archive fewer rows, and an empty month when that is not allowed."""
        name = self.export.name
        before = previous.row_counts.get("rows", 0) if previous is not None else 0
        if previous is not None and not allow_fewer_rows and expected < before:
            raise UnsafeOperationError(
                f"export {name} {month.label}: the query now returns {expected} rows but the "
                f"archived export holds {before}; the source data may have expired. Keeping the "
                "archived export; re-run with the param allow_fewer_rows=true to replace it anyway"
            )
        if expected == 0 and not self.section.allow_empty:
            raise ExportReconciliationError(
                f"export {name} {month.label}: {self.label} returns no rows for "
                f"[{month.start:%Y-%m-%d}, {month.end:%Y-%m-%d}) and allow_empty is false"
            )

    def _remove_stale_staging(self, month: Month) -> None:
        stale = self.hook.list_objects(self.bucket, self.staging_prefix(month))
        if stale:
            log.info(
                "export %s %s: removing %d staging object(s) of failed attempts",
                self.export.name,
                month.label,
                len(stale),
            )
            self.hook.s3.delete_keys(self.bucket, [o.key for o in stale])

    def _remove_replaced(
        self, month: Month, generation: str, archived: list[ObjectEntry], previous: Manifest | None
    ) -> list[str]:
        """After the new manifest: the files of the manifest it replaced, and only those."""
        if not self._catalog_holds(month, generation):
            # A concurrent run of the same month replaced our manifest: its files are not ours to judge.
            log.warning(
                "export %s %s: the catalog no longer lists generation %s; removing nothing",
                self.export.name,
                month.label,
                generation,
            )
            return []
        keep = {o.key for o in archived}
        old = [o.key for o in (previous.objects if previous else []) if o.key not in keep]
        if old:
            log.info(
                "export %s %s: new manifest written; removing %d file(s) it replaces",
                self.export.name,
                month.label,
                len(old),
            )
            self.hook.s3.delete_keys(self.bucket, old)
        return old

    def _catalog_holds(self, month: Month, generation: str) -> bool:
        """Whether the catalog's current manifest of the month is the one of ``generation``."""
        current = self.catalog.get(KIND, self.export.name, month.recovery_point_id)
        return current is not None and current.details.get("generation") == generation

    def _write_and_archive(
        self,
        *,
        sql: str,
        params: dict[str, Any],
        month: Month,
        generation: str,
        staging: str,
        columns: list[tuple[str, str]],
        expected: int,
    ) -> list[ObjectEntry]:
        name = self.export.name
        archived: list[ObjectEntry] = []
        try:
            self.hook.write_parquet(
                sql,
                params,
                bucket=self.bucket,
                key_template=f"{staging}part-{{_partition_id}}.parquet",
                max_rows_per_file=self.export.max_rows_per_file,
                credentials=self.section.s3_credentials,
                label=self.label,
            )
            staged = self.hook.list_objects(self.bucket, staging)
            staged.sort(key=lambda o: int(re.search(r"part-(\d+)\.parquet$", o.key).group(1)))  # type: ignore[union-attr]
            log.info(
                "export %s %s: ClickHouse wrote %d file(s), %d bytes",
                name,
                month.label,
                len(staged),
                sum(o.size for o in staged),
            )
            footers = [self.hook.parquet_footer(o) for o in staged]
            self._reconcile(month, footers, [c for c, _ in columns], expected)
            archived += self._archive_staged(month, generation, staged, footers)
        except BaseException:
            if archived:
                self.hook.s3.delete_keys(self.bucket, [o.key for o in archived])
            raise
        finally:  # staging is scratch space: gone whether the attempt worked or not
            leftovers = self.hook.list_objects(self.bucket, staging)
            if leftovers:
                self.hook.s3.delete_keys(self.bucket, [o.key for o in leftovers])
        return archived

    def _archive_staged(
        self, month: Month, generation: str, staged: list[Any], footers: list[FooterInfo]
    ) -> list[ObjectEntry]:
        """Copy each staged file to its final key in the target storage class, verified."""
        archived: list[ObjectEntry] = []
        try:
            for number, obj in enumerate(staged):
                key = f"{self.final_prefix(month)}{generation}-part-{number:05d}.parquet"
                result = self.hook.s3.copy_verified(
                    obj,
                    self.bucket,
                    key,
                    encryption=self.cfg.storage.encryption,
                    storage_class=self.section.storage_class,
                    object_lock=self.cfg.storage.object_lock,
                )
                if result.storage_class != self.section.storage_class:
                    raise ExportReconciliationError(
                        f"s3://{self.bucket}/{key} is {result.storage_class}, "
                        f"not {self.section.storage_class}"
                    )
                archived.append(
                    ObjectEntry(
                        key=key,
                        size=result.size,
                        sha256=result.sha256_hex,
                        checksum=result.sha256,
                        etag=result.etag,
                        storage_class=result.storage_class,
                        records=footers[number].rows,
                    )
                )
                log.info(
                    "export %s %s: archived %s (%d of %d)",
                    self.export.name,
                    month.label,
                    key,
                    number + 1,
                    len(staged),
                )
        except BaseException:
            if archived:
                self.hook.s3.delete_keys(self.bucket, [o.key for o in archived])
            raise
        return archived

    def _reconcile(self, month: Month, footers: list[FooterInfo], columns: list[str], expected: int) -> None:
        where = f"export {self.export.name} {month.label}"
        problems = []
        for footer in footers:
            if footer.columns != columns:
                problems.append(
                    f"s3://{self.bucket}/{footer.key} has columns {footer.columns}, the query {columns}"
                )
            if footer.rows > self.export.max_rows_per_file:
                problems.append(
                    f"s3://{self.bucket}/{footer.key} holds {footer.rows} rows, "
                    f"more than max_rows_per_file={self.export.max_rows_per_file}"
                )
            if footer.compression.upper() != COMPRESSION.upper():
                problems.append(
                    f"s3://{self.bucket}/{footer.key} is {footer.compression}-compressed, not zstd"
                )
        written = sum(f.rows for f in footers)
        if written != expected:
            problems.append(f"the Parquet footers hold {written} rows, ClickHouse counts {expected}")
        if problems:
            raise ExportReconciliationError(f"{where}: " + "; ".join(problems))
        log.info(
            "%s: reconciled %d rows in %d file(s) against ClickHouse's count", where, written, len(footers)
        )

    def _manifest(
        self,
        *,
        month: Month,
        sql: str,
        columns: list[tuple[str, str]],
        rows: int,
        objects: list[ObjectEntry],
        generation: str,
        producer: dict[str, str] | None,
        previous: Manifest | None,
    ) -> Manifest:
        checks = ["row_count", "schema"]
        if objects:
            checks += ["parquet_footers", "sha256", "storage_class"]
        details: dict[str, Any] = {
            "sql_file": self.label,
            "query_sha256": query_sha256(sql),
            "parameters": {k: v.isoformat() for k, v in month.parameters().items()},
            "format": FORMAT,
            "compression": COMPRESSION,
            "schema": [{"name": n, "type": t} for n, t in columns],
            "max_rows_per_file": self.export.max_rows_per_file,
            "generation": generation,
            "empty": rows == 0,
        }
        if previous is not None:
            details["replaces"] = {
                "generation": previous.details.get("generation"),
                "captured_at": previous.captured_at.isoformat(),
                "rows": previous.row_counts.get("rows", 0),
            }
        now = utcnow()
        return Manifest(
            kind=KIND,
            dataset=self.export.name,
            recovery_point_id=month.recovery_point_id,
            interval_start=month.start,
            interval_end=month.end,
            captured_at=now,
            location=f"s3://{self.bucket}/{self.final_prefix(month)}",
            storage_class=self.section.storage_class,
            objects=objects,
            row_counts={"rows": rows},
            software={
                "clickhouse": self.hook.server_version(),
                "apache-airflow": _version("apache-airflow"),
                "backup-pipelines": _version("backup-pipelines"),
            },
            producer=producer or {},
            verification=Verification(
                state="verified",
                verified_at=now,
                checks=checks,
                detail="empty month: the query returned no rows" if rows == 0 else None,
            ),
            details=details,
        )


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
