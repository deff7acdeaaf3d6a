"""The Backups pages as HTML: Jinja2 templates (autoescaped) under ``ui/templates``, inline CSS, no
external asset, readable printed. Links to Airflow's own pages leave the plugin's frame."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from backup_pipelines.ui import timeline
from backup_pipelines.ui.models import CostPage, DatasetPage, Overview


def fmt_bytes(size: float | None) -> str:
    """Binary units, as S3 bills them (``1.5 GiB``); ``-`` when unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def fmt_money(amount: float, currency: str = "USD") -> str:
    """Four decimals below one unit (archives cost fractions of a cent), two above."""
    return f"{amount:,.4f} {currency}" if abs(amount) < 1 else f"{amount:,.2f} {currency}"


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def fmt_time(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M UTC")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("backup_pipelines.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        bytes=fmt_bytes, money=fmt_money, age=fmt_age, time=fmt_time, q=lambda v: quote(str(v), safe="")
    )
    return env


def _render(template: str, *, base: str, airflow: str, **values: Any) -> str:
    return environment().get_template(template).render(base=base, airflow=airflow, **values)


def overview(page: Overview, *, base: str, airflow: str) -> str:
    return _render("overview.html", base=base, airflow=airflow, page=page, title="Backups")


def dataset(page: DatasetPage, *, base: str, airflow: str, now: datetime) -> str:
    start = now - timedelta(days=page.window_days) if page.window_days else None
    if start is None:
        start = min((p.captured_at for p in page.points), default=now)
    svg = Markup(timeline.render(page.points, start, now))  # noqa: S704 (every text in it is escaped)
    title = f"Backups: {page.overview.kind}/{page.overview.dataset}"
    return _render("dataset.html", base=base, airflow=airflow, page=page, timeline=svg, title=title)


def costs(page: CostPage, *, base: str, airflow: str) -> str:
    return _render("cost.html", base=base, airflow=airflow, page=page, title="Backups: cost")


def runbook(name: str, text: str, *, base: str, airflow: str) -> str:
    return _render("runbook.html", base=base, airflow=airflow, text=text, title=f"Runbook: {name}")
