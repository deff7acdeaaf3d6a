"""ClickHouse SQL, rendered from ``include/sql/clickhouse/`` with bound parameters (pure, no I/O).

Values are always bound as query parameters (``{name:Type}``); identifiers are backtick-quoted with
:func:`quote_identifier`; the only literal ever pasted is the backup id in a ``SETTINGS`` clause,
which this package builds from validated names and checks against a strict pattern.

Secrets: with ``s3_credentials: connection`` the AWS keys are bound as query parameters (never part
of the SQL text); ``BackupStatement.params`` may hold them, so statements are never logged whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from backup_pipelines.core import sql_files
from backup_pipelines.core.config import SQL_ROOT
from backup_pipelines.core.errors import SourceNotFoundError

SQL_DIR = SQL_ROOT / "clickhouse"
_SETTING_LITERAL_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
SYSTEM_DATABASES = frozenset({"system", "information_schema", "INFORMATION_SCHEMA"})


def quote_identifier(name: str) -> str:
    """Backtick-quote a ClickHouse identifier (database, table, cluster), escaping what needs it."""
    if not name or "\x00" in name:
        raise ValueError(f"{name!r} is not a valid ClickHouse identifier")
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_setting_literal(value: str) -> str:
    """Quote a value for a SETTINGS clause, where ClickHouse does not accept bound parameters.

    Only used for the backup id, which this module builds from validated names; anything outside a
    strict character set is refused rather than escaped.
    """
    if not _SETTING_LITERAL_RE.match(value):
        raise ValueError(f"{value!r} cannot be used as a SETTINGS literal")
    return f"'{value}'"


def load_sql(name: str) -> str:
    """A statement from include/sql/clickhouse/, without its leading comment lines."""
    return sql_files.load_sql(f"{SQL_DIR.name}/{name}")


def render_sql(name: str, **fragments: str) -> str:
    """Fill ``$name`` slots of a SQL file of include/sql/clickhouse/ with pre-quoted fragments."""
    return sql_files.render_sql(f"{SQL_DIR.name}/{name}", **fragments)


def s3_expr(url_param: str, with_credentials: bool, with_token: bool) -> str:
    if not with_credentials:
        return f"S3({{{url_param}:String}})"
    parts = [f"{{{url_param}:String}}", "{access_key_id:String}", "{secret_access_key:String}"]
    if with_token:
        parts.append("{session_token:String}")
    return f"S3({', '.join(parts)})"


def tables_clause(database: str, tables: Sequence[str], target_database: str | None = None) -> str:
    clauses = []
    for table in tables:
        clause = f"TABLE {quote_identifier(database)}.{quote_identifier(table)}"
        if target_database is not None:
            clause += f" AS {quote_identifier(target_database)}.{quote_identifier(table)}"
        clauses.append(clause)
    return ", ".join(clauses)


def on_cluster_clause(cluster: str | None) -> str:
    return f" ON CLUSTER {quote_identifier(cluster)}" if cluster else ""


@dataclass(frozen=True)
class S3Credentials:
    """Keys handed to ClickHouse for S3; ``repr`` never shows the secret."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def params(self) -> dict[str, str]:
        values = {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}
        if self.session_token:
            values["session_token"] = self.session_token
        return values


@dataclass(frozen=True)
class BackupStatement:
    """A rendered statement and its bound parameters (which may hold secrets: never log them)."""

    sql: str
    params: dict[str, Any] = field(repr=False)


def render_backup(
    *,
    database: str,
    tables: Sequence[str],
    url: str,
    backup_id: str,
    base_url: str | None = None,
    credentials: S3Credentials | None = None,
    on_cluster: str | None = None,
    blocking: bool = False,
) -> BackupStatement:
    """``BACKUP TABLE ... TO S3(...) SETTINGS [base_backup = S3(...),] id = '...' ASYNC``; without
    ``ASYNC`` when ``blocking`` (the statement returns once the backup has ended)."""
    if not tables:
        raise ValueError("a backup needs at least one table")
    with_token = bool(credentials and credentials.session_token)
    settings = []
    params: dict[str, Any] = {"url": url}
    if base_url:
        settings.append(f"base_backup = {s3_expr('base_url', credentials is not None, with_token)}")
        params["base_url"] = base_url
    settings.append(f"id = {quote_setting_literal(backup_id)}")
    if credentials is not None:
        params.update(credentials.params())
    sql = render_sql(
        "backup.sql",
        tables=tables_clause(database, tables),
        on_cluster=on_cluster_clause(on_cluster),
        destination=s3_expr("url", credentials is not None, with_token),
        settings=", ".join(settings),
        mode="" if blocking else " ASYNC",
    )
    return BackupStatement(sql, params)


def render_restore(
    *,
    database: str,
    tables: Sequence[str],
    target_database: str,
    url: str,
    credentials: S3Credentials | None = None,
    on_cluster: str | None = None,
    structure_only: bool = False,
    allow_non_empty_tables: bool = False,
    restore_id: str | None = None,
) -> BackupStatement:
    """``RESTORE TABLE db.t AS target.t, ... FROM S3(...) [SETTINGS ...] ASYNC``."""
    if not tables:
        raise ValueError("a restore needs at least one table")
    settings = []
    if structure_only:
        settings.append("structure_only = 1")
    if allow_non_empty_tables:
        settings.append("allow_non_empty_tables = 1")
    if restore_id:
        settings.append(f"id = {quote_setting_literal(restore_id)}")
    params: dict[str, Any] = {"url": url}
    if credentials is not None:
        params.update(credentials.params())
    sql = render_sql(
        "restore.sql",
        tables=tables_clause(database, tables, target_database),
        on_cluster=on_cluster_clause(on_cluster),
        source=s3_expr("url", credentials is not None, bool(credentials and credentials.session_token)),
        settings=(" SETTINGS " + ", ".join(settings)) if settings else "",
    )
    return BackupStatement(sql + " ASYNC", params)


def match_tables(available: Iterable[str], patterns: Sequence[str], *, database: str) -> list[str]:
    """Tables of ``database`` matching the dataset's patterns; a pattern matching nothing is an error."""
    names = sorted(set(available))
    selected: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatchcase(n, pattern)]
        if not hits:
            raise SourceNotFoundError(
                f"table {database}.{pattern} does not exist on the ClickHouse server"
                if not any(ch in pattern for ch in "*?[")
                else f"pattern {pattern!r} matches no table in database {database!r}"
            )
        selected.update(hits)
    return sorted(selected)
