"""The Airflow REST API (``/api/v2``) as the UI uses it, with a token from the simple auth manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class AirflowApi:
    """A logged-in client of one Airflow API server."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url, timeout=timeout)
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        if response.status_code != 201:
            raise RuntimeError(f"login as {username} failed: {response.status_code} {response.text}")
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"/api/v2{path}", params=params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text}")
        return response.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        response = self.client.request(method, f"/api/v2{path}", json=body)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def dags_when_parsed(self, dags_folder: Path) -> list[dict[str, Any]]:
        """Every DAG of the folder once the dag-processor has parsed them all (else [])."""
        dags = self.get("/dags", limit=100)["dags"]
        files = self.get("/importErrors")["import_errors"]
        parsed = {Path(d["fileloc"]).name for d in dags} | {Path(e["filename"]).name for e in files}
        expected = {p.name for p in dags_folder.glob("*.py")}
        return dags if dags and expected <= parsed else []
