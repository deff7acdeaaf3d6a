"""A calendar month ``[start, end)`` in UTC: what one export covers and is named after."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backup_pipelines.core.errors import ExportSqlError


@dataclass(frozen=True)
class Month:
    """A calendar month ``[start, end)`` in UTC; ``label`` is ``YYYY-MM``."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        end = datetime(moment.year + (moment.month == 12), moment.month % 12 + 1, 1, tzinfo=UTC)
        return cls(start, end)

    @classmethod
    def parse(cls, label: str) -> Month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", label.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ExportSqlError(f"month {label!r} is not a month; use YYYY-MM, e.g. 2026-10")
        return cls.of(datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC))

    @classmethod
    def previous(cls, moment: datetime) -> Month:
        """The last month that is complete at ``moment``."""
        return cls.of(cls.of(moment).start - timedelta(days=1))

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def recovery_point_id(self) -> str:
        return f"month={self.label}"

    def parameters(self) -> dict[str, datetime]:
        return {"start": self.start, "end": self.end}
