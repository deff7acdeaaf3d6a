"""The cost arithmetic: classes after lifecycle, minimum-duration and retrieval charges, growth, forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from support.catalog import manifest

from backup_pipelines.core.config.operations import Costs, StorageClassPrices
from backup_pipelines.core.manifest import ObjectEntry
from backup_pipelines.ui import cost
from backup_pipelines.ui.cost import GB, Growth, Holding

NOW = datetime(2027, 3, 15, 12, tzinfo=UTC)
TODAY = NOW.date()
PRICES = StorageClassPrices()
EMR_LIFECYCLE = ((30, "GLACIER_IR"), (180, "DEEP_ARCHIVE"))


def test_default_prices_are_the_documented_table() -> None:
    table = Costs()
    assert (table.currency, table.region, table.as_of) == ("USD", "us-east-1", "2025-01")
    assert PRICES.of("GLACIER").storage_gb_month == 0.0036
    assert PRICES.of("GLACIER").minimum_days == 90
    assert PRICES.of("GLACIER").retrieval_gb == {"Standard": 0.01, "Bulk": 0.0, "Expedited": 0.03}
    assert PRICES.of("DEEP_ARCHIVE").minimum_days == 180
    assert PRICES.of("DEEP_ARCHIVE").retrieval_gb["Bulk"] == 0.0025
    assert "Expedited" not in PRICES.of("DEEP_ARCHIVE").retrieval_gb  # Deep Archive has no Expedited tier
    assert PRICES.of("REDUCED_REDUNDANCY") is PRICES.standard  # unknown names cost as STANDARD


def test_holdings_group_by_day_and_take_an_objects_own_class() -> None:
    points = [
        manifest(
            "a",
            captured_at=NOW - timedelta(hours=1),
            storage_class="GLACIER",
            objects=[ObjectEntry(key="k1", size=10), ObjectEntry(key="k2", size=5, storage_class="STANDARD")],
        ),
        manifest(
            "b",
            captured_at=NOW - timedelta(hours=2),
            storage_class="GLACIER",
            objects=[ObjectEntry(key="k3", size=7)],
        ),
        manifest("c", captured_at=NOW - timedelta(days=3), storage_class="GLACIER", objects=[]),
    ]
    assert cost.holdings(points) == [Holding(TODAY, "GLACIER", 17), Holding(TODAY, "STANDARD", 5)]


def test_lifecycle_moves_bytes_down_as_they_age() -> None:
    items = [
        Holding(TODAY - timedelta(days=10), "STANDARD", 1),
        Holding(TODAY - timedelta(days=30), "STANDARD", 2),
        Holding(TODAY - timedelta(days=400), "STANDARD", 4),
    ]
    assert cost.bytes_by_class(items, TODAY, EMR_LIFECYCLE) == {
        "DEEP_ARCHIVE": 4,
        "GLACIER_IR": 2,
        "STANDARD": 1,
    }
    assert cost.bytes_by_class(items, TODAY) == {"STANDARD": 7}


def test_early_deletion_charges_the_rest_of_the_minimum_from_when_the_class_was_entered() -> None:
    items = [
        Holding(TODAY - timedelta(days=30), "GLACIER", 10 * GB),  # 60 days of GLACIER's 90 left
        Holding(TODAY - timedelta(days=200), "GLACIER", 10 * GB),  # past the minimum: nothing
        Holding(TODAY - timedelta(days=5), "STANDARD", 10 * GB),  # no minimum
    ]
    assert cost.early_deletion_charge(items, TODAY, PRICES) == pytest.approx(10 * 0.0036 * 60 / 30)
    # An EMR copy moved to DEEP_ARCHIVE on day 180 and is 190 days old: 170 of 180 days left.
    moved = [Holding(TODAY - timedelta(days=190), "STANDARD", 3 * GB)]
    assert cost.early_deletion_charge(moved, TODAY, PRICES, EMR_LIFECYCLE) == pytest.approx(
        3 * 0.00099 * 170 / 30
    )


def test_retrieval_cost_by_tier() -> None:
    assert cost.retrieval_cost(100 * GB, "DEEP_ARCHIVE", "Bulk", PRICES) == pytest.approx(0.25)
    assert cost.retrieval_cost(100 * GB, "DEEP_ARCHIVE", "Standard", PRICES) == pytest.approx(2.0)
    assert cost.retrieval_cost(100 * GB, "GLACIER", "Bulk", PRICES) == 0.0
    assert cost.retrieval_cost(100 * GB, "GLACIER_IR", "Bulk", PRICES) == pytest.approx(3.0)
    assert cost.retrieval_cost(100 * GB, "STANDARD", "Bulk", PRICES) == 0.0
    # A tier a class does not offer is priced at its Standard tier.
    assert cost.retrieval_cost(100 * GB, "DEEP_ARCHIVE", "Expedited", PRICES) == pytest.approx(2.0)


def test_growth_rate_is_bytes_per_day_over_the_span_they_cover_at_least_one_period() -> None:
    daily = [Holding(TODAY - timedelta(days=d), "STANDARD", 100) for d in range(60)]
    assert cost.growth_rate(daily, NOW, timedelta(days=30), timedelta(days=1)) == pytest.approx(100.0)
    # One fresh monthly export: its bytes spread over the month, not over one day.
    fresh = [Holding(TODAY, "DEEP_ARCHIVE", 3000)]
    assert cost.growth_rate(fresh, NOW, timedelta(days=30), timedelta(days=30)) == pytest.approx(100.0)
    assert cost.growth_rate([], NOW, timedelta(days=30), timedelta(days=1)) == 0.0


def test_forecast_plateaus_under_retention_and_grows_without_it() -> None:
    week = [Holding(TODAY - timedelta(days=d), "STANDARD", GB) for d in range(7)]
    kept_a_week = cost.forecast(week, Growth(GB, "STANDARD", retention_days=7), NOW, 3, PRICES)
    # Eight days of 1 GB (ages 0..7) are held at each month's end: a plateau.
    assert kept_a_week == pytest.approx([8 * 0.023] * 3)
    forever = cost.forecast(week, Growth(GB, "GLACIER"), NOW, 3, PRICES)
    # Existing 7 GB STANDARD plus 30 GB of GLACIER a month.
    assert forever == pytest.approx([7 * 0.023 + m * 30 * 0.0036 for m in (1, 2, 3)])


def test_forecast_applies_the_lifecycle_to_old_and_new_bytes() -> None:
    old = [Holding(date(2027, 1, 1), "STANDARD", 10 * GB)]  # 73 days old on TODAY
    (month1,) = cost.forecast(old, Growth(0, "STANDARD", transitions=EMR_LIFECYCLE), NOW, 1, PRICES)
    assert month1 == pytest.approx(10 * 0.004)  # GLACIER_IR, not yet DEEP_ARCHIVE (103 days)
    months = cost.forecast(old, Growth(0, "STANDARD", transitions=EMR_LIFECYCLE), NOW, 4, PRICES)
    assert months[-1] == pytest.approx(10 * 0.00099)  # 193 days: DEEP_ARCHIVE
