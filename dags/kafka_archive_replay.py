"""
### Replay archived Kafka events (manual, Params form)

Recovers events from the weekly Glacier archives into a topic:

1. `plan`: finds the archive files that hold the asked `topic`, partitions, time range
   (`[start_time, end_time)`, ISO 8601) and/or offset range (`[start_offset, end_offset)`)
   through the manifests' file index.
2. `restore`: `RestoreObject` for files in GLACIER with the chosen `restore_tier`, then waits
   in the triggerer (deferrable) until they are readable.
3. `replay`: downloads each file, verifies its SHA-256 and offsets against the manifest, and
   produces the records with their original keys, values, headers and timestamps, in offset
   order per partition, to `target_topic` (default `<topic>.replay`). Replaying into the source
   topic itself needs `confirm_same_topic`.

`dry_run` (default on) only lists the files and the upper bound of records: no restore is
requested and nothing is produced. Step by step: docs/runbooks/kafka-event-recovery.md.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from backup_pipelines.core.config import load_config
from backup_pipelines.dagkit import dag_kwargs
from backup_pipelines.kafka.operators import (
    KafkaArchiveRestoreOperator,
    KafkaReplayOperator,
    KafkaReplayPlanOperator,
)

cfg = load_config()
topics = [t.name for t in cfg.kafka_archive.topics]

with DAG(
    **dag_kwargs(
        "kafka_archive_replay",
        schedule=None,
        doc_md=__doc__ or "",
        tags=["kafka", "recovery", "replay"],
        params={
            "topic": Param(
                topics[0] if topics else "",
                type="string",
                minLength=1,
                title="Archived topic",
                description=f"Topic whose archive is replayed (configured: {', '.join(topics) or 'none'}).",
            ),
            "start_time": Param(
                "", type="string", title="Start time", description="ISO 8601, inclusive; empty: no bound."
            ),
            "end_time": Param(
                "", type="string", title="End time", description="ISO 8601, exclusive; empty: no bound."
            ),
            "start_offset": Param(
                None, type=["null", "integer"], minimum=0, title="Start offset (inclusive)"
            ),
            "end_offset": Param(None, type=["null", "integer"], minimum=0, title="End offset (exclusive)"),
            "partitions": Param(
                "",
                type="string",
                pattern=r"^(\d+(,\d+)*)?$",
                title="Partitions",
                description="Comma-separated partition ids; empty: all.",
            ),
            "target_topic": Param(
                "", type="string", title="Target topic", description="Empty: <topic>.replay."
            ),
            "confirm_same_topic": Param(
                False, type="boolean", title="Allow replaying into the source topic itself"
            ),
            "dry_run": Param(True, type="boolean", title="Dry run (list files only)"),
            "max_messages": Param(None, type=["null", "integer"], minimum=1, title="At most this many"),
            "restore_tier": Param(
                cfg.dr_drill.restore_tier,
                enum=["Expedited", "Standard", "Bulk"],
                title="Glacier restore tier",
            ),
            "restore_days": Param(1, type="integer", minimum=1, title="Keep restored copies this many days"),
        },
        cfg=cfg,
    )
):
    plan = KafkaReplayPlanOperator(task_id="plan")
    restore = KafkaArchiveRestoreOperator(task_id="restore", plan=plan.output, poll_interval=60.0)
    replay = KafkaReplayOperator(task_id="replay", plan=plan.output)
    restore >> replay
