"""The Airflow plugin: registered through the package's ``airflow.plugins`` entry point (installing the
package is enough). It mounts the Backups app (``ui.app``) in the API server at ``/backups`` and adds
"Backups" to the UI's navigation (the page opens at ``/plugin/backups``, framed by Airflow's UI)."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from backup_pipelines.ui.urls import NAV_ROUTE, URL_PREFIX


class LazyApp:
    """An ASGI app that builds the real one on its first request: loading the plugin, which every
    Airflow process does, then imports neither FastAPI nor the pages."""

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            from backup_pipelines.ui.app import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class BackupsPlugin(AirflowPlugin):
    name = "backup_pipelines"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "Backups"}]
    external_views = [
        {
            "name": "Backups",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": NAV_ROUTE,
            "nav_top_level": True,
        }
    ]
