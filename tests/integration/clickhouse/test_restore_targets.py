"""Where a restore may write and which point it picks, through the restore operator (issue 24).

Two datasets (``ho_pay`` in ``hop_db``, ``ho_ref`` in ``hor_db`` with tables ``*``), real chDB
backups in moto S3, the catalog in moto: a refused target is refused before anything is created.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from support.clickhouse import backup_point, service

from backup_pipelines.core.errors import UnsafeOperationError

pytestmark = pytest.mark.integration

SLOT = datetime(2026, 11, 27, 11, tzinfo=UTC)


@pytest.fixture
def two_datasets(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> Any:
    from backup_pipelines.core.config import load_config

    c = clickhouse_client
    for db in ("hop_db", "hor_db", "ho_foreign", "ho_target_new"):
        c.command(f"DROP DATABASE IF EXISTS {db} SYNC")
    c.command("CREATE DATABASE hop_db")
    c.command("CREATE DATABASE hor_db")
    c.command(
        "CREATE TABLE hop_db.payments (id UInt64, amount Decimal(18, 2)) ENGINE = MergeTree ORDER BY id"
    )
    c.command("CREATE TABLE hor_db.refs (id UInt64) ENGINE = MergeTree ORDER BY id")
    cfg = json.loads(json.dumps(example_config))
    cfg["clickhouse_snapshots"].update(
        {
            "prefix": f"restore-targets-{uuid.uuid4().hex[:8]}/",
            "s3_credentials": "connection",
            "datasets": [
                {"name": "ho_pay", "database": "hop_db", "tables": ["payments"]},
                {"name": "ho_ref", "database": "hor_db", "tables": ["*"]},
            ],
        }
    )
    write_config(cfg)
    snapshots = service(load_config())
    chain: list[Any] = []
    for n in range(3):  # slots 10:00, 11:00, 12:00, each captured 3 min 6 s after its slot ends
        c.insert("hop_db.payments", [(n * 10 + i, i) for i in range(10)], column_names=["id", "amount"])
        end = SLOT + timedelta(hours=n - 1)
        point = backup_point(
            snapshots,
            dataset="ho_pay",
            database="hop_db",
            tables=["payments"],
            rp_id=end.strftime("%Y%m%dT%H%MZ"),
            base=chain[-1] if chain else None,
            chain=list(chain),
            write=False,
        )
        point = point.model_copy(
            update={
                "interval_start": end - timedelta(hours=1),
                "interval_end": end,
                "captured_at": end + timedelta(minutes=3, seconds=6),
            }
        )
        snapshots.catalog.write(point)
        snapshots.catalog.mark_verification(point, state="verified", checks=["test"])
        chain.append(point)
    return chain


def _restore(**params: Any) -> dict[str, Any]:
    from backup_pipelines.clickhouse.operators import ClickHouseRestoreOperator

    conf = {"dataset": "ho_pay", **params}
    context: Any = {"params": conf, "dag_run": SimpleNamespace(conf=conf, dag_id="clickhouse_restore")}
    return ClickHouseRestoreOperator(task_id="restore").execute(context)


def _databases(c: Any) -> set[str]:
    return {r[0] for r in c.query("SELECT name FROM system.databases").result_rows}


def _tables(c: Any, db: str) -> list[str]:
    return [r[0] for r in c.query(f"SELECT name FROM system.tables WHERE database = '{db}'").result_rows]


def test_live_foreign_and_non_empty_targets_are_refused_before_anything_is_created(
    two_datasets: Any, clickhouse_client: Any
) -> None:
    c = clickhouse_client
    before = _databases(c)
    with pytest.raises(UnsafeOperationError, match="'hor_db' is the live database of dataset 'ho_ref';"):
        _restore(target_database="hor_db")
    assert _tables(c, "hor_db") == ["refs"] and _databases(c) == before
    c.command("CREATE DATABASE ho_foreign")
    c.command("CREATE TABLE ho_foreign.keep (x UInt8) ENGINE = MergeTree ORDER BY x")
    with pytest.raises(UnsafeOperationError, match=r"'ho_foreign' is not empty \(it holds keep\)"):
        _restore(target_database="ho_foreign")
    assert _tables(c, "ho_foreign") == ["keep"]

    # Confirmed by name: restored into a staging database, then swapped in; the foreign table stays.
    done = _restore(target_database="ho_foreign", confirm_overwrite="ho_foreign")
    assert done["ok"] and sorted(_tables(c, "ho_foreign")) == ["keep", "payments"]
    assert c.query("SELECT count() FROM ho_foreign.payments").result_rows[0][0] == 30

    # An absent database is created and gets exactly the newest point's rows.
    done = _restore(target_database="ho_target_new")
    assert done["recovery_point_id"] == "20261127T1200Z"
    rows = c.query("SELECT id, amount FROM ho_target_new.payments ORDER BY id").result_rows
    assert rows == c.query("SELECT id, amount FROM hop_db.payments ORDER BY id").result_rows


def test_by_id_and_a_time_inside_a_slot_name_the_point_and_why(
    two_datasets: Any, clickhouse_client: Any
) -> None:
    c = clickhouse_client
    plan = _restore(recovery_point_id="20261127T1100Z", dry_run=True)
    assert plan["reason"] == "recovery point asked by id: 20261127T1100Z, captured 2026-11-27T11:03:06Z"
    assert plan["candidates"][0] == "20261127T1200Z (captured 2026-11-27T12:03:06Z)"
    assert "ho_target_new" not in _databases(c)

    typed = _restore(target_time="2026-11-27T12:00:00Z", dry_run=True)
    assert typed["recovery_point_id"] == "20261127T1100Z"
    assert typed["note"].startswith(
        "target_time 2026-11-27T12:00:00Z lies in the slot of recovery point 20261127T1200Z"
    )
    done = _restore(recovery_point_id="20261127T1100Z", target_database="ho_target_new")
    assert done["rows"] == {"payments": 20} == done["expected_rows"]
    assert c.query("SELECT max(id) FROM ho_target_new.payments").result_rows[0][0] == 19
