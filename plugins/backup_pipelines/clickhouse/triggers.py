"""Deferrable wait on a ClickHouse ``BACKUP ... ASYNC``: poll ``system.backups`` by id from the triggerer.

With a ClickHouse server the backup keeps running server-side while the task is deferred, so a
worker slot is not held for hours. The triggerer reaches the server over HTTP with the same
``ClickHouseHook`` connection. chDB cannot use this path (the backup runs inside the task's own
process, and a second process cannot open the chDB directory): the operator waits in-process there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

RUNNING = ("CREATING_BACKUP", "RESTORING")


def fetch_status(clickhouse_conn_id: str, backup_id: str) -> dict[str, Any] | None:
    """One blocking poll: the backup's row of ``system.backups`` as plain JSON, or None."""
    from backup_pipelines.clickhouse.engine import ClickHouseEngine

    engine = ClickHouseEngine(clickhouse_conn_id=clickhouse_conn_id)
    try:
        status = engine.backup_status(backup_id)
    finally:
        engine.client.close()
    if status is None:
        return None
    return {
        "id": status.id,
        "status": status.status,
        "error": status.error,
        "num_files": status.num_files,
        "total_size": status.total_size,
    }


class ClickHouseBackupTrigger(BaseTrigger):
    """Fire once the backup (or restore) ``backup_id`` leaves its running state, or at ``timeout_at``."""

    def __init__(
        self,
        *,
        clickhouse_conn_id: str,
        backup_id: str,
        poll_interval: float = 10.0,
        timeout_at: float | None = None,
    ) -> None:
        super().__init__()
        self.clickhouse_conn_id = clickhouse_conn_id
        self.backup_id = backup_id
        self.poll_interval = poll_interval
        self.timeout_at = timeout_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "clickhouse_conn_id": self.clickhouse_conn_id,
                "backup_id": self.backup_id,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        polls = 0
        while True:
            polls += 1
            try:
                # clickhouse-connect is blocking: keep it off the triggerer's event loop.
                row = await asyncio.to_thread(fetch_status, self.clickhouse_conn_id, self.backup_id)
            except Exception as exc:
                yield TriggerEvent(
                    {"status": "error", "id": self.backup_id, "error": f"{type(exc).__name__}: {exc}"}
                )
                return
            if row is None:
                yield TriggerEvent(
                    {
                        "status": "missing",
                        "id": self.backup_id,
                        "error": "not in system.backups (the server restarted?)",
                    }
                )
                return
            if row["status"] not in RUNNING:
                yield TriggerEvent({**row, "polls": polls})
                return
            if self.timeout_at is not None and time.time() >= self.timeout_at:
                yield TriggerEvent({**row, "status": "timeout", "polls": polls})
                return
            self.log.info("backup %s still %s (poll %d)", self.backup_id, row["status"], polls)
            await asyncio.sleep(self.poll_interval)
