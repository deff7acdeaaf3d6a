"""A catalog written by the code before the one-package-per-pipeline move (commit e389059) is read,
restored and drilled by the code after it.

The fixture (``tests/fixtures/catalog_v1``, see its README) holds the real S3 objects that version
wrote in a small demo run: three ClickHouse snapshots (a full and two increments), two EMR
outputs, a Kafka archive in GLACIER and two exports in DEEP_ARCHIVE. The increments' ``.backup``
files name their base by the URL of that run's S3 server (port 38529), so the test serves the
fixture on that port, as an S3 endpoint that kept its address.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from support.paths import ROOT

from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import load_config
from backup_pipelines.core.kinds import DatasetKind
from backup_pipelines.dev.processes import HOST, port_is_open, wait_for_port

pytestmark = pytest.mark.integration

FIXTURE = ROOT / "tests" / "fixtures" / "catalog_v1"
PORT = 38529  # the S3 endpoint the old run used; its increments name their bases by it
NOW = datetime(2026, 11, 29, 4, 5, tzinfo=UTC)  # a few minutes after the old run
POINTS = {
    (DatasetKind.CLICKHOUSE_SNAPSHOT, "analytics"): ["20261129T0200Z", "20261129T0300Z", "20261129T0400Z"],
    (DatasetKind.EMR_OUTPUT, "sessionization"): ["dt=2026-11-28"],
    (DatasetKind.EMR_OUTPUT, "user_features"): ["dt=2026-11-28"],
    (DatasetKind.KAFKA_ARCHIVE, "events"): ["20261123T040000Z"],
    (DatasetKind.DEEP_ARCHIVE_EXPORT, "daily_active_users"): ["month=2026-10"],
    (DatasetKind.DEEP_ARCHIVE_EXPORT, "user_daily_rollups"): ["month=2026-10"],
}


@pytest.fixture(scope="module")
def legacy_s3() -> Iterator[str]:
    """A moto server on the old run's port, holding the fixture's objects with their classes."""
    import boto3

    assert not port_is_open(PORT), f"port {PORT} is taken; the legacy catalog test needs it free"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(PORT, name="legacy S3", proc=proc)
        endpoint = f"http://{HOST}:{PORT}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        objects = json.loads((FIXTURE / "objects.json").read_text())
        for bucket in sorted({o["bucket"] for o in objects}):
            client.create_bucket(Bucket=bucket)
        for obj in objects:
            client.put_object(
                Bucket=obj["bucket"],
                Key=obj["key"],
                Body=(FIXTURE / obj["bucket"] / obj["key"]).read_bytes(),
                StorageClass=obj["storage_class"],
                ContentType=obj["content_type"],
            )
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def legacy(legacy_s3: str, embedded_stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shipped config (the one the old run used) on the legacy S3; the clock a few minutes on."""
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": legacy_s3, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("BACKUP_PIPELINES_CONFIG", str(ROOT / "include" / "config" / "backup.yaml"))
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    return load_config()


def test_every_old_manifest_is_read_and_verified(legacy: Any) -> None:
    catalog = Catalog.from_config(legacy)
    for (kind, dataset), ids in POINTS.items():
        listing = catalog.list_points(kind, dataset)
        assert listing.invalid == [], f"{kind}/{dataset}: {listing.invalid}"
        assert [p.recovery_point_id for p in listing.points] == ids
        assert all(p.is_verified for p in listing.points)
    newest = catalog.latest_verified(DatasetKind.CLICKHOUSE_SNAPSHOT, "analytics")
    assert newest is not None and newest.recovery_point_id == "20261129T0400Z"
    chain = catalog.chain(newest)
    assert [m.recovery_point_id for m in chain] == POINTS[(DatasetKind.CLICKHOUSE_SNAPSHOT, "analytics")]


def test_the_old_chain_restores_every_row_of_the_old_tables(legacy: Any, clickhouse_client: Any) -> None:
    from backup_pipelines.clickhouse.restore import RestoreService
    from backup_pipelines.dev.sample_data import sample_events

    service = RestoreService.from_config(legacy)
    catalog = service.catalog
    chain = catalog.chain(catalog.read(DatasetKind.CLICKHOUSE_SNAPSHOT, "analytics", "20261129T0400Z"))
    result = service.restore_chain(chain, target_database="legacy_restore")
    assert result.ok, result.summary()
    assert result.rows == {"events": 600, "users": 499}
    # The old demo seeded 600 events from seed 7: every restored row is one of them, none twice.
    restored = clickhouse_client.query(
        "SELECT user_id, session_id, event_type, page, revenue FROM legacy_restore.events"
    ).result_rows
    expected = [row[1:] for row in sample_events(NOW, NOW, 600, 7)]
    assert Counter(tuple(r) for r in restored) == Counter(expected)
    clickhouse_client.command("DROP DATABASE legacy_restore SYNC")


def test_the_drill_passes_every_old_point(legacy: Any, clickhouse_client: Any) -> None:
    from backup_pipelines.drill.archives import ArchiveDrill
    from backup_pipelines.drill.clickhouse import ClickHouseDrill
    from backup_pipelines.drill.housekeeping import cleanup_scratch
    from backup_pipelines.drill.params import DrillParams
    from backup_pipelines.drill.plan import SCRATCH_PREFIX, plan_drill
    from backup_pipelines.drill.probes import DrillProbes

    catalog = Catalog.from_config(legacy)
    plan = plan_drill(legacy, catalog, DrillParams(pick="latest"), run_id="manual__legacy", now=NOW, due=NOW)
    results = {}
    for kind, dataset, _ in legacy.datasets():
        if kind is DatasetKind.CLICKHOUSE_SNAPSHOT:
            results[dataset] = ClickHouseDrill.from_config(legacy, plan).run(kind, dataset)
            continue
        drill = ArchiveDrill.from_config(legacy, plan)
        entry = plan.entry(kind, dataset)
        drill.request_thaws(entry)  # moto thaws at once
        results[dataset] = drill.verify(entry, started=0.0, thaw_error=None)
    for dataset, result in results.items():
        failed = [c.describe() for c in result.checks if not c.ok]
        assert result.recovery_point_id == POINTS[(result.kind, dataset)][-1]
        assert not failed, f"{dataset}: {failed}"
    names = {c.name for r in results.values() for c in r.checks}
    assert {
        "clickhouse.restore",
        "clickhouse.row_count",
        "archive.sha256",
        "kafka.replay_matches_archive",
    } <= names
    leftovers = clickhouse_client.query("SELECT name FROM system.databases WHERE startsWith(name, 'drill_')")
    assert leftovers.result_rows == []
    # The drill's clean-up task removes the scratch topics the replay check wrote.
    cleanup = cleanup_scratch(DrillProbes.from_config(legacy), SCRATCH_PREFIX + plan.drill_id)
    assert all(c.ok for c in cleanup), [c.describe() for c in cleanup]
