"""Independent calls at once: a task's latency is its sequential round trips to S3, not its bytes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` on threads of their own; their results in order. Every call finishes first;
    then the error of the first failing one (in argument order) is raised, as a sequential run would.

    For reads, or writes of different objects, on clients already built (a botocore client is
    thread-safe once created)."""
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="concurrently") as pool:
        futures = [pool.submit(call) for call in calls]
    return [future.result() for future in futures]
