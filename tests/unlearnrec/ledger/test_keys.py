"""Signing keys pinned in the ledger (``unlearnrec/ledger/keys.py``): a swapped public key and a
certificate forged with it fail ``certificate verify`` and ``audit verify``; a new signing key is
refused until registered (key rotation); certificate files the ledger does not back are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import select

from unlearnrec.cli import compliance as cli_compliance
from unlearnrec.cli import main as cli_main
from unlearnrec.compliance.platform import Platform
from unlearnrec.ledger import (
    AuditEvent,
    Certificate,
    UnlearningRun,
    add_with_event,
    append_event,
    init_db,
    make_engine,
    session_scope,
)
from unlearnrec.ledger.keys import (
    KeyNotRegisteredError,
    recorded_keys,
    register_key,
    require_registered,
)
from unlearnrec.records import certificates as certs
from unlearnrec.records.policy import load_policy
from unlearnrec.records.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]


def body(cid: str, position: int, event_hash: str) -> dict:
    return {
        "schema": certs.SCHEMA,
        "certificate_id": cid,
        "issued_at": "2026-11-20T12:00:00+00:00",
        "tickets": [{"id": 1, "external_id": "DSAR-1"}],
        "subjects": ["ps_0123"],
        "removed_interactions": {"count": 3, "hash": "ab" * 32},
        "dataset": {},
        "model": {},
        "method": {"name": "unlearnrec"},
        "verification": {"passed": True},
        "policy": {"id": "p", "version": 1},
        "audit": {"position": position, "event_hash": event_hash},
        "timings": {},
    }


@pytest.fixture
def platform(tmp_path) -> Platform:
    """A ledger with one certificate, issued as the platform does: key pinned, event, file, row."""
    settings = get_settings(home=tmp_path / "home", policy_path=ROOT / "policies/gdpr-default.yaml")
    engine = make_engine(settings.database_url)
    init_db(engine)
    platform = Platform(settings, engine, None, load_policy(settings.policy), actor="test")  # type: ignore[arg-type]
    key = platform.signing_key  # created, public key exported
    with session_scope(engine) as session:
        require_registered(session, key, actor="test")
        run = add_with_event(
            session,
            UnlearningRun(batch_key="b1"),
            actor="test",
            action="run.started",
            entity="run",
            data={},
        )
        ev = append_event(
            session,
            actor="test",
            action="certificate.issued",
            entity="ticket",
            entity_id=1,
            data={"certificate_id": "cert-r1-t1-provisional", "run_id": run.id},
        )
        issue(session, settings.certificates, "cert-r1-t1-provisional", run.id, ev, key)
    return platform


def issue(session, folder: Path, cid: str, run_id, ev, key) -> Path:
    signed = certs.sign_certificate(body(cid, ev.position, ev.hash), key)
    path = folder / f"{cid}.json"
    sha = certs.write_certificate(path, signed)
    session.add(
        Certificate(
            certificate_id=cid,
            run_id=run_id,
            ticket_ids=[1],
            path=str(path),
            sha256=sha,
            digest=certs.certificate_digest(signed),
            key_id=signed["signature"]["key_id"],
            audit_position=ev.position,
        )
    )
    return path


def run_cli(platform: Platform, *argv: str) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_compliance, "_platform", lambda args, actor: platform)
        return cli_main([*argv, "--home", str(platform.settings.home)])


def forge(platform: Platform) -> Path:
    """The attack: replace public_key.pem with an attacker's key, sign a certificate with it."""
    attacker = Ed25519PrivateKey.generate()
    certs.export_public_key(attacker, platform.settings.public_key)
    forged = certs.sign_certificate(body("cert-r9-t7-final", 1, "0" * 64), attacker)
    path = platform.settings.certificates / "cert-r9-t7-final.json"
    certs.write_certificate(path, forged)
    return path


def test_a_genuine_certificate_verifies_against_the_ledger(platform, capsys):
    """The issued certificate, the platform's public key: OK from both commands."""
    path = platform.settings.certificates / "cert-r1-t1-provisional.json"
    assert run_cli(platform, "certificate", "verify", str(path)) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:") and "the ones the ledger recorded" in out
    assert run_cli(platform, "audit", "verify") == 0, capsys.readouterr().out


def test_a_swapped_public_key_and_a_forged_certificate_fail(platform, capsys):
    """A forged certificate signed with a key swapped into public_key.pem: the signature checks
    out against that file, but the key is not the one the ledger pinned, not the signing key,
    and the certificate is not one the ledger issued. ``audit verify`` fails too."""
    path = forge(platform)
    assert run_cli(platform, "certificate", "verify", str(path)) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID:")
    assert "is not a signing key the ledger recorded" in out
    assert "does not match the platform's signing key" in out
    assert "cert-r9-t7-final is not recorded in the ledger" in out

    assert run_cli(platform, "audit", "verify") == 1
    out = capsys.readouterr().out
    assert "public_key.pem: public key" in out and "is not a signing key the ledger" in out
    assert "certificate cert-r9-t7-final.json: signed by key" in out
    assert "certificate cert-r9-t7-final.json: not recorded in the ledger" in out

    # A verifier without access to secrets/ still catches the swap through the pinned key.
    shutil.rmtree(platform.settings.secrets)
    assert run_cli(platform, "certificate", "verify", str(path)) == 1
    assert "is not a signing key the ledger recorded" in capsys.readouterr().out


def test_a_rewritten_certificate_file_is_named(platform, capsys):
    """A certificate file re-signed with the genuine key but edited differs from the ledger's."""
    path = platform.settings.certificates / "cert-r1-t1-provisional.json"
    doc = json.loads(path.read_text())
    doc.pop("signature")
    doc["subjects"] = []
    key = certs.load_or_create_signing_key(platform.settings.signing_key)
    certs.write_certificate(path, certs.sign_certificate(doc, key))
    assert run_cli(platform, "certificate", "verify", str(path)) == 1
    assert "differs from the one the ledger recorded" in capsys.readouterr().out


def test_a_new_signing_key_is_refused_until_registered(platform, capsys):
    """Key rotation: a new key in secrets/ cannot sign until ``certificate register-key`` pins
    it; after that both keys are recorded and old certificates still verify."""
    old_id = certs.key_id(platform.signing_key)
    platform.settings.signing_key.unlink()
    rotated = Platform(platform.settings, platform.engine, None, platform.policy, actor="test")
    new_key = rotated.signing_key  # a fresh key, as after an operator removed the old one
    with session_scope(platform.engine) as session, pytest.raises(KeyNotRegisteredError):
        require_registered(session, new_key, actor="test")
    assert run_cli(rotated, "certificate", "register-key") == 0
    assert "registered in the ledger" in capsys.readouterr().out
    with session_scope(platform.engine) as session:
        assert set(recorded_keys(session)) == {old_id, certs.key_id(new_key)}
        assert require_registered(session, new_key, actor="test") == certs.key_id(new_key)
        assert not register_key(session, new_key, actor="test")  # once only
    assert run_cli(rotated, "audit", "verify") == 0, capsys.readouterr().out


def test_a_ledger_from_before_registration_pins_its_certificates_keys(tmp_path):
    """Without any ``key.registered`` event, the key ids of certificate rows are the pins; the
    first signature then records that key's public half."""
    engine = make_engine(f"sqlite:///{tmp_path / 'l.sqlite'}")
    init_db(engine)
    key = Ed25519PrivateKey.generate()
    with session_scope(engine) as session:
        run = UnlearningRun(batch_key="b")
        session.add(run)
        session.flush()
        session.add(
            Certificate(
                certificate_id="c", run_id=run.id, path="c.json", sha256="", digest="",
                key_id=certs.key_id(key),
            )
        )  # fmt: skip
    with session_scope(engine) as session:
        assert recorded_keys(session) == {certs.key_id(key): ""}
        require_registered(session, key, actor="t")
        assert recorded_keys(session) == {certs.key_id(key): certs.raw_public_key_hex(key)}
        other = Ed25519PrivateKey.generate()
        with pytest.raises(KeyNotRegisteredError):
            require_registered(session, other, actor="t")
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "key.registered"))
        assert [e.entity_id for e in events] == [certs.key_id(key)]
