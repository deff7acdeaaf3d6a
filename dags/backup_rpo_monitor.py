"""
### backup_rpo_monitor

Every 15 minutes: for every dataset in the config, how old its newest **verified** recovery point
is, against that dataset's RPO (`objectives.rpo`).

- A dataset that goes over its RPO sends **one** `[RPO BREACH]` email to `alerts.recipients`;
  it sends `[RPO RECOVERED]` once when it is back within RPO. No email while nothing changes.
  The breach state lives in the status JSON, so it survives between runs.
- Ages are published as Airflow metrics: `backup_pipelines.rpo.age_seconds.<kind>.<dataset>`
  and `backup_pipelines.rpo.breached.<kind>.<dataset>` (0/1) (`Stats.gauge`, so StatsD/OTel).
- A small JSON status goes to `s3://<storage.backup_bucket>/<rpo_monitor.status_key>`.
- A warning on a dataset's newest verified point (a Kafka topic whose `retention.ms` is shorter
  than the archive window plus grace) is logged every run and shown in the status and summary.

Ages are measured from the wall clock at run time (monitoring is about *now*), so a backfill of
this DAG measures the present, not the past. No verified point, or an unreadable catalog,
counts as a breach.
"""

from __future__ import annotations

from airflow.sdk import DAG

from backup_pipelines.core.config import load_config
from backup_pipelines.dagkit import dag_kwargs
from backup_pipelines.monitor.operators import RpoMonitorOperator

cfg = load_config()

with DAG(
    **dag_kwargs(
        "backup_rpo_monitor",
        schedule=cfg.rpo_monitor.schedule,
        doc_md=__doc__ or "",
        tags=["monitoring", "rpo"],
        cfg=cfg,
    )
):
    RpoMonitorOperator(task_id="check_rpo")
