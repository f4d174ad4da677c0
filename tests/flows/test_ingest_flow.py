"""The ``ingest`` flow's task over a hostile inbox, and its artifact: quarantined files are
listed by label, with reasons in which nothing is rendered as Markdown."""

from __future__ import annotations

import json
from pathlib import Path

from flows.ingest import IngestParams, ingest_files, refused_markdown
from unlearnrec.compliance.ingest import IngestSummary

ROOT = Path(__file__).resolve().parents[2]


def test_the_task_ingests_past_poison_files(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNREC_POLICY_PATH", str(ROOT / "policies" / "gdpr-default.yaml"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.json").write_bytes(
        b'{"external_id": "A-1", "kind": "erase_user", "subject": "\\ud800"}'
    )
    (inbox / "b.json").symlink_to("/proc/self/mem")
    (inbox / "c.json").write_text(
        json.dumps({"external_id": "C-1", "kind": "erase_user", "subject": "u1",
                    "legal_basis": "GDPR-17(1)(a)"})
    )  # fmt: skip
    summary = ingest_files.fn(IngestParams(home=str(tmp_path)))
    assert (summary.files, summary.created) == (3, 1)
    assert [label for label, _ in summary.refused_files] == ["a.json", "b.json"]
    text = refused_markdown(summary)
    assert "- `b.json`: a symbolic link (links are not followed)" in text


def test_the_artifact_escapes_reasons():
    summary = IngestSummary(refused_files=[("file-0123456789ab.json", "x: see [link](http://x)")])
    text = refused_markdown(summary)
    assert "[link]" not in text and "http://" not in text
    assert "\\[link\\](http\\://x)" in text
    assert refused_markdown(IngestSummary()) == ""
