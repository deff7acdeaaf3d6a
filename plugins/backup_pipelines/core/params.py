"""Manual-run params: the Params form a person fills in, and the typed model a task reads it into.

Each DAG with params declares a ``RunParams`` model (its fields are the form's keys). The first
task of the run reads ``context["params"]`` into it before any side effect: a key the DAG does not
know (a typo such as ``target_tme``, from the form's JSON or the REST API) or a value of the wrong
shape fails the run with one line naming the key and what is allowed. Airflow itself accepts
unknown keys in ``conf``, so this is where they are refused.

The form helpers build ``Param`` objects that the Airflow 3 form can submit with their defaults:
optional values are nullable (``["null", ...]``, default ``None``), choices are dropdowns, every
field has a title and a description.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from backup_pipelines.core.errors import ParamError


class RunParams(BaseModel):
    """Base of every DAG's params model: unknown keys refused, values validated, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_context(cls, context: Any) -> Self:
        """The run's params, validated; raises ``ParamError`` naming the first bad key."""
        dag_run = context.get("dag_run")
        conf = dict(getattr(dag_run, "conf", None) or {})
        known = sorted(cls.model_fields)
        unknown = sorted(set(conf) - set(known))
        if unknown:
            raise ParamError(
                f"unknown param(s) {', '.join(repr(k) for k in unknown)}; "
                f"{getattr(dag_run, 'dag_id', 'this DAG')} takes: {', '.join(known)}"
            )
        params = context.get("params") or {}
        values = {key: params[key] for key in known if key in params and params[key] is not None}
        return cls.parse(values)

    @classmethod
    def parse(cls, values: dict[str, Any]) -> Self:
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ParamError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown param {where!r}")
            continue
        message = item["msg"].removeprefix("Value error, ")
        if not where:  # a rule across params names them itself
            problems.append(f"params: {message}")
            continue
        shown = item.get("input")
        problems.append(f"param {where}: {message}" + (f" (got {shown!r})" if shown is not None else ""))
    return "; ".join(problems)


def parse_time(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC), or None."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-23T14:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- form helpers (parse time: cheap, no I/O) -------------------------------------------------------
def text_param(
    title: str, description: str, *, pattern: str | None = None, default: str | None = None
) -> Any:
    """An optional text field (empty is allowed and means "not given")."""
    from airflow.sdk import Param

    extra: dict[str, Any] = {"pattern": pattern} if pattern else {}
    return Param(default, type=["null", "string"], title=title, description=description, **extra)


def int_param(title: str, description: str, *, minimum: int | None = 0, default: int | None = None) -> Any:
    from airflow.sdk import Param

    extra: dict[str, Any] = {"minimum": minimum} if minimum is not None else {}
    return Param(default, type=["null", "integer"], title=title, description=description, **extra)


def flag_param(title: str, description: str, *, default: bool = False) -> Any:
    from airflow.sdk import Param

    return Param(default, type="boolean", title=title, description=description)


def choice_param(
    title: str,
    description: str,
    choices: Sequence[str],
    *,
    default: str | None,
    optional: bool = False,
    labels: dict[str, str] | None = None,
) -> Any:
    """A dropdown of ``choices`` (``labels``: what the form shows for a value); ``optional`` adds
    an empty choice (None)."""
    from airflow.sdk import Param

    values: list[Any] = [None, *choices] if optional else list(choices)
    kind: Any = ["null", "string"] if optional else "string"
    extra: dict[str, Any] = {"values_display": labels} if labels else {}
    return Param(default, type=kind, enum=values, title=title, description=description, **extra)


def list_param(title: str, description: str, *, choices: Sequence[str] | None = None) -> Any:
    """An optional list of strings, one a line (a multi-select when the choices are known)."""
    from airflow.sdk import Param

    items: dict[str, Any] = {"type": "string"}
    extra: dict[str, Any] = {"examples": list(choices)} if choices else {}
    return Param(None, type=["null", "array"], items=items, title=title, description=description, **extra)
