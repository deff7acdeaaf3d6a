"""A dataset whose database or table patterns match nothing fails the snapshot clearly: no backup,
no manifest, no verified empty point (issue 27.3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_pipelines.core.errors import SourceNotFoundError

pytestmark = pytest.mark.integration


def _service(
    write_config: Any, example_config: dict[str, Any], name: str, database: str, tables: list[str]
) -> Any:
    """The snapshot service of a config with one dataset, under a prefix of its own."""
    from backup_pipelines.clickhouse.snapshot import SnapshotService
    from backup_pipelines.core.config import load_config

    cfg = json.loads(json.dumps(example_config))
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": f"{name}-it/",
            "s3_credentials": "connection",
            "datasets": [{"name": name, "database": database, "tables": tables}],
        }
    )
    write_config(cfg)
    return SnapshotService.from_config(load_config())


@pytest.mark.parametrize(
    ("database", "tables", "message"),
    [
        ("src_it_db", ["evnts"], "table src_it_db.evnts does not exist on the ClickHouse server"),
        ("src_it_db", ["x_*", "events"], "pattern 'x_*' matches no table in database 'src_it_db'"),
        ("src_it_empty", ["*"], "pattern '*' matches no table in database 'src_it_empty'"),
        ("src_it_nodb", ["*"], "database 'src_it_nodb' does not exist on the ClickHouse server"),
    ],
)
def test_a_source_matching_nothing_fails_before_any_backup(
    embedded_stack: Any,
    clickhouse_client: Any,
    write_config: Any,
    example_config: dict[str, Any],
    s3: Any,
    database: str,
    tables: list[str],
    message: str,
) -> None:
    clickhouse_client.command("CREATE DATABASE IF NOT EXISTS src_it_db")
    clickhouse_client.command("CREATE DATABASE IF NOT EXISTS src_it_empty")
    clickhouse_client.command(
        "CREATE TABLE IF NOT EXISTS src_it_db.events (id UInt64) ENGINE = MergeTree ORDER BY id"
    )
    service = _service(write_config, example_config, "src_it", database, tables)
    config = service.cfg
    end = datetime(2026, 11, 27, 12, tzinfo=UTC)
    with pytest.raises(SourceNotFoundError) as err:
        service.prepare("src_it", None, end)
    assert str(err.value) == message
    bucket = config.storage.backup_bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="src_it-it/").get("KeyCount", 0)
    assert listed == 0
    assert service.catalog.list_points("clickhouse_snapshot", "src_it").points == []


def test_a_slot_already_captured_is_done_even_after_its_source_was_dropped(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    """A rerun of a captured slot answers "nothing to do" before it reads the source's tables: a
    source dropped since fails only a slot still to capture."""
    from backup_pipelines.clickhouse.snapshot import SnapshotPlan

    clickhouse_client.command("CREATE DATABASE IF NOT EXISTS src_it_dropped")
    clickhouse_client.command(
        "CREATE TABLE IF NOT EXISTS src_it_dropped.events (id UInt64) ENGINE = MergeTree ORDER BY id"
    )
    clickhouse_client.command("INSERT INTO src_it_dropped.events SELECT number FROM numbers(10)")
    service = _service(write_config, example_config, "src_dropped", "src_it_dropped", ["*"])
    end = datetime(2026, 11, 27, 13, tzinfo=UTC)
    plan = service.prepare("src_dropped", None, end)
    assert isinstance(plan, SnapshotPlan)
    captured = service.finish(plan, service.wait(plan))
    clickhouse_client.command("DROP DATABASE src_it_dropped")

    again = service.prepare("src_dropped", None, end)

    assert not isinstance(again, SnapshotPlan)
    assert (again.action, again.recovery_point_id) == ("noop", captured.recovery_point_id)
    with pytest.raises(SourceNotFoundError, match="database 'src_it_dropped' does not exist"):
        service.prepare("src_dropped", None, datetime(2026, 11, 27, 14, tzinfo=UTC))


def test_a_backup_holding_tables_the_plan_no_longer_names_records_their_parts(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    """A re-attached backup may hold tables the new plan's patterns no longer match: their parts'
    rows are still read from system.parts (not reported as merged away)."""
    from backup_pipelines.clickhouse.snapshot import SnapshotPlan

    clickhouse_client.command("CREATE DATABASE IF NOT EXISTS src_it_two")
    for table in ("a", "b"):
        clickhouse_client.command(
            f"CREATE TABLE IF NOT EXISTS src_it_two.{table} (id UInt64) ENGINE = MergeTree ORDER BY id"
        )
        clickhouse_client.command(f"INSERT INTO src_it_two.{table} SELECT number FROM numbers(7)")
    service = _service(write_config, example_config, "src_two", "src_it_two", ["*"])
    plan = service.prepare("src_two", None, datetime(2026, 11, 27, 15, tzinfo=UTC))
    assert isinstance(plan, SnapshotPlan) and plan.tables == ["a", "b"]
    status = service.wait(plan)

    service.finish(plan.model_copy(update={"tables": ["a"]}), status)

    point = service.catalog.read("clickhouse_snapshot", "src_two", plan.rp_id)
    assert point.row_counts == {"a": 7, "b": 7}
    assert set(point.details["part_rows"]) == {"a", "b"}
    assert point.details["visible_rows"] == {"a": 7, "b": 7} and point.details["visible_rows_unknown"] == {}
    clickhouse_client.command("DROP DATABASE src_it_two")
