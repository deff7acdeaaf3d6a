"""A catalog for the Backups page tests, unlike the demo's: a long ClickHouse history with a broken chain,
archives in several classes, an empty
export, a point dated in the future (a skewed clock), and a drill report. Written through the real
``Catalog`` into whatever S3 the config points at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.manifest import Manifest, ObjectEntry, Verification
from backup_pipelines.drill.results import CheckResult, DatasetResult, DrillReport

BROKEN_DETAIL = "checksum of <part 2024_7_7_0> differs: 'a1b2' != 'ffff'"


@dataclass
class Seeded:
    broken: str  # the failed chain member
    dependents: list[str]  # increments after it, failed through it
    report_key: str
    points: dict[tuple[str, str], list[Manifest]]


def _point(kind: str, dataset: str, rp: str, when: datetime, sizes: list[int], **kw: Any) -> Manifest:
    storage_class = kw.pop("storage_class", "STANDARD")
    state = kw.pop("state", "verified")
    return Manifest(
        kind=kind,  # type: ignore[arg-type]
        dataset=dataset,
        recovery_point_id=rp,
        captured_at=when,
        location=f"s3://somewhere/{kind}/{dataset}/{rp}/",
        storage_class=storage_class,
        objects=[ObjectEntry(key=f"{kind}/{dataset}/{rp}/part-{i:05d}", size=s) for i, s in enumerate(sizes)],
        verification=Verification(state=state, verified_at=when, detail=kw.pop("detail", None)),
        producer={
            "dag_id": kw.pop("dag_id", "x"),
            **({"run_id": kw.pop("run_id")} if "run_id" in kw else {}),
        },
        **kw,
    )


def seed_catalog(cfg: BackupConfig, catalog: Catalog, now: datetime) -> Seeded:
    """Every configured dataset gets points of its own shape; returns what a page must show."""
    points: dict[tuple[str, str], list[Manifest]] = {}
    anchor = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)  # newest: 5 min old
    broken = dependents = None
    for kind, name, _ in cfg.datasets():
        found: list[Manifest] = []
        if kind == "clickhouse_snapshot":
            # Six days of hourly points, a full every 24 h; a member of the newest-but-one chain failed.
            for h in range(6 * 24 - 1, -1, -1):
                when = anchor - timedelta(hours=h)
                rp = when.strftime("%Y%m%dT%H%MZ")
                base = None if h % 24 == 23 else found[-1].recovery_point_id
                found.append(_point(kind, name, rp, when, [7_000_000 + h * 1_000, 12_345], base=base,
                                    dag_id="clickhouse_hourly_snapshot"))  # fmt: skip
            victim = len(found) - 30
            broken = found[victim].recovery_point_id
            found[victim] = found[victim].model_copy(
                update={"verification": Verification(state="failed", verified_at=now, detail=BROKEN_DETAIL)}
            )
            chain_end = next(i for i in range(victim + 1, len(found)) if found[i].base is None)
            dependents = [p.recovery_point_id for p in found[victim + 1 : chain_end]]
        elif kind == "emr_output":
            for d in (200, 100, 40, 10, 1):
                when = now - timedelta(days=d)
                run = {"dag_id": "emr_daily_output_archive", "run_id": f"scheduled__{when:%Y-%m-%d}"}
                found.append(
                    _point(kind, name, when.strftime("%Y-%m-%d"), when, [3 * 1024**3, 0, 517], **run)
                )
        elif kind == "kafka_archive":
            for w in (9, 5, 2):
                when = now - timedelta(weeks=w)
                found.append(_point(kind, name, when.strftime("%Y-%m-%dT04"), when, [900 * 1024**2] * 3,
                                    storage_class="GLACIER"))  # fmt: skip
            # The oldest went to DEEP_ARCHIVE (a class of its own on the pages).
            found[0] = found[0].model_copy(update={"storage_class": "DEEP_ARCHIVE"})
            # A writer with a skewed clock: dated ten minutes in the future.
            when = now + timedelta(minutes=10)
            found.append(_point(kind, name, "skewed-clock", when, [1], storage_class="GLACIER"))
        else:
            when = now - timedelta(days=20)
            found.append(_point(kind, name, when.strftime("%Y-%m"), when, [], storage_class="DEEP_ARCHIVE",
                                details={"empty": True}))  # fmt: skip
        for point in found:
            catalog.write(point)
        points[(kind, name)] = found
    assert broken is not None and dependents is not None, "no ClickHouse dataset configured"
    report_key = _write_report(cfg, catalog, now, points)
    return Seeded(broken=broken, dependents=dependents, report_key=report_key, points=points)


def _write_report(
    cfg: BackupConfig, catalog: Catalog, now: datetime, points: dict[Any, list[Manifest]]
) -> str:
    rows = []
    for (kind, name), found in points.items():
        rows.append(
            DatasetResult(
                kind=kind,
                dataset=name,
                recovery_point_id=found[-1].recovery_point_id,
                checks=[CheckResult(name="archive.sha256", status="passed", object="k")],
                rto_seconds=95.5 if kind != "emr_output" else 99_999.0,
                rto_objective_seconds=14_400,
                rpo_seconds=60,
                rpo_objective_seconds=86_400 * 40,
            )
        )
    report = DrillReport(
        dag_id="dr_drill", run_id="scheduled__drill", drill_id="d", report_date=now.strftime("%Y-%m-%d"),
        started_at=now - timedelta(hours=1), finished_at=now, pick="latest", seed=7,
        random_window_seconds=0, datasets=rows,
    )  # fmt: skip
    folder = f"{cfg.dr_drill.report_prefix}{now:%Y-%m-%d}/scheduled__drill/"
    s3 = catalog.s3.client
    s3.put_object(Bucket=catalog.bucket, Key=folder + "report.json", Body=report.to_json())
    s3.put_object(
        Bucket=catalog.bucket, Key=folder + "report.html", Body=b"<html><h1>drill report</h1></html>"
    )
    return folder


def expected_monthly(
    cfg: BackupConfig, found: list[Manifest], now: datetime, transitions: dict[int, str]
) -> dict[str, float]:
    """Monthly storage per class, computed here from the manifests (not by the code under test)."""
    totals: dict[str, float] = {}
    for point in found:
        age = (now.date() - point.captured_at.date()).days
        for obj in point.objects:
            cls = obj.storage_class or point.storage_class
            for days, moved in sorted(transitions.items()):
                if age >= days:
                    cls = moved
            price = getattr(cfg.costs.prices, cls.lower()).storage_gb_month
            totals[cls] = totals.get(cls, 0.0) + obj.size / 1024**3 * price
    return totals
