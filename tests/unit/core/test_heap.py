"""The heap is frozen once per process: full collections then skip what the first task found."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from backup_pipelines.core import heap


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(heap, "_frozen", False)
    yield
    gc.unfreeze()


def test_the_first_call_freezes_what_exists_and_later_calls_do_nothing(fresh: None) -> None:
    assert heap.freeze_once() is True
    frozen = gc.get_freeze_count()
    assert frozen > 1000, "the process's objects (imports included) are in the permanent generation"
    kept = [[n] for n in range(1000)]  # noqa: F841 - tracked objects made after the first task

    assert heap.freeze_once() is False
    # nothing added (frozen objects freed since, by reference count, may lower the count)
    assert gc.get_freeze_count() <= frozen, "objects made later are collected as usual"
