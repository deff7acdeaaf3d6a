"""Where a partition read is, and the rules that decide what is archived and where it stops.

Coverage is by offsets, never by clock. A read starts at an offset (the previous archive's end)
and stops at the cut: the partition's end offset the plan observed when the window closed (or, for
a read without a cut, the end of the partition). A record's timestamp never decides where a window
ends, so a record stamped far in the future, far in the past or not at all can neither hold a
partition back nor be left out. The end of the partition is learnt from the partition-EOF event or
the fetch responses, not from ``get_watermark_offsets``: the embedded broker answers ``(0, 1)``
there after 1000 records, while its fetch responses carry the true high watermark. A time-based
start is a lower bound (Tansu answers 0 to ``offsets_for_times``): the records before the window
start are skipped while reading.

Offsets a ``read_committed`` consumer never sees (transaction markers, aborted or compacted
records) are counted as offsets without a record and count as covered, once a low watermark read
after the skip proves retention had not deleted them (``ReadCursor.record_gap``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from backup_pipelines.core.errors import BackupPipelinesError, OffsetGapError

log = logging.getLogger(__name__)

# Seconds between low-watermark reads that prove skipped offsets were never deleted.
GAP_PROOF_INTERVAL: Final = 10.0
# Runs of offsets without a record listed in a manifest (the rest are only counted).
NO_RECORD_SAMPLE_RUNS: Final = 10


@dataclass
class ReadResult:
    """What a partition read covered: ``[start_offset, end_offset)`` and why it stopped."""

    topic: str
    partition: int
    requested_start: int
    start_offset: int
    end_offset: int = -1
    records: int = 0
    skipped_before_window: int = 0
    stopped_by: str = ""
    # Offsets the broker holds no readable record for (transaction markers, aborted or compacted
    # records): counted, not listed, as a transactional topic has one run per transaction.
    no_record_offsets: int = 0
    no_record_runs: int = 0
    no_record_sample: list[tuple[int, int]] = field(default_factory=list)
    high_watermark: int | None = None
    # Records stamped outside the archive's window (``before``, ``after``, ``none``), when counted.
    outside_window: dict[str, int] = field(default_factory=dict)
    # What each stage of the archive cost: its thread's CPU seconds (``cpu_s``) and the seconds it
    # waited on the next stage's full queue (``waited_s``); ``wall_s`` for the whole read.
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    def no_record(self) -> dict[str, Any]:
        """The manifest's account of the offsets without a record (empty when there are none)."""
        if not self.no_record_offsets:
            return {}
        return {
            "offsets": self.no_record_offsets,
            "runs": self.no_record_runs,
            "first_runs": [list(run) for run in self.no_record_sample],
        }


def raise_unless_transient(error: Any, label: str) -> None:
    """A Kafka error a retry cannot fix (fatal, or a broker error that is not retriable) fails the
    read naming the partition; a client-side or retriable one is waited out."""
    if error.fatal() or not (error.retriable() or error.code() < 0):
        raise BackupPipelinesError(f"{label}: Kafka error {error.str()}")


class ReadCursor:
    """Where a partition read is, and the rules that decide what is archived and where it stops."""

    def __init__(
        self,
        result: ReadResult,
        start_offset: int,
        skip_before_ms: int | None,
        end_offset: int | None,
        max_records: int | None,
        *,
        low_watermark: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.result = result
        self.monotonic = monotonic
        self.start = start_offset
        self.expected = start_offset
        self.skip_before_ms = skip_before_ms
        self.end_offset = end_offset
        self.max_records = max_records
        self.low_watermark = low_watermark
        self.done = False
        # The oldest run not yet proven never-deleted; later runs start later, so proving it
        # proves them too.
        self._unproven: tuple[int, int] | None = None
        self._last_proof = self.monotonic()
        if end_offset is not None and end_offset <= start_offset:
            self._stop(start_offset, "cut")  # nothing was written since the previous archive

    @property
    def label(self) -> str:
        return f"{self.result.topic}[{self.result.partition}]"

    def _stop(self, end_offset: int, reason: str) -> None:
        self._prove_gaps()
        self.result.end_offset = end_offset
        self.result.stopped_by = reason
        self.done = True

    def _head_deleted(self) -> bool:
        """Whether the offsets at the start of the read that held no record were deleted
        (retention moved the low watermark past the start) rather than never readable."""
        if self.low_watermark is None:
            return True
        low = self.low_watermark()
        log.info("%s: no record at offset %d; low watermark %d", self.label, self.start, low)
        return low > self.start

    def record_gap(self, first: int, end: int) -> None:
        """Offsets ``[first, end)`` the broker served no record for: transaction markers, aborted
        or compacted records, which count as covered, or records deleted by retention after the
        read started (a broker that skips to the next batch it holds instead of answering
        OFFSET_OUT_OF_RANGE), which is data loss. The low watermark tells them apart: read after
        the skip, it is still at or before ``first`` only if ``first`` was not deleted (it only
        moves forward, and retention deletes from the head). Gaps are proven in batches, every
        ``GAP_PROOF_INTERVAL`` seconds (``prove_if_due``, after every batch) and when the read
        stops, so a skip is proven before retention can catch up with it."""
        result = self.result
        result.no_record_offsets += end - first
        result.no_record_runs += 1
        if len(result.no_record_sample) < NO_RECORD_SAMPLE_RUNS:
            result.no_record_sample.append((first, end))
        if self._unproven is None:
            self._unproven = (first, end)

    def prove_if_due(self) -> None:
        if self._unproven is not None and self.monotonic() - self._last_proof > GAP_PROOF_INTERVAL:
            self._prove_gaps()

    def _prove_gaps(self) -> None:
        if self._unproven is None or self.low_watermark is None:
            return
        low = self.low_watermark()
        self._last_proof = self.monotonic()
        first, end = self._unproven
        if first < low:
            raise OffsetGapError(
                f"{self.label}: offsets {first}-{end - 1} held no record when read and the low "
                f"watermark has since moved past them (to {low}): they were deleted before they were "
                "archived, or retention is deleting records as fast as the archive reads them"
            )
        self._unproven = None

    def _skip_to(self, offset: int) -> None:
        """Still skipping (a time-based start) when the read reaches ``offset``: nothing of the
        window was before it, so the window starts there."""
        self.skip_before_ms = None
        self.expected = self.result.start_offset = offset

    def _missing(self, end: int, how: str) -> None:
        """Offsets ``[expected, end)`` served no record: lost at the head of the read, or a gap."""
        if self.result.records == 0 and self.expected == self.start and self._head_deleted():
            raise OffsetGapError(
                f"{self.label}: offsets {self.expected}-{end - 1} are missing: {how}; "
                "they were deleted before they were archived"
            )
        self.record_gap(self.expected, end)

    def on_error(self, message: Any) -> None:
        from confluent_kafka import KafkaError

        error = message.error()
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            high = int(message.offset())
            self.result.high_watermark = high
            if high < self.start:
                raise OffsetGapError(
                    f"{self.label}: the partition ends at offset {high}, before offset {self.start} "
                    "where the archive continues; was the topic deleted and re-created or truncated?"
                )
            cut = self.end_offset
            end, reason = (cut, "cut") if cut is not None and high >= cut else (high, "end_of_partition")
            if self.skip_before_ms is not None:
                self._skip_to(max(end, self.expected))
            elif end > self.expected:
                self._missing(end, f"the partition ends at {high} with none of them readable")
            self._stop(max(end, self.expected), reason)
            return
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            raise OffsetGapError(
                f"{self.label}: offset {self.expected} is no longer on the broker ({error.str()}); "
                f"offsets from {self.expected} were deleted before they were archived"
            )
        raise_unless_transient(error, self.label)
        log.warning("%s: transient Kafka error, retrying: %s", self.label, error)

    def accept(self, offset: int, ts_type: int, ts: int) -> bool:
        """Whether the record at ``offset`` belongs to the archive; sets ``done`` at the cut."""
        if offset < self.expected:
            return False  # already seen (a re-fetch after a reconnect)
        result = self.result
        cut = self.end_offset
        if self.skip_before_ms is not None:
            if cut is not None and offset >= cut:
                self._skip_to(cut)
                self._stop(cut, "cut")
                return False
            if ts_type and ts < self.skip_before_ms:
                result.skipped_before_window += 1
                self.expected = result.start_offset = offset + 1
                return False
            self._skip_to(offset)
        if offset > self.expected:
            end = offset if cut is None else min(offset, cut)
            self._missing(end, f"the first record read is at {offset}")
            self.expected = end
        if cut is not None and offset >= cut:
            self._stop(cut, "cut")
            return False
        if self.max_records is not None and result.records >= self.max_records:
            self._stop(offset, "max_records")
            return False
        result.records += 1
        self.expected = offset + 1
        if cut is not None and self.expected == cut:
            self._stop(cut, "cut")
        return True

    def take(self, offsets: Sequence[int], stamps: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """The slice ``[i, j)`` of a batch of records (in offset order, without error events) that
        belongs to the archive; the common case, a batch that continues the read without a jump
        and ends before the cut, is decided without looking at each record."""
        n = len(offsets)
        if self.done or not n:
            return 0, 0
        first, last, cut, limit = offsets[0], offsets[-1], self.end_offset, self.max_records
        if (
            self.skip_before_ms is None
            and first == self.expected
            and last - first == n - 1
            and (cut is None or last < cut)
            and (limit is None or self.result.records + n <= limit)
        ):
            self.result.records += n
            self.expected = last + 1
            if cut is not None and self.expected == cut:
                self._stop(cut, "cut")
            return 0, n
        taken = [k for k in range(n) if not self.done and self.accept(offsets[k], *stamps[k])]
        return (taken[0], taken[-1] + 1) if taken else (0, 0)
