#!/usr/bin/env bash
# One-shot set-up of the compose stack (service airflow-init): migrate the metadata DB, create the
# ClickHouse pool and the local S3 buckets named in the config. Safe to run again.
set -euo pipefail

airflow db migrate

pool=$(python -c 'from backup_pipelines.core.config import load_config; print(load_config().clickhouse_snapshots.pool)')
airflow pools set "${pool}" "${CLICKHOUSE_POOL_SLOTS:-2}" "ClickHouse backups and restores at a time"

# Local S3 only: on AWS the buckets (versioning, Object Lock, lifecycle) belong to infrastructure code.
python - <<'PY'
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from backup_pipelines.core.config import load_config

cfg = load_config()
hook = S3Hook(aws_conn_id=cfg.connections.aws)
for bucket in (cfg.storage.backup_bucket, cfg.storage.archive_bucket):
    if not hook.check_for_bucket(bucket):
        hook.create_bucket(bucket_name=bucket)
        print(f"created bucket {bucket}")
if (dr := cfg.storage.replica) is not None:
    dr_hook = S3Hook(aws_conn_id=dr.aws_connection)
    for bucket in (dr.backup_bucket, dr.archive_bucket):
        if not dr_hook.check_for_bucket(bucket):
            dr_hook.create_bucket(bucket_name=bucket, region_name=dr.region)
            print(f"created DR bucket {bucket} in {dr.region}")
PY
