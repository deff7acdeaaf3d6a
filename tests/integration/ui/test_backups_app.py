"""The Backups app inside Airflow's own API app (loaded through the package's entry point) on the embedded
stack's S3: refused without a login, and the overview, a dataset, the cost and the reports from the catalog.

Datasets unlike the demo's (other names, a long history with a broken chain, classes moved by hand, an
empty export, a point dated in the future); the catalog is under its own prefix of the stack's bucket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from support.services import unique_name
from support.ui import BROKEN_DETAIL, Seeded, expected_monthly, seed_catalog

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig, load_config

pytestmark = pytest.mark.integration

SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


@pytest.fixture(scope="module")
def monkeymodule() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def config(
    embedded_stack: Any, tmp_path_factory: pytest.TempPathFactory, monkeymodule: pytest.MonkeyPatch
) -> BackupConfig:
    import yaml

    from backup_pipelines import PROJECT_ROOT

    raw = yaml.safe_load((PROJECT_ROOT / "include" / "config" / "backup.yaml").read_text())
    area = unique_name("ui")
    raw["storage"]["catalog_prefix"] = f"{area}/catalog/"
    raw["dr_drill"]["report_prefix"] = f"{area}/reports/"
    raw["clickhouse_snapshots"]["datasets"][0]["name"] = "orders_eu"
    raw["emr_archive"]["jobs"] = [{**raw["emr_archive"]["jobs"][0], "name": "geo-enrich"}]
    raw["kafka_archive"]["topics"] = [{"name": "payments.v2", "objectives": {"rpo": "30d", "rto": "12h"}}]
    path = tmp_path_factory.mktemp("ui-config") / "backup.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeymodule.setenv("BACKUP_PIPELINES_CONFIG", str(path))
    return load_config()


@pytest.fixture(scope="module")
def seeded(config: BackupConfig) -> Seeded:
    return seed_catalog(config, Catalog.from_config(config), datetime.now(UTC))


@pytest.fixture(scope="module")
def client(
    config: BackupConfig, tmp_path_factory: pytest.TempPathFactory, monkeymodule: pytest.MonkeyPatch
) -> Any:
    """Airflow's API app (create_app) with the simple auth manager and one user, as the API server runs."""
    from fastapi.testclient import TestClient

    home = tmp_path_factory.mktemp("ui-auth")
    (home / "passwords.json").write_text(json.dumps({"auditor": "s3cret-pw"}))
    for key, value in {
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "auditor:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "ui-test-secret-" + "x" * 64,
    }.items():
        monkeymodule.setenv(key, value)
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    with TestClient(create_app()) as test_client:
        yield test_client
    purge_cached_app()


@pytest.fixture(scope="module")
def token(client: Any) -> str:
    answer = client.post("/auth/token", json={"username": "auditor", "password": "s3cret-pw"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["access_token"])


def _get(client: Any, token: str, path: str) -> Any:
    """As the UI's frame asks: the JWT in the ``_token`` cookie."""
    client.cookies.set("_token", token)
    try:
        return client.get(path)
    finally:
        client.cookies.clear()


@pytest.mark.parametrize(
    "path",
    ["/backups/", "/backups/cost", "/backups/api/overview", "/backups/datasets/x/y", "/backups/reports/a"],
)
def test_every_page_is_refused_without_a_login(client: Any, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 401, answer.text
    assert answer.json() == {"detail": "Not authenticated"}
    forged = client.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403, forged.text


def test_the_overview_shows_every_configured_dataset_from_the_catalog(
    client: Any, token: str, config: BackupConfig, seeded: Seeded
) -> None:
    answer = _get(client, token, "/backups/")
    assert answer.status_code == 200, answer.text
    page = unescape(answer.text)
    for kind, name, _ in config.datasets():
        assert f"{kind}/{name}" in page
    data = {
        f"{d['kind']}/{d['dataset']}": d
        for d in _get(client, token, "/backups/api/overview").json()["datasets"]
    }
    orders = data["clickhouse_snapshot/orders_eu"]
    newest = seeded.points[("clickhouse_snapshot", "orders_eu")][-1]
    assert (orders["newest_verified"], orders["status"]) == (newest.recovery_point_id, "green")
    assert orders["failed"] == 1 + len(seeded.dependents)
    assert orders["latest_failure"].startswith(f"{seeded.dependents[-1]}: ")
    # The skewed writer's point is the newest verified: green, and said to be in the future.
    payments = data["kafka_archive/payments.v2"]
    assert payments["newest_verified"] == "skewed-clock" and "in the future" in payments["status_reason"]
    assert payments["bytes_by_class"] == {
        "DEEP_ARCHIVE": 3 * 900 * 1024**2,
        "GLACIER": 2 * 3 * 900 * 1024**2 + 1,
    }
    # The EMR copies were moved down by the lifecycle as they aged (30 d: GLACIER_IR, 180 d: DEEP_ARCHIVE).
    assert set(data["emr_output/geo-enrich"]["bytes_by_class"]) == {"STANDARD", "GLACIER_IR", "DEEP_ARCHIVE"}
    assert data["emr_output/geo-enrich"]["last_drill"]["rto_met"] is False


def test_a_broken_chain_is_failed_with_the_member_that_broke_it(
    client: Any, token: str, seeded: Seeded
) -> None:
    answer = _get(client, token, "/backups/datasets/clickhouse_snapshot/orders_eu")
    assert answer.status_code == 200, answer.text
    for rp in [seeded.broken, *seeded.dependents]:
        row = re.search(rf'<tr class="(\w+)" data-point="{re.escape(rp)}">(.*?)</tr>', answer.text, re.S)
        assert row is not None, f"no row for {rp}"
        assert row.group(1) == "failed", (rp, row.group(1))
        assert BROKEN_DETAIL in unescape(row.group(2)), row.group(2)
        if rp != seeded.broken:
            assert seeded.broken in unescape(row.group(2))
    assert '<svg class="timeline"' in answer.text and 'class="point failed"' in answer.text
    assert "&lt;part 2024_7_7_0&gt;" in answer.text  # the engine's text is escaped, not markup
    assert 'href="/dags/clickhouse_hourly_snapshot"' in answer.text


def test_the_cost_page_matches_the_catalog(
    client: Any, token: str, config: BackupConfig, seeded: Seeded
) -> None:
    data = _get(client, token, "/backups/api/cost").json()
    now = datetime.now(UTC)
    moves = {t.days: t.storage_class for t in config.emr_archive.lifecycle.transitions}
    expected: dict[tuple[str, str], float] = {}
    for (kind, name), found in seeded.points.items():
        for cls, monthly in expected_monthly(
            config, found, now, moves if kind == "emr_output" else {}
        ).items():
            expected[(name, cls)] = monthly
    got = {(r["dataset"], r["storage_class"]): r["monthly"] for r in data["rows"]}
    assert sorted(got) == sorted(expected), (sorted(got), sorted(expected))
    assert got == pytest.approx(expected)
    assert data["total_monthly"] == pytest.approx(sum(expected.values()))
    assert (data["source"], data["as_of"], data["region"]) == (config.costs.source, "2025-01", "us-east-1")
    html = unescape(_get(client, token, "/backups/cost").text)
    assert f"{sum(expected.values()):,.2f} USD" in html or f"{sum(expected.values()):,.4f} USD" in html


def test_the_drill_report_and_the_runbook_are_served_inside_airflow(
    client: Any, token: str, seeded: Seeded
) -> None:
    report = _get(client, token, f"/backups/reports/{seeded.report_key}report.html")
    assert report.status_code == 200 and "drill report" in report.text
    outside = _get(client, token, "/backups/reports/" + seeded.report_key.split("/")[0] + "/catalog/x.json")
    assert outside.status_code == 404
    runbook = _get(client, token, "/backups/runbooks/clickhouse-restore.md")
    assert runbook.status_code == 200
    first = Path(__file__).resolve().parents[3].joinpath("docs/runbooks/clickhouse-restore.md").read_text()
    assert unescape(first.splitlines()[0]) in unescape(runbook.text)
    assert _get(client, token, "/backups/runbooks/..%2F..%2Fpyproject.toml").status_code == 404
