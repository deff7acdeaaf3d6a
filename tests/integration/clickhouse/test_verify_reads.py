"""Verify reads what changed: the new point's ``.backup`` listing and the chain's manifests, never
the bases' listings again, and still proves every file is stored, with merged-away parts counted."""

from __future__ import annotations

from typing import Any

import pytest
from support.clickhouse import backup_chain, service

pytestmark = pytest.mark.integration

DB = "verify_reads"


def test_verify_of_a_long_chain_reads_only_the_new_listing(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    from backup_pipelines.clickhouse.verify import SnapshotVerifier

    write_config(example_config)
    clickhouse_client.command(f"DROP DATABASE IF EXISTS {DB}")
    clickhouse_client.command(f"CREATE DATABASE {DB}")
    clickhouse_client.command(
        f"CREATE TABLE {DB}.t (id UInt64, p UInt8, v String) ENGINE = MergeTree PARTITION BY p ORDER BY id"
    )
    clickhouse_client.command(f"SYSTEM STOP MERGES {DB}.t")

    def insert(n: int) -> None:
        clickhouse_client.insert(
            f"{DB}.t",
            [(n * 1000 + i, i % 4, "x" * (i % 7)) for i in range(300)],
            column_names=["id", "p", "v"],
        )
        if n == 4:  # parts of the full merged away: their rows come from count files in the chain
            clickhouse_client.command(f"SYSTEM START MERGES {DB}.t")
            clickhouse_client.command(f"OPTIMIZE TABLE {DB}.t FINAL")
            clickhouse_client.command(f"SYSTEM STOP MERGES {DB}.t")

    snapshots = service()
    chain = backup_chain(
        snapshots,
        dataset=DB,
        database=DB,
        tables=["t"],
        rp_ids=[f"20260301T{h:02d}00Z" for h in range(6)],
        before_each=insert,
    )
    verifier = SnapshotVerifier(snapshots.engine, snapshots.store)
    read: list[str] = []
    listed: list[list[str]] = []
    original_read, original_index = verifier.store.read_contents, verifier.store.chain_index
    verifier.store.read_contents = lambda location: (read.append(location), original_read(location))[1]  # type: ignore[method-assign]
    verifier.store.chain_index = lambda locations: (
        listed.append(list(locations)),
        original_index(locations),
    )[1]  # type: ignore[method-assign]

    result = verifier.verify(chain[-1], chain=chain)

    assert result.ok, result.detail
    assert read == [chain[-1].location], "only the new point's .backup listing is read"
    assert listed == []
    assert "row counts from parts: 1800 rows" in " ".join(result.checks)
    from backup_pipelines.clickhouse.backup_files import BACKUP_METADATA_FILE, _parse, _parse_fixed_form
    from backup_pipelines.core.s3 import split_s3_url

    bucket, prefix = split_s3_url(chain[-1].location)
    stored = snapshots.engine.s3.get_bytes(bucket, prefix + BACKUP_METADATA_FILE)
    assert stored is not None
    assert _parse_fixed_form(stored[0]) == _parse(stored[0]), "ClickHouse's own .backup takes the fixed form"

    # Manifests written before checksums were recorded: the bases' listings are read instead.
    bare = [
        m.model_copy(update={"objects": [o.model_copy(update={"checksum": None}) for o in m.objects]})
        for m in chain[:-1]
    ]
    read.clear()
    older = verifier.verify(chain[-1], chain=[*bare, chain[-1]])
    assert older.ok, older.detail
    assert listed == [[m.location for m in chain[:-1]]]
    clickhouse_client.command(f"DROP DATABASE {DB}")


def test_verify_as_the_dag_runs_it_reads_the_same_along_a_growing_chain(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> None:
    """Each verified point leaves its chain in one file: the next verify reads that file instead of
    every base's manifest and object list, so its reads stay the same from the third point to the
    seventh, and every point is verified."""
    from datetime import UTC, datetime

    from backup_pipelines.clickhouse.verify import VerifyService
    from backup_pipelines.core.config import load_config

    dataset = "verify_reads_dag"
    example_config["clickhouse_snapshots"]["datasets"] = [
        {"name": dataset, "database": DB, "tables": ["t"], "objectives": {"rpo": "1h", "rto": "30m"}}
    ]
    write_config(example_config)
    clickhouse_client.command(f"DROP DATABASE IF EXISTS {DB}")
    clickhouse_client.command(f"CREATE DATABASE {DB}")
    clickhouse_client.command(f"CREATE TABLE {DB}.t (id UInt64, b String) ENGINE = MergeTree ORDER BY id")

    def insert(n: int) -> None:
        rows = [(n * 100 + i, bytes([i % 256]) * (i % 5)) for i in range(100)]  # binary and empty values
        clickhouse_client.insert(f"{DB}.t", rows, column_names=["id", "b"])

    snapshots = service(load_config())
    hours = range(7)
    backup_chain(
        snapshots,
        dataset=dataset,
        database=DB,
        tables=["t"],
        rp_ids=[f"20260302T{h:02d}00Z" for h in hours],
        before_each=insert,
    )
    verify = VerifyService(snapshots.cfg, snapshots.engine, snapshots.catalog)
    gets: list[int] = []
    for h in hours:
        calls = 0

        def count(**_: Any) -> None:
            nonlocal calls
            calls += 1

        client = snapshots.engine.s3.client
        client.meta.events.register("before-call.s3.GetObject", count)
        summary = verify.verify_slot(dataset, datetime(2026, 3, 2, h, tzinfo=UTC))
        client.meta.events.unregister("before-call.s3.GetObject", count)
        assert summary.model_dump()["verification"] == "verified"
        gets.append(calls)

    assert len(set(gets[2:])) == 1, f"GETs per verify from the third point on: {gets}"
    assert gets[-1] < gets[0] + 4, gets
    clickhouse_client.command(f"DROP DATABASE {DB}")
