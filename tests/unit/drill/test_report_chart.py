"""The drill report's chart: RPO and RTO against objective per dataset, inline SVG, readable printed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from backup_pipelines.drill.render import CHART_LABEL, CHART_WIDTH, render_chart, render_html
from backup_pipelines.drill.results import CheckResult, DatasetResult, DrillReport

NOW = datetime(2027, 5, 1, 6, tzinfo=UTC)


def _row(kind: str, name: str, rto: float | None, rpo: float | None) -> DatasetResult:
    return DatasetResult(
        kind=kind,
        dataset=name,
        checks=[CheckResult(name="archive.sha256", status="passed")],
        rto_seconds=rto,
        rto_objective_seconds=1000,
        rpo_seconds=rpo,
        rpo_objective_seconds=3600,
    )


def _report(*rows: DatasetResult) -> DrillReport:
    return DrillReport(
        dag_id="dr_drill", run_id="r", drill_id="d", report_date="2027-05-01", started_at=NOW,
        finished_at=NOW, pick="latest", seed=1, random_window_seconds=0, datasets=list(rows),
    )  # fmt: skip


def _bars(svg: str) -> list[tuple[float, str]]:
    return [(float(w), fill) for w, fill in re.findall(r'<rect [^>]*width="([\d.]+)"[^>]*fill="(#\w+)"', svg)]


def test_bars_are_scaled_to_the_objective_and_a_miss_is_red_outlined_and_says_so() -> None:
    span = CHART_WIDTH - CHART_LABEL - 150  # the objective's line is at half of it
    svg = render_chart(_report(_row("clickhouse_snapshot", "orders<eu>", rto=500, rpo=7200)))
    (rpo_width, rpo_fill), (rto_width, rto_fill) = _bars(svg)
    assert rpo_width == span and rpo_fill == "#cf222e"  # 2x the RPO: a full bar, red
    assert rto_width == span / 4 and rto_fill == "#1a7f37"  # half the RTO objective: green
    assert "2.0h / 60.0m MISSED" in svg and "8.3m / 16.7m met" in svg
    assert 'stroke-dasharray="3 2"' in svg  # the miss is outlined too: told apart on a grey print
    assert "orders&lt;eu&gt;" in svg and "<eu>" not in svg


def test_an_unmeasured_restore_says_so_and_bars_stop_at_twice_the_objective() -> None:
    svg = render_chart(_report(_row("kafka_archive", "t", rto=None, rpo=360_000)))
    assert "not measured" in svg
    ((width, _),) = _bars(svg)
    assert width == CHART_WIDTH - CHART_LABEL - 150


def test_the_html_report_embeds_the_chart_with_no_external_asset() -> None:
    page = render_html(_report(_row("emr_output", "a", 10, 60), _row("emr_output", "b", 2000, 60)))
    assert page.count('<svg class="objectives"') == 1
    assert page.count("<rect ") == 4
    assert not re.search(r"<(script|link|img|iframe)\b|url\(|src=", page)
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]  # the SVG namespace only
    assert "@media print" in page
