"""``unlearnrec flows run ...`` (run a Prefect flow once) and ``unlearnrec demo`` (the main job),
registered as an ``unlearnrec.commands`` entry point: the core CLI offers them without importing
``flows``. Nothing heavy is imported at parse time: Prefect and the flows load inside the
commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unlearnrec.cli import UsageError, device_arg


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds >= 0")
    return value


def cmd_flows_run(args: argparse.Namespace) -> int:
    common = {"home": args.home, "device": args.device}
    if args.flow == "ingest":
        from flows.ingest import IngestParams, ingest

        ingest(IngestParams(**common))
    elif args.flow == "process":
        from flows.process_deletions import BatchFailed, ProcessParams, process_deletions

        try:
            process_deletions(ProcessParams(**common, force=args.force, wait_seconds=args.wait))
        except BatchFailed as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    else:
        from flows.retrain_reference import ReferenceParams, retrain_reference

        retrain_reference(ReferenceParams(**common))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not Path(args.root).is_dir():
        raise UsageError(f"--root {args.root} is not a folder")
    from flows.demo import run_demo

    return run_demo(Path(args.root), fresh=args.fresh, device=args.device)


def add_commands(sub: argparse._SubParsersAction) -> None:
    fl = sub.add_parser("flows", help="run a Prefect flow once (deployments: flows/deployments.py)")
    fsub = fl.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    p = fsub.add_parser("run", help="run ingest, process or reference now")
    p.add_argument("flow", choices=["ingest", "process", "reference"])
    p.add_argument("--force", action="store_true", help="process: don't wait for the window")
    p.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="process: wait this long for a pass already running (default: skip at once)",
    )
    p.add_argument("--device", type=device_arg, default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--home",
        default=None,
        help="project root (default: UNLEARNREC_HOME or the working directory)",
    )
    p.set_defaults(func=cmd_flows_run)

    p = sub.add_parser("demo", help="the main job: pipeline, sample tickets, flows, certificates")
    p.add_argument("--root", default=".", help="repository root")
    p.add_argument("--fresh", action="store_true", help="start from an empty ledger and store")
    p.add_argument("--device", type=device_arg, default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=cmd_demo)
