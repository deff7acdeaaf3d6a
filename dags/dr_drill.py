"""Weekly DR drill: restore what the backups promise and prove it, with a report auditors can read."""

from __future__ import annotations

from airflow.sdk import DAG, BaseOperator

from backup_pipelines.core.config import load_config
from backup_pipelines.core.params import choice_param, int_param
from backup_pipelines.dagkit import dag_kwargs
from backup_pipelines.drill.operators import (
    ArchiveDrillOperator,
    ClickHouseDrillOperator,
    DrillCleanupOperator,
    DrillPlanOperator,
    DrillReportOperator,
    Tier1CheckOperator,
)
from backup_pipelines.monitor.sensors import RecoveryPointFreshnessSensor

DOC_MD = """
### DR drill

First, `rpo_before_drill` (the `RecoveryPointFreshnessSensor`) records how old each dataset's
newest verified point is; it waits at most `dr_drill.freshness_timeout` and never blocks the
drill (stale data is skipped-and-recorded, then tested like any other). Then, for every
configured dataset, the drill picks a recovery point (the latest, or a random one within
`dr_drill.random_window`; the seed is recorded) and proves it restores:

- **ClickHouse**: checks every chain member's objects are still in S3, restores the incremental
  chain into `drill_<run>_<dataset>` with merges of the restored tables stopped, compares `count()`
  with the rows the manifest says the table showed and the restored parts with the backed-up
  parts (a lightweight DELETE or a merge cannot fail a good point), runs `CHECK TABLE`,
  and measures the restore time (the achieved RTO). If ClickHouse or S3 cannot be reached the
  check is an *error*: the task is retried and the point's verification state is not changed.
- **Archives** (EMR outputs, Kafka archives, Deep Archive exports): thaws a sample of objects
  (RestoreObject with `dr_drill.restore_tier`, deferrable wait), checks SHA-256 against the
  manifest; Kafka archives also get their offsets checked against the index and a sample
  replayed into a scratch topic and compared record for record.
- **Tier 1** (when configured): ClickHouse replica lag and Kafka primary-to-DR replication lag.

Passing points are marked *verified* in the catalog (that is what RPO is measured from). The
`cleanup_scratch` teardown always drops the scratch databases and topics. The `report` task writes
`report.json`, `report.md` and `report.html` under
`s3://<backup_bucket>/reports/dr-drill/<date>/<run id>/` (one folder per run, never overwritten; the
day's `index.html` lists them), emails a summary with links to the report and the run, and then fails
the run if any check failed or an objective was missed.

Params: `pick` (latest | random) and `seed` (reproduce a random pick).
"""

cfg = load_config()
drill = cfg.dr_drill

with DAG(
    **dag_kwargs(
        "dr_drill",
        schedule=drill.schedule or None,
        doc_md=DOC_MD,
        tags=["dr-drill"],
        params={
            "pick": choice_param(
                "Recovery point pick",
                "Which recovery point of each dataset the drill restores: the latest verified one, or a "
                "random one within dr_drill.random_window.",
                ["latest", "random"],
                default=drill.pick,
                labels={"latest": "latest (newest verified point)", "random": "random (within the window)"},
            ),
            "seed": int_param(
                "Seed of a random pick", "Repeats an earlier random pick. Empty: derived from the run id."
            ),
            "source": choice_param(
                "Source region",
                "primary: restore from the primary region. dr: from the DR region's copies alone "
                "(storage.replica), proving the DR region restores every dataset.",
                ["primary", "dr"],
                default="primary",
            ),
        },
        cfg=cfg,
    )
) as dag:
    # Records the RPO the drill starts from; never blocks it (one check by default, then skipped).
    freshness = RecoveryPointFreshnessSensor(
        task_id="rpo_before_drill",
        deferrable=False,
        soft_fail=True,
        mode="poke",
        xcom_key="freshness",
        timeout=drill.freshness_timeout,
        poke_interval=min(60.0, max(drill.freshness_timeout.total_seconds(), 1.0)),
    )
    plan = DrillPlanOperator(task_id="plan", trigger_rule="all_done")
    dataset_tasks: list[BaseOperator] = []
    for kind, name, _ in cfg.datasets():
        task: BaseOperator
        if kind == "clickhouse_snapshot":
            task = ClickHouseDrillOperator(
                task_id=f"drill_{name}",
                kind=kind,
                dataset=name,
                plan=plan.output,
                pool=cfg.clickhouse_snapshots.pool,
            )
        else:
            task = ArchiveDrillOperator(
                task_id=f"drill_{kind}_{name}", kind=kind, dataset=name, plan=plan.output
            )
        dataset_tasks.append(task)
    tier1 = Tier1CheckOperator(task_id="tier1_checks", pool=cfg.clickhouse_snapshots.pool)
    cleanup = DrillCleanupOperator(task_id="cleanup_scratch", pool=cfg.clickhouse_snapshots.pool)
    report = DrillReportOperator(
        task_id="report",
        plan_task_id="plan",
        dataset_task_ids=[t.task_id for t in dataset_tasks],
        tier1_task_id="tier1_checks",
        cleanup_task_id="cleanup_scratch",
        freshness_task_id="rpo_before_drill",
        freshness_xcom_key="freshness",
        trigger_rule="all_done",
    )
    freshness >> plan >> dataset_tasks >> tier1
    tier1 >> cleanup.as_teardown(setups=plan)
    cleanup >> report
