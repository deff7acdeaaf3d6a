"""hooks of backup-pipelines."""

from __future__ import annotations
