"""Typed, validated configuration for every pipeline, loaded from one YAML file.

The path comes from ``BACKUP_PIPELINES_CONFIG`` (default ``include/config/backup.yaml``). DAG files
load it at parse time, so a bad file fails DAG parsing with one line that names the file, the
field and what is allowed, instead of failing a task hours later.

Modules: ``types`` (durations, names), ``common`` (storage, alerts, objectives), ``pipelines``
(one section per pipeline), ``operations`` (monitor, drill), ``model`` (the whole file and the rules
spanning sections), ``loader`` (reading and error messages), ``paths``.
"""

from __future__ import annotations

from backup_pipelines.core.config.common import (
    Alerts,
    Connections,
    Deadline,
    Defaults,
    Encryption,
    Objectives,
    ObjectLockRetention,
    Storage,
)
from backup_pipelines.core.config.loader import config_path, format_validation_error, load_config
from backup_pipelines.core.config.model import BackupConfig
from backup_pipelines.core.config.operations import DrDrill, RpoMonitor
from backup_pipelines.core.config.paths import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, SQL_ROOT
from backup_pipelines.core.config.pipelines import (
    ClickHouseDataset,
    ClickHouseSnapshots,
    DeepArchiveExports,
    EmrArchive,
    EmrJob,
    EmrServerlessRef,
    EmrStepRef,
    Export,
    KafkaArchive,
    KafkaTopic,
    Lifecycle,
    Transition,
)
from backup_pipelines.core.config.types import (
    Duration,
    RestoreTier,
    StorageClass,
    Strict,
    human_duration,
    parse_duration,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "SQL_ROOT",
    "Alerts",
    "BackupConfig",
    "ClickHouseDataset",
    "ClickHouseSnapshots",
    "Connections",
    "Deadline",
    "DeepArchiveExports",
    "Defaults",
    "DrDrill",
    "Duration",
    "EmrArchive",
    "EmrJob",
    "EmrServerlessRef",
    "EmrStepRef",
    "Encryption",
    "Export",
    "KafkaArchive",
    "KafkaTopic",
    "Lifecycle",
    "ObjectLockRetention",
    "Objectives",
    "RestoreTier",
    "RpoMonitor",
    "Storage",
    "StorageClass",
    "Strict",
    "Transition",
    "config_path",
    "format_validation_error",
    "human_duration",
    "load_config",
    "parse_duration",
]
