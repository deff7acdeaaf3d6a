"""The README's config reference is generated from the model: every key described, README current."""

from __future__ import annotations

from pathlib import Path

from backup_pipelines.dev.config_reference import markdown, missing_descriptions

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_config_key_has_a_description() -> None:
    assert missing_descriptions() == []


def test_readme_holds_the_current_reference() -> None:
    assert markdown() in README.read_text(), (
        "README config reference is stale: run"
        " `python -m backup_pipelines.dev.config_reference --write README.md`"
    )
