"""``concurrently``: results in argument order, every call finished before an error is raised."""

from __future__ import annotations

import threading
import time

import pytest

from backup_pipelines.core.parallel import concurrently


def test_calls_overlap_and_results_keep_their_order() -> None:
    barrier = threading.Barrier(3, timeout=5)  # would time out if the calls ran one after another

    def call(value: str) -> str:
        barrier.wait()
        return value

    assert concurrently(lambda: call("a"), lambda: call("b"), lambda: call("c")) == ["a", "b", "c"]


def test_the_first_failing_call_in_argument_order_raises_after_every_call_finished() -> None:
    finished: list[str] = []

    def slow_ok() -> None:
        time.sleep(0.1)
        finished.append("slow")

    def fails(message: str, delay: float) -> None:
        time.sleep(delay)
        raise ValueError(message)

    with pytest.raises(ValueError, match="first"):
        concurrently(lambda: fails("first", 0.05), lambda: fails("second", 0.0), slow_ok)
    assert finished == ["slow"]


def test_one_call_runs_in_this_thread() -> None:
    assert concurrently(lambda: threading.current_thread().name) == [threading.current_thread().name]
