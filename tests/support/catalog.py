"""One set of factories for manifests and catalogs, shared by unit, integration and e2e tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification
from backup_pipelines.core.s3 import BackupS3Hook

#: A fixed "now" for tests that do not care which day it is.
T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def manifest(
    rp_id: str | None = None,
    *,
    kind: str = DatasetKind.CLICKHOUSE_SNAPSHOT,
    dataset: str = "analytics",
    captured_at: datetime | None = None,
    hours_ago: float | None = None,
    base: str | None = None,
    state: str = "verified",
    bucket: str = "b",
    objects: list[ObjectEntry] | None = None,
    **fields: Any,
) -> Manifest:
    """A valid manifest; time given as ``captured_at`` or as ``hours_ago`` before ``T0``."""
    when = captured_at or (T0 - timedelta(hours=hours_ago or 0))
    point = rp_id or when.strftime("%Y%m%dT%H%MZ")
    fields.setdefault("location", f"s3://{bucket}/{kind}/{dataset}/{point}/")
    fields.setdefault("storage_class", "STANDARD")
    return Manifest(
        kind=DatasetKind(kind),
        dataset=dataset,
        recovery_point_id=point,
        captured_at=when,
        base=base,
        objects=objects or [],
        verification=Verification(state=state, verified_at=when if state != "unverified" else None),  # type: ignore[arg-type]
        **fields,
    )


class ClientS3Hook(BackupS3Hook):
    """A ``BackupS3Hook`` over a given boto3 client (in-process moto, or a client of the stack)."""

    def __init__(self, client: Any) -> None:
        super().__init__(aws_conn_id=None)
        self._given = client

    def get_conn(self) -> Any:
        return self._given


def catalog_on(client: Any, bucket: str, *, prefix: str = "catalog/") -> Catalog:
    """A catalog in ``bucket`` reached through ``client``."""
    return Catalog(ClientS3Hook(client), bucket=bucket, prefix=prefix)


@contextmanager
def moto_catalog(bucket: str = "catalog-test", *, prefix: str = "catalog/") -> Iterator[Catalog]:
    """A catalog in an in-process moto S3 (unit tests); the bucket exists."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield catalog_on(client, bucket, prefix=prefix)
