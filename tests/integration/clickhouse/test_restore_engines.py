"""Restores of every MergeTree family at several points of one chain, compared by content.

Real chDB backups to moto S3. Each point's content is read just before its backup (merges of the
source tables stopped while it is read and backed up, started between points so the history holds
merged parts too); each restore of each point must give back that content, and its row checks
(``count()`` against the manifest's visible rows, the restored parts against the backed-up parts,
taken while the restored tables' merges are stopped) must pass whatever merges do afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.clickhouse import backup_point, service

from backup_pipelines.clickhouse.restore import RestoreService

pytestmark = pytest.mark.integration

DB = "rx_fam"
# What each table holds, read in a way merges cannot change (FINAL, or the aggregate of its states).
CONTENT = {
    "plain": "SELECT id, s, b FROM {db}.plain ORDER BY id, s, b",
    "repl": "SELECT id, v, ver FROM {db}.repl FINAL ORDER BY id",
    "coll": "SELECT id, v, sign FROM {db}.coll FINAL ORDER BY id, v, sign",
    "vcoll": "SELECT id, v, sign, ver FROM {db}.vcoll FINAL ORDER BY id, ver, sign",
    "summ": "SELECT k, sum(v), sum(n) FROM {db}.summ GROUP BY k ORDER BY k",
    "agg": "SELECT k, uniqMerge(u), sumMerge(s), maxMerge(m) FROM {db}.agg GROUP BY k ORDER BY k",
    "part": "SELECT p, id, s FROM {db}.part ORDER BY p, id",
    "proj": "SELECT k, sum(v) FROM {db}.proj GROUP BY k ORDER BY k",
    "mv_target": "SELECT k, sum(c) FROM {db}.mv_target GROUP BY k ORDER BY k",
    "src": "SELECT k FROM {db}.src ORDER BY k",
    "dr": "SELECT * FROM {db}.dr ORDER BY ALL",
}
MERGING = ["plain", "repl", "coll", "vcoll", "summ", "agg", "part", "proj", "mv_target", "src", "dr"]


def _create(c: Any) -> None:
    c.command(f"DROP DATABASE IF EXISTS {DB} SYNC")
    c.command(f"CREATE DATABASE {DB}")
    for ddl in (
        "plain (id UInt64, s String, b String) ENGINE = MergeTree ORDER BY id",
        "repl (id UInt64, v String, ver UInt32) ENGINE = ReplacingMergeTree(ver) ORDER BY id",
        "coll (id UInt64, v Int64, sign Int8) ENGINE = CollapsingMergeTree(sign) ORDER BY id",
        "vcoll (id UInt64, v Int64, sign Int8, ver UInt32) "
        "ENGINE = VersionedCollapsingMergeTree(sign, ver) ORDER BY id",
        "summ (k UInt32, v UInt64, n Int64) ENGINE = SummingMergeTree ORDER BY k",
        "agg (k UInt32, u AggregateFunction(uniq, UInt64), s AggregateFunction(sum, UInt64), "
        "m AggregateFunction(max, String)) ENGINE = AggregatingMergeTree ORDER BY k",
        "part (p UInt16, id UInt64, s String) ENGINE = MergeTree PARTITION BY p ORDER BY id",
        "proj (k UInt32, v UInt64, PROJECTION by_k (SELECT k, sum(v) GROUP BY k)) "
        "ENGINE = MergeTree ORDER BY v",
        "mv_target (k UInt32, c UInt64) ENGINE = SummingMergeTree ORDER BY k",
        "src (k UInt32) ENGINE = MergeTree ORDER BY k",
        "dr (id UInt64, s String) ENGINE = MergeTree ORDER BY id",
    ):
        c.command(f"CREATE TABLE {DB}.{ddl}")
    c.command(
        f"CREATE MATERIALIZED VIEW {DB}.mv TO {DB}.mv_target "
        f"AS SELECT k, count() AS c FROM {DB}.src GROUP BY k"
    )


def _fill(c: Any, n: int) -> None:
    """Point n's writes: new rows, replaced versions, cancelled rows, partial sums, more states."""
    base = n * 100
    c.insert(
        f"{DB}.plain",
        [
            (base + i, "" if i % 7 == 0 else f"s{i}", bytes([i % 256, 0, 255]).decode("latin-1"))
            for i in range(50)
        ],
        column_names=["id", "s", "b"],
    )
    c.insert(f"{DB}.repl", [(i, f"v{n}-{i}", n) for i in range(40)], column_names=["id", "v", "ver"])
    c.insert(f"{DB}.coll", [(base + i, i, 1) for i in range(30)], column_names=["id", "v", "sign"])
    if n:  # cancel half of the previous point's rows and state them again, changed
        prev = (n - 1) * 100
        rows = [(prev + i, i, -1) for i in range(0, 30, 2)] + [(prev + i, i * 10, 1) for i in range(0, 30, 2)]
        c.insert(f"{DB}.coll", rows, column_names=["id", "v", "sign"])
        c.insert(
            f"{DB}.vcoll",
            [(i, i, -1, n) for i in range(10)] + [(i, i + n, 1, n + 1) for i in range(10)],
            column_names=["id", "v", "sign", "ver"],
        )
    else:
        c.insert(f"{DB}.vcoll", [(i, i, 1, 1) for i in range(10)], column_names=["id", "v", "sign", "ver"])
    c.insert(f"{DB}.summ", [(i % 5, i, -i) for i in range(40)], column_names=["k", "v", "n"])
    c.command(
        f"INSERT INTO {DB}.agg SELECT number % 4, uniqState(number + {base}), sumState(number), "
        f"maxState(toString(number + {n})) FROM numbers(60) GROUP BY number % 4"
    )
    c.insert(f"{DB}.part", [(i % 6, base + i, f"p{n}") for i in range(60)], column_names=["p", "id", "s"])
    c.insert(f"{DB}.proj", [(i % 3, base + i) for i in range(30)], column_names=["k", "v"])
    c.insert(f"{DB}.src", [(i % 4,) for i in range(20)], column_names=["k"])
    if n == 2:  # dropped and re-created, with another schema, between points 1 and 2
        c.command(f"DROP TABLE {DB}.dr SYNC")
        c.command(f"CREATE TABLE {DB}.dr (id UInt64, s String, extra Int32) ENGINE = MergeTree ORDER BY id")
        c.insert(f"{DB}.dr", [(i, f"new{i}", -i) for i in range(5)], column_names=["id", "s", "extra"])
    else:
        c.insert(f"{DB}.dr", [(base + i, f"old{i}") for i in range(8)], column_names=["id", "s"])


def _merges(c: Any, action: str) -> None:
    for table in MERGING:
        c.command(f"SYSTEM {action} MERGES {DB}.{table}")


def _content(c: Any, db: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(r) for r in c.query(sql.format(db=db)).result_rows] for t, sql in CONTENT.items()}


def _raw_counts(c: Any, db: str) -> dict[str, int]:
    return {t: int(c.query(f"SELECT count() FROM {db}.{t}").result_rows[0][0]) for t in MERGING}


def test_every_engine_family_restores_what_it_held_at_each_point(clickhouse_client: Any) -> None:
    c = clickhouse_client
    _create(c)
    snapshots = service()
    chain: list[Any] = []
    captured: list[dict[str, Any]] = []
    for n in range(4):
        _merges(c, "START")
        if n:  # merge what earlier points saw, so later points hold merged parts
            for table in ("repl", "coll", "summ", "agg", "part"):
                c.command(f"OPTIMIZE TABLE {DB}.{table} FINAL")
        _merges(c, "STOP")
        _fill(c, n)
        captured.append({"content": _content(c, DB), "raw": _raw_counts(c, DB)})
        chain.append(
            backup_point(
                snapshots,
                dataset=DB,
                database=DB,
                tables=[*MERGING, "mv"],
                rp_id=f"20260301T0{n}00Z",
                base=chain[-1] if chain else None,
                chain=list(chain),
                prefix="restore-engines/",
                write=False,
            )
        )
    _merges(c, "START")
    assert chain[-1].details["visible_rows"] == captured[-1]["raw"] | {"mv": 0}

    restores = RestoreService(snapshots.cfg, snapshots.engine, snapshots.catalog)
    for n in (0, 2, 3, 1):
        target = f"{DB}_at_{n}"
        c.command(f"DROP DATABASE IF EXISTS {target} SYNC")
        result = restores.restore_chain(chain[: n + 1], target_database=target)
        assert result.ok, result.summary()
        # Counted while the restored tables' merges were stopped: exactly the rows backed up.
        assert result.rows == captured[n]["raw"], n
        assert result.not_compared == {"mv": "engine MaterializedView stores no rows"}
        assert _content(c, target) == captured[n]["content"], f"point {n}"
        create = c.query(f"SHOW CREATE TABLE {target}.mv").result_rows[0][0]
        assert f"{target}.mv_target" in create and f" {DB}." not in create
        c.command(f"DROP DATABASE {target} SYNC")
    assert captured[1]["content"]["dr"] != captured[2]["content"]["dr"]  # the re-created table differs
