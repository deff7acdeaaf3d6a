"""Replaying archived events into a topic: the plan (which files), the thaw, the produce.

Files are found through the manifests' index (partition, offsets, time range); each is
downloaded, checked against its index entry (SHA-256, offsets, count) and only then produced, in
offset order per partition, with the original keys, values, headers and timestamps. The DR drill
replays a sample the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import (
    BackupPipelinesError,
    ChecksumMismatchError,
    ObjectNotRestoredError,
    ParamError,
    RecoveryPointNotFoundError,
    SourceNotFoundError,
    UnsafeOperationError,
    VerificationError,
)
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.manifest import Manifest
from backup_pipelines.core.replica import replica_section
from backup_pipelines.kafka.archive import to_ms
from backup_pipelines.kafka.client import KafkaClient
from backup_pipelines.kafka.cursor import ReadResult
from backup_pipelines.kafka.files import iter_file_slice, verify_archive_file
from backup_pipelines.kafka.params import ReplayParams
from backup_pipelines.kafka.parquet import Record

if TYPE_CHECKING:
    from confluent_kafka import Producer

    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)


class ReplayPlan(BaseModel):
    """Which archive files a replay reads, into which topic (XCom of the ``plan`` task)."""

    topic: str
    target_topic: str
    bucket: str
    dry_run: bool
    max_messages: int | None
    window: dict[str, int | None]
    files: list[dict[str, Any]]
    source: Literal["primary", "dr"] = "primary"


def plan_replay(cfg: BackupConfig, catalog: Catalog, params: ReplayParams) -> ReplayPlan:
    """The files of the asked topic, partitions and range, through the manifests' index.

    Refused before anything is read or created: a topic no archive is configured for, partitions
    its archive does not have, a target topic that a configured archive reads (unless
    ``confirm_same_topic``), a range no archived file holds.
    """
    topics = [t.name for t in cfg.kafka_archive.topics]
    topic = params.topic or (topics[0] if topics else None)
    if topic is None or topic not in topics:
        raise ParamError(_unknown_topic(topic, topics))
    target = params.target_topic or f"{topic}.replay"
    _check_target(topic, target, topics, confirmed=params.confirm_same_topic)
    window = {
        "start_ms": None if params.start_time is None else to_ms(params.start_time),
        "end_ms": None if params.end_time is None else to_ms(params.end_time),
        "start_offset": params.start_offset,
        "end_offset": params.end_offset,
    }
    listing = catalog.list_points(DatasetKind.KAFKA_ARCHIVE, topic)
    if not listing.points:
        raise RecoveryPointNotFoundError(f"topic {topic!r} has no archive in the catalog")
    archived = sorted({o.partition for m in listing.points for o in m.offsets})
    unknown = sorted(set(params.partitions or []) - set(archived))
    if unknown:
        raise ParamError(
            f"param partitions: {', '.join(map(str, unknown))} not in the archive of {topic!r} "
            f"(archived partitions: {', '.join(map(str, archived))})"
        )
    files = select_replay_files(listing.points, partitions=params.partitions, **window)
    if not files:
        asked = ", ".join(f"{k}={v}" for k, v in window.items() if v is not None) or "everything"
        raise RecoveryPointNotFoundError(
            f"no archived file of topic {topic!r} holds records of the asked range ({asked}"
            f"{f', partitions {params.partitions}' if params.partitions else ''})"
        )
    return ReplayPlan(
        topic=topic,
        target_topic=target,
        bucket=cfg.storage.archive_bucket
        if params.source == "primary"
        else replica_section(cfg).archive_bucket,
        source=params.source,
        dry_run=params.dry_run,
        max_messages=params.max_messages,
        window=window,
        files=files,
    )


def _unknown_topic(topic: str | None, topics: list[str]) -> str:
    import difflib

    configured = ", ".join(topics) or "none"
    if topic is None:
        return f"param topic: name the archived topic to replay (kafka_archive.topics: {configured})"
    close = difflib.get_close_matches(topic, topics, n=3, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return (
        f"param topic: {topic!r} is not a configured archive topic (kafka_archive.topics: {configured}{hint})"
    )


def _check_target(topic: str, target: str, topics: list[str], *, confirmed: bool) -> None:
    """A replay writes only into a topic no configured archive reads, unless confirmed."""
    if confirmed or target not in topics:
        return
    if target == topic:
        raise UnsafeOperationError(
            f"target_topic {target!r} is the source topic: replaying into it duplicates live events; "
            "set confirm_same_topic to do it anyway"
        )
    raise UnsafeOperationError(
        f"target_topic {target!r} is the live topic of another archived dataset (kafka_archive/{target}): "
        f"replaying {topic!r} into it mixes foreign events into it, and its next archive keeps them as "
        "its own; choose another target_topic, or set confirm_same_topic to write there anyway"
    )


@dataclass
class ReplayResult:
    target_topic: str
    produced: int = 0
    by_partition: dict[int, int] = field(default_factory=dict)
    files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "by_partition": {str(k): v for k, v in self.by_partition.items()}}


class Replayer:
    """Produces archived records into a topic, and reads a topic back to compare."""

    def __init__(self, kafka: KafkaClient) -> None:
        self.kafka = kafka

    def replay_records(
        self,
        records: Iterable[Record],
        *,
        target_topic: str,
        target_partitions: int | None = None,
        producer: Producer | None = None,
        flush_timeout: float = 120.0,
        progress_every: int = 100_000,
    ) -> ReplayResult:
        """Produce records with their original keys, values, headers and timestamps.

        A record goes to its original partition number when the target has enough partitions
        (so per-partition offset order is kept), otherwise to ``partition % target_partitions``.
        Delivery failures raise after the flush.
        """
        client = producer or self.kafka.producer()
        result = ReplayResult(target_topic=target_topic)
        failures: list[str] = []

        def _delivered(err: Any, msg: Any) -> None:
            if err is not None and len(failures) < 5:
                failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

        for record in records:
            partition = record.partition
            if target_partitions:
                partition %= target_partitions
            kwargs: dict[str, Any] = {"partition": partition, "on_delivery": _delivered}
            if record.timestamp_ms is not None and record.timestamp_type:
                kwargs["timestamp"] = record.timestamp_ms
            if record.headers is not None:
                kwargs["headers"] = record.headers
            while True:
                try:
                    client.produce(target_topic, value=record.value, key=record.key, **kwargs)
                    break
                except BufferError:
                    client.poll(0.5)
            result.produced += 1
            result.by_partition[partition] = result.by_partition.get(partition, 0) + 1
            if result.produced % 10_000 == 0:
                client.poll(0)
            if result.produced % progress_every == 0:
                log.info("replay to %s: %d records produced", target_topic, result.produced)
        remaining = client.flush(flush_timeout)
        if remaining or failures:
            raise BackupPipelinesError(
                f"replay to {target_topic}: {remaining} record(s) undelivered after {flush_timeout:.0f}s; "
                f"failures: {'; '.join(failures) or 'none reported'}"
            )
        return result

    def replay_file(
        self,
        path: Path | str,
        entry: dict[str, Any],
        *,
        target_topic: str,
        target_partitions: int | None = None,
        first_offset: int | None = None,
        last_offset: int | None = None,
        max_records: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        producer: Producer | None = None,
    ) -> ReplayResult:
        """Verify an archive file against its index entry, then replay (a slice of) it.

        A file that fails verification is never replayed: ``ChecksumMismatchError`` (SHA-256) or
        ``VerificationError`` (offsets, counts) names the file and the problems.
        """
        check = verify_archive_file(path, entry)
        if not check.ok:
            error = (
                ChecksumMismatchError if any("SHA-256" in p for p in check.problems) else VerificationError
            )
            raise error(f"archive file {check.key} failed verification: {'; '.join(check.problems)}")
        records = iter_file_slice(
            path,
            first_offset=first_offset,
            last_offset=last_offset,
            limit=max_records,
            start_ms=start_ms,
            end_ms=end_ms,
        )
        result = self.replay_records(
            records, target_topic=target_topic, target_partitions=target_partitions, producer=producer
        )
        result.files = 1
        return result

    def read_back(
        self, topic: str, partition: int, *, start_offset: int = 0, max_records: int | None = None
    ) -> list[Record]:
        """Every record of a partition from ``start_offset`` to its end, as archived records.

        For comparisons after a replay (the DR drill compares them record for record).
        """
        result = ReadResult(topic, partition, requested_start=start_offset, start_offset=start_offset)
        return list(
            self.kafka.read_partition(topic, partition, start_offset, result, max_records=max_records)
        )


# -- replay of archived ranges ---------------------------------------------------------------------


def select_replay_files(
    points: Sequence[Manifest],
    *,
    partitions: Sequence[int] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    start_offset: int | None = None,
    end_offset: int | None = None,
) -> list[dict[str, Any]]:
    """Archive files (index entries) that may hold records of the range, by partition and offset.

    Offsets are ``[start_offset, end_offset)``, times ``[start_ms, end_ms)``; a file is chosen
    when its indexed offset range and time range overlap them.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for manifest in points:
        for obj in manifest.objects:
            if obj.partition is None or obj.first_offset is None or obj.last_offset is None:
                continue
            if partitions is not None and obj.partition not in partitions:
                continue
            if start_offset is not None and obj.last_offset < start_offset:
                continue
            if end_offset is not None and obj.first_offset >= end_offset:
                continue
            if start_ms is not None and obj.last_timestamp and to_ms(obj.last_timestamp) < start_ms:
                continue
            if end_ms is not None and obj.first_timestamp and to_ms(obj.first_timestamp) >= end_ms:
                continue
            chosen[obj.key] = obj.model_dump(mode="json", exclude_none=True) | {"topic": manifest.dataset}
    return sorted(chosen.values(), key=lambda e: (e["partition"], e["first_offset"]))


def _target_partitions(kafka: KafkaClient, plan: dict[str, Any]) -> int:
    """Create the target topic when missing, with as many partitions as the source had."""
    wanted = max(f["partition"] for f in plan["files"]) + 1
    try:
        wanted = max(wanted, len(kafka.partitions(plan["topic"])))
    except SourceNotFoundError:
        log.info(
            "source topic %s is gone; creating %s with %d partitions",
            plan["topic"],
            plan["target_topic"],
            wanted,
        )
    return kafka.ensure_topic(plan["target_topic"], partitions=wanted)


def download_archive_file(s3: BackupS3Hook, bucket: str, entry: dict[str, Any], spool: Path) -> Path:
    """A local copy of an archive file; a cold one that is not restored is named as such."""
    local = spool / f"{entry['partition']}-{entry['first_offset']}.parquet"
    try:
        s3.client.download_file(bucket, entry["key"], str(local))
    except Exception as exc:
        if "InvalidObjectState" in str(exc):
            raise ObjectNotRestoredError(
                f"s3://{bucket}/{entry['key']} is {entry.get('storage_class')} and not restored"
            ) from None
        raise
    return local


def replay_plan(kafka: KafkaClient, s3: BackupS3Hook, plan: dict[str, Any], spool: Path) -> dict[str, Any]:
    """Replay the files of a plan (from ``KafkaReplayPlanOperator``) into its target topic.

    Files are read partition by partition in offset order; each is downloaded, checked against
    its index entry (SHA-256, offsets, count) and only then produced. ``dry_run`` reports what
    would be replayed without reading or producing anything.
    """
    files = plan["files"]
    window = plan.get("window", {})
    limit = plan.get("max_messages")
    summary: dict[str, Any] = {
        "topic": plan["topic"],
        "target_topic": plan["target_topic"],
        "files": len(files),
        "dry_run": plan["dry_run"],
        "produced": 0,
        "by_partition": {},
    }
    if plan["dry_run"] or not files:
        summary["records_upper_bound"] = sum(f.get("records") or 0 for f in files)
        return summary
    target_partitions = _target_partitions(kafka, plan)
    producer = kafka.producer()
    end_offset = window.get("end_offset")
    for entry in files:
        remaining = None if limit is None else limit - summary["produced"]
        if remaining is not None and remaining <= 0:
            break
        local = download_archive_file(s3, plan["bucket"], entry, spool)
        try:
            result = Replayer(kafka).replay_file(
                local,
                entry,
                target_topic=plan["target_topic"],
                target_partitions=target_partitions,
                first_offset=window.get("start_offset"),
                last_offset=None if end_offset is None else end_offset - 1,
                start_ms=window.get("start_ms"),
                end_ms=window.get("end_ms"),
                max_records=remaining,
                producer=producer,
            )
        finally:
            local.unlink(missing_ok=True)
        summary["produced"] += result.produced
        for partition, count in result.by_partition.items():
            key = str(partition)
            summary["by_partition"][key] = summary["by_partition"].get(key, 0) + count
        log.info("replayed %s: %d record(s) (%d so far)", entry["key"], result.produced, summary["produced"])
    return summary
