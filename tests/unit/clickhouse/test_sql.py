"""Rendered SQL (incl. ON CLUSTER, which chDB cannot run), bound values, secrets kept out of the text."""

from __future__ import annotations

import pytest

from backup_pipelines.clickhouse.sql import (
    S3Credentials,
    match_tables,
    quote_identifier,
    quote_setting_literal,
    render_backup,
    render_restore,
)
from backup_pipelines.core.errors import SourceNotFoundError

SECRET = "wJalrXUtnFEMI-sentinel"


def test_identifiers_are_quoted_and_setting_literals_are_strict() -> None:
    assert quote_identifier("events") == "`events`"
    assert quote_identifier("we`ird\\name") == "`we\\`ird\\\\name`"
    with pytest.raises(ValueError):
        quote_identifier("")
    assert quote_setting_literal("bp-ds-20261123T1400Z-ab12") == "'bp-ds-20261123T1400Z-ab12'"
    with pytest.raises(ValueError):
        quote_setting_literal("x'; DROP TABLE t; --")


def test_incremental_backup_on_cluster_binds_every_value_and_keeps_secrets_out_of_the_sql() -> None:
    statement = render_backup(
        database="analytics",
        tables=["events", "users"],
        url="https://b.s3.amazonaws.com/clickhouse/analytics/20261123T1400Z/",
        backup_id="bp-analytics-20261123T1400Z-ab12cd34",
        base_url="https://b.s3.amazonaws.com/clickhouse/analytics/20261123T1300Z/",
        credentials=S3Credentials("AKIAEXAMPLE", SECRET),
        on_cluster="prod_cluster",
    )
    assert statement.sql == (
        "BACKUP TABLE `analytics`.`events`, TABLE `analytics`.`users` ON CLUSTER `prod_cluster` "
        "TO S3({url:String}, {access_key_id:String}, {secret_access_key:String}) "
        "SETTINGS base_backup = S3({base_url:String}, {access_key_id:String}, {secret_access_key:String}), "
        "id = 'bp-analytics-20261123T1400Z-ab12cd34' ASYNC"
    )
    assert statement.params["secret_access_key"] == SECRET
    assert SECRET not in statement.sql
    assert SECRET not in repr(statement) and SECRET not in repr(S3Credentials("k", SECRET, "tok"))


def test_server_side_credentials_and_full_backup() -> None:
    statement = render_backup(database="db", tables=["t"], url="http://s3/b/k/", backup_id="bp-x-1")
    assert statement.sql == "BACKUP TABLE `db`.`t` TO S3({url:String}) SETTINGS id = 'bp-x-1' ASYNC"
    assert statement.params == {"url": "http://s3/b/k/"}


def test_a_blocking_backup_has_no_async_clause() -> None:
    """chDB's backup runs in the task's process: the statement returns when it has ended."""
    statement = render_backup(
        database="db", tables=["t"], url="http://s3/b/k/", backup_id="bp-x-1", blocking=True
    )
    assert statement.sql == "BACKUP TABLE `db`.`t` TO S3({url:String}) SETTINGS id = 'bp-x-1'"


def test_session_tokens_are_bound_too() -> None:
    statement = render_backup(
        database="db",
        tables=["t"],
        url="u",
        backup_id="bp-1",
        credentials=S3Credentials("k", SECRET, "TOKEN"),
    )
    assert "{session_token:String}" in statement.sql and "TOKEN" not in statement.sql


def test_restore_renders_target_database_structure_only_and_cluster() -> None:
    statement = render_restore(
        database="analytics",
        tables=["events"],
        target_database="restore_20261123",
        url="u",
        on_cluster="c1",
        structure_only=True,
        restore_id="bp-verify-1",
    )
    assert statement.sql == (
        "RESTORE TABLE `analytics`.`events` AS `restore_20261123`.`events` ON CLUSTER `c1` "
        "FROM S3({url:String}) SETTINGS structure_only = 1, id = 'bp-verify-1' ASYNC"
    )


def test_table_patterns_name_the_missing_table() -> None:
    assert match_tables(["events", "events_v2", "users"], ["events*"], database="a") == [
        "events",
        "events_v2",
    ]
    with pytest.raises(SourceNotFoundError, match=r"table a\.orders does not exist"):
        match_tables(["events"], ["events", "orders"], database="a")
    with pytest.raises(SourceNotFoundError, match="pattern 'x_\\*' matches no table in database 'a'"):
        match_tables(["events"], ["x_*"], database="a")
