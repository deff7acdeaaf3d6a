"""Deadline alerts (SLA-miss emails) and failure emails, attached to every DAG by ``dagkit``.

Filled in by the "RPO windows enforced" issue; until then no alert is attached.
"""

from __future__ import annotations

from typing import Any

from backup_pipelines.config import BackupConfig


def failure_callbacks(cfg: BackupConfig) -> list[Any]:
    """``on_failure_callback`` for every task: an email with the log link."""
    return []


def deadline_alerts(cfg: BackupConfig, dag_id: str) -> list[Any]:
    """``DeadlineAlert``s for a DAG from ``cfg.deadlines``."""
    return []
