"""The drill's form: each bad value refused with one line before anything runs."""

from __future__ import annotations

import pytest

from backup_pipelines.core.errors import ParamError
from backup_pipelines.drill.params import DrillParams


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pick": "newest"}, "param pick: Input should be 'latest' or 'random' (got 'newest')"),
        ({"seed": -1}, "param seed: Input should be greater than or equal to 0 (got -1)"),
        ({"seed": "abc"}, "param seed: Input should be a valid integer"),
    ],
)
def test_each_bad_param_is_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ParamError) as err:
        DrillParams.parse(values)
    assert str(err.value).startswith(message)


def test_the_defaults_and_a_seed() -> None:
    assert DrillParams.parse({}).pick is None
    assert DrillParams.parse({"pick": "random", "seed": 7}).seed == 7
