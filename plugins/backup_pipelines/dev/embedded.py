"""Command line of the embedded stack::

python -m backup_pipelines.dev.embedded up [--dir .embedded]   # run until Ctrl-C, env in <dir>/stack.env
python -m backup_pipelines.dev.embedded airflow [--port 8080]    # make airflow: Airflow on the stack
python -m backup_pipelines.dev.embedded seed --dir D             # seed the demo data into a running stack
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from pathlib import Path

from backup_pipelines.dev.processes import HOST, signals_raise
from backup_pipelines.dev.stack import EmbeddedStack, run_smtp_sink


def _cmd_up(args: argparse.Namespace) -> int:
    with signals_raise(), EmbeddedStack(Path(args.dir)) as stack:
        print(
            f"embedded stack up; S3 {stack.s3_endpoint}, Kafka {stack.kafka_bootstrap}, "
            f"SMTP {HOST}:{stack.smtp_port}"
        )
        print(f"chDB directory {stack.chdb_dir}; environment in {stack.base_dir / 'stack.env'}")
        print("Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    """Seed the demo data into a running stack; prints what was seeded as one JSON line."""
    import json
    import os
    from datetime import UTC, datetime

    from backup_pipelines.dev.seeding import seed_demo_data

    stack = EmbeddedStack.attach(Path(args.dir))
    os.environ.update(stack.env())
    print(json.dumps(seed_demo_data(stack, datetime.now(UTC))))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backup_pipelines.dev.embedded", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and wait for Ctrl-C")
    up.add_argument("--dir", default=".embedded")
    af = sub.add_parser("airflow", help="Airflow (Postgres, LocalExecutor) on the embedded stack")
    af.add_argument("--dir", default=".embedded")
    af.add_argument("--port", type=int, default=8080, help="port of the Airflow UI and REST API")
    af.add_argument("--no-seed", action="store_true", help="do not seed the demo data")
    af.add_argument("--paused", action="store_true", help="leave every DAG paused (unpause them in the UI)")
    af.add_argument("--database", default="airflow", help="Airflow's database (created anew on the server)")
    seed = sub.add_parser("seed", help="seed the demo data into the stack running under --dir")
    seed.add_argument("--dir", default=".embedded")
    sink = sub.add_parser("smtp-sink", help=argparse.SUPPRESS)
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--maildir", required=True)
    args = parser.parse_args(argv)
    level = logging.WARNING if args.command == "airflow" else logging.INFO  # airflow: one line per step
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "smtp-sink":
        run_smtp_sink(args.port, Path(args.maildir))
        return 0
    if args.command == "seed":
        return _cmd_seed(args)
    if args.command == "airflow":
        from backup_pipelines.dev.launcher import run_airflow

        return run_airflow(args)
    return _cmd_up(args)


if __name__ == "__main__":
    sys.exit(main())
