"""Triggers for waits that are answered by polling a check: recovery-point freshness, and any other.

``PollingCheckTrigger`` runs a *sync* check function (named by its import path, so the trigger
serialises to plain JSON) in a worker thread every ``poll_interval`` seconds until the check says
``ok`` or ``timeout_at`` passes. The sensor calls the very same function in ``poke``, so deferred
and non-deferred runs cannot disagree. Other waits (the Kafka retention guard) reuse it with their
own check function.

A check function takes keyword arguments of plain JSON values and returns a ``CheckResult``-shaped
dict: ``{"ok": bool, "detail": str, ...}`` (extra JSON keys are passed through to the task).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def import_check(path: str) -> Callable[..., dict[str, Any]]:
    """``package.module.function`` -> the function; a bad path names itself in the error."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ImportError(f"check path {path!r} is not a dotted path to a function")
    function = getattr(importlib.import_module(module_name), attr, None)
    if not callable(function):
        raise ImportError(f"check path {path!r} does not name a function")
    return function


def run_check(path: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    result = import_check(path)(**kwargs)
    if not isinstance(result, dict) or "ok" not in result:
        raise TypeError(f"check {path} returned {type(result).__name__}, not a dict with an 'ok' key")
    return result


class PollingCheckTrigger(BaseTrigger):
    """Poll a check in a worker thread until it passes or ``timeout_at`` (epoch seconds) passes."""

    def __init__(
        self,
        *,
        check_path: str,
        check_kwargs: dict[str, Any],
        poll_interval: float = 60.0,
        timeout_at: float | None = None,
    ) -> None:
        super().__init__()
        self.check_path = check_path
        self.check_kwargs = check_kwargs
        self.poll_interval = poll_interval
        self.timeout_at = timeout_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "check_path": self.check_path,
                "check_kwargs": self.check_kwargs,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        polls = 0
        while True:
            polls += 1
            try:
                # Hooks are blocking (boto3): keep them off the triggerer's event loop.
                result = await asyncio.to_thread(run_check, self.check_path, dict(self.check_kwargs))
            except Exception as exc:
                yield TriggerEvent(
                    {"status": "error", "ok": False, "detail": f"{type(exc).__name__}: {exc}", "polls": polls}
                )
                return
            if result["ok"]:
                yield TriggerEvent({**result, "status": "success", "polls": polls})
                return
            if self.timeout_at is not None and time.time() + self.poll_interval > self.timeout_at:
                yield TriggerEvent({**result, "status": "timeout", "polls": polls})
                return
            self.log.info("Check %s not met yet (poll %d): %s", self.check_path, polls, result.get("detail"))
            await asyncio.sleep(self.poll_interval)


class RecoveryPointFreshnessTrigger(PollingCheckTrigger):
    """Waits until every given dataset's newest verified recovery point is younger than its RPO."""

    def __init__(
        self,
        *,
        check_kwargs: dict[str, Any],
        poll_interval: float = 60.0,
        timeout_at: float | None = None,
        check_path: str = "backup_pipelines.monitor.sensors.check_recovery_point_freshness",
    ) -> None:
        super().__init__(
            check_path=check_path,
            check_kwargs=check_kwargs,
            poll_interval=poll_interval,
            timeout_at=timeout_at,
        )
