"""The ticket-to-certificate chain on a tiny platform: validation and rejections, one
certificate per ticket however often it runs, crash safety, the reference upgrade, retention."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text as sql
from sqlmodel import select

from unlearnrec.cli import main as cli_main
from unlearnrec.compliance.erasure import check_erased
from unlearnrec.compliance.ingest import ingest_inbox
from unlearnrec.compliance.lifecycle import apply_retention, bootstrap, retrain_reference
from unlearnrec.compliance.platform import Platform
from unlearnrec.compliance.samples import write_sample_inbox
from unlearnrec.compliance.store import StoreError
from unlearnrec.compliance.versions import current_dataset, read_dataset_version
from unlearnrec.ledger import (
    AuditEvent,
    Certificate,
    DatasetVersion,
    ModelVersion,
    Ticket,
    UnlearningRun,
    certificate_anchors,
    session_scope,
    utcnow,
    verify_chain,
)
from unlearnrec.records import certificates as certs

from .conftest import make_home

# DSAR-1005 is past its deadline: escalated (flagged overdue), still erased, never rejected.
VALID = {"DSAR-1001", "DSAR-1002", "DSAR-1003", "DSAR-1005", "LIC-2001"}
OVERDUE = {"DSAR-1005"}
REJECTED = {
    "DSAR-1004": "not a known user",
    "DSAR-1006": "duplicate of ticket DSAR-1001",
    "DSAR-1007": "kind",
}


def _open_and_fill(home: Path) -> Platform:
    platform = Platform.open()
    art = home / "artifacts"
    bootstrap(
        platform,
        data_dir=home / "data" / "synthetic",
        splits_path=art / "prepared" / "splits.npz",
        model_path=art / "base" / "model.pt",
        encoder_path=art / "encoder" / "encoder.pt",
        ladder_path=art / "ladder" / "ladder.json",  # when the test wrote one
    )
    with session_scope(platform.engine) as session:
        files = read_dataset_version(platform, current_dataset(session))
    write_sample_inbox(platform.settings.inbox, files, now=utcnow())
    huge = platform.settings.inbox / "huge.json"
    huge.write_bytes(b"[" + b" " * platform.settings.max_ticket_file_bytes + b"]")
    return platform


def process_once() -> None:
    """What the process_deletions flow does, without the Prefect run around it."""
    from flows.process_deletions import ProcessParams, plan, run_batch, validate_tickets

    params = ProcessParams(force=True, device="cpu")
    validate_tickets.fn(params)
    for batch in plan.fn(params):
        run_batch.fn(params, batch)


def _tickets(platform: Platform) -> dict[str, Ticket]:
    with session_scope(platform.engine) as session:
        return {t.external_id: t for t in session.exec(select(Ticket))}


def _certificates(platform: Platform, status: str | None = None) -> list[Certificate]:
    with session_scope(platform.engine) as session:
        rows = list(session.exec(select(Certificate)))
    return [c for c in rows if status is None or c.status == status]


def _assert_gx_kept_checks_and_no_subject(platform: Platform, raw_subjects: set[str]) -> None:
    """The GX checks ran through their checkpoints and were kept under var/gx/: every run that
    purged recorded its passing purge check, whose result file and data-docs page exist; the
    ticket batch's result is kept too; no subject reached GX's results or pages (the unknown
    subject of a rejected ticket included)."""
    gx = platform.settings.var / "gx"
    results = gx / "uncommitted" / "validations"
    with session_scope(platform.engine) as session:
        purged = [r for r in session.exec(select(UnlearningRun)) if r.removed_count > 0]
    assert purged
    for run in purged:
        check = run.purge_check
        assert (check["suite"], check["success"], check["failed"]) == ("purge", True, [])
        assert check["statistics"]["evaluated"] == check["statistics"]["successful"] > 0
        assert (results / f"{check['result_id']}.json").is_file()
        assert (platform.settings.var / check["data_docs"]).is_file()
    assert list((results / "ticket_batch").rglob("*.json"))
    assert (gx / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()
    assert "no-such-user" in raw_subjects  # the sample's unknown subject, rejected
    pattern = re.compile("|".join(rf"(?<![\w-]){re.escape(s)}(?![\w-])" for s in raw_subjects))
    for path in gx.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html", ".yml"):
            assert not pattern.search(path.read_text(errors="ignore")), path


def test_chain_certifies_valid_tickets_once_and_rejects_the_rest(
    tiny_artifacts, tmp_path, monkeypatch, capsys
):
    """Valid tickets of every kind end certified with a verifiable certificate; invalid ones
    are rejected with their reason; bad files are refused; running again changes nothing."""
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    platform = _open_and_fill(home)
    summary = ingest_inbox(platform, now=utcnow())
    assert (summary.created, summary.resubmitted, summary.rejected_at_intake) == (7, 1, 1)
    refused = {name for name, _ in summary.refused_files}
    assert refused == {"meeting-notes.txt", "broken-export.json", "huge.json"}
    assert any("broken-export.json:2" in reason for _, reason in summary.refused_files)

    process_once()
    tickets = _tickets(platform)
    assert {k for k, t in tickets.items() if t.status == "certified"} == VALID
    for external_id, reason in REJECTED.items():
        assert tickets[external_id].status == "rejected"
        assert reason in (tickets[external_id].reason or "")
    assert "deadline" not in (tickets["DSAR-1005"].reason or "")
    with session_scope(platform.engine) as session:
        escalated = [
            e.entity_id
            for e in session.exec(select(AuditEvent).where(AuditEvent.action == "ticket.overdue"))
        ]
    assert sorted(escalated) == sorted(str(tickets[k].id) for k in OVERDUE)
    # Storage limitation: raw subjects are gone once tickets are closed; pseudonyms remain.
    assert all(t.subject is None for t in tickets.values())
    assert tickets["DSAR-1001"].subject_pseudonym.startswith("ps_")

    processed = next((platform.settings.inbox / "processed").glob("*dsar-export*.json"))
    raw_subjects = {t.get("subject") for t in json.loads(processed.read_text())["tickets"]}
    raw_subjects.discard(None)
    _assert_gx_kept_checks_and_no_subject(platform, raw_subjects)
    provisional = _certificates(platform, "provisional")
    assert len(provisional) == len(VALID)
    public = certs.load_public_key(platform.settings.public_key)
    erased_subjects = set()
    for row in provisional:
        text = Path(row.path).read_text()
        cert = certs.read_certificate(Path(row.path), strict=True)
        assert certs.verify_certificate(cert, public).ok
        assert cert["status"] == "provisional" and cert["policy"]["id"] == "test-policy"
        erased_subjects |= set(cert["subjects"])
        assert cert["removed_interactions"]["count"] > 0
        assert cert["audit"]["position"] > 0
        assert cert["purge_check"]["success"] and cert["purge_check"]["suite"] == "purge"
        for subject in raw_subjects:  # subjects appear pseudonymised only
            assert f'"{subject}"' not in text
    assert tickets["DSAR-1001"].subject_pseudonym in erased_subjects

    process_once()  # a second run: nothing new
    assert len(_certificates(platform)) == len(VALID)
    assert len(list(platform.settings.certificates.glob("*.json"))) == len(VALID)
    anchors, unreadable = certificate_anchors(platform.settings.certificates)
    assert len(anchors) == len(VALID) and not unreadable
    with session_scope(platform.engine) as session:
        assert verify_chain(session, anchors).ok

    # The scheduled reference retrain upgrades every certificate to final.
    result = retrain_reference(platform, device="cpu")
    assert len(result.upgraded) == len(VALID)
    assert len(_certificates(platform, "final")) == len(VALID)
    assert len(_certificates(platform, "superseded")) == len(VALID)
    earlier = {
        r.ticket_ids[0]: certs.read_certificate(Path(r.path))
        for r in _certificates(platform, "superseded")
    }
    for row in _certificates(platform, "final"):
        cert = certs.read_certificate(Path(row.path))
        # The final certificate states the same erasure as the provisional one it supersedes.
        assert cert["removed_interactions"] == earlier[row.ticket_ids[0]]["removed_interactions"]
        assert cert["removed_interactions"]["count"] > 0
        assert cert["supersedes"] == earlier[row.ticket_ids[0]]["certificate_id"]
        assert cert["method"]["device"].startswith("cpu")
        assert cert["verification"]["mode"] == "final"
        assert "reference" in cert["verification"]
        assert certs.verify_certificate(cert, public).ok

    # Retention: the version that still held the erased interactions leaves cache and remote.
    apply_retention(platform)
    with session_scope(platform.engine) as session:
        v0 = session.exec(select(DatasetVersion).order_by(DatasetVersion.id)).first()
        assert v0 is not None and v0.purged and v0.holds_erased_data
    with pytest.raises(StoreError, match="not in the store"):
        platform.store.fetch("dataset", v0.dvc_md5, tmp_path / "gone")
    # ... and no other copy the platform keeps holds what was erased (compliance/erasure.py).
    erased = check_erased(platform)
    assert erased.ok and erased.scanned > 0, erased.lines()

    # The officer's commands: export the head; cutting events off later is caught by it and by
    # the certificates, though the shortened chain still links up.
    assert cli_main(["audit", "head", "--home", str(home)]) == 0
    head = capsys.readouterr().out.strip()
    assert cli_main(["audit", "verify", "--head", head, "--home", str(home)]) == 0
    assert f"{2 * len(VALID)} certificate anchor(s)" in capsys.readouterr().out
    with platform.engine.begin() as conn:
        last = conn.execute(sql("SELECT MAX(position) FROM auditevent")).scalar_one()
        conn.execute(sql("DELETE FROM auditevent WHERE position >= :p"), {"p": last - 2})
    assert cli_main(["audit", "verify", "--head", head, "--home", str(home)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and f"--head anchors event {last}" in out and "cut off" in out
    with pytest.raises(SystemExit, match="POSITION:SHA256"):
        cli_main(["audit", "verify", "--head", "12", "--home", str(home)])


CRASH_SCRIPT = """
from tests.unlearnrec.compliance.test_workflow import process_once
process_once()
"""


@pytest.mark.parametrize(
    "point",
    ["after_dataset_stored", "during_unlearn", "after_model_stored", "after_certificate_written"],
)
def test_a_kill_mid_run_then_a_rerun_finishes_each_ticket_exactly_once(
    point, tiny_artifacts, tmp_path, monkeypatch
):
    """SIGKILL between a side effect and its ledger commit, then run again: every valid ticket
    is certified once, no half-written version or certificate is left, the ledger is sound."""
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    env = {**os.environ, "UNLEARNREC_CRASH_POINT": point}
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT],
        cwd=Path.cwd(),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed at the crash point

    var = platform.settings.var
    kept = ("store", "dvc-remote", "gx")  # the DVC store and remote, the GX project
    scratch = lambda: sorted(  # noqa: E731
        p.name for p in var.iterdir() if p.is_dir() and p.name not in kept
    )
    if point == "during_unlearn":  # killed inside a scratch folder: it is left behind
        assert [n for n in scratch() if n.startswith("unlearnrec-tmp-")]
    process_once()  # the rerun, no crash
    # Scratch folders of the killed run (copies of the erased interactions) are swept.
    assert [n for n in scratch() if n != "certificates"] == []
    tickets = _tickets(platform)
    assert {k for k, t in tickets.items() if t.status == "certified"} == VALID
    rows = _certificates(platform)
    assert sorted(r.ticket_ids[0] for r in rows) == sorted(tickets[k].id for k in VALID)
    files = sorted(platform.settings.certificates.glob("*.json"))
    assert len(files) == len(VALID)  # no stray or half-written certificate
    assert not list(platform.settings.certificates.glob(".*"))  # no temp file
    store = platform.store.root
    assert not list(store.glob("*/.staging-*")) and not list(store.glob("*/.old-*"))
    apply_retention(platform)  # also unpins store versions the ledger never recorded
    with session_scope(platform.engine) as session:
        datasets = list(session.exec(select(DatasetVersion)))
        models = list(session.exec(select(ModelVersion)))
        assert len(datasets) == 2  # bootstrap + one purge
        assert len(models) == 2  # base + one unlearned
        # every certificate written before or after the kill names an event the trail holds
        assert verify_chain(session, certificate_anchors(platform.settings.certificates)[0]).ok
    recorded = {f"dataset-{d.dvc_md5.removesuffix('.dir')}" for d in datasets} | {
        f"model-{m.dvc_md5.removesuffix('.dir')}" for m in models
    }
    assert set(platform.store.pinned()) == recorded
    public = certs.load_public_key(platform.settings.public_key)
    for f in files:
        assert certs.verify_certificate(json.loads(f.read_text()), public).ok


def test_erased_users_below_chance_are_not_taken_for_over_unlearning(
    tiny_artifacts, tmp_path, monkeypatch
):
    """Under the default AUC margin (0.05) the sample batch (whole users erased, an item taken
    down) has an attack AUC far below chance on its erased edges, as a retrain has it too (the
    erased users' fresh rows score their old items low): the provisional check bounds the AUC
    from below only on the batch's other erased edges, so UnlearnRec's model is certified, with
    no fallback. (A lower bound on the whole batch refused it: the main job fell back to retrain.)
    Over-unlearning itself is caught by the bound (test_provisional.py)."""
    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, auc_margin=0.05)
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    process_once()
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        models = [m.kind for m in session.exec(select(ModelVersion).order_by(ModelVersion.id))]
    assert run.verification["unlearned"]["mia_auc"] < 0.45
    assert run.method == "unlearnrec" and "fallback" not in run.verification
    assert run.verification["passed"], run.verification.get("reasons")
    assert models == ["base", "unlearned"]
    tickets = _tickets(platform)
    assert {k for k, t in tickets.items() if t.status == "certified"} == VALID


def test_a_retrain_policy_certifies_a_model_retrained_without_the_erased_data(
    tiny_artifacts, tmp_path, monkeypatch
):
    """A policy with ``method: retrain`` unlearns each batch by a full retrain: the run and
    every (final) certificate name retrain, and the production model is exactly the retrain of
    the base configuration on the dataset after the purge (not a model UnlearnRec made)."""
    import torch

    from unlearnrec.compliance.modeling import retrain_model
    from unlearnrec.compliance.versions import checkout
    from unlearnrec.training.checkpoint import load_checkpoint

    home = make_home(tiny_artifacts, tmp_path / "home", monkeypatch, method="retrain", params={})
    platform = _open_and_fill(home)
    ingest_inbox(platform, now=utcnow())
    process_once()
    with session_scope(platform.engine) as session:
        run = session.exec(select(UnlearningRun)).one()
        models = list(session.exec(select(ModelVersion).order_by(ModelVersion.id)))
        after = read_dataset_version(platform, session.get(DatasetVersion, run.dataset_after_id))
    assert run.method == "retrain" and "fallback" not in run.verification
    # the retrained model is its own reference: verified final, not by provisional heuristics
    assert run.verification["passed"] and run.verification["mode"] == "final"
    assert run.verification["ratios"]["recall@20"] == 1.0
    assert run.timings["encoder_refresh_seconds"] == 0.0
    assert [m.kind for m in models] == ["base", "retrain"]
    assert run.model_after_id == models[1].id
    tickets = _tickets(platform)
    assert {k for k, t in tickets.items() if t.status == "certified"} == VALID
    for row in _certificates(platform):
        cert = certs.read_certificate(Path(row.path), strict=True)
        assert row.status == "final" and cert["method"]["name"] == "retrain"
        assert cert["model"]["after"] == {
            "sha256": models[1].sha256,
            "dvc_md5": models[1].dvc_md5,
            "kind": "retrain",
        }
    base, production = models
    with (
        checkout(platform, "model", base.dvc_md5) as f_base,
        checkout(platform, "model", production.dvc_md5) as f_prod,
    ):
        assert not (f_prod / "encoder.pt").exists()  # retrain keeps no preparation
        ref, _ = retrain_model(after, f_base, tmp_path / "ref", device="cpu")
        served = load_checkpoint(f_prod / "model.pt").model.state_dict()
        retrained = load_checkpoint(ref / "model.pt").model.state_dict()
        unlearned_by_default = load_checkpoint(f_base / "model.pt").model.state_dict()
    assert served.keys() == retrained.keys()
    assert all(torch.equal(served[k], retrained[k]) for k in served)
    assert not all(torch.equal(served[k], unlearned_by_default[k]) for k in served)
