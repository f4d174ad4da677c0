"""Scheduled deployments of the three flows, served by one process.

    .venv/bin/python -m flows.deployments          # serve against PREFECT_API_URL (or local)

Schedules (UTC cron): ingest every 5 minutes, process_deletions hourly (the policy's batching
window decides what is ready), retrain_reference nightly at 02:00.
"""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from flows.ingest import ingest
from flows.process_deletions import process_deletions
from flows.retrain_reference import retrain_reference

SCHEDULES = {
    "ingest-every-5-min": (ingest, "*/5 * * * *"),
    "process-deletions-hourly": (process_deletions, "0 * * * *"),
    "retrain-reference-nightly": (retrain_reference, "0 2 * * *"),
}


# One flow run at a time for the flows that write models and certificates; a run scheduled while
# one is going is cancelled (the next schedule picks up what is left). The ledger's processing
# lease also covers runs started outside these deployments.
ONE_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)
SINGLE_RUN = {"process-deletions-hourly", "retrain-reference-nightly"}


def deployments():
    return [
        fl.to_deployment(
            name=name, cron=cron, concurrency_limit=ONE_AT_A_TIME if name in SINGLE_RUN else None
        )
        for name, (fl, cron) in SCHEDULES.items()
    ]


if __name__ == "__main__":
    serve(*deployments())
