"""Each region's S3 gateway and catalog: ``primary`` (``connections.aws``, ``storage``) or ``dr``
(``storage.replica``: its AWS connection, buckets and encryption; the DR catalog at the same prefix).

What restores, replays and drills take as ``source: primary | dr``, and what the monitor measures
the DR-region RPO from. See ``core.replica`` for what a replica is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError

from backup_pipelines.core.replica import held_for_replica, replica_section

if TYPE_CHECKING:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.manifest import Listing
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)

Source = Literal["primary", "dr"]
SOURCES: tuple[Source, ...] = ("primary", "dr")


def aws_conn_id(cfg: BackupConfig, source: Source) -> str:
    return cfg.connections.aws if source == "primary" else replica_section(cfg).aws_connection


def region_hook(cfg: BackupConfig, source: Source) -> BackupS3Hook:
    """The S3 gateway of a region: the primary's AWS connection, or the DR region's."""
    from backup_pipelines.core.s3 import BackupS3Hook

    return BackupS3Hook(aws_conn_id=aws_conn_id(cfg, source))


def region_catalog(cfg: BackupConfig, source: Source, *, s3: BackupS3Hook | None = None) -> Catalog:
    """The catalog of a region: ``primary`` is ``Catalog.from_config``; ``dr`` is the DR region's
    copy (same prefix, the replica's backup bucket and encryption, the DR connection)."""
    from backup_pipelines.core.catalog import Catalog

    if source == "primary":
        return Catalog.from_config(cfg, s3=s3)
    replica = replica_section(cfg)
    return Catalog.open(
        aws_conn_id=replica.aws_connection,
        bucket=replica.backup_bucket,
        prefix=cfg.storage.catalog_prefix,
        encryption=replica.encryption,
        s3=s3,
    )


def replica_listing(cfg: BackupConfig, kind: str, dataset: str) -> Listing | None:
    """The DR catalog's points of a dataset; None when the DR region cannot be read (retention
    then keeps everything: nothing leaves the primary that the replica may lack)."""
    try:
        return region_catalog(cfg, "dr").list_points(kind, dataset)
    except (BotoCoreError, ClientError) as exc:
        log.warning("DR catalog of %s/%s unreadable: %s", kind, dataset, exc)
        return None


def held_for_dr(cfg: BackupConfig, kind: str, dataset: str, primary: Listing) -> set[str]:
    """Primary points retention must keep until the DR region holds them (none without a replica);
    every verified point when the DR catalog cannot be read."""
    if cfg.storage.replica is None:
        return set()
    return held_for_replica(primary, replica_listing(cfg, kind, dataset))
