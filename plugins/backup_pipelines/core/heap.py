"""A task process's heap, frozen once after its imports, so full garbage collections skip it.

A task process holds Airflow, the providers, pydantic's schemas and this package: a heap that
Python's cyclic collector walks whole on every full (generation 2) collection. Measured in the
ClickHouse snapshot benchmark: 14 full collections of 0.12 s on average (0.17 s the longest), each
landing in whichever task was running, a tenth of a second or more on a task whose own overhead is a
tenth of a second. ``gc.freeze()`` moves what exists to a permanent generation the collector never
walks; objects made afterwards are collected as usual. Once per process: a process that runs many
tasks (``dag.test()``) freezes only what its first task found.
"""

from __future__ import annotations

import gc
import threading

_frozen = False
_lock = threading.Lock()


def freeze_once() -> bool:
    """Freeze the heap as it is now, the first time it is called in this process; True if it did."""
    global _frozen  # noqa: PLW0603 - once per process, under the lock
    with _lock:
        if _frozen:
            return False
        gc.freeze()  # no gc.collect() first: that would be the very full walk this avoids
        _frozen = True
        return True
