"""Generate the README's config reference from the config model, so the docs cannot drift.

``python -m backup_pipelines.config_reference`` prints the Markdown; a test checks that the README
holds exactly this text and that every key has a description here.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from backup_pipelines.config import BackupConfig

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"

DESCRIPTIONS: dict[str, str] = {
    "version": "Schema version of this file; only `1` exists.",
    "defaults": "Settings every DAG and task inherits.",
    "defaults.owner": "Airflow owner of every task.",
    "defaults.retries": "Task retries (at least 2).",
    "defaults.retry_delay": "Delay between retries.",
    "defaults.tags": "Tags added to every DAG.",
    "connections": "Airflow connection ids the hooks use.",
    "connections.aws": "S3 (and EMR/KMS) connection.",
    "connections.clickhouse": "ClickHouse connection (clickhousedb provider).",
    "connections.kafka": "Kafka connection (apache-kafka provider; extra holds the client config).",
    "connections.smtp": "SMTP connection for alert and report emails.",
    "storage": "Buckets, catalog location, encryption and Object Lock.",
    "storage.backup_bucket": "Bucket for ClickHouse snapshots, the catalog, drill reports and status.",
    "storage.archive_bucket": "Bucket for EMR outputs, Kafka archives and Deep Archive exports.",
    "storage.catalog_prefix": "Prefix of the manifests (always STANDARD class).",
    "storage.encryption": "Server-side encryption of every object this package writes.",
    "storage.encryption.mode": "`SSE-S3` or `SSE-KMS`.",
    "storage.encryption.kms_key_id": "KMS key id, ARN or alias; required with `SSE-KMS`.",
    "storage.object_lock": "Retention put on archived objects when the bucket has Object Lock.",
    "storage.object_lock.mode": "`GOVERNANCE` or `COMPLIANCE`.",
    "storage.object_lock.days": "Retention period in days.",
    "alerts": "Who gets alert emails.",
    "alerts.recipients": "Email addresses for SLA-miss, RPO-breach, failure and drill emails.",
    "alerts.from_email": "Sender address.",
    "deadlines": "SLA deadlines per DAG id: `{reference, after}`.",
    "deadlines.*.reference": "`data_interval_end` or `queued_at`: what the deadline counts from.",
    "deadlines.*.after": "How long after the reference the run must have finished.",
    "*.objectives": "Recovery objectives of this dataset.",
    "*.objectives.rpo": "Recovery point objective: the newest verified point must be younger than this.",
    "*.objectives.rto": "Recovery time objective: a restore (timed by the DR drill) must finish within this.",
}


def describe(path: str, text: str) -> None:
    """Sections register their key descriptions here (kept next to the README generator)."""
    DESCRIPTIONS[path] = text


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        return f"map of {_type_name(get_args(annotation)[1])}"
    if annotation is timedelta:
        return "duration"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default if field.default is not PydanticUndefined else field.default_factory()
    if isinstance(value, BaseModel):
        return "(see keys)"
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"`{seconds // size}{unit}`"
        return f"`{seconds}s`"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "`" + ", ".join(str(v.model_dump()) for v in value) + "`"
    return f"`{value}`" if value not in (None, [], {}) else ("`null`" if value is None else "`[]`")


def rows(model: type[BaseModel] = BackupConfig, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path, _type_name(field.annotation), _default(field)
        sub = _model_of(field.annotation)
        if sub is not None:
            child_prefix = f"{path}[]." if get_origin(field.annotation) is list else f"{path}."
            if get_origin(field.annotation) is dict:
                child_prefix = f"{path}.*."
            yield from rows(sub, child_prefix)


def _key(path: str) -> str:
    """Description key: list markers dropped; every dataset's ``objectives`` shares one entry."""
    key = path.replace("[]", "")
    if ".objectives" in key:
        return "*.objectives" + key.split(".objectives", 1)[1]
    return key


def missing_descriptions() -> list[str]:
    return [path for path, _, _ in rows() if _key(path) not in DESCRIPTIONS]


def markdown() -> str:
    lines = [BEGIN, "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for path, type_name, default in rows():
        lines.append(f"| `{path}` | {type_name} | {default} | {DESCRIPTIONS.get(_key(path), '')} |")
    lines += ["", END]
    return "\n".join(lines)


def update_readme(readme: Path) -> bool:
    """Replace the generated block (or the bare marker) in the README; True when it changed."""
    text = readme.read_text()
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        new = head + markdown() + rest.split(END, 1)[1]
    else:
        new = text.replace("<!-- config-reference -->", markdown())
    readme.write_text(new)
    return new != text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        update_readme(Path(sys.argv[2]))
    else:
        print(markdown())
