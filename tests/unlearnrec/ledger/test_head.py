"""The chain's head, signed into ``var/audit-head.json`` after every commit that appends events:
a tail cut off the trail (which still links up) fails ``audit verify`` without any exported
head or certificate; an altered head file fails too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from unlearnrec.cli import compliance as cli_compliance
from unlearnrec.cli import main as cli_main
from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import append_event, init_db, make_engine, session_scope
from unlearnrec.ledger.db import on_audit_commit
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import load_policy
from unlearnrec.records.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]


def settings_for(tmp_path):
    return get_settings(home=tmp_path / "home", policy_path=ROOT / "policies/gdpr-default.yaml")


def four_events(platform: Platform) -> Platform:
    for n in range(4):
        with session_scope(platform.engine) as session:
            append_event(session, actor="test", action="test.event", entity="test", entity_id=n)
    return platform


@pytest.fixture
def platform(tmp_path) -> Platform:
    """What ``Platform.open`` sets up, without its DVC store (slow to create, not needed)."""
    settings = settings_for(tmp_path)
    engine = make_engine(settings.database_url)
    init_db(engine)
    platform = Platform(settings, engine, None, load_policy(settings.policy), actor="test")  # type: ignore[arg-type]
    on_audit_commit(engine, platform.write_head)
    return four_events(platform)


def test_platform_open_anchors_the_head(tmp_path):
    platform = four_events(Platform.open(settings_for(tmp_path), actor="test"))
    assert json.loads(platform.head_file.read_text())["position"] == 5


def audit_verify(platform: Platform) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_compliance, "_platform", lambda args, actor: platform)
        return cli_main(["audit", "verify"])


def test_every_commit_rewrites_the_signed_head(platform, capsys):
    head = json.loads(platform.head_file.read_text())
    # 4 events and the key's registration (first write: the key is pinned then)
    assert head["position"] == 5 and head["key_id"] == certs.key_id(platform.signing_key)
    assert audit_verify(platform) == 0
    assert "signed head(s) found in it" in capsys.readouterr().out


def test_a_cut_tail_fails_through_the_signed_head(platform, capsys):
    with platform.engine.begin() as conn:
        conn.execute(text("DELETE FROM auditevent WHERE position >= 4"))
    assert audit_verify(platform) == 1
    out = capsys.readouterr().out
    assert "signed head file audit-head.json anchors event 5, which the trail does not hold" in out


def test_an_altered_head_file_fails(platform, capsys):
    doc = json.loads(platform.head_file.read_text())
    doc["position"] = 3
    platform.head_file.write_text(json.dumps(doc))
    assert audit_verify(platform) == 1
    out = capsys.readouterr().out
    assert "signed head file audit-head.json: signature does not match its content" in out


def test_without_a_head_file_verify_says_so(platform, capsys):
    platform.head_file.unlink()
    assert audit_verify(platform) == 0
    assert "note: no signed head file" in capsys.readouterr().out
