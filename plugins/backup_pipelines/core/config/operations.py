"""Sections of the operations around the pipelines: the RPO monitor and the DR drill."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from backup_pipelines.core.config.types import Duration, Prefix, RestoreTier, Strict


class RpoMonitor(Strict):
    schedule: str = "*/15 * * * *"
    status_key: str = "status/rpo.json"


class DrDrill(Strict):
    schedule: str = "0 6 * * 6"
    pick: Literal["latest", "random"] = "latest"
    random_window: Duration = timedelta(days=7)
    sample_objects: int = Field(default=2, ge=1)
    restore_tier: RestoreTier = "Bulk"
    restore_days: int = Field(default=1, ge=1)
    replay_sample_messages: int = Field(default=1000, ge=1)
    report_prefix: Prefix = "reports/dr-drill/"
    clickhouse_max_replica_lag: Duration | None = None
    kafka_dr_connection: str | None = None
    kafka_max_replication_lag: int | None = Field(default=None, ge=0)
    restore_poll_interval: Duration = timedelta(minutes=5)
    restore_timeout: Duration = timedelta(hours=48)
    clickhouse_restore_timeout: Duration = Field(
        default=timedelta(hours=2),
        description="longest wait for a ClickHouse RESTORE; past it the check is an error and RTO is missed",
    )
    freshness_timeout: Duration = Field(
        default=timedelta(0),
        description="how long the first task waits for fresh verified points before the drill starts anyway",
    )
    report_url: str | None = Field(
        default=None,
        description="link to a report in emails and the run note: a template with {bucket} and {key}",
    )
    airflow_api_connection: str | None = Field(
        default=None, description="HTTP connection to the Airflow API server; the drill notes its run there"
    )


# -- the price table of the Backups page's cost view (ui.cost) ---------------------------------------
# Defaults: AWS's published Amazon S3 prices for US East (N. Virginia), first 50 TB per month, in
# USD, as of 2025-01 (unchanged since Glacier Flexible Retrieval went to $0.0036 in 2021-12). Check
# the Amazon S3 pricing page for your region and set ``costs`` in the config; the page shows the
# table it used, with its source and date.


class ClassPrice(Strict):
    """What one storage class costs: storage, its minimum storage duration, retrieval per tier."""

    storage_gb_month: float = Field(ge=0)
    minimum_days: int = Field(default=0, ge=0)
    retrieval_gb: dict[RestoreTier, float] = {}


class StandardPrice(ClassPrice):
    storage_gb_month: float = Field(default=0.023, ge=0)


class IntelligentTieringPrice(ClassPrice):
    storage_gb_month: float = Field(default=0.023, ge=0)  # frequent access tier


class StandardIaPrice(ClassPrice):
    storage_gb_month: float = Field(default=0.0125, ge=0)
    minimum_days: int = Field(default=30, ge=0)
    retrieval_gb: dict[RestoreTier, float] = {"Standard": 0.01, "Bulk": 0.01, "Expedited": 0.01}


class OnezoneIaPrice(ClassPrice):
    storage_gb_month: float = Field(default=0.01, ge=0)
    minimum_days: int = Field(default=30, ge=0)
    retrieval_gb: dict[RestoreTier, float] = {"Standard": 0.01, "Bulk": 0.01, "Expedited": 0.01}


class GlacierIrPrice(ClassPrice):
    storage_gb_month: float = Field(default=0.004, ge=0)
    minimum_days: int = Field(default=90, ge=0)
    retrieval_gb: dict[RestoreTier, float] = {"Standard": 0.03, "Bulk": 0.03, "Expedited": 0.03}


class GlacierPrice(ClassPrice):
    storage_gb_month: float = Field(default=0.0036, ge=0)
    minimum_days: int = Field(default=90, ge=0)
    retrieval_gb: dict[RestoreTier, float] = {"Standard": 0.01, "Bulk": 0.0, "Expedited": 0.03}


class DeepArchivePrice(ClassPrice):
    storage_gb_month: float = Field(default=0.00099, ge=0)
    minimum_days: int = Field(default=180, ge=0)
    retrieval_gb: dict[RestoreTier, float] = {"Standard": 0.02, "Bulk": 0.0025}


class StorageClassPrices(Strict):
    standard: StandardPrice = StandardPrice()
    intelligent_tiering: IntelligentTieringPrice = IntelligentTieringPrice()
    standard_ia: StandardIaPrice = StandardIaPrice()
    onezone_ia: OnezoneIaPrice = OnezoneIaPrice()
    glacier_ir: GlacierIrPrice = GlacierIrPrice()
    glacier: GlacierPrice = GlacierPrice()
    deep_archive: DeepArchivePrice = DeepArchivePrice()

    def of(self, storage_class: str) -> ClassPrice:
        """The price of an S3 storage class name (``GLACIER_IR``); unknown names cost as STANDARD."""
        price = getattr(self, storage_class.lower(), None)
        return price if isinstance(price, ClassPrice) else self.standard


class Costs(Strict):
    """The price table of the cost page (defaults: one region, with its source and date)."""

    currency: str = "USD"
    region: str = "us-east-1"
    source: str = "Amazon S3 pricing page, US East (N. Virginia), first 50 TB per month"
    as_of: str = Field(default="2025-01", pattern=r"^\d{4}-\d{2}(-\d{2})?$")
    prices: StorageClassPrices = StorageClassPrices()
    forecast_months: int = Field(default=12, ge=1, le=60)
    growth_window: Duration = Field(
        default=timedelta(days=30), description="how far back the catalog's growth is measured"
    )
