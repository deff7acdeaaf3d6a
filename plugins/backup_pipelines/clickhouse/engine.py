"""ClickHouse native backups to S3: start, wait, describe, verify and restore incremental chains.

All ClickHouse I/O goes through the clickhousedb provider's ``ClickHouseHook`` client and all S3
I/O through the amazon provider's ``S3Hook``. SQL lives in ``include/sql/clickhouse/``; values are
bound as query parameters, identifiers are quoted with :func:`quote_identifier`.

Layout: one recovery point is one ClickHouse backup at
``s3://<backup_bucket>/<prefix><dataset>/<recovery_point_id>/``; an increment's ``.backup`` file
names its base, so restoring the newest point of a chain reads the whole chain.

Secrets: with ``s3_credentials: connection`` the AWS connection's keys are bound as query
parameters (never part of the SQL text), registered with ``mask_secret`` and never returned,
logged or written to a manifest. ClickHouse itself shows them as ``[HIDDEN]`` in ``system.backups``.
"""

from __future__ import annotations

import itertools
import logging
import re
import string
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from backup_pipelines import __version__
from backup_pipelines.core.catalog import Manifest, ObjectEntry, split_s3_url
from backup_pipelines.core.config import SQL_ROOT
from backup_pipelines.core.errors import (
    BackupFailedError,
    BrokenChainError,
    SourceNotFoundError,
    StorageUnreachableError,
    UnsafeOperationError,
    VerificationError,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import BackupConfig

log = logging.getLogger(__name__)

SQL_DIR = SQL_ROOT / "clickhouse"
KIND: Final = "clickhouse_snapshot"
BACKUP_METADATA_FILE = ".backup"
RUNNING_STATES = frozenset({"CREATING_BACKUP", "RESTORING"})
DONE_STATES = frozenset({"BACKUP_CREATED", "RESTORED"})
_IDENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_SETTING_LITERAL_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_COUNT_FILE_RE = re.compile(
    r"^(?:shards/(?P<shard>\d+)/replicas/(?P<replica>\d+)/)?data/(?P<db>[^/]+)/(?P<table>[^/]+)/"
    r"(?P<part>[^/]+)/count\.txt$"
)


# -- SQL helpers (pure) ---------------------------------------------------------------------------
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
    text = (SQL_DIR / name).read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("--")).strip()


def render_sql(name: str, **fragments: str) -> str:
    """Fill ``$name`` slots of a SQL file with pre-quoted fragments (never with raw values)."""
    return string.Template(load_sql(name)).substitute(fragments)


def _s3_expr(url_param: str, with_credentials: bool, with_token: bool) -> str:
    if not with_credentials:
        return f"S3({{{url_param}:String}})"
    parts = [f"{{{url_param}:String}}", "{access_key_id:String}", "{secret_access_key:String}"]
    if with_token:
        parts.append("{session_token:String}")
    return f"S3({', '.join(parts)})"


def _tables_clause(database: str, tables: Sequence[str], target_database: str | None = None) -> str:
    clauses = []
    for table in tables:
        clause = f"TABLE {quote_identifier(database)}.{quote_identifier(table)}"
        if target_database is not None:
            clause += f" AS {quote_identifier(target_database)}.{quote_identifier(table)}"
        clauses.append(clause)
    return ", ".join(clauses)


def _on_cluster(cluster: str | None) -> str:
    return f" ON CLUSTER {quote_identifier(cluster)}" if cluster else ""


# -- values -------------------------------------------------------------------------------------
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
) -> BackupStatement:
    """``BACKUP TABLE ... TO S3(...) SETTINGS [base_backup = S3(...),] id = '...' ASYNC``."""
    if not tables:
        raise ValueError("a backup needs at least one table")
    with_token = bool(credentials and credentials.session_token)
    settings = []
    params: dict[str, Any] = {"url": url}
    if base_url:
        settings.append(f"base_backup = {_s3_expr('base_url', credentials is not None, with_token)}")
        params["base_url"] = base_url
    settings.append(f"id = {quote_setting_literal(backup_id)}")
    if credentials is not None:
        params.update(credentials.params())
    sql = render_sql(
        "backup.sql",
        tables=_tables_clause(database, tables),
        on_cluster=_on_cluster(on_cluster),
        destination=_s3_expr("url", credentials is not None, with_token),
        settings=", ".join(settings),
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
    restore_id: str | None = None,
) -> BackupStatement:
    """``RESTORE TABLE db.t AS target.t, ... FROM S3(...) [SETTINGS ...] ASYNC``."""
    if not tables:
        raise ValueError("a restore needs at least one table")
    settings = []
    if structure_only:
        settings.append("structure_only = 1")
    if restore_id:
        settings.append(f"id = {quote_setting_literal(restore_id)}")
    params: dict[str, Any] = {"url": url}
    if credentials is not None:
        params.update(credentials.params())
    sql = render_sql(
        "restore.sql",
        tables=_tables_clause(database, tables, target_database),
        on_cluster=_on_cluster(on_cluster),
        source=_s3_expr("url", credentials is not None, bool(credentials and credentials.session_token)),
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


# What ``backup_location`` names: a slot id (``recovery_point_id``), or a retake of one.
_RECOVERY_POINT_FOLDER = re.compile(r"^\d{8}T\d{4}Z(\.retake-\d{8}T\d{6})?$")


def backup_location(bucket: str, prefix: str, dataset: str, recovery_point_id: str) -> str:
    """``s3://bucket/<prefix><dataset>/<recovery_point_id>/``: one folder per recovery point."""
    return f"s3://{bucket}/{prefix}{dataset}/{recovery_point_id}/"


def recovery_point_id(interval_end: datetime) -> str:
    """The slot key of a run, from its data interval end (reruns and backfills hit the same key)."""
    return interval_end.strftime("%Y%m%dT%H%MZ")


@dataclass(frozen=True)
class BackupFile:
    """One entry of a backup's ``.backup`` file: every file of the logical backup."""

    name: str
    size: int
    checksum: str | None
    use_base: bool
    base_size: int
    data_file: str = ""

    @property
    def stored_here(self) -> bool:
        """True when this backup holds (some of) the file's bytes, not only its base."""
        return self.size > 0 and not (self.use_base and self.base_size >= self.size)


@dataclass(frozen=True)
class BackupContents:
    files: list[BackupFile]
    base_backup: str | None
    timestamp: str | None

    def part_count_files(self) -> dict[tuple[str, str], list[BackupFile]]:
        """``count.txt`` of every part, grouped by (table, part)."""
        out: dict[tuple[str, str], list[BackupFile]] = {}
        for item in self.files:
            match = _COUNT_FILE_RE.match(item.name)
            if match:
                key = (unquote(match.group("table")), unquote(match.group("part")))
                out.setdefault(key, []).append(item)
        return out

    def tables(self) -> list[str]:
        names = set()
        for item in self.files:
            parts = item.name.split("/")
            if len(parts) >= 3 and parts[0] == "metadata" and parts[-1].endswith(".sql"):
                names.add(unquote(parts[-1][:-4]))
        return sorted(names)


def parse_backup_metadata(raw: bytes | str) -> BackupContents:
    """Parse the ``.backup`` XML ClickHouse writes last, after every data file of the backup."""
    root = ET.fromstring(raw)  # noqa: S314 - our own bucket's file written by ClickHouse
    files = []
    for node in root.iter("file"):
        size = int(node.findtext("size") or 0)
        files.append(
            BackupFile(
                name=node.findtext("name") or "",
                size=size,
                checksum=node.findtext("checksum"),
                use_base=(node.findtext("use_base") or "false").lower() == "true",
                base_size=int(node.findtext("base_size") or (size if node.findtext("use_base") else 0)),
                data_file=node.findtext("data_file") or "",
            )
        )
    return BackupContents(files, root.findtext("base_backup"), root.findtext("timestamp"))


@dataclass(frozen=True)
class BackupStatus:
    id: str
    status: str
    error: str
    num_files: int = 0
    total_size: int = 0

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATES

    @property
    def succeeded(self) -> bool:
        return self.status in DONE_STATES


@dataclass
class RestoreResult:
    """What a restore did: rows per table, their expected counts, CHECK TABLE results and wall time."""

    recovery_point_id: str
    source_database: str
    target_database: str
    chain: list[str]
    rows: dict[str, int]
    expected_rows: dict[str, int]
    check_table: dict[str, bool]
    duration_s: float

    @property
    def mismatches(self) -> dict[str, tuple[int, int]]:
        """Tables whose restored row count differs from the manifest: table -> (restored, expected)."""
        return {
            table: (self.rows.get(table, -1), expected)
            for table, expected in self.expected_rows.items()
            if self.rows.get(table, -1) != expected
        }

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(self.check_table.values())

    def summary(self) -> dict[str, Any]:
        return {
            "recovery_point_id": self.recovery_point_id,
            "source_database": self.source_database,
            "target_database": self.target_database,
            "chain": self.chain,
            "rows": self.rows,
            "expected_rows": self.expected_rows,
            "check_table": self.check_table,
            "duration_s": round(self.duration_s, 3),
            "ok": self.ok,
        }


@dataclass
class VerificationResult:
    ok: bool
    checks: list[str]
    detail: str | None = None


# -- the hook -----------------------------------------------------------------------------------
class ClickHouseBackupHook:
    """Native ClickHouse ``BACKUP``/``RESTORE`` to S3 through the clickhousedb and amazon providers.

    :param clickhouse_conn_id: ClickHouse connection (HTTP server, or ``chdb://`` for the embedded stack)
    :param aws_conn_id: AWS connection: reads backup files and, with ``credentials="connection"``,
        supplies the keys ClickHouse uses; with ``"server_side"`` ClickHouse uses its own
        (named collection, environment or instance role).
    """

    def __init__(
        self,
        *,
        clickhouse_conn_id: str = "clickhouse_default",
        aws_conn_id: str = "aws_default",
        credentials: str = "server_side",
        on_cluster: str | None = None,
    ) -> None:
        if credentials not in ("server_side", "connection"):
            raise ValueError(f"credentials must be server_side or connection, not {credentials!r}")
        self.clickhouse_conn_id = clickhouse_conn_id
        self.aws_conn_id = aws_conn_id
        self.credentials_mode = credentials
        self.on_cluster = on_cluster

    # -- connections ----------------------------------------------------------------------------
    @cached_property
    def clickhouse_hook(self) -> Any:
        from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

        return ClickHouseHook(clickhouse_conn_id=self.clickhouse_conn_id)

    @cached_property
    def client(self) -> Any:
        return self.clickhouse_hook.get_client()

    @cached_property
    def s3_hook(self) -> S3Hook:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    @property
    def _s3_client(self) -> Any:
        return self.s3_hook.get_conn()

    @cached_property
    def is_embedded(self) -> bool:
        """chDB runs backups inside this process: they cannot be left running while the task defers."""
        conn = self.clickhouse_hook.get_connection(self.clickhouse_conn_id)
        kwargs = conn.extra_dejson.get("client_kwargs") or {}
        return isinstance(kwargs, dict) and str(kwargs.get("dsn", "")).startswith("chdb:")

    def s3_credentials(self) -> S3Credentials | None:
        """Keys from the AWS connection when configured so (masked in every log), else None."""
        if self.credentials_mode == "server_side":
            return None
        from airflow.sdk.log import mask_secret

        creds = self.s3_hook.get_credentials()
        if not creds.access_key or not creds.secret_key:
            raise UnsafeOperationError(
                f"clickhouse_snapshots.s3_credentials is 'connection' but AWS connection "
                f"{self.aws_conn_id!r} has no access key and secret"
            )
        mask_secret(creds.secret_key)
        if creds.token:
            mask_secret(creds.token)
        return S3Credentials(creds.access_key, creds.secret_key, creds.token or None)

    def catalog(self, cfg: BackupConfig) -> Catalog:
        """The config's catalog on this hook's S3 connection (one boto3 client for both)."""
        from backup_pipelines.core.catalog import Catalog

        return Catalog(
            self.s3_hook,
            bucket=cfg.storage.backup_bucket,
            prefix=cfg.storage.catalog_prefix,
            encryption=cfg.storage.encryption,
        )

    def http_url(self, s3_url: str) -> str:
        """The HTTP(S) URL ClickHouse's ``S3()`` takes for an ``s3://bucket/key`` location."""
        bucket, key = split_s3_url(s3_url)
        config = self.s3_hook.conn_config
        endpoint = config.endpoint_url if config else None
        if endpoint:
            return f"{endpoint.rstrip('/')}/{bucket}/{key}"
        region = config.region_name if config else None
        host = f"{bucket}.s3.{region}.amazonaws.com" if region else f"{bucket}.s3.amazonaws.com"
        return f"https://{host}/{key}"

    # -- queries ------------------------------------------------------------------------------
    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.client.query(sql, parameters=params or {}).result_rows)

    def server_version(self) -> str:
        return str(self._query("SELECT version()")[0][0])

    def resolve_tables(self, database: str, patterns: Sequence[str]) -> list[str]:
        if not self._query(load_sql("database_exists.sql"), {"database": database})[0][0]:
            raise SourceNotFoundError(f"database {database!r} does not exist on the ClickHouse server")
        available = [row[0] for row in self._query(load_sql("list_tables.sql"), {"database": database})]
        return match_tables(available, patterns, database=database)

    def check_storage(self, bucket: str) -> None:
        """Fail fast, with a clear message, when the backup bucket cannot be reached."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3_client.head_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnreachableError(
                f"backup bucket s3://{bucket} is not reachable through AWS connection "
                f"{self.aws_conn_id!r}: {exc}; nothing was written or deleted"
            ) from None

    # -- backups ------------------------------------------------------------------------------
    @staticmethod
    def backup_id_prefix(dataset: str, rp_id: str) -> str:
        return f"bp-{dataset}-{rp_id}-"

    def running_backup(self, dataset: str, rp_id: str) -> str | None:
        """The id of a backup of this slot still running server-side (a retried task re-attaches)."""
        rows = self._query(load_sql("running_backups.sql"), {"prefix": self.backup_id_prefix(dataset, rp_id)})
        return str(rows[0][0]) if rows else None

    def start_backup(
        self,
        *,
        dataset: str,
        rp_id: str,
        database: str,
        tables: Sequence[str],
        location: str,
        base_location: str | None = None,
    ) -> str:
        """Start ``BACKUP ... ASYNC``; returns the backup id to wait on."""
        backup_id = f"{self.backup_id_prefix(dataset, rp_id)}{uuid.uuid4().hex[:8]}"
        statement = render_backup(
            database=database,
            tables=tables,
            url=self.http_url(location),
            backup_id=backup_id,
            base_url=self.http_url(base_location) if base_location else None,
            credentials=self.s3_credentials(),
            on_cluster=self.on_cluster,
        )
        log.info(
            "Starting %s backup %s of %s (%d tables: %s) to %s",
            "incremental" if base_location else "full",
            backup_id,
            database,
            len(tables),
            ", ".join(tables),
            location,
        )
        try:
            rows = self._query(statement.sql, statement.params)
        except Exception as exc:
            raise BackupFailedError(f"BACKUP of {database} to {location} was refused: {exc}") from None
        return str(rows[0][0]) if rows else backup_id

    def backup_status(self, backup_id: str) -> BackupStatus | None:
        rows = self._query(load_sql("backup_status.sql"), {"id": backup_id})
        if not rows:
            return None
        row = rows[0]
        return BackupStatus(
            id=str(row[0]),
            status=str(row[1]),
            error=str(row[2] or ""),
            num_files=int(row[3] or 0),
            total_size=int(row[4] or 0),
        )

    def wait(
        self,
        backup_id: str,
        *,
        poll_interval: float = 1.0,
        timeout: float = 6 * 3600,
        what: str = "backup",
        sleep: Callable[[float], None] = time.sleep,
    ) -> BackupStatus:
        """Poll ``system.backups`` in this process until the operation ends (the chDB path).

        Polls start at 50 ms and back off to ``poll_interval``: small hourly increments finish in
        well under a second and should not pay a whole poll interval.
        """
        started = time.monotonic()
        last_log = started
        delay = min(0.05, poll_interval)
        while True:
            status = self.backup_status(backup_id)
            if status is None:
                raise BackupFailedError(
                    f"{what} {backup_id} is not in system.backups (the server restarted?)"
                )
            if not status.running:
                if not status.succeeded:
                    raise BackupFailedError(f"{what} {backup_id} ended {status.status}: {status.error}")
                return status
            now = time.monotonic()
            if now - started > timeout:
                raise BackupFailedError(f"{what} {backup_id} still {status.status} after {timeout:.0f}s")
            if now - last_log >= 30:
                log.info("%s %s still %s after %.0fs", what, backup_id, status.status, now - started)
                last_log = now
            sleep(delay)
            delay = min(delay * 1.5, poll_interval)

    # -- reading backups back -------------------------------------------------------------------
    def read_contents(self, location: str) -> BackupContents:
        bucket, prefix = split_s3_url(location)
        key = prefix + BACKUP_METADATA_FILE
        client = self._s3_client
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise VerificationError(
                f"backup {location} has no {BACKUP_METADATA_FILE} file: the backup is incomplete"
            ) from None
        return parse_backup_metadata(body)

    def list_objects(self, location: str) -> list[ObjectEntry]:
        bucket, prefix = split_s3_url(location)
        paginator = self._s3_client.get_paginator("list_objects_v2")
        entries = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                entries.append(
                    ObjectEntry(
                        key=obj["Key"],
                        size=int(obj["Size"]),
                        etag=str(obj.get("ETag", "")).strip('"') or None,
                        storage_class=obj.get("StorageClass", "STANDARD"),
                    )
                )
        return entries

    def list_folders(self, s3_prefix: str) -> dict[str, datetime]:
        """Recovery-point folders under ``s3://bucket/<prefix><dataset>/`` -> newest object's time."""
        bucket, prefix = split_s3_url(s3_prefix)
        paginator = self._s3_client.get_paginator("list_objects_v2")
        folders: dict[str, datetime] = {}
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(prefix) :]
                if "/" not in rest:
                    continue
                folder = f"s3://{bucket}/{prefix}{rest.split('/', 1)[0]}/"
                modified = obj["LastModified"]
                if folder not in folders or modified > folders[folder]:
                    folders[folder] = modified
        return folders

    def object_lock_enabled(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            config = self._s3_client.get_object_lock_configuration(Bucket=bucket)
        except ClientError:
            return False
        return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def locked_objects(self, location: str, *, now: datetime) -> list[str]:
        """Objects of a location that S3 Object Lock keeps (retention in the future or legal hold)."""
        bucket, _ = split_s3_url(location)
        locked = []
        for obj in self.list_objects(location):
            head = self._s3_client.head_object(Bucket=bucket, Key=obj.key)
            until = head.get("ObjectLockRetainUntilDate")
            if head.get("ObjectLockLegalHoldStatus") == "ON" or (until is not None and until > now):
                locked.append(f"{obj.key} (until {until.isoformat() if until else 'legal hold'})")
        return locked

    def delete_location(self, location: str) -> int:
        """Delete every object under a location; returns how many were deleted."""
        bucket, prefix = split_s3_url(location)
        folder = prefix.rstrip("/").rsplit("/", 1)[-1]
        if not prefix.endswith("/") or prefix.count("/") < 2 or not _RECOVERY_POINT_FOLDER.match(folder):
            raise UnsafeOperationError(f"refusing to delete {location}: not a recovery point folder")
        keys = [o.key for o in self.list_objects(location)]
        if keys:
            self.s3_hook.delete_objects(bucket, keys)
        return len(keys)

    def chain_index(self, chain_locations: Sequence[str]) -> dict[tuple[int, str | None], tuple[str, str]]:
        """Where the bytes of each (size, checksum) live in a chain: -> (location, file name).

        ClickHouse deduplicates by checksum: a file of an increment marked ``use_base`` is read from
        whichever base holds the same size and checksum, possibly under another name.
        """
        index: dict[tuple[int, str | None], tuple[str, str]] = {}
        for location in reversed(chain_locations):  # newest first
            for item in self.read_contents(location).files:
                if item.stored_here and not item.data_file:
                    index.setdefault((item.size, item.checksum), (location, item.name))
        return index

    def part_rows(
        self, database: str, contents: BackupContents, chain_locations: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, list[str]]]:
        """Rows per table and part names, from the parts the backup holds.

        Part rows come from ``system.parts`` (a part is immutable, so its name fixes its rows); a part
        merged away since the backup, or a sharded backup, is read from its ``count.txt`` in the chain.
        """
        count_files = contents.part_count_files()
        tables = sorted({table for table, _ in count_files})
        known: dict[tuple[str, str], int] = {}
        if tables:
            for table, part, rows in self._query(
                load_sql("part_rows.sql"), {"database": database, "tables": tables}
            ):
                known[(str(table), str(part))] = int(rows)
        row_counts = {table: 0 for table in contents.tables()}
        parts: dict[str, list[str]] = {}
        index: dict[tuple[int, str | None], tuple[str, str]] | None = None
        for (table, part), files in sorted(count_files.items()):
            for item in files:  # one per shard/replica path when ON CLUSTER
                rows_in_part = known.get((table, part)) if len(files) == 1 else None
                if rows_in_part is None:
                    if index is None:
                        index = self.chain_index(chain_locations)
                    rows_in_part = self._read_count_file(item, index)
                row_counts[table] = row_counts.get(table, 0) + rows_in_part
            parts.setdefault(table, []).append(part)
        return row_counts, parts

    def _read_count_file(self, item: BackupFile, index: dict[tuple[int, str | None], tuple[str, str]]) -> int:
        found = index.get((item.size, item.checksum))
        if found is None:
            raise VerificationError(f"part file {item.name} is stored in no backup of the chain")
        location, name = found
        bucket, prefix = split_s3_url(location)
        return int(self._s3_client.get_object(Bucket=bucket, Key=prefix + name)["Body"].read().strip())

    def describe(
        self,
        *,
        dataset: str,
        database: str,
        rp_id: str,
        location: str,
        status: BackupStatus,
        base: Manifest | None,
        chain_locations: Sequence[str],
        captured_at: datetime,
        interval_start: datetime | None,
        interval_end: datetime | None,
        full: bool,
        storage_class: str = "STANDARD",
    ) -> Manifest:
        """The manifest of a finished backup: tables, parts, rows, sizes, base and versions."""
        contents = self.read_contents(location)
        objects = self.list_objects(location)
        checksums = {f.name: f.checksum for f in contents.files}
        _bucket, prefix = split_s3_url(location)
        for obj in objects:
            obj.checksum = checksums.get(obj.key[len(prefix) :])
        row_counts, parts = self.part_rows(database, contents, [*chain_locations, location])
        logical = sum(f.size for f in contents.files)
        stored_data = sum(f.size - (f.base_size if f.use_base else 0) for f in contents.files)
        return Manifest(
            kind=KIND,
            dataset=dataset,
            recovery_point_id=rp_id,
            interval_start=interval_start,
            interval_end=interval_end,
            captured_at=captured_at,
            location=location,
            storage_class=storage_class,
            objects=objects,
            row_counts=row_counts,
            base=base.recovery_point_id if base else None,
            software={"clickhouse": self.server_version(), "backup_pipelines": __version__},
            producer={"dag_id": "clickhouse_hourly_snapshot"},
            details={
                "database": database,
                "tables": contents.tables(),
                "parts": parts,
                "backup_id": status.id,
                "backup_type": "full" if full else "incremental",
                "base_location": base.location if base else None,
                "files": len(contents.files),
                "logical_bytes": logical,
                "new_data_bytes": stored_data,
                "stored_bytes": sum(o.size for o in objects),
                "on_cluster": self.on_cluster,
            },
        )

    # -- verification -------------------------------------------------------------------------
    def verify_backup(self, manifest: Manifest, *, chain: Sequence[Manifest] = ()) -> VerificationResult:
        """Cheap but real checks that a backup is complete and readable.

        1. ``system.backups`` says the backup was created (when the server still knows it);
        2. every file of the ``.backup`` listing is stored, with its size, here or in the base chain;
        3. row counts recomputed from the listing match the manifest;
        4. ``RESTORE ... structure_only`` of every table into a scratch database succeeds.
        """
        checks: list[str] = []
        backup_id = str(manifest.details.get("backup_id", ""))
        status = self.backup_status(backup_id) if backup_id else None
        if status is not None:
            if not status.succeeded:
                return VerificationResult(False, checks, f"system.backups: {status.status} {status.error}")
            checks.append(f"system.backups: {status.status}")
        else:
            checks.append("system.backups: not known to this server (restarted?); relying on the listing")

        chain_list = list(chain) or [manifest]
        if chain_list[-1].recovery_point_id != manifest.recovery_point_id:
            raise BrokenChainError(f"chain given for {manifest.recovery_point_id} does not end with it")
        try:
            contents = self.read_contents(manifest.location)
        except VerificationError as exc:
            return VerificationResult(False, checks, str(exc))
        missing = self._missing_files(manifest, contents, chain_list)
        if missing:
            return VerificationResult(
                False,
                checks,
                f"{len(missing)} file(s) of the listing are not stored: {', '.join(missing[:5])}",
            )
        checks.append(f"listing: {len(contents.files)} files present in the chain of {len(chain_list)}")

        chain_locations = [m.location for m in chain_list]
        database = str(manifest.details.get("database", ""))
        rows, _ = self.part_rows(database, contents, chain_locations)
        if rows != manifest.row_counts:
            return VerificationResult(
                False, checks, f"row counts {rows} differ from manifest {manifest.row_counts}"
            )
        checks.append(f"row counts from parts: {sum(rows.values())} rows in {len(rows)} tables")

        tables = contents.tables()
        scratch = f"_bp_verify_{uuid.uuid4().hex[:10]}"
        try:
            self._create_database(scratch)
            statement = render_restore(
                database=database,
                tables=tables,
                target_database=scratch,
                url=self.http_url(manifest.location),
                credentials=self.s3_credentials(),
                on_cluster=None,
                structure_only=True,
                restore_id=f"bp-verify-{uuid.uuid4().hex[:12]}",
            )
            restore_id = str(self._query(statement.sql, statement.params)[0][0])
            self.wait(restore_id, poll_interval=0.2, timeout=600, what="structure-only restore")
            restored = sorted(r[0] for r in self._query(load_sql("list_tables.sql"), {"database": scratch}))
        except BackupFailedError as exc:
            return VerificationResult(False, checks, f"RESTORE structure_only failed: {exc}")
        finally:
            self._drop_database(scratch)
        if restored != tables:
            return VerificationResult(
                False, checks, f"structure-only restore gave {restored}, expected {tables}"
            )
        checks.append(f"RESTORE structure_only: {len(tables)} tables")
        return VerificationResult(True, checks)

    def _missing_files(
        self, manifest: Manifest, contents: BackupContents, chain: Sequence[Manifest]
    ) -> list[str]:
        """Files of the listing whose bytes are in neither this backup's objects nor its base chain."""
        _, prefix = split_s3_url(manifest.location)
        own = {o.key[len(prefix) :]: o.size for o in self.list_objects(manifest.location)}
        bases = self.chain_index([m.location for m in chain[:-1]]) if len(chain) > 1 else {}
        missing = []
        for item in contents.files:
            if item.size == 0:
                continue
            if item.stored_here:
                stored_as = item.data_file or item.name
                if stored_as not in own:
                    missing.append(item.name)
            elif (item.base_size, item.checksum) not in bases and (item.size, item.checksum) not in bases:
                missing.append(item.name)
        return missing

    def _create_database(self, name: str) -> None:
        self.client.command(
            render_sql(
                "create_database.sql",
                database=quote_identifier(name),
                on_cluster=_on_cluster(self.on_cluster),
            )
        )

    def _drop_database(self, name: str) -> None:
        try:
            self.client.command(
                render_sql(
                    "drop_database.sql",
                    database=quote_identifier(name),
                    on_cluster=_on_cluster(self.on_cluster),
                )
            )
        except Exception as exc:  # cleanup must not hide the real outcome
            log.warning("could not drop scratch database %s: %s", name, exc)

    # -- restore ------------------------------------------------------------------------------
    def table_rows(self, database: str, table: str) -> int:
        sql = render_sql("count_rows.sql", table=f"{quote_identifier(database)}.{quote_identifier(table)}")
        return int(self._query(sql)[0][0])

    def check_table(self, database: str, table: str) -> bool:
        sql = render_sql("check_table.sql", table=f"{quote_identifier(database)}.{quote_identifier(table)}")
        rows = self._query(sql)
        flat = [v for row in rows for v in row]
        return bool(flat) and all(str(v).strip() in ("1", "True", "true") for v in flat if str(v).strip())

    def existing_tables(self, database: str) -> list[str]:
        if not self._query(load_sql("database_exists.sql"), {"database": database})[0][0]:
            return []
        return [row[0] for row in self._query(load_sql("list_tables.sql"), {"database": database})]

    def restore_chain(
        self,
        chain: Sequence[Manifest],
        *,
        target_database: str,
        tables: Sequence[str] | None = None,
        poll_interval: float = 0.5,
        timeout: float = 6 * 3600,
    ) -> RestoreResult:
        """Restore the newest point of ``chain`` (base first) into ``target_database``.

        ClickHouse reads the bases through the ``.backup`` file's ``base_backup``; every member's
        ``.backup`` is checked first so a broken chain fails before anything is created. Tables
        already present in ``target_database`` are refused (use a fresh database, or swap).
        Row counts are compared with the manifest and ``CHECK TABLE`` is run on every table.
        """
        if not chain:
            raise BrokenChainError("restore_chain needs at least one recovery point")
        for previous, member in itertools.pairwise(chain):
            if member.base != previous.recovery_point_id:
                raise BrokenChainError(
                    f"recovery point {member.recovery_point_id} depends on {member.base}, "
                    f"not on {previous.recovery_point_id}: the chain is out of order"
                )
        if chain[0].base:
            raise BrokenChainError(
                f"chain starts at {chain[0].recovery_point_id}, which is not a full backup"
            )
        point = chain[-1]
        for member in chain:
            self.read_contents(member.location)  # raises when a member's .backup is missing
        source_db = str(point.details.get("database", ""))
        available = list(point.details.get("tables") or point.row_counts)
        wanted = list(tables) if tables else available
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            raise SourceNotFoundError(
                f"recovery point {point.recovery_point_id} of {point.dataset!r} holds no table "
                f"{', '.join(unknown)} (it holds {', '.join(available)})"
            )
        clash = sorted(set(wanted) & set(self.existing_tables(target_database)))
        if clash:
            raise UnsafeOperationError(
                f"target database {target_database!r} already has table(s) {', '.join(clash)}; "
                "restore into a new database (or confirm an overwrite, which swaps tables)"
            )
        log.info(
            "Restoring %s of %s (chain %s) into %s: %s",
            point.recovery_point_id,
            point.dataset,
            " -> ".join(m.recovery_point_id for m in chain),
            target_database,
            ", ".join(wanted),
        )
        started = time.monotonic()
        self._create_database(target_database)
        statement = render_restore(
            database=source_db,
            tables=wanted,
            target_database=target_database,
            url=self.http_url(point.location),
            credentials=self.s3_credentials(),
            on_cluster=self.on_cluster,
            restore_id=f"bp-restore-{uuid.uuid4().hex[:12]}",
        )
        try:
            restore_id = str(self._query(statement.sql, statement.params)[0][0])
        except Exception as exc:
            raise BackupFailedError(f"RESTORE of {point.recovery_point_id} was refused: {exc}") from None
        self.wait(restore_id, poll_interval=poll_interval, timeout=timeout, what="restore")
        rows = {t: self.table_rows(target_database, t) for t in wanted}
        checks = {t: self.check_table(target_database, t) for t in wanted}
        duration = time.monotonic() - started
        result = RestoreResult(
            recovery_point_id=point.recovery_point_id,
            source_database=source_db,
            target_database=target_database,
            chain=[m.recovery_point_id for m in chain],
            rows=rows,
            expected_rows={t: point.row_counts[t] for t in wanted if t in point.row_counts},
            check_table=checks,
            duration_s=duration,
        )
        log.info(
            "Restored %s into %s in %.1fs: rows %s, CHECK TABLE %s",
            point.recovery_point_id,
            target_database,
            duration,
            rows,
            checks,
        )
        return result

    def swap_tables(self, *, staging: str, live: str, tables: Sequence[str]) -> None:
        """Put restored tables in place atomically; the replaced live tables land in ``staging``."""
        existing = set(self.existing_tables(live))
        self._create_database(live)
        for table in tables:
            src = f"{quote_identifier(staging)}.{quote_identifier(table)}"
            dst = f"{quote_identifier(live)}.{quote_identifier(table)}"
            name = "exchange_tables.sql" if table in existing else "rename_table.sql"
            self.client.command(
                render_sql(name, source=src, target=dst, on_cluster=_on_cluster(self.on_cluster))
            )
            log.info("Swapped restored table %s into %s", table, live)
