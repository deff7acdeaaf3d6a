"""The I/O of a monthly export: ClickHouse runs the query and writes Parquet to S3 itself; the
worker counts, describes and reads the Parquet footers back with ranged GETs (no data download).

SQL comes from ``include/sql/`` with the month's bounds bound as query parameters; a ClickHouse
error that no retry can fix (syntax, unknown column or table) becomes ``ExportSqlError`` naming the
SQL file. With ``s3_credentials: connection`` the AWS keys are bound as query parameters and
masked, never part of the query text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from backup_pipelines.core.errors import BackupFailedError, ExportReconciliationError, ExportSqlError
from backup_pipelines.core.sql_files import render_sql

if TYPE_CHECKING:
    from backup_pipelines.core.s3 import BackupS3Hook, S3Object

FOOTER_READ = 64 * 1024
FORMAT = "Parquet"
COMPRESSION = "zstd"
# ClickHouse error codes that no retry can fix: the query itself is wrong.
_PERMANENT_CODES = {
    16,  # NO_SUCH_COLUMN_IN_TABLE
    36,  # BAD_ARGUMENTS
    43,  # ILLEGAL_TYPE_OF_ARGUMENT
    44,  # ILLEGAL_COLUMN
    46,  # UNKNOWN_FUNCTION
    47,  # UNKNOWN_IDENTIFIER
    48,  # NOT_IMPLEMENTED
    53,  # TYPE_MISMATCH
    60,  # UNKNOWN_TABLE
    62,  # SYNTAX_ERROR
    81,  # UNKNOWN_DATABASE
    184,  # ILLEGAL_AGGREGATION
    215,  # NOT_AN_AGGREGATE
    352,  # AMBIGUOUS_COLUMN_NAME
    456,  # UNKNOWN_QUERY_PARAMETER
    457,  # BAD_QUERY_PARAMETER
}
_CODE_RE = re.compile(r"Code:\s*(\d+)")


@dataclass(frozen=True)
class FooterInfo:
    """What a Parquet footer says about one staged file (read without downloading the data)."""

    key: str
    size: int
    rows: int
    columns: list[str]
    compression: str


def query_error(exc: Exception, label: str, step: str) -> Exception:
    """Turn a ClickHouse error into one that names the SQL file; permanent when the SQL is wrong."""
    text = str(exc).split("\n", 1)[0][:600]
    match = _CODE_RE.search(str(exc))
    if match and int(match.group(1)) in _PERMANENT_CODES:
        return ExportSqlError(f"{label}: ClickHouse rejected the query ({step}): {text}")
    return BackupFailedError(f"{label}: ClickHouse failed ({step}): {text}")


class ExportEngine:
    """ClickHouse (clickhousedb provider) plus S3 (``BackupS3Hook``): every I/O of an export."""

    def __init__(self, *, clickhouse_conn_id: str, aws_conn_id: str) -> None:
        self.clickhouse_conn_id = clickhouse_conn_id
        self.aws_conn_id = aws_conn_id

    @cached_property
    def client(self) -> Any:
        from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

        return ClickHouseHook(clickhouse_conn_id=self.clickhouse_conn_id).get_client()

    @cached_property
    def s3(self) -> BackupS3Hook:
        from backup_pipelines.core.s3 import BackupS3Hook

        return BackupS3Hook(aws_conn_id=self.aws_conn_id)

    # -- ClickHouse --------------------------------------------------------------------------
    def server_version(self) -> str:
        return str(self.client.query("SELECT version()").result_rows[0][0])

    def describe(self, sql: str, params: dict[str, Any], *, label: str) -> list[tuple[str, str]]:
        """Column names and types the query returns (no data is read)."""
        try:
            rows = self.client.query(
                render_sql("export/describe.sql", query=sql), parameters=params
            ).result_rows
        except Exception as exc:
            raise query_error(exc, label, "describing the result") from exc
        return [(str(r[0]), str(r[1])) for r in rows]

    def count(self, sql: str, params: dict[str, Any], *, label: str) -> int:
        try:
            statement = render_sql("export/count_rows.sql", query=sql)
            rows = self.client.query(statement, parameters=params).result_rows
        except Exception as exc:
            raise query_error(exc, label, "counting the rows") from exc
        return int(rows[0][0])

    def s3_url(self, bucket: str, key: str) -> str:
        """The URL ClickHouse's ``s3()`` function needs: the connection's endpoint, else AWS's."""
        conn = self.s3.conn_config
        endpoint = conn.get_service_endpoint_url("s3") if conn else None
        quoted = quote(key, safe="/{}_=-.")
        if endpoint:
            return f"{endpoint.rstrip('/')}/{bucket}/{quoted}"
        region = (conn.region_name if conn else None) or "us-east-1"
        return f"https://{bucket}.s3.{region}.amazonaws.com/{quoted}"

    def write_parquet(
        self,
        sql: str,
        params: dict[str, Any],
        *,
        bucket: str,
        key_template: str,
        max_rows_per_file: int,
        credentials: str,
        label: str,
    ) -> None:
        """ClickHouse runs the query and writes zstd Parquet to S3 itself, ``max_rows_per_file`` a file.

        ``key_template`` holds ``{_partition_id}`` (0, 1, ...). Credentials are ClickHouse's own
        (``server_side``) or the connection's keys bound as query parameters (``connection``),
        never part of the query text.
        """
        bound: dict[str, Any] = {
            **params,
            "bp_url": self.s3_url(bucket, key_template),
            "bp_format": FORMAT,
            "bp_rows": max_rows_per_file,
        }
        keys = ""  # server_side: ClickHouse's own credentials
        if credentials == "connection":
            from airflow.sdk.log import mask_secret

            creds = self.s3.get_credentials()
            mask_secret(creds.secret_key)
            bound |= {"bp_key": creds.access_key, "bp_secret": creds.secret_key}
            keys = ", {bp_key:String}, {bp_secret:String}"
            if creds.token:
                mask_secret(creds.token)
                bound["bp_token"] = creds.token
                keys += ", {bp_token:String}"
        statement = render_sql("export/write_parquet.sql", keys=keys, query=sql)
        settings = {
            "output_format_parquet_compression_method": COMPRESSION,
            "max_insert_threads": 1,  # one writer: row numbers, hence file numbers, stay sequential
            "s3_truncate_on_insert": 1,  # a retry of the same staging key overwrites, never appends
        }
        try:
            self.client.query(statement, parameters=bound, settings=settings)
        except Exception as exc:
            raise query_error(exc, label, "writing Parquet to S3") from exc

    # -- S3 ----------------------------------------------------------------------------------
    def list_objects(self, bucket: str, prefix: str) -> list[S3Object]:
        return self.s3.list_objects(bucket, prefix)

    def parquet_footer(self, obj: S3Object) -> FooterInfo:
        """Read a Parquet footer with ranged GETs: the last 64 KiB, more only for a longer footer."""
        import pyarrow.parquet as pq

        client = self.s3.client
        tail = client.get_object(Bucket=obj.bucket, Key=obj.key, Range=f"bytes=-{FOOTER_READ}")["Body"].read()
        if len(tail) < 12 or tail[-4:] != b"PAR1":
            raise ExportReconciliationError(f"{obj.url} is not a Parquet file (no PAR1 trailer)")
        footer_len = int.from_bytes(tail[-8:-4], "little")
        if footer_len + 12 > obj.size:
            raise ExportReconciliationError(f"{obj.url}: Parquet footer length {footer_len} is past the file")
        if footer_len + 8 > len(tail):
            tail = client.get_object(Bucket=obj.bucket, Key=obj.key, Range=f"bytes=-{footer_len + 8}")[
                "Body"
            ].read()
        metadata = pq.read_metadata(_FooterFile(obj.size, tail))
        compression = metadata.row_group(0).column(0).compression if metadata.num_row_groups else "NONE"
        return FooterInfo(
            key=obj.key,
            size=obj.size,
            rows=metadata.num_rows,
            columns=[metadata.schema.column(i).name for i in range(metadata.num_columns)],
            compression=str(compression),
        )


class _FooterFile:
    """A read-only file of ``size`` bytes of which only the tail (the Parquet footer) is known."""

    def __init__(self, size: int, tail: bytes) -> None:
        self.size, self.tail, self.pos = size, tail, 0
        self.closed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        start = self.size - len(self.tail)
        end = self.size if n < 0 else min(self.size, self.pos + n)
        # Bytes before the tail were not fetched; the reader's speculative read may cover them
        # but it only parses the footer, so they read as zeros.
        pad = b"\0" * max(0, min(end, start) - self.pos)
        data = pad + self.tail[max(self.pos, start) - start : max(end, start) - start]
        self.pos = end
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True
