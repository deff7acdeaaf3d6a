"""The drill's checks on what it restored, and how their outcome is recorded in the catalog.

A check that ran and found bad data is ``failed`` and marks the point ``failed`` in its manifest
(so it is no longer picked, used as a base, or counted for RPO); when every check passes the
point is marked ``verified``. A check that could not run is an ``error`` and changes nothing.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

from backup_pipelines.core import clock
from backup_pipelines.core.catalog import Catalog
from backup_pipelines.core.config import BackupConfig
from backup_pipelines.core.manifest import Manifest, ObjectEntry
from backup_pipelines.drill.plan import DatasetPlan, DrillPlan
from backup_pipelines.drill.results import (
    CHECK_OFFSETS,
    CHECK_PICK,
    CHECK_SHA256,
    CheckResult,
    DatasetResult,
)

log = logging.getLogger(__name__)


def objectives(cfg: BackupConfig, kind: str, dataset: str) -> tuple[float, float]:
    """(RTO, RPO) objectives of a configured dataset, in seconds."""
    for k, name, goals in cfg.datasets():
        if (k, name) == (kind, dataset):
            return goals.rto.total_seconds(), goals.rpo.total_seconds()
    raise KeyError(f"{kind} dataset {dataset!r} is not in the config")


class Recorder:
    """Starts a dataset's result and records its outcome: verification state, then RPO."""

    def __init__(self, cfg: BackupConfig, catalog: Catalog, plan: DrillPlan) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.plan = plan

    def start(self, entry: DatasetPlan) -> DatasetResult:
        rto, rpo = objectives(self.cfg, entry.kind, entry.dataset)
        return DatasetResult(
            kind=entry.kind,
            dataset=entry.dataset,
            recovery_point_id=entry.recovery_point_id,
            pick=self.plan.pick,
            candidates=entry.candidates,
            rto_objective_seconds=rto,
            rpo_objective_seconds=rpo,
        )

    def pick_failed(self, result: DatasetResult, entry: DatasetPlan) -> DatasetResult:
        result.checks.append(
            CheckResult(name=CHECK_PICK, status="failed", object=result.key, detail=entry.why)
        )
        return self.finish(None, result)

    def finish(self, manifest: Manifest | None, result: DatasetResult) -> DatasetResult:
        """Record the verification state (passed checks make the point "verified"), then RPO."""
        data_checks = [c for c in result.checks if c.name != CHECK_PICK]
        if manifest is not None and data_checks:
            note = f"dr_drill {self.plan.run_id}"
            failed = [c for c in data_checks if c.status == "failed"]
            errored = [c for c in data_checks if c.status == "error"]
            if failed:
                self.fail_members(manifest, failed)
                self.catalog.mark_verification(
                    manifest,
                    state="failed",
                    checks=[c.name for c in data_checks],
                    detail=f"{note}: " + "; ".join(c.describe() for c in failed),
                )
            elif not errored:
                self.catalog.mark_verification(
                    manifest, state="verified", checks=[c.name for c in data_checks], detail=note
                )
                self.verify_members(manifest, note)
        self.measure_rpo(result)
        log.info("%s: %s", result.key, "PASS" if result.passed else "FAIL: " + "; ".join(result.failures()))
        return result

    def verify_members(self, manifest: Manifest, note: str) -> None:
        """A chain restored and checked whole proves its members: those not verified yet (their own
        verify never ran, e.g. points written by hand) are marked verified by this drill."""
        if not manifest.base:
            return
        listing = self.catalog.list_points(manifest.kind, manifest.dataset)
        for member in self.catalog.chain(manifest, listing=listing)[:-1]:
            if member.verification.state == "unverified":
                self.catalog.mark_verification(
                    member,
                    state="verified",
                    checks=["chain_restored"],
                    detail=f"{note}: restored as a member of the chain of {manifest.recovery_point_id}",
                )

    def fail_members(self, manifest: Manifest, failed: list[CheckResult]) -> list[str]:
        """Fail the chain members that hold what a failed check found missing or corrupt (each
        with every point built on it, ``Catalog.mark_verification``), not only the drilled point."""
        members: dict[str, list[CheckResult]] = {}
        for check in failed:
            if check.recovery_point_id and check.recovery_point_id != manifest.recovery_point_id:
                members.setdefault(check.recovery_point_id, []).append(check)
        for member_id, checks in members.items():
            member = self.catalog.get(manifest.kind, manifest.dataset, member_id)
            if member is None or member.verification.state == "failed":
                continue
            detail = f"dr_drill {self.plan.run_id}: " + "; ".join(c.describe() for c in checks[:5])
            self.catalog.mark_verification(
                member, state="failed", checks=sorted({c.name for c in checks}), detail=detail
            )
            log.warning("%s: chain member %s failed: %s", manifest.label, member_id, detail)
        return list(members)

    def measure_rpo(self, result: DatasetResult) -> None:
        """The age of the dataset's newest verified point, now; a failure to read it is only logged."""
        try:
            newest = self.catalog.latest_verified(result.kind, result.dataset)
        except Exception as exc:  # S3 may be the very thing that is down
            log.warning("could not measure RPO of %s: %s", result.key, exc)
            return
        if newest is not None:
            result.rpo_seconds = (clock.utcnow() - newest.captured_at).total_seconds()


def sha256_check(url: str, obj: ObjectEntry, actual: str) -> CheckResult:
    if not obj.sha256:
        return CheckResult(
            name=CHECK_SHA256, status="failed", object=url, detail="the manifest records no SHA-256"
        )
    if actual != obj.sha256.lower():
        return CheckResult(
            name=CHECK_SHA256,
            status="failed",
            object=url,
            detail=f"SHA-256 of the restored bytes is {actual}, the manifest records {obj.sha256}",
        )
    return CheckResult(name=CHECK_SHA256, status="passed", object=url)


def offsets_check(
    url: str, obj: ObjectEntry, path: Path, read_offsets: Any, without_record: int = 0
) -> CheckResult:
    """Offsets inside the file increase, skip no more offsets than the manifest records as holding
    no record in the file's partition (``without_record``: transaction markers, aborted or
    compacted records), and match the index the manifest records for the file."""
    try:
        offsets = read_offsets(path)
    except Exception as exc:
        return CheckResult(
            name=CHECK_OFFSETS,
            status="failed",
            object=url,
            detail=f"the file cannot be read as an archive: {exc}",
        )
    problems = []
    backwards = [(a, b) for a, b in itertools.pairwise(offsets) if b <= a]
    if backwards:
        problems.append(f"offsets go back from {backwards[0][0]} to {backwards[0][1]}")
    jumps = [(a, b) for a, b in itertools.pairwise(offsets) if b > a + 1]
    skipped = sum(b - a - 1 for a, b in jumps)
    if skipped > without_record:
        problems.append(
            f"offsets jump from {jumps[0][0]} to {jumps[0][1]} ({len(jumps)} gap(s), {skipped} offset(s) "
            f"skipped; the manifest records {without_record} without a record)"
        )
    first, last = (offsets[0], offsets[-1]) if offsets else (None, None)
    if obj.first_offset is not None and first != obj.first_offset:
        problems.append(f"first offset {first}, index says {obj.first_offset}")
    if obj.last_offset is not None and last != obj.last_offset:
        problems.append(f"last offset {last}, index says {obj.last_offset}")
    if obj.records is not None and len(offsets) != obj.records:
        problems.append(f"{len(offsets)} records, index says {obj.records}")
    if problems:
        return CheckResult(name=CHECK_OFFSETS, status="failed", object=url, detail="; ".join(problems))
    return CheckResult(name=CHECK_OFFSETS, status="passed", object=url, detail=f"{first}..{last}")
