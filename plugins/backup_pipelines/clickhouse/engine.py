"""The ClickHouse engine of the snapshots: statements run through the clickhousedb provider's client.

``ClickHouseEngine`` runs what ``clickhouse.sql`` renders: ``BACKUP``/``RESTORE ... ASYNC`` and the
``system.backups`` polls, table and database housekeeping, row counts, ``CHECK TABLE``. It also
turns an ``s3://`` location into the HTTP URL and (with ``s3_credentials: connection``) the keys
ClickHouse's ``S3()`` needs; keys are registered with ``mask_secret`` and never returned, logged or
written to a manifest. ClickHouse itself shows them as ``[HIDDEN]`` in ``system.backups``.

With a ClickHouse server a backup runs server-side and the task can defer; with embedded chDB
(``dsn = chdb:///<dir>``) it runs inside the task's own process (``is_embedded``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from backup_pipelines.clickhouse.backup_files import BackupStatus
from backup_pipelines.clickhouse.sql import (
    S3Credentials,
    load_sql,
    match_tables,
    on_cluster_clause,
    quote_identifier,
    render_backup,
    render_restore,
    render_sql,
)
from backup_pipelines.core.errors import BackupFailedError, SourceNotFoundError, UnsafeOperationError
from backup_pipelines.core.s3 import split_s3_url

if TYPE_CHECKING:
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.s3 import BackupS3Hook

log = logging.getLogger(__name__)


#: The longest wait between two polls of ``system.backups`` in this process (``ClickHouseEngine.wait``):
#: ``IN_PROCESS_POLL_FAST`` for the first ``IN_PROCESS_FAST_FOR`` seconds of an operation (an hourly
#: increment's usual length), then ``IN_PROCESS_POLL_CEILING``.
IN_PROCESS_POLL_FAST = 0.03
IN_PROCESS_FAST_FOR = 30.0
IN_PROCESS_POLL_CEILING = 0.2


class ClickHouseEngine:
    """Native ClickHouse ``BACKUP``/``RESTORE`` to S3 and the queries around them.

    :param clickhouse_conn_id: ClickHouse connection (HTTP server, or ``chdb://`` for the embedded stack)
    :param aws_conn_id: AWS connection: its endpoint builds the ``S3()`` URLs and, with
        ``credentials="connection"``, it supplies the keys ClickHouse uses; with ``"server_side"``
        ClickHouse uses its own (named collection, environment or instance role).
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

    @classmethod
    def from_config(cls, cfg: BackupConfig) -> ClickHouseEngine:
        section = cfg.clickhouse_snapshots
        return cls(
            clickhouse_conn_id=cfg.connections.clickhouse,
            aws_conn_id=cfg.connections.aws,
            credentials=section.s3_credentials,
            on_cluster=section.on_cluster,
        )

    # -- connections ----------------------------------------------------------------------------
    @cached_property
    def clickhouse_hook(self) -> Any:
        from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

        return ClickHouseHook(clickhouse_conn_id=self.clickhouse_conn_id)

    @cached_property
    def client(self) -> Any:
        return self.clickhouse_hook.get_client()

    @cached_property
    def s3(self) -> BackupS3Hook:
        from backup_pipelines.core.s3 import BackupS3Hook

        return BackupS3Hook(aws_conn_id=self.aws_conn_id)

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

        creds = self.s3.get_credentials()
        if not creds.access_key or not creds.secret_key:
            raise UnsafeOperationError(
                f"clickhouse_snapshots.s3_credentials is 'connection' but AWS connection "
                f"{self.aws_conn_id!r} has no access key and secret"
            )
        mask_secret(creds.secret_key)
        if creds.token:
            mask_secret(creds.token)
        return S3Credentials(creds.access_key, creds.secret_key, creds.token or None)

    def http_url(self, s3_url: str) -> str:
        """The HTTP(S) URL ClickHouse's ``S3()`` takes for an ``s3://bucket/key`` location."""
        bucket, key = split_s3_url(s3_url)
        config = self.s3.conn_config
        endpoint = config.endpoint_url if config else None
        if endpoint:
            return f"{endpoint.rstrip('/')}/{bucket}/{key}"
        region = config.region_name if config else None
        host = f"{bucket}.s3.{region}.amazonaws.com" if region else f"{bucket}.s3.amazonaws.com"
        return f"https://{host}/{key}"

    # -- queries ------------------------------------------------------------------------------
    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.client.query(sql, parameters=params or {}).result_rows)

    def query_file(self, name: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """A statement from ``include/sql/clickhouse/`` with bound parameters."""
        return self.query(load_sql(name), params)

    def server_version(self) -> str:
        return str(self.query("SELECT version()")[0][0])

    def database_exists(self, database: str) -> bool:
        return bool(self.query_file("database_exists.sql", {"database": database})[0][0])

    def existing_tables(self, database: str) -> list[str]:
        if not self.database_exists(database):
            return []
        return [str(row[0]) for row in self.query_file("list_tables.sql", {"database": database})]

    def resolve_tables(self, database: str, patterns: Sequence[str]) -> list[str]:
        if not self.database_exists(database):
            raise SourceNotFoundError(f"database {database!r} does not exist on the ClickHouse server")
        return match_tables(self.existing_tables(database), patterns, database=database)

    def create_database(self, name: str) -> None:
        self.client.command(
            render_sql(
                "create_database.sql",
                database=quote_identifier(name),
                on_cluster=on_cluster_clause(self.on_cluster),
            )
        )

    def drop_database(self, name: str, *, quiet: bool = True) -> None:
        """Drop a (scratch) database; with ``quiet`` a failure is logged, never raised."""
        try:
            self.client.command(
                render_sql(
                    "drop_database.sql",
                    database=quote_identifier(name),
                    on_cluster=on_cluster_clause(self.on_cluster),
                )
            )
        except Exception as exc:  # cleanup must not hide the real outcome
            if not quiet:
                raise
            log.warning("could not drop database %s: %s", name, exc)

    def table_rows(self, database: str, table: str) -> int:
        sql = render_sql("count_rows.sql", table=f"{quote_identifier(database)}.{quote_identifier(table)}")
        return int(self.query(sql)[0][0])

    def check_table(self, database: str, table: str) -> bool:
        sql = render_sql("check_table.sql", table=f"{quote_identifier(database)}.{quote_identifier(table)}")
        flat = [v for row in self.query(sql) for v in row]
        return bool(flat) and all(str(v).strip() in ("1", "True", "true") for v in flat if str(v).strip())

    def part_rows(self, database: str, tables: Sequence[str]) -> dict[tuple[str, str], int]:
        """Rows of the active and merged-away parts ``system.parts`` still knows: (table, part) -> rows."""
        if not tables:
            return {}
        rows = self.query_file("part_rows.sql", {"database": database, "tables": list(tables)})
        return {(str(table), str(part)): int(count) for table, part, count in rows}

    def table_engines(self, database: str) -> dict[str, str]:
        """Engine of each table of ``database`` (empty when the database does not exist)."""
        if not self.database_exists(database):
            return {}
        return {str(n): str(e) for n, e in self.query_file("table_engines.sql", {"database": database})}

    def set_merges(self, database: str, tables: Sequence[str], *, running: bool) -> None:
        """``SYSTEM STOP|START MERGES`` on the MergeTree-family tables among ``tables`` (views and
        other engines have no merges). Stopped merges also hold mutations back."""
        engines = self.table_engines(database)
        for table in tables:
            if "MergeTree" not in engines.get(table, ""):
                continue
            self.client.command(
                render_sql(
                    "merges.sql",
                    action="START" if running else "STOP",
                    table=f"{quote_identifier(database)}.{quote_identifier(table)}",
                    on_cluster=on_cluster_clause(self.on_cluster),
                )
            )

    def active_part_rows(self, database: str) -> dict[str, list[int]]:
        """Stored rows of each active part of each table of ``database``: table -> sorted rows."""
        out: dict[str, list[int]] = {}
        for table, rows in self.query_file("active_part_rows.sql", {"database": database}):
            out.setdefault(str(table), []).append(int(rows))
        return {table: sorted(rows) for table, rows in out.items()}

    def swap_tables(self, *, staging: str, live: str, tables: Sequence[str]) -> None:
        """Put restored tables in place atomically; the replaced live tables land in ``staging``."""
        existing = set(self.existing_tables(live))
        self.create_database(live)
        for table in tables:
            src = f"{quote_identifier(staging)}.{quote_identifier(table)}"
            dst = f"{quote_identifier(live)}.{quote_identifier(table)}"
            name = "exchange_tables.sql" if table in existing else "rename_table.sql"
            self.client.command(
                render_sql(name, source=src, target=dst, on_cluster=on_cluster_clause(self.on_cluster))
            )
            log.info("Swapped restored table %s into %s", table, live)

    # -- backups and restores -------------------------------------------------------------------
    @staticmethod
    def backup_id_prefix(dataset: str, rp_id: str) -> str:
        return f"bp-{dataset}-{rp_id}-"

    def running_backup(self, dataset: str, rp_id: str) -> str | None:
        """The id of a backup of this slot still running server-side (a retried task re-attaches)."""
        rows = self.query_file("running_backups.sql", {"prefix": self.backup_id_prefix(dataset, rp_id)})
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
        """Start ``BACKUP ... ASYNC``; returns the backup id to wait on.

        In chDB (``is_embedded``) the backup runs in this process whatever the statement, so it is
        sent without ``ASYNC`` and returns when the backup has ended: no polling latency, and no
        ``system.backups`` queries competing with the backup; ``wait`` then reads its status once."""
        backup_id = f"{self.backup_id_prefix(dataset, rp_id)}{uuid.uuid4().hex[:8]}"
        statement = render_backup(
            database=database,
            tables=tables,
            url=self.http_url(location),
            backup_id=backup_id,
            base_url=self.http_url(base_location) if base_location else None,
            credentials=self.s3_credentials(),
            on_cluster=self.on_cluster,
            blocking=self.is_embedded,
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
            rows = self.query(statement.sql, statement.params)
        except Exception as exc:
            ended = "failed" if self.is_embedded else "was refused"
            raise BackupFailedError(f"BACKUP of {database} to {location} {ended}: {exc}") from None
        return str(rows[0][0]) if rows else backup_id

    def start_restore(
        self,
        *,
        database: str,
        tables: Sequence[str],
        target_database: str,
        location: str,
        structure_only: bool = False,
        into_existing: bool = False,
        on_cluster: bool = True,
    ) -> str:
        """Start ``RESTORE ... ASYNC`` of ``location`` into ``target_database``; returns its id.

        ``into_existing``: the tables already exist (a ``structure_only`` restore created them and
        their merges are stopped): only the data is restored into them."""
        statement = render_restore(
            database=database,
            tables=tables,
            target_database=target_database,
            url=self.http_url(location),
            credentials=self.s3_credentials(),
            on_cluster=self.on_cluster if on_cluster else None,
            structure_only=structure_only,
            allow_non_empty_tables=into_existing,
            restore_id=f"bp-{'verify' if structure_only else 'restore'}-{uuid.uuid4().hex[:12]}",
        )
        try:
            return str(self.query(statement.sql, statement.params)[0][0])
        except Exception as exc:
            raise BackupFailedError(f"RESTORE of {location} was refused: {exc}") from None

    def backup_status(self, backup_id: str) -> BackupStatus | None:
        rows = self.query_file("backup_status.sql", {"id": backup_id})
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

        Polls start at 30 ms and stay at a short fixed ceiling (``IN_PROCESS_POLL_FAST`` for the
        first ``IN_PROCESS_FAST_FOR`` seconds, then ``IN_PROCESS_POLL_CEILING``; ``poll_interval``
        when smaller): the task notices the end within that ceiling, whatever the backup's size, so
        its overhead over a bare ``BACKUP`` is a constant (a poll of ``system.backups`` in-process
        costs about a millisecond).
        """
        started = time.monotonic()
        last_log = started
        delay = min(IN_PROCESS_POLL_FAST, poll_interval)
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
            ceiling = IN_PROCESS_POLL_FAST if now - started < IN_PROCESS_FAST_FOR else IN_PROCESS_POLL_CEILING
            delay = min(delay * 1.5, poll_interval, ceiling)
