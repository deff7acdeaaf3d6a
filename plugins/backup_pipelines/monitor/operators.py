"""The RPO monitor's operator: one monitor pass per run (the work is in ``monitor.service``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from backup_pipelines.core.config import load_config

if TYPE_CHECKING:
    from airflow.sdk import Context


class RpoMonitorOperator(BaseOperator):
    """Measure every dataset, publish gauges, email breach/recovery edges, write the status JSON."""

    template_fields: Sequence[str] = ()

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.monitor.service import run_monitor

        return run_monitor(load_config(), run_id=context["run_id"]).summary()
