"""Generate the README's config reference from the config model, so the docs cannot drift.

``python -m backup_pipelines.dev.config_reference`` prints the Markdown; a test checks that the README
holds exactly this text and that every key has a description here.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from backup_pipelines.core.config import BackupConfig

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"

DESCRIPTIONS: dict[str, str] = {
    "version": "Schema version of this file; only `1` exists.",
    "defaults": "Settings every DAG and task inherits.",
    "defaults.owner": "Airflow owner of every task.",
    "defaults.retries": "Task retries (at least 2).",
    "defaults.retry_delay": "Delay between retries.",
    "defaults.tags": "Tags added to every DAG.",
    "connections": "Airflow connection ids the hooks use.",
    "connections.aws": "S3 (and EMR/KMS) connection.",
    "connections.clickhouse": "ClickHouse connection (clickhousedb provider).",
    "connections.kafka": "Kafka connection (apache-kafka provider; extra holds the client config).",
    "connections.smtp": "SMTP connection for alert and report emails.",
    "storage": "Buckets, catalog location, encryption and Object Lock.",
    "storage.backup_bucket": "Bucket for ClickHouse snapshots, the catalog, drill reports and status.",
    "storage.archive_bucket": "Bucket for EMR outputs, Kafka archives and Deep Archive exports.",
    "storage.catalog_prefix": "Prefix of the manifests (always STANDARD class).",
    "storage.encryption": "Server-side encryption of every object this package writes.",
    "storage.encryption.mode": "`SSE-S3` or `SSE-KMS`.",
    "storage.encryption.kms_key_id": "KMS key id, ARN or alias; required with `SSE-KMS`.",
    "storage.object_lock": "Retention put on archived objects when the bucket has Object Lock.",
    "storage.object_lock.mode": "`GOVERNANCE` or `COMPLIANCE`.",
    "storage.object_lock.days": "Retention period in days.",
    "storage.replica": 'The DR region: every verified point copied there and checked (README "Regional outage").',
    "storage.replica.region": "The DR region (e.g. `us-west-2`).",
    "storage.replica.backup_bucket": "DR counterpart of `storage.backup_bucket` (snapshots, DR catalog, reports).",
    "storage.replica.archive_bucket": "DR counterpart of `storage.archive_bucket`.",
    "storage.replica.aws_connection": "AWS connection of the DR region (its region and, locally, its endpoint).",
    "storage.replica.mode": "`copy` (a task copies each verified point) or `s3_replication` (S3 Replication rules).",
    "storage.replica.encryption": "Encryption of the replicas (the DR region's KMS key with `SSE-KMS`).",
    "storage.replica.encryption.mode": "`SSE-S3` or `SSE-KMS`.",
    "storage.replica.encryption.kms_key_id": "KMS key of the DR region; required with `SSE-KMS`.",
    "storage.replica.storage_classes": "Replica class per primary class (`{STANDARD: STANDARD_IA}`); others keep theirs.",
    "storage.replica.schedule": "Cron schedule of `dr_replication`.",
    "storage.replica.concurrency": "Objects copied at once per point.",
    "storage.replica.replication_role_arn": "IAM role S3 replicates as; required with `s3_replication`.",
    "storage.replica.replication_rule_id": "Prefix of the replication rule IDs the package owns (one per data prefix).",
    "storage.replica.restore_tier": "Thaw tier for cold objects before their copy (`copy` mode).",
    "storage.replica.restore_days": "Days a thawed copy stays readable.",
    "alerts": "Who gets alert emails.",
    "alerts.recipients": "Email addresses for SLA-miss, RPO-breach, failure and drill emails.",
    "alerts.from_email": "Sender address.",
    "deadlines": "SLA deadlines per DAG id: `{reference, after}`.",
    "deadlines.*.reference": "`data_interval_end` or `queued_at`: what the deadline counts from.",
    "deadlines.*.after": "How long after the reference the run must have finished.",
    "*.objectives": "Recovery objectives of this dataset.",
    "*.objectives.rpo": "Recovery point objective: the newest verified point must be younger than this.",
    "*.objectives.rto": "Recovery time objective: a restore (timed by the DR drill) must finish within this.",
    "*.objectives.dr_rpo": "DR-region RPO: the newest verified replica must be younger; default RPO + max(30m, RPO/4).",
    "clickhouse_snapshots": "Hourly ClickHouse snapshots (`clickhouse_hourly_snapshot`, `clickhouse_restore`).",
    "clickhouse_snapshots.schedule": "Cron of the snapshot DAG.",
    "clickhouse_snapshots.prefix": "Prefix of the backups in `storage.backup_bucket`.",
    "clickhouse_snapshots.full_every": "Take a full backup when the chain's full is older than this; increments between.",
    "clickhouse_snapshots.retention_days": "Recovery points older than this are removed, chain-aware.",
    "clickhouse_snapshots.min_verified": "Verified chains always kept, whatever their age.",
    "clickhouse_snapshots.orphan_grace": "Backup files with no manifest older than this are swept.",
    "clickhouse_snapshots.on_cluster": "Cluster name for `BACKUP ... ON CLUSTER` (sharded/replicated deployments).",
    "clickhouse_snapshots.s3_credentials": "`server_side`: ClickHouse's own S3 credentials; `connection`: keys "
    "of the AWS connection, bound and masked.",
    "clickhouse_snapshots.pool": "Airflow pool of the ClickHouse tasks (one slot with chDB).",
    "clickhouse_snapshots.poll_interval": "How often `system.backups` is polled for an ASYNC backup.",
    "clickhouse_snapshots.backup_timeout": "Longest wait for one backup or restore.",
    "clickhouse_snapshots.datasets": "The datasets to snapshot.",
    "clickhouse_snapshots.datasets.name": "Dataset name (catalog and S3 path).",
    "clickhouse_snapshots.datasets.database": "ClickHouse database.",
    "clickhouse_snapshots.datasets.tables": "Table names or glob patterns; `*` for all.",
    "clickhouse_snapshots.datasets.ingest": "The Kafka ingestion feeding the tables: offsets recorded before each "
    'BACKUP, replayed by `replay_since_capture` (README "Zero data loss").',
    "clickhouse_snapshots.datasets.ingest.topics": "Topics the ingestion consumes.",
    "clickhouse_snapshots.datasets.ingest.consumer_groups": "Groups committing after inserting (a consumer's, or a "
    "Kafka-engine table's `kafka_group_name`).",
    "clickhouse_snapshots.datasets.ingest.tables": "Tables the ingestion writes; a replay needs them all restored "
    "(empty: not checked).",
    "clickhouse_snapshots.datasets.ingest.replay": "`reset_group`: the stopped ingestion consumes again from reset "
    "offsets; `replay_topic`: the running one also reads `<topic><replay_topic_suffix>`.",
    "clickhouse_snapshots.datasets.ingest.replay_topic_suffix": "Replay topic of a topic (archived events go there).",
    "clickhouse_snapshots.datasets.ingest.catch_up_timeout": "How long a replay waits for the ingestion's lag to "
    "reach zero (`0s`: measured once).",
    "emr_archive": "Daily EMR output archiving (`emr_daily_output_archive`).",
    "emr_archive.schedule": "Cron of the daily run.",
    "emr_archive.prefix": "Archive prefix in `storage.archive_bucket`.",
    "emr_archive.concurrency": "Parallel server-side copies per job (1 to 256).",
    "emr_archive.delete_source_after_archive": "Delete the source objects after a verified archive and manifest.",
    "emr_archive.storage_class": "Class of the copies (the lifecycle policy moves them down).",
    "emr_archive.multipart_threshold_mb": "Objects above this size are copied with UploadPartCopy.",
    "emr_archive.part_size_mb": "Part size when the source's own part size is unknown.",
    "emr_archive.deferrable": "Wait for the marker in the triggerer (needs the amazon provider's `aiobotocore` extra).",
    "emr_archive.poke_interval": "How often the marker and the EMR state are checked.",
    "emr_archive.lifecycle": "Lifecycle rule applied to the archive prefix, merged by rule ID.",
    "emr_archive.lifecycle.rule_id": "The one rule ID this package owns; other rules are left alone.",
    "emr_archive.lifecycle.transitions": "`{days, storage_class}` steps; checked against S3's order and minimums.",
    "emr_archive.lifecycle.transitions.days": "Days after creation.",
    "emr_archive.lifecycle.transitions.storage_class": "Class to move to.",
    "emr_archive.lifecycle.expiration_days": "Delete archived objects after this many days; `null` keeps them forever.",
    "emr_archive.lifecycle.abort_incomplete_multipart_days": "Abort unfinished multipart uploads after this many days.",
    "emr_archive.jobs": "The EMR job outputs to archive.",
    "emr_archive.jobs.name": "Job name (catalog dataset, archive path).",
    "emr_archive.jobs.source": "`s3://bucket/prefix/` template rendered with the run, e.g. `.../dt={{ ds }}/`.",
    "emr_archive.jobs.success_marker": "Object that says the job finished.",
    "emr_archive.jobs.emr_step": "Also require this EMR step to be COMPLETED.",
    "emr_archive.jobs.emr_step.cluster_id": "EMR cluster id.",
    "emr_archive.jobs.emr_step.step_id": "EMR step id.",
    "emr_archive.jobs.emr_serverless": "Also require this EMR Serverless job run to be SUCCESS.",
    "emr_archive.jobs.emr_serverless.application_id": "EMR Serverless application id.",
    "emr_archive.jobs.emr_serverless.job_run_id": "EMR Serverless job run id.",
    "emr_archive.jobs.sensor_timeout": "How long to wait for the job before failing with its name and date.",
    "kafka_archive": "Weekly Kafka archives to Glacier (`kafka_weekly_glacier_archive`, `kafka_archive_replay`).",
    "kafka_archive.schedule": "Cron of the weekly run.",
    "kafka_archive.prefix": "Prefix of the archive files in `storage.archive_bucket`.",
    "kafka_archive.storage_class": "Class of the data files (manifests stay STANDARD).",
    "kafka_archive.file_max_bytes": "Archive files are split at this size.",
    "kafka_archive.row_group_rows": "Records per Parquet row group (bounds the memory of a partition read).",
    "kafka_archive.consumer_group_id": "Group id of the archiver; offsets are never committed for live groups.",
    "kafka_archive.retention_grace": "Warn when a topic's `retention.ms` is under the archive window plus this.",
    "kafka_archive.topics": "The topics to archive.",
    "kafka_archive.topics.name": "Topic name.",
    "deep_archive_exports": "Monthly aggregated exports to Deep Archive (`monthly_deep_archive_export`).",
    "deep_archive_exports.schedule": "Cron of the monthly run.",
    "deep_archive_exports.prefix": "Prefix of the exports in `storage.archive_bucket`.",
    "deep_archive_exports.storage_class": "Class of the exported files.",
    "deep_archive_exports.s3_credentials": "`server_side` or `connection`, as for `clickhouse_snapshots`.",
    "deep_archive_exports.allow_empty": "A month with no rows gives an explicit empty export (`false`: it fails).",
    "deep_archive_exports.exports": "The exports to run each month.",
    "deep_archive_exports.exports.name": "Export name (catalog dataset, S3 path).",
    "deep_archive_exports.exports.sql": "SELECT under `include/sql/` with `{start:...}` and `{end:...}` parameters.",
    "deep_archive_exports.exports.max_rows_per_file": "Rows per Parquet file; larger months split.",
    "rpo_monitor": "The RPO monitor (`backup_rpo_monitor`).",
    "rpo_monitor.schedule": "How often the monitor runs.",
    "rpo_monitor.status_key": "Key of the status JSON (ages and breach state) in the backup bucket.",
    "dr_drill": "The DR drill (`dr_drill`).",
    "dr_drill.schedule": "Cron of the drill.",
    "dr_drill.pick": "`latest` recovery point, or a `random` one within `random_window`.",
    "dr_drill.random_window": "Window of the random pick.",
    "dr_drill.sample_objects": "Archived objects restored and checked per archive dataset.",
    "dr_drill.restore_tier": "RestoreObject tier for GLACIER/DEEP_ARCHIVE samples.",
    "dr_drill.restore_days": "Days a restored copy stays readable.",
    "dr_drill.replay_sample_messages": "Records replayed into a scratch topic and compared.",
    "dr_drill.report_prefix": "Prefix of the reports in the backup bucket.",
    "dr_drill.clickhouse_max_replica_lag": "Tier 1: highest ClickHouse replica lag allowed (`null`: not checked).",
    "dr_drill.kafka_dr_connection": "Tier 1: Kafka connection of the DR cluster (`null`: not checked).",
    "dr_drill.kafka_max_replication_lag": "Tier 1: highest primary-to-DR lag in messages.",
    "dr_drill.restore_poll_interval": "How often a Glacier restore is polled from the triggerer.",
    "dr_drill.restore_timeout": "Longest wait for a Glacier restore.",
    "dr_drill.clickhouse_restore_timeout": "Longest wait for the ClickHouse restore of a chain.",
    "dr_drill.freshness_timeout": "How long the first task waits for a fresh verified point (0: check once).",
    "dr_drill.report_url": "Link to a report in the emails and the run note: a console or HTTPS URL template with `{bucket}` and `{key}`; `null`: the `s3://` URI only.",
    "dr_drill.airflow_api_connection": "HTTP connection to the Airflow API, to link the report in the run's notes.",
}

# The Backups page's price table (ui.cost): one section per storage class, each with the same keys.
DESCRIPTIONS.update(
    {
        "costs": "Price table of the Backups page's cost view (defaults: one region; source and date below).",
        "costs.currency": "Currency of the prices.",
        "costs.region": "Region the prices are for.",
        "costs.source": "Where the prices come from (shown on the cost page).",
        "costs.as_of": "When the prices were taken (`YYYY-MM` or `YYYY-MM-DD`; shown on the cost page).",
        "costs.prices": "Prices per S3 storage class.",
        "costs.forecast_months": "Months of the cost forecast (from the growth the catalog shows).",
        "costs.growth_window": "How far back the catalog's growth (bytes per day) is measured.",
    }
    | {
        f"costs.prices.{name}{key}": text
        for name in (
            "standard",
            "intelligent_tiering",
            "standard_ia",
            "onezone_ia",
            "glacier_ir",
            "glacier",
            "deep_archive",
        )
        for key, text in (
            ("", f"Prices of {name.upper()}."),
            (".storage_gb_month", "Storage per GB-month."),
            (".minimum_days", "Minimum storage duration: an object deleted earlier is billed for the rest."),
            (".retrieval_gb", "Retrieval per GB by restore tier (`Standard`, `Bulk`, `Expedited`)."),
        )
    }
)


def describe(path: str, text: str) -> None:
    """Sections register their key descriptions here (kept next to the README generator)."""
    DESCRIPTIONS[path] = text


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        return f"map of {_type_name(get_args(annotation)[1])}"
    if annotation is timedelta:
        return "duration"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default if field.default is not PydanticUndefined else field.default_factory()
    if isinstance(value, BaseModel):
        return "(see keys)"
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"`{seconds // size}{unit}`"
        return f"`{seconds}s`"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "`" + ", ".join(str(v.model_dump()) for v in value) + "`"
    return f"`{value}`" if value not in (None, [], {}) else ("`null`" if value is None else "`[]`")


def rows(model: type[BaseModel] = BackupConfig, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path, _type_name(field.annotation), _default(field)
        sub = _model_of(field.annotation)
        if sub is not None:
            child_prefix = f"{path}[]." if get_origin(field.annotation) is list else f"{path}."
            if get_origin(field.annotation) is dict:
                child_prefix = f"{path}.*."
            yield from rows(sub, child_prefix)


def _key(path: str) -> str:
    """Description key: list markers dropped; every dataset's ``objectives`` shares one entry."""
    key = path.replace("[]", "")
    if ".objectives" in key:
        return "*.objectives" + key.split(".objectives", 1)[1]
    return key


def missing_descriptions() -> list[str]:
    return [path for path, _, _ in rows() if _key(path) not in DESCRIPTIONS]


def markdown() -> str:
    lines = [BEGIN, "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for path, type_name, default in rows():
        lines.append(f"| `{path}` | {type_name} | {default} | {DESCRIPTIONS.get(_key(path), '')} |")
    lines += ["", END]
    return "\n".join(lines)


def update_readme(readme: Path) -> bool:
    """Replace the generated block (or the bare marker) in the README; True when it changed."""
    text = readme.read_text()
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        new = head + markdown() + rest.split(END, 1)[1]
    else:
        new = text.replace("<!-- config-reference -->", markdown())
    readme.write_text(new)
    return new != text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        update_readme(Path(sys.argv[2]))
    else:
        print(markdown())
