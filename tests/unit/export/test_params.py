"""The export's form: a month that is not one, or has not ended, refused before anything runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_pipelines.core import clock
from backup_pipelines.core.errors import ParamError
from backup_pipelines.export.params import ExportParams


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 11, 29, 6, tzinfo=UTC))


@pytest.mark.parametrize(
    ("month", "message"),
    [
        ("2026-13", "param month: '2026-13' is not a month; use YYYY-MM, e.g. 2026-10"),
        ("Oct 2026", "param month: 'Oct 2026' is not a month; use YYYY-MM"),
        ("2026-11", "param month: month 2026-11 has not ended yet (it ends 2026-12-01T00:00:00Z)"),
        ("2027-01", "param month: month 2027-01 has not ended yet"),
    ],
)
def test_a_bad_or_unfinished_month_is_refused(month: str, message: str) -> None:
    with pytest.raises(ParamError) as err:
        ExportParams.parse({"month": month})
    assert str(err.value).startswith(message)


def test_a_complete_month_and_none() -> None:
    assert ExportParams.parse({"month": " 2026-10 "}).month == "2026-10"
    assert ExportParams.parse({"month": ""}).month is None
