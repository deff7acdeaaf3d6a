"""
### Weekly Kafka event archives to S3 Glacier (ADR tier 3, zero data loss)

Every event that reached Kafka is put in an archive before Kafka's retention deletes it.
Coverage is by **offsets**, never by timestamps: per partition, a run archives from the end
offset of the previous archive (read from the catalog) up to the cut, the end offset the
partition has when the run starts: a record is archived by the first run after it was written,
whatever its timestamp says. The first ever run starts at the window start. Consecutive archives
of a partition are contiguous: no gap, no overlap.

1. `retention_guard`: fails before any partition task when a configured topic does not exist
   (naming the closest topics; no topic is ever created); fails, and emails the on-call with
   topic, partition and missing offsets, when Kafka already deleted offsets that were never
   archived; emails a breach when records not archived yet are older than `retention.ms` minus
   `kafka_archive.retention_grace` (and goes on archiving them); warns when a topic's
   `retention.ms` is shorter than the window plus the grace. Its output is the archive plan: one
   entry per topic-partition, with its cut.
2. `archive_partition` (mapped, one task per topic-partition): reads the partition with a
   manually assigned consumer under `kafka_archive.consumer_group_id` (commits nothing) while
   other threads write zstd Parquet row group by row group and upload the previous file; files
   split at `file_max_bytes`, keys
   `kafka/<topic>/partition=<p>/<first>-<last>.parquet` (a retry rewrites the same objects),
   storage class `kafka_archive.storage_class` (GLACIER).
3. `check_coverage`: offsets contiguous with the previous archive and inside the files.
4. `write_manifest`: one manifest per topic (STANDARD class) with the file index: offsets,
   time range, count and SHA-256 per file.

Backfills must run in window order (a window older than an existing archive is refused);
re-running an archived window is a no-op. Recovery: docs/runbooks/kafka-event-recovery.md.
"""

from __future__ import annotations

from airflow.sdk import DAG

from backup_pipelines.core.assets import recovery_point_asset
from backup_pipelines.core.config import load_config
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.dagkit import dag_kwargs
from backup_pipelines.kafka.operators import (
    KafkaArchiveCheckOperator,
    KafkaArchiveGuardOperator,
    KafkaArchiveManifestOperator,
    KafkaPartitionArchiveOperator,
)

cfg = load_config()
section = cfg.kafka_archive

with DAG(
    **dag_kwargs(
        "kafka_weekly_glacier_archive",
        schedule=section.schedule,
        doc_md=__doc__ or "",
        tags=["kafka", "glacier", "tier-3"],
        cfg=cfg,
    )
):
    plan = KafkaArchiveGuardOperator(task_id="retention_guard")
    archived = KafkaPartitionArchiveOperator.partial(
        task_id="archive_partition",
        map_index_template="{{ task.spec['topic'] }}[{{ task.spec['partition'] }}]",
    ).expand(spec=plan.output)
    check = KafkaArchiveCheckOperator(task_id="check_coverage", results=archived.output)
    manifest = KafkaArchiveManifestOperator(
        task_id="write_manifest",
        results=archived.output,
        outlets=[recovery_point_asset(DatasetKind.KAFKA_ARCHIVE, t.name) for t in section.topics],
    )
    check >> manifest
