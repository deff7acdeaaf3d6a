"""Loading the config file: one line per problem, naming the file, the field and what is allowed."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from backup_pipelines.core.config import paths
from backup_pipelines.core.config.model import BackupConfig
from backup_pipelines.core.errors import ConfigError


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Walk the model along ``loc`` to list the keys allowed where an unknown one was found."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        annotation = current.model_fields[part].annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_validation_error(path: Path | str, error: ValidationError) -> str:
    """One line per problem: file, field, what is wrong and what is allowed."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        field = _field_path(loc) or "<top level>"
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(BackupConfig, loc)
            message = f"unknown key {loc[-1]!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
            field = _field_path(loc[:-1]) or "<top level>"
        elif item["type"] == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            message = f"{item['input']!r} is not allowed; expected {expected}"
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            message = item["msg"].removeprefix("Value error, ")
        if not loc and re.match(r"^[\w.\[\]]+: ", message):  # a rule across sections names its key
            problems.append(message)
            continue
        problems.append(f"{field}: {message}")
    return f"invalid config {path}: " + "; ".join(problems)


def config_path() -> Path:
    return Path(os.environ.get(paths.CONFIG_ENV_VAR) or paths.DEFAULT_CONFIG_PATH)


def load_config(path: Path | str | None = None) -> BackupConfig:
    """Load and validate the config; raise ``ConfigError`` with a one-line message on any problem."""
    resolved = Path(path) if path else config_path()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise ConfigError(f"config file {resolved} cannot be read: {exc.strerror}") from None
    return _load_cached(str(resolved), stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int) -> BackupConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid config {path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config {path}: the top level must be a mapping of sections")
    try:
        return BackupConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
