"""``backup-pipelines catalog ls | show | verify | rebuild-index``: the catalog's commands."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backup_pipelines.cli.render import Output, human_bytes
from backup_pipelines.core import clock
from backup_pipelines.core.config.types import human_duration
from backup_pipelines.core.errors import ConfigError
from backup_pipelines.core.kinds import DatasetKind

if TYPE_CHECKING:
    from backup_pipelines.core.catalog import Catalog
    from backup_pipelines.core.config import BackupConfig
    from backup_pipelines.core.index import IndexEntry


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""


class CatalogCommands:
    """The commands over one config's catalog."""

    def __init__(self, cfg: BackupConfig, catalog: Catalog, out: Output) -> None:
        self.cfg, self.catalog, self.out = cfg, catalog, out

    @classmethod
    def from_config_path(cls, path: str | None, out: Output) -> CatalogCommands:
        from backup_pipelines.core.catalog import Catalog
        from backup_pipelines.core.config import load_config

        cfg = load_config(path)
        return cls(cfg, Catalog.from_config(cfg), out)

    def run(self, args: argparse.Namespace) -> int:
        command = {"ls": self.ls, "show": self.show, "verify": self.verify, "rebuild-index": self.rebuild}
        return command[args.command](args)

    def targets(self, kind: str | None, dataset: str | None) -> list[tuple[DatasetKind, str, float]]:
        """Configured datasets matching the selection, with their RPO in seconds."""
        chosen = [
            (k, name, objectives.rpo.total_seconds())
            for k, name, objectives in self.cfg.datasets()
            if (kind is None or k == kind) and (dataset is None or name == dataset)
        ]
        if not chosen:
            known = ", ".join(f"{k}/{name}" for k, name, _ in self.cfg.datasets()) or "none"
            wanted = "/".join(x for x in (kind, dataset) if x)
            raise ConfigError(f"no configured dataset matches {wanted!r} (configured: {known})")
        return chosen

    # -- ls --------------------------------------------------------------------------------------
    def ls(self, args: argparse.Namespace) -> int:
        if args.dataset:
            return self._points(self.targets(args.kind, args.dataset))
        now, rows, data = clock.utcnow(), [], []
        for kind, name, rpo in self.targets(args.kind, None):
            head = self.catalog.index_head(kind, name)
            newest = head.latest_verified
            age = (now - newest.captured_at).total_seconds() if newest else None
            fresh = age is not None and age <= rpo
            data.append(
                {
                    "kind": kind.value,
                    "dataset": name,
                    "points": head.points,
                    "invalid": head.invalid,
                    "newest_verified": newest.recovery_point_id if newest else None,
                    "captured_at": newest.captured_at.isoformat() if newest else None,
                    "age_seconds": age,
                    "rpo_seconds": rpo,
                    "within_rpo": fresh,
                }
            )
            rows.append(
                [
                    kind.value,
                    name,
                    head.points,
                    head.invalid or "",
                    newest.recovery_point_id if newest else "none",
                    human_duration(age) if age is not None else "",
                    f"{human_duration(rpo)} " + ("ok" if fresh else "BREACHED"),
                ]
            )
        self.out.table(
            "Catalog", ["kind", "dataset", "points", "invalid", "newest verified", "age", "RPO"], rows
        )
        self.out.data(data)
        return 0

    def _points(self, targets: list[tuple[DatasetKind, str, float]]) -> int:
        data: list[dict[str, Any]] = []
        for kind, name, _ in targets:
            listing = self.catalog.list_points(kind, name)
            entries: list[IndexEntry] = listing.entries
            rows = [
                [
                    e.recovery_point_id,
                    _when(e.captured_at),
                    e.state,
                    e.base or "",
                    human_bytes(e.bytes),
                    e.objects,
                    e.storage_class,
                    e.state_reason if e.state != "verified" else "",
                ]
                for e in entries
            ]
            title = f"{kind.value}/{name}: {len(entries)} point(s)"
            self.out.table(
                title, ["id", "captured (UTC)", "state", "base", "size", "objects", "class", "why"], rows
            )
            for item in listing.invalid:
                self.out.line(f"[red]unusable[/] {item.key}: {item.reason}")
            data.append(
                {
                    "kind": kind.value,
                    "dataset": name,
                    "points": [e.model_dump(mode="json") for e in entries],
                    "invalid": [{"key": i.key, "reason": i.reason} for i in listing.invalid],
                }
            )
        self.out.data(data[0] if len(data) == 1 else data)
        return 0

    # -- show ------------------------------------------------------------------------------------
    def show(self, args: argparse.Namespace) -> int:
        kind, name, _ = self._one(args.kind, args.dataset)
        manifest = self.catalog.read(kind, name, args.recovery_point_id)
        state = self.catalog.list_points(kind, name).state_of(manifest.recovery_point_id)
        payload = manifest.model_dump(mode="json", exclude=set() if args.objects else {"objects"})
        payload["effective_state"] = {"state": state.state, "reason": state.reason, "root": state.root}
        payload["object_count"] = len(manifest.objects)
        payload["size_bytes"] = manifest.size_bytes
        self.out.data(payload)
        fields = [
            ("point", manifest.label),
            ("captured (UTC)", _when(manifest.captured_at)),
            ("interval", f"{_when(manifest.interval_start)} .. {_when(manifest.interval_end)}"),
            ("state", state.state),
            ("why", state.reason or ""),
            ("own verification", f"{manifest.verification.state} {_when(manifest.verification.verified_at)}"),
            ("checks", ", ".join(manifest.verification.checks)),
            ("base", manifest.base or "(full)"),
            ("location", manifest.location),
            ("class", manifest.storage_class),
            ("size", f"{human_bytes(manifest.size_bytes)} in {len(manifest.objects)} object(s)"),
            ("rows", sum(manifest.row_counts.values()) if manifest.row_counts else ""),
            ("messages", manifest.message_count if manifest.message_count is not None else ""),
        ]
        self.out.table(manifest.label, ["field", "value"], [list(f) for f in fields if f[1] != ""])
        if args.objects:
            rows = [
                [o.key, human_bytes(o.size), o.storage_class or "", o.sha256 or ""] for o in manifest.objects
            ]
            self.out.table("objects", ["key", "size", "class", "sha256"], rows)
        return 0

    def _one(self, kind: str | None, dataset: str) -> tuple[DatasetKind, str, float]:
        found = self.targets(kind, dataset)
        if len(found) > 1:
            kinds = ", ".join(k.value for k, _, _ in found)
            raise ConfigError(f"dataset {dataset!r} is configured for several kinds ({kinds}); pass --kind")
        return found[0]

    # -- verify and rebuild-index ----------------------------------------------------------------
    def verify(self, args: argparse.Namespace) -> int:
        rows, data = [], []
        for kind, name, _ in self.targets(args.kind, args.dataset):
            differences = self.catalog.check_index(kind, name)
            data.append({"kind": kind.value, "dataset": name, "differences": differences})
            rows += [[kind.value, name, d] for d in differences] or [[kind.value, name, "index matches"]]
        self.out.table("Index against manifests", ["kind", "dataset", "finding"], rows)
        self.out.data(data)
        found = sum(len(d["differences"]) for d in data)
        if found:
            self.out.line(
                f"{found} difference(s); `backup-pipelines catalog rebuild-index` rebuilds from the manifests"
            )
        return 1 if found else 0

    def rebuild(self, args: argparse.Namespace) -> int:
        rows, data = [], []
        for kind, name, _ in self.targets(args.kind, args.dataset):
            index = self.catalog.rebuild_index(kind, name)
            newest = index.latest_verified()
            verified = newest.recovery_point_id if newest else None
            data.append(
                {
                    "kind": kind.value,
                    "dataset": name,
                    "points": len(index.entries),
                    "invalid": [i.key for i in index.invalid],
                    "newest_verified": verified,
                }
            )
            rows.append([kind.value, name, len(index.entries), len(index.invalid) or "", verified or "none"])
        self.out.table("Indexes rebuilt", ["kind", "dataset", "points", "invalid", "newest verified"], rows)
        self.out.data(data)
        return 0
