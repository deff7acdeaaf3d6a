"""
### sla_probe (test only)

A DAG for the scheduler-level deadline test: runs every minute with an SLA of 5 s after its data
interval's end, and its scheduled runs sleep 30 s, so each one misses its deadline. Backfill runs
finish at once (but long after their old deadlines), so they exercise the backfill suppression.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from backup_pipelines.core.config import load_config
from backup_pipelines.dagkit import dag_kwargs

SCHEDULE = "* * * * *"
cfg = load_config()
# The deadline comes from the config (deadlines.sla_probe), attached by dag_kwargs like every DAG's.
kwargs = dag_kwargs("sla_probe", schedule=SCHEDULE, doc_md=__doc__ or "", tags=["test"], cfg=cfg)

with DAG(**kwargs):

    @task
    def work(**context: Any) -> str:
        import time

        run_type = str(context["dag_run"].run_type)
        if run_type.endswith("scheduled"):
            time.sleep(30)
        return run_type

    work()
