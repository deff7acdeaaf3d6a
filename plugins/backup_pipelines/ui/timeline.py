"""A dataset's recovery points as an inline SVG timeline: time left to right, one lane per chain (a full
and its increments, joined base to increment), each point coloured by its effective state."""

from __future__ import annotations

from datetime import datetime
from html import escape

from backup_pipelines.ui.models import PointRow

COLORS = {"verified": "#1a7f37", "unverified": "#9a6700", "failed": "#cf222e"}
WIDTH, LANE, LEFT, TOP = 900, 22, 110, 26
MAX_LANES = 12


def _lane_of(point: PointRow, by_id: dict[str, PointRow]) -> str:
    """The chain a point belongs to: its full (followed through bases even when the chain is broken)."""
    if point.role == "archive":
        return "archives"
    seen: set[str] = set()
    current = point
    while current.base and current.base in by_id and current.recovery_point_id not in seen:
        seen.add(current.recovery_point_id)
        current = by_id[current.base]
    return current.recovery_point_id if not current.base else f"(missing {current.base})"


def render(points: list[PointRow], start: datetime, end: datetime) -> str:
    """The SVG (a string of markup, every text escaped); ``points`` in any order."""
    if not points:
        return '<p class="muted">No recovery point in this window.</p>'
    by_id = {p.recovery_point_id: p for p in points}
    lanes: dict[str, int] = {}
    for p in sorted(points, key=lambda p: p.captured_at, reverse=True):
        lanes.setdefault(_lane_of(p, by_id), len(lanes))
    shown = {lane: i for lane, i in lanes.items() if i < MAX_LANES}
    span = max((end - start).total_seconds(), 1.0)

    def x(when: datetime) -> float:
        return LEFT + (WIDTH - LEFT - 20) * min(max((when - start).total_seconds() / span, 0.0), 1.0)

    def y(lane: str) -> float:
        return TOP + shown[lane] * LANE

    height = TOP + len(shown) * LANE + 10
    parts = [
        f'<svg class="timeline" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="recovery points over time">',
        f'<text x="{LEFT}" y="14" font-size="11">{escape(start.strftime("%Y-%m-%d %H:%M"))}</text>',
        f'<text x="{WIDTH - 20}" y="14" font-size="11" text-anchor="end">'
        f"{escape(end.strftime('%Y-%m-%d %H:%M'))} UTC</text>",
    ]
    for lane, i in shown.items():
        label = lane if len(lane) <= 16 else lane[:15] + "…"
        parts.append(f'<text x="4" y="{TOP + i * LANE + 4}" font-size="11">{escape(label)}</text>')
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 20}" y1="{TOP + i * LANE}" y2="{TOP + i * LANE}" '
            'stroke="#ddd" stroke-width="1"/>'
        )
    for p in points:
        lane = _lane_of(p, by_id)
        if lane not in shown:
            continue
        base = by_id.get(p.base) if p.base else None
        if base is not None and _lane_of(base, by_id) in shown:
            parts.append(
                f'<line x1="{x(base.captured_at):.1f}" y1="{y(lane):.1f}" x2="{x(p.captured_at):.1f}" '
                f'y2="{y(lane):.1f}" stroke="{COLORS[p.state]}" stroke-width="2"/>'
            )
    for p in points:
        lane = _lane_of(p, by_id)
        if lane not in shown:
            continue
        radius = 6 if p.role == "full" else 4
        why = f": {p.reason}" if p.reason else ""
        parts.append(
            f'<circle class="point {p.state}" data-point="{escape(p.recovery_point_id, quote=True)}" '
            f'cx="{x(p.captured_at):.1f}" cy="{y(lane):.1f}" r="{radius}" fill="{COLORS[p.state]}">'
            f"<title>{escape(f'{p.recovery_point_id} ({p.role}) {p.state}{why}')}</title></circle>"
        )
    if len(lanes) > len(shown):
        parts.append(
            f'<text x="{LEFT}" y="{height - 2}" font-size="11">'
            f"{len(lanes) - len(shown)} older chain(s) not drawn</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
