"""The Backups pages' data from a catalog: RPO status, effective states with why, drills, costs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.catalog import manifest as make_manifest
from support.catalog import moto_catalog

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.core.manifest import ObjectEntry, Verification
from backup_pipelines.drill.results import CheckResult, DatasetResult, DrillReport
from backup_pipelines.ui.cost import GB
from backup_pipelines.ui.drills import DrillHistory
from backup_pipelines.ui.service import BackupsService, rpo_status

NOW = datetime(2027, 2, 10, 9, 20, tzinfo=UTC)
CH = "clickhouse_snapshot"


def _point(rp: str, hours_ago: float, *, base: str | None = None, state: str = "verified", **kw: Any) -> Any:
    kw.setdefault("objects", [ObjectEntry(key=f"{rp}/data.bin", size=GB // 4)])
    point = make_manifest(rp, captured_at=NOW - timedelta(hours=hours_ago), base=base, state=state, **kw)
    if state == "failed":
        point = point.model_copy(
            update={"verification": Verification(state="failed", detail="row count 12 != 15 in <events>")}
        )
    return point


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    with moto_catalog() as cat:
        yield cat


@pytest.fixture
def service(catalog: Catalog, example_config: dict[str, Any]) -> BackupsService:
    cfg = BackupConfig.model_validate(example_config)
    drills = DrillHistory(catalog.s3, bucket=catalog.bucket, prefix=cfg.dr_drill.report_prefix)
    return BackupsService(cfg, catalog, drills, now=NOW)


def _write(catalog: Catalog, *points: Any) -> None:
    for point in points:
        catalog.write(point)


def test_a_failed_chain_member_fails_every_later_increment_with_its_name(
    catalog: Catalog, service: BackupsService
) -> None:
    _write(
        catalog,
        _point("full1", 30),
        _point("inc1", 29, base="full1", state="failed"),
        _point("inc2", 28, base="inc1"),  # verified on its own, broken through inc1
        _point("full2", 3),
        _point("inc3", 2, base="full2", state="unverified"),
    )
    page = service.dataset(CH, "analytics")
    assert [p.recovery_point_id for p in page.points] == ["inc3", "full2", "inc2", "inc1", "full1"]
    assert (page.window_days, page.total_points, page.dag_id) == (7, 5, "clickhouse_hourly_snapshot")
    rows = {p.recovery_point_id: p for p in page.points}
    assert rows["inc2"].state == "failed"
    assert rows["inc2"].broken_member == "inc1"
    assert rows["inc2"].reason is not None
    assert rows["inc2"].reason.endswith("inc1 failed: row count 12 != 15 in <events>")  # names the member
    assert (rows["inc2"].role, rows["inc2"].depth) == ("increment", 2)
    assert rows["inc1"].reason == "row count 12 != 15 in <events>"
    assert (rows["inc3"].state, rows["inc3"].reason) == ("unverified", "not verified yet")
    assert (rows["full2"].state, rows["full2"].role, rows["inc3"].root) == ("verified", "full", "full2")
    overview = page.overview
    assert (overview.verified, overview.failed, overview.newest_verified) == (2, 2, "full2")
    assert overview.latest_failure == f"inc2: {rows['inc2'].reason}"


def test_overview_lists_every_configured_dataset_with_status_against_its_rpo(
    catalog: Catalog, service: BackupsService
) -> None:
    _write(catalog, _point("full1", 0.5))  # analytics: RPO 1 h, 30 min old: green
    _write(
        catalog,
        _point("2027-02-09", 22, kind="emr_output", dataset="sessionization"),  # RPO 26 h: amber at 22 h
        _point("2027-02-08", 47, kind="emr_output", dataset="user_features"),  # past 26 h: red
    )
    overview = service.overview()
    by_key = {f"{d.kind}/{d.dataset}": d for d in overview.datasets}
    assert list(by_key) == [f"{k}/{n}" for k, n, _ in service.cfg.datasets()]
    assert by_key["clickhouse_snapshot/analytics"].status == "green"
    assert by_key["emr_output/sessionization"].status == "amber"
    assert by_key["emr_output/user_features"].status == "red"
    assert "RPO missed" in by_key["emr_output/user_features"].status_reason
    events = by_key["kafka_archive/events"]
    assert (events.status, events.status_reason, events.points) == ("red", "no verified recovery point", 0)
    # The next capture is the DAG's next cron tick: hourly snapshots at 10:00, the EMR archive at 03:00.
    assert by_key["clickhouse_snapshot/analytics"].next_capture == datetime(2027, 2, 10, 10, tzinfo=UTC)
    assert by_key["emr_output/sessionization"].next_capture == datetime(2027, 2, 11, 3, tzinfo=UTC)
    assert by_key["clickhouse_snapshot/analytics"].bytes_by_class == {"STANDARD": GB // 4}


def test_rpo_status_bands() -> None:
    assert rpo_status(None, timedelta(hours=1))[0] == "red"
    assert rpo_status(2700, timedelta(hours=1))[0] == "green"  # exactly 75%
    assert rpo_status(2701, timedelta(hours=1))[0] == "amber"
    assert rpo_status(3601, timedelta(hours=1)) == (
        "red",
        "newest verified point is 1.0 h old, RPO 1 h: RPO missed",
    )


def _drill(catalog: Catalog, folder: str, run_id: str, rto: float, passed: bool) -> None:
    check = CheckResult(name="clickhouse.restore", status="passed" if passed else "failed", detail="x")
    report = DrillReport(
        dag_id="dr_drill",
        run_id=run_id,
        drill_id="d",
        report_date=folder.split("/")[2],
        started_at=NOW,
        finished_at=NOW,
        pick="latest",
        seed=1,
        random_window_seconds=0,
        datasets=[
            DatasetResult(
                kind=CH,
                dataset="analytics",
                recovery_point_id="full1",
                checks=[check],
                rto_seconds=rto,
                rto_objective_seconds=1800,
                rpo_seconds=60,
                rpo_objective_seconds=3600,
            )
        ],
    )
    catalog.s3.client.put_object(Bucket=catalog.bucket, Key=folder + "report.json", Body=report.to_json())
    catalog.s3.client.put_object(Bucket=catalog.bucket, Key=folder + "report.html", Body=b"<h1>r</h1>")


def test_drill_history_newest_first_and_the_last_drill_on_the_overview(
    catalog: Catalog, service: BackupsService
) -> None:
    _drill(catalog, "reports/dr-drill/2027-01-30/scheduled_1/", "scheduled__1", 120.0, True)
    _drill(catalog, "reports/dr-drill/2027-02-06/scheduled_2/", "scheduled__2", 2400.0, False)
    drills = service.dataset(CH, "analytics").drills
    assert [d.run_id for d in drills] == ["scheduled__2", "scheduled__1"]
    last = service.overview().datasets[0].last_drill
    assert last is not None and (last.passed, last.rto_met, last.rto_seconds) == (False, False, 2400.0)
    assert any("objective.rto missed" in f for f in last.failures)
    # Only the drill's report files are served, never another key of the bucket.
    assert service.drills.file("reports/dr-drill/2027-02-06/scheduled_2/report.html") == b"<h1>r</h1>"
    catalog.s3.client.put_object(Bucket=catalog.bucket, Key="catalog/secret.json", Body=b"{}")
    assert service.drills.file("catalog/secret.json") is None
    assert service.drills.file("reports/dr-drill/../../catalog/secret.json") is None


def test_costs_per_dataset_and_class_match_the_catalog(catalog: Catalog, service: BackupsService) -> None:
    _write(
        catalog,
        _point("2027-02-01", 9 * 24, kind="kafka_archive", dataset="events", storage_class="GLACIER",
               objects=[ObjectEntry(key="e1", size=40 * GB)]),
        _point("2027-01-01", 40 * 24, kind="deep_archive_export", dataset="daily_active_users",
               storage_class="DEEP_ARCHIVE", objects=[ObjectEntry(key="x1", size=100 * GB)]),
    )  # fmt: skip
    page = service.costs()
    rows = {(r.dataset, r.storage_class): r for r in page.rows}
    assert set(rows) == {("events", "GLACIER"), ("daily_active_users", "DEEP_ARCHIVE")}
    assert rows[("events", "GLACIER")].monthly == pytest.approx(40 * 0.0036)
    assert rows[("daily_active_users", "DEEP_ARCHIVE")].monthly == pytest.approx(100 * 0.00099)
    assert page.total_monthly == pytest.approx(40 * 0.0036 + 100 * 0.00099)
    by_name = {d.dataset: d for d in page.datasets}
    # GLACIER kept 9 of its 90 days; DEEP_ARCHIVE 40 of 180.
    assert by_name["events"].early_deletion == pytest.approx(40 * 0.0036 * 81 / 30)
    assert by_name["daily_active_users"].early_deletion == pytest.approx(100 * 0.00099 * 140 / 30)
    # The drill restores with the Bulk tier: free from GLACIER, $0.0025/GB from DEEP_ARCHIVE.
    assert by_name["events"].restore_cost == 0.0
    assert by_name["daily_active_users"].restore_cost == pytest.approx(0.25)
    # Weekly archive: 40 GB within the 30-day window, spread over the 10 days since it was captured.
    assert by_name["events"].growth_bytes_per_day == pytest.approx(40 * GB / 10)
    assert len(page.forecast_months) == 12 and page.forecast_months[0] == "2027-03"
    assert page.forecast_total[0] == pytest.approx(sum(d.forecast[0] for d in page.datasets))
    assert by_name["events"].forecast[0] == pytest.approx((40 + 4 * 30) * 0.0036)
    assert (page.source, page.as_of) == (service.cfg.costs.source, "2025-01")


def test_an_unknown_dataset_is_refused_naming_the_configured_ones(service: BackupsService) -> None:
    with pytest.raises(ConfigError, match=r"no configured dataset clickhouse_snapshot/nope \(configured: "):
        service.dataset(CH, "nope")


def test_a_page_view_reads_each_index_once_and_lists_no_manifest_folder(
    catalog: Catalog, service: BackupsService
) -> None:
    """The overview reads a dataset that has points from its index alone (one GET), never a
    listing of its manifests: its cost does not grow with the number of points. (A dataset with
    no point yet has no index: its empty folder is listed, one request.)"""
    _write(catalog, *(_point(f"p{i:03d}", 48 - i) for i in range(40)))
    calls: list[tuple[str, str]] = []
    service.catalog.s3.client.meta.events.register(
        "before-parameter-build.s3",
        lambda model, params, **_: calls.append((model.name, params.get("Prefix", params.get("Key", "")))),
    )
    overview = service.overview()
    [row] = [d for d in overview.datasets if d.kind == CH]
    assert (row.points, row.verified, row.newest_verified) == (40, 40, "p039")
    folder = catalog.key_for(CH, "analytics", "x")[: -len("x.json")]
    assert [c for c in calls if c[1].startswith(folder)] == [("GetObject", f"{folder}_index.jsonl")]
