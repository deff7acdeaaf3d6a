"""Breach state between monitor runs, kept in the status JSON in S3.

It survives between 15-minute runs, so a breach sends one ``[RPO BREACH]`` email when it starts
and one ``[RPO RECOVERED]`` email when it clears, never one every run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from backup_pipelines.core.config import Encryption
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.monitor.rpo import Age

log = logging.getLogger(__name__)

STATUS_SCHEMA_VERSION = 1


class DatasetState(BaseModel):
    """Breach state of one dataset, carried from one monitor run to the next."""

    model_config = ConfigDict(extra="ignore")

    breached: bool = False
    breached_since: datetime | None = None
    breach_notified_at: datetime | None = None
    recovered_at: datetime | None = None


class Status(BaseModel):
    """The status JSON the monitor writes: ages for dashboards, breach state for the next run."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = STATUS_SCHEMA_VERSION
    generated_at: datetime | None = None
    run_id: str | None = None
    datasets: list[dict[str, Any]] = []
    state: dict[str, DatasetState] = {}


@dataclass(frozen=True)
class Transition:
    """A change worth one email: a dataset started breaching its RPO, or stopped."""

    kind: Literal["breach", "recovered"]
    age: Age
    breached_since: datetime | None


def transitions(previous: dict[str, DatasetState], ages: Sequence[Age]) -> list[Transition]:
    """Compare this run's ages with the stored state; only edges produce a transition."""
    changes = []
    for age in ages:
        before = previous.get(age.target.key, DatasetState())
        if not age.fresh and not before.breached:
            changes.append(Transition("breach", age, age.measured_at))
        elif age.fresh and before.breached:
            changes.append(Transition("recovered", age, before.breached_since))
    return changes


def apply(previous: dict[str, DatasetState], change: Transition) -> dict[str, DatasetState]:
    """The state after one transition's email has been sent."""
    state = dict(previous)
    key = change.age.target.key
    if change.kind == "breach":
        state[key] = DatasetState(
            breached=True, breached_since=change.breached_since, breach_notified_at=change.age.measured_at
        )
    else:
        state[key] = DatasetState(breached=False, recovered_at=change.age.measured_at)
    return state


def build_status(
    ages: Sequence[Age], state: dict[str, DatasetState], *, run_id: str | None, now: datetime
) -> Status:
    keys = {age.target.key for age in ages}
    # Datasets removed from the config drop out of the state: a later re-add starts clean.
    kept = {key: value for key, value in state.items() if key in keys}
    return Status(generated_at=now, run_id=run_id, datasets=[a.as_status() for a in ages], state=kept)


@dataclass(frozen=True)
class StatusCopy:
    """Where one copy of the status JSON lives: the primary's backup bucket, or the DR region's."""

    region: str
    hook: BackupS3Hook
    bucket: str
    encryption: Encryption


def read_newest(copies: Sequence[StatusCopy], *, key: str) -> Status:
    """The newest status among the copies a region can serve; a region that cannot be reached is
    logged and skipped (a regional outage must not stop the monitor), all unreachable raises."""
    found: list[Status] = []
    errors: list[Exception] = []
    for copy in copies:
        try:
            found.append(read_status(copy.hook, bucket=copy.bucket, key=key))
        except Exception as exc:
            log.error(
                "RPO: status in the %s region (s3://%s/%s) unreadable: %s", copy.region, copy.bucket, key, exc
            )
            errors.append(exc)
    if not found:
        raise errors[-1]
    return max(found, key=lambda st: st.generated_at.timestamp() if st.generated_at else 0.0)


def write_copies(copies: Sequence[StatusCopy], status: Status, *, key: str) -> list[str]:
    """Write the status to every region that can take it; the regions written (raises if none)."""
    written, errors = [], []
    for copy in copies:
        try:
            write_status(copy.hook, status, bucket=copy.bucket, key=key, encryption=copy.encryption)
            written.append(copy.region)
        except Exception as exc:
            log.error(
                "RPO: status not written to the %s region (s3://%s/%s): %s",
                copy.region,
                copy.bucket,
                key,
                exc,
            )
            errors.append(exc)
    if not written:
        raise errors[-1]
    return written


def read_status(hook: BackupS3Hook, *, bucket: str, key: str) -> Status:
    """The previous status; missing means "nothing breached yet", corrupt is logged and reset."""
    found = hook.get_bytes(bucket, key)
    if found is None:
        log.info("RPO: no previous status at s3://%s/%s; starting with no breaches", bucket, key)
        return Status()
    raw = found[0]
    try:
        return Status.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        log.warning("RPO: status s3://%s/%s is unreadable (%s); starting with no breaches", bucket, key, exc)
        return Status()


def write_status(
    hook: BackupS3Hook, status: Status, *, bucket: str, key: str, encryption: Encryption
) -> None:
    hook.put_encrypted(
        bucket,
        key,
        status.model_dump_json(indent=2).encode(),
        encryption=encryption,
        content_type="application/json",
    )
    log.info("RPO: wrote status of %d dataset(s) to s3://%s/%s", len(status.datasets), bucket, key)
