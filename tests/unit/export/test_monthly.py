"""The export engine's and service's pure parts and error paths: SQL checks, months, reconciliation."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from backup_pipelines.core.config import BackupConfig, Export
from backup_pipelines.core.errors import (
    BackupFailedError,
    ConfigError,
    ExportReconciliationError,
    ExportSqlError,
)
from backup_pipelines.export.engine import ExportEngine, FooterInfo, query_error
from backup_pipelines.export.month import Month
from backup_pipelines.export.monthly import MonthlyExport

GOOD = "SELECT 1 AS x FROM t WHERE ts >= {start:DateTime} AND ts < {end:DateTime};\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- nothing here\n", "holds no query"),
        ("DROP TABLE t", "must be one SELECT"),
        ("SELECT 1 WHERE a >= {start:DateTime} AND a < {end:DateTime}; SELECT 2", "more than one statement"),
        ("SELECT 1 WHERE a >= '2026-01-01' AND a < {end:DateTime}", "{start:DateTime}"),
        (
            "SELECT 1 WHERE a >= {start:DateTime} AND a < {end:DateTime} AND b = {x:UInt8}",
            "unknown parameter",
        ),
    ],
)
def test_bad_sql_is_rejected_with_the_file_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="include/sql/exports/bad.sql") as err:
        Export.check_sql_text(text, "include/sql/exports/bad.sql")
    assert message in str(err.value)


def test_good_sql_loses_only_its_trailing_semicolon() -> None:
    assert Export.check_sql_text(GOOD, "f.sql") == GOOD.strip().rstrip(";")


def test_a_bad_sql_file_fails_config_loading_hence_dag_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_config: Any, example_config: dict[str, Any]
) -> None:
    from backup_pipelines.core.config import load_config, paths

    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "pasted.sql").write_text("SELECT * FROM t WHERE ts >= '2026-10-01'")
    monkeypatch.setattr(paths, "SQL_ROOT", tmp_path)
    example_config["deep_archive_exports"]["exports"] = [{"name": "pasted", "sql": "exports/pasted.sql"}]
    path = write_config(example_config)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "deep_archive_exports.exports[0].sql" in str(err.value)
    assert "include/sql/exports/pasted.sql does not use the bound parameter(s)" in str(err.value)


def test_shipped_export_sql_files_pass_the_checks() -> None:
    for path in sorted((config_sql_root() / "exports").glob("*.sql")):
        Export.check_sql_text(path.read_text(), path.name)


def config_sql_root() -> Path:
    from backup_pipelines.core.config import SQL_ROOT

    return SQL_ROOT


def test_months_from_intervals_labels_and_manual_runs() -> None:
    month = Month.of(datetime(2026, 10, 1, 5, tzinfo=UTC))  # a monthly run's data_interval_start
    assert (month.start, month.end, month.label) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
        "2026-10",
    )
    assert Month.of(datetime(2026, 12, 31, 23, tzinfo=UTC)).end == datetime(2027, 1, 1, tzinfo=UTC)
    assert Month.previous(datetime(2026, 1, 15, tzinfo=UTC)).label == "2025-12"
    assert Month.parse("2026-02").recovery_point_id == "month=2026-02"
    with pytest.raises(ExportSqlError, match="YYYY-MM"):
        Month.parse("2026-13")


def test_clickhouse_errors_name_the_file_and_are_permanent_only_for_bad_sql() -> None:
    syntax = query_error(Exception("Code: 62. DB::Exception: Syntax error"), "include/sql/a.sql", "counting")
    assert isinstance(syntax, ExportSqlError) and "include/sql/a.sql" in str(syntax)
    network = query_error(
        Exception("Code: 210. DB::NetException: Connection refused"), "include/sql/a.sql", "x"
    )
    assert isinstance(network, BackupFailedError) and not isinstance(network, ExportSqlError)


def _exporter(example_config: dict[str, Any], hook: Any, catalog: Any) -> MonthlyExport:
    cfg = BackupConfig.model_validate(example_config)
    return MonthlyExport(hook, catalog, cfg, cfg.deep_archive_exports.exports[0])


def test_footer_row_count_mismatch_fails_before_anything_is_archived(example_config: dict[str, Any]) -> None:
    from backup_pipelines.core.s3 import S3Object

    hook = mock.Mock(spec=ExportEngine)
    hook.s3 = mock.Mock()
    hook.describe.return_value = [("day", "Date"), ("active_users", "UInt64")]
    hook.count.return_value = 10
    staged = S3Object("analytics-archive", "exports/_staging/x/part-0.parquet", 100, '"e"')
    hook.list_objects.side_effect = [[], [staged], [staged]]
    hook.parquet_footer.return_value = FooterInfo(staged.key, 100, 9, ["day", "active_users"], "ZSTD")
    catalog = mock.Mock()
    catalog.get.return_value = None
    with pytest.raises(ExportReconciliationError, match="footers hold 9 rows, ClickHouse counts 10"):
        _exporter(example_config, hook, catalog).run(Month.parse("2026-10"))
    hook.s3.copy_verified.assert_not_called()
    catalog.write.assert_not_called()
    hook.s3.delete_keys.assert_called_with("analytics-archive", [staged.key])  # staging cleaned up


def test_a_file_that_is_not_parquet_is_reported_by_key() -> None:
    from botocore.stub import Stubber

    from backup_pipelines.core.s3 import S3Object

    hook = ExportEngine(clickhouse_conn_id="c", aws_conn_id="a")
    import boto3

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_response("get_object", {"Body": io.BytesIO(b"not a parquet file at all")})
        hook.__dict__["s3"] = mock.Mock(client=client)
        with pytest.raises(ExportReconciliationError, match="s3://b/k.parquet is not a Parquet file"):
            hook.parquet_footer(S3Object("b", "k.parquet", 25, '"e"'))
