"""The params of the ``dr_drill`` form, read into a typed model before any side effect."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backup_pipelines.core.params import RunParams
from backup_pipelines.drill.results import PickMode


class DrillParams(RunParams):
    """The ``dr_drill`` form."""

    pick: PickMode | None = None
    seed: int | None = Field(default=None, ge=0)
    # Which region the drill restores from (storage.replica for "dr"): dr proves the DR region alone.
    source: Literal["primary", "dr"] = "primary"
