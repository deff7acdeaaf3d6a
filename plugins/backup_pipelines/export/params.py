"""The params of the ``monthly_deep_archive_export`` form, read into a typed model before any side effect."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from backup_pipelines.core.params import RunParams


class ExportParams(RunParams):
    """The ``monthly_deep_archive_export`` form."""

    month: str | None = None
    allow_fewer_rows: bool = False

    @field_validator("month", mode="before")
    @classmethod
    def _month(cls, value: Any) -> Any:
        import re

        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value.strip()):
            raise ValueError(f"{value!r} is not a month; use YYYY-MM, e.g. 2026-10")
        if isinstance(value, str):
            from backup_pipelines.core import clock
            from backup_pipelines.export.month import Month

            month = Month.parse(value)
            if month.end > clock.utcnow():  # an unfinished month would be archived as complete
                raise ValueError(
                    f"month {month.label} has not ended yet (it ends {month.end:%Y-%m-%dT%H:%M:%SZ}); "
                    "export a complete month"
                )
            return month.label
        return value
