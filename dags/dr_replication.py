"""
### dr_replication

Every verified recovery point, and the drill reports, copied to the DR region and checked there
(`storage.replica`, README "Regional outage").

**apply_replication_rules** (`mode: s3_replication`): merges the package's S3 Replication rules
(Replication Time Control on) into the source buckets by rule ID, keeping the buckets' other rules.

**replicate**: for each dataset, every point verified in the primary catalog and missing from the
DR catalog is copied (`mode: copy`: streamed between two endpoints, CopyObject on one) or checked
as S3 replicated it (`mode: s3_replication`); each object's SHA-256 in the replica is compared with
the manifest's (or the primary's), and the point's DR manifest is written last. Points the
primary's retention removed leave the replica too, never its newest verified point. A dataset whose
primary is unreachable fails the run naming it; the next run catches up.

Runs every 15 minutes by default (`storage.replica.schedule`): a new point reaches the replica
within one run of its verification. Runbook: docs/runbooks/regional-outage.md.
"""

from __future__ import annotations

from airflow.sdk import DAG

from backup_pipelines.core.config import load_config
from backup_pipelines.dagkit import dag_kwargs
from backup_pipelines.replica.operators import ApplyReplicationRulesOperator, ReplicateToDrOperator

cfg = load_config()
replica = cfg.storage.replica

with DAG(
    **dag_kwargs(
        "dr_replication",
        schedule=replica.schedule if replica else "*/15 * * * *",  # skips while none is configured
        doc_md=__doc__ or "",
        tags=["dr", "replication", "s3"],
        cfg=cfg,
    )
):
    ApplyReplicationRulesOperator(task_id="apply_replication_rules") >> ReplicateToDrOperator(
        task_id="replicate"
    )
