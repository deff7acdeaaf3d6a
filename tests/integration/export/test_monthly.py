"""Monthly Deep Archive exports against the embedded stack: chDB writes Parquet to moto S3 itself.

The tests point ``SQL_ROOT`` at their own SQL files over their own table (``bp_export_it.events``),
so counts are exact even though the chDB engine is shared by the whole session.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DB = "bp_export_it"
MONTHS = {"2025-01": 2_500, "2025-02": 1_200, "2025-03": 40}  # events per month; 2025-04 stays empty
DAILY_SQL = f"""-- daily rollup for the tests; bounds are bound parameters
SELECT toDate(event_time) AS day, uniqExact(user_id) AS users, count() AS events, sum(revenue) AS revenue
FROM {DB}.events
WHERE event_time >= {{start:DateTime64(3, 'UTC')}} AND event_time < {{end:DateTime64(3, 'UTC')}}
GROUP BY day
ORDER BY day
"""
RAW_SQL = f"""SELECT event_time, user_id, revenue FROM {DB}.events
WHERE event_time >= {{start:DateTime}} AND event_time < {{end:DateTime}}
ORDER BY event_time, user_id;
"""


@pytest.fixture(scope="module")
def export_table(clickhouse_client: Any) -> str:
    client = clickhouse_client
    client.command(f"CREATE DATABASE IF NOT EXISTS {DB}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {DB}.events (event_time DateTime64(3, 'UTC'), user_id UInt64, "
        "revenue Float64) ENGINE = MergeTree ORDER BY (event_time, user_id)"
    )
    client.command(f"TRUNCATE TABLE {DB}.events")
    for label, count in MONTHS.items():
        start = datetime.strptime(label, "%Y-%m").replace(tzinfo=UTC)
        rows = [(start + timedelta(minutes=17 * i), i % 301, float(i % 7)) for i in range(count)]
        client.insert(f"{DB}.events", rows, column_names=["event_time", "user_id", "revenue"])
    return f"{DB}.events"


@pytest.fixture
def sql_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import backup_pipelines.core.config.paths as config

    root = tmp_path / "sql"
    (root / "exports").mkdir(parents=True)
    (root / "exports" / "daily.sql").write_text(DAILY_SQL)
    (root / "exports" / "raw.sql").write_text(RAW_SQL)
    monkeypatch.setattr(config, "SQL_ROOT", root)
    return root


def _config(example_config: dict[str, Any], exports: list[dict[str, Any]], **section: Any) -> Any:
    from backup_pipelines.core.config import BackupConfig

    raw = dict(example_config)
    raw["deep_archive_exports"] = {
        **raw["deep_archive_exports"],
        "prefix": "it-exports/",
        "exports": exports,
        **section,
    }
    return BackupConfig.model_validate(raw)


def _exporter(cfg: Any, name: str) -> Any:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.export.engine import ExportEngine
    from backup_pipelines.export.monthly import MonthlyExport

    export = next(e for e in cfg.deep_archive_exports.exports if e.name == name)
    hook = ExportEngine(clickhouse_conn_id="clickhouse_default", aws_conn_id="aws_default")
    return MonthlyExport(hook, Catalog.from_config(cfg), cfg, export)


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def _read_parquet_after_restore(s3: Any, bucket: str, keys: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for key in keys:
        s3.restore_object(
            Bucket=bucket, Key=key, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}}
        )
        tables.append(pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())))
    return pa.concat_tables(tables)


def test_month_is_exported_split_reconciled_and_unreadable_without_restore(
    embedded_stack: Any,
    clickhouse_client: Any,
    export_table: str,
    sql_root: Path,
    s3: Any,
    example_config: Any,
) -> None:
    from botocore.exceptions import ClientError

    from backup_pipelines.export.month import Month

    cfg = _config(example_config, [{"name": "raw_it", "sql": "exports/raw.sql", "max_rows_per_file": 1_000}])
    bucket = cfg.storage.archive_bucket
    month = Month.parse("2025-01")
    manifest = _exporter(cfg, "raw_it").run(month).manifest

    # What a user sees: 3 files (2500 rows, 1000 a file) under the month's prefix, DEEP_ARCHIVE, encrypted.
    keys = _keys(s3, bucket, "it-exports/raw_it/month=2025-01/")
    assert keys == sorted(o.key for o in manifest.objects)
    assert len(keys) == 3 and all(k.endswith(f"-part-0000{i}.parquet") for i, k in enumerate(keys))
    assert [o.records for o in manifest.objects] == [1000, 1000, 500]
    for obj in manifest.objects:
        head = s3.head_object(Bucket=bucket, Key=obj.key, ChecksumMode="ENABLED")
        assert head["StorageClass"] == "DEEP_ARCHIVE"
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == obj.size
        assert obj.sha256 and len(obj.sha256) == 64
    # Unreadable without a restore, as in real S3: even a ranged GET is refused.
    for kwargs in ({}, {"Range": "bytes=-8"}):
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=bucket, Key=keys[0], **kwargs)
        assert err.value.response["Error"]["Code"] == "InvalidObjectState"
    # No staging leftovers.
    assert _keys(s3, bucket, "it-exports/_staging/") == []

    # The manifest: rows, query hash, bound parameters, schema, verified.
    expected = clickhouse_client.query(
        RAW_SQL.rstrip().rstrip(";"), parameters=month.parameters()
    ).result_rows
    assert manifest.row_counts == {"rows": len(expected)} == {"rows": 2_500}
    assert manifest.storage_class == "DEEP_ARCHIVE" and manifest.is_verified
    assert manifest.details["parameters"] == {
        "start": "2025-01-01T00:00:00+00:00",
        "end": "2025-02-01T00:00:00+00:00",
    }
    assert len(manifest.details["query_sha256"]) == 64 and manifest.details["empty"] is False
    assert [c["name"] for c in manifest.details["schema"]] == ["event_time", "user_id", "revenue"]
    stored = s3.get_object(
        Bucket=cfg.storage.backup_bucket, Key="catalog/deep_archive_export/raw_it/month=2025-01.json"
    )
    assert b'"rows": 2500' in stored["Body"].read()

    # After a restore the files hold exactly the rows the query returns, in order, zstd-compressed.
    table = _read_parquet_after_restore(s3, bucket, keys)
    assert table.num_rows == 2_500
    assert table.column("user_id").to_pylist() == [r[1] for r in expected]
    assert table.column("revenue").to_pylist() == [r[2] for r in expected]


def test_rerun_replaces_the_month_atomically_and_refuses_to_shrink(
    embedded_stack: Any,
    clickhouse_client: Any,
    export_table: str,
    sql_root: Path,
    s3: Any,
    example_config: Any,
) -> None:
    from backup_pipelines.core.errors import UnsafeOperationError
    from backup_pipelines.export.month import Month

    cfg = _config(example_config, [{"name": "daily_it", "sql": "exports/daily.sql"}])
    bucket = cfg.storage.archive_bucket
    month = Month.parse("2025-02")
    prefix = "it-exports/daily_it/month=2025-02/"
    first = _exporter(cfg, "daily_it").run(month).manifest
    first_keys = _keys(s3, bucket, prefix)
    assert first_keys == [o.key for o in first.objects] and len(first_keys) == 1

    second = _exporter(cfg, "daily_it").run(month)
    new_keys = _keys(s3, bucket, prefix)
    assert new_keys == [o.key for o in second.manifest.objects]
    assert set(new_keys).isdisjoint(first_keys), "a re-run writes a new generation, never over the old files"
    assert second.removed_keys == first_keys
    assert second.manifest.details["replaces"]["generation"] == first.details["generation"]
    assert second.manifest.row_counts == first.row_counts

    # Source rows expired: the re-run refuses to replace a bigger archived month.
    clickhouse_client.command(
        f"ALTER TABLE {DB}.events DELETE WHERE event_time >= '2025-02-15' AND event_time < '2025-03-01'",
        settings={"mutations_sync": 2},
    )
    try:
        with pytest.raises(UnsafeOperationError, match="allow_fewer_rows"):
            _exporter(cfg, "daily_it").run(month)
        assert _keys(s3, bucket, prefix) == new_keys, "the archived export is kept"
        shrunk = _exporter(cfg, "daily_it").run(month, allow_fewer_rows=True).manifest
        assert shrunk.row_counts["rows"] < second.manifest.row_counts["rows"]
    finally:
        clickhouse_client.command(f"TRUNCATE TABLE {DB}.events")
        export_table_reseed(clickhouse_client)


def export_table_reseed(client: Any) -> None:
    for label, count in MONTHS.items():
        start = datetime.strptime(label, "%Y-%m").replace(tzinfo=UTC)
        rows = [(start + timedelta(minutes=17 * i), i % 301, float(i % 7)) for i in range(count)]
        client.insert(f"{DB}.events", rows, column_names=["event_time", "user_id", "revenue"])


def test_empty_month_gives_an_explicit_empty_export_or_an_error(
    embedded_stack: Any, export_table: str, sql_root: Path, s3: Any, example_config: Any
) -> None:
    from backup_pipelines.core.errors import ExportReconciliationError
    from backup_pipelines.export.month import Month

    exports = [{"name": "empty_it", "sql": "exports/daily.sql"}]
    cfg = _config(example_config, exports)
    manifest = _exporter(cfg, "empty_it").run(Month.parse("2025-04")).manifest
    assert manifest.details["empty"] is True and manifest.objects == []
    assert manifest.row_counts == {"rows": 0} and manifest.is_verified
    assert "empty month" in (manifest.verification.detail or "")
    assert _keys(s3, cfg.storage.archive_bucket, "it-exports/empty_it/") == []

    strict = _config(example_config, exports, allow_empty=False)
    with pytest.raises(ExportReconciliationError, match=r"include/sql/exports/daily\.sql returns no rows"):
        _exporter(strict, "empty_it").run(Month.parse("2025-05"))


def test_sql_error_fails_with_the_file_name_and_leaves_nothing(
    embedded_stack: Any, export_table: str, sql_root: Path, s3: Any, example_config: Any
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.errors import ExportSqlError
    from backup_pipelines.export.month import Month

    (sql_root / "exports" / "broken.sql").write_text(
        f"SELECT day, no_such_column FROM {DB}.events WHERE event_time >= {{start:DateTime}} "
        "AND event_time < {end:DateTime}"
    )
    cfg = _config(example_config, [{"name": "broken_it", "sql": "exports/broken.sql"}])
    with pytest.raises(
        ExportSqlError, match=r"include/sql/exports/broken\.sql: ClickHouse rejected the query"
    ):
        _exporter(cfg, "broken_it").run(Month.parse("2025-01"))
    assert _keys(s3, cfg.storage.archive_bucket, "it-exports/broken_it/") == []
    assert Catalog.from_config(cfg).get("deep_archive_export", "broken_it", "month=2025-01") is None


def test_rerun_removes_only_what_the_replaced_manifest_listed(
    embedded_stack: Any, export_table: str, sql_root: Path, s3: Any, example_config: Any
) -> None:
    from backup_pipelines.export.month import Month

    cfg = _config(example_config, [{"name": "daily_own", "sql": "exports/daily.sql"}])
    bucket = cfg.storage.archive_bucket
    month = Month.parse("2025-03")
    prefix = "it-exports/daily_own/month=2025-03/"
    first = _exporter(cfg, "daily_own").run(month).manifest
    # An object this export never listed (another run's file, a hand-made copy): not ours to delete.
    s3.put_object(Bucket=bucket, Key=prefix + "operator-copy.parquet", Body=b"keep me")
    second = _exporter(cfg, "daily_own").run(month)
    assert sorted(second.removed_keys) == sorted(o.key for o in first.objects)
    assert prefix + "operator-copy.parquet" in _keys(s3, bucket, prefix)


def test_failure_after_the_manifest_landed_keeps_the_files_it_lists(
    embedded_stack: Any,
    export_table: str,
    sql_root: Path,
    s3: Any,
    example_config: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.export.month import Month

    cfg = _config(example_config, [{"name": "daily_put", "sql": "exports/daily.sql"}])
    month = Month.parse("2025-01")
    original_write = Catalog.write

    def write_then_time_out(self: Catalog, manifest: Any) -> str:
        original_write(self, manifest)  # the PUT reached S3 ...
        raise TimeoutError("read timeout after the PUT")  # ... but its answer was lost

    monkeypatch.setattr(Catalog, "write", write_then_time_out)
    with pytest.raises(TimeoutError):
        _exporter(cfg, "daily_put").run(month)
    monkeypatch.setattr(Catalog, "write", original_write)
    manifest = Catalog.from_config(cfg).read("deep_archive_export", "daily_put", month.recovery_point_id)
    listed = {o.key for o in manifest.objects}
    assert listed and listed <= set(_keys(s3, cfg.storage.archive_bucket, "it-exports/daily_put/"))


@pytest.mark.parametrize(
    ("source", "code"),
    [(f"{DB}.evnets", "UNKNOWN_TABLE"), ("no_such_db_x.events", "UNKNOWN_DATABASE")],
)
def test_a_query_reading_a_table_that_does_not_exist_fails_and_writes_no_empty_point(
    embedded_stack: Any,
    export_table: str,
    sql_root: Path,
    s3: Any,
    example_config: Any,
    source: str,
    code: str,
) -> None:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.errors import ExportSqlError
    from backup_pipelines.export.month import Month

    (sql_root / "exports" / "typo.sql").write_text(
        f"SELECT toDate(event_time) AS day, count() AS n FROM {source} "
        "WHERE event_time >= {start:DateTime} AND event_time < {end:DateTime} GROUP BY day"
    )
    cfg = _config(example_config, [{"name": "typo_it", "sql": "exports/typo.sql"}])  # allow_empty stays on
    with pytest.raises(ExportSqlError) as err:
        _exporter(cfg, "typo_it").run(Month.parse("2025-01"))
    message = str(err.value)
    assert message.startswith("include/sql/exports/typo.sql: ClickHouse rejected the query")
    assert code in message and "\n" not in message
    assert _keys(s3, cfg.storage.archive_bucket, "it-exports/typo_it/") == []
    assert Catalog.from_config(cfg).get("deep_archive_export", "typo_it", "month=2025-01") is None
