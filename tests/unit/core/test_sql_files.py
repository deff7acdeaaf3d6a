"""SQL files of include/sql/: comment lines dropped, $slots filled with fragments verbatim."""

from __future__ import annotations

import pytest

from backup_pipelines.core.sql_files import load_sql, render_sql

QUERY = "SELECT 1 AS x -- price in $\nWHERE d >= {start:Date}\n-- a last comment line"


def test_an_exports_query_goes_in_whole_and_a_comment_on_its_last_line_ends_nothing() -> None:
    count = render_sql("export/count_rows.sql", query=QUERY)
    assert count == f"SELECT count() FROM ({QUERY}\n)"
    write = render_sql("export/write_parquet.sql", keys=", {bp_key:String}, {bp_secret:String}", query=QUERY)
    assert write.startswith(
        "INSERT INTO FUNCTION s3({bp_url:String}, {bp_key:String}, {bp_secret:String}, {bp_format:String})\n"
        "PARTITION BY intDiv(rowNumberInAllBlocks(), {bp_rows:UInt64})\n"
    )
    assert write.endswith(QUERY) and "--" not in write.split("\n", 1)[0]


def test_comment_lines_are_dropped_and_a_missing_slot_is_an_error() -> None:
    assert not any(line.startswith("--") for line in load_sql("export/write_parquet.sql").splitlines())
    with pytest.raises(KeyError, match="query"):
        render_sql("export/describe.sql")
