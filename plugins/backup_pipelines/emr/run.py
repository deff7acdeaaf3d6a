"""One day's archive run: the copy pool fed from the listings, what became of each object, and the
error that names every object the run could not archive.

``bounded_map`` keeps at most ``window`` copies in flight and pulls the next listed object only
when one finishes, so the listing streams through the pool: memory holds the in-flight objects and
the manifest's entries, never the whole listing a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from backup_pipelines.core.errors import ArchiveCopyError, PermanentBackupError, VerificationError
from backup_pipelines.core.manifest import ObjectEntry
from backup_pipelines.core.s3_copy import Copied
from backup_pipelines.emr.listing import Pair, PreviousArchive, bare_etag

T = TypeVar("T")
R = TypeVar("R")

MAX_NAMED = 100  # objects named in the error itself; the log names every one
MAX_CONSECUTIVE_FAILURES = 50  # a run whose last 50 objects all failed stops: S3 itself is the problem


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int
) -> Generator[tuple[T, R | BaseException], None, None]:
    """``fn`` over ``items`` on ``workers`` threads, at most ``window`` in flight; yields
    ``(item, result or exception)`` as they complete. Closing the iterator cancels what has not started."""
    stream = iter(items)
    pending: dict[Future[R], T] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emr-archive") as pool:
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        item = next(stream)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[pool.submit(fn, item)] = item
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    error = future.exception()
                    yield item, (error if error is not None else future.result())
        finally:
            for future in pending:
                future.cancel()


@dataclass
class Failure:
    url: str
    reason: str
    permanent: bool

    def describe(self) -> str:
        return self.reason if self.reason.startswith(self.url) else f"{self.url}: {self.reason}"


@dataclass
class DayRun:
    """What one run of one job and day found and did, object by object."""

    job: str
    day: str
    source_url: str
    src_bucket: str
    src_prefix: str
    dest_bucket: str
    dest_prefix: str
    storage_class: str
    previous: PreviousArchive
    entries: list[ObjectEntry] = field(default_factory=list)
    source_etags: dict[str, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    breaks_previous: list[str] = field(default_factory=list)
    listed: int = 0
    copied: int = 0
    kept: int = 0
    carried: int = 0
    new_sources: int = 0
    size: int = 0
    consecutive_failures: int = 0
    stopped: str | None = None

    @property
    def label(self) -> str:
        return f"EMR job {self.job!r} for {self.day}"

    def dest_key(self, rel: str) -> str:
        return self.dest_prefix + rel

    def dest_url(self, rel: str) -> str:
        return f"s3://{self.dest_bucket}/{self.dest_key(rel)}"

    def saw_source(self, pair: Pair) -> None:
        assert pair.source is not None
        self.listed += 1
        if not self.previous.same_source(pair.rel, pair.source):
            self.new_sources += 1

    def keep(self, rel: str, entry: ObjectEntry, *, carried: bool = False) -> None:
        """An entry of the previous manifest stays in the point as it is."""
        if rel in self.previous.source_etags:
            self.source_etags[rel] = self.previous.source_etags[rel]
        self.entries.append(entry)
        self.size += entry.size
        if carried:
            self.carried += 1
        else:
            self.kept += 1

    def record_copy(self, pair: Pair, copied: Copied) -> None:
        assert pair.source is not None
        self.consecutive_failures = 0
        entry = ObjectEntry(
            key=self.dest_key(pair.rel),
            size=pair.source.size,
            sha256=copied.sha256_hex,
            checksum=copied.sha256 if copied.sha256 and copied.sha256_hex is None else None,
            etag=bare_etag(copied.etag),
            storage_class=self.storage_class,
        )
        if bare_etag(pair.source.etag) != entry.etag:
            self.source_etags[pair.rel] = bare_etag(pair.source.etag)
        before = self.previous.by_rel.get(pair.rel)
        if before is not None and (before.sha256, before.etag) != (entry.sha256, entry.etag):
            self.breaks_previous.append(entry.key)  # the previous point's copy was replaced
        self.entries.append(entry)
        self.size += entry.size
        self.copied += 1

    def record_failure(self, url: str, error: BaseException) -> None:
        self.failures.append(Failure(url, str(error), isinstance(error, PermanentBackupError)))
        self.consecutive_failures += 1
        if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES and self.stopped is None:
            self.stopped = (
                f"stopped after {self.consecutive_failures} failures in a row (S3 itself may be "
                "failing); the objects after them were not tried"
            )

    def record_lost(self, pair: Pair, entry: ObjectEntry) -> None:
        listed = (
            f"the archive lists ETag {bare_etag(pair.archived.etag)}, size {pair.archived.size}"
            if pair.archived is not None
            else "the archive no longer holds it"
        )
        self.failures.append(
            Failure(
                self.dest_url(pair.rel),
                f"listed in the day's manifest (ETag {entry.etag}, size {entry.size}) but {listed}, "
                "and its source is gone, so it cannot be archived again",
                permanent=True,
            )
        )
        self.breaks_previous.append(entry.key)

    @property
    def unchanged(self) -> bool:
        """Nothing new, changed or repaired: the previous verified manifest still says it all."""
        return self.previous.verified and self.copied == 0 and not self.failures

    @property
    def same_data(self) -> bool:
        """Every source is the version the previous manifest recorded: its capture time stands."""
        return self.previous.manifest is not None and self.new_sources == 0

    def error(self) -> Exception:
        """The run's failure: how many objects were not archived, each named with its reason."""
        self.failures.sort(key=lambda f: f.url)
        named = "; ".join(f.describe() for f in self.failures[:MAX_NAMED])
        more = len(self.failures) - MAX_NAMED
        text = (
            f"{self.label}: {len(self.failures)} object(s) could not be archived, so no manifest was "
            f"written and the day is not protected ({self.copied} copied and verified, {self.kept} "
            f"already archived, of {self.listed} listed under {self.source_url})"
            + (f"; {self.stopped}" if self.stopped else "")
            + f": {named}"
            + (f"; and {more} more, each named in the task log" if more > 0 else "")
        )
        if all(f.permanent for f in self.failures):
            return VerificationError(text)
        return ArchiveCopyError(text)
