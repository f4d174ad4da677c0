"""Scheduled deployments of the three flows, served by one process.

    .venv/bin/python -m flows.deployments          # serve against PREFECT_API_URL (or local)

Schedules (UTC cron): ingest every 5 minutes, process_deletions hourly (the policy's batching
window decides what is ready), retrain_reference nightly at 02:00.
"""

from __future__ import annotations

from prefect import serve

from flows.ingest import ingest
from flows.process_deletions import process_deletions
from flows.retrain_reference import retrain_reference

SCHEDULES = {
    "ingest-every-5-min": (ingest, "*/5 * * * *"),
    "process-deletions-hourly": (process_deletions, "0 * * * *"),
    "retrain-reference-nightly": (retrain_reference, "0 2 * * *"),
}


def deployments():
    return [fl.to_deployment(name=name, cron=cron) for name, (fl, cron) in SCHEDULES.items()]


if __name__ == "__main__":
    serve(*deployments())
