"""``make airflow``: Airflow on Postgres with the LocalExecutor, on the embedded stack, watched.

Prints the URL and the login first; then one line per start-up step. The components are started in
an order that cannot fail the first tasks (the API server, which serves the Execution API the task
processes call, before the scheduler), each with its output in ``<dir>/logs/airflow-<name>.log``. A
component that exits is reported at once with its last error line, everything is stopped and the
command exits 1. Ctrl-C stops Airflow, Postgres and the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backup_pipelines.dev.airflow import airflow_env
from backup_pipelines.dev.airflow_api import AirflowApi
from backup_pipelines.dev.components import AirflowComponents, last_error
from backup_pipelines.dev.processes import HOST, free_port, signals_raise
from backup_pipelines.dev.services import Postgres
from backup_pipelines.dev.stack import EmbeddedStack

USER = "admin"
COMPONENTS = ("api-server", "dag-processor", "triggerer", "scheduler")
DRILL_DAG = "dr_drill"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class ComponentDied(RuntimeError):
    """An Airflow component exited while ``make airflow`` was running."""


def _say(text: str) -> None:
    print(text, flush=True)


def login_password(home: Path) -> str:
    """The UI password of ``admin``: kept in ``<home>/passwords.json`` across runs."""
    path = home / "passwords.json"
    if path.exists():
        return str(json.loads(path.read_text())[USER])
    home.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(9)
    path.write_text(json.dumps({USER: password}))
    path.chmod(0o600)
    return password


def launcher_env(home: Path, *, port: int, db_url: str) -> dict[str, str]:
    """Airflow's settings for one stack: its own ports, hosts and login; nothing on 0.0.0.0."""
    url = f"http://{HOST}:{port}"
    return {
        **airflow_env(home, sql_alchemy_conn=db_url),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # unpaused through the API once parsed
        # Log servers are not needed with local task logs (they are started with --skip-serve-logs);
        # free ports all the same, so two stacks on one machine never collide.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }


@dataclass
class Launcher:
    base: Path
    port: int
    seed: bool = True
    paused: bool = False
    database: str = "airflow"
    components: AirflowComponents | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def run(self) -> int:
        home = self.base / "airflow"
        os.environ["AIRFLOW_HOME"] = str(home)  # this process imports Airflow too: never ~/airflow
        password = login_password(home)
        _say(f"Airflow UI: {self.url}   log in as {USER} / {password}")
        _say(f"(starting; logs under {self.base / 'logs'}; Ctrl-C stops everything)\n")
        with EmbeddedStack(self.base) as stack:
            self._step("embedded stack", lambda: _describe_stack(stack))
            postgres = Postgres.from_env_or_start(self.base / "postgres")
            try:
                return self._run_airflow(stack, postgres, home, password)
            except ComponentDied as exc:
                _say(f"\n[FAILED] {exc}")  # at once, before the (slower) teardown
                raise
            finally:
                if self.components is not None:
                    self.components.stop()
                postgres.stop()

    def _run_airflow(self, stack: EmbeddedStack, postgres: Postgres, home: Path, password: str) -> int:
        db_url = postgres.create_database(self.database, replace=True)
        env = {**os.environ, **stack.env(), **launcher_env(home, port=self.port, db_url=db_url)}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        self.components = AirflowComponents(env, self.base / "logs")
        _say(f"[ok] Postgres {postgres.where}, database {self.database} (new)")
        self._step("Airflow DB migrated", lambda: self._cli("db-migrate", "db", "migrate"))
        if self.seed:
            self._step("demo data seeded", lambda: self._seed(env))
        api = self._start_components(password)
        self._step("DAGs parsed", lambda: self._wait_for_dags(api))
        _say(f"\nReady: {self.url}  ({USER} / {password}). Ctrl-C stops Airflow, Postgres and the stack.")
        return self._watch(api)

    def _step(self, what: str, action: Callable[[], str | None]) -> Any:
        started = time.monotonic()
        detail = action()
        _say(f"[ok] {what}{': ' + detail if detail else ''} ({time.monotonic() - started:.1f}s)")

    def _cli(self, name: str, *args: str) -> None:
        assert self.components is not None
        done = self.components.run(f"airflow-{name}", *args)
        if done.returncode != 0:
            log = self.components.log_path(f"airflow-{name}")
            raise ComponentDied(f"airflow {' '.join(args)} failed: {last_error(log)} (log: {log})")

    def _seed(self, env: dict[str, str]) -> str:
        log = self.base / "logs" / "seed.log"
        with log.open("ab") as err:
            done = subprocess.run(
                [sys.executable, "-m", "backup_pipelines.dev.embedded", "seed", "--dir", str(self.base)],
                env=env, stdout=subprocess.PIPE, stderr=err, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise ComponentDied(f"seeding the demo data failed: {last_error(log)} (log: {log})")
        from backup_pipelines.dev.seeding import describe

        return describe(json.loads(done.stdout.decode().strip().splitlines()[-1]))

    def _start_components(self, password: str) -> AirflowApi:
        """The API server first (tasks call its Execution API), the pool, then the other components."""
        from backup_pipelines.core.config import load_config

        assert self.components is not None
        started = time.monotonic()
        self.components.start("airflow-api-server", "api-server", "--host", HOST, "--port", str(self.port))
        self._wait("the API server", lambda: _healthy(self.url), timeout=120)
        api = AirflowApi(self.url, USER, password)
        pool = load_config().clickhouse_snapshots.pool
        # chDB opens its directory in one process at a time: ClickHouse tasks share one slot.
        api.send("POST", "/pools", {"name": pool, "slots": 1, "description": "chDB: one process at a time"})
        self.components.start("airflow-dag-processor", "dag-processor")
        self.components.start("airflow-triggerer", "triggerer", "--skip-serve-logs")
        self.components.start("airflow-scheduler", "scheduler", "--skip-serve-logs")
        _say(
            f"[ok] {', '.join(COMPONENTS)} started (Execution API {self.url}/execution/ answers); "
            f"pool {pool!r} has 1 slot "
            f"({time.monotonic() - started:.1f}s)"
        )
        return api

    def _wait_for_dags(self, api: AirflowApi) -> str:
        assert self.components is not None
        folder = Path(self.components.env["AIRFLOW__CORE__DAGS_FOLDER"])
        dags = self._wait("the DAGs to be parsed", lambda: api.dags_when_parsed(folder), timeout=180)
        errors = api.get("/importErrors")["import_errors"]
        if errors:
            raise ComponentDied(f"DAG import errors: {[e['filename'] for e in errors]}")
        if self.paused:
            return f"{len(dags)} DAGs, all paused (--paused)"
        for dag in dags:
            if dag["dag_id"] != DRILL_DAG:
                api.send("PATCH", f"/dags/{dag['dag_id']}", {"is_paused": False})
        return f"{len(dags)} DAGs, unpaused but {DRILL_DAG} (unpaused once every pipeline has run)"

    def _wait(self, what: str, probe: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            result = probe()
            if result:
                return result
            time.sleep(1)
        raise ComponentDied(f"timed out after {timeout:.0f}s waiting for {what}")

    def _check_alive(self) -> None:
        assert self.components is not None
        for name, code in self.components.dead().items():
            log = self.components.log_path(name)
            raise ComponentDied(
                f"{name.removeprefix('airflow-')} exited with code {code}: {last_error(log)}\n  log: {log}"
            )

    def _watch(self, api: AirflowApi) -> int:
        drill_waits = not self.paused
        checked = 0.0
        while True:
            self._check_alive()
            if drill_waits and time.monotonic() - checked > 5:
                checked = time.monotonic()
                drill_waits = not self._unpause_drill_when_ready(api)
            time.sleep(1)

    def _unpause_drill_when_ready(self, api: AirflowApi) -> bool:
        """Unpause the drill once each pipeline's first run succeeded: it then has points to drill."""
        from backup_pipelines.monitor.alerts import DAG_DATASET_KINDS  # the four pipelines' DAGs

        for dag_id in DAG_DATASET_KINDS:
            if not api.get(f"/dags/{dag_id}/dagRuns", state="success", limit=1)["dag_runs"]:
                return False
        api.send("PATCH", f"/dags/{DRILL_DAG}", {"is_paused": False})
        _say(f"[ok] {DRILL_DAG} unpaused: every pipeline has a recovery point to drill")
        return True


def _describe_stack(stack: EmbeddedStack) -> str:
    return f"S3 {stack.s3_endpoint}, Kafka {stack.kafka_bootstrap}, SMTP {HOST}:{stack.smtp_port}, chDB"


def _healthy(url: str) -> bool:
    """The REST API and the Execution API (what the task processes call) both answer."""
    import httpx

    try:
        return all(
            httpx.get(url + path, timeout=5).status_code == 200
            for path in ("/api/v2/monitor/health", "/execution/health")
        )
    except httpx.HTTPError:
        return False


def run_airflow(args: argparse.Namespace) -> int:
    launcher = Launcher(
        Path(args.dir).resolve(), args.port, seed=not args.no_seed, paused=args.paused, database=args.database
    )
    try:
        with signals_raise():
            return launcher.run()
    except KeyboardInterrupt:
        _say("stopped (Ctrl-C): Airflow, Postgres and the embedded stack are down")
        return 0
    except ComponentDied:
        _say("make airflow stopped Airflow, Postgres and the stack.")
        return 1
