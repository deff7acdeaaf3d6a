"""What the drill checks around the restores: Tier 1 lags, and that it left no scratch behind."""

from __future__ import annotations

import logging

from backup_pipelines.core.config import BackupConfig
from backup_pipelines.drill.probes import DrillProbes
from backup_pipelines.drill.results import (
    CHECK_CLEANUP,
    CHECK_REPLICA_LAG,
    CHECK_REPLICATION_LAG,
    CheckResult,
    CheckStatus,
)

log = logging.getLogger(__name__)


def tier1_checks(cfg: BackupConfig, hook: DrillProbes) -> list[CheckResult]:
    """ClickHouse replica lag (``system.replicas``) and Kafka primary-to-DR replication lag, when set."""
    drill = cfg.dr_drill
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
        log.info("%s", check.describe())
    return checks


def cleanup_scratch(hook: DrillProbes, prefix: str) -> list[CheckResult]:
    """Drop the scratch databases and topics named ``<prefix>*`` and check none is left."""
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
        detail = f"removed {len(names)} {label}(s)" + (f"; still present: {', '.join(left)}" if left else "")
        checks.append(
            CheckResult(name=CHECK_CLEANUP, status=status, object=f"{label} {prefix}*", detail=detail)
        )
        log.info("clean-up: %s", detail)
    return checks
