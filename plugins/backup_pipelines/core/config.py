"""Typed, validated configuration for every pipeline, loaded from one YAML file.

The path comes from ``BACKUP_PIPELINES_CONFIG`` (default ``include/config/backup.yaml``). DAG files
load it at parse time, so a bad file fails DAG parsing with one line that names the file, the
field and what is allowed, instead of failing a task hours later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from backup_pipelines import PROJECT_ROOT
from backup_pipelines.core.errors import ConfigError

CONFIG_ENV_VAR = "BACKUP_PIPELINES_CONFIG"
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "include" / "config" / "backup.yaml"
SQL_ROOT = PROJECT_ROOT / "include" / "sql"

StorageClass = Literal[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
]
RestoreTier = Literal["Expedited", "Standard", "Bulk"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> Any:
    """Accept '90s', '15m', '1h', '7d', '2w' (and anything pydantic takes for a timedelta)."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return timedelta(**{_DURATION_UNITS[match.group(2)]: float(match.group(1))})
        if not value.strip().startswith("P"):
            raise ValueError(f"{value!r} is not a duration; use a number and a unit: 90s, 15m, 1h, 7d, 2w")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Name = Annotated[str, Field(pattern=_NAME_RE, max_length=120)]
BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]
Prefix = Annotated[str, Field(pattern=r"^([A-Za-z0-9_.\-=]+/)*$")]


class _Strict(BaseModel):
    """Every section rejects unknown keys: a typo must fail loudly, not be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Objectives(_Strict):
    """Recovery objectives of one dataset: RPO is measured from its newest *verified* point."""

    rpo: Duration
    rto: Duration = timedelta(minutes=30)


class Encryption(_Strict):
    mode: Literal["SSE-S3", "SSE-KMS"] = "SSE-S3"
    kms_key_id: str | None = None

    @model_validator(mode="after")
    def _kms_needs_key(self) -> Encryption:
        if self.mode == "SSE-KMS" and not self.kms_key_id:
            raise ValueError("mode SSE-KMS needs kms_key_id (a KMS key id, ARN or alias)")
        return self

    def s3_extra_args(self) -> dict[str, str]:
        """The ExtraArgs every PutObject/CopyObject of this package sends."""
        if self.mode == "SSE-KMS":
            assert self.kms_key_id is not None
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}


class ObjectLockRetention(_Strict):
    """Retention put on archived objects when the bucket has S3 Object Lock enabled."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    days: int = Field(gt=0)


class Storage(_Strict):
    backup_bucket: BucketName
    archive_bucket: BucketName
    catalog_prefix: Prefix = "catalog/"
    encryption: Encryption = Encryption()
    object_lock: ObjectLockRetention | None = None


class Connections(_Strict):
    aws: str = "aws_default"
    clickhouse: str = "clickhouse_default"
    kafka: str = "kafka_default"
    smtp: str = "smtp_default"


class Alerts(_Strict):
    recipients: list[str] = Field(min_length=1)
    from_email: str = "backup-pipelines@localhost"

    @field_validator("recipients")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.match(r"^[^@\s]+@[^@\s]+$", address):
                raise ValueError(f"{address!r} is not an email address")
        return value


class Deadline(_Strict):
    """An SLA deadline: the run must finish within ``after`` of ``reference``."""

    reference: Literal["data_interval_end", "queued_at"] = "data_interval_end"
    after: Duration


class Defaults(_Strict):
    owner: str = "data-platform"
    retries: int = Field(default=2, ge=2)
    retry_delay: Duration = timedelta(minutes=5)
    tags: list[str] = ["backup"]


class ClickHouseDataset(_Strict):
    name: Name
    database: Name
    tables: list[str] = Field(default=["*"], min_length=1)
    objectives: Objectives = Objectives(rpo=timedelta(hours=1))


class ClickHouseSnapshots(_Strict):
    schedule: str = "0 * * * *"
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


class EmrStepRef(_Strict):
    cluster_id: str
    step_id: str


class EmrServerlessRef(_Strict):
    application_id: str
    job_run_id: str


class EmrJob(_Strict):
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


class Transition(_Strict):
    days: int = Field(ge=0)
    storage_class: StorageClass


class Lifecycle(_Strict):
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


class EmrArchive(_Strict):
    schedule: str = "0 3 * * *"
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


class KafkaTopic(_Strict):
    name: Name
    objectives: Objectives = Objectives(rpo=timedelta(days=8))


class KafkaArchive(_Strict):
    schedule: str = "0 4 * * 1"
    prefix: Prefix = "kafka/"
    storage_class: StorageClass = "GLACIER"
    file_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    row_group_rows: int = Field(default=100_000, ge=100)
    consumer_group_id: str = "backup-pipelines-archiver"
    retention_grace: Duration = timedelta(days=1)
    topics: list[KafkaTopic] = []


class Export(_Strict):
    name: Name
    sql: str = Field(description="path under include/sql/")
    max_rows_per_file: int = Field(default=5_000_000, ge=1)
    objectives: Objectives = Objectives(rpo=timedelta(days=32))

    @field_validator("sql")
    @classmethod
    def _sql_file_exists(cls, value: str) -> str:
        path = (SQL_ROOT / value).resolve()
        if SQL_ROOT.resolve() not in path.parents or path.suffix != ".sql":
            raise ValueError(f"{value!r} must be a .sql file under include/sql/")
        if not path.is_file():
            raise ValueError(f"SQL file include/sql/{value} does not exist")
        Export.check_sql_text(path.read_text(), f"include/sql/{value}")
        return value

    @property
    def sql_path(self) -> Path:
        return SQL_ROOT / self.sql

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


class DeepArchiveExports(_Strict):
    schedule: str = "0 5 1 * *"
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


class RpoMonitor(_Strict):
    schedule: str = "*/15 * * * *"
    status_key: str = "status/rpo.json"


class DrDrill(_Strict):
    schedule: str = "0 6 * * 6"
    pick: Literal["latest", "random"] = "latest"
    random_window: Duration = timedelta(days=7)
    sample_objects: int = Field(default=2, ge=1)
    restore_tier: RestoreTier = "Bulk"
    restore_days: int = Field(default=1, ge=1)
    replay_sample_messages: int = Field(default=1000, ge=1)
    report_prefix: Prefix = "reports/dr-drill/"
    clickhouse_max_replica_lag: Duration | None = None
    kafka_dr_connection: str | None = None
    kafka_max_replication_lag: int | None = Field(default=None, ge=0)
    restore_poll_interval: Duration = timedelta(minutes=5)
    restore_timeout: Duration = timedelta(hours=48)
    clickhouse_restore_timeout: Duration = Field(
        default=timedelta(hours=2),
        description="longest wait for a ClickHouse RESTORE; past it the check is an error and RTO is missed",
    )
    freshness_timeout: Duration = Field(
        default=timedelta(0),
        description="how long the first task waits for fresh verified points before the drill starts anyway",
    )
    airflow_api_connection: str | None = Field(
        default=None, description="HTTP connection to the Airflow API server; the drill notes its run there"
    )


DatasetKind = Literal["clickhouse_snapshot", "emr_output", "kafka_archive", "deep_archive_export"]


class BackupConfig(_Strict):
    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    connections: Connections = Connections()
    storage: Storage
    alerts: Alerts
    deadlines: dict[str, Deadline] = {}
    clickhouse_snapshots: ClickHouseSnapshots = ClickHouseSnapshots()
    emr_archive: EmrArchive = EmrArchive()
    kafka_archive: KafkaArchive = KafkaArchive()
    deep_archive_exports: DeepArchiveExports = DeepArchiveExports()
    rpo_monitor: RpoMonitor = RpoMonitor()
    dr_drill: DrDrill = DrDrill()

    @model_validator(mode="after")
    def _unique_dataset_names(self) -> BackupConfig:
        for section, items in (
            ("clickhouse_snapshots.datasets", self.clickhouse_snapshots.datasets),
            ("emr_archive.jobs", self.emr_archive.jobs),
            ("kafka_archive.topics", self.kafka_archive.topics),
            ("deep_archive_exports.exports", self.deep_archive_exports.exports),
        ):
            names = [item.name for item in items]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{section}: duplicate name(s) {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _prefixes_do_not_overlap(self) -> BackupConfig:
        """Areas sharing a bucket must not nest: a sweep of one (retention's orphan sweep, an
        export's old-generation clean-up) would otherwise reach into another, e.g. the catalog."""
        buckets = {
            "storage.backup_bucket": {
                "storage.catalog_prefix": self.storage.catalog_prefix,
                "clickhouse_snapshots.prefix": self.clickhouse_snapshots.prefix,
                "dr_drill.report_prefix": self.dr_drill.report_prefix,
                "rpo_monitor.status_key": self.rpo_monitor.status_key,
            },
            "storage.archive_bucket": {
                "emr_archive.prefix": self.emr_archive.prefix,
                "kafka_archive.prefix": self.kafka_archive.prefix,
                "deep_archive_exports.prefix": self.deep_archive_exports.prefix,
            },
        }
        if self.storage.backup_bucket == self.storage.archive_bucket:
            buckets = {
                "storage.backup_bucket": {
                    **buckets["storage.backup_bucket"],
                    **buckets["storage.archive_bucket"],
                }
            }
        for bucket, areas in buckets.items():
            items = sorted(areas.items())
            for i, (name_a, prefix_a) in enumerate(items):
                for name_b, prefix_b in items[i + 1 :]:
                    if prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a):
                        raise ValueError(
                            f"{name_a} ({prefix_a!r}) and {name_b} ({prefix_b!r}) overlap in {bucket}; "
                            "give each area its own prefix"
                        )
        return self

    def datasets(self) -> Iterator[tuple[DatasetKind, str, Objectives]]:
        """Every protected dataset with its catalog kind and objectives (for RPO monitoring)."""
        for ch in self.clickhouse_snapshots.datasets:
            yield "clickhouse_snapshot", ch.name, ch.objectives
        for job in self.emr_archive.jobs:
            yield "emr_output", job.name, job.objectives
        for topic in self.kafka_archive.topics:
            yield "kafka_archive", topic.name, topic.objectives
        for export in self.deep_archive_exports.exports:
            yield "deep_archive_export", export.name, export.objectives


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Walk the model along ``loc`` to list the keys allowed where an unknown one was found."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        annotation = current.model_fields[part].annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_validation_error(path: Path | str, error: ValidationError) -> str:
    """One line per problem: file, field, what is wrong and what is allowed."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        field = _field_path(loc) or "<top level>"
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(BackupConfig, loc)
            message = f"unknown key {loc[-1]!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
            field = _field_path(loc[:-1]) or "<top level>"
        elif item["type"] == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            message = f"{item['input']!r} is not allowed; expected {expected}"
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}")
    return f"invalid config {path}: " + "; ".join(problems)


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(path: Path | str | None = None) -> BackupConfig:
    """Load and validate the config; raise ``ConfigError`` with a one-line message on any problem."""
    resolved = Path(path) if path else config_path()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise ConfigError(f"config file {resolved} cannot be read: {exc.strerror}") from None
    return _load_cached(str(resolved), stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int) -> BackupConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid config {path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config {path}: the top level must be a mapping of sections")
    try:
        return BackupConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
