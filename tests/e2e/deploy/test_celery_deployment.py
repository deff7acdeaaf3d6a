"""The package on a real distributed executor: Airflow's CeleryExecutor, no Docker.

The session's Postgres is the metadata DB and Celery result backend, its Redis the broker (both from the
environment or started from PyPI wheels: tests/conftest.py); a scheduler, a dag-processor, a triggerer,
an api-server and two Celery workers run as separate processes on their own embedded stack (never the
session's: the pytest process holds that chDB directory). The test triggers the snapshot and Kafka
archive DAGs through the REST API, as a user or an outside scheduler would, waits for success and checks
that the mapped tasks ran on both workers. Every process it starts is killed at the end, and the
database and Redis keys are dropped.

chDB lets one process at a time open a data directory: ClickHouse tasks go through the config's pool
(``clickhouse_snapshots.pool``) with one slot, and the data is seeded from a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.airflow_processes import AirflowProcesses
from support.services import fresh_database, redis_keyspace

from backup_pipelines.dev.airflow import airflow_env
from backup_pipelines.dev.processes import free_port, wait_for_port
from backup_pipelines.dev.services import Postgres, Redis
from backup_pipelines.dev.stack import EmbeddedStack

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOT_DAG = "clickhouse_hourly_snapshot"
KAFKA_DAG = "kafka_weekly_glacier_archive"
WORKERS = ("w1", "w2")
RUN_TIMEOUT = 240.0

# Runs in each task process (the worker's child): names the worker in task_instance.hostname. Two
# workers on one machine share an FQDN; in the compose stack each container has its own hostname.
_HOSTNAME_MODULE = """
import os

def hostname() -> str:
    return os.environ["BP_CELERY_WORKER_NAME"]
"""

# Seeds ClickHouse through the deployment's own connection, in a process of its own, so the pytest
# process never opens that chDB directory (a second process could not open it afterwards).
_SEED_CLICKHOUSE = """
import sys
from datetime import datetime
from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook
from backup_pipelines.dev.sample_data import seed_clickhouse
client = ClickHouseHook().get_client()
rows = seed_clickhouse(client, start=datetime.fromisoformat(sys.argv[1]),
                       end=datetime.fromisoformat(sys.argv[2]), rows=int(sys.argv[3]))
print(rows)
"""


@dataclass
class Deployment(AirflowProcesses):
    """The Airflow processes of one deployment; ``api_port`` is where its REST API listens."""

    api_port: int = 0


class Api:
    """The Airflow REST API (/api/v2) with a token from the simple auth manager's /auth/token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url, timeout=30)
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        assert response.status_code == 201, f"login failed: {response.status_code} {response.text}"
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"/api/v2{path}", params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        response = self.client.request(method, f"/api/v2{path}", json=body)
        assert response.status_code in (200, 201), f"{method} {path}: {response.status_code} {response.text}"
        return response.json()


@pytest.fixture
def postgres_db(postgres: Postgres) -> Iterator[str]:
    """A fresh database for this deployment only, dropped afterwards (SQLAlchemy URL)."""
    with fresh_database(postgres, "celery") as (_, url):
        yield url


@pytest.fixture
def redis_broker(redis_server: Redis) -> Iterator[tuple[str, str]]:
    """A random Redis database index and a key prefix of this run's own; its keys are deleted after."""
    with redis_keyspace(redis_server, "celery") as (url, prefix):
        yield url, prefix


def _test_config(base: Path) -> Path:
    """The example config with a second topic: six topic-partitions for the Kafka archive to map over,
    more than one worker's two slots, so the mapped tasks must spread over both workers."""
    cfg = yaml.safe_load((ROOT / "include" / "config" / "backup.yaml").read_text())
    cfg["kafka_archive"]["topics"].append({"name": "clicks"})
    path = base / "backup.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def deployment(
    tmp_path: Path, postgres_db: str, redis_broker: tuple[str, str]
) -> Iterator[tuple[Deployment, Api, EmbeddedStack]]:
    base = tmp_path / "celery"
    (base / "logs").mkdir(parents=True)
    (base / "pylib").mkdir()
    (base / "pylib" / "bp_celery_hostname.py").write_text(_HOSTNAME_MODULE)
    config = _test_config(base)

    stack = EmbeddedStack(base / "stack").start()
    deployment: Deployment | None = None
    try:
        from backup_pipelines.core.config import load_config

        cfg = load_config(config)
        api_port = free_port()
        password = secrets.token_urlsafe(16)
        (base / "passwords.json").write_text(json.dumps({"deploy-test": password}))
        broker_url, prefix = redis_broker
        env = {
            **os.environ,
            **stack.env(),
            **airflow_env(
                base / "airflow",
                dags_folder=ROOT / "dags",
                sql_alchemy_conn=postgres_db,
            ),
            "BACKUP_PIPELINES_CONFIG": str(config),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres_db.replace("+psycopg2", ""),
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": prefix,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "deploy-test:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(base / "passwords.json"),
            # Runs come from the REST API only: no cron-scheduled run competes with them.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(base / "pylib"), os.environ.get("PYTHONPATH")])),
            # `airflow` and `python` of this environment first, as in the image.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        env.pop("AIRFLOW__CORE__HOSTNAME_CALLABLE", None)
        deployment = Deployment(base, env, api_port=api_port)
        seeding = _start_seeding_clickhouse(deployment)  # runs while Kafka is seeded and the DB migrates
        try:
            _seed_kafka(stack, cfg)
            # The compose stack's own init script: db migrate, the ClickHouse pool, the buckets.
            init = subprocess.run(
                ["bash", str(ROOT / "docker" / "airflow-init.sh")],
                env={**deployment.env, "CLICKHOUSE_POOL_SLOTS": "1"},  # chDB: one process at a time
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert init.returncode == 0, f"docker/airflow-init.sh failed:\n{init.stdout}\n{init.stderr}"
            _finish_seeding(seeding)
        finally:
            if seeding.poll() is None:
                seeding.kill()
                seeding.wait()

        deployment.start(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"
        )
        deployment.start("scheduler", "scheduler")
        deployment.start("dag-processor", "dag-processor")
        deployment.start("triggerer", "triggerer")
        for worker in WORKERS:
            deployment.start(
                f"worker-{worker}",
                "celery",
                "worker",
                "--celery-hostname",
                f"{worker}@%h",
                "--concurrency",
                "2",
                "--skip-serve-logs",
                "--without-gossip",
                extra_env={
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "bp_celery_hostname.hostname",
                    "BP_CELERY_WORKER_NAME": worker,
                },
            )
        wait_for_port(api_port, name="airflow api-server", timeout=90, proc=deployment.procs["api-server"])
        deployment.check_alive()
        api = Api(f"http://127.0.0.1:{api_port}", "deploy-test", password)
        assert api.get(f"/pools/{cfg.clickhouse_snapshots.pool}")["slots"] == 1
        yield deployment, api, stack
    finally:
        if deployment is not None:
            deployment.stop()
        stack.stop()


def _start_seeding_clickhouse(deployment: Deployment) -> subprocess.Popen:
    """Seed ClickHouse in a subprocess (returned, still running): never opened by this process."""
    from backup_pipelines.dev.processes import die_with_parent

    now = datetime.now(UTC)
    window = [(now - timedelta(days=3)).isoformat(), (now - timedelta(minutes=1)).isoformat()]
    return subprocess.Popen(
        [sys.executable, "-c", _SEED_CLICKHOUSE, *window, "5000"],
        env=deployment.env,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _seed_kafka(stack: EmbeddedStack, cfg: Any) -> None:
    from backup_pipelines.dev.sample_data import seed_kafka

    now = datetime.now(UTC)
    for seed, topic in enumerate(cfg.kafka_archive.topics):
        seed_kafka(
            stack.kafka_bootstrap,
            topic.name,
            start=now - timedelta(days=13),
            end=now,
            messages=900,
            seed=seed,
        )


def _finish_seeding(seeding: subprocess.Popen) -> None:
    _, stderr = seeding.communicate(timeout=120)
    assert seeding.returncode == 0, f"seeding ClickHouse failed:\n{stderr[-3000:]}"


def _wait_for_dags(api: Api, deployment: Deployment, dag_ids: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 90
    missing: set[str] = set(dag_ids)
    while time.monotonic() < deadline:
        deployment.check_alive()
        errors = [e for e in api.get("/importErrors")["import_errors"] if Path(e["filename"]).stem in dag_ids]
        assert not errors, f"DAG import errors: {errors}"
        listed = {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}
        missing = set(dag_ids) - listed
        if not missing:
            return
        time.sleep(1)
    raise AssertionError(f"the dag-processor did not register {sorted(missing)} within 90 s")


def _wait_for_workers(deployment: Deployment) -> None:
    """Both workers consume before anything is queued, or the first one up could take every task."""
    deadline = time.monotonic() + 90
    waiting = set(WORKERS)
    while waiting and time.monotonic() < deadline:
        deployment.check_alive()
        for worker in list(waiting):
            log = deployment.base / "logs" / f"worker-{worker}.log"
            if log.exists() and re.search(rf"\b{worker}@\S+ ready\.", log.read_text(errors="replace")):
                waiting.discard(worker)
        time.sleep(0.5)
    assert not waiting, f"Celery workers {sorted(waiting)} not ready within 90 s\n" + "\n".join(
        deployment.tail(f"worker-{w}") for w in waiting
    )


def _wait_for_runs(api: Api, deployment: Deployment, runs: dict[str, str]) -> dict[str, str]:
    deadline = time.monotonic() + RUN_TIMEOUT
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        deployment.check_alive()
        states = {
            dag_id: api.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"] for dag_id, run_id in runs.items()
        }
        if all(state in ("success", "failed") for state in states.values()):
            return states
        time.sleep(2)
    return states


def _failure_report(api: Api, deployment: Deployment, runs: dict[str, str]) -> str:
    lines = []
    for dag_id, run_id in runs.items():
        for ti in api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=200)["task_instances"]:
            lines.append(f"{dag_id}.{ti['task_id']}[{ti['map_index']}] {ti['state']} on {ti['hostname']}")
    return "\n".join(lines + [deployment.tail(n) for n in deployment.procs])


def test_snapshot_and_kafka_archive_run_on_two_celery_workers(
    deployment: tuple[Deployment, Api, EmbeddedStack],
) -> None:
    proc, api, stack = deployment
    dag_ids = (SNAPSHOT_DAG, KAFKA_DAG)
    _wait_for_dags(api, proc, dag_ids)
    _wait_for_workers(proc)

    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    runs: dict[str, str] = {}
    for dag_id in dag_ids:
        api.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        run = api.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": hour.isoformat(), "conf": {}})
        runs[dag_id] = run["dag_run_id"]

    states = _wait_for_runs(api, proc, runs)
    assert all(s == "success" for s in states.values()), (
        f"runs did not succeed: {states}\n{_failure_report(api, proc, runs)}"
    )

    hosts: dict[str, set[str]] = {}
    mapped = 0
    for dag_id, run_id in runs.items():
        tis = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=200)["task_instances"]
        for ti in tis:
            assert ti["state"] in ("success", "skipped"), f"{dag_id}.{ti['task_id']} is {ti['state']}"
            if ti["map_index"] >= 0:
                mapped += 1
                hosts.setdefault(ti["hostname"], set()).add(f"{dag_id}.{ti['task_id']}[{ti['map_index']}]")
    assert mapped >= 2, f"the DAGs ran only {mapped} mapped task instance(s)"
    print("mapped tasks by worker:", {host: sorted(tasks) for host, tasks in hosts.items()})
    assert set(hosts) == set(WORKERS), f"mapped tasks by worker: {hosts}"
    _assert_recovery_points_in_s3(stack)


def _assert_recovery_points_in_s3(stack: EmbeddedStack) -> None:
    """What the runs left where a user looks: backups, archives and their manifests in S3."""
    from backup_pipelines.core.config import load_config

    cfg = load_config(stack.base_dir.parent / "backup.yaml")
    s3 = stack.s3_client()

    def keys(bucket: str, prefix: str) -> dict[str, str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {o["Key"]: o.get("StorageClass", "STANDARD") for p in pages for o in p.get("Contents", [])}

    storage = cfg.storage
    for dataset in cfg.clickhouse_snapshots.datasets:
        backup = keys(storage.backup_bucket, f"{cfg.clickhouse_snapshots.prefix}{dataset.name}/")
        assert any(k.endswith("/.backup") for k in backup), (
            f"no ClickHouse backup of {dataset.name}: {backup}"
        )
        manifests = keys(
            storage.backup_bucket, f"{storage.catalog_prefix}clickhouse_snapshot/{dataset.name}/"
        )
        assert manifests, f"no clickhouse_snapshot manifest for {dataset.name}"
    for topic in cfg.kafka_archive.topics:
        archived = keys(storage.archive_bucket, f"{cfg.kafka_archive.prefix}{topic.name}/")
        parquet = {k: c for k, c in archived.items() if k.endswith(".parquet")}
        partitions = {k.split("partition=")[1].split("/")[0] for k in parquet}
        assert partitions == {"0", "1", "2"}, f"{topic.name}: archived partitions {sorted(partitions)}"
        assert set(parquet.values()) == {cfg.kafka_archive.storage_class}, f"{topic.name}: {parquet}"
        manifests = keys(storage.backup_bucket, f"{storage.catalog_prefix}kafka_archive/{topic.name}/")
        assert manifests, f"no kafka_archive manifest for {topic.name}"
