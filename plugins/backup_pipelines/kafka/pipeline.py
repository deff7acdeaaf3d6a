"""The archive's stages overlapped: the task's thread consumes while one thread converts the
previous batches to Arrow, one compresses and writes the row groups before into files and hashes
each closed file (``kafka.spool``), and one uploads and checks the file before that.

Each stage is a thread fed by a bounded queue, so memory stays flat: when a later stage falls
behind, the one before it waits. pyarrow (conversion aside), zstd, hashlib and the sockets release
the GIL, so on two cores the stages run side by side. A failure in any stage stops the others; the
task's thread raises the first failure (the root cause, not the knock-on "a later stage stopped").
Each stage keeps its thread's CPU seconds and how long the stage before it waited on its full
queue: what bounds the archive's speed shows in the task log.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

log = logging.getLogger(__name__)

_DONE: Final = object()
# Seconds between looks at a failed neighbour while waiting on a full or empty queue.
_WAKE: Final = 0.2


class StageStopped(Exception):
    """A later stage failed, so this one stops; the later stage's error is the one reported."""


class Stage:
    """One worker thread: ``handle`` is called with every item ``put``, in order; ``finish`` (in
    the same thread) after the last one."""

    def __init__(
        self,
        name: str,
        handle: Callable[[Any], None],
        *,
        finish: Callable[[], object] | None = None,
        maxsize: int = 2,
        downstream: Stage | None = None,
    ) -> None:
        self.name = name
        self.handle = handle
        self.finish = finish
        self.downstream = downstream
        self.error: BaseException | None = None
        # What the stage cost (its thread's CPU seconds), and how long the stage before it waited
        # on this one's full queue (this stage was the slower one meanwhile).
        self.cpu_seconds = 0.0
        self.waited_seconds = 0.0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.thread_time()
        try:
            while True:
                item = self._get()
                if item is _DONE:
                    break
                self.handle(item)
            if self.finish is not None:
                self.finish()
        except BaseException as exc:
            self.error = exc
            self._stop.set()
        finally:
            self.cpu_seconds = time.thread_time() - started

    def _get(self) -> Any:
        while True:
            if self._stop.is_set():
                raise StageStopped(self.name)
            with contextlib.suppress(queue.Empty):
                return self._queue.get(timeout=_WAKE)

    def stopped(self) -> bool:
        """Whether this stage or one after it has failed or is being aborted."""
        here = self._stop.is_set() or self.error is not None
        return here or (self.downstream is not None and self.downstream.stopped())

    def put(self, item: Any) -> None:
        """Hand ``item`` over; waits while the queue is full. Raises ``StageStopped`` once this
        stage or one after it failed (``failure`` tells why)."""
        if self.stopped():
            raise StageStopped(self.name)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(item)
            return
        started = time.perf_counter()
        try:
            while True:
                if self.stopped():
                    raise StageStopped(self.name)
                with contextlib.suppress(queue.Full):
                    self._queue.put(item, timeout=_WAKE)
                    return
        finally:
            self.waited_seconds += time.perf_counter() - started

    def failure(self) -> BaseException | None:
        """The root failure of this stage and the ones after it (the first real error)."""
        later = self.downstream.failure() if self.downstream is not None else None
        if later is not None:
            return later
        return None if isinstance(self.error, StageStopped) else self.error

    def close(self) -> None:
        """The last item was put: let this stage and the ones after it finish, and wait for them."""
        self.put(_DONE)
        self._thread.join()
        if self.error is not None:
            raise StageStopped(self.name)
        if self.downstream is not None:
            self.downstream.close()

    def abort(self) -> list[Any]:
        """Stop this stage and the ones after it (each finishes the item in hand); returns the
        items never handled."""
        stages = []
        stage: Stage | None = self
        while stage is not None:
            stage._stop.set()
            stages.append(stage)
            stage = stage.downstream
        left = []
        for stage in stages:
            stage._thread.join()
            while True:
                try:
                    item = stage._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _DONE:
                    left.append(item)
        return left


@contextlib.contextmanager
def fewer_collections(threshold: int = 100_000) -> Iterator[None]:
    """Garbage collection tuned for a long read: the objects alive now (imports, clients) are set
    aside (``gc.freeze``), so a collection no longer walks them, and young collections run every
    ``threshold`` allocations instead of 700. A read allocates a few objects per record and
    frees them in batches; without this the collector took about half of the consuming thread's
    time. Restored on exit."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], threshold), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
