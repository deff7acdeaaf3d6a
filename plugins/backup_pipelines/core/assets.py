"""Recovery points as Airflow Assets: one asset per dataset and kind, ``backup://<kind>/<dataset>``.

A pipeline task that writes recovery points declares its outlets in the DAG file: the asset itself
(``recovery_point_asset``), one task per dataset, as every DAG here does. Its kind's alias
(``recovery_points_alias``) is supported for a mapped task, but an alias's asset is created by its
first event, and two runs recording that first event at once fail one of them in the API server
(a unique-key violation): declare the assets. Its operator mixes in ``EmitsRecoveryPoints`` and calls
``emit_recovery_point`` once per point it wrote: the event's extra carries the point's id and state
(its own verification state, as the catalog records it), capture time, bytes, class and catalog key.

A downstream DAG (or the drill) is scheduled on them like on any asset::

    from backup_pipelines.core.assets import recovery_point_asset

    with DAG("refresh_reporting", schedule=recovery_point_asset("clickhouse_snapshot", "analytics")):
        ...  # context["triggering_asset_events"] holds the events, each with the point's extra
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from backup_pipelines.core.errors import ConfigError

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias, Context

    from backup_pipelines.core.manifest import Manifest

log = logging.getLogger(__name__)

SCHEME = "backup"
GROUP = "backup-pipelines"


def asset_uri(kind: str, dataset: str) -> str:
    return f"{SCHEME}://{kind}/{dataset}"


def recovery_point_asset(kind: str, dataset: str) -> Asset:
    """The asset of one protected dataset: its events are its recovery points."""
    from airflow.sdk import Asset

    return Asset(uri=asset_uri(kind, dataset), name=f"{kind}/{dataset}", group=GROUP)


def recovery_points_alias(kind: str) -> AssetAlias:
    """The alias a mapped (or multi-dataset) task declares; each event names its dataset's asset."""
    from airflow.sdk import AssetAlias

    return AssetAlias(name=f"{SCHEME}-{kind}", group=GROUP)


def event_extra(manifest: Manifest, catalog_url: str | None = None) -> dict[str, Any]:
    """What an event tells about its point (no secret: ids, times, sizes, the catalog key)."""
    extra: dict[str, Any] = {
        "recovery_point_id": manifest.recovery_point_id,
        "state": manifest.verification.state,
        "captured_at": manifest.captured_at.isoformat(),
        "bytes": manifest.size_bytes,
        "storage_class": manifest.storage_class,
        "base": manifest.base,
    }
    if catalog_url:
        extra["manifest"] = catalog_url
    return extra


class EmitsRecoveryPoints:
    """Mixin of the operators that write recovery points: one asset event per point written."""

    outlets: Any

    def emit_recovery_point(self, context: Context, manifest: Manifest) -> None:
        """Record the point on its dataset's asset (a declared outlet, or through its kind's alias)."""
        from backup_pipelines.core.catalog import Catalog
        from backup_pipelines.core.config import load_config

        if "outlet_events" not in context:  # executed outside a task runner (a script, a test)
            log.debug("no outlet events in this context: no asset event for %s", manifest.label)
            return
        asset = recovery_point_asset(manifest.kind, manifest.dataset)
        alias = recovery_points_alias(manifest.kind)
        cfg = load_config()
        url = Catalog.from_config(cfg).url_for(manifest.kind, manifest.dataset, manifest.recovery_point_id)
        extra = event_extra(manifest, url)
        events = context["outlet_events"]
        declared = list(getattr(self, "outlets", None) or [])
        if asset in declared:
            events[asset].extra = extra
        elif alias in declared:
            events[alias].add(asset, extra=extra)
        else:
            raise ConfigError(
                f"{getattr(self, 'task_id', type(self).__name__)}: wrote {manifest.label} but declares "
                f"neither outlet {asset.uri} nor alias {alias.name}; add one in the DAG file"
            )
        log.info("Asset event: %s %s (%s)", asset.uri, manifest.recovery_point_id, extra["state"])

    def emit_recovery_point_of(
        self, context: Context, kind: str, dataset: str, recovery_point_id: str
    ) -> None:
        """The same, for a point a service wrote and named (read back from the catalog)."""
        from backup_pipelines.core.catalog import Catalog
        from backup_pipelines.core.config import load_config

        self.emit_recovery_point(
            context, Catalog.from_config(load_config()).read(kind, dataset, recovery_point_id)
        )
