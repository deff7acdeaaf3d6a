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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.clock import utcnow
from backup_pipelines.core.errors import ExportReconciliationError, ExportSqlError, UnsafeOperationError
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification
from backup_pipelines.export.engine import COMPRESSION, FORMAT, ExportEngine, FooterInfo

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig, Export

log = logging.getLogger(__name__)

KIND: Final = DatasetKind.DEEP_ARCHIVE_EXPORT
STAGING_DIR = "_staging"


@dataclass(frozen=True)
class Month:
    """A calendar month ``[start, end)`` in UTC; ``label`` is ``YYYY-MM``."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        end = datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1, tzinfo=UTC)
        return cls(start, end)

    @classmethod
    def parse(cls, label: str) -> Month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", label.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ExportSqlError(f"month {label!r} is not a month; use YYYY-MM, e.g. 2026-10")
        return cls.of(datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC))

    @classmethod
    def previous(cls, moment: datetime) -> Month:
        """The last month that is complete at ``moment``."""
        return cls.of(cls.of(moment).start - timedelta(days=1))

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def recovery_point_id(self) -> str:
        return f"month={self.label}"

    def parameters(self) -> dict[str, datetime]:
        return {"start": self.start, "end": self.end}


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
        name = self.export.name
        log.info(
            "export %s %s: %s with start=%s end=%s", name, month.label, self.label, month.start, month.end
        )
        columns = self.hook.describe(sql, params, label=self.label)
        expected = self.hook.count(sql, params, label=self.label)
        log.info("export %s %s: the query returns %d rows in ClickHouse", name, month.label, expected)
        previous = self.catalog.get(KIND, name, month.recovery_point_id)
        if previous is not None and not allow_fewer_rows:
            before = previous.row_counts.get("rows", 0)
            if expected < before:
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

        generation = f"{utcnow():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        staging = f"{self.staging_prefix(month)}{generation}/"
        stale = self.hook.list_objects(self.bucket, self.staging_prefix(month))
        if stale:
            log.info(
                "export %s %s: removing %d staging object(s) of failed attempts",
                name,
                month.label,
                len(stale),
            )
            self.hook.s3.delete_objects(self.bucket, [o.key for o in stale])
        archived: list[ObjectEntry] = []
        try:
            if expected:
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
                    name,
                    month.label,
                    len(archived),
                )
                self.hook.s3.delete_objects(self.bucket, [o.key for o in archived])
            raise
        if not self._catalog_holds(month, generation):
            # A concurrent run of the same month replaced our manifest: its files are not ours to judge.
            log.warning(
                "export %s %s: the catalog no longer lists generation %s; removing nothing",
                name,
                month.label,
                generation,
            )
            return ExportResult(manifest=manifest, removed_keys=[])
        keep = {o.key for o in archived}
        # Only the files of the manifest this one replaced: never other runs' or unlisted objects.
        old = [o.key for o in (previous.objects if previous else []) if o.key not in keep]
        if old:
            log.info(
                "export %s %s: new manifest written; removing %d file(s) it replaces",
                name,
                month.label,
                len(old),
            )
            self.hook.s3.delete_objects(self.bucket, old)
        return ExportResult(manifest=manifest, removed_keys=old)

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
                    "export %s %s: archived %s (%d of %d)", name, month.label, key, number + 1, len(staged)
                )
        except BaseException:
            if archived:
                self.hook.s3.delete_objects(self.bucket, [o.key for o in archived])
            raise
        finally:  # staging is scratch space: gone whether the attempt worked or not
            leftovers = self.hook.list_objects(self.bucket, staging)
            if leftovers:
                self.hook.s3.delete_objects(self.bucket, [o.key for o in leftovers])
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
