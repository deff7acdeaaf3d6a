"""Where the config and the SQL live (the checkout: ``include/`` beside ``plugins/``)."""

from __future__ import annotations

from backup_pipelines import PROJECT_ROOT

CONFIG_ENV_VAR = "BACKUP_PIPELINES_CONFIG"
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "include" / "config" / "backup.yaml"
SQL_ROOT = PROJECT_ROOT / "include" / "sql"
