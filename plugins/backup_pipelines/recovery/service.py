"""``replay_since_capture``: after a restore of point P, re-feed the ingest events since P's offsets.

``CatchUpService.plan`` reads the offsets P recorded, what each topic partition holds now (low
watermark, end) and the verified archives' offset ranges; every rule is checked before anything
changes (the restore went to the live database, it covers the tables the ingestion writes, P has
offsets, no hole between the archives and the topic). ``run``:

- ``reset_group`` (the ingestion is stopped): the range retention deleted is produced from the
  archives into ``<topic><suffix>`` first, the groups' offsets there are set to where that range
  begins, then the groups' offsets on the topic are reset to P's (or the low watermark); the
  ingestion, started again, consumes both;
- ``replay_topic`` (the ingestion keeps running and also reads ``<topic><suffix>``): the archived
  range, then the topic's range up to the offset the group has committed now, are produced there.

It reports the recovered window, the records re-fed per partition and the ingestion's remaining
lag (waiting up to ``ingest.catch_up_timeout`` for it to reach zero).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backup_pipelines.clickhouse.snapshot import KIND, find_dataset
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, ClickHouseDataset
from backup_pipelines.core.config.pipelines import ClickHouseIngest
from backup_pipelines.core.errors import (
    ConfigError,
    OffsetGapError,
    RecoveryPointNotFoundError,
    SourceNotFoundError,
    UnsafeOperationError,
)
from backup_pipelines.core.ingest import IngestGroups
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.kafka.client import KafkaClient
from backup_pipelines.kafka.params import ReplayParams
from backup_pipelines.kafka.probe import probe
from backup_pipelines.kafka.replay import plan_replay
from backup_pipelines.recovery.feed import feed_archived, feed_topic
from backup_pipelines.recovery.plan import (
    CatchUpPlan,
    PartitionPlan,
    archived_ranges,
    partition_plan,
    recorded_offsets,
)

log = logging.getLogger(__name__)


class CatchUpResult(BaseModel):
    """What a catch-up did (XCom): the plan's window, records per partition, the lag left."""

    plan: dict[str, Any]
    archive_records: dict[str, int]
    topic_records: dict[str, int]
    lag: dict[str, dict[str, int]]
    caught_up: bool


def ingest_of(dataset: ClickHouseDataset) -> ClickHouseIngest:
    if dataset.ingest is None:
        raise ConfigError(
            f"replay_since_capture: dataset {dataset.name!r} has no ingest config "
            "(clickhouse_snapshots.datasets[].ingest: topics and consumer_groups)"
        )
    return dataset.ingest


def _committed_or(committed: dict[int, int | None], partition: int, default: int) -> int:
    """The group's committed offset now (replay_topic: the running ingestion consumes from there
    itself), else ``default`` (the partition's end)."""
    found = committed.get(partition)
    return default if found is None else found


class CatchUpService:
    """Plans and runs the re-feed of ingest events after a ClickHouse restore."""

    def __init__(
        self, cfg: BackupConfig, catalog: Catalog, groups: IngestGroups, kafka: KafkaClient, s3: BackupS3Hook
    ) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.groups = groups
        self.kafka = kafka
        self.s3 = s3

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> CatchUpService:
        s3 = BackupS3Hook(aws_conn_id=cfg.connections.aws)
        kafka = KafkaClient.from_config(cfg, group_id=f"{cfg.kafka_archive.consumer_group_id}-catch-up")
        return cls(cfg, Catalog.from_config(cfg, s3=s3), IngestGroups.from_config(cfg), kafka, s3)

    # -- plan ----------------------------------------------------------------------------------
    def plan(self, restored: dict[str, Any], *, dry_run: bool) -> CatchUpPlan:
        """The catch-up after the restore the ``restore`` task reported; refused before any change."""
        dataset = find_dataset(self.cfg, str(restored.get("dataset")))
        ingest = ingest_of(dataset)
        self._check_restore(dataset, ingest, restored)
        point = self.catalog.read(KIND, dataset.name, str(restored["recovery_point_id"]))
        offsets = recorded_offsets(point)
        if offsets is None:
            why = point.details.get("ingest_error") or "it was captured before ingest offsets were recorded"
            raise RecoveryPointNotFoundError(
                f"recovery point {point.recovery_point_id} of {dataset.name!r} has no ingest offsets "
                f"({why}); restore a point that has them to replay since its capture"
            )
        plan = CatchUpPlan(
            dataset=dataset.name,
            database=dataset.database,
            recovery_point_id=point.recovery_point_id,
            captured_at=point.captured_at,
            offsets_read_at=point.details.get("ingest_read_at"),
            planned_at=clock.utcnow(),
            mode=ingest.replay,
            groups=list(ingest.consumer_groups),
            replay_topic_suffix=ingest.replay_topic_suffix,
            partitions=[p for topic in ingest.topics for p in self._plan_topic(topic, ingest, offsets)],
            dry_run=dry_run,
        )
        log.info("Catch-up plan: %s", plan.summary())
        if plan.holes and not dry_run:
            raise OffsetGapError(
                f"replay since {point.recovery_point_id} of {dataset.name!r} would leave a hole: "
                + "; ".join(plan.holes)
                + " (nothing was changed; the restored tables stay as restored)"
            )
        return plan

    def _check_restore(
        self, dataset: ClickHouseDataset, ingest: ClickHouseIngest, restored: dict[str, Any]
    ) -> None:
        target = restored.get("target_database")
        if target != dataset.database:
            raise UnsafeOperationError(
                f"replay_since_capture feeds the live ingestion, which writes into {dataset.database!r}, "
                f"but the restore went to {target!r}: restore over the live database "
                f"(target_database and confirm_overwrite {dataset.database!r}) to replay"
            )
        restored_tables = set(restored.get("tables") or [])
        missing = sorted(set(ingest.tables) - restored_tables) if ingest.tables else []
        if missing:
            raise UnsafeOperationError(
                f"the ingestion of {dataset.name!r} also writes {', '.join(missing)}, which this restore "
                "did not restore: a replay would write those events twice; restore them too"
            )

    def _plan_topic(
        self, topic: str, ingest: ClickHouseIngest, offsets: dict[str, dict[str, dict[int, int]]]
    ) -> list[PartitionPlan]:
        partitions = self.groups.partitions(topic)
        lows = self.groups.low_watermarks(topic, partitions)
        ends = {p: found.end_offset for p, found in probe(self.kafka, topic, lows).items()}
        now = {
            g: self.groups.committed(g, topic, partitions) if ingest.replay == "replay_topic" else {}
            for g in ingest.consumer_groups
        }
        verified = self.catalog.list_points(DatasetKind.KAFKA_ARCHIVE, topic).verified()
        archived = archived_ranges(verified, topic)
        plans = []
        for p in partitions:
            # A partition created after the capture: every event in it is new.
            recorded = {g: offsets.get(g, {}).get(topic, {}).get(p, 0) for g in ingest.consumer_groups}
            upper = {g: _committed_or(now[g], p, ends[p]) for g in ingest.consumer_groups}
            plan = partition_plan(
                topic,
                p,
                recorded=recorded,
                low=lows[p],
                end=ends[p],
                upper=upper,
                archived=archived.get(p, []),
            )
            if plan.archive_range and not plan.holes:
                plan.files = self._archive_files(topic, p, *plan.archive_range)
            plans.append(plan)
        return plans

    def _archive_files(self, topic: str, partition: int, start: int, end: int) -> list[dict[str, Any]]:
        params = ReplayParams(
            topic=topic,
            partitions=[partition],
            start_offset=start,
            end_offset=end,
            target_topic=f"{topic}{self._suffix(topic)}",
            dry_run=False,
        )
        return plan_replay(self.cfg, self.catalog, params).files

    def _suffix(self, topic: str) -> str:
        for dataset in self.cfg.clickhouse_snapshots.datasets:
            if dataset.ingest and topic in dataset.ingest.topics:
                return dataset.ingest.replay_topic_suffix
        return ".replay"

    # -- run -----------------------------------------------------------------------------------
    def cold_files(self, plan: CatchUpPlan, *, days: int = 1, tier: str = "Bulk") -> list[str]:
        """Request restores of the plan's archive files that cannot be read now; their keys."""
        bucket = self.cfg.storage.archive_bucket
        return [
            f["key"]
            for f in plan.archive_files
            if not self.s3.request_restore(bucket, f["key"], days=days, tier=tier).readable
        ]

    def run(self, plan: CatchUpPlan) -> CatchUpResult:
        """Re-feed the plan's events (archive first, then the topic) and report the lag left."""
        if plan.holes:
            raise OffsetGapError("; ".join(plan.holes))
        if plan.mode == "reset_group":
            for group in plan.groups:  # every group checked before anything is produced
                self.groups.check_resettable(group)
        replay_starts = self._replay_topics(plan)
        producer = self.kafka.producer()
        archive_records: dict[str, int] = {}
        topic_records: dict[str, int] = {}
        with tempfile.TemporaryDirectory(prefix="catch-up-") as spool:
            for part in plan.partitions:
                replay = f"{part.topic}{plan.replay_topic_suffix}"
                if part.archive_range:
                    archive_records[part.label] = feed_archived(
                        self.kafka,
                        self.s3,
                        bucket=self.cfg.storage.archive_bucket,
                        files=part.files,
                        start=part.archive_range[0],
                        end=part.archive_range[1],
                        target_topic=replay,
                        producer=producer,
                        spool=Path(spool),
                    )
                topic_records[part.label] = self._topic_part(plan, part, replay, producer)
        if plan.mode == "reset_group":
            self._reset(plan, replay_starts)
        lag, caught_up = self.wait_for_lag(plan)
        result = CatchUpResult(
            plan=plan.summary(),
            archive_records=archive_records,
            topic_records=topic_records,
            lag=lag,
            caught_up=caught_up,
        )
        log.info("Catch-up of %s since %s: %s", plan.dataset, plan.recovery_point_id, result.model_dump())
        return result

    def _replay_topics(self, plan: CatchUpPlan) -> dict[str, dict[int, int]]:
        """The replay topics the run produces into (created when missing, with the source's
        partitions), each partition's end before anything is produced."""
        topics = sorted({p.topic for p in plan.partitions if p.archive_range or plan.mode == "replay_topic"})
        starts: dict[str, dict[int, int]] = {}
        for topic in topics:
            replay = f"{topic}{plan.replay_topic_suffix}"
            count = self.kafka.ensure_topic(replay, partitions=len(self.groups.partitions(topic)))
            lows = self.groups.low_watermarks(replay, range(count))
            starts[replay] = {p: found.end_offset for p, found in probe(self.kafka, replay, lows).items()}
        return starts

    def _topic_part(self, plan: CatchUpPlan, part: PartitionPlan, replay: str, producer: Any) -> int:
        rng = part.topic_range
        if rng is None:
            return 0
        if plan.mode == "reset_group":
            return rng[1] - rng[0]  # offsets the ingestion consumes again (records, or markers)
        return feed_topic(
            self.kafka,
            topic=part.topic,
            partition=part.partition,
            start=rng[0],
            end=rng[1],
            target_topic=replay,
            producer=producer,
        )

    def _reset(self, plan: CatchUpPlan, replay_starts: dict[str, dict[int, int]]) -> None:
        """Each group: its offsets on the replay topics at where the re-fed records begin, on
        the source topics at what the point recorded (or the low watermark, retention permitting)."""
        for group in plan.groups:
            offsets: dict[str, dict[int, int]] = {}
            for part in plan.partitions:
                offsets.setdefault(part.topic, {})[part.partition] = max(part.recorded[group], part.low)
            for replay, starts in replay_starts.items():
                offsets[replay] = dict(starts)
            self.groups.reset(group, offsets)

    def lag(self, plan: CatchUpPlan) -> dict[str, dict[str, int]]:
        """Per group, per topic partition (source and replay topic), offsets not consumed yet."""
        out: dict[str, dict[str, int]] = {}
        topics = sorted({p.topic for p in plan.partitions})
        for topic in [*topics, *(f"{t}{plan.replay_topic_suffix}" for t in topics)]:
            try:
                partitions = self.groups.partitions(topic)
            except SourceNotFoundError:
                continue  # no replay topic: nothing was replayed through it
            lows = self.groups.low_watermarks(topic, partitions)
            ends = {p: f.end_offset for p, f in probe(self.kafka, topic, lows).items()}
            for group in plan.groups:
                committed = self.groups.committed(group, topic, partitions)
                for p in partitions:
                    behind = ends[p] - max(committed.get(p) or lows[p], lows[p])
                    out.setdefault(group, {})[f"{topic}[{p}]"] = max(behind, 0)
        return out

    def wait_for_lag(self, plan: CatchUpPlan) -> tuple[dict[str, dict[str, int]], bool]:
        """The lag, polled until zero or ``catch_up_timeout`` (0: measured once)."""
        ingest = ingest_of(find_dataset(self.cfg, plan.dataset))
        deadline = time.monotonic() + ingest.catch_up_timeout.total_seconds()
        while True:
            lag = self.lag(plan)
            done = all(v == 0 for per in lag.values() for v in per.values())
            if done or time.monotonic() >= deadline:
                return lag, done
            log.info("catch-up: waiting for the ingestion, lag %s", lag)
            time.sleep(5)
