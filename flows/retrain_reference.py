"""Flow ``retrain_reference``: a full retrain on the current dataset. It is the reference that
verification compares against (provisional certificates are upgraded to final here) and the
fallback model when verification fails."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.common import TIMEOUTS, FlowParams
from unlearnrec.compliance.lifecycle import ReferenceSummary, apply_retention
from unlearnrec.compliance.lifecycle import retrain_reference as retrain_and_upgrade
from unlearnrec.compliance.process import PROCESSING_LEASE
from unlearnrec.compliance.scratch import sweep
from unlearnrec.ledger.leases import hold


class ReferenceParams(FlowParams):
    wait_seconds: float = Field(
        1800.0, ge=0, description="wait this long for a processing pass to finish, then fail"
    )


@task(cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS.reference)
def retrain(params: ReferenceParams) -> ReferenceSummary:
    return retrain_and_upgrade(
        params.platform(actor="flow:retrain_reference"), device=params.device
    )


@task(cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS.retention)
def retention(params: ReferenceParams) -> list[str]:
    return apply_retention(params.platform(actor="flow:retrain_reference"))


def retrain_configuration(overrides: dict) -> str:
    """The training fields the reference overrode (params.yaml's ``retrain:``), for a table
    cell: ``batch_size=2048, lr=0.02``; without any, the base model's own configuration."""
    if not overrides:
        return "base model's training config"
    return ", ".join(f"{key}={value}" for key, value in sorted(overrides.items()))


@flow(name="retrain_reference", timeout_seconds=TIMEOUTS.reference_flow)
def retrain_reference(params: ReferenceParams | None = None) -> ReferenceSummary:
    params = params or ReferenceParams()
    logger = get_run_logger()
    platform = params.platform(actor="flow:retrain_reference")
    # Not while a processing pass changes the production model and the certificates.
    with hold(platform.engine, PROCESSING_LEASE, wait=params.wait_seconds) as lease:
        if not lease.acquired:
            raise RuntimeError(
                f"a processing pass held the lease for {lease.waited:.0f} s: reference not run"
            )
        sweep(platform.settings.var)
        summary = retrain(params)
        purged = retention(params)
    configuration = retrain_configuration(summary.overrides)
    logger.info(
        "reference retrained in %.1fs (%s); %d certificates upgraded to final; %d runs "
        "failed the final check; %d versions purged",
        summary.seconds,
        configuration,
        len(summary.upgraded),
        len(summary.failed),
        len(purged),
    )
    create_table_artifact(
        key="retrain-reference-summary",
        table=[
            {
                "seconds": round(summary.seconds, 1),
                "retrain configuration": configuration,
                "upgraded": len(summary.upgraded),
                "failed final check": len(summary.failed),
                "purged versions": len(purged),
            }
        ],
        description="reference retrain and certificate upgrades",
    )
    return summary
