"""Compliance policies: YAML files in ``policies/``, validated on load, identified by id + version.

A certificate records the policy's id, version and the sha256 of its file, so that what was
promised (deadlines, thresholds, what happens on failure) can be audited later.
"""

from __future__ import annotations

import calendar
import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TicketKind = Literal["erase_user", "erase_interactions", "take_down_item"]
TICKET_KINDS: tuple[str, ...] = ("erase_user", "erase_interactions", "take_down_item")


class PolicyError(ValueError):
    """A policy file is missing, unreadable or invalid; the message names the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deadline(_Strict):
    """How long a controller has to act, per legal regime (matched by legal-basis prefix)."""

    months: int = Field(0, ge=0, description="calendar months from receipt (GDPR: 1)")
    days: int = Field(0, ge=0, description="days from receipt (CCPA: 45)")
    max_extension_days: int = Field(0, ge=0, description="extension allowed, with a reason")

    def due(self, received_at: datetime, extension_days: int = 0) -> datetime:
        base = _add_months(received_at, self.months) + timedelta(days=self.days)
        return base + timedelta(days=extension_days)


class Batching(_Strict):
    window_minutes: int = Field(60, ge=0, description="oldest ticket waits at most this long")
    max_tickets: int = Field(100, ge=1, description="tickets unlearned jointly in one run")


class Unlearning(_Strict):
    # unlearnrec | influence | reverse_bpr: approximate, verified by the figures; retrain: a
    # full retrain per batch; sisa | grapheraser | receraser: the exact tier, a sharded
    # production model whose affected shards (and aggregation) are retrained per batch (the
    # first batch trains every shard)
    method: Literal[
        "unlearnrec", "retrain", "sisa", "grapheraser", "receraser", "influence", "reverse_bpr"
    ] = "unlearnrec"
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the method's settings: UnlearnRecConfig fields (unlearnrec), training "
        "overrides (retrain), ShardedConfig fields (sisa, grapheraser, receraser)",
    )
    # Per ticket kind overrides of params (e.g. a strong fine-tune for poisoned data).
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("profiles")
    @classmethod
    def _known_kinds(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(TICKET_KINDS))
        if unknown:
            raise ValueError(f"profiles for unknown ticket kinds {unknown}")
        return value


class MembershipAudit(_Strict):
    """The reference-model membership audit (``evaluation/membership.py``: LiRA offline) a final
    verification runs when ``references`` > 0: the unlearned model's attack AUC and TPR at 1% FPR
    on the erased pairs vs held-out ones must sit within these margins of the retrained model's.
    Off by default: K models trained on halves of the data, once per production model."""

    references: int = Field(0, ge=0, description="K reference models; 0: no audit")
    tpr_margin: float = Field(0.01, ge=0, description="|TPR@1%FPR − reference's| at most this")
    auc_margin: float = Field(0.03, ge=0, description="|attack AUC − reference's| at most this")

    @field_validator("references")
    @classmethod
    def _two_or_none(cls, value: int) -> int:
        if value == 1:
            raise ValueError("the audit's global variance needs at least 2 reference models")
        return value


class Thresholds(_Strict):
    mi_bf_ratio: float = Field(0.9, gt=0, description="MI-BF at least this x the reference's")
    mi_ng_tolerance: float = Field(0.2, ge=0, description="MI-NG within ± this share")
    auc_margin: float = Field(0.05, ge=0, description="|MIA AUC − reference AUC| at most this")
    min_utility_ratio: float = Field(0.97, gt=0, le=1.5, description="Recall@20 vs reference")
    membership: MembershipAudit = Field(default_factory=MembershipAudit)


class Verification(_Strict):
    # provisional: certify at once against a quick reference, upgrade when the scheduled full
    # retrain lands; final: wait for the full reference before certifying.
    mode: Literal["provisional", "final"] = "provisional"
    thresholds: Thresholds = Field(default_factory=Thresholds)


PARTITION_METHODS = ("sisa", "grapheraser", "receraser")  # the exact tier's methods


class OnFailure(_Strict):
    # When a batch fails verification: first the ``chain``'s methods in order, each unlearning
    # the batch from the model before it and verified the same way (the first that passes is
    # kept; a partition method is its shard retrain and runs only where the production model is
    # sharded, else it is skipped with the reason recorded); then ``action``.
    chain: list[
        Literal["unlearnrec", "sisa", "grapheraser", "receraser", "influence", "reverse_bpr"]
    ] = Field(default_factory=list)
    action: Literal["retrain", "escalate"] = "retrain"
    max_attempts: int = Field(2, ge=1)


class Retention(_Strict):
    # Earlier dataset versions still hold erased interactions (and models trained on them too):
    # purge them from the DVC cache and remote once no provisional certificate needs them for
    # its final check. ``false`` is a legal hold: they stay, and the ledger says so.
    purge_erased_versions: bool = True


class Policy(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: int = Field(ge=1)
    description: str = ""
    deadlines: dict[str, Deadline]
    batching: Batching = Field(default_factory=Batching)
    unlearning: Unlearning = Field(default_factory=Unlearning)
    verification: Verification = Field(default_factory=Verification)
    on_failure: OnFailure = Field(default_factory=OnFailure)
    retention: Retention = Field(default_factory=Retention)
    sha256: str = Field("", description="hash of the file it was read from (set on load)")

    @field_validator("deadlines")
    @classmethod
    def _has_regimes(cls, value: dict[str, Deadline]) -> dict[str, Deadline]:
        if not value:
            raise ValueError("at least one legal regime (e.g. GDPR) needs a deadline")
        for name, d in value.items():
            if d.months == 0 and d.days == 0:
                raise ValueError(f"deadline for {name} is zero")
            if name != name.upper():
                raise ValueError(
                    f"regime {name!r} must be upper case (legal bases are "
                    "matched as GDPR-..., CCPA-...)"
                )
        return value

    def deadline_for(self, legal_basis: str) -> Deadline:
        """The deadline rule of the regime a legal basis belongs to ("GDPR-17(1)(a)" -> GDPR)."""
        regime = legal_basis.split("-", 1)[0].upper()
        try:
            return self.deadlines[regime]
        except KeyError:
            raise PolicyError(
                f"policy {self.id} v{self.version} has no deadline for {regime!r}"
            ) from None

    def params_for(self, kind: str) -> dict[str, Any]:
        return {**self.unlearning.params, **self.unlearning.profiles.get(kind, {})}

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


def _add_months(when: datetime, months: int) -> datetime:
    """Same day ``months`` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    if months == 0:
        return when
    total = when.month - 1 + months
    year, month = when.year + total // 12, total % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; errors name the file and the offending field."""
    import yaml

    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise PolicyError(f"{path}: a policy must be a mapping with text keys")
    if "sha256" in raw:
        raise PolicyError(f"{path}: sha256 is computed from the file, not written in it")
    try:
        return Policy(**raw, sha256=hashlib.sha256(raw_bytes).hexdigest())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{path}: invalid policy: {problems}") from None
