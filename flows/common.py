"""What the flows share: their parameter base model, opening the platform, stage timeouts."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from unlearnrec.compliance.platform import Platform
from unlearnrec.records.settings import get_settings


class FlowParams(BaseModel):
    """Overrides of the environment settings (``UNLEARNREC_*``); empty: use them as they are."""

    home: str | None = Field(None, description="project root (default: the working directory)")
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda:N")

    def platform(self, actor: str) -> Platform:
        overrides = {"home": self.home} if self.home else {}
        return Platform.open(get_settings(**overrides), actor=actor)


class StageTimeouts(BaseSettings):
    """Seconds each flow and task may run before Prefect fails it (``TimeoutError``, the run
    ``Failed``, so the orchestrator's notifications see a stage that hangs). Read from
    ``UNLEARNREC_TIMEOUT_<NAME>`` when the flows module is imported (a worker's environment).
    A batch killed by its timeout is resumed by the next pass at its last completed stage."""

    model_config = SettingsConfigDict(env_prefix="UNLEARNREC_TIMEOUT_", extra="ignore")

    ingest: float = Field(600, gt=0, description="reading the inbox")
    validate_tickets: float = Field(900, gt=0, description="the ticket-batch suite")
    plan: float = Field(120, gt=0, description="planning batches (reads the ledger)")
    batch: float = Field(4 * 3600, gt=0, description="one batch: purge, unlearn, verify, certify")
    retention: float = Field(1800, gt=0, description="retention (DVC gc, pipeline sync)")
    reference: float = Field(12 * 3600, gt=0, description="the reference retrain and upgrades")
    process_flow: float = Field(24 * 3600, gt=0, description="a whole processing pass")
    reference_flow: float = Field(14 * 3600, gt=0, description="a whole reference pass")
    ingest_flow: float = Field(1800, gt=0, description="a whole ingest pass")


TIMEOUTS = StageTimeouts()
