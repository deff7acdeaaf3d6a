"""Rendered SQL (incl. ON CLUSTER, which chDB cannot run), secrets handling, .backup parsing, base choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest

from backup_pipelines.clickhouse.engine import (
    ClickHouseBackupHook,
    RestoreResult,
    S3Credentials,
    match_tables,
    parse_backup_metadata,
    quote_identifier,
    quote_setting_literal,
    recovery_point_id,
    render_backup,
    render_restore,
)
from backup_pipelines.clickhouse.operators import _tables, choose_base
from backup_pipelines.core.catalog import Manifest, Verification
from backup_pipelines.core.errors import BackupFailedError, SourceNotFoundError

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


def test_recovery_point_id_comes_from_the_interval_end() -> None:
    assert recovery_point_id(datetime(2026, 11, 23, 14, tzinfo=UTC)) == "20261123T1400Z"


BACKUP_XML = """<config><version>1</version><timestamp>2026-11-23 14:00:05</timestamp>
<base_backup>S3('http://s3/b/ds/20261123T1300Z/')</base_backup><contents>
<file><name>data/db/t/all_1_1_0/count.txt</name><size>4</size><checksum>aa</checksum><use_base>true</use_base></file>
<file><name>data/db/t/all_2_2_0/count.txt</name><size>3</size><checksum>bb</checksum></file>
<file><name>data/db/t/all_2_2_0/data.bin</name><size>2095</size><checksum>cc</checksum></file>
<file><name>metadata/db/t.sql</name><size>150</size><checksum>dd</checksum><use_base>true</use_base></file>
<file><name>shards/1/replicas/1/data/db/u%2Dx/all_0_0_0/count.txt</name><size>2</size><checksum>ee</checksum></file>
<file><name>metadata/db/u%2Dx.sql</name><size>10</size><checksum>ff</checksum></file>
</contents></config>"""


def test_backup_metadata_lists_parts_tables_and_what_lives_in_the_base() -> None:
    contents = parse_backup_metadata(BACKUP_XML)
    assert contents.base_backup == "S3('http://s3/b/ds/20261123T1300Z/')"
    assert contents.tables() == ["t", "u-x"]
    parts = contents.part_count_files()
    assert sorted(parts) == [("t", "all_1_1_0"), ("t", "all_2_2_0"), ("u-x", "all_0_0_0")]
    by_name = {f.name: f for f in contents.files}
    assert not by_name["data/db/t/all_1_1_0/count.txt"].stored_here
    assert by_name["data/db/t/all_2_2_0/data.bin"].stored_here


def _manifest(rp: str, hours_ago: float, base: str | None, state: str = "verified") -> Manifest:
    return Manifest(
        kind="clickhouse_snapshot",
        dataset="ds",
        recovery_point_id=rp,
        captured_at=datetime(2026, 11, 23, 12, tzinfo=UTC) - timedelta(hours=hours_ago),
        location=f"s3://b/ds/{rp}/",
        storage_class="STANDARD",
        base=base,
        verification=Verification(state=state),  # type: ignore[arg-type]
    )


def test_base_choice_skips_failed_and_unverified_and_takes_a_full_when_due() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    full = _manifest("F", 5, None)
    inc = _manifest("I1", 4, "F")
    bad = _manifest("I2", 3, "I1", state="failed")
    pending = _manifest("I3", 2, "I1", state="unverified")
    chains = {"F": [full], "I1": [full, inc]}
    points = [full, inc, bad, pending]
    assert choose_base(points, chains, now=now, full_every=timedelta(hours=24)) is inc
    assert choose_base(points, chains, now=now, full_every=timedelta(hours=5)) is None
    assert choose_base([bad, pending], {}, now=now, full_every=timedelta(hours=24)) is None


def test_tables_param_accepts_rendered_text_and_lists() -> None:
    assert _tables("['events', 'users']") == ["events", "users"]
    assert _tables("[]") == [] and _tables(None) == [] and _tables("*") == []
    assert _tables(["events"]) == ["events"]


def test_restore_result_reports_mismatches() -> None:
    result = RestoreResult(
        recovery_point_id="R",
        source_database="a",
        target_database="b",
        chain=["F", "R"],
        rows={"t": 9},
        expected_rows={"t": 10},
        check_table={"t": True},
        duration_s=1.5,
    )
    assert not result.ok and result.mismatches == {"t": (9, 10)}
    assert result.summary()["duration_s"] == 1.5


def _hook_with(rows_by_sql: dict[str, list[tuple[Any, ...]]]) -> ClickHouseBackupHook:
    hook = ClickHouseBackupHook()
    client = mock.Mock()

    def query(sql: str, parameters: dict[str, Any] | None = None) -> Any:
        for needle, rows in rows_by_sql.items():
            if needle in sql:
                return mock.Mock(result_rows=rows)
        raise AssertionError(f"unexpected SQL {sql}")

    client.query.side_effect = query
    hook.__dict__["client"] = client
    return hook


def test_wait_reports_a_failed_backup_with_its_error() -> None:
    hook = _hook_with({"system.backups": [("id1", "BACKUP_FAILED", "Access Denied", 0, 0, 0, None, None)]})
    with pytest.raises(BackupFailedError, match="ended BACKUP_FAILED: Access Denied"):
        hook.wait("id1", sleep=lambda _: None)


def test_wait_polls_until_done() -> None:
    states = iter(["CREATING_BACKUP", "CREATING_BACKUP", "BACKUP_CREATED"])
    hook = ClickHouseBackupHook()
    client = mock.Mock()
    client.query.side_effect = lambda sql, parameters=None: mock.Mock(
        result_rows=[("id1", next(states), "", 3, 100, 100, None, None)]
    )
    hook.__dict__["client"] = client
    sleeps: list[float] = []
    status = hook.wait("id1", poll_interval=0.5, sleep=sleeps.append)
    assert status.succeeded and status.num_files == 3 and sleeps == pytest.approx([0.05, 0.075])


def test_explicit_credentials_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_SECRET_TEST",
        json.dumps({"conn_type": "aws", "login": "AKIAEXAMPLE", "password": SECRET}),
    )
    masked: list[Any] = []
    monkeypatch.setattr("airflow.sdk.log.mask_secret", lambda value, name=None: masked.append(value))
    hook = ClickHouseBackupHook(aws_conn_id="aws_secret_test", credentials="connection")
    creds = hook.s3_credentials()
    assert creds is not None and creds.access_key_id == "AKIAEXAMPLE"
    assert SECRET in masked
    assert ClickHouseBackupHook(aws_conn_id="aws_secret_test").s3_credentials() is None


@pytest.mark.parametrize(
    "location",
    [
        "s3://b/clickhouse/",  # the whole prefix
        "s3://b/clickhouse/analytics/",  # a whole dataset
        "s3://b/catalog/clickhouse_snapshot/",  # not a backup folder at all
        "s3://b/clickhouse/analytics/20261123T1400Z",  # no trailing slash: a key prefix, not a folder
    ],
)
def test_delete_location_refuses_anything_but_one_recovery_point_folder(location: str) -> None:
    from backup_pipelines.clickhouse.engine import ClickHouseBackupHook
    from backup_pipelines.core.errors import UnsafeOperationError

    hook = ClickHouseBackupHook.__new__(ClickHouseBackupHook)
    hook.s3_hook = mock.Mock()
    with pytest.raises(UnsafeOperationError, match="not a recovery point folder"):
        hook.delete_location(location)
    hook.s3_hook.delete_objects.assert_not_called()


@pytest.mark.parametrize("folder", ["20261123T1400Z", "20261123T1400Z.retake-20261123T151502"])
def test_delete_location_accepts_slot_and_retake_folders(folder: str) -> None:
    from backup_pipelines.clickhouse.engine import ClickHouseBackupHook

    hook = ClickHouseBackupHook.__new__(ClickHouseBackupHook)
    hook.s3_hook = mock.Mock()
    with mock.patch.object(ClickHouseBackupHook, "list_objects", return_value=[mock.Mock(key="k")]):
        assert hook.delete_location(f"s3://b/clickhouse/analytics/{folder}/") == 1
    hook.s3_hook.delete_objects.assert_called_once_with("b", ["k"])
