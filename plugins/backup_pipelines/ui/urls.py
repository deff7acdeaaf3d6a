"""Where the Backups app lives in Airflow's API server (the plugin mounts it, the pages link from it)."""

from __future__ import annotations

URL_PREFIX = "/backups"
NAV_ROUTE = "backups"  # the UI shows the page at /plugin/<NAV_ROUTE>
