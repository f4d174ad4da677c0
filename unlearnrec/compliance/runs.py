"""A run's record and its tickets' states: open (or resume) the run of a batch, bring its tickets
along scheduled -> unlearned -> verified -> certified, and what a finished run reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, select

from unlearnrec.compliance.batching import batch_key
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.versions import (
    current_dataset,
    production_model,
)
from unlearnrec.ledger import (
    Ticket,
    TicketStatus,
    UnlearningRun,
    add_with_event,
    append_event,
    session_scope,
    transition,
)
from unlearnrec.records.verification import VerificationReport

STAGES = ("scheduled", "purged", "unlearned", "verified", "certified")


# The ticket status each run stage brings its tickets to.
TICKET_AT_STAGE = {
    "scheduled": TicketStatus.SCHEDULED,
    "purged": TicketStatus.SCHEDULED,
    "unlearned": TicketStatus.UNLEARNED,
    "verified": TicketStatus.VERIFIED,
    "certified": TicketStatus.CERTIFIED,
}


_PATH = (
    TicketStatus.SCHEDULED,
    TicketStatus.UNLEARNED,
    TicketStatus.VERIFIED,
    TicketStatus.CERTIFIED,
)


@dataclass
class RunSummary:
    run_id: int
    status: str
    stage: str
    tickets: list[int] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    verification: VerificationReport | None = None  # None: the run was not verified yet
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def advance(
    session: Session, tickets: list[Ticket], target: str, actor: str, reason: str | None = None
) -> None:
    """Bring each ticket to ``target`` along scheduled -> unlearned -> verified -> certified."""
    for t in tickets:
        if t.status == target:
            continue
        if t.status in (TicketStatus.FAILED, TicketStatus.ESCALATED, TicketStatus.VALIDATED):
            transition(session, t, TicketStatus.SCHEDULED, actor=actor)
        while t.status != target and t.status in _PATH:
            nxt = _PATH[_PATH.index(t.status) + 1]
            transition(session, t, nxt, actor=actor, reason=reason if nxt == target else None)
            if _PATH.index(nxt) >= _PATH.index(target):
                break


def open_run(platform: Platform, ticket_ids: list[int], *, device: str) -> int:
    """The run of this batch: resumed if it exists (a crash or a failure), else created."""
    key = batch_key(ticket_ids)
    policy = platform.policy
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun).where(UnlearningRun.batch_key == key)).first()
        tickets = [session.get(Ticket, i) for i in ticket_ids]
        if run is None:
            kinds = {t.kind for t in tickets if t}
            params = (
                policy.params_for(kinds.pop())
                if len(kinds) == 1
                else dict(policy.unlearning.params)
            )
            ds, model = current_dataset(session), production_model(session)
            if ds is None or model is None:
                raise RuntimeError("the ledger has no dataset or model yet: run bootstrap first")
            run = UnlearningRun(
                batch_key=key,
                method=policy.unlearning.method,
                params=params,
                device=device,
                policy_id=policy.id,
                policy_version=policy.version,
                policy_sha256=policy.sha256,
                ticket_ids=list(ticket_ids),
                dataset_before_id=ds.id,
                model_before_id=model.id,
            )
            add_with_event(
                session,
                run,
                actor=platform.actor,
                action="run.started",
                entity="run",
                data={
                    "tickets": list(ticket_ids),
                    "method": run.method,
                    "dataset_before_id": run.dataset_before_id,
                    "model_before_id": run.model_before_id,
                },
            )
        elif run.status == "failed":
            run.attempt += 1
            run.status, run.error = "running", None
            append_event(
                session,
                actor=platform.actor,
                action="run.retried",
                entity="run",
                entity_id=run.id,
                data={"attempt": run.attempt, "stage": run.stage},
            )
        else:
            append_event(
                session,
                actor=platform.actor,
                action="run.resumed",
                entity="run",
                entity_id=run.id,
                data={"stage": run.stage},
            )
        for t in tickets:
            if t is not None:
                t.run_id = run.id
                session.add(t)
        advance(session, [t for t in tickets if t], TICKET_AT_STAGE[run.stage], platform.actor)
        session.add(run)
        return int(run.id)  # type: ignore[arg-type]


def run_and_tickets(session: Session, run_id: int) -> tuple[UnlearningRun, list[Ticket]]:
    run = session.get(UnlearningRun, run_id)
    assert run is not None
    return run, [t for t in (session.get(Ticket, i) for i in run.ticket_ids) if t is not None]


def mark_verified(
    platform: Platform,
    session: Session,
    run: UnlearningRun,
    tickets: list[Ticket],
    action: str,
    data: dict,
) -> None:
    """The run and its tickets reach ``verified``, with the audit event that says why."""
    run.stage = "verified"
    session.add(run)
    advance(session, tickets, TicketStatus.VERIFIED, platform.actor)
    append_event(
        session, actor=platform.actor, action=action, entity="run", entity_id=run.id, data=data
    )
