"""What a verification leads to, decided once for the processing run (``stages.stage_verify``)
and the scheduled reference retrain (``lifecycle.retrain_reference``): keep the unlearned model,
promote a full retrain in its place, or hand the run to a person. Pure: values in, a value out."""

from __future__ import annotations

from enum import StrEnum

from unlearnrec.records.verification import VerificationReport


class Decision(StrEnum):
    KEEP = "keep"  # verification passed: the unlearned model is certified
    PROMOTE_RETRAIN = "promote_retrain"  # failed, the policy falls back to a full retrain
    ESCALATE = "escalate"  # failed, the policy leaves it to a person


def decide(report: VerificationReport, on_failure: str) -> Decision:
    """``on_failure``: the policy's ``on_failure.action`` (``retrain`` | ``escalate``)."""
    if report.passed:
        return Decision.KEEP
    return Decision.PROMOTE_RETRAIN if on_failure == "retrain" else Decision.ESCALATE
