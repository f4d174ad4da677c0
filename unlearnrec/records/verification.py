"""The verification record: what a run's verification measured and decided, typed.

``compliance.modeling.verify`` builds a :class:`VerificationReport`; the ledger keeps it as the
JSON column ``UnlearningRun.verification`` (written by :func:`record`, the only caller of
``to_dict``, read back by :func:`report_of`, the only caller of ``from_dict``); certificates copy
that JSON as their ``verification`` field. The JSON keys are the ones ledgers and certificates
have always held, so old rows read and old certificates verify. Torch-free and pydantic-free at
import (the bench may use :class:`Figures`; the dashboard reads reports).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from unlearnrec.records.policy import Thresholds

PROVISIONAL, FINAL = "provisional", "final"

# The forgetting figures, in the order the JSON has always listed them; other keys of a figures
# dict are the utility metrics (``recall@20``, ``ndcg@20``, ...).
_FIGURES = ("mi_bf", "mi_ng", "mia_auc", "mia_auc_threshold", "score_forgotten", "score_negative")


class Measured(Protocol):
    """What ``forgetting.ModelForgetting`` offers (typed here without importing torch)."""

    mi_bf: float
    mi_ng: float
    mia_auc: float
    mia_auc_threshold: float
    score_forgotten: float
    score_negative: float
    utility: dict[str, float]


@dataclass(frozen=True)
class Figures:
    """One model's forgetting figures on the erased edges, and its utility. A figure is None
    where a record did not keep it (older or hand-written rows)."""

    mi_bf: float | None = None
    mi_ng: float | None = None
    mia_auc: float | None = None
    mia_auc_threshold: float | None = None
    score_forgotten: float | None = None
    score_negative: float | None = None
    utility: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, m: Measured) -> Figures:
        return cls(**{k: getattr(m, k) for k in _FIGURES}, utility=dict(m.utility))

    def get(self, key: str) -> float | None:
        """A figure or utility metric by its JSON key (``mi_bf``, ``recall@20``)."""
        return getattr(self, key) if key in _FIGURES else self.utility.get(key)

    def to_dict(self) -> dict[str, float]:
        out = {k: getattr(self, k) for k in _FIGURES if getattr(self, k) is not None}
        return {**out, **self.utility}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Figures:
        return cls(
            **{k: d[k] for k in _FIGURES if k in d},
            utility={k: v for k, v in d.items() if k not in _FIGURES},
        )


@dataclass(frozen=True)
class VerificationReport:
    """One verification: ``mode`` provisional (no retrained reference yet) or final, the
    verdict and its reasons, the figures of the unlearned model and of the reference, the
    policy's thresholds, and the evidence of the exact tier or the membership audit.

    ``exact``, ``membership`` and ``ratios`` keep the shapes their producers write
    (``compliance.modeling.exactness``, ``membership.evidence_record``, ``forgetting.compare``).
    ``extra``: keys this version does not know, kept so a row reads back unchanged."""

    mode: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    removed_training_edges: int | None = None
    thresholds: Thresholds | None = None
    tier: str | None = None  # "exact" when the shard manifests are the proof
    exact: dict[str, Any] | None = None
    unlearned: Figures | None = None
    # provisional, when erased users or items reset nodes: the AUC over the other erased edges
    kept_edges_mia_auc: float | None = None
    reference: Figures | None = None
    ratios: dict[str, float] | None = None
    over_unlearning: bool | None = None
    under_unlearning: bool | None = None
    membership: dict[str, Any] | None = None
    reference_model_sha256: str | None = None  # the final check of the scheduled reference
    fallback: str | None = None  # the method whose model was kept instead ("retrain": a full
    # retrain was promoted), when the policy's method failed
    failed_unlearning: list[str] | None = None  # the reasons unlearning failed, on a fallback
    # the policy's fallback chain as it ran: per method, skipped (why) or verified (passed, why)
    chain: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.mode == FINAL

    def with_retrain_fallback(self) -> VerificationReport:
        """This failed report once a full retrain (which never saw the erased data) is promoted:
        final and passed, the unlearning's reasons kept under ``failed_unlearning``."""
        return replace(
            self,
            fallback="retrain",
            passed=True,
            mode=FINAL,
            failed_unlearning=list(self.reasons),
            reasons=["promoted a full retrain"],
        )

    def with_fallback(self, method: str, kept: VerificationReport) -> VerificationReport:
        """``kept``, the passing report of the chain's ``method``, recording that the policy's
        own method failed (its reasons under ``failed_unlearning``) and this chain's run."""
        return replace(
            kept, fallback=method, failed_unlearning=list(self.reasons), chain=self.chain
        )

    def to_dict(self) -> dict[str, Any]:
        """The ledger's JSON: absent fields are left out, as the dicts before this type did."""
        out: dict[str, Any] = {}
        if self.removed_training_edges is not None:
            out["removed_training_edges"] = self.removed_training_edges
        if self.thresholds is not None:
            out["thresholds"] = self.thresholds.model_dump()
        out["mode"] = self.mode
        for key in ("tier", "exact"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.unlearned is not None:
            out["unlearned"] = self.unlearned.to_dict()
        if self.kept_edges_mia_auc is not None:
            out["kept_edges_mia_auc"] = self.kept_edges_mia_auc
        if self.reference is not None:
            out["reference"] = self.reference.to_dict()
        for key in (
            "ratios",
            "over_unlearning",
            "under_unlearning",
            "membership",
            "reference_model_sha256",
            "fallback",
        ):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["passed"] = self.passed
        if self.failed_unlearning is not None:
            out["failed_unlearning"] = self.failed_unlearning
        if self.chain is not None:
            out["chain"] = self.chain
        out["reasons"] = list(self.reasons)
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VerificationReport:
        from unlearnrec.records.policy import Thresholds

        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        typed = ("unlearned", "reference", "thresholds", "reasons")
        plain: dict[str, Any] = {k: v for k, v in d.items() if k in known and k not in typed}
        for k in ("unlearned", "reference"):
            if k in d:
                plain[k] = Figures.from_dict(d[k])
        extra = {k: v for k, v in d.items() if k not in known}
        if "thresholds" in d:
            try:
                plain["thresholds"] = Thresholds.model_validate(d["thresholds"])
            except ValueError:
                # written under another policy schema (an older release): a stored record must
                # still read, so it is kept as stored and written back unchanged
                extra["thresholds"] = d["thresholds"]
        plain["reasons"] = list(d.get("reasons") or [])
        return cls(**plain, extra=extra)


class _HasVerification(Protocol):
    verification: dict[str, Any]


def record(run: _HasVerification, report: VerificationReport) -> None:
    """Store ``report`` on a ledger run (``UnlearningRun``): the one place it is serialised."""
    run.verification = report.to_dict()


def report_of(run: _HasVerification) -> VerificationReport | None:
    """The report a ledger run holds, None before its verification: the one place the JSON is
    parsed."""
    return VerificationReport.from_dict(run.verification) if run.verification else None
