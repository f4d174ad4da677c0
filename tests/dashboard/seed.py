"""A small, realistic ledger for the dashboard's tests, its browser check and trying it out,
built with the ledger API, and certificates issued by the platform's own issuer
(``compliance.certify.issue``), so they are the platform's format and pass
``unlearnrec certificate verify`` (no ML, no torch, a second or so). Developer tooling: it is not
part of the shipped packages.

What it holds, relative to ``now``:

- tickets in every status: certified (3), rejected, received, validated, scheduled, unlearned,
  verified, failed, and escalated; two open tickets are past their deadline (one of them is the
  escalated one);
- two runs: run 1 verified against a retrained reference (final; the reference model records
  its retrain time, so the page can show a speed-up), run 2 provisional (unlearned figures
  only, no retrain time: the page shows "—");
- three dataset versions and four model versions with DVC hashes and parents;
- three certificates issued by ``certify.issue`` with a fresh Ed25519 key (pinned in the ledger
  by a ``key.registered`` event, its public key exported): two intact and one
  (``TAMPERED_CERTIFICATE``) whose file was altered after it was written;
- the audit events every step writes, in one hash chain, and its signed head
  (``var/audit-head.json``).

    python -m tests.dashboard.seed /tmp/unlearnrec-seeded      # from the repository root, then:
    UNLEARNREC_HOME=/tmp/unlearnrec-seeded unlearnrec dashboard
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from statistics import NormalDist

from sqlmodel import Session

from unlearnrec.compliance import certify
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.store import DvcStore
from unlearnrec.compliance.versions import record_dataset_version, record_model_version
from unlearnrec.ledger import (
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    TicketIn,
    TicketStatus,
    UnlearningRun,
    add_with_event,
    append_event,
    init_db,
    make_engine,
    record_ticket,
    session_scope,
    transition,
    utcnow,
)
from unlearnrec.ledger.db import on_audit_commit
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import Policy, load_policy
from unlearnrec.records.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "gdpr-default.yaml"
ACTOR = "seed"

VALID_CERTIFICATE = "cert-r1-t1-final"
TAMPERED_CERTIFICATE = "cert-r1-t2-final"
PROVISIONAL_CERTIFICATE = "cert-r2-t3-provisional"

# external id -> (kind, raw subject, items, legal basis, days since receipt, final status)
TICKETS: dict[str, tuple[str, str | None, tuple[str, ...], str, int, str]] = {
    "DSAR-2001": ("erase_user", "user-40411", (), "GDPR-17(1)(a)", 20, "certified"),
    "DSAR-2002": (
        "erase_interactions",
        "user-40412",
        ("i-17", "i-23"),
        "CCPA-1798.105",
        16,
        "certified",
    ),
    "LIC-3001": ("take_down_item", None, ("i-301",), "GDPR-17(1)(d)", 9, "certified"),
    "DSAR-2003": ("erase_user", "user-40413", (), "GDPR-17(1)(a)", 40, "escalated"),
    "DSAR-2004": ("erase_user", "user-40414", (), "GDPR-17(1)(c)", 35, "validated"),
    "DSAR-2005": ("erase_user", "user-40415", (), "GDPR-17(1)(a)", 1, "received"),
    "DSAR-2006": ("erase_interactions", "user-40416", ("i-5",), "GDPR-17(1)(b)", 4, "validated"),
    "DSAR-2007": ("erase_user", "user-40417", (), "CCPA-1798.105", 3, "scheduled"),
    "DSAR-2008": ("erase_user", "user-40418", (), "GDPR-17(1)(a)", 3, "unlearned"),
    "DSAR-2009": ("erase_user", "user-40419", (), "GDPR-17(1)(a)", 3, "verified"),
    "DSAR-2010": ("erase_user", "user-40420", (), "CCPA-1798.105", 6, "failed"),
    "DSAR-2011": ("erase_user", "user-99999", (), "GDPR-17(1)(a)", 5, "rejected"),
}
# Raw subject ids: personal data the dashboard must never show (the tests look for them).
RAW_SUBJECTS = tuple(s for _, s, *_ in TICKETS.values() if s)
OVERDUE = ("DSAR-2003", "DSAR-2004")
ESCALATED = ("DSAR-2003",)

_PATHS = {
    "received": [],
    "validated": ["validated"],
    "rejected": ["rejected"],
    "scheduled": ["validated", "scheduled"],
    "unlearned": ["validated", "scheduled", "unlearned"],
    "verified": ["validated", "scheduled", "unlearned", "verified"],
    "failed": ["validated", "scheduled", "failed"],
    "escalated": ["validated", "scheduled", "failed", "escalated"],
    "certified": ["validated", "scheduled", "unlearned", "verified", "certified"],
}
_REASONS = {
    "rejected": "the subject is not a known user of the dataset",
    "failed": "unlearning run crashed: CUDA out of memory (retry scheduled)",
    "escalated": "verification failed twice (MI-BF 0.92 is not above 1); needs a person",
}

# Verification figures as ``compliance.modeling.verify`` records them.
THRESHOLDS = {
    "mi_bf_ratio": 0.9,
    "mi_ng_tolerance": 0.2,
    "auc_margin": 0.05,
    "min_utility_ratio": 0.97,
}
RUN1_UNLEARNED = {
    "mi_bf": 2.0512,
    "mi_ng": 1.1203,
    "mia_auc": 0.4871,
    "recall@20": 0.3412,
    "ndcg@20": 0.2987,
}
RUN1_REFERENCE = {
    "mi_bf": 2.2105,
    "mi_ng": 1.1833,
    "mia_auc": 0.4795,
    "recall@20": 0.3455,
    "ndcg@20": 0.3010,
}
RUN2_UNLEARNED = {
    "mi_bf": 1.7342,
    "mi_ng": 1.0519,
    "mia_auc": 0.5120,
    "recall@20": 0.3398,
    "ndcg@20": 0.2971,
}
# Run 1's membership audit (``unlearnrec.evaluation.membership.evidence_record``'s shape), drawn
# from Gaussians in closed form: the original model sets the forgotten pairs apart (shift 1.6σ), the
# unlearned and retrained ones do not.
RUN1_MEMBERSHIP_SHIFTS = {"original": 1.6, "unlearned": 0.04, "reference": 0.0}


def _seeded_audit(shift: float, members: int = 400, nonmembers: int = 4000) -> dict:
    null, alt = NormalDist(0, 1), NormalDist(shift, 1)
    edges = [-5 + 13 * k / 39 for k in range(40)]

    def counts(d: NormalDist, n: int) -> list[int]:
        return [round(n * (d.cdf(hi) - d.cdf(lo))) for lo, hi in pairwise(edges)]

    fprs = [10 ** (-3 + 3 * k / 24) for k in range(25)]

    def tpr(f: float) -> float:
        return 1 - alt.cdf(null.inv_cdf(1 - f)) if f < 1 else 1.0

    return {
        "attack": "lira",
        "statistic": "logit",
        "references": 4,
        "members": members,
        "nonmembers": nonmembers,
        "auc": round(1 - NormalDist(shift, 2**0.5).cdf(0), 4),  # Φ(shift / √2)
        "tpr_at_1pct_fpr": round(tpr(0.01), 4),
        "tpr_at_0_1pct_fpr": round(tpr(0.001), 4),
        "roc": {"fpr": [round(f, 6) for f in fprs], "tpr": [round(tpr(f), 6) for f in fprs]},
        "histogram": {
            "edges": [round(e, 4) for e in edges],
            "members": counts(alt, members),
            "nonmembers": counts(null, nonmembers),
        },
    }


RUN1_MEMBERSHIP = {
    "attack": "lira",
    "k": 4,
    "references": {
        "k": 4,
        "seed": 0,
        "seconds": 181.3,
        "sha256": [hashlib.sha256(f"seed-reference-{k}".encode()).hexdigest() for k in range(4)],
        "fit_edges": [36_010, 35_971, 35_992, 35_989],
    },
    "thresholds": {"tpr_margin": 0.01, "auc_margin": 0.03},
    "models": {name: _seeded_audit(shift) for name, shift in RUN1_MEMBERSHIP_SHIFTS.items()},
    "passed": True,
    "reasons": [],
}
RUN1_UNLEARN_SECONDS, RUN1_RETRAIN_SECONDS = 0.82, 72.4  # speed-up 88.3x
# Run 1's purge check as the flow records it (flows/validation.py); its data-docs page is a
# stand-in written beside the ledger. Run 2 has none (a run recorded before the ledger kept it).
RUN1_PURGE_PAGE = (
    "gx/uncommitted/data_docs/local_site/validations/purge/run-1-attempt-1/"
    "20261120T120000.000000Z/unlearnrec-frame.html"
)
RUN1_PURGE_CHECK = {
    "suite": "purge",
    "success": True,
    "failed": [],
    "statistics": {"evaluated": 6, "successful": 6, "unsuccessful": 0},
    "result_id": "purge/run-1-attempt-1/20261120T120000.000000Z/unlearnrec-frame",
    "data_docs": RUN1_PURGE_PAGE,
}
RUN2_UNLEARN_SECONDS = 0.91


@dataclass(frozen=True)
class SeededLedger:
    home: Path
    settings: Settings
    db_url: str
    public_key: Path
    certificates: dict[str, Path]  # certificate id -> file
    now: datetime

    def env(self) -> dict[str, str]:
        """Environment variables that point the dashboard (``Settings``) at this ledger."""
        return {"UNLEARNREC_HOME": str(self.home), "UNLEARNREC_DB_URL": self.db_url}


def _md5(*parts: object) -> str:
    return hashlib.md5(repr(parts).encode(), usedforsecurity=False).hexdigest()


def _sha(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _dataset(session: Session, n: int, interactions: int, parent: int | None, run: int | None):
    ds = DatasetVersion(
        dvc_md5=f"{_md5('dataset', n)}.dir",
        content_hash=_sha("dataset", n),
        path=f"versions/dataset-{_md5('dataset', n)}.dvc",
        parent_id=parent,
        run_id=run,
        num_users=3000,
        num_items=2000,
        num_interactions=interactions,
        holds_erased_data=n < 3,
    )
    return record_dataset_version(session, ACTOR, ds)


def _model(
    session: Session,
    n: int,
    kind: str,
    ds: int,
    parent: int | None,
    run: int | None,
    metrics: dict | None = None,
):
    m = ModelVersion(
        kind=kind,
        sha256=_sha("model", n),
        dvc_md5=f"{_md5('model', n)}.dir",
        path=f"versions/model-{_md5('model', n)}.dvc",
        dataset_version_id=ds,
        parent_id=parent,
        run_id=run,
        metrics=metrics or {},
    )
    return record_model_version(session, ACTOR, m)


def _walk(session: Session, ticket: Ticket, statuses: list[str], run_id: int | None) -> None:
    for status in statuses:
        if status == TicketStatus.SCHEDULED:
            ticket.run_id = run_id
        transition(session, ticket, status, actor=ACTOR, reason=_REASONS.get(status))


def _removed_count(ticket: Ticket) -> int:
    """Interactions the seeded purge erased for ``ticket``: 12 per listed item (or 12 for a
    whole user); the run's ``removed_count`` is the sum over its tickets."""
    return 12 * max(1, len(ticket.items))


def _certify(
    platform: Platform,
    session: Session,
    run: UnlearningRun,
    ticket: Ticket,
    status: str,
    model_after: ModelVersion,
) -> Certificate:
    """Record on ``ticket`` what the purge stage records there (the count and hash of the pairs
    it erased; certificates read them from the ticket), then issue with the platform's issuer."""
    ticket.removed_interactions = _removed_count(ticket)
    ticket.removed_hash = _sha("removed", ticket.external_id)
    session.add(ticket)
    return certify.issue(
        platform, session, run=run, ticket=ticket, status=status, model_after=model_after
    )


def tamper(path: Path) -> None:
    """Change a certificate's content after signing (the removed count), keeping it canonical
    JSON, as someone editing the file by hand would: the signature and the sha256 then fail."""
    doc = certs.read_certificate(path)
    doc["removed_interactions"]["count"] += 1
    path.write_bytes(certs.canonical_json(doc) + b"\n")


def seed_ledger(
    home: Path,
    *,
    db_url: str | None = None,
    now: datetime | None = None,
    policy: Policy | None = None,
) -> SeededLedger:
    """Build the seeded ledger under ``home`` (``var/ledger.sqlite``, ``var/certificates/``,
    ``secrets/``), or in the empty database ``db_url`` (certificates and keys still under
    ``home``). The ledger must not exist yet."""
    home = Path(home).resolve()
    now = now or utcnow()
    settings = get_settings(home=home, db_url=db_url, var_dir=None, secrets_dir=None)
    db = settings.var / "ledger.sqlite"
    if db_url is None and db.exists():
        raise FileExistsError(f"{db} exists: seed an empty folder")
    policy = policy or load_policy(POLICY)
    engine = make_engine(settings.database_url)
    init_db(engine)
    # The platform the issuer signs with (its key, exported public key, actor). Not
    # ``Platform.open``: the seeded ledger has no DVC store (nothing here reads one), and the
    # policy comes from the repository, not from ``home``.
    store = DvcStore(settings.var / "store", settings.var / "dvc-remote")  # never created
    platform = Platform(settings, engine, store, policy, actor=ACTOR)
    on_audit_commit(engine, platform.write_head)  # the signed audit head, as the platform keeps

    with session_scope(engine) as session:
        ds1 = _dataset(session, 1, 87_502, None, None)
        base = _model(session, 1, "base", int(ds1.id), None, None)
        tickets: dict[str, Ticket] = {}
        for ext, (kind, subject, items, basis, age, _) in TICKETS.items():
            ticket, _ = record_ticket(
                session,
                TicketIn(
                    external_id=ext,
                    kind=kind,
                    subject=subject,
                    items=items,
                    legal_basis=basis,
                    received_at=(now - timedelta(days=age)).replace(microsecond=0),
                    source="dsar-export.json#" + ext.split("-")[1],
                ),
                policy=policy,
                pseudonymise=platform.pseudonymise,
                actor=ACTOR,
            )
            tickets[ext] = ticket

        def run_row(n: int, members: list[str], **fields) -> UnlearningRun:
            ids = sorted(int(tickets[e].id) for e in members)
            run = UnlearningRun(
                batch_key=_sha("batch", ids),
                status="succeeded",
                stage="certified",
                method="unlearnrec",
                params={"finetune_epochs": 2},
                device="cpu",
                policy_id=policy.id,
                policy_version=policy.version,
                policy_sha256=policy.sha256,
                ticket_ids=ids,
                removed_hash=_sha("batch-removed", n),
                removed_count=sum(_removed_count(tickets[e]) for e in members),
                started_at=now - timedelta(days=8 - 4 * n, minutes=5),
                finished_at=now - timedelta(days=8 - 4 * n),
                **fields,
            )
            add_with_event(
                session,
                run,
                actor=ACTOR,
                action="run.started",
                entity="run",
                data={"tickets": ids, "method": run.method},
            )
            for e in members:
                _walk(session, tickets[e], _PATHS["verified"], run.id)
            return run

        # Run 1: DSAR-2001 and DSAR-2002, verified against a full retrain (final).
        ds2 = _dataset(session, 2, 87_478, int(ds1.id), None)
        run1 = run_row(1, ["DSAR-2001", "DSAR-2002"], dataset_before_id=ds1.id)
        ds2.run_id = run1.id
        m2 = _model(
            session,
            2,
            "unlearned",
            int(ds2.id),
            base.id,
            run1.id,
            {"unlearn_seconds": RUN1_UNLEARN_SECONDS},
        )
        ref = _model(
            session, 3, "reference", int(ds2.id), m2.id, None, {"seconds": RUN1_RETRAIN_SECONDS}
        )
        run1.dataset_after_id, run1.model_before_id, run1.model_after_id = ds2.id, base.id, m2.id
        run1.reference_model_id = ref.id
        run1.verification = {
            "removed_training_edges": 24,
            "thresholds": THRESHOLDS,
            "mode": "final",
            "unlearned": RUN1_UNLEARNED,
            "reference": RUN1_REFERENCE,
            "passed": True,
            "reasons": [],
            "reference_model_sha256": ref.sha256,
            "membership": RUN1_MEMBERSHIP,
        }
        run1.timings = {"unlearn_seconds": RUN1_UNLEARN_SECONDS, "encoder_refresh_seconds": 25.6}
        run1.purge_check = RUN1_PURGE_CHECK
        page = settings.var / RUN1_PURGE_PAGE
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<html><body><h1>purge: 6 of 6 expectations met</h1></body></html>")
        (page.parents[4] / "index.html").write_text("<html><body>data docs</body></html>")
        session.add(run1)
        append_event(
            session,
            actor=ACTOR,
            action="run.verified",
            entity="run",
            entity_id=run1.id,
            data={"mode": "final", "passed": True},
        )
        for e in ("DSAR-2001", "DSAR-2002"):
            _certify(platform, session, run1, tickets[e], "final", m2)
            transition(session, tickets[e], TicketStatus.CERTIFIED, actor=ACTOR)

        # Run 2: LIC-3001, provisional (no reference yet, so no retrain time).
        ds3 = _dataset(session, 3, 87_466, int(ds2.id), None)
        run2 = run_row(2, ["LIC-3001"], dataset_before_id=ds2.id)
        ds3.run_id = run2.id
        m4 = _model(
            session,
            4,
            "unlearned",
            int(ds3.id),
            m2.id,
            run2.id,
            {"unlearn_seconds": RUN2_UNLEARN_SECONDS},
        )
        run2.dataset_after_id, run2.model_before_id, run2.model_after_id = ds3.id, m2.id, m4.id
        run2.verification = {
            "removed_training_edges": 12,
            "thresholds": THRESHOLDS,
            "mode": "provisional",
            "unlearned": RUN2_UNLEARNED,
            "passed": True,
            "reasons": [],
        }
        run2.timings = {"unlearn_seconds": RUN2_UNLEARN_SECONDS}
        session.add(run2)
        append_event(
            session,
            actor=ACTOR,
            action="run.verified",
            entity="run",
            entity_id=run2.id,
            data={"mode": "provisional", "passed": True},
        )
        _certify(platform, session, run2, tickets["LIC-3001"], "provisional", m4)
        transition(session, tickets["LIC-3001"], TicketStatus.CERTIFIED, actor=ACTOR)

        # The open tickets, each walked to its status.
        for ext, (*_, final) in TICKETS.items():
            if final != TicketStatus.CERTIFIED:
                _walk(session, tickets[ext], _PATHS[final], None)

    engine.dispose()
    files = {p.stem: p for p in settings.certificates.glob("cert-*.json")}
    tamper(files[TAMPERED_CERTIFICATE])
    return SeededLedger(
        home=home,
        settings=settings,
        db_url=settings.database_url,
        public_key=settings.public_key,
        certificates=files,
        now=now,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.dashboard.seed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("home", help="an empty folder: the seeded project root")
    args = parser.parse_args(argv)
    seeded = seed_ledger(Path(args.home))
    print(f"seeded ledger: {seeded.db_url}")
    print(f"run: UNLEARNREC_HOME={seeded.home} unlearnrec dashboard")
    return 0


if __name__ == "__main__":
    sys.exit(main())
