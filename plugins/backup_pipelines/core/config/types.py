"""Value types of the config: durations, names, buckets, prefixes, storage classes, the strict base."""

from __future__ import annotations

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
