"""A regional outage on the embedded stack: the primary region's S3 goes down mid-replication.

Two moto servers are two regions; the primary is reached through a proxy that refuses every
connection while it is "down" (its moto keeps its data, as a region does). With the primary down:
the replication pass fails naming the unreachable region and leaves no half-copied point in the
DR catalog; a ClickHouse chain restores from the DR region alone, row for row; the monitor reports
every primary dataset as an error (never fresh), keeps measuring the DR region and keeps its state
there. When the primary returns, the next pass copies exactly what is missing: no object twice,
no point skipped, and the monitor sends its recovery emails.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

CH = "clickhouse_snapshot"


@pytest.fixture
def regions(
    embedded_stack: Any, clickhouse_client: Any, write_config: Any, example_config: dict[str, Any]
) -> Any:
    from support.regions import primary_behind_proxy

    tag = secrets.token_hex(3)
    db = f"outage_{tag}"
    raw = json.loads(json.dumps(example_config))
    raw["storage"].update({"backup_bucket": f"out-{tag}-b", "archive_bucket": f"out-{tag}-a"})
    raw["storage"]["replica"].update(
        {"backup_bucket": f"out-{tag}-b-dr", "archive_bucket": f"out-{tag}-a-dr"}
    )
    raw["alerts"] = {"recipients": ["oncall-dr@example.com"], "from_email": "bp@example.com"}
    raw["clickhouse_snapshots"].update(
        {
            "prefix": "ch/",
            "s3_credentials": "connection",
            "datasets": [{"name": db, "database": db, "tables": ["*"], "objectives": {"rpo": "1h"}}],
        }
    )
    for section, key in (
        ("emr_archive", "jobs"),
        ("kafka_archive", "topics"),
        ("deep_archive_exports", "exports"),
    ):
        raw[section][key] = []
    write_config(raw)
    embedded_stack.create_buckets(f"out-{tag}-b", f"out-{tag}-a")
    embedded_stack.create_buckets(f"out-{tag}-b-dr", f"out-{tag}-a-dr", region="dr")
    clickhouse_client.command(f"CREATE DATABASE {db}")
    clickhouse_client.command(
        f"CREATE TABLE {db}.t (k UInt64, v String, ts DateTime64(3)) "
        "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY k"
    )
    with primary_behind_proxy(embedded_stack) as outage:
        yield {"tag": tag, "db": db, "outage": outage}


def _points(
    db: str, clickhouse_client: Any, rp_ids: list[str], *, offset: int, minutes_ago: int
) -> list[Any]:
    """Real backups (chDB -> primary through the proxy), each on the previous, all verified."""
    from support.clickhouse import backup_point, service

    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config

    cfg = load_config()
    snapshots = service(cfg)
    catalog = Catalog.from_config(cfg)
    listing = catalog.list_points(CH, db).verified()
    made: list[Any] = []
    for n, rp_id in enumerate(rp_ids):
        clickhouse_client.command(
            f"INSERT INTO {db}.t SELECT number + {offset + n * 10_000}, repeat('x', number % 13), "
            f"toDateTime64('2021-03-01 00:00:00', 3) + number * 5000 FROM numbers(1500)"
        )
        base = (made or listing or [None])[-1]
        chain = catalog.chain(base) if base is not None else []
        point = backup_point(
            snapshots,
            dataset=db,
            database=db,
            tables=["t"],
            rp_id=rp_id,
            base=base,
            chain=chain,
            captured_at=datetime.now(UTC) - timedelta(minutes=minutes_ago - n),
        )
        made.append(catalog.mark_verification(point, state="verified", checks=["test"]))
    return made


def _cut_after(outage: Any, objects: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Take the primary down after ``objects`` objects of this pass reached the replica."""
    from backup_pipelines.replica.transfer import RegionTransfer

    done: list[str] = []
    real = RegionTransfer.transfer

    def counting(self: Any, source: Any, dest_bucket: str, **kwargs: Any) -> Any:
        result = real(self, source, dest_bucket, **kwargs)
        done.append(source.key)
        if len(done) == objects:
            outage.down()
        return result

    monkeypatch.setattr(RegionTransfer, "transfer", counting)
    return done


def _dr_drill(stack: Any, dr_bucket: str) -> dict[str, Any]:
    """Run dr_drill with ``source: dr`` and return its report, read from the DR backup bucket."""
    from airflow.dag_processing.dagbag import DagBag

    from backup_pipelines import PROJECT_ROOT
    from backup_pipelines.dev.airflow import run_dag_in_process

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "dr_drill.py"))
    run = run_dag_in_process(bag.dags["dr_drill"], run_conf={"source": "dr", "pick": "latest"})
    client = stack.s3_client("dr")
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=dr_bucket, Prefix="reports/dr-drill/").get("Contents", [])
    ]
    found = [k for k in keys if k.endswith("/report.json")]
    assert found, f"dr_drill ({run.state}) wrote no report to s3://{dr_bucket}/reports/dr-drill/: {keys}"
    return dict(json.loads(client.get_object(Bucket=dr_bucket, Key=found[-1])["Body"].read()))


def _mail(stack: Any, tag: str) -> list[str]:
    return [str(m["Subject"]) for m in stack.mailbox() if tag in str(m["Subject"])]


def test_primary_down_mid_run_restore_and_monitor_use_the_dr_region_then_copies_catch_up(
    regions: Any, embedded_stack: Any, clickhouse_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backup_pipelines.clickhouse.engine import ClickHouseEngine
    from backup_pipelines.clickhouse.restore import RestoreService
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import load_config
    from backup_pipelines.core.errors import ReplicaError
    from backup_pipelines.core.regions import region_catalog
    from backup_pipelines.monitor.service import run_monitor
    from backup_pipelines.replica.service import ReplicaService
    from backup_pipelines.replica.transfer import RegionTransfer

    tag, db, outage = regions["tag"], regions["db"], regions["outage"]
    cfg = load_config()
    _points(db, clickhouse_client, ["p0", "p1"], offset=0, minutes_ago=50)
    first = ReplicaService.from_config(cfg).replicate()
    assert first.datasets[0].replicated == ["p0", "p1"]

    later = _points(db, clickhouse_client, ["p2", "p3"], offset=100_000, minutes_ago=20)
    real_transfer = RegionTransfer.transfer
    copied_before_cut = _cut_after(outage, 3, monkeypatch)
    with pytest.raises(ReplicaError, match=rf"clickhouse_snapshot/{db}: .*(Connect|Endpoint|Connection)"):
        ReplicaService.from_config(cfg).replicate()
    monkeypatch.setattr(RegionTransfer, "transfer", real_transfer)  # (undo() would drop the config too)
    assert len(copied_before_cut) >= 3  # copies already past their GET finish into the replica
    dr = region_catalog(cfg, "dr")
    assert [p.recovery_point_id for p in dr.list_points(CH, db).points] == ["p0", "p1"]  # no half point

    # the primary is down: the DR region alone restores the newest point it holds, row for row
    engine = ClickHouseEngine(
        clickhouse_conn_id=cfg.connections.clickhouse, aws_conn_id="aws_dr", credentials="connection"
    )
    newest = dr.list_points(CH, db).verified()[-1]
    result = RestoreService(cfg, engine, dr).restore_chain(dr.chain(newest), target_database=f"{db}_dr")
    assert result.ok and result.rows == {"t": 3000}
    assert clickhouse_client.query(f"SELECT max(k) FROM {db}_dr.t").result_rows[0][0] == 10_000 + 1499

    # dr_drill with source: dr, the primary still down: every dataset restored from the DR region alone
    report = _dr_drill(embedded_stack, f"out-{tag}-b-dr")
    assert report["source"] == "dr", report
    (row,) = report["datasets"]
    assert row["recovery_point_id"] == "p1", row
    assert {(c["name"], c["status"]) for c in row["checks"]} >= {
        ("clickhouse.chain_complete", "passed"),
        ("clickhouse.restore", "passed"),
        ("clickhouse.row_count", "passed"),
    }, row["checks"]
    assert dr.read(CH, db, "p1").verification.state == "verified"

    # the monitor: primary unreachable is an error and a breach, the DR region is measured and fresh
    monitor = run_monitor(cfg, run_id="outage", gauge=lambda *a, **k: None)
    by_key = {a.target.key: a for a in monitor.ages}
    primary, replica = by_key[f"{CH}/{db}"], by_key[f"{CH}/{db}@dr"]
    assert primary.error and not primary.fresh
    assert replica.fresh and replica.newest_id == "p1" and replica.error is None
    assert monitor.status_url == f"s3://out-{tag}-b-dr/{cfg.rpo_monitor.status_key}"
    assert _mail(embedded_stack, tag) == [f"[RPO BREACH] {CH}/{db}: catalog unreachable, age unknown"]
    status = json.loads(
        embedded_stack.s3_client("dr")
        .get_object(Bucket=f"out-{tag}-b-dr", Key=cfg.rpo_monitor.status_key)["Body"]
        .read()
    )
    lines = {(d["dataset"], d["region"]): d for d in status["datasets"]}
    assert lines[(db, "primary")]["error"] and lines[(db, "primary")]["fresh"] is False
    assert lines[(db, "dr")]["fresh"] is True and lines[(db, "dr")]["newest_verified"] == "p1"

    # the primary returns: the next pass copies only what the replica lacks, then nothing more
    outage.up()
    catch_up = ReplicaService.from_config(cfg).replicate()
    assert catch_up.datasets[0].replicated == ["p2", "p3"]
    total = sum(len(p.objects) for p in later)
    assert catch_up.objects_copied == total - len(copied_before_cut)
    assert ReplicaService.from_config(cfg).replicate().objects_copied == 0
    primary_ids = [p.recovery_point_id for p in Catalog.from_config(cfg).list_points(CH, db).verified()]
    assert (
        [p.recovery_point_id for p in dr.list_points(CH, db).verified()]
        == primary_ids
        == ["p0", "p1", "p2", "p3"]
    )
    monitor = run_monitor(cfg, run_id="after", gauge=lambda *a, **k: None)
    assert all(a.fresh for a in monitor.ages), [a.describe() for a in monitor.ages]
    assert _mail(embedded_stack, tag)[-1].startswith(f"[RPO RECOVERED] {CH}/{db}: back within RPO")
