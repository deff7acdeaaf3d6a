"""Value types of the config: durations, names, buckets, prefixes, storage classes, the strict base."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

StorageClass = Literal[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
]
RestoreTier = Literal["Expedited", "Standard", "Bulk"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> Any:
    """Accept '90s', '15m', '1h', '7d', '2w' (and anything pydantic takes for a timedelta)."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return timedelta(**{_DURATION_UNITS[match.group(2)]: float(match.group(1))})
        if not value.strip().startswith("P"):
            raise ValueError(f"{value!r} is not a duration; use a number and a unit: 90s, 15m, 1h, 7d, 2w")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Name = Annotated[str, Field(pattern=_NAME_RE, max_length=120)]
BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")]
Prefix = Annotated[str, Field(pattern=r"^([A-Za-z0-9_.\-=]+/)*$")]


class Strict(BaseModel):
    """Every section rejects unknown keys: a typo must fail loudly, not be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def human_duration(seconds: float) -> str:
    """``5400`` -> ``1h 30m``; negative ages (clock skew) are shown as such, not hidden."""
    sign = "-" if seconds < 0 else ""
    remaining = int(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size or (unit == "s" and not parts):
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


# -- cron schedules ---------------------------------------------------------------------------------
_CRON_RULE = (
    "five fields (minute hour day-of-month month day-of-week, e.g. '0 * * * *') or a preset like @daily"
)
_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def check_cron(value: Any) -> Any:
    """A schedule Airflow's ``CronDataIntervalTimetable`` accepts: five cron fields or a preset."""
    if not isinstance(value, str):
        return value
    from croniter import croniter

    expression = _PRESETS.get(value.strip(), value.strip())
    if len(expression.split()) != 5:
        raise ValueError(f"{value!r} is not a cron schedule; use {_CRON_RULE}")
    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{value!r} is not a cron schedule ({exc}); use {_CRON_RULE}") from None
    return value


Cron = Annotated[str, BeforeValidator(check_cron)]


def _fires_on(day: Any, dom: list[Any], months: list[Any], dow: list[Any], nth: dict[int, set[int]]) -> bool:
    import calendar

    if months != ["*"] and day.month not in months:
        return False
    last = calendar.monthrange(day.year, day.month)[1]
    dom_hit = dom == ["*"] or day.day in dom or ("l" in dom and day.day == last)
    weekday = (day.weekday() + 1) % 7  # cron: Sunday is 0
    dow_hit = dow == ["*"] or (
        weekday in dow and (weekday not in nth or (day.day - 1) // 7 + 1 in nth[weekday])
    )
    if dom != ["*"] and dow != ["*"]:
        return dom_hit or dow_hit  # cron's rule: either day field matches
    return dom_hit and dow_hit


def longest_gap(schedule: str) -> timedelta:
    """The longest time between two consecutive runs of a cron schedule (over five years, leap
    days included): how old the newest point it produces can get before the next one exists."""
    from datetime import date

    from croniter import croniter

    cron = croniter(_PRESETS.get(schedule.strip(), schedule.strip()))
    minutes, hours, dom, months, dow = cron.expanded
    nth = {int(k): set(v) for k, v in (getattr(cron, "nth_weekday_of_month", None) or {}).items()}
    times = sorted(
        h * 60 + m
        for h in (range(24) if hours == ["*"] else hours)
        for m in (range(60) if minutes == ["*"] else minutes)
    )
    start = date(2024, 1, 1)
    days = [i for i in range(5 * 366 + 31) if _fires_on(start + timedelta(days=i), dom, months, dow, nth)]
    if len(days) < 2:  # fires on one day of four years at most: never meets an objective
        return timedelta(days=4 * 366)
    gap = max((b - a for a, b in itertools.pairwise(times)), default=0)
    for a, b in itertools.pairwise(days):
        gap = max(gap, (b - a) * 1440 - times[-1] + times[0])
    return timedelta(minutes=gap)
