"""Operators of the ``dr_drill`` DAG: pick points, restore and check them, Tier 1 lags, clean up, report.

Checks that find bad data do not raise: they are recorded in the dataset's result so the report
can name the object and the check; the ``report`` task writes the report first and then fails
the run. Infrastructure errors (a broker down, S3 unreachable) raise and are retried as usual.
"""

from __future__ import annotations

import itertools
import logging
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, PokeReturnValue

from backup_pipelines.core.config import load_config
from backup_pipelines.drill.report import (
    CHECK_CHAIN,
    CHECK_CHECK_TABLE,
    CHECK_CLEANUP,
    CHECK_OFFSETS,
    CHECK_PICK,
    CHECK_REPLAY,
    CHECK_REPLICA_LAG,
    CHECK_REPLICATION_LAG,
    CHECK_RESTORE,
    CHECK_ROW_COUNT,
    CHECK_SHA256,
    CHECK_TASK,
    CHECK_THAW,
    CheckResult,
    CheckStatus,
    DatasetResult,
    DrillReport,
    Freshness,
    PickMode,
    drill_id_for,
    pick_recovery_point,
    render_html,
    render_markdown,
    render_text_table,
    report_prefix,
    sample,
    seed_for,
)
from backup_pipelines.monitor.sensors import RecoveryPointFreshnessSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from backup_pipelines.core.catalog import Catalog, Manifest, ObjectEntry
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.drill.probes import DrillHook

log = logging.getLogger(__name__)
SCRATCH_PREFIX = "drill_"
DRILL_GROUP_ID = "backup-pipelines-dr-drill"
# XCom key of a dataset result whose checks could not run (the task raised; the report reads it).
ERROR_XCOM_KEY = "drill_result"
FRESHNESS_XCOM_KEY = "freshness"


def scratch_database(drill_id: str, dataset: str) -> str:
    """``drill_<run>_<dataset>``: where a ClickHouse chain is restored (``RESTORE ... AS``)."""
    return f"{SCRATCH_PREFIX}{drill_id}_{dataset}"


def scratch_topic(drill_id: str, topic: str) -> str:
    return f"{SCRATCH_PREFIX}{drill_id}_{topic}"


def _run_id(context: Context) -> str:
    return str(context["dag_run"].run_id)


def _objectives(cfg: BackupConfig, kind: str, dataset: str) -> tuple[float, float]:
    for k, name, objectives in cfg.datasets():
        if (k, name) == (kind, dataset):
            return objectives.rto.total_seconds(), objectives.rpo.total_seconds()
    raise KeyError(f"{kind} dataset {dataset!r} is not in the config")


def object_location(manifest: Manifest, entry: ObjectEntry) -> tuple[str, str]:
    """(bucket, key) of a manifest object; keys are full keys or relative to ``location``."""
    from backup_pipelines.core.catalog import split_s3_url

    bucket, prefix = split_s3_url(manifest.location)
    if entry.key.startswith("s3://"):
        return split_s3_url(entry.key)
    if not prefix or entry.key.startswith(prefix):
        return bucket, entry.key
    return bucket, prefix.rstrip("/") + "/" + entry.key


class DrillFreshnessSensor(RecoveryPointFreshnessSensor):
    """First task: the RPO the drill starts from, recorded for the report; it never blocks the drill.

    ``RecoveryPointFreshnessSensor`` poking in the worker (not deferred) for
    ``dr_drill.freshness_timeout`` (default 0: one check), then skipped (``soft_fail``) when a
    dataset is stale. Each poke's finding goes to XCom ``freshness``. Stale data is exactly what
    a drill must still test, so ``plan`` runs whatever this task ends as.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", False)
        kwargs.setdefault("soft_fail", True)
        kwargs.setdefault("mode", "poke")
        super().__init__(**kwargs)

    def poke(self, context: Context) -> PokeReturnValue:
        result = self._check(context)
        context["ti"].xcom_push(key=FRESHNESS_XCOM_KEY, value=result)
        return PokeReturnValue(is_done=bool(result["ok"]), xcom_value=result)


class DrillPlanOperator(BaseOperator):
    """Pick the recovery point each dataset's drill tests, and the archive objects it samples."""

    template_fields: Sequence[str] = ("pick", "seed")

    def __init__(self, *, pick: str | None = None, seed: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pick = pick
        self.seed = seed

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core import catalog as catalog_module
        from backup_pipelines.core.errors import ConfigError

        cfg = load_config()
        pick: PickMode
        if self.pick in (None, "", "None"):
            pick = cfg.dr_drill.pick
        elif self.pick in {"latest", "random"}:
            pick = "latest" if self.pick == "latest" else "random"
        else:
            raise ConfigError(f"param pick: {self.pick!r} is not allowed; expected 'latest' or 'random'")
        raw_seed = None if self.seed in (None, "", "None") else self.seed
        try:
            explicit = None if raw_seed is None else int(raw_seed)
        except ValueError:
            raise ConfigError(f"param seed: {raw_seed!r} is not an integer") from None
        run_id = _run_id(context)
        seed = seed_for(run_id, explicit)
        rng = random.Random(seed)
        catalog = catalog_module.Catalog.from_config(cfg)
        now = catalog_module.utcnow()
        datasets: dict[str, dict[str, Any]] = {}
        for kind, name, _ in cfg.datasets():
            listing = catalog.list_points(kind, name)
            point, candidates, why = pick_recovery_point(
                listing.points, mode=pick, window=cfg.dr_drill.random_window, now=now, rng=rng
            )
            keys = [o.key for o in point.objects] if point and kind != "clickhouse_snapshot" else []
            datasets[f"{kind}/{name}"] = {
                "kind": kind,
                "dataset": name,
                "recovery_point_id": point.recovery_point_id if point else None,
                "candidates": candidates,
                "why": why,
                "sample": sample(keys, cfg.dr_drill.sample_objects, rng),
            }
            self.log.info(
                "%s/%s: %s (%s)", kind, name, point.recovery_point_id if point else "nothing to drill", why
            )
        run_after = context["dag_run"].run_after or now
        return {
            "run_id": run_id,
            "drill_id": drill_id_for(run_id),
            "pick": pick,
            "seed": seed,
            "window_seconds": cfg.dr_drill.random_window.total_seconds(),
            "started_at": now.isoformat(),
            "report_date": run_after.date().isoformat(),
            "datasets": datasets,
        }


class _DatasetDrillOperator(BaseOperator):
    """Common part: read the planned point, finish with verification state, RPO and a result."""

    template_fields: Sequence[str] = ("plan",)

    def __init__(self, *, kind: str, dataset: str, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.dataset = dataset
        self.plan = plan

    def _entry(self) -> dict[str, Any]:
        return dict(self.plan["datasets"][f"{self.kind}/{self.dataset}"])

    def _result(self, cfg: BackupConfig, entry: dict[str, Any]) -> DatasetResult:
        rto, rpo = _objectives(cfg, self.kind, self.dataset)
        return DatasetResult(
            kind=self.kind,
            dataset=self.dataset,
            recovery_point_id=entry["recovery_point_id"],
            pick=self.plan["pick"],
            candidates=entry["candidates"],
            rto_objective_seconds=rto,
            rpo_objective_seconds=rpo,
        )

    def _finish(self, catalog: Catalog, manifest: Manifest | None, result: DatasetResult) -> dict[str, Any]:
        """Record the verification state (passed checks make the point "verified"), then RPO."""
        from backup_pipelines.core.catalog import utcnow

        data_checks = [c for c in result.checks if c.name != CHECK_PICK]
        if manifest is not None and data_checks:
            note = f"dr_drill {self.plan['run_id']}"
            failed = [c for c in data_checks if c.status == "failed"]
            errored = [c for c in data_checks if c.status == "error"]
            if failed:
                catalog.mark_verification(
                    manifest,
                    state="failed",
                    checks=[c.name for c in data_checks],
                    detail=f"{note}: " + "; ".join(c.describe() for c in failed),
                )
            elif not errored:
                catalog.mark_verification(
                    manifest, state="verified", checks=[c.name for c in data_checks], detail=note
                )
        newest = catalog.latest_verified(self.kind, self.dataset)
        if newest is not None:
            result.rpo_seconds = (utcnow() - newest.captured_at).total_seconds()
        self.log.info(
            "%s: %s", result.key, "PASS" if result.passed else "FAIL: " + "; ".join(result.failures())
        )
        return result.model_dump(mode="json")

    def _pick_failed(self, catalog: Catalog, result: DatasetResult, entry: dict[str, Any]) -> dict[str, Any]:
        result.checks.append(
            CheckResult(name=CHECK_PICK, status="failed", object=result.key, detail=entry["why"])
        )
        return self._finish(catalog, None, result)


class ClickHouseDrillOperator(_DatasetDrillOperator):
    """Restore the chain into ``drill_<run>_<dataset>``, compare row counts, ``CHECK TABLE``; time it.

    Two kinds of bad outcome are kept apart. A check that ran and found bad data (a chain member
    whose manifest or objects are gone, a RESTORE that fails on a missing or damaged file, wrong
    row counts, ``CHECK TABLE``) is recorded as ``failed`` and marks the point failed. When the
    check could not run (ClickHouse or S3 unreachable, the restore timed out) the point is left as
    it was: the finding goes to XCom ``drill_result`` for the report and the task raises
    ``DrillInfrastructureError``, which Airflow retries.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.catalog import Catalog
        from backup_pipelines.core.errors import BrokenChainError, DrillInfrastructureError
        from backup_pipelines.drill.probes import DrillHook

        cfg = load_config()
        entry = self._entry()
        catalog = Catalog.from_config(cfg)
        result = self._result(cfg, entry)
        if entry["recovery_point_id"] is None:
            return self._pick_failed(catalog, result, entry)
        listing = catalog.list_points(self.kind, self.dataset)
        manifest = catalog.read(self.kind, self.dataset, entry["recovery_point_id"])
        result.captured_at = manifest.captured_at
        point_name = f"{self.kind}/{self.dataset}/{manifest.recovery_point_id}"
        try:
            chain = catalog.chain(manifest, listing=listing)
        except BrokenChainError as exc:
            result.checks.append(
                CheckResult(name=CHECK_CHAIN, status="failed", object=point_name, detail=str(exc))
            )
            return self._finish(catalog, manifest, result)
        drill = DrillHook(clickhouse_conn_id=cfg.connections.clickhouse, aws_conn_id=cfg.connections.aws)
        database = scratch_database(self.plan["drill_id"], self.dataset)
        try:
            result.checks += self._chain_checks(drill, chain, point_name)
            if all(c.ok for c in result.checks):
                result.checks += self._restore_and_check(cfg, drill, chain, database, result)
        except DrillInfrastructureError as exc:
            result.checks.append(
                CheckResult(
                    name=CHECK_RESTORE,
                    status="error",
                    object=point_name,
                    detail=f"check could not run: {exc}",
                )
            )
            self._push_error(context, catalog, result)
            raise
        finally:
            drill.drop_database_quietly(database)
        return self._finish(catalog, manifest, result)

    def _chain_checks(self, drill: DrillHook, chain: list[Manifest], point_name: str) -> list[CheckResult]:
        """Every object every chain member's manifest records is still in S3, with its size."""
        from backup_pipelines.core.errors import DrillInfrastructureError

        try:
            missing = drill.missing_objects(chain)
        except Exception as exc:  # listing failed: S3 unreachable or denied, not a finding about the data
            raise DrillInfrastructureError(f"could not list the chain's objects: {exc}") from exc
        if missing:
            shown = [
                CheckResult(
                    name=CHECK_CHAIN,
                    status="failed",
                    object=m.url,
                    detail=f"chain member {m.recovery_point_id} of {point_name}: {m.problem}",
                )
                for m in missing[:20]
            ]
            if len(missing) > 20:
                shown[-1].detail += f" (and {len(missing) - 20} more)"
            return shown
        return [
            CheckResult(
                name=CHECK_CHAIN,
                status="passed",
                object=point_name,
                detail=" <- ".join(p.recovery_point_id for p in chain)
                + f": {sum(len(p.objects) for p in chain)} object(s) present",
            )
        ]

    def _restore_and_check(
        self, cfg: BackupConfig, drill: DrillHook, chain: list[Manifest], database: str, result: DatasetResult
    ) -> list[CheckResult]:
        from backup_pipelines.clickhouse.engine import ClickHouseBackupHook
        from backup_pipelines.core.errors import (
            BackupFailedError,
            BrokenChainError,
            DrillInfrastructureError,
            SourceNotFoundError,
            UnsafeOperationError,
            VerificationError,
        )
        from backup_pipelines.drill.probes import classify_engine_failure, engine_message

        snapshots = cfg.clickhouse_snapshots
        hook = ClickHouseBackupHook(
            clickhouse_conn_id=cfg.connections.clickhouse,
            aws_conn_id=cfg.connections.aws,
            credentials=snapshots.s3_credentials,
            on_cluster=snapshots.on_cluster,
        )
        point = chain[-1]
        timeout = cfg.dr_drill.clickhouse_restore_timeout.total_seconds()
        started = time.monotonic()
        try:
            restored = hook.restore_chain(
                chain,
                target_database=database,
                poll_interval=min(snapshots.poll_interval.total_seconds(), 1.0),
                timeout=timeout,
            )
        except (BrokenChainError, VerificationError, SourceNotFoundError) as exc:
            return [CheckResult(name=CHECK_RESTORE, status="failed", object=point.location, detail=str(exc))]
        except (
            UnsafeOperationError
        ) as exc:  # the scratch database is taken: the drill's problem, not the data's
            raise DrillInfrastructureError(str(exc)) from exc
        except BackupFailedError as exc:
            message = engine_message(exc)
            kind = classify_engine_failure(message)
            probe = None if kind == "data" else drill.storage_problem(chain) or drill.clickhouse_problem()
            if kind == "infrastructure" or probe:
                if "still RESTORING" in message:
                    result.rto_seconds = time.monotonic() - started
                raise DrillInfrastructureError(
                    f"RESTORE of {point.recovery_point_id}: {message}" + (f"; {probe}" if probe else "")
                ) from exc
            # Every object is there, S3 and ClickHouse answer, and the engine still cannot restore it.
            return [
                CheckResult(
                    name=CHECK_RESTORE,
                    status="failed",
                    object=point.location,
                    detail=f"RESTORE failed: {message}",
                )
            ]
        except Exception as exc:  # the client could not talk to ClickHouse or S3
            raise DrillInfrastructureError(
                f"RESTORE of {point.recovery_point_id}: {engine_message(exc)}"
            ) from exc
        result.rto_seconds = restored.duration_s
        result.bytes_restored = sum(m.size_bytes for m in chain)
        checks = [
            CheckResult(
                name=CHECK_RESTORE,
                status="passed",
                object=database,
                detail=f"chain {' <- '.join(restored.chain)} restored in {restored.duration_s:.1f}s",
            )
        ]
        for table, expected in sorted(restored.expected_rows.items()):
            got = restored.rows.get(table, -1)
            checks.append(
                CheckResult(
                    name=CHECK_ROW_COUNT,
                    status="passed" if got == expected else "failed",
                    object=f"{database}.{table}",
                    detail=f"{got} row(s) restored, manifest {point.recovery_point_id} says {expected}",
                )
            )
        for table, ok in sorted(restored.check_table.items()):
            checks.append(
                CheckResult(
                    name=CHECK_CHECK_TABLE,
                    status="passed" if ok else "failed",
                    object=f"{database}.{table}",
                    detail="CHECK TABLE ok" if ok else "CHECK TABLE reported a problem",
                )
            )
        return checks

    def _push_error(self, context: Context, catalog: Catalog, result: DatasetResult) -> None:
        """Leave the finding for the report (the point's verification state is not touched)."""
        try:
            newest = catalog.latest_verified(self.kind, self.dataset)
            if newest is not None:
                from backup_pipelines.core.catalog import utcnow

                result.rpo_seconds = (utcnow() - newest.captured_at).total_seconds()
        except Exception as exc:  # S3 may be the very thing that is down
            self.log.warning("could not measure RPO: %s", exc)
        self.log.error("%s: ERROR: %s", result.key, "; ".join(result.failures()))
        context["ti"].xcom_push(key=ERROR_XCOM_KEY, value=result.model_dump(mode="json"))


class ArchiveDrillOperator(_DatasetDrillOperator):
    """Archives (EMR outputs, Kafka archives, exports): thaw a sample, check SHA-256 and offsets.

    Cold objects (GLACIER / DEEP_ARCHIVE) get a RestoreObject with the configured tier and the
    task defers on ``S3RestoreTrigger`` until they are readable: a Bulk restore takes hours.
    """

    def execute(self, context: Context) -> dict[str, Any] | None:
        from backup_pipelines.core.catalog import Catalog
        from backup_pipelines.core.s3 import S3ArchiveHook

        cfg = load_config()
        entry = self._entry()
        catalog = Catalog.from_config(cfg)
        started = time.time()
        if entry["recovery_point_id"] is None:
            return self._pick_failed(catalog, self._result(cfg, entry), entry)
        manifest = catalog.read(self.kind, self.dataset, entry["recovery_point_id"])
        entries = {o.key: o for o in manifest.objects}
        hook = S3ArchiveHook(aws_conn_id=cfg.connections.aws)
        pending: dict[str, list[str]] = {}
        for key in entry["sample"]:
            bucket, full_key = object_location(manifest, entries[key])
            status = hook.request_restore(
                bucket, full_key, days=cfg.dr_drill.restore_days, tier=cfg.dr_drill.restore_tier
            )
            if not status.readable:
                pending.setdefault(bucket, []).append(full_key)
        if pending:
            from backup_pipelines.core.s3_restore import S3RestoreTrigger

            bucket, keys = next(iter(pending.items()))
            self.log.info(
                "waiting for %d restore(s) in s3://%s (tier %s)", len(keys), bucket, cfg.dr_drill.restore_tier
            )
            self.defer(
                trigger=S3RestoreTrigger(
                    bucket=bucket,
                    keys=keys,
                    aws_conn_id=cfg.connections.aws,
                    poll_interval=cfg.dr_drill.restore_poll_interval.total_seconds(),
                    request_days=cfg.dr_drill.restore_days,
                    request_tier=cfg.dr_drill.restore_tier,
                ),
                method_name="resume",
                kwargs={"started": started},
                timeout=cfg.dr_drill.restore_timeout,
            )
        return self._verify(
            context,
            cfg=cfg,
            catalog=catalog,
            manifest=manifest,
            entry=entry,
            started=started,
            thaw_error=None,
        )

    def resume(
        self, context: Context, event: dict[str, Any] | None = None, started: float | None = None
    ) -> dict[str, Any] | None:
        """Back from the trigger: wait for the next bucket's restores, or verify."""
        from backup_pipelines.core.catalog import Catalog

        cfg = load_config()
        entry = self._entry()
        catalog = Catalog.from_config(cfg)
        manifest = catalog.read(self.kind, self.dataset, entry["recovery_point_id"])
        error = None if event and event.get("status") == "success" else str((event or {}).get("message"))
        return self._verify(
            context,
            cfg=cfg,
            catalog=catalog,
            manifest=manifest,
            entry=entry,
            started=started or time.time(),
            thaw_error=error,
        )

    def _verify(
        self,
        context: Context,
        *,
        cfg: BackupConfig,
        catalog: Catalog,
        manifest: Manifest,
        entry: dict[str, Any],
        started: float,
        thaw_error: str | None,
    ) -> dict[str, Any]:
        from backup_pipelines.core.errors import DrillInfrastructureError
        from backup_pipelines.core.s3 import S3ArchiveHook
        from backup_pipelines.drill.probes import download_failure
        from backup_pipelines.kafka.parquet import file_sha256, read_offsets

        result = self._result(cfg, entry)
        result.captured_at = manifest.captured_at
        hook = S3ArchiveHook(aws_conn_id=cfg.connections.aws)
        entries = {o.key: o for o in manifest.objects}
        with tempfile.TemporaryDirectory(prefix="dr-drill-") as tmp:
            for n, key in enumerate(entry["sample"]):
                obj = entries[key]
                bucket, full_key = object_location(manifest, obj)
                url = f"s3://{bucket}/{full_key}"
                local = Path(tmp) / f"{n}.bin"
                try:
                    hook.client.download_file(bucket, full_key, str(local))
                except Exception as exc:  # gone is a finding; S3 trouble or a stuck thaw is not
                    kind, detail = download_failure(exc, thaw_error)
                    status: CheckStatus = "failed" if kind == "data" else "error"
                    result.checks.append(
                        CheckResult(name=CHECK_THAW, status=status, object=url, detail=detail)
                    )
                    continue
                result.checks.append(CheckResult(name=CHECK_THAW, status="passed", object=url))
                result.bytes_restored += local.stat().st_size
                result.checks.append(_sha256_check(url, obj, file_sha256(local)))
                if self.kind == "kafka_archive":
                    no_record = manifest.details.get("offsets_without_record", {}).get(str(obj.partition), {})
                    offsets = _offsets_check(url, obj, local, read_offsets, int(no_record.get("offsets", 0)))
                    result.checks.append(offsets)
                    if n == 0 and offsets.ok and result.checks[-2].ok:
                        result.checks.append(self._replay_check(cfg, url, local))
                self.log.info("checked %d/%d: %s", n + 1, len(entry["sample"]), url)
        result.rto_seconds = time.time() - started
        errors = [c for c in result.checks if c.status == "error"]
        if errors and not any(c.status == "failed" for c in result.checks):
            # Nothing wrong was found, but not everything could be checked: leave the point as it
            # is, give the report the finding, and let Airflow retry.
            self.log.error("%s: %d object(s) could not be checked", result.key, len(errors))
            context["ti"].xcom_push(key=ERROR_XCOM_KEY, value=result.model_dump(mode="json"))
            raise DrillInfrastructureError(
                f"{result.key}: {len(errors)} sampled object(s) could not be read: {errors[0].describe()}"
            )
        return self._finish(catalog, manifest, result)

    def _replay_check(self, cfg: BackupConfig, url: str, path: Path) -> CheckResult:
        """Replay the start of an archive file into a scratch topic and compare record for record."""
        from backup_pipelines.kafka.archive import KafkaArchiveHook, compare_records

        topic = scratch_topic(self.plan["drill_id"], self.dataset)
        hook = KafkaArchiveHook(kafka_conn_id=cfg.connections.kafka, group_id=DRILL_GROUP_ID)
        limit = cfg.dr_drill.replay_sample_messages
        expected = list(hook.iter_file_slice(path, limit=limit))
        hook.ensure_topic(topic, partitions=1)
        hook.replay_records(expected, target_topic=topic, target_partitions=1)
        actual = hook.read_back(topic, 0, max_records=len(expected))
        problems = compare_records(expected, actual)
        detail = f"{len(expected)} record(s) replayed into {topic} and read back"
        if problems:
            return CheckResult(
                name=CHECK_REPLAY, status="failed", object=url, detail=f"{detail}: {'; '.join(problems[:5])}"
            )
        return CheckResult(name=CHECK_REPLAY, status="passed", object=url, detail=detail)


def _sha256_check(url: str, obj: ObjectEntry, actual: str) -> CheckResult:
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


def _offsets_check(
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


class Tier1CheckOperator(BaseOperator):
    """ClickHouse replica lag (``system.replicas``) and Kafka primary-to-DR replication lag."""

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from backup_pipelines.drill.probes import DrillHook

        cfg = load_config()
        drill = cfg.dr_drill
        hook = DrillHook(clickhouse_conn_id=cfg.connections.clickhouse, kafka_conn_id=cfg.connections.kafka)
        checks: list[CheckResult] = []
        if drill.clickhouse_max_replica_lag is not None:
            limit = drill.clickhouse_max_replica_lag.total_seconds()
            lags = hook.replica_lags()
            if not lags:
                checks.append(
                    CheckResult(
                        name=CHECK_REPLICA_LAG,
                        status="not_applicable",
                        detail="system.replicas lists no table",
                    )
                )
            for lag in lags:
                ok = lag.delay_seconds <= limit
                checks.append(
                    CheckResult(
                        name=CHECK_REPLICA_LAG,
                        status="passed" if ok else "failed",
                        object=f"{lag.database}.{lag.table}",
                        detail=f"absolute_delay {lag.delay_seconds:.0f}s, threshold {limit:.0f}s",
                    )
                )
        if drill.kafka_dr_connection and drill.kafka_max_replication_lag is not None:
            topics = [t.name for t in cfg.kafka_archive.topics]
            for part in hook.replication_lags(drill.kafka_dr_connection, topics):
                target = f"{part.topic}[{part.partition}]"
                if part.lag is None:
                    checks.append(
                        CheckResult(
                            name=CHECK_REPLICATION_LAG,
                            status="failed",
                            object=target,
                            detail=f"partition missing on the DR cluster ({drill.kafka_dr_connection})",
                        )
                    )
                    continue
                ok = part.lag <= drill.kafka_max_replication_lag
                checks.append(
                    CheckResult(
                        name=CHECK_REPLICATION_LAG,
                        status="passed" if ok else "failed",
                        object=target,
                        detail=f"lag {part.lag} message(s) (primary end {part.primary_end}, DR end "
                        f"{part.dr_end}), threshold {drill.kafka_max_replication_lag}",
                    )
                )
        for check in checks:
            self.log.info("%s", check.describe())
        return [c.model_dump(mode="json") for c in checks]


class DrillCleanupOperator(BaseOperator):
    """Teardown: drop this run's scratch databases and topics, whatever happened before."""

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from backup_pipelines.drill.probes import DrillHook

        cfg = load_config()
        prefix = SCRATCH_PREFIX + drill_id_for(_run_id(context))
        hook = DrillHook(clickhouse_conn_id=cfg.connections.clickhouse, kafka_conn_id=cfg.connections.kafka)
        checks: list[CheckResult] = []
        problems: list[str] = []
        for label, list_names, drop in (
            ("database", hook.scratch_databases, hook.drop_databases),
            ("topic", hook.topics, hook.delete_topics),
        ):
            try:
                names = list_names(prefix)
                drop(names)
                left = list_names(prefix)
            except Exception as exc:
                problems.append(f"scratch {label}s {prefix}*: {exc}")
                checks.append(
                    CheckResult(name=CHECK_CLEANUP, status="failed", object=f"{prefix}*", detail=str(exc))
                )
                continue
            status: CheckStatus = "failed" if left else "passed"
            detail = f"removed {len(names)} {label}(s)" + (
                f"; still present: {', '.join(left)}" if left else ""
            )
            checks.append(
                CheckResult(name=CHECK_CLEANUP, status=status, object=f"{label} {prefix}*", detail=detail)
            )
            self.log.info("clean-up: %s", detail)
        return [c.model_dump(mode="json") for c in checks]


class DrillReportOperator(BaseOperator):
    """Write the report (JSON, Markdown, HTML) to S3, email it, note the run; then fail on any failure."""

    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        plan_task_id: str,
        dataset_task_ids: Sequence[str],
        tier1_task_id: str,
        cleanup_task_id: str,
        freshness_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.dataset_task_ids = dataset_task_ids
        self.tier1_task_id = tier1_task_id
        self.cleanup_task_id = cleanup_task_id
        self.freshness_task_id = freshness_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from backup_pipelines.core.catalog import utcnow
        from backup_pipelines.core.errors import VerificationError

        cfg = load_config()
        ti = context["ti"]
        run_id = _run_id(context)
        plan = ti.xcom_pull(task_ids=self.plan_task_id) or {}
        now = utcnow()
        datasets = []
        for (kind, name, _), task_id in zip(cfg.datasets(), self.dataset_task_ids, strict=True):
            raw = ti.xcom_pull(task_ids=task_id) or ti.xcom_pull(task_ids=task_id, key=ERROR_XCOM_KEY)
            if raw:
                datasets.append(DatasetResult.model_validate(raw))
                continue
            rto, rpo = _objectives(cfg, kind, name)
            planned = (plan.get("datasets") or {}).get(f"{kind}/{name}", {})
            datasets.append(
                DatasetResult(
                    kind=kind,
                    dataset=name,
                    recovery_point_id=planned.get("recovery_point_id"),
                    pick=plan.get("pick", cfg.dr_drill.pick),
                    checks=[
                        CheckResult(
                            name=CHECK_TASK,
                            status="error",
                            object=task_id,
                            detail="the drill task ended without a result (failed or skipped); see its log",
                        )
                    ],
                    rto_objective_seconds=rto,
                    rpo_objective_seconds=rpo,
                )
            )
        tier1 = [CheckResult.model_validate(c) for c in ti.xcom_pull(task_ids=self.tier1_task_id) or []]
        if ti.xcom_pull(task_ids=self.tier1_task_id) is None:
            tier1.append(
                CheckResult(name=CHECK_TASK, status="error", object=self.tier1_task_id, detail="no result")
            )
        cleanup = [CheckResult.model_validate(c) for c in ti.xcom_pull(task_ids=self.cleanup_task_id) or []]
        if not cleanup:
            cleanup.append(
                CheckResult(
                    name=CHECK_CLEANUP, status="error", object=self.cleanup_task_id, detail="no result"
                )
            )
        freshness = None
        if self.freshness_task_id:
            found = ti.xcom_pull(task_ids=self.freshness_task_id, key=FRESHNESS_XCOM_KEY)
            freshness = (
                Freshness(ok=bool(found.get("ok")), detail=str(found.get("detail") or ""))
                if found
                else Freshness(ok=None, detail="the freshness check did not run or failed; see its log")
            )
            ages = (found or {}).get("ages") or {}
            for d in datasets:
                d.rpo_before_seconds = ages.get(d.key)
        run_after = context["dag_run"].run_after or now
        report = DrillReport(
            dag_id=self.dag_id,
            run_id=run_id,
            drill_id=plan.get("drill_id") or drill_id_for(run_id),
            report_date=plan.get("report_date") or run_after.date().isoformat(),
            started_at=datetime.fromisoformat(plan["started_at"]) if plan.get("started_at") else now,
            finished_at=now,
            pick=plan.get("pick", cfg.dr_drill.pick),
            seed=plan.get("seed", seed_for(run_id)),
            random_window_seconds=plan.get("window_seconds", cfg.dr_drill.random_window.total_seconds()),
            datasets=datasets,
            tier1=tier1,
            cleanup=cleanup,
            freshness_before=freshness,
        )
        location = self._publish(cfg, report)
        self.log.info("DR drill report %s\n%s", location, render_text_table(report))
        if not report.passed:
            failures = report.failures()
            raise VerificationError(
                f"DR drill failed ({len(failures)} problem(s); report {location}): " + "; ".join(failures)
            )
        return {"location": location, "passed": True}

    def _publish(self, cfg: BackupConfig, report: DrillReport) -> str:
        from backup_pipelines.drill.probes import DrillHook, set_run_note

        hook = DrillHook(aws_conn_id=cfg.connections.aws, smtp_conn_id=cfg.connections.smtp)
        bucket = cfg.storage.backup_bucket
        prefix = report_prefix(cfg.dr_drill.report_prefix, report.report_date)
        location = f"s3://{bucket}/{prefix}"
        report.location = location
        extra = cfg.storage.encryption.s3_extra_args()
        html = render_html(report)
        for name, body, content_type in (
            ("report.json", report.to_json(), "application/json"),
            ("report.md", render_markdown(report).encode(), "text/markdown; charset=utf-8"),
            ("report.html", html.encode(), "text/html; charset=utf-8"),
        ):
            hook.upload(bucket=bucket, key=prefix + name, body=body, content_type=content_type, extra=extra)
        verdict = "PASSED" if report.passed else "FAILED"
        subject = (
            f"[backup-pipelines] DR drill {report.report_date} {verdict}: {len(report.datasets)} dataset(s)"
        )
        hook.send_email(
            to=list(cfg.alerts.recipients),
            subject=subject,
            html=f"<p>Full report: <code>{location}report.html</code></p>" + html,
            from_email=cfg.alerts.from_email,
        )
        if cfg.dr_drill.airflow_api_connection:
            note = f"DR drill **{verdict}**: report {location}report.html ({location}report.json)"
            try:
                set_run_note(
                    api_conn_id=cfg.dr_drill.airflow_api_connection,
                    dag_id=report.dag_id,
                    run_id=report.run_id,
                    note=note,
                )
            except Exception as exc:  # the report is written and mailed; a missing note must not hide it
                self.log.warning("could not set the run note through the Airflow API: %s", exc)
        return location
