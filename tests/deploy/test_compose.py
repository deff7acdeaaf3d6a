"""docker-compose.yaml, checked structurally: there is no Docker engine on CI, so it is never run there.

What a user would hit first if the file were wrong: a service the README names that does not
exist, Airflow services that disagree on image or config (tasks fail on one worker only), a
connection a DAG needs that is not wired, or a real secret committed to the repository.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>[^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|(^|_)KEY($|_)")
# Roles the issue asks for, by the command each Airflow service runs.
_AIRFLOW_ROLES = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services: mapping"
    return data


def _airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if name.startswith("airflow-")}


def _interpolate(value: str) -> str:
    """What docker compose substitutes with no .env file: the ``${VAR:-default}`` defaults."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", value)


def _deploying_doc() -> str:
    """The README's Deploying section."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Deploying\b.*?(?=^## |\Z)", readme, flags=re.M | re.S)
    assert match, "README.md has no '## Deploying' section"
    return match.group(0)


def _doc_table(doc: str, heading: str) -> list[list[str]]:
    """Rows (cells without backticks) of the first table under ``heading``."""
    section = re.search(rf"^#+ {re.escape(heading)}\s*$(.*?)(?=^#+ |\Z)", doc, flags=re.M | re.S)
    assert section, f"the Deploying docs have no '{heading}' section"
    rows = []
    for line in section.group(1).splitlines():
        if line.startswith("|") and not re.match(r"^\|[\s\-|:]+\|$", line):
            rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
    assert len(rows) > 1, f"the '{heading}' section has no table"
    return rows[1:]  # without the header row


def test_compose_parses_and_every_service_the_docs_name_exists(compose: dict[str, Any]) -> None:
    named = {row[0] for row in _doc_table(_deploying_doc(), "The compose stack")}
    missing = named - set(compose["services"])
    assert not missing, f"the Deploying docs name services docker-compose.yaml lacks: {sorted(missing)}"
    undocumented = set(compose["services"]) - named
    assert not undocumented, f"services missing from the Deploying docs' table: {sorted(undocumented)}"
    for needed in ("postgres", "redis", "clickhouse", "kafka", "s3", "mailpit"):
        assert needed in compose["services"], f"docker-compose.yaml has no {needed} service"


def test_airflow_services_share_one_image_and_config(compose: dict[str, Any]) -> None:
    services = _airflow_services(compose)
    commands = {
        name: " ".join(svc.get("command") or [])
        if isinstance(svc.get("command"), list)
        else str(svc.get("command", ""))
        for name, svc in services.items()
    }
    assert set(commands.values()) >= _AIRFLOW_ROLES, f"Airflow roles present: {sorted(commands.values())}"
    assert "airflow-init" in services, "no airflow-init service (db migrate, pool, buckets)"

    images = {svc.get("image") for svc in services.values()}
    builds = {json.dumps(svc.get("build"), sort_keys=True) for svc in services.values()}
    assert len(images) == 1 and None not in images, f"Airflow services run different images: {images}"
    assert len(builds) == 1, "Airflow services are built differently"
    build = services["airflow-scheduler"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE

    common = compose["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name, svc in services.items():
        env = svc["environment"]
        differing = sorted(k for k, v in common.items() if env.get(k) != v)
        assert not differing, f"{name} overrides the shared Airflow config: {differing}"
    # One JWT secret and one metadata DB for every process, or task tokens fail between them.
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in common
    assert urlparse(_interpolate(common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])).hostname == "postgres"
    assert urlparse(_interpolate(common["AIRFLOW__CELERY__BROKER_URL"])).hostname == "redis"
    api_url = urlparse(common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api_url.hostname in services and api_url.path == "/execution/"


def _needed_connection_ids() -> set[str]:
    """Connection ids the DAGs use: the config's `connections` section and literal ``*_conn_id``s."""
    from backup_pipelines.core.config import Connections, load_config

    cfg = load_config(ROOT / "include" / "config" / "backup.yaml")
    needed = set(Connections().model_dump().values()) | set(cfg.connections.model_dump().values())
    literal = re.compile(r"""\b\w*conn_id\s*[:=]\s*(?:str\s*=\s*)?["']([A-Za-z0-9_]+)["']""")
    for path in [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "dags").rglob("*.py")]:
        needed |= set(literal.findall(path.read_text()))
    return needed


def test_every_connection_the_dags_need_is_wired_to_a_service(compose: dict[str, Any]) -> None:
    from airflow.models.connection import Connection

    env = compose["x-airflow-common"]["environment"]
    services = set(compose["services"])
    needed = _needed_connection_ids()
    assert {"aws_default", "clickhouse_default", "kafka_default", "smtp_default"} <= needed
    for conn_id in sorted(needed):
        key = f"AIRFLOW_CONN_{conn_id.upper()}"
        assert key in env, f"connection {conn_id!r} is used by the package but {key} is not set"
        conn = Connection.from_json(_interpolate(env[key]), conn_id=conn_id)
        extra = conn.extra_dejson
        if conn.conn_type == "aws":
            host = urlparse(extra["endpoint_url"]).hostname
        elif conn.conn_type == "kafka":
            host = extra["bootstrap.servers"].split(",")[0].rsplit(":", 1)[0]
        else:
            host = conn.host
        assert host in services, f"connection {conn_id!r} points at {host!r}, not a compose service"
    types = {cid: json.loads(_interpolate(env[f"AIRFLOW_CONN_{cid.upper()}"]))["conn_type"] for cid in needed}
    assert types["aws_default"] == "aws" and types["clickhouse_default"] == "clickhouse"
    assert types["kafka_default"] == "kafka" and types["smtp_default"] == "smtp"


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _strings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [item for i, value in enumerate(node) for item in _strings(value, f"{path}[{i}]")]
    return [(path, str(node))] if node is not None else []


def test_no_secret_is_hard_coded_except_documented_local_defaults(compose: dict[str, Any]) -> None:
    rows = _doc_table(_deploying_doc(), "Local defaults")
    documented = {row[0]: "" if row[1] == "(empty)" else row[1] for row in rows}
    text = COMPOSE.read_text()
    for match in _INTERPOLATION.finditer(text):
        name, default = match.group("name"), match.group("default")
        if default is not None and _SECRET_NAME.search(name):
            assert documented.get(name) == default, (
                f"${{{name}}} defaults to {default!r} but the Deploying docs' 'Local defaults' table "
                f"says {documented.get(name)!r}"
            )
    for path, value in _strings(compose):
        key = path.rsplit(".", 1)[-1]
        if _SECRET_NAME.search(key.upper()):
            assert _INTERPOLATION.fullmatch(value.strip()), (
                f"{path} is a literal secret: use ${{VAR:-default}}"
            )
        for found in re.findall(r"://[^:/@\s]+:([^@\s]*)@", value):
            assert _INTERPOLATION.fullmatch(found), f"{path}: a URL carries a literal password"
        for secret_field in ("password", "aws_secret_access_key"):
            for found in re.findall(rf'"{secret_field}"\s*:\s*"([^"]*)"', value):
                assert _INTERPOLATION.fullmatch(found), f"{path}: connection {secret_field} is a literal"
    # AWS-shaped keys never belong in the repository, documented or not.
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if svc.get("restart") == "no":  # one-shot init
            continue
        assert svc.get("healthcheck", {}).get("test"), f"service {name} has no health check"
    for name, svc in _airflow_services(compose).items():
        if name == "airflow-init":
            continue
        init = svc["depends_on"].get("airflow-init", {})
        assert init.get("condition") == "service_completed_successfully", f"{name} may start before init"


def test_dockerfile_installs_this_package_on_the_tested_airflow_version(compose: dict[str, Any]) -> None:
    import importlib.metadata

    text = DOCKERFILE.read_text()
    version = importlib.metadata.version("apache-airflow")
    assert re.search(rf"^ARG AIRFLOW_VERSION={re.escape(version)}$", text, flags=re.M), (
        f"docker/Dockerfile does not default to the Airflow version the tests run ({version})"
    )
    assert compose["x-airflow-common"]["build"]["args"]["AIRFLOW_VERSION"] == version
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}", text, flags=re.M)
    assert re.search(r'pip install .*-e "\.\[deploy\]"', text), "the image must install the package"
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    for source in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, flags=re.M):
        for item in source.split():
            assert (ROOT / item).exists(), f"docker/Dockerfile copies {item}, which does not exist"
            assert f"!{item}" in ignore, f"{item} is excluded from the build context by the .dockerignore"


def test_clickhouse_server_backs_up_to_the_configured_bucket_with_credentials_from_env(
    compose: dict[str, Any],
) -> None:
    from backup_pipelines.core.config import load_config

    bucket = load_config(ROOT / "include" / "config" / "backup.yaml").storage.backup_bucket
    clickhouse = compose["services"]["clickhouse"]
    mounted = [v.split(":")[0] for v in clickhouse["volumes"] if v.startswith("./")]
    assert mounted, "no ClickHouse server config mounted"
    tree = ET.parse(ROOT / mounted[0])
    endpoint = tree.find("./s3/backup_bucket/endpoint")
    assert endpoint is not None and endpoint.text
    url = urlparse(endpoint.text)
    assert url.hostname in compose["services"] and url.path.strip("/") == bucket
    for element in tree.iter():
        if element.tag in ("access_key_id", "secret_access_key"):
            assert not (element.text or "").strip(), f"{element.tag} is written into the config file"
            assert element.get("from_env") in clickhouse["environment"]


# Service keys of the Compose Specification this file may use; a typo (``healtcheck``) is
# otherwise silently ignored by YAML and only noticed when the stack misbehaves.
_SERVICE_KEYS = {
    "build",
    "command",
    "container_name",
    "depends_on",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "healthcheck",
    "hostname",
    "image",
    "labels",
    "networks",
    "ports",
    "profiles",
    "restart",
    "stop_grace_period",
    "ulimits",
    "user",
    "volumes",
    "working_dir",
}
_HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}


def test_service_keys_are_compose_keys(compose: dict[str, Any]) -> None:
    assert set(compose) <= {"services", "volumes", "networks", "name"} | {
        key for key in compose if key.startswith("x-")
    }, f"unknown top-level keys: {sorted(compose)}"
    for name, svc in compose["services"].items():
        unknown = set(svc) - _SERVICE_KEYS
        assert not unknown, f"service {name}: unknown keys {sorted(unknown)}"
        unknown = set(svc.get("healthcheck", {})) - _HEALTHCHECK_KEYS
        assert not unknown, f"service {name}: unknown healthcheck keys {sorted(unknown)}"
        if svc.get("restart") is not None:
            assert svc["restart"] in ("no", "always", "on-failure", "unless-stopped"), name
        for dependency in svc.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown service {dependency}"
    named = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in named, f"{name} mounts undeclared volume {source}"


def test_every_airflow_setting_is_a_real_option(compose: dict[str, Any]) -> None:
    """``AIRFLOW__SECTION__KEY`` with a typo is ignored by Airflow, silently: check each one exists."""
    from airflow.configuration import conf

    description = conf.configuration_description
    for name, svc in _airflow_services(compose).items():
        for variable in svc["environment"]:
            if not variable.startswith("AIRFLOW__"):
                continue
            section, key = (part.lower() for part in variable.removeprefix("AIRFLOW__").split("__", 1))
            options = description.get(section, {}).get("options", {})
            assert key in options, f"{name}: {variable} is not an Airflow option ([{section}] {key})"
