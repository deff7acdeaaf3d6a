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

from airflow.sdk import DAG

from backup_pipelines.core.config import load_config
from backup_pipelines.core.params import choice_param, flag_param, int_param, text_param
from backup_pipelines.dagkit import dag_kwargs
from backup_pipelines.kafka.operators import (
    KafkaArchiveRestoreOperator,
    KafkaReplayOperator,
    KafkaReplayPlanOperator,
)

cfg = load_config()
topics = [t.name for t in cfg.kafka_archive.topics]
TIERS = {
    "Expedited": "Expedited (1-5 minutes, most expensive)",
    "Standard": "Standard (3-5 hours)",
    "Bulk": "Bulk (5-12 hours, cheapest)",
}

with DAG(
    **dag_kwargs(
        "kafka_archive_replay",
        schedule=None,
        doc_md=__doc__ or "",
        tags=["kafka", "recovery", "replay"],
        params={
            "topic": choice_param(
                "Archived topic",
                "Topic whose archive is replayed (the configured ones).",
                topics,
                default=topics[0] if topics else None,
            ),
            "start_time": text_param(
                "Start time", "ISO 8601, inclusive, e.g. 2026-11-23T14:00:00Z. Empty: no lower bound."
            ),
            "end_time": text_param("End time", "ISO 8601, exclusive. Empty: no upper bound."),
            "start_offset": int_param("Start offset", "Inclusive. Empty: no lower bound."),
            "end_offset": int_param("End offset", "Exclusive. Empty: no upper bound."),
            "partitions": text_param(
                "Partitions", "Comma-separated partition ids, e.g. 0,2. Empty: all.", pattern=r"^\d+(,\d+)*$"
            ),
            "target_topic": text_param("Target topic", "Topic to produce into. Empty: <topic>.replay."),
            "confirm_same_topic": flag_param(
                "Allow replaying into the source topic itself", "Needed when the target topic is the topic."
            ),
            "source": choice_param(
                "Source region",
                "primary: the primary region's catalog and archive. dr: the DR region's copies "
                "(storage.replica), e.g. while the primary region is down.",
                ["primary", "dr"],
                default="primary",
            ),
            "dry_run": flag_param(
                "Dry run",
                "Only list the files and the most records they hold: no restore, nothing produced.",
                default=True,
            ),
            "max_messages": int_param("At most this many records", "Empty: every record.", minimum=1),
            "restore_tier": choice_param(
                "Glacier restore tier",
                "How fast (and how dear) archived files in GLACIER are thawed.",
                list(TIERS),
                default=cfg.dr_drill.restore_tier,
                labels=TIERS,
            ),
            "restore_days": int_param(
                "Keep restored copies (days)", "How long thawed copies stay readable.", minimum=1, default=1
            ),
        },
        cfg=cfg,
    )
):
    plan = KafkaReplayPlanOperator(task_id="plan")
    restore = KafkaArchiveRestoreOperator(task_id="restore", plan=plan.output, poll_interval=60.0)
    replay = KafkaReplayOperator(task_id="replay", plan=plan.output)
    restore >> replay
