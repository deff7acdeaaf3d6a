"""The kinds of dataset the catalog records, one per pipeline: the one enum every module uses."""

from __future__ import annotations

from enum import StrEnum


class DatasetKind(StrEnum):
    """Catalog kind of a dataset; the value is the catalog folder (``catalog/<kind>/<dataset>/``)."""

    CLICKHOUSE_SNAPSHOT = "clickhouse_snapshot"
    EMR_OUTPUT = "emr_output"
    KAFKA_ARCHIVE = "kafka_archive"
    DEEP_ARCHIVE_EXPORT = "deep_archive_export"

    @property
    def is_archive(self) -> bool:
        """Archives are sets of objects a drill samples; snapshots are chains a drill restores."""
        return self is not DatasetKind.CLICKHOUSE_SNAPSHOT
