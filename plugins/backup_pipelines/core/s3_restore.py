"""A deferrable wait for S3 restores (GLACIER / DEEP_ARCHIVE -> readable) of a list of keys.

Real restores take minutes (Expedited) to 48 hours (DEEP_ARCHIVE Bulk), far too long to hold a
worker slot, so operators request the restores (``BackupS3Hook.request_restore``) and then
``self.defer(trigger=S3RestoreTrigger(...), method_name=..., timeout=...)``. The trigger polls
``HeadObject``'s ``Restore`` header for the keys still pending and fires once every key is
readable. Used by the EMR output recovery, the Kafka archive replay and the DR drill.

It polls with the synchronous hook in a thread (``asyncio.to_thread``): the amazon provider's
async client needs the optional ``aiobotocore`` package, and a HEAD every few minutes does not
need an async client. In the embedded stack moto completes restores at once, so the first poll
already fires (see ``backup_pipelines.core.s3``).

Events: ``{"status": "success", "bucket", "keys", "expiry"}`` when all keys are readable;
``{"status": "error", "message"}`` naming the first key that cannot become readable (missing, or
never requested when ``request_days`` is None). The deferral ``timeout`` bounds the wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class S3RestoreTrigger(BaseTrigger):
    """Fire when every key in ``keys`` of ``bucket`` is readable (restored or never archived).

    :param request_days: when set, keys whose restore was never requested are requested by the
        trigger (``request_tier``, kept readable for this many days); when None such a key is an
        error, because waiting for it would never end.
    """

    def __init__(
        self,
        *,
        bucket: str,
        keys: list[str],
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 60.0,
        request_days: int | None = None,
        request_tier: str = "Bulk",
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.keys = list(keys)
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.request_days = request_days
        self.request_tier = request_tier

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "bucket": self.bucket,
                "keys": self.keys,
                "aws_conn_id": self.aws_conn_id,
                "poll_interval": self.poll_interval,
                "request_days": self.request_days,
                "request_tier": self.request_tier,
            },
        )

    def _poll(self, pending: list[str], expiry: dict[str, str | None]) -> list[str]:
        """One round of HEADs (in a thread); returns the keys still pending."""
        from backup_pipelines.core.s3 import BackupS3Hook

        hook = BackupS3Hook(aws_conn_id=self.aws_conn_id)
        still = []
        for key in pending:
            status = hook.restore_status(self.bucket, key)
            if status.state == "not_requested":
                if self.request_days is None:
                    raise RuntimeError(
                        f"s3://{self.bucket}/{key} is {status.storage_class} and no restore was "
                        "requested for it; request one before waiting"
                    )
                status = hook.request_restore(
                    self.bucket, key, days=self.request_days, tier=self.request_tier
                )
            if status.readable:
                expiry[key] = status.expiry
            else:
                still.append(key)
        return still

    async def run(self) -> AsyncIterator[TriggerEvent]:
        pending = list(self.keys)
        expiry: dict[str, str | None] = {}
        total = len(pending)
        while True:
            try:
                pending = await asyncio.to_thread(self._poll, pending, expiry)
            except Exception as exc:
                yield TriggerEvent({"status": "error", "bucket": self.bucket, "message": str(exc)})
                return
            if not pending:
                self.log.info("all %d object(s) in s3://%s are readable", total, self.bucket)
                yield TriggerEvent(
                    {"status": "success", "bucket": self.bucket, "keys": self.keys, "expiry": expiry}
                )
                return
            self.log.info(
                "%d of %d object(s) in s3://%s restored; waiting for %s%s",
                total - len(pending),
                total,
                self.bucket,
                pending[0],
                f" and {len(pending) - 1} more" if len(pending) > 1 else "",
            )
            await asyncio.sleep(self.poll_interval)
