"""Sections of the four pipelines: ClickHouse snapshots, EMR archives, Kafka archives, exports."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from backup_pipelines.core.config import paths
from backup_pipelines.core.config.common import Objectives
from backup_pipelines.core.config.types import Cron, Duration, Name, Prefix, StorageClass, Strict


class ClickHouseIngest(Strict):
    """The Kafka ingestion that feeds a dataset's tables (zero-loss restores replay it)."""

    topics: list[Name] = Field(min_length=1, description="topics the ingestion consumes")
    consumer_groups: list[str] = Field(
        min_length=1,
        description="groups that commit after inserting (a consumer's, or a Kafka-engine table's "
        "kafka_group_name); their committed offsets are recorded before each BACKUP",
    )
    tables: list[str] = Field(
        default=[], description="tables the ingestion writes (empty: every table of the dataset)"
    )
    replay: Literal["reset_group", "replay_topic"] = Field(
        default="reset_group",
        description="how replayed events reach the tables: the stopped ingestion consumes again "
        "from reset offsets, or the running ingestion also reads <topic><replay_topic_suffix>",
    )
    replay_topic_suffix: str = Field(
        default=".replay",
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="the replay topic of a topic: archived events (and, with replay_topic, the "
        "topic's own) are produced there",
    )
    catch_up_timeout: Duration = Field(
        default=timedelta(0),
        description="how long a replay waits for the ingestion's lag to reach zero (0: report it)",
    )


class ClickHouseDataset(Strict):
    name: Name
    database: Name
    tables: list[str] = Field(default=["*"], min_length=1)
    objectives: Objectives = Objectives(rpo=timedelta(hours=1))
    ingest: ClickHouseIngest | None = None


class ClickHouseSnapshots(Strict):
    schedule: Cron = "0 * * * *"
    prefix: Prefix = "clickhouse/"
    full_every: Duration = timedelta(hours=24)
    retention_days: int = Field(default=7, ge=1)
    min_verified: int = Field(default=2, ge=1)
    orphan_grace: Duration = timedelta(hours=6)
    on_cluster: str | None = None
    s3_credentials: Literal["server_side", "connection"] = "server_side"
    pool: str = "clickhouse"
    poll_interval: Duration = timedelta(seconds=10)
    backup_timeout: Duration = timedelta(hours=6)
    datasets: list[ClickHouseDataset] = []


class EmrStepRef(Strict):
    cluster_id: str
    step_id: str


class EmrServerlessRef(Strict):
    application_id: str
    job_run_id: str


class EmrJob(Strict):
    name: Name
    source: str = Field(description="s3://bucket/prefix/ template, rendered with the run's context")
    success_marker: str = "_SUCCESS"
    emr_step: EmrStepRef | None = None
    emr_serverless: EmrServerlessRef | None = None
    sensor_timeout: Duration = timedelta(hours=6)
    objectives: Objectives = Objectives(rpo=timedelta(hours=26))

    @field_validator("source")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        if not value.startswith("s3://") or "/" not in value[5:]:
            raise ValueError(f"{value!r} is not an s3://bucket/prefix/ URL")
        return value


class Transition(Strict):
    days: int = Field(ge=0)
    storage_class: StorageClass


class Lifecycle(Strict):
    rule_id: str = "backup-pipelines-emr"
    transitions: list[Transition] = [
        Transition(days=30, storage_class="GLACIER_IR"),
        Transition(days=180, storage_class="DEEP_ARCHIVE"),
    ]
    expiration_days: int | None = None
    abort_incomplete_multipart_days: int = Field(default=7, ge=1)

    @model_validator(mode="after")
    def _s3_rules(self) -> Lifecycle:
        from backup_pipelines.core.lifecycle import TransitionSpec, validate_policy

        specs = [TransitionSpec(t.days, t.storage_class) for t in self.transitions]
        try:
            validate_policy(specs, expiration_days=self.expiration_days, where="lifecycle")
        except Exception as exc:  # LifecyclePolicyError -> a pydantic error naming the field
            raise ValueError(str(exc)) from None
        return self


class EmrArchive(Strict):
    schedule: Cron = "0 3 * * *"
    prefix: Prefix = "emr/"
    concurrency: int = Field(default=16, ge=1, le=256)
    delete_source_after_archive: bool = False
    storage_class: StorageClass = "STANDARD"
    multipart_threshold_mb: int = Field(default=5 * 1024, ge=5, le=5 * 1024)
    part_size_mb: int = Field(default=512, ge=5, le=5 * 1024)
    deferrable: bool = True
    poke_interval: Duration = timedelta(minutes=5)
    lifecycle: Lifecycle = Lifecycle()
    jobs: list[EmrJob] = []


class KafkaTopic(Strict):
    name: Name
    objectives: Objectives = Objectives(rpo=timedelta(days=8))


class KafkaArchive(Strict):
    schedule: Cron = "0 4 * * 1"
    prefix: Prefix = "kafka/"
    storage_class: StorageClass = "GLACIER"
    file_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    row_group_rows: int = Field(default=100_000, ge=100)
    consumer_group_id: str = "backup-pipelines-archiver"
    retention_grace: Duration = timedelta(days=1)
    topics: list[KafkaTopic] = []


class Export(Strict):
    name: Name
    sql: str = Field(description="path under include/sql/")
    max_rows_per_file: int = Field(default=5_000_000, ge=1)
    objectives: Objectives = Objectives(rpo=timedelta(days=32))

    @field_validator("sql")
    @classmethod
    def _sql_file_exists(cls, value: str) -> str:
        path = (paths.SQL_ROOT / value).resolve()
        if paths.SQL_ROOT.resolve() not in path.parents or path.suffix != ".sql":
            raise ValueError(f"{value!r} must be a .sql file under include/sql/")
        if not path.is_file():
            raise ValueError(f"SQL file include/sql/{value} does not exist")
        Export.check_sql_text(path.read_text(), f"include/sql/{value}")
        return value

    @property
    def sql_path(self) -> Path:
        return paths.SQL_ROOT / self.sql

    def read_sql(self) -> str:
        """The SQL as sent to ClickHouse (trailing ``;`` removed), checked again at run time."""
        label = f"include/sql/{self.sql}"
        try:
            text = self.sql_path.read_text()
        except OSError as exc:
            raise ValueError(f"SQL file {label} cannot be read: {exc.strerror}") from None
        return Export.check_sql_text(text, label)

    @staticmethod
    def check_sql_text(text: str, label: str) -> str:
        """One SELECT whose month bounds are the bound parameters ``{start:...}`` and ``{end:...}``.

        Catches at DAG parse time what would otherwise fail hours later: an empty file, a second
        statement, a value pasted where a bound parameter belongs, an unknown parameter.
        """
        code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        code = re.sub(r"--[^\n]*", " ", code).strip().rstrip(";").strip()
        if not code:
            raise ValueError(f"SQL file {label} holds no query")
        if not re.match(r"(?i)(select|with)\b", code):
            raise ValueError(f"SQL file {label} must be one SELECT (or WITH ... SELECT) statement")
        if ";" in code:
            raise ValueError(f"SQL file {label} holds more than one statement (found ';' inside)")
        names = set(re.findall(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:", code))
        missing = sorted({"start", "end"} - names)
        if missing:
            raise ValueError(
                f"SQL file {label} does not use the bound parameter(s) "
                + ", ".join("{" + m + ":DateTime}" for m in missing)
                + " for the month's bounds"
            )
        unknown = sorted(names - {"start", "end"})
        if unknown:
            raise ValueError(
                f"SQL file {label} uses unknown parameter(s) {unknown}; only start and end are bound"
            )
        return text.strip().rstrip(";").rstrip()


class DeepArchiveExports(Strict):
    schedule: Cron = "0 5 1 * *"
    prefix: Prefix = "exports/"
    storage_class: StorageClass = "DEEP_ARCHIVE"
    s3_credentials: Literal["server_side", "connection"] = Field(
        default="server_side",
        description="how ClickHouse writes to S3: its own credentials (named collection, IAM role) "
        "or the AWS connection's keys, bound as query parameters",
    )
    allow_empty: bool = Field(
        default=True,
        description="an empty month gives an explicit empty export (false: the task fails)",
    )
    exports: list[Export] = []
