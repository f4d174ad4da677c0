"""The purge's Great Expectations check on a tiny platform: a purge that loses a pair it should
keep fails the check with the names of what it broke, and that failure is recorded on the run,
in its audit event and in the GX result kept under var/gx/ (not only in an error string)."""

from __future__ import annotations

import json

from sqlmodel import col, select

from unlearnrec.compliance import stages
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.ledger import AuditEvent, DatasetVersion, UnlearningRun, session_scope, utcnow

from .conftest import make_home
from .test_workflow import _open_and_fill, process_once

BROKEN = ["nothing_else_changed", "counts_reconcile"]


def test_a_failing_purge_check_is_recorded_on_the_run_with_its_names(
    tiny_artifacts, tmp_path, monkeypatch
):
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    real_tombstone = stages.tombstone

    def sloppy_purge(files, gone, pseudonymise):
        after = real_tombstone(files, gone, pseudonymise)
        return after.without(after.all_pairs()[:1])  # one pair that was to be kept, lost too

    monkeypatch.setattr(stages, "tombstone", sloppy_purge)
    process_once()

    with session_scope(platform.engine) as session:
        runs = list(session.exec(select(UnlearningRun)))
        events = list(
            session.exec(select(AuditEvent).where(col(AuditEvent.action) == "run.failed"))
        )
        versions = len(list(session.exec(select(DatasetVersion))))
    assert runs and versions == 1  # no purged dataset version was stored
    for run in runs:
        assert (run.status, run.stage) == ("failed", "scheduled")
        assert run.error and f"purge validation failed: {', '.join(BROKEN)}" in run.error
        check = run.purge_check
        assert (check["suite"], check["success"], check["failed"]) == ("purge", False, BROKEN)
        assert check["statistics"]["unsuccessful"] == 2  # counts_reconcile + one of two
        kept = platform.settings.var / "gx" / "uncommitted" / "validations"
        result = json.loads((kept / f"{check['result_id']}.json").read_text())
        assert result["success"] is False
        assert (platform.settings.var / check["data_docs"]).is_file()
    assert len(events) == len(runs)
    for event in events:
        assert event.data["purge_check"]["success"] is False
        assert event.data["purge_check"]["evaluated"] == 6
