"""The Backups page in a real browser: `make airflow` (its own Postgres database, every DAG paused), a catalog
written into its S3 (every dataset of the demo's config, a broken ClickHouse chain, archives in several
classes, a drill report), and Debian's Chromium driven by playwright through Airflow's own login.

Screenshots are written under the directory the module prints (``screenshots/``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.dev.test_make_airflow import CHROMIUM, CHROMIUM_ARGS, MakeAirflow, _clean_env
from support.catalog import catalog_on
from support.services import unique_name
from support.ui import BROKEN_DETAIL, Seeded, expected_monthly, seed_catalog

from backup_pipelines.core.config import BackupConfig, load_config
from backup_pipelines.dev.processes import free_port
from backup_pipelines.dev.services import POSTGRES_ENV, Postgres

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler, pytest.mark.timeout(900)]

RED = "rgb(207, 34, 46)"  # the pages' red (#cf222e)


@pytest.fixture(scope="module")
def airflow(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeAirflow]:
    base = tmp_path_factory.mktemp("backups-page")
    print(f"make airflow under {base}; screenshots in {base / 'screenshots'}")
    port, database = free_port(), unique_name("bkpg")
    out = base / "terminal.txt"
    argv = [sys.executable, "-m", "backup_pipelines.dev.embedded", "airflow", "--dir", str(base / "e")]
    argv += ["--port", str(port), "--paused", "--no-seed", "--database", database]
    with out.open("wb") as terminal:
        proc = subprocess.Popen(
            argv,
            stdout=terminal,
            stderr=subprocess.STDOUT,
            env={**_clean_env(), POSTGRES_ENV: postgres.admin_url},
            start_new_session=True,
        )
    made = MakeAirflow(proc, base / "e", out, f"http://127.0.0.1:{port}", "", postgres, database)
    try:
        made.wait("the first line", lambda: "\n" in made.output(), timeout=60)
        made.password = re.search(r"log in as admin / (\S+)", made.output()).group(1)  # type: ignore[union-attr]
        made.wait("Ready", lambda: "\nReady: " in made.output(), timeout=300)
        yield made
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        postgres.drop_database(database)


@pytest.fixture(scope="module")
def config() -> BackupConfig:
    return load_config()  # the demo's config: what make airflow runs


@pytest.fixture(scope="module")
def seeded(airflow: MakeAirflow, config: BackupConfig) -> Seeded:
    stack = airflow.stack()
    stack.create_buckets(
        config.storage.backup_bucket, config.storage.archive_bucket
    )  # make airflow --no-seed
    catalog = catalog_on(
        stack.s3_client(), config.storage.backup_bucket, prefix=config.storage.catalog_prefix
    )
    return seed_catalog(config, catalog, datetime.now(UTC))


@pytest.fixture(scope="module")
def page(airflow: MakeAirflow, seeded: Seeded) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.goto(airflow.url)
        tab.get_by_label("Username").fill("admin")
        tab.get_by_label("Password").fill(airflow.password)
        tab.get_by_role("button", name="Sign in").click()
        tab.wait_for_url(airflow.url + "/")
        try:
            yield tab
        finally:
            browser.close()


def _shot(tab: Any, airflow: MakeAirflow, name: str) -> Path:
    folder = airflow.base.parent / "screenshots"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def test_the_page_is_refused_without_airflows_login(airflow: MakeAirflow) -> None:
    for path in ("/backups/", "/backups/cost", "/backups/api/overview"):
        answer = httpx.get(airflow.url + path, timeout=30)
        assert answer.status_code == 401, (path, answer.status_code, answer.text[:200])


def test_the_nav_entry_opens_the_overview_with_every_dataset_of_the_demo(
    airflow: MakeAirflow, page: Any, config: BackupConfig, seeded: Seeded
) -> None:
    page.goto(airflow.url + "/")
    page.get_by_role("link", name="Backups").first.click()  # the nav entry of the plugin
    page.wait_for_url(re.compile(r".*/plugin/backups$"))
    frame = page.frame_locator("iframe").first
    table = frame.locator("#overview")
    table.wait_for()
    for kind, name, _ in config.datasets():
        row = table.locator(f'tr[data-dataset="{kind}/{name}"]')
        assert row.count() == 1, f"{kind}/{name} is not on the overview"
    snapshot = table.locator('tr[data-dataset="clickhouse_snapshot/analytics"]')
    newest = seeded.points[("clickhouse_snapshot", "analytics")][-1].recovery_point_id
    assert newest in snapshot.inner_text() and "green" in snapshot.inner_text()
    assert seeded.dependents[-1] in snapshot.inner_text()  # the newest failed point, named with why
    _shot(page, airflow, "backups-overview")


def test_a_broken_chain_shows_red_with_its_reason(airflow: MakeAirflow, page: Any, seeded: Seeded) -> None:
    page.goto(airflow.url + "/backups/datasets/clickhouse_snapshot/analytics")
    for rp in [seeded.broken, *seeded.dependents[:3]]:
        row = page.locator(f'#points tr[data-point="{rp}"]')
        state = row.locator("span.failed")
        assert state.inner_text() == "failed", rp
        assert state.evaluate("e => getComputedStyle(e).color") == RED
        reason = row.locator(".reason").inner_text()
        assert BROKEN_DETAIL in reason and (rp == seeded.broken or seeded.broken in reason), reason
    assert page.locator(f'svg.timeline circle.failed[data-point="{seeded.broken}"]').count() == 1
    _shot(page, airflow, "backups-dataset-broken-chain")
    page.locator("a", has_text="report").first.click()
    page.get_by_text("drill report").wait_for()


def test_the_cost_page_matches_the_catalog(
    airflow: MakeAirflow, page: Any, config: BackupConfig, seeded: Seeded
) -> None:
    page.goto(airflow.url + "/backups/cost")
    now = datetime.now(UTC)
    moves = {t.days: t.storage_class for t in config.emr_archive.lifecycle.transitions}
    total = 0.0
    for (kind, name), found in seeded.points.items():
        for cls, monthly in expected_monthly(
            config, found, now, moves if kind == "emr_output" else {}
        ).items():
            cell = page.locator(f'#cost-rows tr[data-dataset="{kind}/{name}"][data-class="{cls}"] td.monthly')
            shown = float(cell.inner_text().split()[0].replace(",", ""))
            assert shown == pytest.approx(monthly, abs=0.00005 if monthly < 1 else 0.005), (kind, name, cls)
            total += monthly
    shown_total = float(page.locator("#total-monthly").inner_text().split()[0].replace(",", ""))
    assert shown_total == pytest.approx(total, abs=0.005)
    assert page.locator("#forecast tr").count() == len(list(config.datasets())) + 2
    assert "DEEP_ARCHIVE" in page.locator("#prices").inner_text()
    _shot(page, airflow, "backups-cost")
