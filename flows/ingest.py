"""Flow ``ingest``: ticket files in the inbox -> tickets in the ledger."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import FlowParams, markdown_table
from unlearnrec.compliance.ingest import IngestSummary, ingest_inbox
from unlearnrec.ledger import utcnow


class IngestParams(FlowParams):
    pass


# Idempotent I/O (known external ids are not recorded twice): safe to retry.
@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ingest_files(params: IngestParams) -> IngestSummary:
    platform = params.platform(actor="flow:ingest")
    return ingest_inbox(platform, now=utcnow(), actor="flow:ingest")


@flow(name="ingest", log_prints=False)
def ingest(params: IngestParams | None = None) -> IngestSummary:
    params = params or IngestParams()
    logger = get_run_logger()
    summary = ingest_files(params)
    logger.info(
        "ingested %d files: %d new tickets, %d resubmitted, %d rejected at intake, "
        "%d files refused",
        summary.files,
        summary.created,
        summary.resubmitted,
        summary.rejected_at_intake,
        len(summary.refused_files),
    )
    create_markdown_artifact(
        key="ingest-summary",
        markdown="## Ingest\n\n"
        + markdown_table(
            [
                {
                    "files": summary.files,
                    "new": summary.created,
                    "resubmitted": summary.resubmitted,
                    "rejected at intake": summary.rejected_at_intake,
                    "refused files": len(summary.refused_files),
                }
            ],
            ["files", "new", "resubmitted", "rejected at intake", "refused files"],
        ),
        description="tickets taken from the inbox",
    )
    return summary
