"""Operators of ``dr_replication``: the package's S3 Replication rules, and the replication pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from backup_pipelines.core.config import BackupConfig, load_config

if TYPE_CHECKING:
    from airflow.sdk import Context


def replica_config() -> BackupConfig:
    """The config, or a skip when it names no DR region (the DAG is scheduled either way)."""
    cfg = load_config()
    if cfg.storage.replica is None:
        raise AirflowSkipException("storage.replica is not configured: there is no DR region to copy to")
    return cfg


class ApplyReplicationRulesOperator(BaseOperator):
    """``mode: s3_replication``: merge the package's replication rules into the source buckets
    (``replica.rules``); ``mode: copy`` puts none and says so."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.regions import region_hook
        from backup_pipelines.core.replica import replica_section
        from backup_pipelines.replica.rules import apply_replication_rules

        cfg = replica_config()
        if replica_section(cfg).mode != "s3_replication":
            self.log.info("storage.replica.mode is copy: no S3 Replication rules to manage")
            return {"mode": "copy", "buckets": []}
        results = apply_replication_rules(cfg, region_hook(cfg, "primary"), region_hook(cfg, "dr"))
        return {"mode": "s3_replication", "buckets": [r.model_dump() for r in results]}


class ReplicateToDrOperator(BaseOperator):
    """Bring the DR region up to date (``ReplicaService.replicate``); its summary as XCom."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.replica.service import ReplicaService

        return ReplicaService.from_config(replica_config()).replicate().model_dump(mode="json")
