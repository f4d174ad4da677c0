"""The dashboard's figures as plain data, on the seeded ledger (no Streamlit)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from dashboard import queries
from tests.dashboard.seed import (
    ESCALATED,
    OVERDUE,
    RAW_SUBJECTS,
    RUN1_PURGE_CHECK,
    RUN1_PURGE_PAGE,
    RUN1_REFERENCE,
    RUN1_RETRAIN_SECONDS,
    RUN1_UNLEARN_SECONDS,
    RUN1_UNLEARNED,
    TAMPERED_CERTIFICATE,
    TICKETS,
    VALID_CERTIFICATE,
)
from unlearnrec.ledger import make_engine


@pytest.fixture(scope="module")
def engine(seeded):
    eng = make_engine(seeded.db_url, read_only=True)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def data(engine):
    with Session(engine) as s:
        return {
            "tickets": queries.tickets(s),
            "runs": queries.runs(s),
            "certificates": queries.certificates(s),
        }


def test_the_summary_counts_every_table(engine):
    summary = queries.summarise(engine)
    assert summary.tables and not summary.empty
    assert (summary.tickets, summary.runs, summary.certificates) == (len(TICKETS), 2, 3)
    assert (summary.dataset_versions, summary.model_versions) == (3, 4)


def test_tickets_carry_pseudonyms_and_never_read_the_subject(data, engine):
    rows = data["tickets"]
    assert all("subject" not in r for r in rows)
    assert all(
        r["subject_pseudonym"].startswith("ps_") for r in rows if r["kind"] != "take_down_item"
    )
    text = repr(rows)
    assert not [s for s in RAW_SUBJECTS if s in text]
    # The column is not even read from the database.
    statements: list[str] = []
    listen = lambda conn, cur, statement, *a: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        with Session(engine) as s:
            queries.tickets(s)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert any("ticket.subject_pseudonym" in q for q in statements)
    assert not [q for q in statements if re.search(r"ticket\.subject\b(?!_)", q)]


def test_status_counts_cover_every_status(data):
    counts = queries.status_counts(data["tickets"])
    assert counts == {
        "received": 1, "validated": 2, "rejected": 1, "scheduled": 1, "unlearned": 1,
        "verified": 1, "certified": 3, "failed": 1, "escalated": 1,
    }  # fmt: skip


def test_deadlines_list_open_tickets_soonest_first_and_flag_overdue_and_escalated(data, seeded):
    due = queries.deadlines(data["tickets"], seeded.now)
    assert [d["external_id"] for d in due[:2]] == ["DSAR-2003", "DSAR-2004"]
    assert {d["external_id"] for d in due if d["overdue"]} == set(OVERDUE)
    assert {d["external_id"] for d in due if d["escalated"]} == set(ESCALATED)
    assert due[0]["flag"] == "OVERDUE ESCALATED" and due[1]["flag"] == "OVERDUE"
    assert all(d["status"] not in ("certified", "rejected") for d in due)
    assert len(due) == 8


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=12, hours=5, minutes=3), "12 d 5 h left"),
        (timedelta(hours=3, minutes=20), "3 h 20 min left"),
        (-timedelta(days=2, hours=1), "overdue by 2 d 1 h"),
        (-timedelta(minutes=5), "overdue by 0 h 5 min"),
    ],
)
def test_countdown(delta, text):
    now = datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert queries.countdown(now + delta, now) == text


def test_filters_combine(data):
    rows = data["tickets"]
    pick = lambda **kw: [r["external_id"] for r in queries.filter_tickets(rows, **kw)]  # noqa: E731
    assert pick(statuses=["escalated"]) == ["DSAR-2003"]
    assert pick(kinds=["take_down_item"]) == ["LIC-3001"]
    assert set(pick(legal_bases=["CCPA-1798.105"])) == {"DSAR-2002", "DSAR-2007", "DSAR-2010"}
    assert pick(search="lic") == ["LIC-3001"]
    assert pick(statuses=["validated"], search="2004") == ["DSAR-2004"]
    oldest = min(r["received_at"] for r in rows).date()
    assert pick(received=(oldest, oldest)) == ["DSAR-2003"]
    assert len(pick(received=(oldest,))) == len(rows)  # a range being picked: open end
    assert pick(deadline=(date(2000, 1, 1), date(2000, 1, 2))) == []


def test_a_tickets_timeline_holds_its_events_and_its_runs(engine, data):
    t = next(r for r in data["tickets"] if r["external_id"] == "DSAR-2001")
    with Session(engine) as s:
        events = queries.timeline(s, t["id"], t["run_id"])
    actions = [e["action"] for e in events]
    assert actions[0] == "ticket.received" and actions[-1] == "ticket.status"
    assert {"run.started", "run.verified", "certificate.issued"} <= set(actions)
    assert {e["entity"] for e in events} == {f"ticket {t['id']}", f"run {t['run_id']}"}
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    assert "verified → certified" in events[-1]["details"]


def test_runs_report_figures_time_and_speedup(data):
    run2, run1 = data["runs"]  # newest first
    assert run1["record"]["unlearned"] == RUN1_UNLEARNED  # the ledger's JSON, as stored
    figures = run1["verification"].unlearned
    assert (figures.mi_bf, figures.get("recall@20")) == (
        RUN1_UNLEARNED["mi_bf"],
        RUN1_UNLEARNED["recall@20"],
    )
    assert run1["unlearn_seconds"] == RUN1_UNLEARN_SECONDS
    assert run1["retrain_seconds"] == RUN1_RETRAIN_SECONDS
    assert run1["retrain_source"] == "reference model #3"
    assert run1["speedup"] == pytest.approx(RUN1_RETRAIN_SECONDS / RUN1_UNLEARN_SECONDS)
    assert (run2["mode"], run2["retrain_seconds"], run2["speedup"]) == ("provisional", None, None)
    assert run1["tickets"] == ["DSAR-2001", "DSAR-2002"]
    # seeded runs are UnlearnRec's: approximate, unless a fallback retrain certified them
    assert {r["tier"] for r in data["runs"] if r["fallback"] == "—"} == {"approximate"}


def test_a_runs_purge_check_is_read_with_its_data_docs_page(data, seeded, tmp_path):
    run2, run1 = data["runs"]
    assert run1["purge_check"] == RUN1_PURGE_CHECK and run2["purge_check"] == {}
    assert queries.purge_check_outcome(run1["purge_check"]) == "passed, 6 of 6 expectations met"
    assert queries.purge_check_outcome(run2["purge_check"]) == queries.DASH
    page = queries.data_docs_page(run1["purge_check"], seeded.settings.var)
    assert page == seeded.settings.var / RUN1_PURGE_PAGE and page.is_file()
    # A failed check names what failed; a certificate's summary reads the same way.
    failed = {**RUN1_PURGE_CHECK, "success": False, "failed": ["counts_reconcile"]}
    failed["statistics"] = {"evaluated": 6, "successful": 5, "unsuccessful": 1}
    assert queries.purge_check_outcome(failed) == (
        "FAILED: counts_reconcile (5 of 6 expectations met)"
    )
    summary = {"suite": "purge", "success": True, "evaluated": 6, "successful": 6}
    assert queries.purge_check_outcome(summary) == "passed, 6 of 6 expectations met"
    # The dashboard opens pages of the state folder's GX project only.
    assert queries.data_docs_page({"data_docs": "../secrets/key.pem"}, tmp_path) is None
    assert queries.data_docs_page({"data_docs": "ledger.sqlite"}, tmp_path) is None
    assert queries.data_docs_page({}, tmp_path) is None


def test_the_tier_names_how_the_certified_model_forgot():
    from unlearnrec.records import certificates as certs
    from unlearnrec.records.verification import VerificationReport

    final = VerificationReport(mode="final", passed=True)
    exact = replace(final, tier="exact", exact={"passed": True})
    assert certs.tier_of("sisa", exact) == "exact"
    assert certs.tier_of("sisa", replace(exact, exact={"passed": False})) == "approximate"
    assert certs.tier_of("retrain", final) == "retrain"
    assert certs.tier_of("unlearnrec", replace(final, fallback="retrain")) == "retrain"
    assert certs.tier_of("unlearnrec", replace(final, mode="provisional")) == "approximate"
    assert certs.tier_of("unlearnrec", None) == "approximate"


def test_the_retrain_time_falls_back_to_the_runs_own_timings():
    t = queries.run_timing({"unlearn_seconds": 2.0, "reference_seconds": 30.0}, None, {})
    assert (t["retrain_seconds"], t["speedup"]) == (30.0, 15.0)
    t = queries.run_timing({"unlearn_seconds": 2.0, "fallback_retrain_seconds": 10.0}, 7, {7: None})
    assert (t["retrain_source"], t["speedup"]) == ("fallback retrain in the run", 5.0)
    assert queries.run_timing({}, None, {})["speedup"] is None


def test_metric_rows_have_both_models_for_a_final_run(data):
    rows = queries.metric_rows(data["runs"])
    run1 = {(r["model"], r["metric"]): r["value"] for r in rows if r["run_id"] == 1}
    assert run1[("unlearned", "MI-BF")] == RUN1_UNLEARNED["mi_bf"]
    assert run1[("reference", "NDCG@20")] == RUN1_REFERENCE["ndcg@20"]
    assert len(run1) == 10
    assert {r["model"] for r in rows if r["run_id"] == 2} == {"unlearned"}


def test_lineage_links_datasets_and_models(engine):
    with Session(engine) as s:
        dot = queries.lineage_dot(queries.dataset_versions(s), queries.model_versions(s))
    assert 'd1 -> d2 [label="run 1"]' in dot
    assert "m1 -> m2;" in dot and "d2 -> m3 [style=dashed];" in dot


def test_an_intact_certificate_passes_and_a_tampered_one_fails(data, seeded):
    by_id = {c["certificate_id"]: c for c in data["certificates"]}
    good = queries.check_certificate(by_id[VALID_CERTIFICATE], seeded.public_key, seeded.home)
    assert good.ok and good.verdict == "PASS" and good.problems == ()
    assert all(ok for _, ok in good.checks) and len(good.checks) == 7
    bad = queries.check_certificate(by_id[TAMPERED_CERTIFICATE], seeded.public_key, seeded.home)
    assert bad.verdict == "FAIL"
    failed = {name for name, ok in bad.checks if ok is False}
    assert failed == {"file sha256 = ledger's", "signature (Ed25519)", "digest = ledger's"}
    assert any("altered after signing" in p for p in bad.problems)


def test_a_missing_file_or_key_fails_without_raising(data, seeded, tmp_path):
    row = dict(next(c for c in data["certificates"] if c["certificate_id"] == VALID_CERTIFICATE))
    gone = queries.check_certificate(
        {**row, "path": str(tmp_path / "nope.json")}, seeded.public_key, seeded.home
    )
    assert gone.verdict == "FAIL" and "cannot be read" in gone.problems[0]
    nokey = queries.check_certificate(row, tmp_path / "missing.pem", seeded.home)
    assert nokey.verdict == "FAIL" and "missing.pem" in nokey.problems[0]
    relative = queries.certificate_path({"path": "var/certificates/x.json"}, Path("/srv/app"))
    assert relative == Path("/srv/app/var/certificates/x.json")


def test_the_dashboard_engine_cannot_write(engine):
    from sqlalchemy import text

    with pytest.raises(OperationalError, match="readonly"), engine.begin() as conn:
        conn.execute(text("DELETE FROM ticket"))


def test_a_certificate_that_misstates_the_removed_count_gets_a_note(data, seeded):
    row = next(c for c in data["certificates"] if c["certificate_id"] == VALID_CERTIFICATE)
    doc = queries.check_certificate(row, seeded.public_key, seeded.home).document
    tickets = {t["id"]: t for t in data["tickets"]}
    assert queries.certificate_notes(doc, tickets) == []
    wrong = {**doc, "removed_interactions": {**doc["removed_interactions"], "count": 0}}
    (note,) = queries.certificate_notes(wrong, tickets)
    assert note.startswith("the certificate says 0 interactions were removed for DSAR-2001")
    assert "the ledger recorded 12" in note


def test_a_ledger_behind_the_code_is_reported_not_read(tmp_path):
    """A ledger at an older schema revision: the summary says so (the dashboard then names
    `unlearnrec db upgrade`) instead of reading columns the ledger lacks."""
    from sqlalchemy import text

    from unlearnrec.ledger import init_db, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    init_db(engine)
    assert not queries.summarise(engine).out_of_date
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    summary = queries.summarise(engine)
    assert summary.out_of_date and summary.revision == "0005"
    assert summary.head not in (None, "0005")
