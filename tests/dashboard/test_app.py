"""The Streamlit app through ``AppTest``: the login gate, each page on the seeded ledger, and
the failure modes (empty ledger, no database file, unreachable PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP, PASSWORD, frame_with, page_text
from tests.dashboard.seed import (
    ESCALATED,
    OVERDUE,
    PROVISIONAL_CERTIFICATE,
    RAW_SUBJECTS,
    RUN1_PURGE_CHECK,
    RUN1_PURGE_PAGE,
    RUN1_REFERENCE,
    RUN1_UNLEARNED,
    RUN2_UNLEARNED,
    TAMPERED_CERTIFICATE,
    TICKETS,
    VALID_CERTIFICATE,
    seed_ledger,
)
from tests.postgres import temporary_database
from unlearnrec.ledger import init_db, make_engine

# -- login gate ---------------------------------------------------------------------------------


def _login(password: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert [t.value for t in at.title] == ["unlearnrec compliance dashboard"]
    at.text_input[0].input(password)
    at.button[0].click().run()
    assert not at.exception
    return at


def test_a_wrong_password_is_refused_and_shows_no_data(app_env):
    at = _login(PASSWORD + "!")
    assert [e.value for e in at.error] == ["Wrong password."]
    assert "authenticated" not in at.session_state
    text = page_text(at)
    assert "Overview" not in text and not [t for t in TICKETS if t in text]


def test_the_right_password_opens_the_overview(app_env):
    at = _login(PASSWORD)
    assert [t.value for t in at.title] == ["Overview"]
    assert at.session_state["authenticated"]


def test_the_hash_can_come_from_streamlit_secrets(app_env, password_hash):
    app_env(hashed=None)
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets["password_hash"] = password_hash
    at.run()
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Overview"]


def test_without_a_configured_hash_nothing_is_shown_and_the_fix_is_explained(app_env):
    app_env(hashed=None)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.text_input  # no login form: there is nothing to log in to
    assert "No dashboard password is configured" in at.error[0].value
    assert "unlearnrec dashboard-password" in at.code[0].value
    assert "UNLEARNREC_DASHBOARD_PASSWORD_HASH" in page_text(at)


def test_a_malformed_hash_is_reported_not_accepted(app_env):
    app_env(hashed="hunter2")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert "cannot be used" in at.error[0].value and not at.text_input


def test_repeated_wrong_passwords_lock_the_form(app_env):
    at = AppTest.from_file(APP, default_timeout=30).run()
    for _ in range(6):
        at.text_input[0].input("wrong password")
        at.button[0].click().run()
    assert "Too many wrong passwords" in at.error[0].value


# -- pages on the seeded ledger -----------------------------------------------------------------


def test_overview_counts_and_highlights(open_app, seeded):
    at = open_app("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "Tickets": str(len(TICKETS)),
        "Open": "8",
        "Overdue": "2",
        "Escalated": "1",
        "Certified": "3",
        "Certificates failing": "1 of 3",
    }
    counts = frame_with(at, "tickets").set_index("status")["tickets"].to_dict()
    assert counts["certified"] == 3 and counts["validated"] == 2 and counts["escalated"] == 1
    assert sum(counts.values()) == len(TICKETS)
    overdue = next(e.value for e in at.error if "overdue" in e.value)
    assert all(t in overdue for t in OVERDUE)
    assert ESCALATED[0] in at.warning[0].value
    assert TAMPERED_CERTIFICATE in next(e.value for e in at.error if "Certificates" in e.value)
    due = frame_with(at, "time left")
    flags = dict(zip(due["external id"], due["flag"], strict=True))
    assert flags["DSAR-2003"] == "OVERDUE ESCALATED" and flags["DSAR-2004"] == "OVERDUE"
    assert flags["DSAR-2005"] == ""
    assert due["time left"].iloc[0].startswith("overdue by ")  # 9 to 12 days: months differ
    runs = frame_with(at, "speed-up vs retrain")
    assert runs["run"].tolist() == [2, 1] and runs["speed-up vs retrain"].tolist() == ["—", "88.3×"]
    audit = next(c.value for c in at.caption if c.value.startswith("Audit trail"))
    files = list(seeded.settings.certificates.glob("*.json"))
    assert "hash chain intact" in audit and f"the {len(files)} certificate files" in audit


def test_a_cut_off_audit_trail_shows_on_the_overview(app_env, open_app, seeded, tmp_path):
    """Deleting the newest audit events leaves a chain that links up; the certificates'
    anchors still give it away, in red, on the first page an officer opens."""
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    db = home / "var" / "ledger.sqlite"
    newest = max(int(json.loads(f.read_text())["audit"]["position"]) for f in
                 (home / "var" / "certificates").glob("*.json"))  # fmt: skip
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM auditevent WHERE position >= ?", (newest - 2,))
    app_env(f"sqlite:///{db}", home=home)
    at = open_app("overview")
    broken = next(e.value for e in at.error if "Audit trail broken" in e.value)
    assert f"anchors event {newest}, which the trail does not hold" in broken
    assert "events were cut off" in broken
    assert not [c for c in at.caption if "intact" in c.value]


def test_tickets_show_pseudonyms_only(open_app, seeded):
    at = open_app("tickets")
    table = frame_with(at, "subject (pseudonym)")
    assert len(table) == len(TICKETS)
    assert table["subject (pseudonym)"].str.startswith("ps_").sum() == len(TICKETS) - 1
    text = page_text(at)
    assert not [s for s in RAW_SUBJECTS if s in text]
    assert at.selectbox(key="ticket_pick").value == "DSAR-2003"  # the most urgent first


def test_ticket_filters(open_app):
    at = open_app("tickets")
    at.multiselect(key="f_status").set_value(["escalated", "validated"]).run()
    table = frame_with(at, "subject (pseudonym)")
    assert sorted(table["external id"]) == ["DSAR-2003", "DSAR-2004", "DSAR-2006"]
    assert table.set_index("external id").loc["DSAR-2004", "flag"] == "OVERDUE"
    at.text_input(key="f_search").input("2006").run()
    assert frame_with(at, "subject (pseudonym)")["external id"].tolist() == ["DSAR-2006"]
    at.text_input(key="f_search").input("no such ticket").run()
    assert "No ticket matches these filters." in [i.value for i in at.info]


def test_a_ticket_detail_links_to_its_run_and_certificate(open_app):
    at = open_app("tickets", ticket="DSAR-2001")
    assert at.selectbox(key="ticket_pick").value == "DSAR-2001"
    links = {link.proto.page: link.proto.query_string for link in at.page_link}
    assert links == {"certificates": f"certificate={VALID_CERTIFICATE}", "models": "run=1"}
    timeline = frame_with(at, "action")
    assert {"ticket.received", "run.started", "certificate.issued"} <= set(timeline["action"])
    assert set(timeline["entity"]) == {"ticket 1", "run 1"}


def frame_element(at: AppTest, column: str):
    """The first dataframe element with ``column`` (its proto carries the column config)."""
    return next(d for d in at.dataframe if column in d.value.columns)


def test_what_the_narrow_tables_hide_is_shown_in_full_below_them(open_app, seeded):
    """The tables hide long columns to fit a laptop's width; the detail views keep them."""
    at = open_app("tickets", ticket="DSAR-2001")
    config = json.loads(frame_element(at, "action").proto.columns)
    assert config["hash"]["hidden"] and "details" in config
    timeline = frame_with(at, "action")
    events = next(m.value for m in at.markdown if "hash" in m.value and "·" in m.value)
    assert all(str(h) in events for h in timeline["hash"])
    at = open_app("models", run="1")
    versions = frame_with(at, "sha256")
    full = "\n".join(m.value for m in at.markdown)
    assert all(sha in full for sha in versions["sha256"])
    assert all(len(short) < 12 for short in versions["sha"])


def test_an_overdue_escalated_ticket_is_called_out(open_app):
    at = open_app("tickets", ticket="DSAR-2003")
    assert any("DSAR-2003 is OVERDUE" in e.value for e in at.error)
    assert any("ESCALATED" in w.value for w in at.warning)
    assert {m.label: m.value for m in at.metric}["Overdue by"].endswith(" h")
    assert not at.page_link  # no run, no certificate yet


def test_an_intact_certificate_passes(open_app):
    at = open_app("certificates", certificate=VALID_CERTIFICATE)
    assert len(at.success) == 1 and at.success[0].value.startswith("**PASS**")
    assert VALID_CERTIFICATE in at.success[0].value
    assert set(frame_with(at, "result")["result"]) == {"PASS"}
    assert not at.warning  # nothing in it disagrees with the ledger
    verdicts = frame_with(at, "check").set_index("certificate")["check"].to_dict()
    assert verdicts == {
        VALID_CERTIFICATE: "PASS",
        TAMPERED_CERTIFICATE: "FAIL",
        PROVISIONAL_CERTIFICATE: "PASS",
    }
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download the certificate (JSON)", "Download the public key (PEM)"]


def test_a_tampered_certificate_fails_with_its_problems(open_app):
    at = open_app("certificates", certificate=TAMPERED_CERTIFICATE)
    assert not at.success
    verdict = at.error[0].value
    assert verdict.startswith("**FAIL**") and TAMPERED_CERTIFICATE in verdict
    assert "sha256" in verdict and "altered after signing" in verdict
    checks = frame_with(at, "result").set_index("check")["result"].to_dict()
    assert checks["signature (Ed25519)"] == "FAIL" and checks["key id = ledger's"] == "PASS"


def test_without_a_link_the_failing_certificate_is_shown_first(open_app):
    at = open_app("certificates")
    assert at.selectbox(key="cert_pick").value == TAMPERED_CERTIFICATE
    assert at.error[0].value.startswith("**FAIL**")


def test_picking_another_certificate_rechecks_it_and_updates_the_link(open_app):
    at = open_app("certificates", certificate=TAMPERED_CERTIFICATE)
    at.selectbox(key="cert_pick").select(VALID_CERTIFICATE).run()
    assert at.success and at.query_params["certificate"] == VALID_CERTIFICATE


def test_models_page_shows_figures_times_and_lineage(open_app):
    at = open_app("models", run="1")
    table = frame_with(at, "metric").set_index(["run", "metric"])  # one row per run and figure
    assert len(table) == 2 * 5 and set(table.columns) >= {"mode", "passed", "fallback"}
    assert table.loc[(1, "MI-BF"), "unlearned"] == RUN1_UNLEARNED["mi_bf"]
    assert table.loc[(1, "MI-BF"), "reference"] == RUN1_REFERENCE["mi_bf"]
    assert table.loc[(1, "Recall@20"), "unlearned"] == RUN1_UNLEARNED["recall@20"]
    assert table.loc[(1, "NDCG@20"), "reference"] == RUN1_REFERENCE["ndcg@20"]
    assert table.loc[(1, "MIA AUC"), "unlearned"] == RUN1_UNLEARNED["mia_auc"]
    assert table.loc[(2, "MI-NG"), "unlearned"] == RUN2_UNLEARNED["mi_ng"]
    mi_ng = table.xs("MI-NG", level="metric")["reference"]
    assert mi_ng.isna().tolist() == [True, False]  # run 2 (listed first): provisional
    times = frame_with(at, "speed-up").set_index("run")
    assert times.loc[1].tolist()[:2] == ["0.82 s", "25.60 s"]
    assert (times.loc[1, "retrain"], times.loc[1, "speed-up"]) == ("72.40 s", "88.3×")
    assert (times.loc[2, "retrain"], times.loc[2, "speed-up"]) == ("—", "—")
    assert {m.label: m.value for m in at.metric}["Speed-up vs retrain"] == "88.3×"
    assert len(frame_with(at, "interactions")) == 3
    assert frame_with(at, "sha256")["kind"].tolist() == [
        "base",
        "unlearned",
        "reference",
        "unlearned",
    ]
    assert len(at.get("graphviz_chart")) == 1


def test_a_runs_purge_check_and_its_data_docs_page_are_shown(open_app, seeded):
    at = open_app("models", run="1")
    verdict = next(x.value for x in at.success if "Purge check" in x.value)
    assert "passed, 6 of 6 expectations met" in verdict
    where = next(c.value for c in at.caption if "data-docs page" in c.value)
    assert RUN1_PURGE_CHECK["result_id"] in where and RUN1_PURGE_PAGE in where
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download the purge check's data-docs page (HTML)"]
    at = open_app("models", run="2")
    assert any("Purge check: none recorded" in c.value for c in at.caption)
    assert not at.get("download_button")


def test_the_overview_lists_each_runs_purge_check_and_the_data_docs(open_app, seeded):
    at = open_app("overview")
    runs = frame_with(at, "purge check").set_index("run")["purge check"]
    assert runs.to_dict() == {2: "—", 1: "passed 6/6"}
    reports = next(c.value for c in at.caption if c.value.startswith("Validation reports"))
    index = seeded.settings.var / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert str(index) in reports and index.is_file()


def test_a_certificate_shows_its_purge_check_and_links_its_run(open_app):
    at = open_app("certificates", certificate=VALID_CERTIFICATE)
    facts = frame_with(at, "field").set_index("field")["value"]
    assert facts["purge check (Great Expectations)"] == "passed, 6 of 6 expectations met"
    assert facts["purge check result"] == RUN1_PURGE_CHECK["result_id"]
    links = {link.proto.page: link.proto.query_string for link in at.page_link}
    assert links == {"models": "run=1"}
    at = open_app("certificates", certificate=PROVISIONAL_CERTIFICATE)
    facts = frame_with(at, "field").set_index("field")["value"]
    assert facts["purge check (Great Expectations)"] == "—"


def test_the_models_caption_says_the_auc_check_is_two_sided(open_app):
    """The attack AUC is read on both sides of 0.5: over-unlearning fails too."""
    at = open_app("models", run="1")
    caption = next(c.value for c in at.caption if "MIA AUC" in c.value)
    assert "under-unlearning" in caption and "over-unlearning" in caption
    assert "0.5 or below" not in caption


def test_rendering_every_page_leaves_the_ledger_untouched(open_app, seeded):
    db = seeded.home / "var" / "ledger.sqlite"

    def state() -> list[str | None]:
        # The seed left the file in WAL mode: a write would land in ``-wal`` first.
        files = (db, db.with_name(db.name + "-wal"))
        return [hashlib.sha256(f.read_bytes()).hexdigest() if f.exists() else None for f in files]

    before = state()
    for page in ("overview", "tickets", "certificates", "models"):
        open_app(page)
    assert state() == before


# -- failure modes ------------------------------------------------------------------------------


def test_an_empty_ledger_says_so(open_app, app_env, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    init_db(make_engine(url))
    app_env(url)
    for page in ("overview", "tickets", "certificates", "models"):
        at = open_app(page)
        assert "is empty" in at.info[0].value and not at.error and not at.dataframe


def test_a_database_without_ledger_tables_says_so(open_app, app_env, tmp_path):
    db = tmp_path / "other.sqlite"
    sqlite3.connect(db).close()
    app_env(f"sqlite:///{db}")
    at = open_app("overview")
    assert "no ledger yet" in at.info[0].value


def test_a_missing_database_file_says_what_to_do(open_app, app_env, tmp_path):
    app_env(f"sqlite:///{tmp_path / 'nowhere' / 'ledger.sqlite'}")
    at = open_app("certificates")
    assert "The ledger database is missing" in at.error[0].value
    assert "unlearnrec demo" in at.info[0].value
    assert not (tmp_path / "nowhere").exists()  # read-only: nothing created


@pytest.mark.parametrize("page", ["overview", "models"])
def test_an_unreachable_postgresql_says_so_without_the_password(open_app, app_env, page):
    app_env("postgresql+psycopg://ledger:s3cret-pw@127.0.0.1:1/ledger")
    at = open_app(page)
    error = at.error[0].value
    assert error.startswith("Cannot reach the ledger database")
    assert "127.0.0.1:1" in error and "***" in error
    assert "s3cret-pw" not in page_text(at)
    assert "UNLEARNREC_DB_URL" in at.info[0].value


@pytest.fixture
def pg_url():
    with temporary_database("unlearnrec_dashboard") as url:
        yield url


def test_the_pages_read_a_postgresql_ledger(open_app, app_env, pg_url, tmp_path):
    seeded = seed_ledger(tmp_path / "home", db_url=pg_url)
    app_env(pg_url, home=seeded.home)
    at = open_app("overview")
    assert {m.label: m.value for m in at.metric}["Overdue"] == "2"
    at = open_app("certificates", certificate=VALID_CERTIFICATE)
    assert at.success[0].value.startswith("**PASS**")
    at = open_app("models")
    assert frame_with(at, "speed-up").set_index("run").loc[1, "speed-up"] == "88.3×"
