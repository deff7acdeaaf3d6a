"""The Backups pages as a FastAPI app, mounted in Airflow's API server by the plugin (``ui.plugin``).

Read-only, and every route behind Airflow's own authentication: the ``get_user`` dependency of the
core API (the UI's ``_token`` cookie or a bearer token), so a request without a valid token gets
Airflow's own 401/403. HTML pages at ``/``, ``/datasets/<kind>/<dataset>``, ``/cost``; the same data
as JSON under ``/api/``; the drill's report files and the runbooks, so every link works inside Airflow.
"""

from __future__ import annotations

import logging
from functools import cache

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from backup_pipelines import PROJECT_ROOT
from backup_pipelines.core.config import load_config
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.core.s3 import BackupS3Hook
from backup_pipelines.ui import pages
from backup_pipelines.ui.models import CostPage, DatasetPage, Overview
from backup_pipelines.ui.service import RUNBOOKS, BackupsService
from backup_pipelines.ui.urls import URL_PREFIX

log = logging.getLogger(__name__)

RUNBOOK_DIR = PROJECT_ROOT / "docs" / "runbooks"
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}


@cache
def _hook(aws_conn_id: str) -> BackupS3Hook:
    """One S3 hook (one boto3 client, thread-safe) per connection for the process's requests."""
    return BackupS3Hook(aws_conn_id=aws_conn_id)


def _service() -> BackupsService:
    cfg = load_config()
    return BackupsService.from_config(cfg, s3=_hook(cfg.connections.aws))


def _links(request: Request) -> dict[str, str]:
    """This app's own root (``/backups`` under Airflow's root path) and Airflow's."""
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return {"base": base, "airflow": base.removesuffix(URL_PREFIX)}


def _dataset(kind: str, name: str) -> tuple[BackupsService, DatasetPage]:
    service = _service()
    try:
        return service, service.dataset(kind, name)
    except ConfigError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def create_app() -> FastAPI:
    from airflow.api_fastapi.core_api.security import get_user

    app = FastAPI(
        title="Backups",
        dependencies=[Depends(get_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request) -> str:
        return pages.overview(_service().overview(), **_links(request))

    @app.get("/datasets/{kind}/{name}", response_class=HTMLResponse)
    def dataset_page(request: Request, kind: str, name: str) -> str:
        service, page = _dataset(kind, name)
        return pages.dataset(page, now=service.now, **_links(request))

    @app.get("/cost", response_class=HTMLResponse)
    def cost_page(request: Request) -> str:
        return pages.costs(_service().costs(), **_links(request))

    @app.get("/api/overview")
    def overview_json() -> Overview:
        return _service().overview()

    @app.get("/api/datasets/{kind}/{name}")
    def dataset_json(kind: str, name: str) -> DatasetPage:
        return _dataset(kind, name)[1]

    @app.get("/api/cost")
    def cost_json() -> CostPage:
        return _service().costs()

    @app.get("/reports/{key:path}")
    def report_file(key: str) -> Response:
        body = _service().drills.file(key)
        if body is None:
            raise HTTPException(status_code=404, detail=f"no drill report file {key!r}")
        return Response(body, media_type=MEDIA_TYPES[key.rsplit(".", 1)[-1]])

    @app.get("/runbooks/{name}", response_class=HTMLResponse)
    def runbook(request: Request, name: str) -> str:
        path = RUNBOOK_DIR / name
        if name not in RUNBOOKS.values() or not path.is_file():
            raise HTTPException(status_code=404, detail=f"no runbook {name!r} in this installation")
        return pages.runbook(name, path.read_text(), **_links(request))

    return app
