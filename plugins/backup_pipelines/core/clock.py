"""The wall clock, in one place: ``captured_at``, ages and RPO read it here, and tests move it here."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC. Callers use ``clock.utcnow()`` (through the module) so a test can shift time."""
    return datetime.now(UTC)
