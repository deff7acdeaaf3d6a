"""The ``backup-pipelines`` command: argument parsing and exit codes (0 fine, 1 findings, 2 errors)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from backup_pipelines.core.kinds import DatasetKind

KINDS = [k.value for k in DatasetKind]


def _json(parser: argparse.ArgumentParser) -> None:
    """``--json`` after the command too (``catalog ls --json``), as before it."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON on stdout")


def _selection(parser: argparse.ArgumentParser) -> None:
    _json(parser)
    parser.add_argument("--kind", choices=KINDS, help="only datasets of this catalog kind")
    parser.add_argument("--dataset", help="only this dataset (every configured one by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backup-pipelines",
        description="The backup catalog without Airflow (same config and connections).",
    )
    parser.add_argument("--config", help="config file (default: BACKUP_PIPELINES_CONFIG or the shipped one)")
    parser.add_argument("--json", action="store_true", help="JSON on stdout instead of tables, for scripts")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    top = parser.add_subparsers(dest="group", required=True)
    catalog = top.add_parser("catalog", help="recovery points, manifests and the per-dataset index")
    commands = catalog.add_subparsers(dest="command", required=True)
    ls = commands.add_parser("ls", help="datasets with their newest verified point, or one dataset's points")
    _selection(ls)
    show = commands.add_parser("show", help="one recovery point's manifest (its objects with --objects)")
    show.add_argument("dataset", help="dataset name (as in the config)")
    show.add_argument("recovery_point_id")
    show.add_argument("--kind", choices=KINDS, help="catalog kind, when the name is used by two kinds")
    show.add_argument("--objects", action="store_true", help="list the point's objects too")
    _json(show)
    verify = commands.add_parser(
        "verify", help="compare each index with the manifests (exit 1 on a difference)"
    )
    _selection(verify)
    rebuild = commands.add_parser("rebuild-index", help="rebuild indexes from the manifests")
    _selection(rebuild)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(message)s",
    )
    from backup_pipelines.cli.catalog import CatalogCommands
    from backup_pipelines.cli.render import Output
    from backup_pipelines.core.errors import BackupPipelinesError

    out = Output(json_mode=args.json)
    try:
        commands = CatalogCommands.from_config_path(args.config, out)
        return commands.run(args)
    except BackupPipelinesError as exc:
        out.error(str(exc))
        return 2


if __name__ == "__main__":  # pragma: no cover - python -m backup_pipelines.cli.main
    sys.exit(main())
