"""Flow ``ingest``: ticket files in the inbox -> tickets in the ledger."""

from __future__ import annotations

import re

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import TIMEOUTS, FlowParams
from unlearnrec.compliance.ingest import IngestSummary, ingest_inbox, log_safe
from unlearnrec.ledger import utcnow


class IngestParams(FlowParams):
    pass


# Idempotent I/O (known external ids are not recorded twice): safe to retry.
@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS.ingest)
def ingest_files(params: IngestParams) -> IngestSummary:
    platform = params.platform(actor="flow:ingest")
    return ingest_inbox(platform, now=utcnow(), actor="flow:ingest")


def refused_markdown(summary: IngestSummary) -> str:
    """The quarantined files as a Markdown list for the flow's artifact (empty: none). Files are
    named by their label and every character that Markdown could act on is escaped."""
    if not summary.refused_files:
        return ""
    lines = [
        f"- `{label}`: {_escape(reason.split(':', 1)[-1].strip())}"
        for label, reason in summary.refused_files
    ]
    return "Quarantined in `inbox/refused/`:\n\n" + "\n".join(lines) + "\n\n"


def _escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#+!|~$:@.&=^])", r"\\\1", " ".join(text.split()))


@flow(name="ingest", log_prints=False, timeout_seconds=TIMEOUTS.ingest_flow)
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
    for label, reason in summary.refused_files:  # labels and reasons quote no input
        logger.warning("quarantined %s: %s", label, log_safe(reason))
    create_table_artifact(
        key="ingest-summary",
        table=[
            {
                "files": summary.files,
                "new": summary.created,
                "resubmitted": summary.resubmitted,
                "rejected at intake": summary.rejected_at_intake,
                "refused files": len(summary.refused_files),
            }
        ],
        description="tickets taken from the inbox",
    )
    refused = refused_markdown(summary)
    if refused:  # a list with reasons (escaped): prose, not a table
        create_markdown_artifact(
            key="ingest-refused", markdown=refused, description="files quarantined"
        )
    return summary
