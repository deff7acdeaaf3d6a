"""The DR drill report as people read it: Markdown, HTML (auditors) and a plain-text table (terminals,
the summary email)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from backup_pipelines.drill.results import TABLE_HEADER, DrillReport, fmt_seconds

REPORT_FILES = ("report.json", "report.md", "report.html")
INDEX_FILES = ("index.json", "index.html")
TIER1_NOT_CONFIGURED = (
    "not configured: dr_drill.clickhouse_max_replica_lag and dr_drill.kafka_dr_connection are unset, "
    "so no Tier 1 check ran (this is not a pass)"
)


def _section_items(title: str, checks: list[Any]) -> list[str]:
    """The lines of the Tier 1 or clean-up section; an empty Tier 1 says it is not configured."""
    if not checks:
        return [TIER1_NOT_CONFIGURED if title == "Tier 1" else "nothing to clean up"]
    return [f"{c.status.upper()}: {c.describe()}" for c in checks]


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: DrillReport) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        f"# DR drill {report.report_date}: {verdict}",
        "",
        f"- run: `{report.run_id}` (DAG `{report.dag_id}`), drill id `{report.drill_id}`"
        + (f" ([open in Airflow]({report.run_url}))" if report.run_url else ""),
        f"- started {report.started_at.isoformat()}, finished {report.finished_at.isoformat()}",
        f"- recovery point pick: **{report.pick}**"
        + (f" within {fmt_seconds(report.random_window_seconds)}" if report.pick == "random" else "")
        + f", seed {report.seed}",
        f"- restored from the **{report.source}** region"
        + (" (storage.replica)" if report.source == "dr" else ""),
        f"- {_md_cell(report.freshness_before.describe())}" if report.freshness_before else "",
        "",
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in report.table_rows()]
    failures = report.failures()
    if failures:
        lines += ["", "## Failures", ""] + [f"- {_md_cell(f)}" for f in failures]
    lines += ["", "## Checks", ""]
    for d in report.datasets:
        lines.append(f"### {d.key}")
        lines += [f"- {c.status.upper()}: {_md_cell(c.describe())}" for c in d.checks] or ["- (no check ran)"]
        lines.append("")
    for title, checks in (("Tier 1", report.tier1), ("Clean-up", report.cleanup)):
        lines.append(f"### {title}")
        lines += [f"- {_md_cell(item)}" for item in _section_items(title, checks)]
        lines.append("")
    return "\n".join(lines)


CHART_WIDTH, CHART_LABEL, CHART_BAR, CHART_ROW = 760, 230, 14, 44


def _chart_bar(y: float, label: str, achieved: float | None, objective: float) -> str:
    """One bar: achieved against objective, scaled so the objective is the dashed line at 1x (2x max)."""
    span = CHART_WIDTH - CHART_LABEL - 150
    name = f'<text x="{CHART_LABEL - 6}" y="{y + 11}" font-size="11" text-anchor="end">{label}</text>'
    if achieved is None:
        return name + f'<text x="{CHART_LABEL}" y="{y + 11}" font-size="11">not measured</text>'
    met = achieved <= objective
    width = span * min(achieved / objective if objective else 2.0, 2.0) / 2
    outline = "" if met else ' stroke="#000" stroke-dasharray="3 2"'  # missed: also told apart in grey
    figures = f"{fmt_seconds(achieved)} / {fmt_seconds(objective)} {'met' if met else 'MISSED'}"
    return (
        name + f'<rect x="{CHART_LABEL}" y="{y}" width="{max(width, 1):.1f}" height="{CHART_BAR}" '
        f'fill="{"#1a7f37" if met else "#cf222e"}"{outline}/>'
        f'<text x="{CHART_LABEL + span + 6}" y="{y + 11}" font-size="11">{html.escape(figures)}</text>'
    )


def render_chart(report: DrillReport) -> str:
    """RPO and RTO against objective per dataset, as inline SVG (no external asset; prints as is:
    every bar carries its figures and met/MISSED in text, a missed one is also outlined)."""
    span = CHART_WIDTH - CHART_LABEL - 150
    height = 24 + CHART_ROW * len(report.datasets)
    objective_x = CHART_LABEL + span / 2
    parts = [
        f'<svg class="objectives" role="img" viewBox="0 0 {CHART_WIDTH} {height}" width="{CHART_WIDTH}" '
        'xmlns="http://www.w3.org/2000/svg" aria-label="RPO and RTO against objective per dataset">',
        f'<text x="{objective_x}" y="10" font-size="10" text-anchor="middle">objective</text>',
    ]
    for i, d in enumerate(report.datasets):
        y = 20 + i * CHART_ROW
        key = html.escape(d.key)
        parts.append(_chart_bar(y, f"{key} RPO", d.rpo_seconds, d.rpo_objective_seconds))
        parts.append(_chart_bar(y + CHART_BAR + 4, "RTO", d.rto_seconds, d.rto_objective_seconds))
    parts.append(
        f'<line x1="{objective_x}" x2="{objective_x}" y1="14" y2="{height}" stroke="#000" '
        'stroke-dasharray="4 3"/></svg>'
    )
    return "".join(parts)


def render_html(report: DrillReport) -> str:
    esc = html.escape
    verdict = "PASSED" if report.passed else "FAILED"
    head = "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADER)
    body = "".join(
        f'<tr class="{"pass" if row[-1] == "PASS" else "fail"}">'
        + "".join(f"<td>{esc(c)}</td>" for c in row)
        + "</tr>"
        for row in report.table_rows()
    )
    failures = "".join(f"<li>{esc(f)}</li>" for f in report.failures())
    sections = []
    for d in report.datasets:
        items = "".join(f"<li>{esc(c.status.upper())}: {esc(c.describe())}</li>" for c in d.checks)
        sections.append(f"<h3>{esc(d.key)}</h3><ul>{items}</ul>")
    for title, checks in (("Tier 1", report.tier1), ("Clean-up", report.cleanup)):
        items = "".join(f"<li>{esc(item)}</li>" for item in _section_items(title, checks))
        sections.append(f"<h3>{title}</h3><ul>{items}</ul>")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>DR drill {esc(report.report_date)}: {verdict}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px}tr.fail{background:#fdd}tr.pass{background:#dfd}"
        "@media print{*{-webkit-print-color-adjust:exact;print-color-adjust:exact}svg{max-width:100%}}"
        "</style>"
        f"</head><body><h1>DR drill {esc(report.report_date)}: {verdict}</h1>"
        f"<p>run <code>{esc(report.run_id)}</code> of <code>{esc(report.dag_id)}</code>"
        + (f' (<a href="{esc(report.run_url, quote=True)}">open in Airflow</a>)' if report.run_url else "")
        + "; "
        f"pick <b>{esc(report.pick)}</b>, seed {report.seed}; "
        f"restored from the <b>{esc(report.source)}</b> region; "
        f"{esc(report.started_at.isoformat())} to {esc(report.finished_at.isoformat())}</p>"
        + (f"<p>{esc(report.freshness_before.describe())}</p>" if report.freshness_before else "")
        + f"<table><tr>{head}</tr>{body}</table>"
        + "<h2>RPO and RTO against objective</h2>"
        + render_chart(report)
        + (f"<h2>Failures</h2><ul>{failures}</ul>" if failures else "")
        + "<h2>Checks</h2>"
        + "".join(sections)
        + "</body></html>"
    )


def render_text_table(report: DrillReport) -> str:
    """A plain-text table for terminals and the summary email."""
    rows: list[tuple[str, ...]] = [TABLE_HEADER, *report.table_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def day_prefix(prefix: str, report_date: str) -> str:
    """``reports/dr-drill/<date>/``: one day's drill reports (one folder per run) and its index."""
    return f"{prefix}{report_date}/"


def report_prefix(prefix: str, report_date: str, run_id: str) -> str:
    """``reports/dr-drill/<date>/<run id>/``: the folder of one drill run's report.

    The run id is made safe for keys and URLs (``manual__2026-11-24T06:00:00+00:00`` becomes
    ``manual__2026-11-24T06_00_00_00_00``).
    """
    return f"{day_prefix(prefix, report_date)}{re.sub(r'[^A-Za-z0-9._=-]', '_', run_id)}/"


def render_index(report_date: str, entries: list[dict[str, Any]]) -> tuple[bytes, str]:
    """The day's index (JSON and HTML): every drill run of the day, its verdict and its report."""
    esc = html.escape
    rows = "".join(
        f'<tr class="{"pass" if e["passed"] else "fail"}"><td>{esc(e["started_at"])}</td>'
        f"<td>{esc(e['run_id'])}</td><td>{'PASSED' if e['passed'] else 'FAILED'}</td>"
        f'<td><a href="{esc(e["folder"], quote=True)}report.html">report</a></td></tr>'
        for e in entries
    )
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>DR drills {esc(report_date)}</title></head><body><h1>DR drills {esc(report_date)}</h1>"
        f"<table><tr><th>started</th><th>run</th><th>verdict</th><th>report</th></tr>{rows}</table>"
        "</body></html>"
    )
    return json.dumps({"date": report_date, "drills": entries}, indent=2).encode(), page
