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
