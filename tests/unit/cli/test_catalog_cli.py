"""``backup-pipelines catalog ...`` on the shipped config against in-process moto: what an operator
sees on a terminal and what a script gets with ``--json``, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.catalog import catalog_on, manifest
from support.paths import ROOT

from backup_pipelines.cli.main import main
from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.manifest import ObjectEntry

CONFIG = str(ROOT / "include" / "config" / "backup.yaml")
BUCKET = "analytics-backups"
NOW = datetime(2027, 7, 4, 3, 30, tzinfo=UTC)


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Catalog]:
    import boto3
    from moto import mock_aws

    monkeypatch.setattr(clock, "utcnow", lambda: NOW)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}})
    )
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        catalog = catalog_on(client, BUCKET)
        catalog.write(manifest("20270704T0100Z", captured_at=NOW - timedelta(hours=2, minutes=30)))
        catalog.write(
            manifest(
                "20270704T0200Z", captured_at=NOW - timedelta(hours=1, minutes=30), base="20270704T0100Z"
            )
        )
        catalog.write(
            manifest(
                "20270704T0300Z",
                captured_at=NOW - timedelta(minutes=30),
                base="20270704T0200Z",
                state="unverified",
                objects=[ObjectEntry(key="d/\u00fcber [1].bin", size=3 * 1024 * 1024, sha256="q83vEjRWeJA=")],
            )
        )
        yield catalog


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", CONFIG, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_every_configured_dataset_against_its_rpo(catalog: Catalog, capsys: Any) -> None:
    code, out, _ = run(capsys, "--json", "catalog", "ls")
    assert code == 0
    rows = {(r["kind"], r["dataset"]): r for r in json.loads(out)}
    analytics = rows[("clickhouse_snapshot", "analytics")]
    assert analytics["points"] == 3 and analytics["newest_verified"] == "20270704T0200Z"
    assert analytics["age_seconds"] == 5400 and analytics["within_rpo"] is False  # hourly RPO
    assert rows[("kafka_archive", "events")]["points"] == 0
    assert rows[("kafka_archive", "events")]["newest_verified"] is None
    code, out, _ = run(capsys, "catalog", "ls", "--kind", "clickhouse_snapshot")
    assert "analytics" in out and "20270704T0200Z" in out and "BREACHED" in out


def test_ls_of_one_dataset_and_show_of_one_point(catalog: Catalog, capsys: Any) -> None:
    code, out, _ = run(capsys, "--json", "catalog", "ls", "--dataset", "analytics")
    points = json.loads(out)["points"]
    assert [(p["recovery_point_id"], p["state"]) for p in points] == [
        ("20270704T0100Z", "verified"),
        ("20270704T0200Z", "verified"),
        ("20270704T0300Z", "unverified"),
    ]
    code, out, _ = run(capsys, "catalog", "show", "analytics", "20270704T0300Z", "--objects")
    assert code == 0
    assert "unverified" in out and "3.0 MiB in 1 object(s)" in out and "über [1].bin" in out
    code, out, _ = run(capsys, "--json", "catalog", "show", "analytics", "20270704T0300Z")
    shown = json.loads(out)
    assert shown["base"] == "20270704T0200Z" and "objects" not in shown and shown["object_count"] == 1
    assert shown["effective_state"]["reason"] == "not verified yet"


def test_unknown_dataset_and_point_are_one_line_errors(catalog: Catalog, capsys: Any) -> None:
    code, _, err = run(capsys, "catalog", "ls", "--dataset", "nope")
    assert (
        code == 2 and "no configured dataset matches 'nope'" in err and "clickhouse_snapshot/analytics" in err
    )
    code, _, err = run(capsys, "catalog", "show", "analytics", "19990101T0000Z")
    assert (
        code == 2 and "no recovery point '19990101T0000Z' for clickhouse_snapshot dataset 'analytics'" in err
    )


def test_verify_finds_a_stale_index_and_rebuild_index_fixes_it(catalog: Catalog, capsys: Any) -> None:
    assert run(capsys, "catalog", "verify", "--dataset", "analytics")[0] == 0
    failed = manifest("20270704T0100Z", captured_at=NOW - timedelta(hours=2, minutes=30), state="failed")
    catalog.s3.client.put_object(
        Bucket=BUCKET,
        Key=catalog.key_for("clickhouse_snapshot", "analytics", "20270704T0100Z"),
        Body=failed.to_json(),
    )
    code, out, _ = run(capsys, "--json", "catalog", "verify", "--dataset", "analytics")
    assert code == 1
    [finding] = json.loads(out)[0]["differences"]
    assert finding.startswith(
        "20270704T0100Z: the index differs from the manifest in own_state ('verified', manifest 'failed')"
    )
    code, out, _ = run(capsys, "--json", "catalog", "rebuild-index", "--dataset", "analytics")
    assert code == 0 and json.loads(out)[0]["newest_verified"] is None  # the chain's full failed
    assert run(capsys, "catalog", "verify", "--dataset", "analytics")[0] == 0


def test_json_after_the_command_works_too(catalog: Catalog, capsys: Any) -> None:
    code, out, _ = run(capsys, "catalog", "ls", "--dataset", "analytics", "--json")
    assert code == 0 and len(json.loads(out)["points"]) == 3
