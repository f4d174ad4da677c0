"""Workflow benchmark: ingest + validation throughput, ticket-to-certificate time, and the share
of Prefect overhead (the same work timed as plain library calls and as flows).

    .venv/bin/python -m flows.bench --tickets 10000 --batch 10 --json docs/bench/workflow.json

Runs on a scratch project root (``--home``, default a temporary folder) built from the pipeline's
outputs (``artifacts/``) and a copy of its dataset (``params.yaml``'s ``data.path``, the bundled
``data/synthetic`` on a fresh clone): run ``python3 dev.py demo`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from prefect import flow

from flows.process_deletions import ProcessParams, validate_tickets

ROOT = Path(__file__).resolve().parent.parent


@flow(name="validate-only")
def validate_flow(params: ProcessParams) -> dict:
    """The validation step of process_deletions on its own, to time it as a flow."""
    return validate_tickets(params)


def _tickets(files, n: int, rng: np.random.Generator, prefix: str, now) -> list[dict]:
    """``n`` valid tickets naming real users and items: erase_user and erase_interactions."""
    users = np.unique(files.fit[:, 0])
    out = []
    received = now.isoformat(timespec="seconds")
    for k, u in enumerate(rng.choice(users, size=n, replace=True)):
        subject = str(files.user_ids[u])
        if k % 2:
            items = files.fit[files.fit[:, 0] == u, 1][:2]
            out.append(
                {
                    "external_id": f"{prefix}-{k}",
                    "kind": "erase_interactions",
                    "subject": subject,
                    "items": [str(files.item_ids[i]) for i in items],
                    "legal_basis": "GDPR-17(1)(a)",
                    "received_at": received,
                }
            )
        else:
            out.append(
                {
                    "external_id": f"{prefix}-{k}",
                    "kind": "erase_user",
                    "subject": subject,
                    "legal_basis": "GDPR-17(1)(a)",
                    "received_at": received,
                }
            )
    return out


def _fresh_home(base: Path) -> Path:
    """A scratch project root: the pipeline's outputs, a copy of its dataset and a params.yaml
    naming that copy (the platform's sync writes into its dataset folder: never the clone's)."""
    import yaml

    from unlearnrec.records.settings import pipeline_data_path

    home = base / f"home-{time.time_ns()}"
    (home / "artifacts").mkdir(parents=True)
    for sub in ("prepared", "base", "encoder"):
        shutil.copytree(ROOT / "artifacts" / sub, home / "artifacts" / sub)
    source = ROOT / (pipeline_data_path(ROOT) or "data/synthetic")
    relative = Path("data") / source.name
    shutil.copytree(source, home / relative)
    params_file = ROOT / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
    params = params or {}
    params.setdefault("data", {})["path"] = str(relative)
    (home / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "policies", home / "policies")
    os.environ["UNLEARNREC_HOME"] = str(home)
    return home


def _platform(home: Path):
    from unlearnrec.compliance.lifecycle import bootstrap
    from unlearnrec.compliance.platform import Platform
    from unlearnrec.compliance.versions import current_dataset, read_dataset_version
    from unlearnrec.ledger import session_scope
    from unlearnrec.records.settings import get_settings, pipeline_data_path

    platform = Platform.open(get_settings(home=home), actor="bench")
    art = home / "artifacts"
    bootstrap(
        platform,
        data_dir=home / (pipeline_data_path(home) or "data/synthetic"),
        splits_path=art / "prepared/splits.npz",
        model_path=art / "base/model.pt",
        encoder_path=art / "encoder/encoder.pt",
        ladder_path=art / "ladder/ladder.json",
    )
    with session_scope(platform.engine) as session:
        files = read_dataset_version(platform, current_dataset(session))
    return platform, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--home", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    base = Path(args.home or tempfile.mkdtemp(prefix="unlearnrec-bench-"))
    from unlearnrec.compliance.ingest import ingest_inbox
    from unlearnrec.files import atomic_write_text
    from unlearnrec.ledger import utcnow

    result: dict = {"tickets": args.tickets, "batch": args.batch}
    rng = np.random.default_rng(0)

    # 1. Ingest + validation of N tickets: library calls.
    home = _fresh_home(base)
    platform, files = _platform(home)
    tickets = _tickets(files, args.tickets, rng, "LIB", utcnow())
    atomic_write_text(platform.settings.inbox / "bulk.json", json.dumps(tickets))
    from flows.validation import warm_up

    warm_up()  # GX's import and context: paid once per worker process, not per batch
    t0 = time.perf_counter()
    ingest_inbox(platform, now=utcnow())
    t1 = time.perf_counter()
    counts = validate_tickets.fn(ProcessParams(home=str(home)))
    t2 = time.perf_counter()
    result["library"] = {
        "ingest_seconds": t1 - t0,
        "validate_seconds": t2 - t1,
        "tickets_per_second": args.tickets / (t2 - t0),
        **counts,
    }

    # 2. The same through the Prefect flows (local server started before timing).
    from flows.ingest import IngestParams, ingest

    home = _fresh_home(base)
    platform, files = _platform(home)
    validate_flow(ProcessParams(home=str(home)))  # starts the server; nothing to validate yet
    tickets = _tickets(files, args.tickets, rng, "FLOW", utcnow())
    atomic_write_text(platform.settings.inbox / "bulk.json", json.dumps(tickets))
    t0 = time.perf_counter()
    ingest(IngestParams(home=str(home)))
    t1 = time.perf_counter()
    validate_flow(ProcessParams(home=str(home)))
    t2 = time.perf_counter()
    lib_total = result["library"]["ingest_seconds"] + result["library"]["validate_seconds"]
    result["prefect"] = {
        "ingest_seconds": t1 - t0,
        "validate_seconds": t2 - t1,
        "tickets_per_second": args.tickets / (t2 - t0),
        "overhead_share": max(0.0, 1 - lib_total / (t2 - t0)),
    }

    # 3. Ticket to certificate for one batch, through the flows.
    from flows.process_deletions import process_deletions

    home = _fresh_home(base)
    platform, files = _platform(home)
    tickets = _tickets(files, args.batch, rng, "BATCH", utcnow())
    atomic_write_text(platform.settings.inbox / "batch.json", json.dumps(tickets))
    t0 = time.perf_counter()
    ingest(IngestParams(home=str(home), device=args.device))
    runs = process_deletions(ProcessParams(home=str(home), device=args.device, force=True))
    t1 = time.perf_counter()
    run = runs[0]
    result["ticket_to_certificate"] = {
        "seconds": t1 - t0,
        "certificates": len(run.certificates),
        "status": run.status,
        "unlearn_seconds": run.timings.get("unlearn_seconds"),
        "encoder_refresh_seconds": run.timings.get("encoder_refresh_seconds"),
        "verification": {
            "mode": run.verification.mode if run.verification else None,
            "passed": run.verification.passed if run.verification else None,
        },
    }
    result["command"] = " ".join(
        [Path(sys.executable).name, "-m", "flows.bench", *(argv or sys.argv[1:])]
    )
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
